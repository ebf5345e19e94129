"""The `waypoint_mission` node holds its course until a controller can hear the plan it asks for, and
undoes a move of its waypoints that the replanner refused.

A controller that joins after the plan went out gets the latched plan late and refuses it as stale,
so the vehicle would hover while the mission counts its replans (a demo run on a loaded machine
failed that way). A replan the replanner refuses (late on a loaded machine) leaves the vehicle on its
old plan: a mission that kept the moved waypoints waited for the vehicle at places it never flew to
(the demo timed out in CI that way, the vehicle resting at the goal). A waypoint the replanner took as reached
without flying through it counts as passed once the vehicle reaches the next one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from nav_msgs.msg import Odometry, Path
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from trajectory_msgs.msg import MultiDOFJointTrajectory

from mfrl import qos
from mfrl.conversions import ns_to_stamp, odometry_message
from mfrl.waypoint_mission import WaypointMission, next_waypoint_index
from quadsim.mujoco_vehicle import MujocoQuadrotor

THREE_WAYPOINTS = "course:=[0.0, 0.0, 1.0, 2.0, 0.0, 1.0, 4.0, 0.0, 1.0, 6.0, 0.0, 1.0]"


@pytest.fixture
def mission_and_peer(
    ros_env: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[tuple[SingleThreadedExecutor, Node, WaypointMission]]:
    """The mission (course of two waypoints, or the parameters the test passes indirectly) and a test node,
    on one executor in this test's domain."""
    params = getattr(request, "param", ("course:=[0.0, 0.0, 1.0, 2.0, 0.0, 1.0]",))
    args = ["--ros-args", "-p", "trajectory_subscribers:=1"]
    for param in params:
        args += ["-p", param]
    rclpy.init(args=args, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    executor = SingleThreadedExecutor()
    peer = rclpy.create_node("test_peer")
    mission = WaypointMission()
    for node in (peer, mission):
        executor.add_node(node)
    try:
        yield executor, peer, mission
    finally:
        executor.shutdown()
        for node in (peer, mission):
            node.destroy_node()
        rclpy.try_shutdown()


class HoveringVehicle:
    """The test's side of the graph: a vehicle hovering in place (odometry, 20 ms of sim time per spin)
    and the replanner's ear on `waypoints` (the paths the mission sends)."""

    def __init__(self, executor: SingleThreadedExecutor, peer: Node) -> None:
        self.executor = executor
        self.paths: list[Path] = []
        peer.create_subscription(Path, "/waypoints", self.paths.append, qos.REQUEST)
        self.odom_pub = peer.create_publisher(Odometry, "/odom", qos.SENSOR)
        self.quad = MujocoQuadrotor()
        self.quad.reset(np.array([0.0, 0.0, 1.0]))
        self.now_ns = 0

    def spin_until_paths(self, count: int, seconds: float) -> bool:
        """Publish odometry and spin until `count` paths came or `seconds` (wall) passed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(self.paths) < count:
            self.now_ns += 20_000_000
            self.odom_pub.publish(odometry_message(self.quad.state(), "world", "base_link", ns_to_stamp(self.now_ns)))
            self.executor.spin_once(timeout_sec=0.01)
        return len(self.paths) >= count


def spin_without_odometry(executor: SingleThreadedExecutor, condition: Callable[[], bool]) -> None:
    """Spin until `condition()` holds (at most 10 s): no odometry goes out, so sim time stands still and no move
    falls due meanwhile."""
    deadline = time.monotonic() + 10.0
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.01)


@pytest.mark.ros
def test_the_course_waits_for_a_controller_on_the_trajectory_topic(
    mission_and_peer: tuple[SingleThreadedExecutor, Node, WaypointMission],
) -> None:
    executor, peer, mission = mission_and_peer
    vehicle = HoveringVehicle(executor, peer)
    vehicle.spin_until_paths(1, 3.0)
    assert mission.position is not None, "the mission never got odometry"
    assert not vehicle.paths, "the course went out with nobody to fly its plan"
    # The replanner's publisher and a controller's subscription appear: the course goes out.
    peer.create_publisher(MultiDOFJointTrajectory, "/trajectory", qos.LATCHED)
    peer.create_subscription(MultiDOFJointTrajectory, "/trajectory", lambda _: None, qos.LATCHED)
    vehicle.spin_until_paths(1, 10.0)
    assert len(vehicle.paths) == 1
    sent = np.array([[p.pose.position.x, p.pose.position.y, p.pose.position.z] for p in vehicle.paths[0].poses])
    np.testing.assert_allclose(sent[-1], [2.0, 0.0, 1.0])


@pytest.mark.ros
def test_the_course_is_sent_again_when_the_vehicle_does_not_start_on_its_plan(
    mission_and_peer: tuple[SingleThreadedExecutor, Node, WaypointMission],
) -> None:
    executor, peer, mission = mission_and_peer
    vehicle = HoveringVehicle(executor, peer)
    plan_pub = peer.create_publisher(MultiDOFJointTrajectory, "/trajectory", qos.LATCHED)
    peer.create_subscription(MultiDOFJointTrajectory, "/trajectory", lambda _: None, qos.LATCHED)
    assert vehicle.spin_until_paths(1, 10.0), "the course never went out"
    plan = MultiDOFJointTrajectory()
    plan.header.stamp = ns_to_stamp(vehicle.now_ns)
    plan_pub.publish(plan)  # the replanner answers; the controller (here: nobody) does not fly it
    assert vehicle.spin_until_paths(2, 20.0), "the course was not sent again though the vehicle never moved"
    kinds = [e["kind"] for e in mission.events]
    assert kinds[0] == "course"


@pytest.mark.ros
@pytest.mark.parametrize(
    "mission_and_peer", [(THREE_WAYPOINTS, "replan_count:=1", "replan_interval_s:=0.5")], indirect=True
)
def test_a_move_the_replanner_refuses_is_undone_and_tried_again(
    mission_and_peer: tuple[SingleThreadedExecutor, Node, WaypointMission],
) -> None:
    executor, peer, mission = mission_and_peer
    vehicle = HoveringVehicle(executor, peer)
    plan_pub = peer.create_publisher(MultiDOFJointTrajectory, "/trajectory", qos.LATCHED)
    status_pub = peer.create_publisher(DiagnosticStatus, "/replanner_status", qos.REQUEST)
    peer.create_subscription(MultiDOFJointTrajectory, "/trajectory", lambda _: None, qos.LATCHED)
    course = mission.course.copy()

    def answer_with_a_plan() -> None:
        plan = MultiDOFJointTrajectory()
        plan.header.stamp = ns_to_stamp(vehicle.now_ns)
        plan_pub.publish(plan)

    assert vehicle.spin_until_paths(1, 10.0), "the course never went out"
    answer_with_a_plan()
    spin_without_odometry(executor, lambda: bool(mission.first_plan_ns))
    vehicle.quad.reset(np.array([0.5, 0.0, 1.0]))  # on its way to the first waypoint
    assert vehicle.spin_until_paths(2, 20.0), "the waypoints were never moved"
    assert not np.allclose(mission.course, course), "the move did not change the mission's course"
    assert status_pub.get_subscription_count() == 1, "the mission does not listen to the replanner status"
    status_pub.publish(DiagnosticStatus(level=DiagnosticStatus.ERROR, name="replanner", message="late: test"))
    spin_without_odometry(executor, lambda: mission.awaiting is None)
    assert mission.awaiting is None, "the refusal was not taken as the answer to the move"
    np.testing.assert_array_equal(mission.course, course)  # the vehicle flies on through the old waypoints
    assert mission.moves == 0
    assert vehicle.spin_until_paths(3, 20.0), "the refused move was not tried again"
    answer_with_a_plan()
    spin_without_odometry(executor, lambda: mission.awaiting is None)
    vehicle.spin_until_paths(4, 2.0)  # 2 s of sim time and more: no further move may go out
    assert [e.get("result", "")[:5] for e in mission.events] == ["plann", "error", "plann"]
    assert mission.moves == 1
    assert not np.allclose(mission.course, course)
    assert len(vehicle.paths) == 3, "a move went out after the last one the mission was asked for"


def test_a_waypoint_the_replanner_took_as_reached_counts_as_passed_once_the_next_one_is_reached() -> None:
    """The replanner may take the waypoint ahead of a fast vehicle as reached and fly on to the next one without
    coming within the mission's radius of it: the mission must not wait for it forever (it would never finish)."""
    course = np.array([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0], [6.0, 0.0, 1.0]])
    assert next_waypoint_index(np.array([1.0, 0.0, 1.0]), course, 1, 0.3) == 1  # on the way
    assert next_waypoint_index(np.array([2.0, 0.2, 1.0]), course, 1, 0.3) == 2  # through it
    assert next_waypoint_index(np.array([2.1, 0.6, 1.0]), course, 1, 0.3) == 1  # cut it: not yet passed
    assert next_waypoint_index(np.array([4.0, 0.1, 1.0]), course, 1, 0.3) == 3  # at the next one: both passed
    assert next_waypoint_index(np.array([6.0, 0.0, 1.0]), course, 1, 0.3) == 1  # the goal is two ahead: not a skip
    assert next_waypoint_index(np.array([6.0, 0.0, 1.0]), course, 2, 0.3) == 3  # the goal is never passed
    assert next_waypoint_index(np.array([6.0, 0.0, 1.0]), course, 3, 0.3) == 3

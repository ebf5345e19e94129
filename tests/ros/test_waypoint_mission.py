"""The `waypoint_mission` node holds its course until a controller can hear the plan it asks for.

A controller that joins after the plan went out gets the latched plan late and refuses it as stale,
so the vehicle would hover while the mission counts its replans (a demo run on a loaded machine
failed that way).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np
import pytest
import rclpy
from nav_msgs.msg import Odometry, Path
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from trajectory_msgs.msg import MultiDOFJointTrajectory

from mfrl import qos
from mfrl.conversions import ns_to_stamp, odometry_message
from mfrl.waypoint_mission import WaypointMission
from quadsim.mujoco_vehicle import MujocoQuadrotor


@pytest.fixture
def mission_and_peer(ros_env: dict[str, str]) -> Iterator[tuple[SingleThreadedExecutor, Node, WaypointMission]]:
    """The mission (course of two waypoints) and a test node, on one executor in this test's domain."""
    args = ["--ros-args", "-p", "course:=[0.0, 0.0, 1.0, 2.0, 0.0, 1.0]", "-p", "trajectory_subscribers:=1"]
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

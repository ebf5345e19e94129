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
from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry, Path
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from trajectory_msgs.msg import MultiDOFJointTrajectory

from mfrl import qos
from mfrl.conversions import odometry_message
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


@pytest.mark.ros
def test_the_course_waits_for_a_controller_on_the_trajectory_topic(
    mission_and_peer: tuple[SingleThreadedExecutor, Node, WaypointMission],
) -> None:
    executor, peer, mission = mission_and_peer
    paths: list[Path] = []
    peer.create_subscription(Path, "/waypoints", paths.append, qos.REQUEST)  # the replanner's ear
    odom_pub = peer.create_publisher(Odometry, "/odom", qos.SENSOR)
    quad = MujocoQuadrotor()
    quad.reset(np.array([0.0, 0.0, 1.0]))

    def spin(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        tick = 0
        while time.monotonic() < deadline and not paths:
            tick += 1
            odom_pub.publish(odometry_message(quad.state(), "world", "base_link", Time(nanosec=tick * 1000)))
            executor.spin_once(timeout_sec=0.02)

    spin(3.0)
    assert mission.position is not None, "the mission never got odometry"
    assert not paths, "the course went out with nobody to fly its plan"
    # The replanner's publisher and a controller's subscription appear: the course goes out.
    peer.create_publisher(MultiDOFJointTrajectory, "/trajectory", qos.LATCHED)
    peer.create_subscription(MultiDOFJointTrajectory, "/trajectory", lambda _: None, qos.LATCHED)
    spin(10.0)
    assert len(paths) == 1
    sent = np.array([[p.pose.position.x, p.pose.position.y, p.pose.position.z] for p in paths[0].poses])
    np.testing.assert_allclose(sent[-1], [2.0, 0.0, 1.0])


@pytest.mark.ros
def test_the_course_is_sent_again_when_the_vehicle_does_not_start_on_its_plan(
    mission_and_peer: tuple[SingleThreadedExecutor, Node, WaypointMission],
) -> None:
    executor, peer, mission = mission_and_peer
    paths: list[Path] = []
    peer.create_subscription(Path, "/waypoints", paths.append, qos.REQUEST)
    odom_pub = peer.create_publisher(Odometry, "/odom", qos.SENSOR)
    plan_pub = peer.create_publisher(MultiDOFJointTrajectory, "/trajectory", qos.LATCHED)
    peer.create_subscription(MultiDOFJointTrajectory, "/trajectory", lambda _: None, qos.LATCHED)
    quad = MujocoQuadrotor()
    quad.reset(np.array([0.0, 0.0, 1.0]))
    clock = {"ns": 0}

    def spin_until(count: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(paths) < count:
            clock["ns"] += 20_000_000  # 20 ms of sim time per spin: the vehicle hovers where it is
            stamp = Time(sec=clock["ns"] // 1_000_000_000, nanosec=clock["ns"] % 1_000_000_000)
            odom_pub.publish(odometry_message(quad.state(), "world", "base_link", stamp))
            executor.spin_once(timeout_sec=0.01)
        return len(paths) >= count

    assert spin_until(1, 10.0), "the course never went out"
    plan = MultiDOFJointTrajectory()
    plan.header.stamp = Time(sec=clock["ns"] // 1_000_000_000, nanosec=clock["ns"] % 1_000_000_000)
    plan_pub.publish(plan)  # the replanner answers; the controller (here: nobody) does not fly it
    assert spin_until(2, 20.0), "the course was not sent again though the vehicle never moved"
    kinds = [e["kind"] for e in mission.events]
    assert kinds[0] == "course"

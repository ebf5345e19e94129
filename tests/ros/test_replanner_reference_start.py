"""Replans start from the reference the vehicle is flying (the new plan continues the old one); far off it, odometry.

Through the real replanner (mode "external": this test is the vehicle, publishing `odom` as the sim
would, on the documented QoS, and flying each plan perfectly).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from trajectory_msgs.msg import MultiDOFJointTrajectory

from mfrl import qos
from mfrl.conversions import path_from_points
from mfrl.trajectory_wire import WireTrajectory, read_trajectory
from mfrl_graph.graph import GraphOptions, build_graph
from mfrl_graph.runner import GraphProcesses

from .conftest import RosPeer

COURSE = np.array([[0.0, 0.0, 2.5], [2.0, 1.0, 3.0], [4.0, -1.0, 3.5], [6.0, 0.0, 3.0]])
"""High enough that no replan this test makes comes near the ground clearance, whenever a loaded machine lets it
happen: the test is about where replans start, not about refusals (with the course at 1-2 m, a replan was refused
for ground clearance once under CI's load)."""


@pytest.fixture
def replanner(ros_env: dict[str, str], graph_logs: Path) -> Iterator[GraphProcesses]:
    """The replanner alone; odometry comes from the test."""
    processes = GraphProcesses(build_graph("replanner", GraphOptions(mode="external")), env=ros_env, log_dir=graph_logs)
    processes.start()
    try:
        yield processes
    finally:
        processes.stop()


class Vehicle:
    """The test's side: odometry out, paths out, trajectories and statuses in."""

    def __init__(self, peer: RosPeer) -> None:
        self.peer = peer
        node = peer.node
        self.trajectories: list[WireTrajectory] = []
        self.statuses: list[DiagnosticStatus] = []
        node.create_subscription(
            MultiDOFJointTrajectory,
            "/trajectory",
            lambda data: self.trajectories.append(read_trajectory(data)),
            qos.LATCHED,
            raw=True,
        )
        node.create_subscription(DiagnosticStatus, "/replanner/status", self.statuses.append, qos.STATUS)
        self.odometry = node.create_publisher(Odometry, "/odom", qos.SENSOR)
        self.paths = node.create_publisher(PathMsg, "/waypoints", qos.WAYPOINTS)
        assert peer.spin_until(
            lambda: self.odometry.get_subscription_count() > 0 and self.paths.get_subscription_count() > 0, 30.0
        ), "the replanner never subscribed"

    def now_ns(self) -> int:
        return int(self.peer.node.get_clock().now().nanoseconds)

    def send_odometry(self, position: np.ndarray, velocity: np.ndarray) -> None:
        msg = Odometry()
        msg.header.frame_id, msg.child_frame_id = "world", "base_link"
        msg.header.stamp = self.peer.node.get_clock().now().to_msg()
        p = msg.pose.pose.position
        p.x, p.y, p.z = (float(v) for v in position[:3])
        msg.pose.pose.orientation.w = 1.0  # level: the body-frame twist is the world velocity
        v = msg.twist.twist.linear
        v.x, v.y, v.z = (float(x) for x in velocity[:3])
        self.odometry.publish(msg)

    def fly(self, state: object, seconds: float) -> None:
        """Publish odometry at 50 Hz for `seconds`: `state()` gives (position, velocity) now."""
        end = self.now_ns() + int(seconds * 1e9)
        while self.now_ns() < end:
            position, velocity = state()  # type: ignore[operator]
            self.send_odometry(position, velocity)
            self.peer.spin_until(lambda: False, 0.02)

    def plan(self, course: np.ndarray, state: object) -> tuple[WireTrajectory, dict[str, str]]:
        """Send a path while flying `state`; the trajectory that answers it and its status values. A path refused
        as "behind" or "late" (a loaded machine starved the node) is sent again, as the node asks a client to."""
        count, self.statuses[:] = len(self.trajectories), []
        self.paths.publish(path_from_points(course, "world", Time()))
        end = self.now_ns() + int(10e9)
        while self.now_ns() < end and len(self.trajectories) <= count:
            self.fly(state, 0.02)
            if any(s.message.startswith(("path refused: behind", "path refused: late")) for s in self.statuses):
                self.statuses[:] = []
                self.paths.publish(path_from_points(course, "world", Time()))
        assert len(self.trajectories) > count, [s.message for s in self.statuses]
        assert self.peer.spin_until(lambda: any(s.message == "planned" for s in self.statuses), 5.0)
        status = next(s for s in self.statuses if s.message == "planned")
        return self.trajectories[-1], {kv.key: kv.value for kv in status.values}


def reference(trajectory: WireTrajectory, now_ns: int) -> tuple[np.ndarray, np.ndarray]:
    d = trajectory.sampled.derivatives((now_ns - trajectory.stamp_ns) * 1e-9)
    return d[0, :3], d[1, :3]


@pytest.mark.ros
def test_a_replan_continues_the_flown_plan_and_falls_back_to_odometry_far_from_it(
    replanner: GraphProcesses, ros_peer: RosPeer
) -> None:
    vehicle = Vehicle(ros_peer)
    hover = COURSE[0].copy()

    def at_hover() -> tuple[np.ndarray, np.ndarray]:
        return hover, np.zeros(3)

    # The first plan: once the replanner is active (it loads the policy), it plans from the hovering vehicle
    # (odometry first, so that the first path finds it fresh rather than planning from the path's first pose).
    vehicle.fly(at_hover, 0.5)
    for _ in range(60):
        vehicle.paths.publish(path_from_points(COURSE, "world", Time()))
        vehicle.fly(at_hover, 0.5)
        if vehicle.trajectories:
            break
    assert vehicle.trajectories, "the replanner never planned"
    vehicle.fly(at_hover, 0.3)  # answers to repeated paths: the last one is the plan being flown
    first = vehicle.trajectories[-1]
    assert any(kv.key == "start" and kv.value == "odometry" for s in vehicle.statuses for kv in s.values)
    np.testing.assert_allclose(first.sampled.values[0, 0, :3], hover, atol=1e-9)

    # The vehicle flies it perfectly for a while (its odometry is the plan's reference), then a new path comes.
    def on_first() -> tuple[np.ndarray, np.ndarray]:
        return reference(first, vehicle.now_ns())

    vehicle.fly(on_first, 0.6)
    # the goals after the next one move (moving the next one too, just before the vehicle passes it, can need
    # more than the certificate's tilt: the planner then refuses, rightly)
    moved = COURSE.copy()
    moved[2:] += np.array([0.0, 0.5, 0.2])
    second, values = vehicle.plan(moved, on_first)
    assert values["start"] == "reference"
    assert int(values["plan_stamp_ns"]) == second.stamp_ns
    assert "repair" in values  # the planner's repair, if one was needed, is the user's to see (e.g. a skipped waypoint)
    replan_s = (second.stamp_ns - first.stamp_ns) * 1e-9
    assert 0.5 < replan_s < first.sampled.duration_s
    # The new plan's t = 0 is the old plan's reference at the replan time: no jump in position or velocity.
    old = first.sampled.derivatives(replan_s)
    new = second.sampled.derivatives(0.0)
    assert np.linalg.norm(old[1, :3]) > 0.3, "the first plan should be moving at the replan time"
    np.testing.assert_allclose(new[0, :3], old[0, :3], atol=2e-3)
    np.testing.assert_allclose(new[1, :3], old[1, :3], atol=1e-2)
    np.testing.assert_allclose(new[2, :3], old[2, :3], atol=5e-2)

    # 2 m off the reference: the vehicle is not flying the plan; the replan starts where it is.
    off = np.array([2.0, 0.0, 0.0])

    def off_second() -> tuple[np.ndarray, np.ndarray]:
        position, _ = reference(second, vehicle.now_ns())
        return position + off, np.array([0.3, 0.0, 0.0])

    vehicle.fly(off_second, 0.2)
    third, values = vehicle.plan(COURSE + np.array([0.0, -0.5, 0.1]), off_second)
    assert values["start"] == "odometry"
    start = third.sampled.values[:, 0, :3]
    sent_at = reference(second, third.stamp_ns)[0] + off
    np.testing.assert_allclose(start[0], sent_at, atol=0.05)  # the odometry sample it planned from
    np.testing.assert_allclose(start[1], [0.3, 0.0, 0.0], atol=1e-9)  # its velocity ...
    np.testing.assert_allclose(start[2], np.zeros(3), atol=1e-9)  # ... and zero acceleration
    assert replanner.processes["replanner"].poll() is None

"""The graph in vehicle mode flies a PX4 vehicle: replanner + px4_bridge + the simulated PX4 (px4sim, MuJoCo).

An operator (this test) arms and takes off through the bridge's services, sends a waypoint course and,
mid-flight, a moved one; the bridge switches to OFFBOARD after the setpoint stream PX4 needs and flies each
plan; the operator lands. The same as the Step 3 mission, over MAVLink instead of the simulator's topics.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from std_srvs.srv import Trigger

pytest.importorskip("pymavlink")
pytest.importorskip("mujoco")

from mfrl import qos
from mfrl.conversions import path_from_points
from mfrl_graph.graph import GraphOptions, build_graph
from mfrl_graph.runner import GraphProcesses
from px4sim.autopilot import Px4SimConfig, SimulatedPx4

from .conftest import RosPeer

pytestmark = [pytest.mark.ros, pytest.mark.mavlink, pytest.mark.sim, pytest.mark.slow]

COURSE = np.array([[1.5, 1.0, 2.5], [3.0, -0.5, 2.0]])
MOVED_GOAL = np.array([2.0, -2.0, 2.5])


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Operator:
    """The test's node: calls the bridge's services, sends courses, records odometry and failsafes."""

    def __init__(self, peer: RosPeer) -> None:
        self.peer = peer
        node = peer.node
        self.odom: list[tuple[float, np.ndarray, np.ndarray]] = []
        self.failsafes: list[str] = []
        self.errors: list[str] = []
        self.plan_starts: list[str] = []  # the replanner's `start` of each plan ("reference", "odometry", ...)
        node.create_subscription(Odometry, "/odom", self._on_odom, qos.SENSOR)
        node.create_subscription(DiagnosticStatus, "/px4_bridge/failsafe", self._on_failsafe, qos.REQUEST)
        node.create_subscription(DiagnosticStatus, "/px4_bridge/status", self._on_error, qos.REQUEST)
        node.create_subscription(DiagnosticStatus, "/replanner/status", self._on_error, qos.REQUEST)
        self.waypoints = node.create_publisher(PathMsg, "/waypoints", qos.REQUEST)
        self.clients = {n: node.create_client(Trigger, f"/px4_bridge/{n}") for n in ("arm", "takeoff", "land")}

    def _on_odom(self, msg: Odometry) -> None:
        p, v = msg.pose.pose.position, msg.twist.twist.linear
        self.odom.append((time.monotonic(), np.array([p.x, p.y, p.z]), np.array([v.x, v.y, v.z])))

    def _on_failsafe(self, msg: DiagnosticStatus) -> None:
        self.failsafes.append(msg.message)

    def _on_error(self, msg: DiagnosticStatus) -> None:
        if msg.level == DiagnosticStatus.ERROR:
            self.errors.append(msg.message)
        keys = ("start", "reference_deviation_m", "resynchronised")
        self.plan_starts += [kv.value for kv in msg.values if kv.key in keys]

    def position(self) -> np.ndarray:
        return self.odom[-1][1]

    def call(self, name: str, timeout_s: float = 20.0) -> Trigger.Response:
        client = self.clients[name]
        assert self.peer.spin_until(client.service_is_ready, 20.0), f"no /px4_bridge/{name} service"
        future = client.call_async(Trigger.Request())
        assert self.peer.spin_until(future.done, timeout_s), f"/px4_bridge/{name} did not answer"
        response = future.result()
        assert response is not None
        return response

    def send_course(self, points: np.ndarray, stamp_s: int) -> None:
        start = np.vstack([self.position(), points])  # the first pose is replaced by the vehicle's state
        self.waypoints.publish(path_from_points(start, "world", Time(sec=stamp_s)))

    def near(self, goal: np.ndarray, tolerance_m: float) -> bool:
        return bool(self.odom) and float(np.linalg.norm(self.position() - goal)) < tolerance_m


@pytest.fixture
def vehicle_graph(ros_env: dict[str, str], graph_logs: Path) -> Iterator[SimulatedPx4]:
    """px4sim sending to a free port, and the replanner graph in vehicle mode listening on it."""
    port = _free_udp_port()
    vehicle = SimulatedPx4(Px4SimConfig(url=f"udpout:127.0.0.1:{port}"))
    vehicle.start()
    options = GraphOptions(mode="vehicle", vehicle_url=f"udpin:127.0.0.1:{port}", viewer=False)
    processes = GraphProcesses(build_graph("replanner", options), env=ros_env, log_dir=graph_logs)
    processes.start()
    try:
        yield vehicle
    finally:
        processes.stop()
        vehicle.stop()


def _send_until_not_behind(op: Operator, ros_peer: RosPeer, course: np.ndarray, seq: int) -> None:
    """Send `course`; on a loaded machine the replanner may refuse it as "behind" its inputs, and its documented
    answer is to send the path again: do so, up to three times (any other refusal stays in `op.errors`)."""
    op.send_course(course, seq)
    for attempt in range(1, 4):
        ros_peer.spin_until(lambda: bool(op.errors), 1.0)
        if not any("behind" in e for e in op.errors):
            return
        op.errors.clear()
        op.send_course(course, seq + attempt)


def test_operator_flies_a_course_and_a_replan_through_px4(vehicle_graph: SimulatedPx4, ros_peer: RosPeer) -> None:
    vehicle = vehicle_graph
    op = Operator(ros_peer)
    assert ros_peer.spin_until(lambda: len(op.odom) > 20, 30.0), "no odometry from px4_bridge"

    # As at a ground station: the vehicle is "not ready" until its first heartbeat and estimator status
    # have arrived (1 Hz streams); arming is refused with that reason until then, and then accepted.
    deadline = time.monotonic() + 15.0
    armed = op.call("arm")
    while not armed.success and time.monotonic() < deadline:
        assert "no heartbeat" in armed.message or "no ESTIMATOR_STATUS" in armed.message, armed.message
        ros_peer.spin_until(lambda: False, 0.5)
        armed = op.call("arm")
    assert armed.success, armed.message
    op.errors.clear()  # the refusals above were the expected "not ready yet"; from here on none is
    takeoff = op.call("takeoff")
    assert takeoff.success, takeoff.message
    assert ros_peer.spin_until(lambda: op.position()[2] > 1.7, 20.0), f"no climb: {op.position()}"

    assert ros_peer.spin_until(lambda: op.waypoints.get_subscription_count() > 0, 20.0), "replanner not listening"
    _send_until_not_behind(op, ros_peer, COURSE, 100)
    assert ros_peer.spin_until(lambda: vehicle.snapshot().mode.name == "OFFBOARD", 10.0), op.errors
    # Mid-course (past the first waypoint), move the goal: the vehicle replans in the air.
    assert ros_peer.spin_until(lambda: op.near(COURSE[0], 0.6), 30.0), f"first waypoint not reached: {op.position()}"
    replan_at = time.monotonic()
    _send_until_not_behind(op, ros_peer, MOVED_GOAL[None, :], 110)
    assert ros_peer.spin_until(lambda: op.near(MOVED_GOAL, 0.25), 40.0), f"moved goal not reached: {op.position()}"
    assert not op.failsafes, op.failsafes
    assert not op.errors, op.errors

    # The replan kept the vehicle's velocity continuous (no jump across the switch).
    t = np.array([o[0] for o in op.odom])
    v = np.array([o[2] for o in op.odom])
    window = (t > replan_at - 0.5) & (t < replan_at + 2.0)
    dv = np.linalg.norm(np.diff(v[window], axis=0), axis=1)
    dt = np.diff(t[window])
    assert (dv <= 25.0 * np.maximum(dt, 0.02)).all(), f"velocity step {dv.max():.2f} m/s; plan starts {op.plan_starts}"

    landed = op.call("land")
    assert landed.success, landed.message
    assert ros_peer.spin_until(lambda: not vehicle.snapshot().armed, 30.0), "did not land and disarm"

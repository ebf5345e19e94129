"""The `policy_controller` node: bad odometry gives a hold and an ERROR status, never a crash; good odometry a command.

The pure part (`PolicyCommander`) is flown in closed loop on the MuJoCo vehicle; the node itself runs
in this process on its own domain, with a test node publishing odometry and trajectories.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels (extra `ros`) are not installed")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import WrenchStamped  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from numpy.typing import NDArray  # noqa: E402
from trajectory_msgs.msg import MultiDOFJointTrajectory  # noqa: E402

from mfrl import qos  # noqa: E402
from mfrl.conversions import OdometryState, odometry_message  # noqa: E402
from mfrl.policy_controller import PolicyCommander, PolicyController, load_controller_policy  # noqa: E402
from mfrl.trajectory_wire import write_trajectory  # noqa: E402
from minsnap import solve_min_snap  # noqa: E402
from minsnap.allocation import constant_speed_times  # noqa: E402
from quadsim.follower import TrajectoryFollower  # noqa: E402
from quadsim.mujoco_vehicle import MujocoQuadrotor, VehicleState  # noqa: E402
from quadsim.sampled_trajectory import SampledTrajectory  # noqa: E402
from quadsim.tracking_env import TrackingEnvConfig  # noqa: E402
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams  # noqa: E402

from .conftest import LocalNodes  # noqa: E402

VEHICLE = VehicleParams()
HOVER_N = VEHICLE.mass_kg * GRAVITY_M_S2
CHECKPOINTS = Path(__file__).resolve().parents[2] / "learning" / "policyopt" / "checkpoints"
COURSE = np.array([[0.0, 0.0, 1.0, 0.0], [2.0, 1.0, 1.5, 0.5], [3.0, -1.0, 1.2, 1.0]])


def _plan() -> SampledTrajectory:
    trajectory = solve_min_snap(COURSE, constant_speed_times(COURSE, 1.0))
    return SampledTrajectory.from_trajectory(trajectory, 4)


def _odometry_state(state: VehicleState, stamp_ns: int) -> OdometryState:
    return OdometryState(stamp_ns, state.position_m, state.velocity_m_s, state.rotation, state.body_rates_rad_s)


class _NaNPolicy:
    def act(self, obs: NDArray[np.float32]) -> NDArray[Any]:
        return np.full(4, np.nan)


def _fly(commander: PolicyCommander, plan: SampledTrajectory, seconds: float) -> float:
    """Fly the commander on MuJoCo at 250 Hz from the plan's start; return the RMS position error."""
    quad = MujocoQuadrotor(VEHICLE)
    quad.reset(plan.values[0, 0, :3], float(plan.values[0, 0, 3]))
    commander.follower.accept(plan, 0.0, 0.0)
    errors = []
    for k in range(round(seconds * 250)):
        state = quad.state()
        command = commander.command(_odometry_state(state, k * 4_000_000), 1.0 / 50.0)
        assert not command.hold_reason
        quad.set_wrench(command.thrust_n, command.torque_nm)
        quad.step(0.004)
        reference = plan.derivatives(k * 0.004)[0, :3]
        errors.append(float(np.linalg.norm(state.position_m - reference)))
    return math.sqrt(float(np.mean(np.square(errors))))


@pytest.mark.parametrize("checkpoint", ["geometric", *(str(p) for p in sorted(CHECKPOINTS.glob("*_tracking.pt")))])
def test_commander_tracks_a_plan_in_closed_loop(checkpoint: str) -> None:
    config = TrackingEnvConfig()
    policy = load_controller_policy(checkpoint, config, VEHICLE)
    commander = PolicyCommander(policy, VEHICLE, config, TrajectoryFollower(VEHICLE))
    plan = _plan()
    assert _fly(commander, plan, plan.duration_s + 1.0) < 0.25


def test_commander_flies_a_plan_that_arrived_before_its_start() -> None:
    """The replanner sends plans ahead of their start (its lead grows with load); the controller's look-ahead
    must not swallow such a plan: at its start the vehicle follows it (CI at fa7b4ea lost the moved course)."""
    config = TrackingEnvConfig()
    policy = load_controller_policy("geometric", config, VEHICLE)
    commander = PolicyCommander(policy, VEHICLE, config, TrajectoryFollower(VEHICLE))
    plan = _plan()
    start_s = 0.4
    assert commander.follower.accept(plan, start_s, 0.0) == ""
    at_rest = (plan.values[0, 0, :3], np.zeros(3), np.eye(3), np.zeros(3))
    for k in range(1, 60):  # 10 ms odometry from 10 ms to 0.59 s, through the plan's start
        commander.command(OdometryState(k * 10_000_000, *at_rest), 1.0 / 50.0)
    assert commander.follower.plan_start_s == pytest.approx(start_s)
    assert commander.follower.mode(0.6) == "tracking"


def test_commander_holds_on_nan_odometry_and_nan_policy_output() -> None:
    config = TrackingEnvConfig()
    commander = PolicyCommander(_NaNPolicy(), VEHICLE, config, TrajectoryFollower(VEHICLE))
    tilt = 0.2
    rotation = np.array([[1.0, 0, 0], [0, math.cos(tilt), -math.sin(tilt)], [0, math.sin(tilt), math.cos(tilt)]])
    good = OdometryState(10**9, np.array([0.0, 0.0, 1.0]), np.zeros(3), rotation, np.zeros(3))
    command = commander.command(good, 0.02)
    assert "policy output" in command.hold_reason
    assert command.thrust_n == pytest.approx(HOVER_N)
    assert command.torque_nm[0] < 0  # rolled +x: the hold rolls back
    bad = OdometryState(10**9, np.array([np.nan, 0.0, 1.0]), np.zeros(3), rotation, np.zeros(3))
    command = commander.command(bad, 0.02)
    assert "not finite" in command.hold_reason
    assert np.isfinite(command.torque_nm).all()


def test_missing_checkpoint_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="no policy checkpoint"):
        load_controller_policy("/nonexistent/policy.pt", TrackingEnvConfig(), VEHICLE)


@pytest.fixture
def graph(local_nodes: LocalNodes) -> tuple[PolicyController, Any, LocalNodes]:
    """The node and a test node in this process, on a domain of their own."""
    node = local_nodes.add(PolicyController())
    assert isinstance(node, PolicyController)
    return node, local_nodes.peer, local_nodes


@pytest.mark.ros
def test_nan_odometry_gives_hold_and_error_status_and_the_node_keeps_running(
    graph: tuple[PolicyController, Any, LocalNodes],
) -> None:
    node, peer, executor = graph
    commands: list[WrenchStamped] = []
    statuses: list[DiagnosticStatus] = []
    diagnostics: list[DiagnosticArray] = []
    peer.create_subscription(WrenchStamped, "/cmd_wrench", commands.append, qos.COMMAND)
    peer.create_subscription(DiagnosticStatus, "/policy_controller/status", statuses.append, qos.REQUEST)
    peer.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, qos.REQUEST)
    references: list[Odometry] = []
    peer.create_subscription(Odometry, "/policy_controller/reference", references.append, qos.REQUEST)
    odom_pub = peer.create_publisher(Odometry, "/odom", qos.SENSOR)
    trajectory_pub = peer.create_publisher(MultiDOFJointTrajectory, "/trajectory", qos.LATCHED)
    assert executor.spin_until(lambda: node.active and odom_pub.get_subscription_count() > 0, 10.0)
    trajectory_pub.publish(write_trajectory(_plan(), "world", 10**9))  # raw CDR bytes, as the replanner sends

    quad = MujocoQuadrotor(VEHICLE)
    quad.reset(COURSE[0, :3])

    def send(stamp_s: float, nan: bool = False) -> WrenchStamped:
        msg = odometry_message(quad.state(), "world", "base_link", Time(sec=int(stamp_s), nanosec=0))
        if nan:
            msg.pose.pose.position.x = float("nan")
            msg.twist.twist.angular.y = float("nan")
        count = len(commands)
        odom_pub.publish(msg)
        assert executor.spin_until(lambda: len(commands) > count, 5.0), "no command for the odometry"
        return commands[-1]

    good = send(1.0)
    values = [good.wrench.force.z, good.wrench.torque.x, good.wrench.torque.y, good.wrench.torque.z]
    assert all(math.isfinite(v) for v in values)
    assert 0.3 * HOVER_N < good.wrench.force.z < 3.0 * HOVER_N
    assert executor.spin_until(lambda: node.inbox.plans == 1, 5.0), "the trajectory was not taken"
    assert executor.spin_until(lambda: bool(references), 5.0), "no reference published"
    assert references[-1].pose.pose.position.z == pytest.approx(COURSE[0, 2], abs=1e-6)  # the hold at the start

    hold = send(2.0, nan=True)
    assert hold.wrench.force.z == pytest.approx(HOVER_N)
    assert (hold.wrench.torque.x, hold.wrench.torque.y, hold.wrench.torque.z) == (0.0, 0.0, 0.0)
    assert executor.spin_until(lambda: any(s.level == DiagnosticStatus.ERROR for s in statuses), 5.0)
    assert "not finite" in next(s.message for s in statuses if s.level == DiagnosticStatus.ERROR)

    again = send(3.0)  # still running, and flying the policy again
    assert all(math.isfinite(v) for v in (again.wrench.force.z, again.wrench.torque.x, again.wrench.torque.y))
    assert executor.spin_until(lambda: statuses[-1].level == DiagnosticStatus.OK, 5.0)

    def ours() -> list[DiagnosticStatus]:
        return [s for d in diagnostics for s in d.status if s.name == "mfrl: policy_controller"]

    assert executor.spin_until(lambda: bool(ours()), 3.0), "no /diagnostics from the node within 3 s"
    keys = {kv.key for kv in ours()[-1].values}
    assert {"tracking_error_m", "hold_commands", "state"} <= keys
    holds = next(kv.value for kv in ours()[-1].values if kv.key == "hold_commands")
    assert int(holds) >= 1  # the NaN odometry's hold is counted where an operator sees it

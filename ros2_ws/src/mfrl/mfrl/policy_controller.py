"""The `policy_controller` node: a learned CTBR policy (PROPS, MDPO, ...) as the tracking controller.

A drop-in replacement for `tracker`: the same inputs (`odom`, the raw `trajectory`) and outputs
(`cmd_wrench`, stamped like the odometry; the reference followed on `~/reference`). The reference
comes from `quadsim.follower` as in the tracker; the observation is the tracking env's
(`quadsim.tracking_env.tracking_observation`), so the policy sees what it saw in training. The
policy acts at `policy_rate_hz` (its training rate); on every odometry message the body-rate loop
(`quadsim.rate_controller`) turns its latest collective thrust and body-rate command into the wrench.

Lifecycle: configuring loads the policy (`policyopt.checkpoint.load_policy`, or the geometric CTBR
baseline for `checkpoint: geometric`); a file that is not a policyopt policy (nothing in it is
unpickled, so a crafted one cannot run code) fails the transition with a one-line reason on `~/status`
and in the log, and the node stays up. Activating starts the policy. Until then, and whenever the
odometry or the policy's output is not finite, the command is a hold: hover thrust, levelling the
vehicle when its attitude is known (no torque otherwise), with an ERROR on `~/status` (at most once
a second while it lasts, and again when it clears) and a log line; the node never stops on bad input.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import WrenchStamped
from nav_msgs.msg import Odometry
from numpy.typing import NDArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from trajectory_msgs.msg import MultiDOFJointTrajectory

from mfrl import qos
from mfrl.configs import PolicyControllerConfig
from mfrl.conversions import (
    OdometryState,
    diagnostic_status,
    diagnostics_message,
    odometry_state,
    reference_message,
    wrench_message,
)
from mfrl.node_main import run_node
from mfrl.parameters import ConfigParameters
from mfrl.plan_inbox import PlanInbox
from quadsim.follower import FollowerConfig, TrajectoryFollower
from quadsim.frames import yaw_of
from quadsim.rate_controller import RateController
from quadsim.tracking_env import GeometricCTBRPolicy, TrackingEnvConfig, action_to_ctbr, tracking_observation
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

GEOMETRIC = "geometric"
"""The `checkpoint` value that flies the geometric CTBR baseline instead of a learned policy."""

LEVELLING_GAIN_PER_S = 5.0
"""Body-rate command per radian of tilt in a hold (levels the vehicle when its attitude is known)."""

STATUS_PERIOD_S = 1.0
"""An ongoing error is reported on ~/status at most this often."""


class Policy(Protocol):
    """What the node needs of a policy: a deterministic action for one observation."""

    def act(self, obs: NDArray[np.float32]) -> NDArray[Any]:
        """Action (`4`, normalised CTBR) for one observation."""
        ...


def load_controller_policy(checkpoint: str, env_config: TrackingEnvConfig, vehicle: VehicleParams) -> Policy:
    """The policy of a checkpoint file, or the geometric baseline for "geometric"."""
    if checkpoint == GEOMETRIC:
        return GeometricCTBRPolicy(vehicle=vehicle, config=env_config)
    from policyopt.checkpoint import load_policy  # torch and the trainers only when a model is flown

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"no policy checkpoint at {path}")
    policy: Policy = load_policy(path)
    return policy


@dataclass(frozen=True)
class Command:
    """One control command: collective thrust (N), body torques (N m), and why it is a hold ("" if not)."""

    thrust_n: float
    torque_nm: NDArray[np.float64]
    hold_reason: str = ""


class PolicyCommander:
    """From odometry to a wrench: reference, observation, policy at its rate, body-rate loop (no ROS here)."""

    def __init__(
        self, policy: Policy | None, vehicle: VehicleParams, env_config: TrackingEnvConfig, follower: TrajectoryFollower
    ) -> None:
        self.policy = policy
        self.vehicle = vehicle
        self.env_config = env_config
        self.follower = follower
        self.rate_controller = RateController(vehicle)
        self.hover_n = vehicle.mass_kg * GRAVITY_M_S2
        self._ctbr: tuple[float, NDArray[np.float64]] | None = None
        self._last_policy_s = -math.inf
        self.policy_ms = 0.0
        self.tracking_error_m = 0.0

    def reset(self) -> None:
        """Forget the last action (the next odometry runs the policy)."""
        self._ctbr, self._last_policy_s = None, -math.inf

    def command(self, state: OdometryState, period_s: float) -> Command:
        """The command for this odometry; the policy runs when `period_s` has passed since its last action."""
        if not state.is_finite():
            self.reset()
            return self.hold(None, "odometry is not finite")
        now_s = state.stamp_ns * 1e-9
        if self.follower.mode(now_s) == "idle":
            self.follower.hold_at(state.position_m, yaw_of(state.rotation))
        if self.policy is None:
            return self.hold(state, "no policy: the node is not active")
        if self._ctbr is None or now_s - self._last_policy_s >= period_s - 1e-6 or now_s < self._last_policy_s:
            obs = self.observation(state, now_s)
            started = time.perf_counter()
            try:
                action = np.asarray(self.policy.act(obs), dtype=np.float64).reshape(-1)
            except ValueError as exc:  # e.g. policyopt's PolicyInputError on an observation it cannot take
                self.reset()
                return self.hold(state, f"policy refused the observation: {exc}")
            self.policy_ms = 1e3 * (time.perf_counter() - started)
            if action.shape != (4,) or not np.isfinite(action).all():
                self.reset()
                return self.hold(state, f"policy output is not 4 finite numbers: {action.tolist()}")
            self._ctbr = action_to_ctbr(action, self.vehicle, self.env_config)
            self._last_policy_s = now_s
        thrust, rates = self._ctbr
        thrust, torque = self.rate_controller.wrench(thrust, rates, state.body_rates_rad_s)
        return Command(thrust, torque)

    def observation(self, state: OdometryState, now_s: float) -> NDArray[np.float32]:
        """The tracking env's observation for this state and the follower's reference."""
        reference = self.follower.flat_outputs(now_s)[:3]
        self.tracking_error_m = float(np.linalg.norm(state.position_m - reference[0, :3]))
        # A preview: looking ahead must neither end a blend early nor start (and so lose) a plan waiting for its start.
        dt = self.env_config.policy_dt_s
        steps = np.asarray(self.env_config.lookahead_steps, dtype=np.float64)
        ahead = self.follower.preview(now_s + dt * steps)[:, 0, :3]
        return tracking_observation(
            state.position_m, state.velocity_m_s, state.rotation, state.body_rates_rad_s, reference, ahead
        )

    def hold(self, state: OdometryState | None, reason: str) -> Command:
        """Hover thrust; torque that levels the vehicle if its attitude and rates are finite, else none."""
        if state is None or not (np.isfinite(state.rotation).all() and np.isfinite(state.body_rates_rad_s).all()):
            return Command(self.hover_n, np.zeros(3), reason)
        up_in_body = state.rotation[2, :]  # world z in the body frame
        rates = LEVELLING_GAIN_PER_S * np.array([-up_in_body[1], up_in_body[0], 0.0])  # turns up_in_body to +z
        thrust, torque = self.rate_controller.wrench(self.hover_n, rates, state.body_rates_rad_s)
        return Command(thrust, torque, reason)


class PolicyController(LifecycleNode):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("policy_controller")
        self.exit_code: int | None = None
        self.params = ConfigParameters(
            self, PolicyControllerConfig, on_change=self.apply_config, read_only=("autostart", "diagnostics_period_s")
        )
        self.vehicle = VehicleParams()
        config = self.config
        self.env_config = TrackingEnvConfig()
        follower = TrajectoryFollower(
            self.vehicle, FollowerConfig(config.switch_blend_s, config.max_plan_delay_s, config.max_plan_lead_s)
        )
        self.commander = PolicyCommander(None, self.vehicle, self.env_config, follower)
        self.policy: Policy | None = None
        self.inbox = PlanInbox(follower)
        self.now_ns = 0
        self.max_tracking_error_m = 0.0
        self.holds = 0
        self.error = ""
        self.last_status_s = -math.inf
        self.command_pub = self.create_publisher(WrenchStamped, "cmd_wrench", qos.COMMAND)
        self.status_pub = self.create_publisher(DiagnosticStatus, "~/status", qos.REQUEST)
        self.reference_pub = self.create_publisher(Odometry, "~/reference", qos.REQUEST)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.REQUEST)
        self.create_subscription(Odometry, "odom", self.on_odometry, qos.SENSOR)
        # Raw: the trajectory is read straight from its CDR bytes (see mfrl.trajectory_wire).
        self.create_subscription(MultiDOFJointTrajectory, "trajectory", self.on_trajectory, qos.LATCHED, raw=True)
        self.create_timer(config.diagnostics_period_s, self.publish_diagnostics)
        if config.autostart:
            self._autostart = self.create_timer(0.0, self._run_autostart)

    @property
    def config(self) -> PolicyControllerConfig:
        """The current parameters."""
        config: PolicyControllerConfig = self.params.config
        return config

    def apply_config(self, config: PolicyControllerConfig) -> None:
        """Follower settings apply at once; a new checkpoint on the next configure."""
        if hasattr(self, "commander"):
            self.commander.follower.config = FollowerConfig(
                config.switch_blend_s, config.max_plan_delay_s, config.max_plan_lead_s
            )

    def _run_autostart(self) -> None:
        self._autostart.cancel()
        self.trigger_configure()
        if self._state_machine.current_state[1] == "inactive":
            self.trigger_activate()

    # Lifecycle ---------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the policy."""
        torch.set_num_threads(self.config.torch_threads)
        try:
            self.policy = load_controller_policy(self.config.checkpoint, self.env_config, self.vehicle)
        except Exception as exc:  # a bad file fails the transition with its reason; the node stays up
            reason = " ".join(str(exc).split()) or type(exc).__name__
            self.report_error(f"cannot load the policy {self.config.checkpoint!r}: {reason}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"policy loaded: {self.config.checkpoint}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Fly the policy."""
        self.commander.policy = self.policy
        self.commander.reset()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Hold (hover thrust, level) instead of the policy."""
        self.commander.policy = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Drop the policy."""
        self.commander.policy = None
        self.policy = None
        return super().on_cleanup(state)

    @property
    def active(self) -> bool:
        """Whether the policy is flying."""
        return bool(self._state_machine.current_state[1] == "active")

    # Inputs ------------------------------------------------------------------------------------------------
    def on_trajectory(self, data: bytes) -> None:
        """Switch to a new plan (or keep it until the first odometry gives the time)."""
        reason = self.inbox.receive(data, self.now_ns)
        if reason:
            self.report_error(reason)

    def take_pending(self) -> None:
        """Hand the pending plan to the follower; a stale one is refused and the vehicle holds."""
        reason = self.inbox.hand_over(self.now_ns)
        if reason:
            self.get_logger().warning(reason)

    def on_odometry(self, msg: Odometry) -> None:
        """Answer the odometry with the policy's command (or a hold on bad input); never raise."""
        try:
            state = odometry_state(msg)
            if state.stamp_ns > 0 and state.is_finite():
                self.now_ns = state.stamp_ns
                self.take_pending()
            command = self.commander.command(state, 1.0 / self.config.policy_rate_hz)
        except Exception as exc:  # the vehicle must get a command whatever went wrong
            command = self.commander.hold(None, f"unexpected error: {exc!r}")
        self.publish_command(msg, command)
        if command.hold_reason and self.active:
            self.holds += 1
            self.report_error(f"hold command: {command.hold_reason}")
        elif self.error and not command.hold_reason:
            self.error = ""
            self.last_status_s = -math.inf
            self.status_pub.publish(
                diagnostic_status(self.get_name(), "mfrl", DiagnosticStatus.OK, "tracking with the policy", {})
            )
        if not command.hold_reason:
            self.max_tracking_error_m = max(self.max_tracking_error_m, self.commander.tracking_error_m)
            if self.config.publish_reference and self.now_ns:
                self.publish_reference(msg)

    def publish_reference(self, odom: Odometry) -> None:
        """The reference followed at this step (pose and world-frame velocity), as the tracker publishes it."""
        flat = self.commander.follower.flat_outputs(self.now_ns * 1e-9)
        self.reference_pub.publish(reference_message(odom, self.config.frame_id, flat[0], flat[1], float(flat[0, 3])))

    def publish_command(self, odom: Odometry, command: Command) -> None:
        """The wrench, stamped and framed like the odometry."""
        self.command_pub.publish(wrench_message(odom, command.thrust_n, command.torque_nm))

    def report_error(self, message: str) -> None:
        """Log and publish an ERROR status (an ongoing one at most every STATUS_PERIOD_S)."""
        now_s = time.monotonic()
        if message == self.error and now_s - self.last_status_s < STATUS_PERIOD_S:
            return
        self.error, self.last_status_s = message, now_s
        self.get_logger().error(message)
        self.status_pub.publish(diagnostic_status(self.get_name(), "mfrl", DiagnosticStatus.ERROR, message, {}))

    def publish_diagnostics(self) -> None:
        """State, policy, tracking error, holds and plan counts on /diagnostics."""
        now_s = self.now_ns * 1e-9
        follower = self.commander.follower
        start = follower.plan_start_s
        values: dict[str, object] = {
            "state": self._state_machine.current_state[1],
            "checkpoint": self.config.checkpoint,
            "mode": follower.mode(now_s),
            "plan_age_s": now_s - start if start is not None else "no plan",
            "tracking_error_m": self.commander.tracking_error_m,
            "max_tracking_error_m": self.max_tracking_error_m,
            "policy_ms": self.commander.policy_ms,
            "hold_commands": self.holds,
            "plans": self.inbox.plans,
            "refused_plans": self.inbox.refused,
        }
        if self.error:
            level, message = DiagnosticStatus.ERROR, self.error
        elif not self.active:
            level, message = DiagnosticStatus.WARN, "not active: holding"
        else:
            level, message = DiagnosticStatus.OK, "tracking" if self.now_ns else "no odometry yet"
        stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(diagnostics_message(stamp, self.get_name(), "mfrl", level, message, values))


def main(args: list[str] | None = None) -> int:
    """Entry point of the `policy_controller` executable."""
    return run_node(PolicyController, args)


if __name__ == "__main__":
    raise SystemExit(main())

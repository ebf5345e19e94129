"""The `tracker` node: the geometric SE(3) controller following the latest trajectory.

On each `odom` message it computes the reference at the odometry's time (`quadsim.follower`: the
latest plan, a new one blended in without a jump, a hold at the end or when a plan arrives stale)
and answers with a `cmd_wrench` (collective thrust and body torques) stamped like the odometry.
The reference it followed goes out on `~/reference` (nav_msgs/Odometry, twist in the world frame).
/diagnostics carries the vehicle's envelope (`quadsim.health`): ERROR while the vehicle is far from its
reference, too fast, flipped or on the ground away from the plan; WARN while a problem is recent (bad
odometry, a refused plan, a tracking error above the warning bound); OK otherwise.
"""

from __future__ import annotations

import math

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import WrenchStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from trajectory_msgs.msg import MultiDOFJointTrajectory

from mfrl import qos
from mfrl.configs import TrackerConfig
from mfrl.conversions import diagnostics_message, odometry_state, reference_message, wrench_message
from mfrl.node_main import run_node
from mfrl.parameters import ConfigParameters
from mfrl.plan_inbox import PlanInbox
from quadsim.controller import SE3Controller, SE3Gains
from quadsim.follower import FollowerConfig, TrajectoryFollower
from quadsim.frames import yaw_of
from quadsim.health import EnvelopeLimits, EnvelopeMonitor, tilt_of
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

MAX_INTEGRATION_STEP_S = 0.05
"""The integral advances by the time between odometry messages, at most this (a gap is not error to integrate)."""


class Tracker(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("tracker")
        self.exit_code: int | None = None
        self.params = ConfigParameters(
            self, TrackerConfig, on_change=self.apply_config, read_only=("diagnostics_period_s",)
        )
        self.vehicle = VehicleParams()
        self.monitor = EnvelopeMonitor()
        self.apply_config(self.params.config)
        self.follower = TrajectoryFollower(self.vehicle, self.follower_config)
        self.inbox = PlanInbox(self.follower)
        self.now_ns = 0
        self.tracking_error_m = 0.0
        self.max_tracking_error_m = 0.0
        self.bad_odometry = 0
        self.command_pub = self.create_publisher(WrenchStamped, "cmd_wrench", qos.COMMAND)
        self.reference_pub = self.create_publisher(Odometry, "~/reference", qos.REQUEST)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.REQUEST)
        self.create_subscription(Odometry, "odom", self.on_odometry, qos.SENSOR)
        # Raw: the trajectory is read straight from its CDR bytes (see mfrl.trajectory_wire).
        self.create_subscription(MultiDOFJointTrajectory, "trajectory", self.on_trajectory, qos.LATCHED, raw=True)
        self.create_timer(self.params.config.diagnostics_period_s, self.publish_diagnostics)

    def apply_config(self, config: TrackerConfig) -> None:
        """Rebuild the controller and the follower's settings from the parameters."""
        gains = SE3Gains(
            kp_position=(config.kp_position[0], config.kp_position[1], config.kp_position[2]),
            kd_position=(config.kd_position[0], config.kd_position[1], config.kd_position[2]),
            ki_position=(config.ki_position[0], config.ki_position[1], config.ki_position[2]),
            integral_limit_m_s2=config.integral_limit_m_s2,
            aero_feedforward=config.aero_feedforward,
            kp_attitude=config.kp_attitude,
            kd_attitude=config.kd_attitude,
        )
        self.controller = SE3Controller(self.vehicle, gains)
        self.allocation = self.vehicle.allocation_matrix
        self.follower_config = FollowerConfig(config.switch_blend_s, config.max_plan_delay_s, config.max_plan_lead_s)
        vehicle_speed = self.vehicle.max_speed_m_s
        self.monitor.limits = EnvelopeLimits(
            max_tracking_error_m=config.max_tracking_error_m,
            warn_tracking_error_m=config.warn_tracking_error_m,
            max_speed_m_s=config.max_speed_m_s or vehicle_speed,
            max_tilt_rad=math.radians(config.max_tilt_deg),
            recent_s=config.warn_hold_s,
        )
        if hasattr(self, "follower"):
            self.follower.config = self.follower_config

    def on_trajectory(self, data: bytes) -> None:
        """Switch to a new plan (or keep it until the first odometry gives the time)."""
        reason = self.inbox.receive(data, self.now_ns)
        if reason:
            self.monitor.note_problem(self.now_ns * 1e-9, reason.splitlines()[0][:64])
            self.get_logger().error(reason)

    def take_pending(self) -> None:
        """Hand the pending plan to the follower; a stale one is refused and the vehicle holds."""
        reason = self.inbox.hand_over(self.now_ns)
        if reason:
            self.monitor.note_problem(self.now_ns * 1e-9, reason.splitlines()[0][:64])
            self.get_logger().warning(reason)

    def on_odometry(self, msg: Odometry) -> None:
        """Answer the odometry with the controller's command for the reference at its time.

        Odometry that is not finite (NaN, a zero quaternion), or any error in the controller, gets a
        level hover command (hover thrust, no torque) and a warning: the vehicle always gets a command.
        """
        try:
            state = odometry_state(msg)
            if not state.is_finite():
                self.hover(msg, "odometry is not finite")
                return
            dt_s = min(max((state.stamp_ns - self.now_ns) * 1e-9, 0.0), MAX_INTEGRATION_STEP_S) if self.now_ns else 0.0
            self.now_ns = state.stamp_ns
            if self.follower.mode(self.now_ns * 1e-9) == "idle":
                self.follower.hold_at(state.position_m, yaw_of(state.rotation))
            self.take_pending()
            now_s = self.now_ns * 1e-9
            ref = self.follower.reference(now_s)
            thrusts = self.controller.rotor_thrusts(
                state.position_m, state.velocity_m_s, state.rotation, state.body_rates_rad_s, ref, dt_s=dt_s
            )
            wrench = self.allocation @ thrusts
        except Exception as exc:  # the vehicle must get a command whatever went wrong
            self.hover(msg, f"unexpected error: {exc!r}")
            return
        self.publish_command(msg, float(wrench[0]), wrench[1:])
        self.tracking_error_m = float(np.linalg.norm(state.position_m - ref.position))
        self.max_tracking_error_m = max(self.max_tracking_error_m, self.tracking_error_m)
        mode = self.follower.mode(now_s)
        self.monitor.update(
            now_s, state.position_m, state.velocity_m_s, tilt_of(state.rotation), ref.position, mode == "tracking"
        )
        if self.params.config.publish_reference:
            self.reference_pub.publish(
                reference_message(msg, self.params.config.frame_id, ref.position, ref.velocity, ref.yaw_rad)
            )

    def hover(self, odom: Odometry, reason: str) -> None:
        """Hover thrust and no torque, for odometry the controller cannot use; counted and logged."""
        self.bad_odometry += 1
        self.monitor.note_problem(self.now_ns * 1e-9, f"bad odometry: {reason}")
        self.get_logger().warning(f"hover command: {reason}", throttle_duration_sec=1.0)
        self.publish_command(odom, self.vehicle.mass_kg * GRAVITY_M_S2, np.zeros(3))

    def publish_command(self, odom: Odometry, thrust_n: float, torque_nm: np.ndarray) -> None:
        """The wrench command, stamped like the odometry it answers."""
        self.command_pub.publish(wrench_message(odom, thrust_n, torque_nm))

    def publish_diagnostics(self) -> None:
        """Mode, plan age and tracking error on /diagnostics."""
        now_s = self.now_ns * 1e-9
        start = self.follower.plan_start_s
        values: dict[str, object] = {
            "mode": self.follower.mode(now_s),
            "plan_age_s": now_s - start if start is not None else "no plan",
            "tracking_error_m": self.tracking_error_m,
            "max_tracking_error_m": self.max_tracking_error_m,
            "plans": self.inbox.plans,
            "refused_plans": self.inbox.refused,
            "bad_odometry": self.bad_odometry,
        }
        health = self.monitor.current(now_s)
        values["tilt_deg"] = math.degrees(health.tilt_rad)
        values["speed_m_s"] = health.speed_m_s
        if not self.now_ns:
            level, message = DiagnosticStatus.WARN, "no odometry yet"
        else:
            level, message = bytes([int(health.level)]), health.message
        msg = diagnostics_message(self.get_clock().now().to_msg(), self.get_name(), "mfrl", level, message, values)
        self.diagnostics_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """Entry point of the `tracker` executable."""
    return run_node(Tracker, args)


if __name__ == "__main__":
    raise SystemExit(main())

"""The `px4_bridge` node: the graph's trajectory flown by a PX4 vehicle over MAVLink (`px4link.Px4Bridge`).

Lifecycle: configuring builds the bridge from the parameters; activating opens the link. Out: odometry
(`odom`, ENU/FLU, one message per LOCAL_POSITION_NED from the vehicle), `battery` (sensor_msgs/BatteryState),
the vehicle's state (`~/state`: armed, mode, landed, offboard), all best-effort as PX4's outputs are;
failsafe events (`~/failsafe`, reliable), errors (`~/status`) and `/diagnostics` at 1 Hz. In: `trajectory`
(read from its bytes, `mfrl.trajectory_wire`), whose stamp (ROS time) becomes the bridge's monotonic start time.
Services (std_srvs/Trigger): `~/arm` (after the pre-flight check; the reply says why not), `~/disarm`,
`~/takeoff`, `~/land`, `~/hold`, `~/offboard` (stream, then switch to OFFBOARD).

Telemetry is published from the bridge's receive thread, so a service waiting for a COMMAND_ACK never
holds odometry back; a bad trajectory or a refused command is reported, never fatal.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import BatteryState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from mfrl import qos
from mfrl.configs import Px4BridgeNodeConfig
from mfrl.conversions import diagnostic_status, diagnostics_message, odometry_message
from mfrl.node_main import run_node
from mfrl.parameters import ConfigParameters
from mfrl.trajectory_wire import WireFormatError, read_trajectory
from px4link.bridge import ActionEvent, BridgeEvent, OffboardError, Px4Bridge
from px4link.commands import CommandError, CommandResult
from px4link.config import (
    BridgeConfig,
)
from px4link.failsafes import FailsafeEvent
from px4link.offboard import OffboardState, OffboardTransition
from px4link.preflight import PreflightFailed
from px4link.signing import signing_from_key_file
from px4link.telemetry import parse_local_position
from quadsim.mujoco_vehicle import VehicleState
from quadsim.rotations import quat_wxyz_to_matrix

STATE_PERIOD_S = 0.2
"""Period of `~/state`."""
OFFBOARD_MARGIN_S = 0.5
"""A plan that arrives outside OFFBOARD starts this long after the priming second (time for PX4 to switch)."""


def bridge_config(config: Px4BridgeNodeConfig) -> BridgeConfig:
    """The bridge's settings from the node's parameters, with the signing key read (raises ValueError)."""
    signing = None
    if config.signing_key_file:
        signing = signing_from_key_file(
            config.signing_key_file, require=config.require_signing, timestamp_file=config.signing_timestamp_file
        )
    return config.bridge_config(signing)


class Px4BridgeNode(LifecycleNode):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("px4_bridge")
        self.exit_code: int | None = None
        self.params = ConfigParameters(self, Px4BridgeNodeConfig, read_only=True)
        self.bridge: Px4Bridge | None = None
        self.trajectories = 0
        self.errors = 0
        self.failsafes = 0
        self._offboard_starting = threading.Lock()
        self.commands_group = MutuallyExclusiveCallbackGroup()  # the services, one at a time, off the main group
        self.odom_pub = self.create_publisher(Odometry, "odom", qos.SENSOR)
        self.battery_pub = self.create_publisher(BatteryState, "battery", qos.SENSOR)
        self.state_pub = self.create_publisher(DiagnosticStatus, "~/state", qos.SENSOR)
        self.failsafe_pub = self.create_publisher(DiagnosticStatus, "~/failsafe", qos.REQUEST)
        self.status_pub = self.create_publisher(DiagnosticStatus, "~/status", qos.REQUEST)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.REQUEST)
        self.create_subscription(MultiDOFJointTrajectory, "trajectory", self.on_trajectory, qos.LATCHED, raw=True)
        for name, handler in (
            ("arm", self.on_arm),
            ("disarm", self.on_disarm),
            ("takeoff", self.on_takeoff),
            ("land", self.on_land),
            ("hold", self.on_hold),
            ("offboard", self.on_offboard),
        ):
            self.create_service(Trigger, f"~/{name}", handler, callback_group=self.commands_group)
        self.create_timer(STATE_PERIOD_S, self.publish_state)
        self.create_timer(self.config.diagnostics_period_s, self.publish_diagnostics)
        if self.config.autostart:
            self._autostart = self.create_timer(0.0, self._run_autostart)

    @property
    def config(self) -> Px4BridgeNodeConfig:
        """The current parameters."""
        config: Px4BridgeNodeConfig = self.params.config
        return config

    @property
    def active(self) -> bool:
        """Whether the link is open and the node serves."""
        return bool(self._state_machine.current_state[1] == "active")

    def _run_autostart(self) -> None:
        self._autostart.cancel()
        self.trigger_configure()
        if self._state_machine.current_state[1] == "inactive":
            self.trigger_activate()

    # Lifecycle ---------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Build the bridge from the parameters (nothing is sent yet)."""
        try:
            self.bridge = Px4Bridge(bridge_config(self.config))
        except (ValueError, OSError) as exc:
            self.report_error(f"cannot configure the bridge: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.bridge.add_listener(self.on_bridge_event)
        self.bridge.connection.subscribe(self.on_local_position, "LOCAL_POSITION_NED")
        self.bridge.connection.subscribe(self.on_battery, "BATTERY_STATUS")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Open the link and start the bridge's threads."""
        assert self.bridge is not None
        try:
            self.bridge.start()
        except Exception as exc:  # a serial port that is not there, a UDP port in use: say so, stay inactive
            self.report_error(f"cannot open the vehicle link {self.config.vehicle_url}: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"vehicle link open on {self.config.vehicle_url}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Tell a vehicle in offboard to hold, then close the link."""
        self.close()
        return super().on_deactivate(state)

    def close(self) -> None:
        """Hold if streaming, then stop the bridge (also on shutdown)."""
        if self.bridge is None:
            return
        if self.bridge.offboard.streaming:
            try:
                self.bridge.hold()
            except CommandError as exc:
                self.get_logger().error(f"hold on shutdown failed: {exc}")
        self.bridge.stop()

    # Telemetry (bridge receive thread) -------------------------------------------------------------------
    def on_local_position(self, msg: object) -> None:
        """Odometry for each LOCAL_POSITION_NED: position and velocity from it, attitude from the latest telemetry."""
        if self.bridge is None or not self.context.ok():  # the link outlives the ROS context by a moment at exit
            return
        position = parse_local_position(msg)
        attitude = self.bridge.telemetry().attitude
        q = np.array(attitude.q_wxyz) if attitude is not None else np.array([1.0, 0.0, 0.0, 0.0])
        rates = np.array(attitude.body_rates_flu_rad_s) if attitude is not None else np.zeros(3)
        state = VehicleState(
            time_s=position.time_boot_s,
            position_m=np.array(position.position_enu_m),
            velocity_m_s=np.array(position.velocity_enu_m_s),
            quaternion_wxyz=q,
            rotation=quat_wxyz_to_matrix(q),
            body_rates_rad_s=rates,
        )
        stamp = self.get_clock().now().to_msg()
        self.odom_pub.publish(odometry_message(state, self.config.frame_id, self.config.child_frame_id, stamp))

    def on_battery(self, msg: object) -> None:
        """BatteryState from the vehicle's BATTERY_STATUS."""
        if self.bridge is None or not self.context.ok():
            return
        battery = self.bridge.telemetry().battery
        if battery is None:
            return
        out = BatteryState()
        out.header.stamp = self.get_clock().now().to_msg()
        out.voltage = float(battery.voltage_v)
        out.current = float(battery.current_a) if battery.current_a is not None else float("nan")
        out.percentage = float(battery.remaining_fraction) if battery.remaining_fraction is not None else float("nan")
        out.present = True
        self.battery_pub.publish(out)

    def on_bridge_event(self, event: BridgeEvent) -> None:
        """Failsafes and the bridge's own actions on `~/failsafe` (and the log); offboard changes in the log."""
        if isinstance(event, FailsafeEvent):
            self.failsafes += 1
            self.get_logger().error(f"failsafe {event.kind.value}: {event.detail} -> {event.action}")
            values = {"kind": event.kind.value, "action": event.action, "time_s": event.time_s}
            level = DiagnosticStatus.ERROR
            self.failsafe_pub.publish(diagnostic_status(self.get_name(), "px4", level, event.detail, values))
        elif isinstance(event, ActionEvent):
            level = DiagnosticStatus.WARN if event.ok else DiagnosticStatus.ERROR
            values = {"action": event.action, "ok": event.ok, "cause": event.cause.value if event.cause else ""}
            self.failsafe_pub.publish(diagnostic_status(self.get_name(), "px4", level, event.detail, values))
        elif isinstance(event, OffboardTransition):
            self.get_logger().info(f"offboard {event.before.value} -> {event.after.value}: {event.reason}")

    # Trajectory ------------------------------------------------------------------------------------------
    def on_trajectory(self, data: bytes) -> None:
        """Hand a new trajectory to the bridge; start offboard if configured and in the air."""
        if not self.active or self.bridge is None:
            self.report_error("trajectory ignored: the bridge is not active (configure and activate it first)")
            return
        try:
            wire = read_trajectory(data)
            if wire.frame_id not in ("", self.config.frame_id):
                raise ValueError(f"trajectory in frame {wire.frame_id!r}, expected {self.config.frame_id!r}")
            if not np.isfinite(wire.sampled.values).all():
                raise ValueError("trajectory has non-finite samples")
            start_s = time.monotonic() + (wire.stamp_ns - self.get_clock().now().nanoseconds) * 1e-9
            if self.bridge.offboard.state != OffboardState.ACTIVE:
                # PX4 is flying its own mode: the plan starts once OFFBOARD is in (priming first); the vehicle
                # holds where the plan starts meanwhile.
                start_s = max(start_s, time.monotonic() + self.bridge.config.offboard.priming_s + OFFBOARD_MARGIN_S)
            self.bridge.follow(wire.sampled, start_s)
        except (WireFormatError, ValueError) as exc:
            self.report_error(f"trajectory refused: {exc}")
            return
        self.trajectories += 1
        if self.config.offboard_on_trajectory and self.bridge.offboard.state == OffboardState.IDLE:
            snapshot = self.bridge.telemetry()
            airborne = snapshot.landed is not None and not snapshot.landed.on_ground
            if snapshot.status is not None and snapshot.status.armed and airborne:
                threading.Thread(target=self._start_offboard, name="px4_bridge-offboard", daemon=True).start()

    def _start_offboard(self) -> None:
        if self.bridge is None or not self._offboard_starting.acquire(blocking=False):
            return
        try:
            self.bridge.start_offboard()
            self.get_logger().info("OFFBOARD: following the trajectory")
        except (OffboardError, CommandError) as exc:
            self.report_error(f"offboard not started: {exc}")
        finally:
            self._offboard_starting.release()

    # Services --------------------------------------------------------------------------------------------
    def _command(self, name: str, response: Trigger.Response, call: object) -> Trigger.Response:
        """Run a bridge command for a Trigger service; the reply says how it went."""
        if not self.active or self.bridge is None:
            response.success, response.message = False, "the bridge is not active"
            return response
        try:
            result = call() if callable(call) else None
        except PreflightFailed as exc:
            response.success, response.message = False, f"{name} refused by the pre-flight check: {exc}"
        except (CommandError, OffboardError, ValueError) as exc:
            response.success, response.message = False, f"{name} failed: {exc}"
        else:
            response.success = True
            attempts = (
                f" ({result.attempts} send(s), {result.elapsed_s * 1e3:.0f} ms)"
                if isinstance(result, CommandResult)
                else ""
            )
            response.message = f"{name}: accepted{attempts}"
        if not response.success:
            self.report_error(response.message)
        else:
            self.get_logger().info(response.message)
        return response

    def on_arm(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Arm (after the pre-flight check)."""
        return self._command("arm", response, lambda: self.bridge.arm() if self.bridge else None)

    def on_disarm(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Disarm (refused by PX4 in the air)."""
        return self._command("disarm", response, lambda: self.bridge.disarm() if self.bridge else None)

    def on_takeoff(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Take off to takeoff_altitude_m."""
        return self._command("takeoff", response, lambda: self.bridge.takeoff() if self.bridge else None)

    def on_land(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Land where the vehicle is."""
        return self._command("land", response, lambda: self.bridge.land() if self.bridge else None)

    def on_hold(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Hold position (AUTO.LOITER)."""
        return self._command("hold", response, lambda: self.bridge.hold() if self.bridge else None)

    def on_offboard(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Stream setpoints (the trajectory, or a hold here), then switch to OFFBOARD."""
        return self._command("offboard", response, lambda: self.bridge.start_offboard() if self.bridge else None)

    # Reports ---------------------------------------------------------------------------------------------
    def report_error(self, message: str) -> None:
        """Log an error and publish it as the status."""
        self.errors += 1
        self.get_logger().error(message)
        self.status_pub.publish(
            diagnostic_status(self.get_name(), "px4", DiagnosticStatus.ERROR, message.splitlines()[0], {})
        )

    def _state_values(self) -> dict[str, object]:
        assert self.bridge is not None
        snapshot = self.bridge.telemetry()
        status = snapshot.status
        return {
            "armed": status.armed if status else "unknown",
            "mode": status.mode_name if status else "unknown",
            "landed": snapshot.landed.name if snapshot.landed else "unknown",
            "offboard": self.bridge.offboard.state.value,
            "battery_fraction": (
                snapshot.battery.remaining_fraction
                if snapshot.battery and snapshot.battery.remaining_fraction is not None
                else "unknown"
            ),
            "link_age_s": self.bridge.connection.vehicle_message_age_s(),
            "heartbeat_age_s": self.bridge.connection.vehicle_heartbeat_age_s(),
        }

    def publish_state(self) -> None:
        """The vehicle's state on `~/state`."""
        if self.active and self.bridge is not None:
            values = self._state_values()
            self.state_pub.publish(diagnostic_status(self.get_name(), "px4", DiagnosticStatus.OK, "state", values))

    def publish_diagnostics(self) -> None:
        """Link, vehicle and counters on /diagnostics."""
        values: dict[str, object] = {
            "state": self._state_machine.current_state[1],
            "trajectories": self.trajectories,
            "errors": self.errors,
            "failsafes": self.failsafes,
        }
        level, message = DiagnosticStatus.WARN, "not active"
        if self.active and self.bridge is not None:
            values.update(self._state_values())
            counters = self.bridge.counters()
            values["setpoints_sent"] = counters.setpoints_sent
            values["command_timeouts"] = counters.command_timeouts
            values["bad_frames"] = counters.link.bad_frames
            values["link_drops"] = counters.link.link_drops
            values["signing_refused"] = counters.link.signing.refused
            uplink_age = self.bridge.connection.uplink_age_s()
            values["uplink_age_s"] = -1.0 if uplink_age is None else round(uplink_age, 3)
            streamer = self.bridge.streamer
            values["setpoint_realtime"] = streamer.realtime
            values["setpoint_priority_requested"] = streamer.realtime_priority
            link_age = self.bridge.connection.vehicle_message_age_s()  # as the failsafe judges it (PX4 beats at 1 Hz)
            if link_age > self.config.link_loss_s:
                level, message = DiagnosticStatus.ERROR, "vehicle link lost"
            elif uplink_age is not None and uplink_age > self.config.uplink_loss_s:
                level, message = DiagnosticStatus.ERROR, "vehicle does not answer: what the bridge sends is lost"
            elif streamer.realtime_priority > 0 and streamer.started and not streamer.realtime:
                level, message = DiagnosticStatus.WARN, "vehicle connected; setpoint stream at normal priority"
            else:
                level, message = DiagnosticStatus.OK, "vehicle connected"
        stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(diagnostics_message(stamp, self.get_name(), "px4", level, message, values))


def main(args: list[str] | None = None) -> int:
    """Entry point of the `px4_bridge` executable."""
    # Two threads: a command service (arming reads parameters, offboard primes for a second) runs in its
    # own group while trajectories, state and diagnostics go on in the default one.
    return run_node(Px4BridgeNode, args, threads=2)


if __name__ == "__main__":
    raise SystemExit(main())

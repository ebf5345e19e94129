"""The bridge's settings as typed dataclasses, with defaults for a PX4 vehicle and validation that says what is wrong.

Identity: the companion computer uses the vehicle's system id (1 by default, as MAVLink recommends for components of
one vehicle) and component id 191 (MAV_COMP_ID_ONBOARD_COMPUTER); the autopilot is component 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from px4link.link_url import parse_link_url
from px4link.signing import SigningConfig
from quadsim.geofence import BoxGeofence, Geofence, SettingError
from quadsim.geofence import CylinderGeofence as CylinderGeofence  # re-exported

MAV_COMP_ID_AUTOPILOT1 = 1
MAV_COMP_ID_ONBOARD_COMPUTER = 191

FailsafeAction = Literal["hold", "land"]


BridgeConfigError = SettingError
"""A bridge setting out of range; the message names the field and the allowed range (the geofence's type, as
the geofences now live in `quadsim.geofence`: sim must not import hardware)."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise BridgeConfigError(message)


def _check_id(name: str, value: int) -> None:
    _require(1 <= value <= 255, f"{name} must be in 1..255, got {value}")


@dataclass(frozen=True)
class LinkConfig:
    """Where the vehicle is and who we are on the link.

    Attributes:
        url: link URL (px4link.link_url): "/dev/ttyACM0:921600", "udpin:0.0.0.0:14540", "udpout:H:P", "tcp:H:P".
        system_id: our system id (the vehicle's: we are a component of it).
        component_id: our component id (191, MAV_COMP_ID_ONBOARD_COMPUTER).
        vehicle_system_id: the autopilot's system id.
        vehicle_component_id: the autopilot's component id.
        heartbeat_period_s: our HEARTBEAT period (MAVLink: 1 Hz).
        timesync_period_s: TIMESYNC request period; 0 disables our requests (we still answer the vehicle's). The
            vehicle's answers are how the bridge knows its own messages arrive (FailsafeConfig.uplink_loss_s).
        signing: MAVLink 2 signing; None sends and accepts unsigned frames.
    """

    url: str = "udpin:0.0.0.0:14540"
    system_id: int = 1
    component_id: int = MAV_COMP_ID_ONBOARD_COMPUTER
    vehicle_system_id: int = 1
    vehicle_component_id: int = MAV_COMP_ID_AUTOPILOT1
    heartbeat_period_s: float = 1.0
    timesync_period_s: float = 0.2
    signing: SigningConfig | None = None

    def __post_init__(self) -> None:
        parse_link_url(self.url)
        for name in ("system_id", "component_id", "vehicle_system_id", "vehicle_component_id"):
            _check_id(name, getattr(self, name))
        _require(
            (self.system_id, self.component_id) != (self.vehicle_system_id, self.vehicle_component_id),
            "our (system_id, component_id) must differ from the vehicle's",
        )
        _require(
            0.05 <= self.heartbeat_period_s <= 5.0,
            f"heartbeat_period_s must be in [0.05, 5], got {self.heartbeat_period_s}",
        )
        _require(self.timesync_period_s >= 0.0, f"timesync_period_s must be >= 0, got {self.timesync_period_s}")


@dataclass(frozen=True)
class CommandConfig:
    """COMMAND_LONG and parameter protocol timing.

    Attributes:
        ack_timeout_s: wait for a COMMAND_ACK (or PARAM_VALUE) this long before resending.
        retries: resends after the first attempt (COMMAND_LONG's `confirmation` counts them).
        in_progress_timeout_s: how long an IN_PROGRESS command may take in all before it times out.
        param_int_encoding: "bytewise" (PX4: int32 bits in the float field) or "cast" (ArduPilot: float value).
    """

    ack_timeout_s: float = 0.5
    retries: int = 4
    in_progress_timeout_s: float = 10.0
    param_int_encoding: Literal["bytewise", "cast"] = "bytewise"

    def __post_init__(self) -> None:
        _require(0.01 <= self.ack_timeout_s <= 30.0, f"ack_timeout_s must be in [0.01, 30], got {self.ack_timeout_s}")
        _require(0 <= self.retries <= 20, f"retries must be in 0..20, got {self.retries}")
        _require(self.in_progress_timeout_s > 0.0, "in_progress_timeout_s must be > 0")


@dataclass(frozen=True)
class OffboardConfig:
    """The setpoint stream.

    Attributes:
        rate_hz: setpoint rate (PX4 needs > 2 Hz; we refuse < 20 Hz to leave margin; 50 by default).
        priming_s: stream this long before asking for OFFBOARD (PX4 refuses the switch without a stream; >= 1 s).
        mode_confirm_timeout_s: after the ACK, wait this long for the heartbeat to show OFFBOARD.
        send_yaw_rate: send the trajectory's yaw rate as feed-forward (else PX4 holds the yaw setpoint only).
        drag_feedforward: add to the acceleration feed-forward what cancels the rotor drag and lift predicted along
            the reference for the project's vehicle model (`quadsim.aero`; PX4's position controller has no drag
            model, so without it the vehicle lags the reference in proportion to its speed). Turn it off for an
            airframe whose aerodynamics the model does not describe.
        realtime_priority: SCHED_FIFO priority of the streamer thread (1-99; 0 keeps normal scheduling). Asked for
            by default: it needs CAP_SYS_NICE or an rtprio limit (the systemd unit grants both); where it is refused
            the stream runs at normal priority, the log says so once and `SetpointStreamer.realtime` is False (the
            px4_bridge node reports it on /diagnostics). It cuts period jitter on a loaded companion computer.
    """

    rate_hz: float = 50.0
    priming_s: float = 1.0
    mode_confirm_timeout_s: float = 2.0
    send_yaw_rate: bool = True
    drag_feedforward: bool = True
    realtime_priority: int = 20

    def __post_init__(self) -> None:
        _require(
            20.0 <= self.rate_hz <= 250.0,
            f"rate_hz must be in [20, 250] (PX4 offboard needs a steady stream), got {self.rate_hz}",
        )
        _require(
            self.priming_s >= 1.0,
            f"priming_s must be >= 1 s (PX4 requires a setpoint stream before OFFBOARD), got {self.priming_s}",
        )
        _require(self.mode_confirm_timeout_s > 0.0, "mode_confirm_timeout_s must be > 0")
        _require(0 <= self.realtime_priority <= 99, f"realtime_priority must be in 0..99, got {self.realtime_priority}")

    @property
    def period_s(self) -> float:
        """Setpoint period."""
        return 1.0 / self.rate_hz


@dataclass(frozen=True)
class FailsafeConfig:
    """When the bridge gives up on the plan and what it tells the vehicle (checked at the setpoint stream's rate).

    Attributes:
        link_loss_s: no vehicle heartbeat or telemetry for this long is a lost link (default 0.5 s).
        link_loss_action: what the vehicle is told when the link returns after a loss ("hold" or "land").
        geofence: the allowed volume (ENU); None disables the geofence check.
        battery_low_fraction: below this remaining fraction: battery_low_action.
        battery_critical_fraction: below this: land.
        battery_low_action: "hold" or "land".
        trajectory_stale_s: a trajectory that ended this long ago with nothing new is stale -> hold; 0 disables
            (a finished trajectory then holds its last point forever). A trajectory without `duration_s`
            never ends, so never goes stale.
        restore_mode_wait_s: when the link returns, how long to wait for a heartbeat sent after the return
            (PX4 sends one a second) to see whether PX4 is already landing or returning on its own
            offboard-loss action; the bridge's link_loss_action is then not sent (a hold would stop it).
            Without such a heartbeat in this time the action is sent.
        uplink_loss_s: no answer to our TIMESYNC requests for this long, while the vehicle's own messages still
            arrive, is a lost link too: what the bridge sends does not reach the vehicle (a one-way cut). Applies
            once the vehicle has answered at least once; keep it well above LinkConfig.timesync_period_s.
    """

    link_loss_s: float = 0.5
    link_loss_action: FailsafeAction = "hold"
    geofence: Geofence | None = field(default_factory=BoxGeofence)
    battery_low_fraction: float = 0.25
    battery_critical_fraction: float = 0.12
    battery_low_action: FailsafeAction = "hold"
    trajectory_stale_s: float = 5.0
    restore_mode_wait_s: float = 1.5
    uplink_loss_s: float = 1.0

    def __post_init__(self) -> None:
        _require(
            0.0 <= self.restore_mode_wait_s <= 5.0,
            f"restore_mode_wait_s must be in [0, 5], got {self.restore_mode_wait_s}",
        )
        _require(0.05 <= self.link_loss_s <= 30.0, f"link_loss_s must be in [0.05, 30], got {self.link_loss_s}")
        _require(0.1 <= self.uplink_loss_s <= 30.0, f"uplink_loss_s must be in [0.1, 30], got {self.uplink_loss_s}")
        _require(
            self.link_loss_action in ("hold", "land"),
            f"link_loss_action must be hold or land, got {self.link_loss_action!r}",
        )
        _require(
            self.battery_low_action in ("hold", "land"),
            f"battery_low_action must be hold or land, got {self.battery_low_action!r}",
        )
        _require(
            0.0 <= self.battery_critical_fraction <= self.battery_low_fraction <= 1.0,
            "battery fractions must satisfy 0 <= critical <= low <= 1",
        )
        _require(self.trajectory_stale_s >= 0.0, "trajectory_stale_s must be >= 0")


@dataclass(frozen=True)
class PreflightConfig:
    """What the pre-flight check demands.

    Attributes:
        require_gps: GPS_RAW_INT must report at least a 3D fix (off for indoor flight with vision or mocap).
        min_battery_fraction: battery must be above this to arm.
        require_ekf: ESTIMATOR_STATUS must show attitude, velocity and position solutions without errors.
        max_offboard_loss_timeout_s: COM_OF_LOSS_T must be positive and at most this.
        param_timeout_s: per-parameter read timeout during the check (each attempt).
        param_retries: requests resent per parameter after the first; a lossy link loses requests and answers
            alike (at 30 % loss each way an attempt succeeds about half the time), and the check must not fail
            for what a retry would have read: with 9 attempts one read in about 400 failed there (a 24-read test
            failed in CI), with 15 about one in 25,000; a dead link then fails a parameter after 7.5 s.
        max_heartbeat_age_s: the vehicle must have sent a heartbeat, and its last message (any: on a lossy link the
            1 Hz heartbeat alone is often older) must be younger than this.
    """

    require_gps: bool = False
    min_battery_fraction: float = 0.5
    require_ekf: bool = True
    max_offboard_loss_timeout_s: float = 2.0
    param_timeout_s: float = 0.5
    param_retries: int = 14
    max_heartbeat_age_s: float = 3.0

    def __post_init__(self) -> None:
        _require(0.0 <= self.min_battery_fraction <= 1.0, "min_battery_fraction must be in [0, 1]")
        _require(self.max_offboard_loss_timeout_s > 0.0, "max_offboard_loss_timeout_s must be > 0")
        _require(self.param_timeout_s > 0.0, f"param_timeout_s must be > 0, got {self.param_timeout_s}")
        _require(0 <= self.param_retries <= 50, f"param_retries must be in 0..50, got {self.param_retries}")
        _require(self.max_heartbeat_age_s > 0.0, f"max_heartbeat_age_s must be > 0, got {self.max_heartbeat_age_s}")


UNUSED_STREAMS: tuple[int, ...] = (30, 33, 141, 331)
"""ATTITUDE (100 Hz), GLOBAL_POSITION_INT (50 Hz), ALTITUDE (10 Hz), ODOMETRY (30 Hz): streamed by PX4 on an
onboard link and not needed by the bridge, which takes position and velocity from LOCAL_POSITION_NED and
attitude from ATTITUDE_QUATERNION: two thirds of the messages it would decode. (Leave 331 out of
`streams_off` to get the `odometry` telemetry record.)"""


@dataclass(frozen=True)
class BridgeConfig:
    """Everything the bridge needs; each part validates itself.

    Attributes:
        streams_off: message ids the bridge asks PX4 to stop sending on its link (MAV_CMD_SET_MESSAGE_INTERVAL
            with interval -1: the setting is per MAVLink instance, so a ground station's link is not
            touched), when it first hears the vehicle and again after every link loss (a reboot resets them).
            Empty: leave PX4's streams as they are.
    """

    link: LinkConfig = field(default_factory=LinkConfig)
    commands: CommandConfig = field(default_factory=CommandConfig)
    offboard: OffboardConfig = field(default_factory=OffboardConfig)
    failsafes: FailsafeConfig = field(default_factory=FailsafeConfig)
    preflight: PreflightConfig = field(default_factory=PreflightConfig)
    takeoff_altitude_m: float = 2.0
    streams_off: tuple[int, ...] = UNUSED_STREAMS

    def __post_init__(self) -> None:
        _require(
            0.5 <= self.takeoff_altitude_m <= 100.0,
            f"takeoff_altitude_m must be in [0.5, 100], got {self.takeoff_altitude_m}",
        )

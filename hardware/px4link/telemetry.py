"""PX4 telemetry as typed, frozen records in the project's frames (ENU world, FLU body), and a thread-safe store of the
latest of each with its age.

Every NED/FRD -> ENU/FLU conversion goes through quadsim.frames. Times are the vehicle's (`time_boot_s`, from
`time_boot_ms`) where the message has one; ages are ours (monotonic seconds since the record arrived).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymavlink.dialects.v20 import common as mavlink2

from px4link import px4_modes
from quadsim import frames
from quadsim.rotations import quat_wxyz_to_matrix

Vec3 = tuple[float, float, float]


def _vec(v: Any) -> Vec3:
    a = np.asarray(v, dtype=np.float64)
    return (float(a[0]), float(a[1]), float(a[2]))


@dataclass(frozen=True)
class VehicleStatus:
    """From HEARTBEAT: armed, PX4 mode (None for a mode PX4 does not define), MAV_STATE."""

    armed: bool
    mode: px4_modes.Px4Mode | None
    custom_mode: int
    system_status: int

    @property
    def mode_name(self) -> str:
        """PX4's name of the mode ("OFFBOARD", "AUTO.LOITER"), or "UNKNOWN"."""
        return self.mode.name if self.mode is not None else "UNKNOWN"


@dataclass(frozen=True)
class LocalPosition:
    """From LOCAL_POSITION_NED: position and velocity in the local ENU frame."""

    time_boot_s: float
    position_enu_m: Vec3
    velocity_enu_m_s: Vec3


@dataclass(frozen=True)
class Attitude:
    """From ATTITUDE_QUATERNION: body FLU -> world ENU quaternion [w, x, y, z] and FLU body rates."""

    time_boot_s: float
    q_wxyz: tuple[float, float, float, float]
    body_rates_flu_rad_s: Vec3

    @property
    def yaw_enu_rad(self) -> float:
        """Heading in ENU (0 = east, counter-clockwise; the project's convention, `quadsim.frames.yaw_of`)."""
        return frames.yaw_of(quat_wxyz_to_matrix(np.asarray(self.q_wxyz, dtype=np.float64)))


@dataclass(frozen=True)
class Odometry:
    """From ODOMETRY: pose, world velocity (ENU) and body rates (FLU)."""

    time_s: float
    position_enu_m: Vec3
    q_wxyz: tuple[float, float, float, float]
    velocity_enu_m_s: Vec3
    body_rates_flu_rad_s: Vec3


@dataclass(frozen=True)
class Battery:
    """From BATTERY_STATUS (or SYS_STATUS): voltage, current, remaining fraction (None: the vehicle does not know)."""

    voltage_v: float
    current_a: float | None
    remaining_fraction: float | None


@dataclass(frozen=True)
class LandedState:
    """From EXTENDED_SYS_STATE: MAV_LANDED_STATE."""

    state: int

    @property
    def name(self) -> str:
        """ "ON_GROUND", "IN_AIR", "TAKEOFF", "LANDING" or "UNDEFINED"."""
        names = {1: "ON_GROUND", 2: "IN_AIR", 3: "TAKEOFF", 4: "LANDING"}
        return names.get(self.state, "UNDEFINED")

    @property
    def on_ground(self) -> bool:
        """True when PX4 says the vehicle is on the ground."""
        return self.state == mavlink2.MAV_LANDED_STATE_ON_GROUND


@dataclass(frozen=True)
class StatusText:
    """From STATUSTEXT: MAV_SEVERITY (0 emergency .. 7 debug) and text."""

    severity: int
    text: str


_EKF_NEEDED = (
    mavlink2.ESTIMATOR_ATTITUDE
    | mavlink2.ESTIMATOR_VELOCITY_HORIZ
    | mavlink2.ESTIMATOR_VELOCITY_VERT
    | mavlink2.ESTIMATOR_POS_HORIZ_REL
    | mavlink2.ESTIMATOR_POS_VERT_ABS
)
_EKF_BAD = mavlink2.ESTIMATOR_GPS_GLITCH | mavlink2.ESTIMATOR_ACCEL_ERROR | mavlink2.ESTIMATOR_CONST_POS_MODE


@dataclass(frozen=True)
class EkfStatus:
    """From ESTIMATOR_STATUS: ESTIMATOR_STATUS_FLAGS and what they mean for offboard flight."""

    flags: int

    @property
    def ok(self) -> bool:
        """Attitude, velocity and relative position present; no GPS glitch, accel error or constant-position mode."""
        return (self.flags & _EKF_NEEDED) == _EKF_NEEDED and not self.flags & _EKF_BAD

    def problems(self) -> list[str]:
        """What is missing or wrong, in words (empty when ok)."""
        out = [
            name
            for bit, name in (
                (mavlink2.ESTIMATOR_ATTITUDE, "no attitude"),
                (mavlink2.ESTIMATOR_VELOCITY_HORIZ, "no horizontal velocity"),
                (mavlink2.ESTIMATOR_VELOCITY_VERT, "no vertical velocity"),
                (mavlink2.ESTIMATOR_POS_HORIZ_REL, "no relative horizontal position"),
                (mavlink2.ESTIMATOR_POS_VERT_ABS, "no vertical position"),
            )
            if not self.flags & bit
        ]
        out += [
            name
            for bit, name in (
                (mavlink2.ESTIMATOR_GPS_GLITCH, "GPS glitch"),
                (mavlink2.ESTIMATOR_ACCEL_ERROR, "accelerometer error"),
                (mavlink2.ESTIMATOR_CONST_POS_MODE, "constant-position mode (no position aiding)"),
            )
            if self.flags & bit
        ]
        return out


@dataclass(frozen=True)
class GpsStatus:
    """From GPS_RAW_INT: GPS_FIX_TYPE (3 = 3D fix) and satellites visible."""

    fix_type: int
    satellites: int


@dataclass(frozen=True)
class TelemetrySnapshot:
    """The latest record of each kind (None before the first) and when each arrived (monotonic s)."""

    status: VehicleStatus | None = None
    local_position: LocalPosition | None = None
    attitude: Attitude | None = None
    odometry: Odometry | None = None
    battery: Battery | None = None
    landed: LandedState | None = None
    ekf: EkfStatus | None = None
    gps: GpsStatus | None = None
    status_texts: tuple[StatusText, ...] = ()
    received_s: dict[str, float] = field(default_factory=dict)

    def age_s(self, kind: str, now_s: float | None = None) -> float:
        """Seconds since the record `kind` (a field name, e.g. "local_position") arrived; inf if never."""
        at = self.received_s.get(kind)
        return float("inf") if at is None else (time.monotonic() if now_s is None else now_s) - at


def parse_status(msg: Any) -> VehicleStatus:
    """HEARTBEAT -> VehicleStatus."""
    try:
        mode: px4_modes.Px4Mode | None = px4_modes.decode_custom_mode(msg.custom_mode)
    except ValueError:
        mode = None
    if not msg.base_mode & px4_modes.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
        mode = None
    return VehicleStatus(
        armed=bool(msg.base_mode & px4_modes.MAV_MODE_FLAG_SAFETY_ARMED),
        mode=mode,
        custom_mode=int(msg.custom_mode),
        system_status=int(msg.system_status),
    )


def parse_local_position(msg: Any) -> LocalPosition:
    """LOCAL_POSITION_NED -> LocalPosition (ENU)."""
    return LocalPosition(
        time_boot_s=msg.time_boot_ms * 1e-3,
        position_enu_m=_vec(frames.ned_to_enu([msg.x, msg.y, msg.z])),
        velocity_enu_m_s=_vec(frames.ned_to_enu([msg.vx, msg.vy, msg.vz])),
    )


def parse_attitude(msg: Any) -> Attitude:
    """ATTITUDE_QUATERNION -> Attitude (ENU/FLU)."""
    q = frames.quat_ned_frd_to_enu_flu([msg.q1, msg.q2, msg.q3, msg.q4])
    return Attitude(
        time_boot_s=msg.time_boot_ms * 1e-3,
        q_wxyz=(float(q[0]), float(q[1]), float(q[2]), float(q[3])),
        body_rates_flu_rad_s=_vec(frames.frd_to_flu([msg.rollspeed, msg.pitchspeed, msg.yawspeed])),
    )


def parse_odometry(msg: Any) -> Odometry:
    """ODOMETRY (frame LOCAL_NED; velocity in the child frame, body FRD or world NED) -> Odometry (ENU/FLU)."""
    q_enu = frames.quat_ned_frd_to_enu_flu(np.asarray(msg.q, dtype=np.float64))
    velocity = np.array([msg.vx, msg.vy, msg.vz], dtype=np.float64)
    if msg.child_frame_id in (mavlink2.MAV_FRAME_BODY_FRD, mavlink2.MAV_FRAME_BODY_NED):
        velocity_enu = quat_wxyz_to_matrix(q_enu) @ frames.frd_to_flu(velocity)  # body FLU -> world ENU
    else:
        velocity_enu = frames.ned_to_enu(velocity)
    return Odometry(
        time_s=msg.time_usec * 1e-6,
        position_enu_m=_vec(frames.ned_to_enu([msg.x, msg.y, msg.z])),
        q_wxyz=(float(q_enu[0]), float(q_enu[1]), float(q_enu[2]), float(q_enu[3])),
        velocity_enu_m_s=_vec(velocity_enu),
        body_rates_flu_rad_s=_vec(frames.frd_to_flu([msg.rollspeed, msg.pitchspeed, msg.yawspeed])),
    )


def parse_battery_status(msg: Any) -> Battery:
    """BATTERY_STATUS -> Battery (cell voltages summed; UINT16_MAX cells and -1 fields mean unknown)."""
    cells = [v for v in msg.voltages if v != 65535]
    return Battery(
        voltage_v=sum(cells) * 1e-3,
        current_a=None if msg.current_battery == -1 else msg.current_battery * 1e-2,
        remaining_fraction=None if msg.battery_remaining < 0 else msg.battery_remaining / 100.0,
    )


def parse_sys_status(msg: Any) -> Battery:
    """SYS_STATUS -> Battery."""
    return Battery(
        voltage_v=msg.voltage_battery * 1e-3 if msg.voltage_battery != 65535 else float("nan"),
        current_a=None if msg.current_battery == -1 else msg.current_battery * 1e-2,
        remaining_fraction=None if msg.battery_remaining < 0 else msg.battery_remaining / 100.0,
    )


def parse_status_text(msg: Any) -> StatusText:
    """STATUSTEXT -> StatusText."""
    raw = msg.text
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes | bytearray) else str(raw)
    return StatusText(severity=int(msg.severity), text=text.rstrip("\x00"))


class TelemetryStore:
    """The latest telemetry record of each kind from the vehicle; fed by the receive thread, read from any thread."""

    def __init__(
        self, vehicle_system_id: int = 1, vehicle_component_id: int = 1, status_text_history: int = 50
    ) -> None:
        self._vehicle = (vehicle_system_id, vehicle_component_id)
        self._lock = threading.Lock()
        self._latest: dict[str, Any] = {}
        self._received: dict[str, float] = {}
        self._texts: deque[StatusText] = deque(maxlen=status_text_history)
        self._have_battery_status = False

    def update(self, msg: Any) -> None:
        """Take one message from the vehicle (others are ignored); unparseable values are dropped, never raised."""
        if (msg.get_srcSystem(), msg.get_srcComponent()) != self._vehicle:
            return
        kind_record = self._parse(msg)
        if kind_record is None:
            return
        kind, record = kind_record
        now = time.monotonic()
        with self._lock:
            if kind == "status_text":
                self._texts.append(record)
            else:
                self._latest[kind] = record
            self._received[kind] = now

    def _parse(self, msg: Any) -> tuple[str, Any] | None:
        msg_type = msg.get_type()
        try:
            if msg_type == "HEARTBEAT":
                return "status", parse_status(msg)
            if msg_type == "LOCAL_POSITION_NED":
                return "local_position", parse_local_position(msg)
            if msg_type == "ATTITUDE_QUATERNION":
                return "attitude", parse_attitude(msg)
            if msg_type == "ODOMETRY":
                return "odometry", parse_odometry(msg)
            if msg_type == "BATTERY_STATUS":
                self._have_battery_status = True
                return "battery", parse_battery_status(msg)
            if msg_type == "SYS_STATUS" and not self._have_battery_status:
                return "battery", parse_sys_status(msg)
            if msg_type == "EXTENDED_SYS_STATE":
                return "landed", LandedState(int(msg.landed_state))
            if msg_type == "ESTIMATOR_STATUS":
                return "ekf", EkfStatus(int(msg.flags))
            if msg_type == "GPS_RAW_INT":
                return "gps", GpsStatus(int(msg.fix_type), int(msg.satellites_visible))
            if msg_type == "STATUSTEXT":
                return "status_text", parse_status_text(msg)
        except (ValueError, ArithmeticError, TypeError, IndexError):
            return None
        return None

    def snapshot(self) -> TelemetrySnapshot:
        """A consistent copy of the latest records."""
        with self._lock:
            latest = dict(self._latest)
            return TelemetrySnapshot(
                status=latest.get("status"),
                local_position=latest.get("local_position"),
                attitude=latest.get("attitude"),
                odometry=latest.get("odometry"),
                battery=latest.get("battery"),
                landed=latest.get("landed"),
                ekf=latest.get("ekf"),
                gps=latest.get("gps"),
                status_texts=tuple(self._texts),
                received_s=dict(self._received),
            )

"""What the vehicle streams, at the rates PX4 uses on an onboard (companion computer) link, in NED/FRD.

Rates are PX4's MAVLINK_MODE_ONBOARD defaults (`ONBOARD_RATES_HZ`); MAV_CMD_SET_MESSAGE_INTERVAL
changes one (interval -1: off, 0: back to the default) and MAV_CMD_REQUEST_MESSAGE sends one now.
Every message is built from a `VehicleView`, one consistent sample of the vehicle's state.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pymavlink.dialects.v20 import common as mavlink

from px4sim.px4_custom_mode import (
    MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
    MAV_MODE_FLAG_SAFETY_ARMED,
    MainMode,
    Px4Mode,
    encode_custom_mode,
)

EARTH_RADIUS_M = 6_378_137.0

# PX4's onboard-link stream rates (Hz). GPS_RAW_INT is "unlimited" in PX4 (every GPS sample): 10 Hz here.
ONBOARD_RATES_HZ: dict[int, float] = {
    mavlink.MAVLINK_MSG_ID_HEARTBEAT: 1.0,
    mavlink.MAVLINK_MSG_ID_SYS_STATUS: 5.0,
    mavlink.MAVLINK_MSG_ID_EXTENDED_SYS_STATE: 5.0,
    mavlink.MAVLINK_MSG_ID_BATTERY_STATUS: 0.5,
    mavlink.MAVLINK_MSG_ID_ATTITUDE: 100.0,
    mavlink.MAVLINK_MSG_ID_ATTITUDE_QUATERNION: 50.0,
    mavlink.MAVLINK_MSG_ID_LOCAL_POSITION_NED: 30.0,
    mavlink.MAVLINK_MSG_ID_ODOMETRY: 30.0,
    mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: 50.0,
    mavlink.MAVLINK_MSG_ID_GPS_RAW_INT: 10.0,
    mavlink.MAVLINK_MSG_ID_ESTIMATOR_STATUS: 1.0,
    mavlink.MAVLINK_MSG_ID_HOME_POSITION: 0.5,
    mavlink.MAVLINK_MSG_ID_ALTITUDE: 10.0,
    mavlink.MAVLINK_MSG_ID_SYSTEM_TIME: 1.0,
}

# MAV_LANDED_STATE and MAV_STATE values.
LANDED_ON_GROUND, LANDED_IN_AIR, LANDED_TAKEOFF, LANDED_LANDING = 1, 2, 3, 4
MAV_STATE_STANDBY, MAV_STATE_ACTIVE, MAV_STATE_CRITICAL = 3, 4, 5
_ESTIMATOR_OK_FLAGS = 1 | 2 | 4 | 8 | 16 | 32 | 256 | 512  # attitude, velocities, positions (rel/abs), predicted
_SENSORS = 1 | 2 | 4 | 8 | 32 | 0x8000 | 0x200000  # gyro, accel, mag, baro, GPS, motor outputs, AHRS
# MAV_SYS_STATUS_PREARM_CHECK: PX4 sets it present and enabled, healthy while the arming checks pass (or armed)
# (PX4: src/modules/commander/HealthAndArmingChecks/HealthAndArmingChecks.cpp); MAVSDK's is_armable reads it.
MAV_SYS_STATUS_PREARM_CHECK = 1 << 28
_FLIGHT_SW_VERSION = (1 << 24) | (15 << 16) | (0 << 8) | 255  # 1.15.0 official


@dataclass(frozen=True)
class GeoOrigin:
    """Where the local frame's origin is on the Earth (PX4's EKF origin)."""

    lat_deg: float = 47.397742
    lon_deg: float = 8.545594
    alt_amsl_m: float = 488.0

    def to_global(self, ned: NDArray[np.float64]) -> tuple[int, int, float]:
        """Latitude and longitude (degE7) and altitude AMSL (m) of a local NED point (flat Earth)."""
        lat = self.lat_deg + math.degrees(float(ned[0]) / EARTH_RADIUS_M)
        lon = self.lon_deg + math.degrees(float(ned[1]) / (EARTH_RADIUS_M * math.cos(math.radians(self.lat_deg))))
        return round(lat * 1e7), round(lon * 1e7), self.alt_amsl_m - float(ned[2])


@dataclass(frozen=True)
class VehicleView:
    """One sample of the vehicle for telemetry (NED world, FRD body)."""

    time_boot_s: float
    position_ned: NDArray[np.float64]
    velocity_ned: NDArray[np.float64]
    quaternion_ned_frd: NDArray[np.float64]
    rates_frd: NDArray[np.float64]
    home_ned: NDArray[np.float64]
    armed: bool
    mode: Px4Mode
    landed: bool
    failsafe: bool
    estimator_ok: bool
    prearm_ok: bool
    battery_remaining: float
    battery_voltage_v: float
    battery_current_a: float
    battery_consumed_mah: float
    battery_cells: int


def euler_of(q: NDArray[np.float64]) -> tuple[float, float, float]:
    """Roll, pitch, yaw (ZYX, rad) of a quaternion [w, x, y, z]."""
    w, x, y, z = (float(c) for c in q)
    roll = math.atan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2.0 * (w * y - z * x))))
    yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return roll, pitch, yaw


def _rotation(q: NDArray[np.float64]) -> NDArray[np.float64]:
    w, x, y, z = (float(c) for c in q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


class TelemetryStreams:
    """Per-message intervals and the messages that are due."""

    def __init__(self, mav: mavlink.MAVLink, origin: GeoOrigin, rate_scale: float = 1.0) -> None:
        self.mav = mav
        self.origin = origin
        self.rate_scale = rate_scale
        self.intervals_s: dict[int, float] = {}
        self._next_s: dict[int, float] = {}
        self.reset_intervals()

    def reset_intervals(self) -> None:
        """Every stream back to its default rate."""
        self.intervals_s = {mid: 1.0 / self._default_rate(mid) for mid in ONBOARD_RATES_HZ}
        self._next_s = {}

    def _default_rate(self, message_id: int) -> float:
        rate = ONBOARD_RATES_HZ[message_id]
        return rate if message_id == mavlink.MAVLINK_MSG_ID_HEARTBEAT else rate * self.rate_scale

    def can_build(self, message_id: int) -> bool:
        """True for messages this vehicle can send."""
        return message_id in _BUILDERS

    def set_interval(self, message_id: int, interval_us: float) -> bool:
        """MAV_CMD_SET_MESSAGE_INTERVAL: False for a message this vehicle does not stream."""
        if message_id not in ONBOARD_RATES_HZ:
            return False
        if interval_us < 0:
            self.intervals_s.pop(message_id, None)
        elif interval_us == 0:
            self.intervals_s[message_id] = 1.0 / self._default_rate(message_id)
        else:
            self.intervals_s[message_id] = interval_us * 1e-6
        self._next_s.pop(message_id, None)
        return True

    def interval_us(self, message_id: int) -> int:
        """MESSAGE_INTERVAL.interval_us of a message (-1 when off, 0 when not available)."""
        if message_id not in ONBOARD_RATES_HZ:
            return 0
        interval = self.intervals_s.get(message_id)
        return -1 if interval is None else round(interval * 1e6)

    def due(self, now_s: float, view: VehicleView) -> list[mavlink.MAVLink_message]:
        """Messages whose time has come (each rescheduled one interval on)."""
        out = []
        for mid, interval in self.intervals_s.items():
            next_s = self._next_s.get(mid, now_s)
            if now_s >= next_s:
                out.append(self.build(mid, view))
                self._next_s[mid] = max(next_s + interval, now_s)
        return out

    def build(self, message_id: int, v: VehicleView) -> mavlink.MAVLink_message:
        """The message `message_id` for the state `v`; KeyError when the vehicle has no such message."""
        return _BUILDERS[message_id](self, v)

    # ---- builders -------------------------------------------------------------------------------

    def heartbeat(self, v: VehicleView) -> mavlink.MAVLink_message:
        base = MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (MAV_MODE_FLAG_SAFETY_ARMED if v.armed else 0)
        if v.mode.main in (MainMode.AUTO, MainMode.OFFBOARD):
            base |= mavlink.MAV_MODE_FLAG_AUTO_ENABLED | mavlink.MAV_MODE_FLAG_GUIDED_ENABLED
            base |= mavlink.MAV_MODE_FLAG_STABILIZE_ENABLED
        status = MAV_STATE_CRITICAL if v.armed and v.failsafe else MAV_STATE_ACTIVE if v.armed else MAV_STATE_STANDBY
        return self.mav.heartbeat_encode(
            mavlink.MAV_TYPE_QUADROTOR, mavlink.MAV_AUTOPILOT_PX4, base, encode_custom_mode(v.mode), status, 3
        )

    def sys_status(self, v: VehicleView) -> mavlink.MAVLink_message:
        health = _SENSORS if v.estimator_ok else _SENSORS & ~0x200000
        if v.prearm_ok:
            health |= MAV_SYS_STATUS_PREARM_CHECK
        sensors = _SENSORS | MAV_SYS_STATUS_PREARM_CHECK
        return self.mav.sys_status_encode(
            sensors,
            sensors,
            health,
            200,
            round(v.battery_voltage_v * 1000),
            round(v.battery_current_a * 100),
            round(v.battery_remaining * 100),
            0,
            0,
            0,
            0,
            0,
            0,
        )

    def extended_sys_state(self, v: VehicleView) -> mavlink.MAVLink_message:
        landed = LANDED_ON_GROUND
        if not v.landed:
            landed = {(4, 2): LANDED_TAKEOFF, (4, 6): LANDED_LANDING}.get((int(v.mode.main), v.mode.sub), LANDED_IN_AIR)
        return self.mav.extended_sys_state_encode(mavlink.MAV_VTOL_STATE_UNDEFINED, landed)

    def battery_status(self, v: VehicleView) -> mavlink.MAVLink_message:
        cells = [65535] * 10
        cell_mv = round(v.battery_voltage_v / max(v.battery_cells, 1) * 1000)
        for i in range(min(v.battery_cells, 10)):
            cells[i] = cell_mv
        return self.mav.battery_status_encode(
            0,
            mavlink.MAV_BATTERY_FUNCTION_ALL,
            mavlink.MAV_BATTERY_TYPE_LIPO,
            32767,
            cells,
            round(v.battery_current_a * 100),
            round(v.battery_consumed_mah),
            -1,
            round(v.battery_remaining * 100),
        )

    def attitude(self, v: VehicleView) -> mavlink.MAVLink_message:
        roll, pitch, yaw = euler_of(v.quaternion_ned_frd)
        p, q, r = (float(c) for c in v.rates_frd)
        return self.mav.attitude_encode(_ms(v), roll, pitch, yaw, p, q, r)

    def attitude_quaternion(self, v: VehicleView) -> mavlink.MAVLink_message:
        w, x, y, z = (float(c) for c in v.quaternion_ned_frd)
        p, q, r = (float(c) for c in v.rates_frd)
        return self.mav.attitude_quaternion_encode(_ms(v), w, x, y, z, p, q, r, [0.0, 0.0, 0.0, 0.0])

    def local_position_ned(self, v: VehicleView) -> mavlink.MAVLink_message:
        x, y, z = (float(c) for c in v.position_ned)
        vx, vy, vz = (float(c) for c in v.velocity_ned)
        return self.mav.local_position_ned_encode(_ms(v), x, y, z, vx, vy, vz)

    def odometry(self, v: VehicleView) -> mavlink.MAVLink_message:
        # PX4 sends the velocity in the child frame (body FRD), as the message definition says.
        velocity_frd = _rotation(v.quaternion_ned_frd).T @ v.velocity_ned
        x, y, z = (float(c) for c in v.position_ned)
        cov = [math.nan] + [0.0] * 20
        return self.mav.odometry_encode(
            round(v.time_boot_s * 1e6),
            mavlink.MAV_FRAME_LOCAL_NED,
            mavlink.MAV_FRAME_BODY_FRD,
            x,
            y,
            z,
            [float(c) for c in v.quaternion_ned_frd],
            *(float(c) for c in velocity_frd),
            *(float(c) for c in v.rates_frd),
            cov,
            cov,
            0,
            mavlink.MAV_ESTIMATOR_TYPE_AUTOPILOT,
            100,
        )

    def global_position_int(self, v: VehicleView) -> mavlink.MAVLink_message:
        lat, lon, alt = self.origin.to_global(v.position_ned)
        relative = float(v.home_ned[2] - v.position_ned[2])
        vx, vy, vz = (round(float(c) * 100) for c in v.velocity_ned)
        heading = round(math.degrees(euler_of(v.quaternion_ned_frd)[2]) % 360.0 * 100) % 36000
        return self.mav.global_position_int_encode(
            _ms(v), lat, lon, round(alt * 1000), round(relative * 1000), vx, vy, vz, heading
        )

    def gps_raw_int(self, v: VehicleView) -> mavlink.MAVLink_message:
        lat, lon, alt = self.origin.to_global(v.position_ned)
        speed = math.hypot(float(v.velocity_ned[0]), float(v.velocity_ned[1]))
        cog = round(math.degrees(math.atan2(float(v.velocity_ned[1]), float(v.velocity_ned[0]))) % 360.0 * 100)
        return self.mav.gps_raw_int_encode(
            round(v.time_boot_s * 1e6),
            mavlink.GPS_FIX_TYPE_3D_FIX,
            lat,
            lon,
            round(alt * 1000),
            80,
            120,
            round(speed * 100),
            cog % 36000,
            12,
        )

    def estimator_status(self, v: VehicleView) -> mavlink.MAVLink_message:
        flags = _ESTIMATOR_OK_FLAGS if v.estimator_ok else mavlink.ESTIMATOR_ACCEL_ERROR
        return self.mav.estimator_status_encode(
            round(v.time_boot_s * 1e6), flags, 0.1, 0.1, 0.1, 0.1, 0.0, 0.0, 0.5, 0.8
        )

    def home_position(self, v: VehicleView) -> mavlink.MAVLink_message:
        lat, lon, alt = self.origin.to_global(v.home_ned)
        x, y, z = (float(c) for c in v.home_ned)
        return self.mav.home_position_encode(
            lat, lon, round(alt * 1000), x, y, z, [1.0, 0.0, 0.0, 0.0], 0.0, 0.0, 0.0, round(v.time_boot_s * 1e6)
        )

    def altitude(self, v: VehicleView) -> mavlink.MAVLink_message:
        amsl = self.origin.alt_amsl_m - float(v.position_ned[2])
        local = -float(v.position_ned[2])
        relative = float(v.home_ned[2] - v.position_ned[2])
        return self.mav.altitude_encode(round(v.time_boot_s * 1e6), amsl, amsl, local, relative, math.nan, relative)

    def system_time(self, v: VehicleView) -> mavlink.MAVLink_message:
        return self.mav.system_time_encode(round(time.time() * 1e6), _ms(v))

    def autopilot_version(self, v: VehicleView) -> mavlink.MAVLink_message:
        caps = (
            mavlink.MAV_PROTOCOL_CAPABILITY_MAVLINK2
            | mavlink.MAV_PROTOCOL_CAPABILITY_COMMAND_INT
            | mavlink.MAV_PROTOCOL_CAPABILITY_PARAM_ENCODE_BYTEWISE
            | mavlink.MAV_PROTOCOL_CAPABILITY_SET_POSITION_TARGET_LOCAL_NED
            | mavlink.MAV_PROTOCOL_CAPABILITY_FLIGHT_TERMINATION
        )
        return self.mav.autopilot_version_encode(
            caps, _FLIGHT_SW_VERSION, _FLIGHT_SW_VERSION, 0, 0, [0] * 8, [0] * 8, [0] * 8, 0, 0, 0x50583453494D
        )


def _ms(v: VehicleView) -> int:
    return round(v.time_boot_s * 1000) & 0xFFFFFFFF


_BUILDERS = {
    mavlink.MAVLINK_MSG_ID_HEARTBEAT: TelemetryStreams.heartbeat,
    mavlink.MAVLINK_MSG_ID_SYS_STATUS: TelemetryStreams.sys_status,
    mavlink.MAVLINK_MSG_ID_EXTENDED_SYS_STATE: TelemetryStreams.extended_sys_state,
    mavlink.MAVLINK_MSG_ID_BATTERY_STATUS: TelemetryStreams.battery_status,
    mavlink.MAVLINK_MSG_ID_ATTITUDE: TelemetryStreams.attitude,
    mavlink.MAVLINK_MSG_ID_ATTITUDE_QUATERNION: TelemetryStreams.attitude_quaternion,
    mavlink.MAVLINK_MSG_ID_LOCAL_POSITION_NED: TelemetryStreams.local_position_ned,
    mavlink.MAVLINK_MSG_ID_ODOMETRY: TelemetryStreams.odometry,
    mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: TelemetryStreams.global_position_int,
    mavlink.MAVLINK_MSG_ID_GPS_RAW_INT: TelemetryStreams.gps_raw_int,
    mavlink.MAVLINK_MSG_ID_ESTIMATOR_STATUS: TelemetryStreams.estimator_status,
    mavlink.MAVLINK_MSG_ID_HOME_POSITION: TelemetryStreams.home_position,
    mavlink.MAVLINK_MSG_ID_ALTITUDE: TelemetryStreams.altitude,
    mavlink.MAVLINK_MSG_ID_SYSTEM_TIME: TelemetryStreams.system_time,
    mavlink.MAVLINK_MSG_ID_AUTOPILOT_VERSION: TelemetryStreams.autopilot_version,
}

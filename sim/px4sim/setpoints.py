"""Offboard setpoints: SET_POSITION_TARGET_LOCAL_NED read as PX4 reads it, and turned into a controller reference.

The type mask's bits say what to ignore (bit set = ignored): 0-2 position x, y, z; 3-5 velocity;
6-8 acceleration; 9 force (acceleration is a force: not supported, PX4 ignores such setpoints too);
10 yaw; 11 yaw rate. A NaN value is "not set" as well.

Frames, as PX4 reads them (PX4: src/modules/mavlink/mavlink_receiver.cpp,
handle_message_set_position_target_local_ned):
- MAV_FRAME_LOCAL_NED (1): position, velocity and acceleration in the local NED frame.
- MAV_FRAME_BODY_NED (8): the position is ignored; the velocity (forward, right, down) is turned into NED by
  the vehicle's heading only (down stays down); the acceleration by the full attitude. PX4 drops a whole
  vector when any of its three axes is masked. Yaw and yaw rate are taken as given (NED heading).
- Any other frame (MAV_FRAME_LOCAL_OFFSET_NED 7, MAV_FRAME_BODY_OFFSET_NED 9, ...) is refused with the
  critical STATUSTEXT "SET_POSITION_TARGET_LOCAL_NED coordinate frame N unsupported"; it is no setpoint.
- A body-frame message that leaves nothing to fly is refused ("SET_POSITION_TARGET_LOCAL_NED invalid").
Per axis, the reference is: the position where one is given (velocity and acceleration as
feed-forward); a point moving with the velocity where only a velocity is given; the present state
plus the acceleration where only that is given; a fixed hold point where nothing is given. The heading
turns towards the yaw setpoint at no more than `max_yaw_rate_rad_s` (PX4 limits yaw rate too), which keeps
a large yaw step from tilting the vehicle off its track.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from px4sim.px4_frames import ned_to_enu, wrap_angle, yaw_ned_to_enu, yaw_rate_ned_to_enu
from quadsim.controller import Reference
from quadsim.mujoco_vehicle import VehicleState

MAV_FRAME_LOCAL_NED = 1
MAV_FRAME_BODY_NED = 8
SUPPORTED_FRAMES = (MAV_FRAME_LOCAL_NED, MAV_FRAME_BODY_NED)
_VELOCITY_BITS = 0b111 << 3
_ACCELERATION_BITS = 0b111 << 6
_FORCE_BIT = 1 << 9
_YAW_BIT = 1 << 10
_YAW_RATE_BIT = 1 << 11
_ZERO3 = np.zeros(3)


@dataclass(frozen=True)
class OffboardSetpoint:
    """A setpoint in the project's frame (ENU world): NaN per axis where not set; yaw None where not set."""

    position_enu: NDArray[np.float64]
    velocity_enu: NDArray[np.float64]
    acceleration_enu: NDArray[np.float64]
    yaw_enu_rad: float | None
    yaw_rate_enu_rad_s: float | None


def _masked(values: tuple[float, float, float], mask: int, first_bit: int) -> NDArray[np.float64]:
    out = np.array(values, dtype=np.float64)
    for axis in range(3):
        if mask & (1 << (first_bit + axis)):
            out[axis] = np.nan
    return out


def setpoint_from_local_ned(
    type_mask: int,
    position_ned: tuple[float, float, float],
    velocity_ned: tuple[float, float, float],
    acceleration_ned: tuple[float, float, float],
    yaw_ned_rad: float,
    yaw_rate_ned_rad_s: float,
) -> OffboardSetpoint | None:
    """The setpoint a SET_POSITION_TARGET_LOCAL_NED carries, or None when it asks for force control."""
    if type_mask & _FORCE_BIT:
        return None
    yaw = None if type_mask & _YAW_BIT or not math.isfinite(yaw_ned_rad) else yaw_ned_to_enu(yaw_ned_rad)
    rate_ok = not type_mask & _YAW_RATE_BIT and math.isfinite(yaw_rate_ned_rad_s)
    yaw_rate = yaw_rate_ned_to_enu(yaw_rate_ned_rad_s) if rate_ok else None
    return OffboardSetpoint(
        position_enu=ned_to_enu(_masked(position_ned, type_mask, 0)),
        velocity_enu=ned_to_enu(_masked(velocity_ned, type_mask, 3)),
        acceleration_enu=ned_to_enu(_masked(acceleration_ned, type_mask, 6)),
        yaw_enu_rad=yaw,
        yaw_rate_enu_rad_s=yaw_rate,
    )


def setpoint_from_body_ned(
    type_mask: int,
    velocity_frd: tuple[float, float, float],
    acceleration_frd: tuple[float, float, float],
    yaw_ned_rad: float,
    yaw_rate_ned_rad_s: float,
    heading_ned_rad: float,
    rotation_ned_frd: NDArray[np.float64],
) -> OffboardSetpoint | None:
    """The setpoint a SET_POSITION_TARGET_LOCAL_NED in MAV_FRAME_BODY_NED carries, as PX4 reads it.

    `heading_ned_rad` is the vehicle's heading and `rotation_ned_frd` its attitude (3x3, body FRD to NED).
    None when PX4 would refuse it: force control, or neither velocity nor acceleration left.
    """
    if type_mask & _FORCE_BIT:
        return None
    velocity_ned = np.full(3, np.nan)
    if not type_mask & _VELOCITY_BITS:
        forward, right, down = (float(c) for c in velocity_frd)
        cos_h, sin_h = math.cos(heading_ned_rad), math.sin(heading_ned_rad)
        velocity_ned = np.array([cos_h * forward - sin_h * right, sin_h * forward + cos_h * right, down])
    acceleration_ned = np.full(3, np.nan)
    if not type_mask & _ACCELERATION_BITS:
        acceleration_ned = np.asarray(rotation_ned_frd, dtype=np.float64) @ np.asarray(acceleration_frd, dtype=float)
    if not (np.isfinite(velocity_ned).any() or np.isfinite(acceleration_ned).any()):
        return None
    yaw = None if type_mask & _YAW_BIT or not math.isfinite(yaw_ned_rad) else yaw_ned_to_enu(yaw_ned_rad)
    rate_ok = not type_mask & _YAW_RATE_BIT and math.isfinite(yaw_rate_ned_rad_s)
    return OffboardSetpoint(
        position_enu=np.full(3, np.nan),
        velocity_enu=ned_to_enu(velocity_ned),
        acceleration_enu=ned_to_enu(acceleration_ned),
        yaw_enu_rad=yaw,
        yaw_rate_enu_rad_s=yaw_rate_ned_to_enu(yaw_rate_ned_rad_s) if rate_ok else None,
    )


class OffboardTracker:
    """Turns the latest offboard setpoint into a controller reference each control period."""

    def __init__(self, max_yaw_rate_rad_s: float = math.radians(60.0)) -> None:
        self.max_yaw_rate_rad_s = max_yaw_rate_rad_s
        self._point: NDArray[np.float64] | None = None
        self._yaw = 0.0

    def reset(self, state: VehicleState, yaw_enu_rad: float) -> None:
        """Start from the vehicle's present position and heading (on entering offboard)."""
        self._point = state.position_m.copy()
        self._yaw = yaw_enu_rad

    def reference(self, sp: OffboardSetpoint, state: VehicleState, dt_s: float) -> Reference:
        """The reference for this period (see the module docstring)."""
        if self._point is None:
            self._point = state.position_m.copy()
        point = self._point
        position = np.empty(3)
        velocity = np.zeros(3)
        acceleration = np.where(np.isfinite(sp.acceleration_enu), sp.acceleration_enu, 0.0)
        for axis in range(3):
            p, v = sp.position_enu[axis], sp.velocity_enu[axis]
            if math.isfinite(p):
                point[axis] = p
                velocity[axis] = v if math.isfinite(v) else 0.0
            elif math.isfinite(v):
                point[axis] += v * dt_s
                velocity[axis] = v
            elif math.isfinite(sp.acceleration_enu[axis]):
                point[axis] = state.position_m[axis]
                velocity[axis] = state.velocity_m_s[axis]
            position[axis] = point[axis]
        if sp.yaw_enu_rad is not None:
            step = wrap_angle(sp.yaw_enu_rad - self._yaw)
            limit = self.max_yaw_rate_rad_s * dt_s
            self._yaw = wrap_angle(self._yaw + max(-limit, min(limit, step)))
        elif sp.yaw_rate_enu_rad_s is not None:
            rate = max(-self.max_yaw_rate_rad_s, min(self.max_yaw_rate_rad_s, sp.yaw_rate_enu_rad_s))
            self._yaw = wrap_angle(self._yaw + rate * dt_s)
        return Reference(position, velocity, acceleration, self._yaw, _ZERO3, _ZERO3)

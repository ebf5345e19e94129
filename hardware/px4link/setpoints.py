"""Trajectory samples (ENU) as PX4 position targets (SET_POSITION_TARGET_LOCAL_NED): position, velocity and
acceleration feed-forward, yaw and yaw rate, all converted through quadsim.frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from pymavlink.dialects.v20 import common as mavlink2

from quadsim import frames
from quadsim.aero import AeroModel, drag_compensated_acceleration

TYPE_MASK_FULL = 0
"""Position, velocity, acceleration, yaw and yaw rate all used."""
TYPE_MASK_NO_YAW_RATE = mavlink2.POSITION_TARGET_TYPEMASK_YAW_RATE_IGNORE
"""Position, velocity, acceleration and yaw used; yaw rate ignored."""


class TrajectoryLike(Protocol):
    """What the streamer can follow: `quadsim.sampled_trajectory.SampledTrajectory` is one."""

    def derivatives(self, t_s: float) -> NDArray[np.float64]:
        """At least `3 x 4` (position, velocity, acceleration; axes x, y, z, yaw) in ENU at time `t_s`."""
        ...


@dataclass(frozen=True)
class PositionTargetNed:
    """One setpoint in PX4's local NED frame (what SET_POSITION_TARGET_LOCAL_NED carries)."""

    position_ned_m: tuple[float, float, float]
    velocity_ned_m_s: tuple[float, float, float]
    acceleration_ned_m_s2: tuple[float, float, float]
    yaw_ned_rad: float
    yaw_rate_ned_rad_s: float
    type_mask: int = TYPE_MASK_FULL

    @property
    def position_enu_m(self) -> tuple[float, float, float]:
        """The position back in ENU (for geofence checks)."""
        p = frames.ned_to_enu(self.position_ned_m)
        return (float(p[0]), float(p[1]), float(p[2]))


def _t3(v: NDArray[np.float64]) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


def target_from_derivatives(
    derivatives_enu: NDArray[np.float64], send_yaw_rate: bool = True, aero: AeroModel | None = None
) -> PositionTargetNed:
    """A PX4 setpoint from trajectory derivatives: rows position, velocity, acceleration; columns x, y, z, yaw (ENU).

    With `aero`, the acceleration feed-forward also cancels the rotor drag and lift predicted along the reference
    (`quadsim.aero.drag_compensated_acceleration`): PX4's position controller has no drag model."""
    d = np.asarray(derivatives_enu, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 3 or d.shape[1] != 4:
        raise ValueError(f"derivatives must be (>=3) x 4 (order x [x, y, z, yaw]), got shape {d.shape}")
    if not np.isfinite(d[:3]).all():
        raise ValueError("trajectory derivatives are not finite")
    acceleration = d[2, :3] if aero is None else drag_compensated_acceleration(aero, d)
    return PositionTargetNed(
        position_ned_m=_t3(frames.enu_to_ned(d[0, :3])),
        velocity_ned_m_s=_t3(frames.enu_to_ned(d[1, :3])),
        acceleration_ned_m_s2=_t3(frames.enu_to_ned(acceleration)),
        yaw_ned_rad=frames.yaw_enu_to_ned(float(d[0, 3])),
        yaw_rate_ned_rad_s=frames.yaw_rate_enu_to_ned(float(d[1, 3])) if send_yaw_rate else 0.0,
        type_mask=TYPE_MASK_FULL if send_yaw_rate else TYPE_MASK_NO_YAW_RATE,
    )


def hold_target(
    position_enu_m: tuple[float, float, float] | NDArray[np.float64], yaw_enu_rad: float
) -> PositionTargetNed:
    """A setpoint that holds a point at rest."""
    d = np.zeros((3, 4))
    d[0, :3] = np.asarray(position_enu_m, dtype=np.float64)[:3]
    d[0, 3] = yaw_enu_rad
    return target_from_derivatives(d, send_yaw_rate=True)


def encode_target(
    mav: object, target: PositionTargetNed, time_boot_ms: int, target_system: int, target_component: int
) -> object:
    """SET_POSITION_TARGET_LOCAL_NED (MAV_FRAME_LOCAL_NED) for a setpoint."""
    encode = mav.set_position_target_local_ned_encode  # type: ignore[attr-defined]
    return encode(
        time_boot_ms & 0xFFFFFFFF,
        target_system,
        target_component,
        mavlink2.MAV_FRAME_LOCAL_NED,
        target.type_mask,
        *target.position_ned_m,
        *target.velocity_ned_m_s,
        *target.acceleration_ned_m_s2,
        target.yaw_ned_rad,
        target.yaw_rate_ned_rad_s,
    )

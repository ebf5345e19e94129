"""Frames, once for the whole project: the project's (ENU/FLU) and PX4's (NED/FRD), heading and angle wrap.

The project (and ROS, REP 103/105) uses world ENU (x east, y north, z up) and body FLU (x forward,
y left, z up). PX4 and MAVLink use world NED (x north, y east, z down) and body FRD (x forward,
y right, z down). Quaternions are scalar-first [w, x, y, z] and rotate body vectors into the world.

Heading (yaw) has one convention: `yaw_of`, the angle from east, counter-clockwise, of the direction
(cos yaw, sin yaw, 0) that the body y axis is perpendicular to, as the flatness map and the controller
define it; for a level vehicle it is the usual ZYX yaw. Angles are wrapped to (-pi, pi] by `wrap_angle`.
"""

from __future__ import annotations

import math
from typing import overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

# ENU <-> NED swaps x and y and negates z; FLU <-> FRD negates y and z (a rotation by pi about x). Each is
# its own inverse. Each is one fancy index and one multiply (a few microseconds for one vector: these run for every
# setpoint and every telemetry message).
_ENU_NED_AXES = np.array([1, 0, 2])
_ENU_NED_SIGNS = np.array([1.0, 1.0, -1.0])
_FLU_FRD_SIGNS = np.array([1.0, -1.0, -1.0])


def enu_to_ned(v: ArrayLike) -> NDArray[np.float64]:
    """A world vector (position, velocity, acceleration) from ENU to NED; works on (..., 3) arrays."""
    a = np.asarray(v, dtype=np.float64)
    return a[..., _ENU_NED_AXES] * _ENU_NED_SIGNS


def ned_to_enu(v: ArrayLike) -> NDArray[np.float64]:
    """A world vector from NED to ENU; works on (..., 3) arrays."""
    a = np.asarray(v, dtype=np.float64)
    return a[..., _ENU_NED_AXES] * _ENU_NED_SIGNS


def flu_to_frd(v: ArrayLike) -> NDArray[np.float64]:
    """A body vector (angular rate, body velocity) from FLU to FRD; works on (..., 3) arrays."""
    return np.asarray(v, dtype=np.float64) * _FLU_FRD_SIGNS


def frd_to_flu(v: ArrayLike) -> NDArray[np.float64]:
    """A body vector from FRD to FLU; works on (..., 3) arrays."""
    return flu_to_frd(v)


def yaw_enu_to_ned(yaw_enu: float) -> float:
    """Heading from ENU (0 = east, counter-clockwise) to NED (0 = north, clockwise), wrapped to (-pi, pi]."""
    return wrap_angle(math.pi / 2.0 - yaw_enu)


def yaw_ned_to_enu(yaw_ned: float) -> float:
    """Heading from NED to ENU, wrapped to (-pi, pi]."""
    return wrap_angle(math.pi / 2.0 - yaw_ned)


def yaw_rate_enu_to_ned(rate_enu: float) -> float:
    """A yaw rate about world up (ENU) as a rate about world down (NED)."""
    return -rate_enu


@overload
def wrap_angle(angle: float) -> float: ...


@overload
def wrap_angle(angle: NDArray[np.float64]) -> NDArray[np.float64]: ...


def wrap_angle(angle: float | NDArray[np.float64]) -> float | NDArray[np.float64]:
    """Angles wrapped to (-pi, pi]: a float for a float, an array for an array."""
    if np.ndim(angle) == 0:
        w = math.remainder(float(angle), 2.0 * math.pi)
        return math.pi if w == -math.pi else w
    return np.asarray(-((-np.asarray(angle, dtype=np.float64) + np.pi) % (2.0 * np.pi) - np.pi))


def yaw_of(r: NDArray[np.float64]) -> float:
    """Heading (rad) of a body frame given as a rotation matrix (the project's one convention, see above).

    The body y axis is perpendicular to the heading direction (cos yaw, sin yaw, 0), so
    yaw = atan2(-R[0, 1], R[1, 1]); it equals the usual ZYX yaw when the vehicle is level.
    """
    return float(np.arctan2(-r[0, 1], r[1, 1]))


def _change_frames(q_wxyz: ArrayLike) -> NDArray[np.float64]:
    """R -> A R B for the two frame changes (A: ENU <-> NED, B: FLU <-> FRD), on the quaternion directly.

    A is a half turn about (1, 1, 0)/sqrt(2), quaternion (0, s, s, 0); B a half turn about x, (0, 1, 0, 0);
    both are their own inverses, so the same map converts either way. Closed form of qA * q * qB (Hamilton
    products), normalised, with w >= 0 (as `quadsim.rotations.matrix_to_quat_wxyz` gives): a few microseconds,
    where the matrix route costs tens (this runs for every attitude message).
    """
    w, x, y, z = (float(c) for c in np.asarray(q_wxyz, dtype=np.float64).reshape(4))
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    if not norm > 0.0 or not math.isfinite(norm):
        raise ValueError(f"not a rotation quaternion: {[w, x, y, z]}")
    k = -1.0 / (math.sqrt(2.0) * norm)  # the sign makes w >= 0 for the usual case; fixed below otherwise
    out = np.array([k * (w + z), k * (x + y), k * (x - y), k * (w - z)])
    return -out if out[0] < 0.0 else out


def quat_enu_flu_to_ned_frd(q_wxyz: ArrayLike) -> NDArray[np.float64]:
    """Attitude (body FLU -> world ENU) as PX4's attitude (body FRD -> world NED), [w, x, y, z]."""
    return _change_frames(q_wxyz)


def quat_ned_frd_to_enu_flu(q_wxyz: ArrayLike) -> NDArray[np.float64]:
    """PX4's attitude (body FRD -> world NED) as the project's (body FLU -> world ENU), [w, x, y, z]."""
    return _change_frames(q_wxyz)

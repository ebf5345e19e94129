"""Differential flatness: thrust, attitude, body rates, torques and rotor speeds along a trajectory.

From the flat outputs (position through snap, yaw through yaw acceleration) of a quadrotor, the
collective thrust, the body frame, its angular velocity and angular acceleration follow in closed
form (Mellinger and Kumar, 2011), hence the torques and, through the mixer, each rotor's thrust and
speed. The body frame is built from the thrust direction z_b and the heading x_c = (cos yaw, sin yaw, 0):
y_b = z_b x x_c / |z_b x x_c|, x_b = y_b x z_b.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

_MIN_THRUST_N = 1e-6
_MIN_HEADING_NORM = 1e-6


@dataclass(frozen=True)
class FlatState:
    """Vehicle state and inputs along a trajectory, one row per sample (`K` samples).

    Attributes:
        thrust_n: `K` collective thrust.
        rotation: `K x 3 x 3` body-to-world rotations.
        body_rates_rad_s: `K x 3` angular velocity in the body frame.
        body_angular_accel_rad_s2: `K x 3` angular acceleration in the body frame.
        torque_nm: `K x 3` body torques.
        rotor_thrusts_n: `K x 4` thrust of each rotor (negative where the manoeuvre would need it).
        rotor_speeds_rad_s: `K x 4` signed rotor speeds (negative where thrust is negative).
        singular: `K` flags where thrust vanishes or the heading is undefined (free fall, 90 deg pitch).
    """

    thrust_n: NDArray[np.float64]
    rotation: NDArray[np.float64]
    body_rates_rad_s: NDArray[np.float64]
    body_angular_accel_rad_s2: NDArray[np.float64]
    torque_nm: NDArray[np.float64]
    rotor_thrusts_n: NDArray[np.float64]
    rotor_speeds_rad_s: NDArray[np.float64]
    singular: NDArray[np.bool_]


def _cross(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row-wise cross product of `K x 3` arrays (np.cross has a large per-call overhead)."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[:, 0] = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    out[:, 1] = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    out[:, 2] = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return out


@lru_cache(maxsize=16)
def _vehicle_constants(vehicle: VehicleParams) -> tuple[float, float, float, float, NDArray[np.float64]]:
    """Inertia (Jx, Jy, Jz), mass and mixer of a vehicle, computed once (the mixer is a matrix inverse)."""
    jx, jy, jz = (float(i) for i in vehicle.inertia_kg_m2)
    mixer = vehicle.mixer_matrix
    mixer.setflags(write=False)  # shared by every caller through the cache: nobody may change it
    return jx, jy, jz, float(vehicle.mass_kg), mixer


@dataclass(frozen=True)
class _Core:
    """What `flat_state` computes, axis-major: vectors are `3 x K`, scalars `K`."""

    thrust: NDArray[np.float64]
    x_b: NDArray[np.float64]
    y_b: NDArray[np.float64]
    z_b: NDArray[np.float64]
    rates: NDArray[np.float64]
    accel: NDArray[np.float64]
    torque: NDArray[np.float64]
    rotor_thrusts: NDArray[np.float64]  # 4 x K
    singular: NDArray[np.bool_]


def _flat_core(derivatives: NDArray[np.float64], vehicle: VehicleParams, frame: bool = True) -> _Core:
    """`flat_state` on axis-major derivatives (`5 x 4 x K`: order, axis, sample).

    The algebra is that of the module docstring, written with identities of the orthonormal frame to save
    operations (all products of `K`-vectors, no `K x 3` temporaries): with c = a + g e3, z = c / |c|,
    P = I - z z^T, z' = P j / |c|, z'' = (P s - z (z'.j) - 2 z' (z.j)) / |c|; u = z x x_c,
    p = -z'.y_b, q = z'.x_b, r = -u'.x_b / |u|, p' = -z''.y_b + r q, q' = z''.x_b - r p,
    r' = -(u''.x_b - q (u'.z)) / |u| - 2 r (u'.y_b) / |u|.
    """
    jx, jy, jz, mass, mixer = _vehicle_constants(vehicle)
    k = derivatives.shape[2]
    c0, c1 = derivatives[2, 0], derivatives[2, 1]
    c2 = derivatives[2, 2] + GRAVITY_M_S2
    j0, j1, j2 = derivatives[3, 0], derivatives[3, 1], derivatives[3, 2]
    s0, s1, s2 = derivatives[4, 0], derivatives[4, 1], derivatives[4, 2]
    yaw, yaw_rate, yaw_accel = derivatives[0, 3], derivatives[1, 3], derivatives[2, 3]

    norm = np.sqrt(c0 * c0 + c1 * c1 + c2 * c2)
    thrust = mass * norm
    inv = 1.0 / np.maximum(norm, _MIN_THRUST_N / mass)
    z0, z1, z2 = c0 * inv, c1 * inv, c2 * inv
    zj = z0 * j0 + z1 * j1 + z2 * j2
    zd0, zd1, zd2 = (j0 - zj * z0) * inv, (j1 - zj * z1) * inv, (j2 - zj * z2) * inv
    zdj = zd0 * j0 + zd1 * j1 + zd2 * j2
    zs = z0 * s0 + z1 * s1 + z2 * s2
    two_zj = 2.0 * zj
    zdd0 = (s0 - zs * z0 - zdj * z0 - two_zj * zd0) * inv
    zdd1 = (s1 - zs * z1 - zdj * z1 - two_zj * zd1) * inv
    zdd2 = (s2 - zs * z2 - zdj * z2 - two_zj * zd2) * inv

    cy, sy = np.cos(yaw), np.sin(yaw)
    # u = z x x_c, w = z x y_c (x_c = (cy, sy, 0), y_c = (-sy, cy, 0)).
    u0, u1, u2 = -z2 * sy, z2 * cy, z0 * sy - z1 * cy
    w0, w1, w2 = -z2 * cy, -z2 * sy, z0 * cy + z1 * sy
    norm_u = np.sqrt(u0 * u0 + u1 * u1 + u2 * u2)
    inv_u = 1.0 / np.maximum(norm_u, _MIN_HEADING_NORM)
    yb0, yb1, yb2 = u0 * inv_u, u1 * inv_u, u2 * inv_u
    xb0, xb1, xb2 = yb1 * z2 - yb2 * z1, yb2 * z0 - yb0 * z2, yb0 * z1 - yb1 * z0
    # u' = z' x x_c + yaw_rate w;  u'' = z'' x x_c + 2 yaw_rate (z' x y_c) + yaw_accel w - yaw_rate^2 u.
    ud0 = -zd2 * sy + yaw_rate * w0
    ud1 = zd2 * cy + yaw_rate * w1
    ud2 = zd0 * sy - zd1 * cy + yaw_rate * w2
    two_rate, rate_sq = 2.0 * yaw_rate, yaw_rate * yaw_rate
    udd0 = -zdd2 * sy - two_rate * zd2 * cy + yaw_accel * w0 - rate_sq * u0
    udd1 = zdd2 * cy - two_rate * zd2 * sy + yaw_accel * w1 - rate_sq * u1
    udd2 = zdd0 * sy - zdd1 * cy + two_rate * (zd0 * cy + zd1 * sy) + yaw_accel * w2 - rate_sq * u2

    p = -(zd0 * yb0 + zd1 * yb1 + zd2 * yb2)
    q = zd0 * xb0 + zd1 * xb1 + zd2 * xb2
    r = -(ud0 * xb0 + ud1 * xb1 + ud2 * xb2) * inv_u
    p_dot = r * q - (zdd0 * yb0 + zdd1 * yb1 + zdd2 * yb2)
    q_dot = (zdd0 * xb0 + zdd1 * xb1 + zdd2 * xb2) - r * p
    norm_dot = yb0 * ud0 + yb1 * ud1 + yb2 * ud2
    ud_z = ud0 * z0 + ud1 * z1 + ud2 * z2
    r_dot = (q * ud_z - (udd0 * xb0 + udd1 * xb1 + udd2 * xb2) - 2.0 * r * norm_dot) * inv_u

    wrench = np.empty((4, k))
    wrench[0] = thrust
    np.multiply(p_dot, jx, out=wrench[1])
    wrench[1] += (jz - jy) * (q * r)
    np.multiply(q_dot, jy, out=wrench[2])
    wrench[2] += (jx - jz) * (r * p)
    np.multiply(r_dot, jz, out=wrench[3])
    wrench[3] += (jy - jx) * (p * q)
    rotor_thrusts = mixer @ wrench
    singular = (thrust < 10 * _MIN_THRUST_N) | (norm_u < 10 * _MIN_HEADING_NORM)
    if not frame:
        empty = np.empty((3, 0))
        return _Core(thrust, empty, empty, empty, empty, empty, wrench[1:], rotor_thrusts, singular)
    return _Core(
        thrust,
        np.array([xb0, xb1, xb2]),
        np.array([yb0, yb1, yb2]),
        np.array([z0, z1, z2]),
        np.array([p, q, r]),
        np.array([p_dot, q_dot, r_dot]),
        wrench[1:],
        rotor_thrusts,
        singular,
    )


def flat_rotor_thrusts(
    derivatives: NDArray[np.float64], vehicle: VehicleParams
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Rotor thrusts `4 x K` and singular flags `K` from axis-major derivatives `5 x 4 x K` (order, axis,
    sample): the part of `flat_state` a rotor check needs, without building the frame."""
    core = _flat_core(derivatives, vehicle, frame=False)
    return core.rotor_thrusts, core.singular


def flat_state(derivatives: NDArray[np.float64], vehicle: VehicleParams) -> FlatState:
    """Compute the vehicle's state and inputs from the flat outputs.

    Args:
        derivatives: `5 x K x 4` array from `Trajectory.derivatives(times, max_order=4)`:
            derivative order 0..4 (position to snap), sample, axis (x, y, z, yaw).
        vehicle: the quadrotor.
    """
    core = _flat_core(np.ascontiguousarray(np.asarray(derivatives, dtype=np.float64).transpose(0, 2, 1)), vehicle)
    rotation = np.stack([core.x_b.T, core.y_b.T, core.z_b.T], axis=2)
    rotor_thrusts = np.ascontiguousarray(core.rotor_thrusts.T)
    return FlatState(
        thrust_n=core.thrust,
        rotation=rotation,
        body_rates_rad_s=np.ascontiguousarray(core.rates.T),
        body_angular_accel_rad_s2=np.ascontiguousarray(core.accel.T),
        torque_nm=np.ascontiguousarray(core.torque.T),
        rotor_thrusts_n=rotor_thrusts,
        rotor_speeds_rad_s=vehicle.rotor_speeds_from_thrusts(rotor_thrusts),
        singular=core.singular,
    )

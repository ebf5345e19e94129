"""Differential flatness: thrust, attitude, body rates, torques and rotor speeds along a trajectory.

From the flat outputs (position through snap, yaw through yaw acceleration) of a quadrotor, the
collective thrust, the body frame, its angular velocity and angular acceleration follow in closed
form (Mellinger and Kumar, 2011), hence the torques and, through the mixer, each rotor's thrust and
speed. The body frame is built from the thrust direction z_b and the heading x_c = (cos yaw, sin yaw, 0):
y_b = z_b x x_c / |z_b x x_c|, x_b = y_b x z_b.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _dot(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.einsum("ki,ki->k", a, b)[:, None]


def flat_state(derivatives: NDArray[np.float64], vehicle: VehicleParams) -> FlatState:
    """Compute the vehicle's state and inputs from the flat outputs.

    Args:
        derivatives: `5 x K x 4` array from `Trajectory.derivatives(times, max_order=4)`:
            derivative order 0..4 (position to snap), sample, axis (x, y, z, yaw).
        vehicle: the quadrotor.
    """
    acc, jerk, snap = derivatives[2, :, :3], derivatives[3, :, :3], derivatives[4, :, :3]
    yaw, yaw_rate, yaw_accel = derivatives[0, :, 3:4], derivatives[1, :, 3:4], derivatives[2, :, 3:4]
    mass = vehicle.mass_kg

    thrust_vec = mass * (acc + np.array([0.0, 0.0, GRAVITY_M_S2]))
    thrust_dot = mass * jerk
    thrust_ddot = mass * snap
    thrust = np.linalg.norm(thrust_vec, axis=1, keepdims=True)
    safe_thrust = np.maximum(thrust, _MIN_THRUST_N)
    z_b = thrust_vec / safe_thrust

    def project(v: NDArray[np.float64]) -> NDArray[np.float64]:
        return v - _dot(z_b, v) * z_b

    z_dot = project(thrust_dot) / safe_thrust
    thrust_rate = _dot(z_b, thrust_dot)
    proj_dot = -(z_dot * _dot(z_b, thrust_dot) + z_b * _dot(z_dot, thrust_dot))
    z_ddot = (proj_dot + project(thrust_ddot)) / safe_thrust - project(thrust_dot) * thrust_rate / safe_thrust**2

    cos_y, sin_y, zero = np.cos(yaw), np.sin(yaw), np.zeros_like(yaw)
    x_c = np.hstack([cos_y, sin_y, zero])
    y_c = np.hstack([-sin_y, cos_y, zero])
    x_c_dot = yaw_rate * y_c
    x_c_ddot = yaw_accel * y_c - yaw_rate**2 * x_c

    u = _cross(z_b, x_c)
    norm_u = np.linalg.norm(u, axis=1, keepdims=True)
    safe_norm = np.maximum(norm_u, _MIN_HEADING_NORM)
    y_b = u / safe_norm
    x_b = _cross(y_b, z_b)
    u_dot = _cross(z_dot, x_c) + _cross(z_b, x_c_dot)
    u_ddot = _cross(z_ddot, x_c) + 2.0 * _cross(z_dot, x_c_dot) + _cross(z_b, x_c_ddot)

    p = -_dot(z_dot, y_b)
    q = _dot(z_dot, x_b)
    r = -_dot(u_dot, x_b) / safe_norm
    x_b_dot = r * y_b - q * z_b
    y_b_dot = -r * x_b + p * z_b
    p_dot = -_dot(z_ddot, y_b) - _dot(z_dot, y_b_dot)
    q_dot = _dot(z_ddot, x_b) + _dot(z_dot, x_b_dot)
    norm_dot = _dot(y_b, u_dot)
    r_dot = -(_dot(u_ddot, x_b) + _dot(u_dot, x_b_dot)) / safe_norm + _dot(u_dot, x_b) * norm_dot / safe_norm**2

    rates = np.hstack([p, q, r])
    accel = np.hstack([p_dot, q_dot, r_dot])
    inertia = np.asarray(vehicle.inertia_kg_m2)
    torque = accel * inertia + _cross(rates, rates * inertia)
    wrench = np.hstack([thrust, torque])
    rotor_thrusts = wrench @ vehicle.mixer_matrix.T
    rotation = np.stack([x_b, y_b, z_b], axis=2)
    singular = ((thrust < 10 * _MIN_THRUST_N) | (norm_u < 10 * _MIN_HEADING_NORM)).reshape(-1)
    return FlatState(
        thrust_n=thrust.reshape(-1),
        rotation=rotation,
        body_rates_rad_s=rates,
        body_angular_accel_rad_s2=accel,
        torque_nm=torque,
        rotor_thrusts_n=rotor_thrusts,
        rotor_speeds_rad_s=vehicle.rotor_speeds_from_thrusts(rotor_thrusts),
        singular=singular,
    )

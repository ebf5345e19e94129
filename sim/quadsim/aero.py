"""The quadrotor's aerodynamics beyond ideal thrust: rotor drag, induced inflow, translational lift, parasitic drag.

The model is RotorPy's (`rotorpy.vehicles.multirotor.Multirotor.compute_body_wrench` with `aero=True`,
flapping moments off as in `VehicleParams.to_rotorpy`), written here from its equations so the MuJoCo
vehicle can fly the same physics and the tracking controller can predict it. For rotor i at hub
position r_i with speed w_i, in the body frame, with v the body airspeed and W the body rates:

    local airspeed  u_i = v + W x r_i
    rotor drag      H_i = -w_i diag(k_d, k_d, k_z) u_i        (the z part is the induced-inflow loss)
    lift            L_i = k_h (u_ix^2 + u_iy^2) along body z  (translational lift)
    parasitic       D   = -|v| diag(c_Dx, c_Dy, c_Dz) v       (at the centre of mass)

The force is sum(H_i + L_i) + D and the moment sum(r_i x (H_i + L_i)). The tests check both against
RotorPy's own function.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from quadsim.vehicle import GRAVITY_M_S2, VehicleParams


class AeroModel:
    """The vehicle's aerodynamic coefficients, precomputed: it is evaluated at every control and physics step."""

    def __init__(self, vehicle: VehicleParams) -> None:
        self.vehicle = vehicle
        self.hubs = np.array(vehicle.rotor_positions_m, dtype=np.float64)  # 4 x 3
        self.rotor_coeffs = np.array([vehicle.rotor_drag_coeff, vehicle.rotor_drag_coeff, vehicle.induced_inflow_coeff])
        self.parasitic = np.array(vehicle.parasitic_drag_n_per_m2_s2, dtype=np.float64)
        self.lift = float(vehicle.translational_lift_coeff)
        self.mass_kg = float(vehicle.mass_kg)
        self.thrust_coeff = float(vehicle.thrust_coeff_n_per_rad2_s2)

    def wrench_body(
        self, airspeed: NDArray[np.float64], body_rates: NDArray[np.float64], rotor_speeds: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Force (N) and moment (N m) in the body frame (see the module docstring)."""
        hubs = self.hubs
        wx, wy, wz = float(body_rates[0]), float(body_rates[1]), float(body_rates[2])
        local = np.empty((4, 3))
        local[:, 0] = airspeed[0] + wy * hubs[:, 2] - wz * hubs[:, 1]
        local[:, 1] = airspeed[1] + wz * hubs[:, 0] - wx * hubs[:, 2]
        local[:, 2] = airspeed[2] + wx * hubs[:, 1] - wy * hubs[:, 0]
        per_rotor = -np.abs(rotor_speeds)[:, None] * self.rotor_coeffs * local
        per_rotor[:, 2] += self.lift * (local[:, 0] ** 2 + local[:, 1] ** 2)
        speed = float(np.sqrt(airspeed[0] ** 2 + airspeed[1] ** 2 + airspeed[2] ** 2))
        force = per_rotor.sum(axis=0) - speed * self.parasitic * airspeed
        fx, fy, fz = per_rotor[:, 0], per_rotor[:, 1], per_rotor[:, 2]
        rx, ry, rz = hubs[:, 0], hubs[:, 1], hubs[:, 2]
        moment = np.array(
            [float(np.sum(ry * fz - rz * fy)), float(np.sum(rz * fx - rx * fz)), float(np.sum(rx * fy - ry * fx))]
        )
        return force, moment

    def predicted_force_world(
        self, rotation: NDArray[np.float64], velocity: NDArray[np.float64], acceleration: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """The force (world frame) the controller expects at this velocity and commanded acceleration: still
        air (the wind is left to integral action), no body rates, and every rotor at the speed that gives the
        thrust the acceleration needs."""
        ax, ay, az = float(acceleration[0]), float(acceleration[1]), float(acceleration[2]) + GRAVITY_M_S2
        thrust_n = self.mass_kg * float(np.sqrt(ax * ax + ay * ay + az * az))
        total_speed = 4.0 * float(np.sqrt(thrust_n / (4.0 * self.thrust_coeff)))
        v = rotation.T @ velocity
        airspeed = float(np.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2))
        force = -(total_speed * self.rotor_coeffs + airspeed * self.parasitic) * v
        force[2] += 4.0 * self.lift * (v[0] ** 2 + v[1] ** 2)
        return np.asarray(rotation @ force, dtype=np.float64)


def aero_wrench_body(
    vehicle: VehicleParams,
    airspeed_body_m_s: NDArray[np.float64],
    body_rates_rad_s: NDArray[np.float64],
    rotor_speeds_rad_s: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Aerodynamic force (N) and moment (N m) on the body, both in the body frame (see the module docstring)."""
    return AeroModel(vehicle).wrench_body(
        np.asarray(airspeed_body_m_s, dtype=np.float64),
        np.asarray(body_rates_rad_s, dtype=np.float64),
        np.asarray(rotor_speeds_rad_s, dtype=np.float64),
    )


def predicted_aero_force_world(
    vehicle: VehicleParams,
    rotation: NDArray[np.float64],
    velocity_m_s: NDArray[np.float64],
    acceleration_m_s2: NDArray[np.float64],
) -> NDArray[np.float64]:
    """`AeroModel.predicted_force_world` for one call (build an `AeroModel` once to call it every step)."""
    return AeroModel(vehicle).predicted_force_world(
        np.asarray(rotation, dtype=np.float64),
        np.asarray(velocity_m_s, dtype=np.float64),
        np.asarray(acceleration_m_s2, dtype=np.float64),
    )


def drag_compensated_acceleration(aero: AeroModel, derivatives: NDArray[np.float64]) -> NDArray[np.float64]:
    """The acceleration to ask a drag-blind controller (PX4's) for, so that the vehicle gets the reference's:
    the reference acceleration minus the aerodynamic force predicted along it (attitude from the thrust axis
    and the reference yaw), over the mass. `derivatives`: rows position, velocity, acceleration; columns
    x, y, z, yaw (world ENU)."""
    d = np.asarray(derivatives, dtype=np.float64)
    acceleration = d[2, :3]
    thrust_axis = acceleration + np.array([0.0, 0.0, GRAVITY_M_S2])
    b3 = thrust_axis / max(float(np.linalg.norm(thrust_axis)), 1e-9)
    heading = np.array([np.cos(d[0, 3]), np.sin(d[0, 3]), 0.0])
    b2 = np.cross(b3, heading)
    b2 /= max(float(np.linalg.norm(b2)), 1e-9)
    rotation = np.column_stack([np.cross(b2, b3), b2, b3])
    force = aero.predicted_force_world(rotation, d[1, :3], acceleration)
    return np.asarray(acceleration - force / aero.mass_kg, dtype=np.float64)

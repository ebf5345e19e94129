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

import math

import numpy as np
from numpy.typing import NDArray

from quadsim.vehicle import GRAVITY_M_S2, VehicleParams


class AeroModel:
    """The vehicle's aerodynamic coefficients, for evaluation at every control and physics step (plain float
    arithmetic: on 4 rotors it is several times faster than NumPy's small-array calls)."""

    def __init__(self, vehicle: VehicleParams) -> None:
        self.vehicle = vehicle
        self.hubs = [(float(h[0]), float(h[1]), float(h[2])) for h in vehicle.rotor_positions_m]
        self.rotor_drag = float(vehicle.rotor_drag_coeff)
        self.inflow = float(vehicle.induced_inflow_coeff)
        self.lift = float(vehicle.translational_lift_coeff)
        cx, cy, cz = vehicle.parasitic_drag_n_per_m2_s2
        self.parasitic = (float(cx), float(cy), float(cz))
        self.mass_kg = float(vehicle.mass_kg)
        self.thrust_coeff = float(vehicle.thrust_coeff_n_per_rad2_s2)

    def wrench_body(
        self, airspeed: NDArray[np.float64], body_rates: NDArray[np.float64], rotor_speeds: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Force (N) and moment (N m) in the body frame (see the module docstring)."""
        vx, vy, vz = float(airspeed[0]), float(airspeed[1]), float(airspeed[2])
        wx, wy, wz = float(body_rates[0]), float(body_rates[1]), float(body_rates[2])
        kd, kz, kh = self.rotor_drag, self.inflow, self.lift
        fx = fy = fz = mx = my = mz = 0.0
        for (rx, ry, rz), speed in zip(self.hubs, np.asarray(rotor_speeds, dtype=np.float64).tolist(), strict=True):
            speed = abs(speed)
            ux, uy, uz = vx + wy * rz - wz * ry, vy + wz * rx - wx * rz, vz + wx * ry - wy * rx
            hx, hy = -speed * kd * ux, -speed * kd * uy
            hz = -speed * kz * uz + kh * (ux * ux + uy * uy)
            fx, fy, fz = fx + hx, fy + hy, fz + hz
            mx, my, mz = mx + ry * hz - rz * hy, my + rz * hx - rx * hz, mz + rx * hy - ry * hx
        airspeed_norm = math.sqrt(vx * vx + vy * vy + vz * vz)
        cx, cy, cz = self.parasitic
        force = np.array([fx - airspeed_norm * cx * vx, fy - airspeed_norm * cy * vy, fz - airspeed_norm * cz * vz])
        return force, np.array([mx, my, mz])

    def predicted_force_world(
        self, rotation: NDArray[np.float64], velocity: NDArray[np.float64], acceleration: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """The force (world frame) the controller expects at this velocity and commanded acceleration: still
        air (the wind is left to integral action), no body rates, and every rotor at the speed that gives the
        thrust the acceleration needs."""
        ax, ay, az = float(acceleration[0]), float(acceleration[1]), float(acceleration[2]) + GRAVITY_M_S2
        thrust_n = self.mass_kg * math.sqrt(ax * ax + ay * ay + az * az)
        total_speed = 4.0 * math.sqrt(thrust_n / (4.0 * self.thrust_coeff))
        v = rotation.T @ velocity
        vx, vy, vz = float(v[0]), float(v[1]), float(v[2])
        airspeed = math.sqrt(vx * vx + vy * vy + vz * vz)
        cx, cy, cz = self.parasitic
        body = np.array(
            [
                -(total_speed * self.rotor_drag + airspeed * cx) * vx,
                -(total_speed * self.rotor_drag + airspeed * cy) * vy,
                -(total_speed * self.inflow + airspeed * cz) * vz + 4.0 * self.lift * (vx * vx + vy * vy),
            ]
        )
        return np.asarray(rotation @ body, dtype=np.float64)


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

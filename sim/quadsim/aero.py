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
        airspeed_xyz = (float(airspeed[0]), float(airspeed[1]), float(airspeed[2]))
        rates_xyz = (float(body_rates[0]), float(body_rates[1]), float(body_rates[2]))
        speeds = np.asarray(rotor_speeds, dtype=np.float64).tolist()
        force, moment = self.wrench_body_xyz(airspeed_xyz, rates_xyz, speeds)
        return np.array(force), np.array(moment)

    def wrench_body_xyz(
        self, airspeed: tuple[float, float, float], body_rates: tuple[float, float, float], rotor_speeds: list[float]
    ) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """`wrench_body` on floats, for the simulators' hot path."""
        vx, vy, vz = airspeed
        wx, wy, wz = body_rates
        kd, kz, kh = self.rotor_drag, self.inflow, self.lift
        fx = fy = fz = mx = my = mz = 0.0
        for (rx, ry, rz), speed in zip(self.hubs, rotor_speeds, strict=True):
            speed = abs(speed)
            ux, uy, uz = vx + wy * rz - wz * ry, vy + wz * rx - wx * rz, vz + wx * ry - wy * rx
            hx, hy = -speed * kd * ux, -speed * kd * uy
            hz = -speed * kz * uz + kh * (ux * ux + uy * uy)
            fx, fy, fz = fx + hx, fy + hy, fz + hz
            mx, my, mz = mx + ry * hz - rz * hy, my + rz * hx - rx * hz, mz + rx * hy - ry * hx
        airspeed_norm = math.sqrt(vx * vx + vy * vy + vz * vz)
        cx, cy, cz = self.parasitic
        force = (fx - airspeed_norm * cx * vx, fy - airspeed_norm * cy * vy, fz - airspeed_norm * cz * vz)
        return force, (mx, my, mz)

    def predicted_force_world(
        self, rotation: NDArray[np.float64], velocity: NDArray[np.float64], acceleration: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """The force (world frame) the controller expects at this velocity and commanded acceleration: still
        air (the wind is left to integral action), no body rates, and every rotor at the speed that gives the
        thrust the acceleration needs."""
        rows = [[float(v) for v in row] for row in np.asarray(rotation, dtype=np.float64)]
        velocity_xyz = (float(velocity[0]), float(velocity[1]), float(velocity[2]))
        acceleration_xyz = (float(acceleration[0]), float(acceleration[1]), float(acceleration[2]))
        return np.array(self.predicted_force_xyz(rows, velocity_xyz, acceleration_xyz))

    def predicted_force_xyz(
        self,
        rotation_rows: list[list[float]],
        velocity: tuple[float, float, float],
        acceleration: tuple[float, float, float],
    ) -> tuple[float, float, float]:
        """`predicted_force_world` on floats (the rotation as a list of rows), for the controller's hot path."""
        ax, ay, az = acceleration[0], acceleration[1], acceleration[2] + GRAVITY_M_S2
        thrust_n = self.mass_kg * math.sqrt(ax * ax + ay * ay + az * az)
        total_speed = 4.0 * math.sqrt(thrust_n / (4.0 * self.thrust_coeff))
        (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = rotation_rows
        wx, wy, wz = velocity
        vx, vy, vz = r00 * wx + r10 * wy + r20 * wz, r01 * wx + r11 * wy + r21 * wz, r02 * wx + r12 * wy + r22 * wz
        airspeed = math.sqrt(vx * vx + vy * vy + vz * vz)
        cx, cy, cz = self.parasitic
        bx = -(total_speed * self.rotor_drag + airspeed * cx) * vx
        by = -(total_speed * self.rotor_drag + airspeed * cy) * vy
        bz = -(total_speed * self.inflow + airspeed * cz) * vz + 4.0 * self.lift * (vx * vx + vy * vy)
        return (
            r00 * bx + r01 * by + r02 * bz,
            r10 * bx + r11 * by + r12 * bz,
            r20 * bx + r21 * by + r22 * bz,
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

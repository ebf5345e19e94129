"""The MJCF quadrotor: a rigid body with four rotor actuators (thrust limits, first-order motor lag), and
the aerodynamic wrench (`quadsim.aero`, RotorPy's model in still air) applied to it between steps."""

from __future__ import annotations

import math

import mujoco
import numpy as np

from quadsim.aero import AeroModel
from quadsim.vehicle import VehicleParams

PHYSICS_TIMESTEP_S = 0.002


def quadrotor_mjcf(vehicle: VehicleParams, timestep_s: float = PHYSICS_TIMESTEP_S) -> str:
    """MJCF text of the vehicle over a ground plane.

    Each rotor is a `general` actuator on a site: force along the body z axis and a reaction torque
    about it (`gear`), `dyntype="filterexact"` so the thrust follows the command with the motor time
    constant, and `ctrlrange` set to the thrust at the minimum and maximum rotor speed.
    """
    ixx, iyy, izz = vehicle.inertia_kg_m2
    arm = vehicle.arm_length_m
    yaw_k = vehicle.yaw_torque_per_thrust_m
    tmin, tmax = vehicle.rotor_thrust_min_n, vehicle.rotor_thrust_max_n
    sites = []
    actuators = []
    for i, (pos, direction) in enumerate(zip(vehicle.rotor_positions_m, vehicle.rotor_directions, strict=True)):
        sites.append(
            f'<site name="rotor{i + 1}" pos="{pos[0]:.6f} {pos[1]:.6f} 0.02" size="{vehicle.rotor_radius_m:.3f} 0.005"'
            f' type="cylinder" rgba="0.2 0.2 0.8 0.4"/>'
        )
        actuators.append(
            f'<general name="rotor{i + 1}" site="rotor{i + 1}" gear="0 0 1 0 0 {direction * yaw_k:.9f}"'
            f' dyntype="filterexact" dynprm="{vehicle.motor_time_constant_s}" gaintype="fixed" gainprm="1"'
            f' biastype="none" ctrllimited="true" ctrlrange="{tmin:.6f} {tmax:.6f}"/>'
        )
    return f"""
<mujoco model="{vehicle.name}">
  <option timestep="{timestep_s}" integrator="implicitfast" gravity="0 0 -9.81"/>
  <worldbody>
    <geom name="ground" type="plane" size="50 50 0.1" rgba="0.8 0.8 0.8 1"/>
    <body name="quadrotor" pos="0 0 1">
      <freejoint name="root"/>
      <inertial pos="0 0 0" mass="{vehicle.mass_kg}" diaginertia="{ixx} {iyy} {izz}"/>
      <geom name="frame_x" type="box" size="{arm * 0.72:.4f} 0.01 0.01" euler="0 0 45" contype="1" conaffinity="1"
            mass="0" rgba="0.3 0.3 0.3 1"/>
      <geom name="frame_y" type="box" size="{arm * 0.72:.4f} 0.01 0.01" euler="0 0 -45" contype="1" conaffinity="1"
            mass="0" rgba="0.3 0.3 0.3 1"/>
      {" ".join(sites)}
    </body>
  </worldbody>
  <actuator>
    {" ".join(actuators)}
  </actuator>
</mujoco>
"""


def build_model(vehicle: VehicleParams, timestep_s: float = PHYSICS_TIMESTEP_S) -> mujoco.MjModel:
    """Compile the vehicle's MJCF into a MuJoCo model."""
    return mujoco.MjModel.from_xml_string(quadrotor_mjcf(vehicle, timestep_s))


def apply_aero_wrench(model: mujoco.MjModel, data: mujoco.MjData, aero: AeroModel) -> None:
    """Set the quadrotor body's applied force and torque to the aerodynamic wrench of its current state (still
    air; rotor speeds from the motors' thrusts); it is held over the following `mj_step` calls."""
    rotation_flat = np.empty(9)
    mujoco.mju_quat2Mat(rotation_flat, data.qpos[3:7])
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = rotation_flat.tolist()
    wx, wy, wz, *rates = data.qvel[:6].tolist()
    airspeed = (r00 * wx + r10 * wy + r20 * wz, r01 * wx + r11 * wy + r21 * wz, r02 * wx + r12 * wy + r22 * wz)
    k = aero.thrust_coeff
    speeds = [math.sqrt(max(thrust, 0.0) / k) for thrust in data.act[:4].tolist()]
    (fx, fy, fz), (mx, my, mz) = aero.wrench_body_xyz(airspeed, (rates[0], rates[1], rates[2]), speeds)
    body = model.nbody - 1  # the quadrotor (body 0 is the world)
    data.xfrc_applied[body] = (
        r00 * fx + r01 * fy + r02 * fz,
        r10 * fx + r11 * fy + r12 * fz,
        r20 * fx + r21 * fy + r22 * fz,
        r00 * mx + r01 * my + r02 * mz,
        r10 * mx + r11 * my + r12 * mz,
        r20 * mx + r21 * my + r22 * mz,
    )

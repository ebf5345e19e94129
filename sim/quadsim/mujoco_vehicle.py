"""The MuJoCo quadrotor as a steppable vehicle: set rotor thrusts, advance time, read the state.

`mujoco_flight` flies a whole trajectory in one loop; this class exposes the same model one control
period at a time, for a simulator that runs in lock step with an external controller (the ROS graph).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from numpy.typing import NDArray

from quadsim.aero import AeroModel
from quadsim.mujoco_model import PHYSICS_TIMESTEP_S, apply_aero_wrench, build_model
from quadsim.rotations import matrix_to_quat_wxyz
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams


@dataclass(frozen=True)
class VehicleState:
    """The vehicle's state (ENU world, FLU body).

    Attributes:
        time_s: simulation time.
        position_m: body origin in the world.
        velocity_m_s: linear velocity in the world frame.
        quaternion_wxyz: body-to-world attitude.
        rotation: the same attitude as a 3 x 3 matrix.
        body_rates_rad_s: angular velocity in the body frame.
    """

    time_s: float
    position_m: NDArray[np.float64]
    velocity_m_s: NDArray[np.float64]
    quaternion_wxyz: NDArray[np.float64]
    rotation: NDArray[np.float64]
    body_rates_rad_s: NDArray[np.float64]


class MujocoQuadrotor:
    """A MuJoCo quadrotor stepped from outside (physics at `timestep_s`, thrust limits, motor lag, aerodynamics)."""

    def __init__(self, vehicle: VehicleParams | None = None, timestep_s: float = PHYSICS_TIMESTEP_S) -> None:
        self.vehicle = vehicle or VehicleParams()
        self.model = build_model(self.vehicle, timestep_s)
        self.data = mujoco.MjData(self.model)
        self._mixer = self.vehicle.mixer_matrix
        self._aero = AeroModel(self.vehicle)
        self.reset(np.array([0.0, 0.0, 1.0]))

    @property
    def timestep_s(self) -> float:
        """The physics step."""
        return float(self.model.opt.timestep)

    def hover_thrusts_n(self) -> NDArray[np.float64]:
        """Rotor thrusts that hold the vehicle level in a hover."""
        return np.full(4, self.vehicle.mass_kg * GRAVITY_M_S2 / 4.0)

    def reset(self, position_m: NDArray[np.float64], yaw_rad: float = 0.0) -> None:
        """Place the vehicle at rest, level, with hover thrust on every rotor, at time 0."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:3] = position_m
        half = 0.5 * float(yaw_rad)
        self.data.qpos[3:7] = [np.cos(half), 0.0, 0.0, np.sin(half)]
        self.data.act[:] = self.hover_thrusts_n()
        self.data.ctrl[:] = self.hover_thrusts_n()
        mujoco.mj_forward(self.model, self.data)

    def set_rotor_thrusts(self, thrusts_n: NDArray[np.float64]) -> NDArray[np.float64]:
        """Command the rotors (clipped to their thrust range); return what was applied."""
        applied = np.clip(
            np.asarray(thrusts_n, dtype=np.float64), self.vehicle.rotor_thrust_min_n, self.vehicle.rotor_thrust_max_n
        )
        self.data.ctrl[:] = applied
        return applied

    def set_wrench(self, thrust_n: float, torque_nm: NDArray[np.float64]) -> NDArray[np.float64]:
        """Command a collective thrust (N, body z) and body torques (N m) through the mixer."""
        wrench = np.array([float(thrust_n), *np.asarray(torque_nm, dtype=np.float64)])
        return self.set_rotor_thrusts(self._mixer @ wrench)

    def step(self, duration_s: float) -> None:
        """Advance the physics by `duration_s` (rounded to whole physics steps, at least one), the aerodynamic
        wrench (`quadsim.aero`) updated at every step."""
        for _ in range(max(1, round(duration_s / self.timestep_s))):
            apply_aero_wrench(self.model, self.data, self._aero)
            mujoco.mj_step(self.model, self.data)

    def state(self) -> VehicleState:
        """The current state (attitude read from qpos: after mj_step, xmat lags one physics step)."""
        data = self.data
        rotation = np.empty(9)
        quaternion = data.qpos[3:7].copy()
        mujoco.mju_quat2Mat(rotation, quaternion)
        rotation_matrix = rotation.reshape(3, 3)
        return VehicleState(
            time_s=float(data.time),
            position_m=data.qpos[:3].copy(),
            velocity_m_s=data.qvel[:3].copy(),
            quaternion_wxyz=matrix_to_quat_wxyz(rotation_matrix),
            rotation=rotation_matrix,
            body_rates_rad_s=data.qvel[3:6].copy(),
        )

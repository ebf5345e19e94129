"""Fidelity 1: fly a trajectory in MuJoCo with the SE(3) controller and judge the tracking."""

from __future__ import annotations

import math

import mujoco
import numpy as np

from minsnap import Trajectory
from quadsim.aero import AeroModel
from quadsim.controller import SE3Controller, SE3Gains
from quadsim.evaluation import FeasibilityCriteria, SimulatedFidelity
from quadsim.flight_log import FlightLog
from quadsim.frames import yaw_of
from quadsim.mujoco_model import PHYSICS_TIMESTEP_S, apply_aero_wrench, build_model
from quadsim.reference import ReferenceTrack
from quadsim.rotations import matrix_to_quat_wxyz
from quadsim.vehicle import VehicleParams

"""A flight whose position comes below this height has hit the ground (the frame rests at z = 0.01 m)."""


class MujocoEvaluator(SimulatedFidelity):
    """MuJoCo quadrotor (rotor thrust limits, first-order motor lag, rotor drag and the rest of `quadsim.aero`
    in still air) flown by the geometric SE(3) controller.

    Physics runs at 500 Hz and the controller, and the aerodynamic wrench, at `control_rate_hz` (default
    250 Hz). The flight starts on the trajectory's initial state and continues `criteria.settle_time_s`
    past its end.
    """

    name = "mujoco"
    level = 1

    def __init__(
        self,
        vehicle: VehicleParams | None = None,
        criteria: FeasibilityCriteria | None = None,
        gains: SE3Gains | None = None,
        control_rate_hz: float = 250.0,
    ) -> None:
        super().__init__(vehicle, criteria)
        self.gains = gains or SE3Gains()
        self.physics_steps_per_control = max(1, round(1.0 / (control_rate_hz * PHYSICS_TIMESTEP_S)))
        self._model: mujoco.MjModel | None = None

    @property
    def model(self) -> mujoco.MjModel:
        """The compiled model (built on first use, so the evaluator pickles cheaply to workers)."""
        if self._model is None:
            self._model = build_model(self.vehicle)
        return self._model

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_model"] = None
        return state

    def fly(self, trajectory: Trajectory) -> FlightLog:
        """Fly the trajectory and return the flight record (stopped early on divergence or a crash)."""
        model = self.model
        data = mujoco.MjData(model)
        control_dt = self.physics_steps_per_control * model.opt.timestep
        track = ReferenceTrack.build(trajectory, self.vehicle, control_dt, self.criteria.settle_time_s)
        controller = SE3Controller(self.vehicle, self.gains)
        aero = AeroModel(self.vehicle)

        data.qpos[:3] = track.derivatives[0, 0, :3]
        data.qpos[3:7] = matrix_to_quat_wxyz(track.rotation[0])
        data.qvel[:3] = track.derivatives[1, 0, :3]
        data.qvel[3:6] = track.body_rates_rad_s[0]
        first = track.at(0)
        data.act[:] = controller.rotor_thrusts(
            data.qpos[:3].copy(), data.qvel[:3].copy(), track.rotation[0], track.body_rates_rad_s[0], first
        )
        mujoco.mj_forward(model, data)

        count = len(track)
        positions = np.zeros((count, 3))
        yaws = np.zeros(count)
        wanted_thrusts = np.zeros((count, 4))  # what the controller asked for, before the rotors' limits
        failure = ""
        last = count
        for k in range(count):
            position = data.qpos[:3].copy()
            # From qpos, not data.xmat: after mj_step, xmat still holds the attitude of one physics step earlier.
            rotation_flat = np.empty(9)
            mujoco.mju_quat2Mat(rotation_flat, data.qpos[3:7])
            rotation = rotation_flat.reshape(3, 3)
            positions[k] = position
            yaws[k] = yaw_of(rotation)
            if not math.isfinite(float(data.qpos.sum())):
                failure, last = "simulation state became NaN", k
                break
            data.ctrl[:] = controller.rotor_thrusts(
                position, data.qvel[:3], rotation, data.qvel[3:6], track.at(k), dt_s=control_dt
            )
            wanted_thrusts[k] = controller.last_unclipped_thrusts_n
            failure = self.criteria.stop_reason(position, track.derivatives[0, k, :3], float(track.times_s[k]))
            if failure:
                last = k + 1
                break
            apply_aero_wrench(model, data, aero)
            mujoco.mj_step(model, data, nstep=self.physics_steps_per_control)
        commands = self.vehicle.rotor_speeds_from_thrusts(wanted_thrusts)
        return FlightLog.from_track(track, positions, yaws, commands, last, failure)

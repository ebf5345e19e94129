"""Fidelity 1: fly a trajectory in MuJoCo with the SE(3) controller and judge the tracking."""

from __future__ import annotations

import math
import time

import mujoco
import numpy as np

from minsnap import Trajectory
from quadsim.controller import SE3Controller, SE3Gains
from quadsim.evaluation import EvaluationResult, FeasibilityCriteria, FidelityEvaluator, judge_flight
from quadsim.flight_log import FlightLog
from quadsim.mujoco_model import PHYSICS_TIMESTEP_S, build_model
from quadsim.reference import ReferenceTrack
from quadsim.rotations import matrix_to_quat_wxyz, norm3, yaw_of
from quadsim.vehicle import VehicleParams

"""A flight whose position comes below this height has hit the ground (the frame rests at z = 0.01 m)."""


class MujocoEvaluator(FidelityEvaluator):
    """MuJoCo quadrotor (rotor thrust limits, first-order motor lag) flown by the geometric SE(3) controller.

    Physics runs at 500 Hz and the controller at `control_rate_hz` (default 250 Hz). The flight starts
    on the trajectory's initial state and continues `criteria.settle_time_s` past its end.
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
        commands = np.zeros((count, 4))
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
            data.ctrl[:] = controller.rotor_thrusts(position, data.qvel[:3], rotation, data.qvel[3:6], track.at(k))
            commands[k] = self.vehicle.rotor_speeds_from_thrusts(controller.last_unclipped_thrusts_n)
            error = norm3(position - track.derivatives[0, k, :3])
            if error > self.criteria.divergence_error_m:
                failure, last = f"diverged: position error {error:.2f} m at t={track.times_s[k]:.2f} s", k + 1
                break
            if position[2] < self.criteria.ground_clearance_m:
                failure, last = (
                    f"hit the ground: z={position[2]:.3f} m < {self.criteria.ground_clearance_m} m "
                    f"at t={track.times_s[k]:.2f} s",
                    k + 1,
                )
                break
            mujoco.mj_step(model, data, nstep=self.physics_steps_per_control)
        return FlightLog(
            times_s=track.times_s[:last],
            positions_m=positions[:last],
            yaws_rad=yaws[:last],
            ref_positions_m=track.derivatives[0, :last, :3],
            ref_yaws_rad=track.derivatives[0, :last, 3],
            rotor_speed_cmd_rad_s=commands[:last],
            failure=failure,
        )

    def evaluate_one(self, trajectory: Trajectory) -> EvaluationResult:
        """Fly the trajectory and judge it against the feasibility criteria."""
        start = time.perf_counter()
        flight = self.fly(trajectory)
        return judge_flight(
            self.name, self.vehicle, self.criteria, flight, time.perf_counter() - start, trajectory.duration_s
        )

"""The airframe the simulated PX4 flies: the MuJoCo quadrotor, the SE(3) controller, a land detector.

World ENU, body FLU (the project's frames); the MAVLink side converts through `px4sim.px4_frames`.
Disarmed, the motors are off and the vehicle rests on the ground plane; armed on the ground with
nothing above to climb to, the motors idle (PX4 spins them at idle while armed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quadsim.controller import Reference, SE3Controller, SE3Gains
from quadsim.mujoco_vehicle import MujocoQuadrotor, VehicleState
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

REST_HEIGHT_M = 0.00995  # body origin above the ground plane when the frame rests on it
_LANDED_HEIGHT_M = 0.08
_AIRBORNE_HEIGHT_M = 0.2
_LANDED_SPEED_M_S = 0.3
_LANDED_CONFIRM_S = 0.5
_CLIMB_ACCEL_M_S2 = 0.3  # landed, a reference that asks for less upward acceleration keeps the motors at idle


@dataclass(frozen=True)
class LandDetectorConfig:
    """When the vehicle counts as landed (heights above the ground, ENU z)."""

    landed_height_m: float = _LANDED_HEIGHT_M
    airborne_height_m: float = _AIRBORNE_HEIGHT_M
    landed_speed_m_s: float = _LANDED_SPEED_M_S
    confirm_s: float = _LANDED_CONFIRM_S


@dataclass(frozen=True)
class MotionLimits:
    """Speed and acceleration limits (PX4's MPC_XY_VEL_MAX, MPC_Z_VEL_MAX_*, MPC_ACC_HOR_MAX, MPC_ACC_*_MAX)."""

    xy_speed_m_s: float
    up_speed_m_s: float
    down_speed_m_s: float
    xy_accel_m_s2: float
    up_accel_m_s2: float
    down_accel_m_s2: float


PX4_LIKE_GAINS = SE3Gains(aero_feedforward=False, ki_position=(0.0, 0.0, 0.0))
"""PX4's position controller knows no rotor drag (the offboard client may add it to the acceleration setpoint);
its velocity integrator is not modelled."""


class FlightModel:
    """The MuJoCo vehicle (with its aerodynamics) and a PX4-like tracking controller, stepped one control period
    at a time."""

    def __init__(self, vehicle: VehicleParams | None = None, gains: SE3Gains | None = None) -> None:
        self.quad = MujocoQuadrotor(vehicle)
        self.vehicle = self.quad.vehicle
        self.controller = SE3Controller(self.vehicle, gains or PX4_LIKE_GAINS)
        self.land_config = LandDetectorConfig()
        self.ground_z_m = 0.0
        self.landed = True
        self._low_since_s: float | None = None
        self.total_thrust_n = 0.0
        gains_used = self.controller.gains
        kp, kd = np.asarray(gains_used.kp_position), np.asarray(gains_used.kd_position)
        self._error_per_speed_s = kd / kp  # steady speed under the PD law is kp/kd times the position error

    def reset(self, position_enu_m: NDArray[np.float64], yaw_enu_rad: float) -> None:
        """Place the vehicle at rest on the ground below `position_enu_m` (its z is the ground height)."""
        self.ground_z_m = float(position_enu_m[2])
        start = np.array([position_enu_m[0], position_enu_m[1], self.ground_z_m + REST_HEIGHT_M])
        self.quad.reset(start, yaw_enu_rad)
        self.quad.set_rotor_thrusts(np.zeros(4))
        self.quad.data.act[:] = 0.0
        self.landed = True
        self._low_since_s = None
        self.total_thrust_n = 0.0

    @property
    def time_s(self) -> float:
        """Simulated time since the last reset."""
        return float(self.quad.data.time)

    def state(self) -> VehicleState:
        """Position, velocity, attitude and rates (ENU/FLU)."""
        return self.quad.state()

    def height_m(self) -> float:
        """Height of the body origin above its rest height on the ground."""
        return float(self.quad.data.qpos[2]) - self.ground_z_m - REST_HEIGHT_M

    def limit_reference(self, ref: Reference, state: VehicleState, limits: MotionLimits) -> Reference:
        """The reference with PX4-like limits: speeds (by clipping the position error) and accelerations.

        The PD law's acceleration (with the feed-forward) is computed here and clipped; the returned reference
        sits at the present state and carries that acceleration, so the controller asks for exactly it.
        """
        kp = np.asarray(self.controller.gains.kp_position)
        kd = np.asarray(self.controller.gains.kd_position)
        error = np.asarray(ref.position, dtype=np.float64) - state.position_m
        cap_xy = limits.xy_speed_m_s * float(self._error_per_speed_s[0])
        horizontal = float(np.hypot(error[0], error[1]))
        if horizontal > cap_xy > 0.0:
            error[:2] *= cap_xy / horizontal
        per_speed_z = float(self._error_per_speed_s[2])
        error[2] = float(np.clip(error[2], -limits.down_speed_m_s * per_speed_z, limits.up_speed_m_s * per_speed_z))
        accel = kp * error + kd * (np.asarray(ref.velocity) - state.velocity_m_s) + np.asarray(ref.acceleration)
        accel_xy = float(np.hypot(accel[0], accel[1]))
        if accel_xy > limits.xy_accel_m_s2 > 0.0:
            accel[:2] *= limits.xy_accel_m_s2 / accel_xy
        accel[2] = float(np.clip(accel[2], -limits.down_accel_m_s2, limits.up_accel_m_s2))
        return Reference(
            position=state.position_m.copy(),
            velocity=state.velocity_m_s.copy(),
            acceleration=accel,
            yaw_rad=ref.yaw_rad,
            body_rates_rad_s=ref.body_rates_rad_s,
            body_angular_accel_rad_s2=ref.body_angular_accel_rad_s2,
        )

    def step(self, dt_s: float, armed: bool, ref: Reference | None) -> None:
        """Advance by `dt_s`: motors off when disarmed, idle when `ref` is None or asks a landed vehicle for no
        climb, else track `ref`."""
        state = self.quad.state()
        if not armed:
            thrusts = np.zeros(4)
            self.controller.reset()  # no integral carried into the next flight
        elif ref is None or (self.landed and float(ref.acceleration[2]) <= _CLIMB_ACCEL_M_S2):
            thrusts = np.full(4, self.vehicle.rotor_thrust_min_n)
            self.controller.reset()
        else:
            thrusts = self.controller.rotor_thrusts(
                state.position_m, state.velocity_m_s, state.rotation, state.body_rates_rad_s, ref, dt_s=dt_s
            )
        applied = self.quad.set_rotor_thrusts(thrusts) if armed else self._motors_off()
        self.total_thrust_n = float(np.sum(applied))
        self.quad.step(dt_s)
        self._detect_landing(self.time_s)

    def _motors_off(self) -> NDArray[np.float64]:
        self.quad.data.ctrl[:] = 0.0
        return np.zeros(4)

    def _detect_landing(self, now_s: float) -> None:
        cfg = self.land_config
        height = self.height_m()
        speed = float(np.linalg.norm(self.quad.data.qvel[:3]))
        if height > cfg.airborne_height_m:
            self.landed = False
            self._low_since_s = None
            return
        low = height < cfg.landed_height_m and speed < cfg.landed_speed_m_s
        if not low:
            self._low_since_s = None
            return
        if self._low_since_s is None:
            self._low_since_s = now_s
        if now_s - self._low_since_s >= cfg.confirm_s:
            self.landed = True

    def hover_thrust_n(self) -> float:
        """Collective thrust in a hover."""
        return self.vehicle.mass_kg * GRAVITY_M_S2

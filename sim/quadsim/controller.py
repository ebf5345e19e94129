"""Geometric SE(3) tracking controller (Lee, Leok and McClamroch, 2010) with flatness feed-forward,
rotor-drag feed-forward (the aerodynamics of `quadsim.aero` predicted along the reference) and integral
action on the position error (conditional, clamped: it stops while the thrust is limited)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from quadsim.aero import AeroModel
from quadsim.rotations import cross3, hat, norm3, vee
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams


def _kp_pos() -> tuple[float, float, float]:
    return (16.0, 16.0, 20.0)


def _kd_pos() -> tuple[float, float, float]:
    return (8.0, 8.0, 9.0)


_GRAVITY_UP = np.array([0.0, 0.0, GRAVITY_M_S2])


def _ki_pos() -> tuple[float, float, float]:
    return (8.0, 8.0, 12.0)


@dataclass(frozen=True)
class SE3Gains:
    """Gains in acceleration units (position: 1/s^2 and 1/s; attitude: scaled by the inertia), and the
    limits of the thrust vector the position loop may ask for.

    Attributes:
        max_tilt_deg: the commanded thrust axis stays within this angle of vertical (horizontal
            acceleration gives way first, as in PX4's position controller); above the planner's 45 deg so
            feedback has room around a certified plan.
        min_thrust_to_weight: the commanded thrust's vertical part stays at least this fraction of the
            weight. Without it, a reference falling faster than gravity plus feedback on a rising vehicle
            asks for the thrust axis to point down, and the attitude loop flips the vehicle to get there.
        ki_position: integral gains (1/s^3) on the position error: they absorb what the model gets wrong
            (mass, wind, drag not predicted); all zero turns integral action off.
        integral_limit_m_s2: the integral's acceleration stays within this on each axis (anti-windup).
        aero_feedforward: add the aerodynamic force predicted along the reference (`quadsim.aero`).
    """

    kp_position: tuple[float, float, float] = field(default_factory=_kp_pos)
    kd_position: tuple[float, float, float] = field(default_factory=_kd_pos)
    ki_position: tuple[float, float, float] = field(default_factory=_ki_pos)
    integral_limit_m_s2: float = 3.0
    aero_feedforward: bool = True
    kp_attitude: float = 544.0
    kd_attitude: float = 46.64
    max_tilt_deg: float = 70.0
    min_thrust_to_weight: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.max_tilt_deg < 90.0:
            raise ValueError(f"max_tilt_deg must be in (0, 90), got {self.max_tilt_deg}")
        if not 0.0 < self.min_thrust_to_weight < 1.0:
            raise ValueError(f"min_thrust_to_weight must be in (0, 1), got {self.min_thrust_to_weight}")
        if not all(k >= 0.0 for k in self.ki_position) or not self.integral_limit_m_s2 >= 0.0:
            raise ValueError(f"ki_position and integral_limit_m_s2 must be >= 0, got {self.ki_position}")
        kp, kd, ki = self.kp_position, self.kd_position, self.ki_position
        if any(i >= p * d for p, d, i in zip(kp, kd, ki, strict=True)):  # Routh: s^3 + kd s^2 + kp s + ki
            raise ValueError(f"ki_position {ki} must be below kp*kd per axis for a stable loop")


def limit_thrust_vector(force: NDArray[np.float64], min_vertical_n: float, max_tilt_rad: float) -> NDArray[np.float64]:
    """The desired thrust vector with its vertical part at least `min_vertical_n` and its axis within
    `max_tilt_rad` of vertical (the horizontal part is shortened; its direction is kept)."""
    limited = np.array(force, dtype=np.float64)
    limited[2] = max(float(limited[2]), min_vertical_n)
    horizontal = float(np.hypot(limited[0], limited[1]))
    allowed = limited[2] * float(np.tan(max_tilt_rad))
    if horizontal > allowed:
        limited[:2] *= allowed / horizontal
    return limited


@dataclass(frozen=True)
class Reference:
    """Desired flat state at one instant (world ENU; body rates in FLU body frame)."""

    position: NDArray[np.float64]
    velocity: NDArray[np.float64]
    acceleration: NDArray[np.float64]
    yaw_rad: float
    body_rates_rad_s: NDArray[np.float64]
    body_angular_accel_rad_s2: NDArray[np.float64]


class SE3Controller:
    """Computes rotor thrusts that track a reference from the vehicle's position, velocity, attitude and rates.

    The commanded rotor thrusts are brought into the rotors' range by `desaturate` (roll and pitch first,
    then collective thrust, then yaw); `last_unclipped_thrusts_n` keeps what the controller wanted, so
    saturation can be reported. The integral of the position error advances by each call's `dt_s` and
    holds still while the last command was limited (tilt, minimum thrust or a rotor out of range).
    """

    def __init__(self, vehicle: VehicleParams, gains: SE3Gains | None = None) -> None:
        self.vehicle = vehicle
        self.gains = gains or SE3Gains()
        self._kp = np.asarray(self.gains.kp_position)
        self._kd = np.asarray(self.gains.kd_position)
        self._max_tilt_rad = float(np.radians(self.gains.max_tilt_deg))
        self._inertia = vehicle.inertia_matrix
        self._mixer = vehicle.mixer_matrix
        self._thrust_min = vehicle.rotor_thrust_min_n
        self._thrust_max = vehicle.rotor_thrust_max_n
        self._ki = np.asarray(self.gains.ki_position)
        self._aero = AeroModel(vehicle)
        self._integral = np.zeros(3)  # of the position error (m s)
        self._integral_bound = self.gains.integral_limit_m_s2 / np.maximum(self._ki, 1e-12)
        self._limited = False
        self.last_unclipped_thrusts_n = np.zeros(4)

    @property
    def integral_accel_m_s2(self) -> NDArray[np.float64]:
        """The acceleration the integral action adds now (what the model gets wrong, as the loop sees it)."""
        return np.asarray(-self._ki * self._integral)

    def reset(self) -> None:
        """Forget the integral (a new flight)."""
        self._integral = np.zeros(3)
        self._limited = False

    def rotor_thrusts(
        self,
        position: NDArray[np.float64],
        velocity: NDArray[np.float64],
        rotation: NDArray[np.float64],
        body_rates: NDArray[np.float64],
        ref: Reference,
        dt_s: float = 0.0,
    ) -> NDArray[np.float64]:
        """Rotor thrusts (N, clipped to limits) for the current state and reference; `dt_s` is the time since
        the last call (the integral advances by it; 0: a one-off command that does not integrate)."""
        g = self.gains
        mass = self.vehicle.mass_kg
        error = position - ref.position
        if dt_s > 0.0 and not self._limited and math.isfinite(float(error[0] + error[1] + error[2])):
            self._integral = np.clip(self._integral + error * dt_s, -self._integral_bound, self._integral_bound)
        accel_cmd = -self._kp * error - self._kd * (velocity - ref.velocity) - self._ki * self._integral
        wanted = mass * (accel_cmd + ref.acceleration + _GRAVITY_UP)
        if g.aero_feedforward:
            wanted = wanted - self._aero.predicted_force_world(rotation, ref.velocity, ref.acceleration)
        force = limit_thrust_vector(wanted, g.min_thrust_to_weight * mass * GRAVITY_M_S2, self._max_tilt_rad)
        b3 = rotation[:, 2]
        thrust = float(force @ b3)
        force_norm = norm3(force)
        b3_d = force / force_norm if force_norm > 1e-9 else np.array([0.0, 0.0, 1.0])
        b1_c = np.array([np.cos(ref.yaw_rad), np.sin(ref.yaw_rad), 0.0])
        b2_d = cross3(b3_d, b1_c)
        b2_d /= max(norm3(b2_d), 1e-9)
        b1_d = cross3(b2_d, b3_d)
        rot_d = np.array([b1_d, b2_d, b3_d]).T
        rel = rotation.T @ rot_d
        e_rot = 0.5 * vee(rel.T - rel)
        rates_d = rel @ ref.body_rates_rad_s
        e_rates = body_rates - rates_d
        inertia = self._inertia
        torque = (
            inertia @ (-g.kp_attitude * e_rot - g.kd_attitude * e_rates)
            + cross3(body_rates, inertia @ body_rates)
            - inertia @ (hat(body_rates) @ rates_d - rel @ ref.body_angular_accel_rad_s2)
        )
        mixer = self._mixer
        self.last_unclipped_thrusts_n = mixer @ np.array([thrust, torque[0], torque[1], torque[2]])
        unclipped = self.last_unclipped_thrusts_n.tolist()
        self._limited = bool(  # limit_thrust_vector changes nothing it does not limit: exact comparison
            force[0] != wanted[0]
            or force[1] != wanted[1]
            or force[2] != wanted[2]
            or min(unclipped) < self._thrust_min - 1e-9
            or max(unclipped) > self._thrust_max + 1e-9
        )
        return desaturate(
            mixer[:, 0] * thrust,
            mixer[:, 1:3] @ torque[:2],
            mixer[:, 3] * torque[2],
            self._thrust_min,
            self._thrust_max,
        )


def desaturate(
    collective: NDArray[np.float64],
    roll_pitch: NDArray[np.float64],
    yaw: NDArray[np.float64],
    low: float,
    high: float,
) -> NDArray[np.float64]:
    """Rotor thrusts inside [low, high] that keep roll and pitch first, as PX4's mixer does.

    The rotors' shares of the collective thrust, of the roll and pitch torques and of the yaw torque are
    summed in that priority: roll and pitch are kept whole by moving the collective thrust (along its own
    share, so no torque changes) as little as needed, and scaled down only when they alone exceed the
    rotors' range; the yaw torque is then scaled down until it fits. Clipping each rotor on its own instead
    turns a saturated command into torques nobody asked for, and a vehicle near its limits into a flip.
    """
    share = collective / max(float(np.abs(collective).max()), 1e-12) if np.any(collective) else np.full(4, 1.0)
    if float(share.min()) <= 0.0:  # not a thrust share (zero collective): a uniform shift
        share = np.full(collective.shape, 1.0)
    span = high - low
    spread = float(roll_pitch.max() - roll_pitch.min())
    if spread > span:  # roll and pitch alone do not fit: keep their direction, centred in the range
        roll_pitch = roll_pitch * (span / spread)
        collective = np.full(collective.shape, 0.5 * (low + high)) - 0.5 * (roll_pitch.max() + roll_pitch.min())
    base = collective + roll_pitch
    shift_low = float(np.max((low - base) / share))
    shift_high = float(np.min((high - base) / share))
    shift = min(max(0.0, shift_low), shift_high) if shift_low <= shift_high else 0.5 * (shift_low + shift_high)
    base = base + shift * share
    with_yaw = base + yaw
    if float(with_yaw.min()) >= low and float(with_yaw.max()) <= high:
        return with_yaw
    scale = 1.0
    for b, y in zip(base, yaw, strict=True):
        if y > 0.0 and b + y > high:
            scale = min(scale, (high - b) / y)
        elif y < 0.0 and b + y < low:
            scale = min(scale, (low - b) / y)
    return np.clip(base + max(scale, 0.0) * yaw, low, high)

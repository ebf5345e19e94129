"""Geometric SE(3) tracking controller (Lee, Leok and McClamroch, 2010) with flatness feed-forward,
rotor-drag feed-forward (the aerodynamics of `quadsim.aero` predicted along the reference) and integral
action on the position error (conditional, clamped: it stops while the thrust is limited)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quadsim.aero import AeroModel
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
    fx, fy, fz = (float(v) for v in force)
    return np.array(_limited_thrust(fx, fy, fz, min_vertical_n, math.tan(max_tilt_rad)))


def _limited_thrust(
    fx: float, fy: float, fz: float, min_vertical_n: float, tan_tilt: float
) -> tuple[float, float, float]:
    """`limit_thrust_vector` on floats (the controller's hot path)."""
    fz = max(fz, min_vertical_n)
    horizontal = math.hypot(fx, fy)
    allowed = fz * tan_tilt
    if horizontal > allowed:
        ratio = allowed / horizontal
        fx, fy = fx * ratio, fy * ratio
    return fx, fy, fz


def _floats(vector: Any) -> list[float]:
    """A short vector as a list of floats (NumPy's `tolist` when it is an array)."""
    return vector.tolist() if isinstance(vector, np.ndarray) else [float(v) for v in vector]


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

    The arithmetic is on Python floats, 3-vectors written out: a call runs at every control step of every
    simulated flight, and NumPy's per-call cost on 3-vectors was most of a MuJoCo flight's time.
    """

    def __init__(self, vehicle: VehicleParams, gains: SE3Gains | None = None) -> None:
        self.vehicle = vehicle
        self.gains = gains or SE3Gains()
        self._kp = [float(k) for k in self.gains.kp_position]
        self._kd = [float(k) for k in self.gains.kd_position]
        self._ki = [float(k) for k in self.gains.ki_position]
        self._tan_tilt = math.tan(math.radians(self.gains.max_tilt_deg))
        self._mass = float(vehicle.mass_kg)
        self._min_vertical_n = self.gains.min_thrust_to_weight * self._mass * GRAVITY_M_S2
        self._inertia = [float(j) for j in vehicle.inertia_kg_m2]  # principal moments: the inertia is diagonal
        self._mixer = vehicle.mixer_matrix.tolist()
        self._thrust_min = float(vehicle.rotor_thrust_min_n)
        self._thrust_max = float(vehicle.rotor_thrust_max_n)
        self._aero = AeroModel(vehicle)
        self._integral = [0.0, 0.0, 0.0]  # of the position error (m s)
        self._integral_bound = [self.gains.integral_limit_m_s2 / max(k, 1e-12) for k in self._ki]
        self._limited = False
        self.last_unclipped_thrusts_n = np.zeros(4)

    @property
    def integral_accel_m_s2(self) -> NDArray[np.float64]:
        """The acceleration the integral action adds now (what the model gets wrong, as the loop sees it)."""
        return np.array([-k * i for k, i in zip(self._ki, self._integral, strict=True)])

    def reset(self) -> None:
        """Forget the integral (a new flight)."""
        self._integral = [0.0, 0.0, 0.0]
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
        g, mass = self.gains, self._mass
        px, py, pz = _floats(position)
        vx, vy, vz = _floats(velocity)
        wx, wy, wz = _floats(body_rates)
        rpx, rpy, rpz = _floats(ref.position)
        rvx, rvy, rvz = _floats(ref.velocity)
        rax, ray, raz = _floats(ref.acceleration)
        ex, ey, ez = px - rpx, py - rpy, pz - rpz
        if dt_s > 0.0 and not self._limited and math.isfinite(ex + ey + ez):
            self._integral = [
                min(max(i + e * dt_s, -bound), bound)
                for i, e, bound in zip(self._integral, (ex, ey, ez), self._integral_bound, strict=True)
            ]
        (kpx, kpy, kpz), (kdx, kdy, kdz), (kix, kiy, kiz) = self._kp, self._kd, self._ki
        ix, iy, iz = self._integral
        wanted_x = mass * ((-kpx * ex - kdx * (vx - rvx) - kix * ix) + rax)
        wanted_y = mass * ((-kpy * ey - kdy * (vy - rvy) - kiy * iy) + ray)
        wanted_z = mass * ((-kpz * ez - kdz * (vz - rvz) - kiz * iz) + raz + GRAVITY_M_S2)
        rows = rotation.tolist() if isinstance(rotation, np.ndarray) else [_floats(row) for row in rotation]
        if g.aero_feedforward:
            ax, ay, az = self._aero.predicted_force_xyz(rows, (rvx, rvy, rvz), (rax, ray, raz))
            wanted_x, wanted_y, wanted_z = wanted_x - ax, wanted_y - ay, wanted_z - az
        fx, fy, fz = _limited_thrust(wanted_x, wanted_y, wanted_z, self._min_vertical_n, self._tan_tilt)
        (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = rows
        thrust = fx * r02 + fy * r12 + fz * r22
        force_norm = math.sqrt(fx * fx + fy * fy + fz * fz)
        if force_norm > 1e-9:
            zx, zy, zz = fx / force_norm, fy / force_norm, fz / force_norm
        else:
            zx, zy, zz = 0.0, 0.0, 1.0
        cos_yaw, sin_yaw = math.cos(ref.yaw_rad), math.sin(ref.yaw_rad)
        # b2_d = b3_d x b1_c (b1_c = (cos yaw, sin yaw, 0)), normalised; b1_d = b2_d x b3_d.
        yx, yy, yz = -zz * sin_yaw, zz * cos_yaw, zx * sin_yaw - zy * cos_yaw
        norm_y = max(math.sqrt(yx * yx + yy * yy + yz * yz), 1e-9)
        yx, yy, yz = yx / norm_y, yy / norm_y, yz / norm_y
        xx, xy, xz = yy * zz - yz * zy, yz * zx - yx * zz, yx * zy - yy * zx
        # rel = R^T R_d: rel[i][j] = (column i of R) . (column j of R_d).
        rel = [
            [c0 * xx + c1 * xy + c2 * xz, c0 * yx + c1 * yy + c2 * yz, c0 * zx + c1 * zy + c2 * zz]
            for c0, c1, c2 in ((r00, r10, r20), (r01, r11, r21), (r02, r12, r22))
        ]
        e_rot = (0.5 * (rel[1][2] - rel[2][1]), 0.5 * (rel[2][0] - rel[0][2]), 0.5 * (rel[0][1] - rel[1][0]))
        qx, qy, qz = _floats(ref.body_rates_rad_s)
        bx, by, bz = _floats(ref.body_angular_accel_rad_s2)
        dx, dy, dz = (row[0] * qx + row[1] * qy + row[2] * qz for row in rel)  # desired rates, body frame
        alpha = [row[0] * bx + row[1] * by + row[2] * bz for row in rel]
        jx, jy, jz = self._inertia
        # torque = J (-kR e_R - kW e_W) + W x (J W) - J (W x W_d - R^T R_d alpha_d)
        gyro = (wy * jz * wz - wz * jy * wy, wz * jx * wx - wx * jz * wz, wx * jy * wy - wy * jx * wx)
        turn = (wy * dz - wz * dy, wz * dx - wx * dz, wx * dy - wy * dx)
        torque = [
            j * (-g.kp_attitude * er - g.kd_attitude * (w - d)) + gy - j * (tu - al)
            for j, er, w, d, gy, tu, al in zip(
                (jx, jy, jz), e_rot, (wx, wy, wz), (dx, dy, dz), gyro, turn, alpha, strict=True
            )
        ]
        tx, ty, tz = torque
        mixer = self._mixer
        unclipped = [m0 * thrust + m1 * tx + m2 * ty + m3 * tz for m0, m1, m2, m3 in mixer]
        self.last_unclipped_thrusts_n = np.array(unclipped)
        self._limited = bool(  # _limited_thrust changes nothing it does not limit: exact comparison
            fx != wanted_x
            or fy != wanted_y
            or fz != wanted_z
            or min(unclipped) < self._thrust_min - 1e-9
            or max(unclipped) > self._thrust_max + 1e-9
        )
        return np.array(
            _desaturate(
                [m[0] * thrust for m in mixer],
                [m[1] * tx + m[2] * ty for m in mixer],
                [m[3] * tz for m in mixer],
                self._thrust_min,
                self._thrust_max,
            )
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
    return np.array(_desaturate(_floats(collective), _floats(roll_pitch), _floats(yaw), float(low), float(high)))


def _desaturate(
    collective: list[float], roll_pitch: list[float], yaw: list[float], low: float, high: float
) -> list[float]:
    """`desaturate` on lists of floats (the controller's hot path)."""
    count, span = len(collective), high - low
    shares_of = collective  # the thrust shares come from the collective asked for, even when it is re-centred
    spread = max(roll_pitch) - min(roll_pitch)
    if spread > span:  # roll and pitch alone do not fit: keep their direction, centred in the range
        roll_pitch = [r * (span / spread) for r in roll_pitch]
        centre = 0.5 * (low + high) - 0.5 * (max(roll_pitch) + min(roll_pitch))
        collective = [centre] * count
    base = [c + r for c, r in zip(collective, roll_pitch, strict=True)]
    if min(base) >= low and max(base) <= high:  # no collective shift needed (it would be 0)
        with_yaw = [b + y for b, y in zip(base, yaw, strict=True)]
        if min(with_yaw) >= low and max(with_yaw) <= high:
            return with_yaw
    peak = max(abs(c) for c in shares_of)
    share = [c / max(peak, 1e-12) for c in shares_of] if any(shares_of) else [1.0] * count
    if min(share) <= 0.0:  # not a thrust share (zero collective): a uniform shift
        share = [1.0] * count
    shift_low = max((low - b) / s for b, s in zip(base, share, strict=True))
    shift_high = min((high - b) / s for b, s in zip(base, share, strict=True))
    shift = min(max(0.0, shift_low), shift_high) if shift_low <= shift_high else 0.5 * (shift_low + shift_high)
    base = [b + shift * s for b, s in zip(base, share, strict=True)]
    with_yaw = [b + y for b, y in zip(base, yaw, strict=True)]
    if min(with_yaw) >= low and max(with_yaw) <= high:
        return with_yaw
    scale = 1.0
    for b, y in zip(base, yaw, strict=True):
        if y > 0.0 and b + y > high:
            scale = min(scale, (high - b) / y)
        elif y < 0.0 and b + y < low:
            scale = min(scale, (low - b) / y)
    scale = max(scale, 0.0)
    return [min(max(b + scale * y, low), high) for b, y in zip(base, yaw, strict=True)]

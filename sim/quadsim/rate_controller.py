"""Body-rate controller (the inner loop of PX4's multicopter control): thrust and body rates in, wrench out.

The command is a collective thrust (N, along body z) and body rates (rad/s, FLU body frame), the
"CTBR" abstraction that PX4 offboard and many learned controllers use. The loop is a proportional
rate controller with the vehicle's inertia and the gyroscopic term,

    torque = J (k_p (rates_cmd - rates)) + rates x (J rates),

followed by the limits of the rotors: the collective thrust is clipped to what four rotors can give,
then roll/pitch torque and then yaw torque are scaled down (keeping their direction) until every
rotor thrust is inside its range, so attitude control keeps priority over yaw as in PX4's mixer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from quadsim.rotations import cross3
from quadsim.vehicle import VehicleParams


def _default_rate_gains() -> tuple[float, float, float]:
    return (40.0, 40.0, 20.0)


def _default_max_torque() -> tuple[float, float, float]:
    return (0.5, 0.5, 0.1)


@dataclass(frozen=True)
class RateControllerGains:
    """Gains and limits of the body-rate loop.

    Attributes:
        kp_rate_per_s: proportional gain on the body-rate error per axis (1/s, scaled by the inertia):
            the rate error decays with time constant 1/kp when the rotors do not saturate.
        max_torque_nm: largest commanded torque magnitude per body axis before the rotor limits (N m).
    """

    kp_rate_per_s: tuple[float, float, float] = field(default_factory=_default_rate_gains)
    max_torque_nm: tuple[float, float, float] = field(default_factory=_default_max_torque)

    def __post_init__(self) -> None:
        if min(self.kp_rate_per_s) <= 0 or min(self.max_torque_nm) <= 0:
            raise ValueError(f"rate gains and torque limits must be > 0, got {self}")


class RateController:
    """Collective thrust + body-rate command -> (thrust, torques) that the rotors can produce (module docstring)."""

    def __init__(self, vehicle: VehicleParams, gains: RateControllerGains | None = None) -> None:
        self.vehicle = vehicle
        self.gains = gains or RateControllerGains()
        self._inertia = vehicle.inertia_matrix
        self._kp = np.asarray(self.gains.kp_rate_per_s, dtype=np.float64)
        self._max_torque = np.asarray(self.gains.max_torque_nm, dtype=np.float64)
        self._mixer = vehicle.mixer_matrix
        self._rotor_min = vehicle.rotor_thrust_min_n
        self._rotor_max = vehicle.rotor_thrust_max_n

    def wrench(
        self, thrust_n: float, rates_cmd_rad_s: NDArray[np.float64], rates_rad_s: NDArray[np.float64]
    ) -> tuple[float, NDArray[np.float64]]:
        """The collective thrust (N) and body torques (`3`, N m) to apply for this command and measured rates."""
        inertia = self._inertia
        torque = inertia @ (self._kp * (rates_cmd_rad_s - rates_rad_s)) + cross3(rates_rad_s, inertia @ rates_rad_s)
        torque = np.clip(torque, -self._max_torque, self._max_torque)
        return self._within_rotor_limits(float(thrust_n), torque)

    def rotor_thrusts(
        self, thrust_n: float, rates_cmd_rad_s: NDArray[np.float64], rates_rad_s: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """The same command as `4` rotor thrusts (N), each inside the rotors' range."""
        thrust, torque = self.wrench(thrust_n, rates_cmd_rad_s, rates_rad_s)
        thrusts = self._mixer @ np.array([thrust, torque[0], torque[1], torque[2]])
        return np.clip(thrusts, self._rotor_min, self._rotor_max)

    def _within_rotor_limits(self, thrust_n: float, torque: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        """Clip the thrust, then scale roll/pitch and then yaw torque so that no rotor leaves its range."""
        low, high = self._rotor_min, self._rotor_max
        thrust = min(max(thrust_n, 4.0 * low), 4.0 * high)
        base = self._mixer[:, 0] * thrust
        roll_pitch = self._mixer[:, 1:3] @ torque[:2]
        scale_rp = _largest_scale(base, roll_pitch, low, high)
        base = base + scale_rp * roll_pitch
        yaw = self._mixer[:, 3] * torque[2]
        scale_yaw = _largest_scale(base, yaw, low, high)
        return thrust, np.array([scale_rp * torque[0], scale_rp * torque[1], scale_yaw * torque[2]])


def _largest_scale(base: NDArray[np.float64], delta: NDArray[np.float64], low: float, high: float) -> float:
    """Largest s in [0, 1] with low <= base + s * delta <= high for every rotor (base itself inside)."""
    scale = 1.0
    for b, d in zip(base, delta, strict=True):
        if d > 1e-12:
            scale = min(scale, max(high - b, 0.0) / d)
        elif d < -1e-12:
            scale = min(scale, min(low - b, 0.0) / d)
    return max(scale, 0.0)

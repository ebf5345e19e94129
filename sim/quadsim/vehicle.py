"""One quadrotor description shared by every fidelity: inertia, rotor geometry, thrust and motor limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

GRAVITY_M_S2 = 9.81


def _default_inertia() -> tuple[float, float, float]:
    return (3.65e-3, 3.68e-3, 7.03e-3)


def _default_directions() -> tuple[int, int, int, int]:
    return (1, -1, 1, -1)


@dataclass(frozen=True)
class VehicleParams:
    """A quadrotor in X configuration (ENU world, FLU body).

    Rotors are numbered front-left-first as in RotorPy: r1 = (+x, +y), r2 = (+x, -y),
    r3 = (-x, -y), r4 = (-x, +y), at `arm_length_m` from the centre; `rotor_directions` gives
    the sign of each rotor's reaction torque about body z. The defaults are RotorPy's AscTec
    Hummingbird model (mass, inertia, thrust/drag coefficients, aerodynamics) with the rotor speed
    limited to 900 rad/s (thrust-to-weight about 3.7) so that the feasibility boundary lies at speeds
    that a 9 x 9 x 3 m course reaches.
    """

    name: str = "hummingbird-900"
    mass_kg: float = 0.5
    inertia_kg_m2: tuple[float, float, float] = field(default_factory=_default_inertia)
    arm_length_m: float = 0.17
    thrust_coeff_n_per_rad2_s2: float = 5.57e-6
    moment_coeff_nm_per_rad2_s2: float = 1.36e-7
    rotor_speed_min_rad_s: float = 100.0
    rotor_speed_max_rad_s: float = 900.0
    motor_time_constant_s: float = 0.005
    rotor_directions: tuple[int, int, int, int] = field(default_factory=_default_directions)
    rotor_radius_m: float = 0.10
    # Aerodynamics used by the high-fidelity simulator (RotorPy's names in brackets).
    parasitic_drag_n_per_m2_s2: tuple[float, float, float] = (0.5e-2, 0.5e-2, 1e-2)  # c_Dx, c_Dy, c_Dz
    rotor_drag_coeff: float = 1.19e-4  # k_d
    induced_inflow_coeff: float = 2.32e-4  # k_z
    translational_lift_coeff: float = 3.39e-3  # k_h
    max_speed_m_s: float = 10.0
    """Fastest the vehicle may fly (m/s): the trajectory certificate's speed limit and the ceiling of any lower one."""
    max_acceleration_m_s2: float = 20.0
    """Largest acceleration (m/s^2) a trajectory may ask for: the certificate's limit and the ceiling of a lower one."""
    max_tilt_deg: float = 45.0
    """Largest tilt of the thrust axis from vertical a trajectory may ask for (PX4's MPC_TILTMAX_AIR default): the
    certificate's limit and the ceiling of a lower one. It keeps attitude authority for the tracking controller."""

    def __post_init__(self) -> None:
        checks = {
            "mass_kg": self.mass_kg > 0,
            "inertia_kg_m2": all(i > 0 for i in self.inertia_kg_m2),
            "arm_length_m": self.arm_length_m > 0,
            "thrust_coeff_n_per_rad2_s2": self.thrust_coeff_n_per_rad2_s2 > 0,
            "rotor_speed_max_rad_s": self.rotor_speed_max_rad_s > self.rotor_speed_min_rad_s >= 0,
            "motor_time_constant_s": self.motor_time_constant_s > 0,
            "max_speed_m_s": self.max_speed_m_s > 0,
            "max_acceleration_m_s2": self.max_acceleration_m_s2 > 0,
            "max_tilt_deg": 0 < self.max_tilt_deg < 90,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid vehicle parameters {bad} in {self}")
        if self.max_total_thrust_n <= self.mass_kg * GRAVITY_M_S2:
            raise ValueError(
                f"vehicle {self.name!r} cannot hover: max thrust {self.max_total_thrust_n:.2f} N "
                f"<= weight {self.mass_kg * GRAVITY_M_S2:.2f} N"
            )

    @property
    def inertia_matrix(self) -> NDArray[np.float64]:
        """`3 x 3` body inertia (kg m^2)."""
        return np.diag(self.inertia_kg_m2)

    @property
    def rotor_positions_m(self) -> NDArray[np.float64]:
        """`4 x 3` rotor positions in the body frame."""
        s = self.arm_length_m / np.sqrt(2.0)
        return np.array([[s, s, 0.0], [s, -s, 0.0], [-s, -s, 0.0], [-s, s, 0.0]])

    @property
    def yaw_torque_per_thrust_m(self) -> float:
        """Reaction torque about body z per newton of rotor thrust."""
        return self.moment_coeff_nm_per_rad2_s2 / self.thrust_coeff_n_per_rad2_s2

    @property
    def rotor_thrust_min_n(self) -> float:
        """Thrust of one rotor at its minimum speed."""
        return self.thrust_coeff_n_per_rad2_s2 * self.rotor_speed_min_rad_s**2

    @property
    def rotor_thrust_max_n(self) -> float:
        """Thrust of one rotor at its maximum speed."""
        return self.thrust_coeff_n_per_rad2_s2 * self.rotor_speed_max_rad_s**2

    @property
    def max_total_thrust_n(self) -> float:
        """Collective thrust with every rotor at its maximum speed."""
        return 4.0 * self.rotor_thrust_max_n

    @property
    def hover_rotor_speed_rad_s(self) -> float:
        """Rotor speed at hover."""
        return float(np.sqrt(self.mass_kg * GRAVITY_M_S2 / (4.0 * self.thrust_coeff_n_per_rad2_s2)))

    @property
    def allocation_matrix(self) -> NDArray[np.float64]:
        """`4 x 4` map from rotor thrusts (N) to collective thrust (N) and body torques (N m)."""
        pos = self.rotor_positions_m
        directions = np.asarray(self.rotor_directions, dtype=np.float64)
        return np.vstack([np.ones(4), pos[:, 1], -pos[:, 0], self.yaw_torque_per_thrust_m * directions])

    @property
    def mixer_matrix(self) -> NDArray[np.float64]:
        """`4 x 4` inverse of `allocation_matrix`: collective thrust and torques -> rotor thrusts."""
        return np.asarray(np.linalg.inv(self.allocation_matrix), dtype=np.float64)

    def thrust_margin_usage(self, max_rotor_speed_rad_s: float, min_rotor_speed_rad_s: float) -> float:
        """Largest used fraction of the rotors' thrust margin around hover, continuous through negative speeds.

        With h the hover speed, the margin above is w_max^2 - h^2 and below h^2 - w_min^2 (signed squares,
        as thrust goes with w |w|): the usage is <= 1 exactly when every rotor speed is inside [w_min, w_max].
        """
        hover_sq = self.hover_rotor_speed_rad_s**2
        top, bottom = max_rotor_speed_rad_s, min_rotor_speed_rad_s
        above = (np.copysign(top**2, top) - hover_sq) / (self.rotor_speed_max_rad_s**2 - hover_sq)
        below = (hover_sq - np.copysign(bottom**2, bottom)) / max(hover_sq - self.rotor_speed_min_rad_s**2, 1e-9)
        return float(max(above, below))

    def rotor_speeds_from_thrusts(self, thrusts_n: NDArray[np.float64]) -> NDArray[np.float64]:
        """Rotor speeds (rad/s) that give the rotor thrusts; negative thrust maps to a negative speed."""
        return np.sign(thrusts_n) * np.sqrt(np.abs(thrusts_n) / self.thrust_coeff_n_per_rad2_s2)

    def to_rotorpy(self) -> dict[str, Any]:
        """The same vehicle in RotorPy's `quad_params` format."""
        ixx, iyy, izz = self.inertia_kg_m2
        pos = self.rotor_positions_m
        return {
            "mass": self.mass_kg,
            "Ixx": ixx,
            "Iyy": iyy,
            "Izz": izz,
            "Ixy": 0.0,
            "Iyz": 0.0,
            "Ixz": 0.0,
            "num_rotors": 4,
            "rotor_radius": self.rotor_radius_m,
            "rotor_pos": {f"r{i + 1}": pos[i].copy() for i in range(4)},
            "rotor_directions": np.asarray(self.rotor_directions),
            "rI": np.zeros(3),
            "c_Dx": self.parasitic_drag_n_per_m2_s2[0],
            "c_Dy": self.parasitic_drag_n_per_m2_s2[1],
            "c_Dz": self.parasitic_drag_n_per_m2_s2[2],
            "k_eta": self.thrust_coeff_n_per_rad2_s2,
            "k_m": self.moment_coeff_nm_per_rad2_s2,
            "k_d": self.rotor_drag_coeff,
            "k_z": self.induced_inflow_coeff,
            "k_h": self.translational_lift_coeff,
            "k_flap": 0.0,
            "tau_m": self.motor_time_constant_s,
            "rotor_speed_min": self.rotor_speed_min_rad_s,
            "rotor_speed_max": self.rotor_speed_max_rad_s,
            "motor_noise_std": 0.0,
            "k_w": 1,
            "k_v": 10,
            "kp_att": 544,
            "kd_att": 46.64,
        }

"""Fidelity 2: fly a trajectory in RotorPy (aerodynamics, motor dynamics, Dryden wind, mocap noise).

RotorPy (PyPI `rotorpy`) is an independent simulator: its `Multirotor` integrates the rigid body
with rotor drag, induced inflow, translational lift, parasitic drag and first-order motor
dynamics, which neither the analytic check nor the MuJoCo model has. The same vehicle
(`VehicleParams.to_rotorpy()`) is flown by the project's SE(3) controller, which sees the state
through the noise model of RotorPy's `MotionCapture` sensor (white noise on pose and twist)
while RotorPy's `DrydenGust` blows on it.

Conventions: RotorPy's quaternion is [x, y, z, w] (scalar last), its body rates are in the body
(FLU) frame, and the world is ENU with z up, as in the rest of `quadsim`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import NDArray
from rotorpy.vehicles.multirotor import Multirotor
from rotorpy.wind.dryden_winds import DrydenGust

from minsnap import Trajectory
from quadsim.controller import SE3Controller, SE3Gains
from quadsim.evaluation import FeasibilityCriteria, SimulatedFidelity
from quadsim.flight_log import FlightLog
from quadsim.frames import yaw_of
from quadsim.reference import ReferenceTrack
from quadsim.rotations import hat, matrix_to_quat_wxyz, norm3, quat_wxyz_to_matrix
from quadsim.vehicle import VehicleParams

"""A flight whose position comes below this height has hit the ground (RotorPy has no ground: same as MuJoCo's)."""

# Tolerances so loose that solve_ivp accepts every step: with `first_step == max_step` it becomes a
# fixed-step Dormand-Prince (RK45) integrator, 6 right-hand-side evaluations per step.
_FIXED_STEP_TOLERANCE = 1e6


def _default_mean_wind() -> tuple[float, float, float]:
    return (0.0, 0.0, 0.0)


def _default_turbulence() -> tuple[float, float, float]:
    return (0.3, 0.3, 0.15)


@dataclass(frozen=True)
class FlightConditions:
    """Wind and measurement noise of a high-fidelity flight (defaults: a calm indoor motion-capture arena)."""

    mean_wind_m_s: tuple[float, float, float] = field(default_factory=_default_mean_wind)
    """Mean wind velocity in the world frame (ENU)."""
    turbulence_m_s: tuple[float, float, float] = field(default_factory=_default_turbulence)
    """Standard deviation of the Dryden gust velocity on each world axis (stationary); zeros: no gusts."""
    turbulence_altitude_m: float = 2.0
    """Altitude that sets the Dryden length scales."""
    position_noise_density_m: float = 5e-4
    """White noise on the measured position, per sqrt(Hz) (RotorPy's mocap default; 5 mm at 200 Hz)."""
    velocity_noise_density_m_s: float = 1e-3
    """White noise on the measured velocity, per sqrt(Hz) (1 cm/s at 200 Hz; RotorPy's default is 5x this)."""
    attitude_noise_density_rad: float = 5e-4
    """White rotation-vector noise on the measured attitude, per sqrt(Hz) (RotorPy's mocap default)."""
    body_rate_noise_density_rad_s: float = 5e-4
    """White noise on the measured body rates, per sqrt(Hz) (RotorPy's mocap default)."""

    def __post_init__(self) -> None:
        densities = (
            self.position_noise_density_m,
            self.velocity_noise_density_m_s,
            self.attitude_noise_density_rad,
            self.body_rate_noise_density_rad_s,
        )
        if min(densities) < 0 or min(self.turbulence_m_s) < 0 or self.turbulence_altitude_m <= 0:
            raise ValueError(f"noise densities and turbulence must be >= 0 and the altitude > 0, got {self}")

    def measurement_noise_std(self, rate_hz: float) -> NDArray[np.float64]:
        """`12` standard deviations (position, velocity, attitude, body rates, 3 each) of one sample at `rate_hz`.

        As RotorPy's `MotionCapture`: white noise of the given density sampled at `rate_hz`.
        """
        densities = np.repeat(
            [
                self.position_noise_density_m,
                self.velocity_noise_density_m_s,
                self.attitude_noise_density_rad,
                self.body_rate_noise_density_rad_s,
            ],
            3,
        )
        return densities * math.sqrt(rate_hz / 2.0)


@contextlib.contextmanager
def seeded_global_numpy_rng(seed: int) -> Iterator[None]:
    """Seed NumPy's global generator for the block and restore its previous state afterwards.

    RotorPy's wind and motor-noise models draw from the global generator, so a flight is
    reproducible only when that generator is seeded; restoring it keeps the caller's stream intact.
    """
    saved = np.random.get_state()  # noqa: NPY002 (RotorPy draws from the global generator)
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(saved)  # noqa: NPY002


_UNIFORM_VARIANCE = 1.0 / 3.0  # of the uniform(-1, 1) samples that drive RotorPy's gust filters


def _gust_recursion(gust: Any, dt_s: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """RotorPy's gust filter (`GustModelBase.run`) as z' = F z + G u on z = [y_k-1, y_k-2, u_k-1, u_k-2]."""
    c1 = 1.0 + 2.0 * gust.delta / dt_s + 4.0 * gust.gamma / dt_s**2
    c2 = 2.0 - 8.0 * gust.gamma / dt_s**2
    c3 = 1.0 - 2.0 * gust.delta / dt_s + 4.0 * gust.gamma / dt_s**2
    c4 = gust.alpha + 2.0 * gust.beta / dt_s
    c5 = 2.0 * gust.alpha
    c6 = gust.alpha - 2.0 * gust.beta / dt_s
    transition = np.array(
        [[-c2 / c1, -c3 / c1, c5 / c1, c6 / c1], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    )
    return transition, np.array([c4 / c1, 0.0, 1.0, 0.0])


def gust_filter_covariance(gust: Any, dt_s: float) -> NDArray[np.float64]:
    """`4 x 4` stationary covariance of a gust filter's state [y_k-1, y_k-2, u_k-1, u_k-2], stepped every `dt_s`."""
    transition, gain = _gust_recursion(gust, dt_s)
    return np.asarray(scipy.linalg.solve_discrete_lyapunov(transition, _UNIFORM_VARIANCE * np.outer(gain, gain)))


def dryden_gust(conditions: FlightConditions, dt_s: float, rng: np.random.Generator) -> DrydenGust:
    """RotorPy's Dryden gust model stepped every `dt_s`, with gusts of deviation `conditions.turbulence_m_s`.

    RotorPy drives its discretised Dryden filters with one uniform(-1, 1) sample per step, not
    scaled by the step, so the deviation of its gusts is its `sigma` times a factor that depends on
    the step (about 0.02 at 200 Hz). Its `sigma` is set here so that the stationary deviation is the
    one asked for, and each filter starts from a draw of its stationary state: the gusts are already
    developed at t = 0 (the horizontal ones vary over about 15 s, RotorPy's length scale over its
    1 m/s airspeed, longer than most flights).
    """
    mean = np.asarray(conditions.mean_wind_m_s, dtype=np.float64)
    wanted = np.asarray(conditions.turbulence_m_s, dtype=np.float64)
    altitude = conditions.turbulence_altitude_m
    unit = DrydenGust(dt=dt_s, avg_wind=mean, sig_wind=np.ones(3), altitude=altitude)
    unit_axes = (unit.wind.wx_gust, unit.wind.wy_gust, unit.wind.wz_gust)
    unit_std = np.array([math.sqrt(gust_filter_covariance(axis, dt_s)[0, 0]) for axis in unit_axes])
    model = DrydenGust(dt=dt_s, avg_wind=mean, sig_wind=wanted / unit_std, altitude=altitude)
    for axis in (model.wind.wx_gust, model.wind.wy_gust, model.wind.wz_gust):
        start = rng.multivariate_normal(np.zeros(4), gust_filter_covariance(axis, dt_s), method="eigh")
        axis.y_km1, axis.y_km2, axis.u_km1, axis.u_km2 = (float(v) for v in start)
    return model


def quat_xyzw_to_matrix(q: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotation matrix (body -> world) of a RotorPy quaternion [x, y, z, w]."""
    return quat_wxyz_to_matrix(np.array([q[3], q[0], q[1], q[2]]))


def matrix_to_quat_xyzw(r: NDArray[np.float64]) -> NDArray[np.float64]:
    """RotorPy quaternion [x, y, z, w] of a rotation matrix."""
    w, x, y, z = matrix_to_quat_wxyz(r)
    return np.array([x, y, z, w])


def rotation_from_vector(phi: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotation matrix of a rotation vector (Rodrigues' formula)."""
    angle = norm3(phi)
    if angle < 1e-12:
        return np.eye(3) + hat(phi)
    k = hat(phi / angle)
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


class RotorPyEvaluator(SimulatedFidelity):
    """RotorPy multirotor (aero, motor lag, Dryden wind, mocap noise) flown by the geometric SE(3) controller.

    The controller runs at `control_rate_hz` (default 200 Hz, near MuJoCo's 250 Hz) on a noisy
    measurement of the state and commands rotor speeds `sqrt(thrust / k_eta)` (RotorPy's
    `cmd_motor_speeds` abstraction); the log records the true state. The flight starts on the
    trajectory's initial state and continues `criteria.settle_time_s` past its end; it stops early
    on divergence, NaN or a ground hit.

    Integration: RotorPy calls `scipy.integrate.solve_ivp` once per step, and its default adaptive
    RK45 spends about 26 evaluations of the dynamics on a 10 ms step (the 5 ms motor time constant
    makes the problem stiff-ish). Here solve_ivp is made a fixed-step RK45 (`integrator_kwargs`:
    steps of `1 / (control_rate_hz * integrator_steps_per_control)` s, tolerances too loose to reject
    one), 7 evaluations per step. At 200 Hz one step is h = tau_m = 5 ms, where the motor response
    is within 0.05 % of the exact exponential (a single 10 ms step is off by about 4 %, and 100 Hz
    with two steps per control costs as much physics), positions agree with 4 steps per control
    to 0.2 mm, and a 6 s flight costs about 1 s of wall time on one core.

    What the extra physics does: the controller predicts rotor drag in still air (`quadsim.aero`, the
    same model as RotorPy's) and integrates the position error, so what remains is the wind, the gusts,
    the motor dynamics and the noise; RotorPy is the strictest fidelity. `mass_error` flies a vehicle
    that much heavier (or lighter, negative) than the controller is told (a payload): model error that
    only integral action can absorb.

    Randomness: all of it follows `seed`, the same for every flight of one evaluator (common random
    numbers: the time scales of one course are compared under the same wind and noise); a
    different seed gives a different realisation. Measurement noise comes from a
    `numpy.random.Generator`; RotorPy's gust model draws from NumPy's global generator, which is
    seeded for the flight and restored afterwards.
    """

    name = "rotorpy"
    level = 2

    def __init__(
        self,
        vehicle: VehicleParams | None = None,
        criteria: FeasibilityCriteria | None = None,
        gains: SE3Gains | None = None,
        conditions: FlightConditions | None = None,
        control_rate_hz: float = 200.0,
        integrator_steps_per_control: int = 1,
        seed: int = 0,
        mass_error: float = 0.0,
    ) -> None:
        super().__init__(vehicle, criteria)
        if not -0.5 < mass_error < 1.0:
            raise ValueError(f"mass_error must be in (-0.5, 1) (a fraction of the mass), got {mass_error}")
        if control_rate_hz <= 0 or integrator_steps_per_control < 1:
            raise ValueError(
                f"control_rate_hz must be > 0 and integrator_steps_per_control >= 1, "
                f"got {control_rate_hz} and {integrator_steps_per_control}"
            )
        self.gains = gains or SE3Gains()
        self.conditions = conditions or FlightConditions()
        self.control_dt_s = 1.0 / control_rate_hz
        self.integrator_steps_per_control = integrator_steps_per_control
        self.seed = seed
        self.mass_error = float(mass_error)

    def integrator_kwargs(self) -> dict[str, Any]:
        """Arguments for RotorPy's `solve_ivp` call: fixed-step RK45."""
        step = self.control_dt_s / self.integrator_steps_per_control
        return {
            "method": "RK45",
            "first_step": step,
            "max_step": step,
            "rtol": _FIXED_STEP_TOLERANCE,
            "atol": _FIXED_STEP_TOLERANCE,
        }

    def fly(self, trajectory: Trajectory) -> FlightLog:
        """Fly the trajectory and return the flight record (stopped early on divergence or a crash)."""
        with seeded_global_numpy_rng(self.seed):
            return self._fly(trajectory, np.random.default_rng(self.seed))

    def _start(self, track: ReferenceTrack, controller: SE3Controller) -> tuple[Multirotor, dict[str, Any]]:
        """RotorPy's vehicle and its state on the reference at t = 0, rotors at the controller's first command."""
        thrusts = controller.rotor_thrusts(
            track.derivatives[0, 0, :3],
            track.derivatives[1, 0, :3],
            track.rotation[0],
            track.body_rates_rad_s[0],
            track.at(0),
        )
        state = {
            "x": track.derivatives[0, 0, :3].copy(),
            "v": track.derivatives[1, 0, :3].copy(),
            "q": matrix_to_quat_xyzw(track.rotation[0]),
            "w": track.body_rates_rad_s[0].copy(),
            "wind": np.asarray(self.conditions.mean_wind_m_s, dtype=np.float64),
            "rotor_speeds": np.sqrt(thrusts / self.vehicle.thrust_coeff_n_per_rad2_s2),
        }
        params = self.vehicle.to_rotorpy()
        params["mass"] = self.vehicle.mass_kg * (1.0 + self.mass_error)  # the controller keeps the nominal mass
        multirotor = Multirotor(
            params,
            initial_state=state,
            control_abstraction="cmd_motor_speeds",
            aero=True,
            enable_ground=False,
            integrator_kwargs=self.integrator_kwargs(),
        )
        return multirotor, state

    def _fly(self, trajectory: Trajectory, rng: np.random.Generator) -> FlightLog:
        vehicle, dt = self.vehicle, self.control_dt_s
        track = ReferenceTrack.build(trajectory, vehicle, dt, self.criteria.settle_time_s)
        controller = SE3Controller(vehicle, self.gains)
        multirotor, state = self._start(track, controller)
        wind = dryden_gust(self.conditions, dt, rng)
        noise_std = self.conditions.measurement_noise_std(1.0 / dt)
        k_eta = vehicle.thrust_coeff_n_per_rad2_s2

        count = len(track)
        positions = np.zeros((count, 3))
        yaws = np.zeros(count)
        commands = np.zeros((count, 4))
        failure = ""
        last = count
        for k in range(count):
            if not all(math.isfinite(float(state[key].sum())) for key in ("x", "v", "q", "w")):
                failure, last = "simulation state became NaN", k
                break
            position, rotation = state["x"], quat_xyzw_to_matrix(state["q"])
            positions[k] = position
            yaws[k] = yaw_of(rotation)
            noise = noise_std * rng.standard_normal(12)
            thrusts = controller.rotor_thrusts(
                position + noise[0:3],
                state["v"] + noise[3:6],
                rotation @ rotation_from_vector(noise[6:9]),
                state["w"] + noise[9:12],
                track.at(k),
                dt_s=dt,
            )
            commands[k] = vehicle.rotor_speeds_from_thrusts(controller.last_unclipped_thrusts_n)
            failure = self.criteria.stop_reason(position, track.derivatives[0, k, :3], float(track.times_s[k]))
            if failure:
                last = k + 1
                break
            state["wind"] = wind.update(track.times_s[k], position)
            state = multirotor.step(state, {"cmd_motor_speeds": np.sqrt(thrusts / k_eta)}, dt)
        return FlightLog.from_track(track, positions, yaws, commands, last, failure)

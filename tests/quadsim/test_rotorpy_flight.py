"""Fidelity 2: RotorPy flights (aerodynamics, motor lag, Dryden wind, mocap noise) with the SE(3) controller."""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from minsnap import Trajectory, solve_min_snap
from quadsim.analytic import AnalyticEvaluator
from quadsim.evaluation import EvaluationResult
from quadsim.rotorpy_flight import (
    FlightConditions,
    RotorPyEvaluator,
    dryden_gust,
    gust_filter_covariance,
    matrix_to_quat_xyzw,
    quat_xyzw_to_matrix,
    rotation_from_vector,
    seeded_global_numpy_rng,
)
from quadsim.vehicle import VehicleParams

VEHICLE = VehicleParams()
# About 5.6 m with turns, climbs and a 1.2 rad heading change; flown at about 1 m/s.
COURSE = np.array(
    [[0.0, 0.0, 1.0, 0.0], [1.5, 0.5, 1.4, 0.6], [2.5, -0.5, 1.8, 1.2], [3.5, 0.5, 1.2, 0.4], [2.5, 1.5, 1.0, 0.0]]
)
CALM = FlightConditions(
    turbulence_m_s=(0.0, 0.0, 0.0),
    position_noise_density_m=0.0,
    velocity_noise_density_m_s=0.0,
    attitude_noise_density_rad=0.0,
    body_rate_noise_density_rad_s=0.0,
)


def course_at(speed_m_s: float) -> Trajectory:
    """The course with segment times for an average speed of `speed_m_s`."""
    lengths = np.linalg.norm(np.diff(COURSE[:, :3], axis=0), axis=1)
    return solve_min_snap(COURSE, lengths / speed_m_s)


def hover(point: tuple[float, float, float, float], duration_s: float) -> Trajectory:
    """A trajectory that stays at one point (x, y, z, yaw)."""
    coefficients = np.zeros((1, 4, 8))
    coefficients[0, :, 0] = point
    return Trajectory(np.array([duration_s]), coefficients, np.array([point, point], dtype=np.float64))


def without_wall_time(result: EvaluationResult) -> EvaluationResult:
    """The result with its (machine-dependent) wall time zeroed, for equality checks."""
    return dataclasses.replace(result, wall_time_s=0.0)


# Conventions and the noise models (fast, no flight).


def test_quaternion_is_scalar_last_like_rotorpy_and_scipy() -> None:
    rotation = Rotation.from_euler("zyx", [0.7, -0.3, 0.2])
    q = matrix_to_quat_xyzw(rotation.as_matrix())
    assert abs(abs(float(q @ rotation.as_quat())) - 1.0) < 1e-12
    np.testing.assert_allclose(quat_xyzw_to_matrix(rotation.as_quat()), rotation.as_matrix(), atol=1e-12)


@pytest.mark.parametrize("phi", [[0.0, 0.0, 0.0], [1e-9, 0.0, -2e-9], [0.01, -0.02, 0.005], [0.5, 1.0, -2.0]])
def test_rotation_from_vector_is_the_exponential_map(phi: list[float]) -> None:
    np.testing.assert_allclose(rotation_from_vector(np.asarray(phi)), Rotation.from_rotvec(phi).as_matrix(), atol=1e-12)


def test_measurement_noise_follows_rotorpy_density_scaling() -> None:
    conditions = FlightConditions(position_noise_density_m=1e-3, body_rate_noise_density_rad_s=2e-3)
    std = conditions.measurement_noise_std(200.0)
    assert std.shape == (12,)
    np.testing.assert_allclose(std[:3], 1e-3 * 10.0)  # density * sqrt(rate / 2)
    np.testing.assert_allclose(std[9:], 2e-3 * 10.0)
    assert not CALM.measurement_noise_std(200.0).any()


@pytest.mark.parametrize("dt_s", [0.005, 0.01])
def test_gusts_have_the_requested_deviation_from_the_start(dt_s: float) -> None:
    conditions = FlightConditions(mean_wind_m_s=(2.0, -1.0, 0.0), turbulence_m_s=(0.6, 0.3, 0.1))
    model = dryden_gust(conditions, dt_s, np.random.default_rng(0))
    axes = (model.wind.wx_gust, model.wind.wy_gust, model.wind.wz_gust)
    stationary_std = [math.sqrt(gust_filter_covariance(axis, dt_s)[0, 0]) for axis in axes]
    np.testing.assert_allclose(stationary_std, conditions.turbulence_m_s, rtol=1e-6)
    # First gusts of many independent flights: mean wind plus the requested spread.
    first = []
    with seeded_global_numpy_rng(1):
        for seed in range(400):
            first.append(dryden_gust(conditions, dt_s, np.random.default_rng(seed)).update(0.0, np.zeros(3)))
    first_gusts = np.array(first)
    np.testing.assert_allclose(first_gusts.mean(axis=0), conditions.mean_wind_m_s, atol=0.1)
    np.testing.assert_allclose(first_gusts.std(axis=0), conditions.turbulence_m_s, rtol=0.15)


def test_seeded_global_rng_is_restored() -> None:
    np.random.seed(123)  # noqa: NPY002 (the global generator is what is being tested)
    expected = np.random.random(3)  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    with seeded_global_numpy_rng(7):
        inside = np.random.random(3)  # noqa: NPY002
    np.testing.assert_array_equal(np.random.random(3), expected)  # noqa: NPY002
    with seeded_global_numpy_rng(7):
        np.testing.assert_array_equal(np.random.random(3), inside)  # noqa: NPY002


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="control_rate_hz"):
        RotorPyEvaluator(control_rate_hz=0.0)
    with pytest.raises(ValueError, match="noise densities"):
        FlightConditions(velocity_noise_density_m_s=-1.0)


# Flights.


@pytest.mark.sim
def test_slow_course_is_feasible_with_small_tracking_error() -> None:
    trajectory = course_at(1.0)
    result = RotorPyEvaluator().evaluate_one(trajectory)
    assert result.fidelity == "rotorpy"
    assert result.feasible, result.reason
    assert result.reason == ""
    assert result.max_position_error_m < 0.1
    assert result.max_yaw_error_rad < math.radians(3.0)
    assert result.max_rotor_speed_ratio < 1.0
    assert result.min_rotor_speed_rad_s > VEHICLE.rotor_speed_min_rad_s
    assert result.duration_s == pytest.approx(trajectory.duration_s)


@pytest.mark.sim
def test_aggressive_course_saturates_the_rotors_and_is_infeasible() -> None:
    trajectory = course_at(3.5)
    assert AnalyticEvaluator().evaluate_one(trajectory).max_rotor_speed_ratio > 1.0
    result = RotorPyEvaluator().evaluate_one(trajectory)
    assert not result.feasible
    assert result.reason
    assert result.max_rotor_speed_ratio > 1.0  # the controller asked for more than the rotors give


@pytest.mark.sim
def test_divergent_flight_is_a_result_with_a_reason() -> None:
    trajectory = course_at(8.0)
    evaluator = RotorPyEvaluator()
    flight = evaluator.fly(trajectory)
    assert flight.failure.startswith(("diverged", "hit the ground"))
    assert flight.times_s[-1] < trajectory.duration_s  # stopped early
    result = evaluator.evaluate_one(trajectory)
    assert not result.feasible
    assert result.reason.startswith(flight.failure)


@pytest.mark.sim
def test_same_seed_same_result_and_another_seed_another_one() -> None:
    trajectory = course_at(1.5)  # well inside the boundary (near it, noise can tip the verdict)
    first = RotorPyEvaluator(seed=3).fly(trajectory)
    again = RotorPyEvaluator(seed=3).fly(trajectory)
    other = RotorPyEvaluator(seed=4).fly(trajectory)
    np.testing.assert_array_equal(first.positions_m, again.positions_m)
    np.testing.assert_array_equal(first.rotor_speed_cmd_rad_s, again.rotor_speed_cmd_rad_s)
    assert not np.array_equal(first.positions_m, other.positions_m)
    # Noise and gusts are modest: another realisation changes the error by millimetres, not more.
    assert abs(first.position_error_m.max() - other.position_error_m.max()) < 0.03


@pytest.mark.sim
def test_batch_in_worker_processes_equals_serial() -> None:
    trajectories = [course_at(1.5), course_at(8.0)]
    evaluator = pickle.loads(pickle.dumps(RotorPyEvaluator(seed=5)))
    serial = evaluator.evaluate(trajectories)
    parallel = evaluator.evaluate(trajectories, num_workers=2)
    assert [without_wall_time(r) for r in parallel] == [without_wall_time(r) for r in serial]
    assert [r.feasible for r in serial] == [True, False]


@pytest.mark.sim
def test_mean_wind_pushes_a_hovering_vehicle_downwind() -> None:
    point = (0.0, 0.0, 1.5, 0.3)
    calm = RotorPyEvaluator(conditions=CALM).fly(hover(point, 2.0))
    assert calm.position_error_m.max() < 1e-3
    windy = RotorPyEvaluator(conditions=dataclasses.replace(CALM, mean_wind_m_s=(0.0, 4.0, 0.0))).fly(hover(point, 2.0))
    offset = windy.positions_m[-1] - np.asarray(point[:3])
    assert offset[1] > 0.01  # rotor and frame drag blow it towards +y; the controller has no integral term
    assert abs(offset[0]) < 0.5 * offset[1]


@pytest.mark.sim
def test_fixed_integration_step_is_converged() -> None:
    trajectory = course_at(2.0)
    coarse = RotorPyEvaluator(conditions=CALM).fly(trajectory)
    fine = RotorPyEvaluator(conditions=CALM, integrator_steps_per_control=4).fly(trajectory)
    np.testing.assert_allclose(coarse.positions_m, fine.positions_m, atol=2e-4)


@pytest.mark.sim
def test_a_payload_the_controller_is_not_told_about_is_flown_and_absorbed() -> None:
    """mass_error makes RotorPy's vehicle heavier than the controller's model; integral action absorbs it (the
    same flight without integral action sags and tracks several times worse)."""
    from quadsim.controller import SE3Gains

    trajectory = course_at(1.0)
    heavy = RotorPyEvaluator(mass_error=0.15).evaluate_one(trajectory)
    assert heavy.feasible, heavy.reason

    def settled_error_m(gains: SE3Gains) -> float:  # over the last half second of the settle time
        flight = RotorPyEvaluator(mass_error=0.15, gains=gains).fly(trajectory)
        late = flight.times_s >= flight.times_s[-1] - 0.5
        return float(np.linalg.norm(flight.positions_m[late] - flight.ref_positions_m[late], axis=1).mean())

    assert settled_error_m(SE3Gains(ki_position=(0.0, 0.0, 0.0))) > 3.0 * settled_error_m(SE3Gains())
    with pytest.raises(ValueError, match="mass_error"):
        RotorPyEvaluator(mass_error=-0.9)

"""The trajectory certificate: every certified bound holds over whole segments, each broken limit is named."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from mfplan.courses import course_set
from minsnap import EndpointState, Trajectory, solve_min_snap
from quadsim.analytic import AnalyticEvaluator, sample_times
from quadsim.certificate import SafetyLimits, TrajectoryCertificate, Violation, rotor_speed_bounds
from quadsim.flatness import flat_state
from quadsim.geofence import BoxGeofence, CylinderGeofence
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

SLOW = solve_min_snap([[0.0, 0.0, 1.0], [2.0, 1.0, 1.5], [4.0, -1.0, 2.0], [6.0, 0.0, 1.2]], [3.0, 3.0, 3.0])


def random_trajectories(count: int, seed: int, speed_scale: tuple[float, float] = (0.5, 1.5)) -> list[Trajectory]:
    """Random courses, random segment times, half of them starting while moving."""
    rng = np.random.default_rng(seed)
    out = []
    for waypoints in course_set(count, seed):
        times = rng.uniform(0.4, 2.5, len(waypoints) - 1) * rng.uniform(*speed_scale)
        start = None
        if rng.random() < 0.5:
            start = EndpointState(velocity=rng.normal(0.0, 1.5, 3), acceleration=rng.normal(0.0, 2.0, 3))
        out.append(solve_min_snap(waypoints, times, start))
    return out


def dense_state(trajectory: Trajectory, step_s: float = 5e-4) -> tuple[np.ndarray, np.ndarray]:
    """Derivatives `5 x K x 4` and rotor speeds `K x 4` on a grid 20x denser than the certificate's 10 ms."""
    times = np.linspace(0.0, trajectory.duration_s, int(np.ceil(trajectory.duration_s / step_s)) + 1)
    derivatives = trajectory.derivatives(times, max_order=4)
    return derivatives, flat_state(derivatives, VehicleParams()).rotor_speeds_rad_s


def test_every_bound_holds_against_dense_sampling_on_random_courses() -> None:
    fence = CylinderGeofence((4.5, 4.5), 6.0, 0.0, 4.0)
    certificate = TrajectoryCertificate(limits=SafetyLimits(geofence=fence))
    checked = 0
    for trajectory in random_trajectories(30, seed=1, speed_scale=(1.0, 2.0)):
        result = certificate.check(trajectory)
        derivatives, speeds = dense_state(trajectory)
        if np.abs(speeds).max() > 3000 or "singular" in result.reason:  # near free fall: checked elsewhere
            continue
        checked += 1
        b = result.bounds
        position = derivatives[0, :, :3]
        low, high = trajectory.waypoints[:, :3].min(axis=0), trajectory.waypoints[:, :3].max(axis=0)
        outside = np.linalg.norm(np.maximum(np.maximum(low - position, position - high), 0.0), axis=1)
        dense = {
            "max_speed_m_s": np.linalg.norm(derivatives[1, :, :3], axis=1).max(),
            "max_acceleration_m_s2": np.linalg.norm(derivatives[2, :, :3], axis=1).max(),
            "max_excursion_m": outside.max(),
            "geofence_excess_m": fence.excess_m(position).max(),
            "max_rotor_speed_rad_s": speeds.max(),
        }
        for key, value in dense.items():
            assert b[key] >= value - 1e-9, (key, b[key], value)
        assert b["min_z_m"] <= position[:, 2].min() + 1e-9
        assert b["min_vertical_accel_plus_g_m_s2"] <= derivatives[2, :, 2].min() + GRAVITY_M_S2 + 1e-9
        assert b["min_rotor_speed_rad_s"] <= speeds.min()
        # Tight: the rotor margin is within the refinement tolerance (0.5 rad/s) of the truth.
        assert b["max_rotor_speed_rad_s"] - speeds.max() < 1.0
        assert speeds.min() - b["min_rotor_speed_rad_s"] < 1.0
        assert result.passed == (not result.violations)
    assert checked >= 20


@pytest.mark.slow
def test_rotor_bounds_hold_on_many_random_courses() -> None:
    vehicle = VehicleParams()
    for trajectory in random_trajectories(120, seed=11, speed_scale=(0.3, 1.5)):
        bounds = rotor_speed_bounds(trajectory, vehicle)
        _, speeds = dense_state(trajectory, step_s=2e-4)
        # Whatever the regime, the decision agrees with the dense truth ...
        assert (speeds.max() > 900.0) <= (bounds.max_rad_s > 900.0)
        assert (speeds.min() < 100.0) <= (bounds.min_rad_s < 100.0)
        if np.abs(speeds).max() <= 3000:  # ... and away from free fall the bounds themselves hold.
            assert bounds.max_rad_s >= speeds.max()
            assert bounds.min_rad_s <= speeds.min()


def narrow_dip_trajectory() -> Trajectory:
    """Found by a search over random courses: the old check (32 samples a segment, refined around the single
    highest and lowest sample) passed it, but one rotor's required speed dips far below the minimum between
    two of its samples."""
    rng = np.random.default_rng(1390)
    waypoints = course_set(1, 1390)[0]
    scale = rng.uniform(0.5, 1.5)
    return solve_min_snap(waypoints, rng.uniform(0.4, 2.5, len(waypoints) - 1) * scale)


def test_a_narrow_rotor_speed_dip_between_the_old_samples_is_caught() -> None:
    trajectory = narrow_dip_trajectory()
    vehicle = VehicleParams()
    old_times = sample_times(trajectory, None, 32)
    old_speeds = flat_state(trajectory.derivatives(old_times, max_order=4), vehicle).rotor_speeds_rad_s
    _, dense = dense_state(trajectory)
    assert old_speeds.min() > vehicle.rotor_speed_min_rad_s > dense.min()  # the dip hides between old samples
    result = TrajectoryCertificate(limits=SafetyLimits(max_speed_m_s=10.0, max_excursion_m=10.0)).check(trajectory)
    violation = next(v for v in result.violations if v.constraint == "rotor speed min")
    assert violation.value <= dense.min()
    dense_times = np.linspace(0.0, trajectory.duration_s, dense.shape[0])
    assert violation.time_s == pytest.approx(dense_times[np.argmin(dense.min(axis=1))], abs=0.02)
    analytic = AnalyticEvaluator().evaluate_one(trajectory)
    assert not analytic.feasible
    assert "< minimum 100 rad/s" in analytic.reason
    assert analytic.min_rotor_speed_rad_s <= dense.min()


def test_a_slow_trajectory_passes_with_every_bound_reported() -> None:
    result = TrajectoryCertificate().check(SLOW)
    assert result.passed, result.reason
    assert result.reason == ""
    assert result.constraint == ""
    assert set(result.bounds) >= {
        "max_speed_m_s",
        "max_acceleration_m_s2",
        "max_excursion_m",
        "min_z_m",
        "min_vertical_accel_plus_g_m_s2",
        "max_rotor_speed_rad_s",
        "min_rotor_speed_rad_s",
    }
    assert 0.0 < result.wall_time_s < 0.5


def _expect(
    result_constraint: str, trajectory: Trajectory, limits: SafetyLimits, vehicle: VehicleParams | None = None
) -> Violation:
    result = TrajectoryCertificate(vehicle, limits).check(trajectory)
    assert not result.passed
    named = [v for v in result.violations if v.constraint == result_constraint]
    assert named, result.reason
    violation = named[0]
    assert result_constraint in result.reason
    assert 0.0 <= violation.time_s <= trajectory.duration_s or result_constraint == "non-finite"
    return violation


def test_speed_and_acceleration_violations_are_named_with_value_limit_and_time() -> None:
    violation = _expect("speed", SLOW, SafetyLimits(max_speed_m_s=0.5))
    speed_there = np.linalg.norm(SLOW.derivatives([violation.time_s], 1)[1, 0, :3])
    assert violation.value >= speed_there > 0.5
    assert violation.limit == 0.5
    assert violation.describe().startswith("speed ")
    assert "> limit 0.5 m/s" in violation.describe()
    violation = _expect("acceleration", SLOW, SafetyLimits(max_acceleration_m_s2=0.3))
    assert violation.value > 0.3
    assert "m/s^2" in violation.describe()


def test_excursion_ground_and_geofence_violations_are_named() -> None:
    # Measured from the box of the first two waypoints, the rest of the course is an excursion.
    region = SLOW.waypoints[:2, :3]
    result = TrajectoryCertificate(limits=SafetyLimits(max_excursion_m=0.5)).check(SLOW, region)
    assert result.constraint == "excursion", result.reason
    violation = result.violations[0]
    position = SLOW.position([violation.time_s])[0]
    low, high = region.min(axis=0), region.max(axis=0)
    assert violation.value >= np.linalg.norm(np.maximum(np.maximum(low - position, position - high), 0.0)) > 0.5
    # Measured against other region points: a start far from the course makes the whole course an excursion.
    far = TrajectoryCertificate(limits=SafetyLimits(max_excursion_m=1.0)).check(SLOW, np.array([[20.0, 20.0, 1.0]]))
    assert far.constraint == "excursion"
    dipping = solve_min_snap([[0, 0, 1.0], [2, 0, 0.02], [4, 0, 1.0]], [2.0, 2.0])
    violation = _expect("ground clearance", dipping, SafetyLimits(max_excursion_m=5.0))
    assert violation.value < 0.03
    assert "< limit 0.03 m" in violation.describe()
    _expect("geofence", SLOW, SafetyLimits(geofence=BoxGeofence((-1.0, -2.0, 0.0), (5.0, 2.0, 3.0))))
    _expect("geofence", SLOW, SafetyLimits(geofence=CylinderGeofence((3.0, 0.0), 2.5, 0.0, 3.0)))
    assert TrajectoryCertificate(limits=SafetyLimits(geofence=BoxGeofence((-1, -3, 0), (7, 3, 3)))).check(SLOW).passed


def test_rotor_singular_and_non_finite_violations_are_named() -> None:
    fast = solve_min_snap(SLOW.waypoints, SLOW.segment_times_s * 0.25)
    loose = SafetyLimits(max_excursion_m=10.0)
    strong = VehicleParams(max_speed_m_s=100.0, max_acceleration_m_s2=200.0)
    _expect("rotor speed max", fast, loose, strong)
    _expect("rotor speed min", fast, loose, strong)
    coefficients = np.zeros((1, 4, 8))
    coefficients[0, 0, :2] = [0.0, 1.0]
    coefficients[0, 2, :3] = [10.0, 0.0, -0.5 * GRAVITY_M_S2]  # free fall
    ballistic = Trajectory(np.array([1.0]), coefficients, np.array([[0, 0, 10, 0], [1, 0, 10 - GRAVITY_M_S2 / 2, 0]]))
    _expect("singular", ballistic, SafetyLimits(max_excursion_m=10.0))
    broken = SLOW.coefficients.copy()
    broken[1, 2, 5] = np.inf
    result = TrajectoryCertificate().check(Trajectory(SLOW.segment_times_s, broken, SLOW.waypoints))
    assert result.constraint == "non-finite"
    assert not result.passed


@pytest.mark.parametrize("field", ["max_speed_m_s", "max_acceleration_m_s2"])
def test_limits_above_the_vehicles_are_refused(field: str) -> None:
    vehicle = VehicleParams()
    allowed = getattr(vehicle, field)

    def limits(value: float) -> SafetyLimits:
        changes: dict[str, Any] = {field: value}
        return replace(SafetyLimits(), **changes)

    with pytest.raises(ValueError, match=field):
        TrajectoryCertificate(vehicle, limits(allowed * 1.01))
    lower = TrajectoryCertificate(vehicle, limits(allowed * 0.5))
    assert getattr(lower, field) == allowed * 0.5
    with pytest.raises(ValueError, match=field):
        limits(0.0)

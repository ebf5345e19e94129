"""Fidelity 0: the analytic feasibility check against the rotor-speed limits."""

from __future__ import annotations

import numpy as np
import pytest

from minsnap import Trajectory, solve_min_snap
from quadsim.analytic import AnalyticEvaluator, sample_times
from quadsim.flatness import flat_state
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

WAYPOINTS = np.array(
    [[0.0, 0.0, 1.0, 0.0], [2.0, 1.0, 1.5, 0.5], [4.0, -1.0, 2.0, 0.0], [6.0, 0.0, 1.2, -0.5], [4.0, 2.0, 1.0, 0.0]]
)
SLOW_TIMES_S = np.array([3.0, 3.0, 3.0, 3.0])


def scaled(scale: float) -> Trajectory:
    """The course flown with every segment time multiplied by `scale` (smaller is faster)."""
    return solve_min_snap(WAYPOINTS, scale * SLOW_TIMES_S)


def ballistic(duration_s: float = 1.0) -> Trajectory:
    """A single segment in free fall (acceleration exactly -g throughout)."""
    coefficients = np.zeros((1, 4, 8))
    coefficients[0, 0, :2] = [0.0, 1.0]
    coefficients[0, 2, :3] = [10.0, 0.0, -0.5 * GRAVITY_M_S2]
    end = np.array([duration_s, 0.0, 10.0 - 0.5 * GRAVITY_M_S2 * duration_s**2, 0.0])
    return Trajectory(np.array([duration_s]), coefficients, np.vstack([[0.0, 0.0, 10.0, 0.0], end]))


def test_slow_trajectory_is_feasible() -> None:
    result = AnalyticEvaluator().evaluate_one(scaled(1.0))
    vehicle = VehicleParams()
    assert result.feasible
    assert result.reason == ""
    assert result.fidelity == "analytic"
    assert vehicle.rotor_speed_min_rad_s < result.min_rotor_speed_rad_s < vehicle.hover_rotor_speed_rad_s
    assert vehicle.hover_rotor_speed_rad_s < result.max_rotor_speed_rad_s < vehicle.rotor_speed_max_rad_s
    assert result.max_rotor_speed_ratio < 1.0
    assert result.duration_s == pytest.approx(SLOW_TIMES_S.sum())
    assert result.max_position_error_m == result.max_yaw_error_rad == 0.0


def test_faster_means_higher_rotor_speeds_until_infeasible() -> None:
    evaluator = AnalyticEvaluator()
    scales = np.geomspace(1.0, 0.22, 14)
    results = [evaluator.evaluate_one(scaled(s)) for s in scales]
    max_speeds = np.array([r.max_rotor_speed_rad_s for r in results])
    min_speeds = np.array([r.min_rotor_speed_rad_s for r in results])
    assert np.all(np.diff(max_speeds) > 0), max_speeds
    assert np.all(np.diff(min_speeds) < 0), min_speeds
    feasible = np.array([r.feasible for r in results])
    assert feasible[0]
    assert not feasible[-1]
    # Once infeasible, every faster version is infeasible too.
    first_bad = int(np.argmin(feasible))
    assert not feasible[first_bad:].any()
    assert feasible[:first_bad].all()
    for result in results:
        assert result.feasible == (result.reason == "")
        too_fast = result.max_rotor_speed_rad_s > 900.0
        too_slow = result.min_rotor_speed_rad_s < 100.0
        assert result.feasible == (not too_fast and not too_slow)
        assert ("> limit 900 rad/s" in result.reason) == too_fast
        assert ("< minimum 100 rad/s" in result.reason) == too_slow
        assert result.max_rotor_speed_ratio == pytest.approx(result.max_rotor_speed_rad_s / 900.0)


def test_the_limit_is_the_vehicles() -> None:
    trajectory = scaled(0.3)
    assert not AnalyticEvaluator().is_feasible(trajectory)
    strong = VehicleParams(rotor_speed_min_rad_s=0.0, rotor_speed_max_rad_s=5000.0)
    result = AnalyticEvaluator(vehicle=strong).evaluate_one(trajectory)
    assert "limit" not in result.reason
    assert result.rotor_speed_limit_rad_s == 5000.0


def test_reported_speeds_are_certified_bounds_of_the_flatness_extremes() -> None:
    trajectory = scaled(0.5)
    evaluator = AnalyticEvaluator(sample_rate_hz=200.0)
    times, speeds, singular = evaluator.rotor_speed_profile(trajectory)
    assert np.all(np.diff(times) > 0)
    assert set(trajectory.knot_times_s) <= set(times)
    assert times[-1] == pytest.approx(trajectory.duration_s)
    assert np.max(np.diff(times)) <= 1.0 / 200.0 + 1e-9
    assert not singular.any()
    result = evaluator.evaluate_one(trajectory)
    # The sampled extremes are in `extra`; the reported speeds are certified bounds around them.
    assert result.extra["sampled_max_rotor_speed_rad_s"] == pytest.approx(speeds.max())
    assert result.extra["sampled_min_rotor_speed_rad_s"] == pytest.approx(speeds.min())
    dense = np.linspace(0.0, trajectory.duration_s, 20_001)
    dense_speeds = flat_state(trajectory.derivatives(dense, max_order=4), VehicleParams()).rotor_speeds_rad_s
    # Sound: beyond every densely sampled value; tight: within 1 rad/s (the refinement tolerance is 0.5).
    assert dense_speeds.max() <= result.max_rotor_speed_rad_s < dense_speeds.max() + 1.0
    assert dense_speeds.min() - 1.0 < result.min_rotor_speed_rad_s <= dense_speeds.min()
    assert result.max_rotor_speed_rad_s >= result.extra["sampled_max_rotor_speed_rad_s"]
    assert result.min_rotor_speed_rad_s <= result.extra["sampled_min_rotor_speed_rad_s"]


def test_sample_times_cover_short_trajectories() -> None:
    trajectory = solve_min_snap([[0.0, 0.0, 1.0], [0.1, 0.0, 1.0]], [0.001])
    times = sample_times(trajectory, 200.0)
    assert times[0] == 0.0
    assert times[-1] == pytest.approx(trajectory.duration_s)
    assert times.size >= 2


def test_free_fall_is_infeasible_and_named() -> None:
    result = AnalyticEvaluator().evaluate_one(ballistic())
    assert not result.feasible
    assert "free fall" in result.reason


def test_wall_time_is_recorded() -> None:
    result = AnalyticEvaluator().evaluate_one(scaled(1.0))
    assert 0.0 < result.wall_time_s < 1.0


def test_trajectory_below_the_ground_clearance_is_infeasible() -> None:
    from minsnap import solve_min_snap
    from quadsim.analytic import AnalyticEvaluator

    dipping = solve_min_snap([[0, 0, 1.0], [2, 0, 0.02], [4, 0, 1.0]], [2.0, 2.0])
    result = AnalyticEvaluator().evaluate_one(dipping)
    assert not result.feasible
    assert "below the ground clearance" in result.reason
    clear = solve_min_snap([[0, 0, 1.0], [2, 0, 0.5], [4, 0, 1.0]], [2.0, 2.0])
    assert AnalyticEvaluator().evaluate_one(clear).feasible


def test_default_per_segment_sampling_finds_the_extremes() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        waypoints = np.column_stack([rng.uniform(0, 9, (8, 2)), rng.uniform(1, 3, 8), rng.uniform(-1, 1, 8)])
        trajectory = solve_min_snap(waypoints, rng.uniform(0.4, 2.5, 7))
        result = AnalyticEvaluator().evaluate_one(trajectory)
        dense = np.linspace(0.0, trajectory.duration_s, 40_001)
        speeds = flat_state(trajectory.derivatives(dense, max_order=4), VehicleParams()).rotor_speeds_rad_s
        assert result.max_rotor_speed_rad_s == pytest.approx(speeds.max(), rel=2e-3)
        assert result.min_rotor_speed_rad_s == pytest.approx(speeds.min(), rel=5e-3, abs=1.0)

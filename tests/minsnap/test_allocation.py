"""Time allocation: heuristics and the baseline optimisation against a feasibility check."""

from __future__ import annotations

import numpy as np
import pytest

from minsnap import EndpointState, Trajectory, TrajectoryInputError, snap_cost_and_gradient, solve_min_snap
from minsnap.allocation import (
    FeasibilityCheck,
    constant_speed_times,
    optimise_segment_times,
    optimise_time_ratios,
    scale_to_feasibility_boundary,
    shortest_feasible_times,
    trapezoidal_times,
)
from quadsim.analytic import AnalyticEvaluator

COURSE = np.array([[0, 0, 1, 0], [2, 1, 1.5, 0.5], [4, -1, 2, 1.0], [6, 0, 1, 0.5], [3, 3, 1.5, 0], [0, 4, 2, 0]])


def test_constant_speed_times_are_length_over_speed() -> None:
    times = constant_speed_times([[0, 0, 0], [3, 4, 0], [3, 4, 2]], speed_m_s=2.0)
    np.testing.assert_allclose(times, [2.5, 1.0])


def test_trapezoidal_times_cruise_and_triangle() -> None:
    # 10 m at v=2, a=1: reaches cruise (v^2/a = 4 m) -> 10/2 + 2/1 = 7 s; 1 m never reaches it -> 2 sqrt(1) = 2 s.
    times = trapezoidal_times([[0, 0, 0], [10, 0, 0], [10, 1, 0]], max_speed_m_s=2.0, max_accel_m_s2=1.0)
    np.testing.assert_allclose(times, [7.0, 2.0])


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan")])
def test_heuristics_reject_non_positive_limits(speed: float) -> None:
    with pytest.raises(TrajectoryInputError, match="must be > 0"):
        constant_speed_times(COURSE, speed)
    with pytest.raises(TrajectoryInputError, match="must be > 0"):
        trapezoidal_times(COURSE, speed, 1.0)


def test_ratio_optimisation_keeps_total_and_lowers_snap() -> None:
    initial = constant_speed_times(COURSE, 1.5)
    times, iterations = optimise_time_ratios(COURSE, initial)
    assert iterations > 0
    assert times.sum() == pytest.approx(initial.sum(), rel=1e-9)
    cost_before, _ = snap_cost_and_gradient(COURSE, initial)
    cost_after, gradient = snap_cost_and_gradient(COURSE, times)
    assert cost_after < cost_before
    # At a constrained optimum the gradient is equal across segments (Lagrange condition for sum T = const).
    assert np.ptp(gradient) / np.abs(gradient).mean() < 1e-2


def test_baseline_lands_on_the_feasibility_boundary() -> None:
    analytic = AnalyticEvaluator()
    result = optimise_segment_times(COURSE, analytic.is_feasible, trapezoidal_times(COURSE, 3.0, 3.0))
    assert result.feasible
    assert analytic.is_feasible(result.trajectory)
    assert not analytic.is_feasible(solve_min_snap(COURSE, result.segment_times_s * 0.99))
    assert result.total_time_s == pytest.approx(result.trajectory.duration_s)
    assert result.wall_time_s > 0
    assert result.feasibility_checks > 3


def _speed_below(limit_m_s: float) -> FeasibilityCheck:
    def check(trajectory: Trajectory) -> bool:
        times = np.linspace(0.0, trajectory.duration_s, 400)
        return bool(np.linalg.norm(trajectory.derivatives(times, 1)[1, :, :3], axis=1).max() <= limit_m_s)

    return check


@pytest.mark.parametrize("moving", [False, True])
def test_the_reference_optimisation_is_feasible_and_beats_the_snap_optimal_split(moving: bool) -> None:
    """Minimising the total time segment by segment under the check itself finds a shorter feasible allocation
    than the snap-optimal ratios scaled to the boundary, from rest and from a moving start (kept exact)."""
    check = _speed_below(2.0)
    start = EndpointState(velocity=np.array([1.0, 0.5, 0.0])) if moving else None
    initial = trapezoidal_times(COURSE, 3.0, 3.0)
    baseline = optimise_segment_times(COURSE, check, initial, start=start)
    reference = shortest_feasible_times(COURSE, check, baseline.segment_times_s, start=start)
    assert reference.feasible
    assert check(reference.trajectory)
    assert reference.total_time_s < 0.97 * baseline.total_time_s, (reference.total_time_s, baseline.total_time_s)
    np.testing.assert_allclose(reference.trajectory.derivatives([0.0], 1)[1, 0, :3], start.velocity if start else 0)
    # No single segment can be shortened by more than one bisection step and still pass.
    for i in range(COURSE.shape[0] - 1):
        shorter = reference.segment_times_s.copy()
        shorter[i] *= 0.9
        assert not check(solve_min_snap(COURSE, shorter, start))
    impossible = shortest_feasible_times(COURSE, lambda trajectory: False, initial, max_scale=4.0)
    assert not impossible.feasible


def test_scale_search_reports_infeasible_when_no_scale_works() -> None:
    scale, feasible, checks = scale_to_feasibility_boundary(
        COURSE, np.ones(len(COURSE) - 1), lambda trajectory: False, max_scale=8.0
    )
    assert not feasible
    assert scale == 8.0
    assert checks >= 3


COLLINEAR = np.column_stack([np.linspace(0.0, 9.0, 10), np.zeros(10), np.ones(10)])


def test_collinear_waypoints_optimise_without_breaking_the_solver() -> None:
    # Collinear waypoints: one polynomial through all of them is optimal, the snap cost is flat along a valley,
    # and long steps used to reach times 1e5 apart where the snap system is numerically indefinite.
    initial = trapezoidal_times(COLLINEAR, 3.0, 5.0)
    times, _ = optimise_time_ratios(COLLINEAR, initial)
    assert np.all(np.isfinite(times))
    assert times.min() > 1e-3 * times.max()
    assert times.sum() == pytest.approx(initial.sum(), rel=1e-9)
    cost, _ = snap_cost_and_gradient(COLLINEAR, times)
    single_segment = solve_min_snap(COLLINEAR[[0, -1]], [initial.sum()]).snap_cost()  # lower bound: no waypoints
    assert single_segment * (1 - 1e-9) <= cost < snap_cost_and_gradient(COLLINEAR, initial)[0] / 100.0
    result = optimise_segment_times(COLLINEAR, AnalyticEvaluator().is_feasible, initial)
    assert result.feasible
    assert AnalyticEvaluator().is_feasible(result.trajectory)


def test_a_step_the_solver_refuses_is_backtracked(monkeypatch: pytest.MonkeyPatch) -> None:
    import minsnap.allocation as allocation

    def fragile(waypoints, times, start=None, end=None):  # type: ignore[no-untyped-def]
        if times.min() < 0.3 * times.max():
            raise TrajectoryInputError("minimum-snap system is not positive definite for these segment times")
        return snap_cost_and_gradient(waypoints, times, start, end)

    monkeypatch.setattr(allocation, "snap_cost_and_gradient", fragile)
    initial = constant_speed_times(COURSE, 1.5)
    times, _ = allocation.optimise_time_ratios(COURSE, initial)
    assert times.min() >= 0.3 * times.max()
    assert snap_cost_and_gradient(COURSE, times)[0] <= snap_cost_and_gradient(COURSE, initial)[0]

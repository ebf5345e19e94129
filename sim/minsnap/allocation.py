"""Segment-time allocation: heuristics, and the slow optimisation baseline the learned planner must beat.

The baseline (after Richter, Bry and Roy, 2013) first distributes a fixed total time over the segments
to minimise the snap cost (gradient descent on the segment-time ratios, with the analytic gradient of
the snap cost), then scales every time by one factor found by bisection so that the trajectory sits on
the feasibility boundary of a given check. The check is passed in, so this module needs no vehicle.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from minsnap.errors import TrajectoryInputError
from minsnap.solver import EndpointState, snap_cost_and_gradient, solve_min_snap
from minsnap.trajectory import Trajectory
from minsnap.validation import as_waypoints

FeasibilityCheck = Callable[[Trajectory], bool]


def segment_lengths_m(waypoints: ArrayLike) -> NDArray[np.float64]:
    """Straight-line length of each segment."""
    points = as_waypoints(waypoints)
    return np.linalg.norm(np.diff(points[:, :3], axis=0), axis=1)


def constant_speed_times(waypoints: ArrayLike, speed_m_s: float, min_time_s: float = 0.05) -> NDArray[np.float64]:
    """Segment times for flying every straight segment at `speed_m_s` (at least `min_time_s` each)."""
    if not speed_m_s > 0:
        raise TrajectoryInputError(f"speed must be > 0 m/s, got {speed_m_s}")
    return np.maximum(segment_lengths_m(waypoints) / speed_m_s, min_time_s)


def trapezoidal_times(
    waypoints: ArrayLike, max_speed_m_s: float, max_accel_m_s2: float, min_time_s: float = 0.05
) -> NDArray[np.float64]:
    """Segment times of a rest-to-rest trapezoidal speed profile on each segment.

    A segment long enough to reach `max_speed_m_s` takes d/v + v/a; a shorter one is a triangle, 2 sqrt(d/a).
    """
    if not (max_speed_m_s > 0 and max_accel_m_s2 > 0):
        raise TrajectoryInputError(
            f"speed and acceleration limits must be > 0, got {max_speed_m_s} m/s and {max_accel_m_s2} m/s^2"
        )
    lengths = segment_lengths_m(waypoints)
    reach = max_speed_m_s**2 / max_accel_m_s2
    cruise = lengths / max_speed_m_s + max_speed_m_s / max_accel_m_s2
    triangle = 2.0 * np.sqrt(lengths / max_accel_m_s2)
    return np.maximum(np.where(lengths >= reach, cruise, triangle), min_time_s)


@dataclass(frozen=True)
class TimeOptimisationResult:
    """Outcome of the baseline time optimisation.

    Attributes:
        trajectory: the minimum-snap trajectory with the optimised, scaled times.
        segment_times_s: its segment times.
        feasible: whether the final trajectory passes the check (False if no scale up to the limit did).
        time_scale: the factor applied to the snap-optimal ratios in the final bisection (`shortest_feasible_times`:
            the final total time over the initial one).
        ratio_iterations: gradient steps taken on the ratios (`shortest_feasible_times`: rounds).
        feasibility_checks: calls made to the feasibility check.
        wall_time_s: time spent.
    """

    trajectory: Trajectory
    segment_times_s: NDArray[np.float64]
    feasible: bool
    time_scale: float
    ratio_iterations: int
    feasibility_checks: int
    wall_time_s: float

    @property
    def total_time_s(self) -> float:
        """Total duration of the optimised trajectory."""
        return float(self.segment_times_s.sum())


_MAX_LOG_STEP = 2.0
"""Largest change of any log time ratio in one gradient step (a trust region)."""
_MIN_TIME_RATIO = 1e-3
"""Shortest segment allowed, relative to the longest: below it the snap system's entries (powers of T up to
T^-7) span more than double precision holds, and its Cholesky factorisation fails or returns garbage."""


def optimise_time_ratios(
    waypoints: ArrayLike,
    initial_times_s: ArrayLike,
    start: EndpointState | None = None,
    end: EndpointState | None = None,
    max_iterations: int = 300,
    tolerance: float = 1e-7,
) -> tuple[NDArray[np.float64], int]:
    """Redistribute a fixed total time over the segments to minimise the snap cost.

    Gradient descent with backtracking on log J in softmax coordinates (times stay positive and keep
    their sum), each step limited to a factor e^2 on any time ratio, and no segment shorter than 1e-3 of the
    longest. Where the optimum is flat or degenerate (collinear waypoints: one polynomial through all of
    them is optimal and every interior waypoint constraint is inactive) a step that the solver cannot take
    is refused like a step that does not lower the cost. Returns the optimised times and the iterations taken.
    """
    times = np.asarray(initial_times_s, dtype=np.float64).copy()
    total = float(times.sum())
    if times.shape[0] < 2:
        return times, 0
    theta = np.log(times / total)

    def evaluate(th: NDArray[np.float64]) -> tuple[float, NDArray[np.float64], NDArray[np.float64]] | None:
        """Log cost, its gradient and the times at `th`; None where the solve is ill-conditioned or fails."""
        w = np.exp(th - th.max())
        if w.min() < _MIN_TIME_RATIO:
            return None
        t = total * w / w.sum()
        try:
            cost, grad = snap_cost_and_gradient(waypoints, t, start, end)
        except TrajectoryInputError:
            return None
        if not (np.isfinite(cost) and cost > 0 and np.isfinite(grad).all()):
            return None
        log_grad = t * (grad - float(np.dot(t, grad)) / total) / cost
        return float(np.log(cost)), log_grad, t

    first = evaluate(theta)
    if first is None:
        return times, 0
    value, gradient, times = first
    step = 1.0
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        improved = False
        step = min(step, _MAX_LOG_STEP / max(float(np.abs(gradient).max()), 1e-300))
        while step > 1e-8:
            candidate = theta - step * gradient
            result = evaluate(candidate)
            if result is not None and result[0] <= value - 1e-4 * step * float(gradient @ gradient):
                cand_value, cand_grad, cand_times = result
                improved = True
                break
            step *= 0.5
        if not improved or value - cand_value < tolerance:
            if improved:
                theta, value, gradient, times = candidate, cand_value, cand_grad, cand_times
            break
        theta, value, gradient, times = candidate, cand_value, cand_grad, cand_times
        step = min(step * 2.0, 4.0)
    return times, iterations


def scale_to_feasibility_boundary(
    waypoints: ArrayLike,
    times_s: NDArray[np.float64],
    is_feasible: FeasibilityCheck,
    start: EndpointState | None = None,
    end: EndpointState | None = None,
    relative_tolerance: float = 1e-3,
    max_scale: float = 64.0,
) -> tuple[float, bool, int]:
    """Smallest factor `s` (to `relative_tolerance`) for which `s * times_s` passes the check.

    Returns (scale, feasible, checks). Brackets by doubling/halving from 1, then bisects.
    """
    checks = 0

    def feasible_at(scale: float) -> bool:
        nonlocal checks
        checks += 1
        return is_feasible(solve_min_snap(waypoints, scale * times_s, start, end))

    low, high = 1.0, 1.0
    if feasible_at(1.0):
        low = 0.5
        while feasible_at(low):
            high = low
            low *= 0.5
            if low < 1e-4:
                return high, True, checks
    else:
        high = 2.0
        while not feasible_at(high):
            low = high
            high *= 2.0
            if high > max_scale:
                return max_scale, False, checks
    while (high - low) > relative_tolerance * high:
        middle = 0.5 * (low + high)
        if feasible_at(middle):
            high = middle
        else:
            low = middle
    return high, True, checks


def optimise_segment_times(
    waypoints: ArrayLike,
    is_feasible: FeasibilityCheck,
    initial_times_s: ArrayLike,
    start: EndpointState | None = None,
    end: EndpointState | None = None,
    max_iterations: int = 300,
) -> TimeOptimisationResult:
    """The baseline: snap-optimal time ratios, then the shortest feasible uniform time scale.

    Args:
        waypoints: `N x 3` or `N x 4` waypoints.
        is_feasible: the feasibility check (e.g. the analytic rotor-limit check of a vehicle).
        initial_times_s: starting segment times (e.g. `trapezoidal_times`); only their ratios matter.
        start, end: boundary states (default: at rest).
        max_iterations: gradient steps on the ratios.
    """
    began = time.perf_counter()
    ratios, iterations = optimise_time_ratios(waypoints, initial_times_s, start, end, max_iterations)
    scale, feasible, checks = scale_to_feasibility_boundary(waypoints, ratios, is_feasible, start, end)
    times = scale * ratios
    return TimeOptimisationResult(
        trajectory=solve_min_snap(waypoints, times, start, end),
        segment_times_s=times,
        feasible=feasible,
        time_scale=scale,
        ratio_iterations=iterations,
        feasibility_checks=checks,
        wall_time_s=time.perf_counter() - began,
    )


def shortest_feasible_times(
    waypoints: ArrayLike,
    is_feasible: FeasibilityCheck,
    initial_times_s: ArrayLike,
    start: EndpointState | None = None,
    end: EndpointState | None = None,
    max_rounds: int = 6,
    bisection_steps: int = 6,
    min_factor: float = 0.3,
    stop_gain: float = 0.005,
    max_scale: float = 16.0,
) -> TimeOptimisationResult:
    """A slow reference time optimisation: the total time minimised segment by segment under the check itself.

    Starts from `initial_times_s` scaled to the check's boundary (`scale_to_feasibility_boundary`), then, round
    after round, shortens each segment in turn by the smallest factor in [`min_factor`, 1] that still passes
    (log bisection, `bisection_steps` checks, the other segments fixed) and ends each round with one uniform scale
    to the boundary; it stops when a round gains less than `stop_gain` of the total. Every candidate is solved
    and checked whole, so a moving start (whose path changes with the times) is handled like a rest start. Slow
    (hundreds of checks a course) but free of the baseline's assumption that snap-optimal ratios are time-optimal:
    the yardstick a learned allocation is measured against. Infeasible (`feasible` False) when no uniform scale up
    to `max_scale` of the initial times passes.
    """
    began = time.perf_counter()
    points = as_waypoints(waypoints)
    checks = 0

    def passes(times: NDArray[np.float64]) -> bool:
        nonlocal checks
        checks += 1
        try:
            return bool(is_feasible(solve_min_snap(points, times, start, end)))
        except TrajectoryInputError:
            return False

    scale, feasible, first_checks = scale_to_feasibility_boundary(
        points, np.asarray(initial_times_s, dtype=np.float64), is_feasible, start, end, max_scale=max_scale
    )
    checks += first_checks
    times = scale * np.asarray(initial_times_s, dtype=np.float64)
    rounds = 0
    while feasible and rounds < max_rounds:
        rounds += 1
        before = float(times.sum())
        for i in np.argsort(-times):  # the longest segments first: the most to gain
            low, high = math.log(min_factor), 0.0
            for _ in range(bisection_steps):
                middle = 0.5 * (low + high)
                trial = times.copy()
                trial[i] *= math.exp(middle)
                if passes(trial):
                    high = middle
                else:
                    low = middle
            times[i] *= math.exp(high)
        uniform, _, more = scale_to_feasibility_boundary(points, times, is_feasible, start, end)
        checks += more
        if uniform < 1.0:
            times = uniform * times
        if times.sum() > (1.0 - stop_gain) * before:
            break
    return TimeOptimisationResult(
        trajectory=solve_min_snap(points, times, start, end),
        segment_times_s=times,
        feasible=feasible,
        time_scale=float(times.sum() / np.sum(initial_times_s)),
        ratio_iterations=rounds,
        feasibility_checks=checks,
        wall_time_s=time.perf_counter() - began,
    )

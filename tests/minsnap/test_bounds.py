"""Bernstein-hull bounds: sound (never below a dense sampling) and tight after subdivision."""

from __future__ import annotations

import numpy as np
import pytest

from mfplan.courses import course_set
from minsnap import EndpointState, Trajectory, solve_min_snap
from minsnap.bounds import (
    _BERNSTEIN,
    _hull_matrices,
    _subdivision_matrices,
    axis_ranges,
    max_box_distance_bound,
    max_convex_bound,
    max_convex_bounds,
    max_horizontal_distance_bound,
    max_norm_bound,
    min_axis_bound,
)

DENSE_PER_SEGMENT = 2000  # the bounds' own sampling stops at 2^12 + 1 points only where it must; usually far fewer


def random_trajectories(count: int, seed: int) -> list[Trajectory]:
    """Random courses with random segment times, half of them starting while moving."""
    rng = np.random.default_rng(seed)
    out = []
    for waypoints in course_set(count, seed):
        times = rng.uniform(0.3, 2.5, len(waypoints) - 1)
        start = None
        if rng.random() < 0.5:
            start = EndpointState(velocity=rng.normal(0.0, 2.0, 3), acceleration=rng.normal(0.0, 3.0, 3))
        out.append(solve_min_snap(waypoints, times, start))
    return out


def dense_values(trajectory: Trajectory, order: int) -> list[np.ndarray]:
    """Per segment, `DENSE_PER_SEGMENT x 4` values of the `order`-th derivative (segment ends included)."""
    out = []
    for start, duration in zip(trajectory.knot_times_s[:-1], trajectory.segment_times_s, strict=True):
        times = start + np.linspace(0.0, duration, DENSE_PER_SEGMENT)
        times[-1] = np.nextafter(times[-1], -np.inf)  # stay on this segment's polynomial
        out.append(trajectory.derivatives(times, order)[order])
    return out


@pytest.mark.parametrize("order", [1, 2])
def test_norm_bound_is_sound_and_within_rtol_on_random_courses(order: int) -> None:
    for trajectory in random_trajectories(25, seed=order):
        bound, at = max_norm_bound(trajectory, order, rtol=0.01)
        for i, values in enumerate(dense_values(trajectory, order)):
            actual = np.linalg.norm(values[:, :3], axis=1).max()
            assert bound[i] >= actual * (1 - 1e-12), (i, bound[i], actual)
            assert bound[i] <= actual * 1.02 + 1e-6, (i, bound[i], actual)
            assert trajectory.knot_times_s[i] <= at[i] <= trajectory.knot_times_s[i + 1]
            # `at` is where the best attained value was found: the norm there is within rtol of the bound.
            there = np.linalg.norm(trajectory.derivatives([at[i]], order)[order, 0, :3])
            assert there >= bound[i] / 1.01 - 1e-6, (i, there, bound[i])


def test_closed_form_rest_to_rest_speed() -> None:
    # One rest-to-rest segment of 7th order: p = D (35 s^4 - 84 s^5 + 70 s^6 - 20 s^7), top speed 35/16 D/T at T/2.
    trajectory = solve_min_snap([[0.0, 0.0, 1.0], [4.0, 0.0, 1.0]], [2.0])
    bound, at = max_norm_bound(trajectory, 1, rtol=1e-4)
    exact = 35.0 / 16.0 * 4.0 / 2.0
    assert exact <= bound[0] <= exact * (1 + 1e-4) + 1e-6
    assert at[0] == pytest.approx(1.0)


def test_axis_ranges_contain_the_curve_and_close_in_with_pieces() -> None:
    for trajectory in random_trajectories(10, seed=5):
        coarse = axis_ranges(trajectory, 0)
        fine = axis_ranges(trajectory, 0, pieces=64)
        for i, values in enumerate(dense_values(trajectory, 0)):
            lo, hi = values.min(axis=0), values.max(axis=0)
            for lower, upper in (coarse, fine):
                assert np.all(lower[i] <= lo + 1e-12)
                assert np.all(upper[i] >= hi - 1e-12)
            assert np.all(coarse[0][i] <= fine[0][i] + 1e-9)
            assert np.all(fine[1][i] <= coarse[1][i] + 1e-9)
            span = np.maximum(hi - lo, 1e-3)
            assert np.all((lo - fine[0][i]) <= 0.01 * span)
            assert np.all((fine[1][i] - hi) <= 0.01 * span)


def test_lowest_height_and_distances_are_sound_and_tight() -> None:
    for trajectory in random_trajectories(15, seed=9):
        lowest, _ = min_axis_bound(trajectory, 2)
        centre = trajectory.waypoints[0, :2]
        radial, _ = max_horizontal_distance_bound(trajectory, centre)
        low, high = trajectory.waypoints[:, :3].min(axis=0), trajectory.waypoints[:, :3].max(axis=0)
        outside, _ = max_box_distance_bound(trajectory, low, high)
        for i, values in enumerate(dense_values(trajectory, 0)):
            z = values[:, 2].min()
            assert z - 0.01 * abs(z) - 1e-6 <= lowest[i] <= z + 1e-12
            r = np.linalg.norm(values[:, :2] - centre, axis=1).max()
            assert r - 1e-12 <= radial[i] <= r * 1.01 + 1e-6
            gap = np.linalg.norm(np.maximum(np.maximum(low - values[:, :3], values[:, :3] - high), 0.0), axis=1).max()
            assert gap - 1e-12 <= outside[i] <= gap * 1.01 + 1e-6


def test_a_limit_decides_with_little_work_either_way() -> None:
    trajectory = random_trajectories(1, seed=2)[0]
    tight, _ = max_norm_bound(trajectory, 1, rtol=1e-4)
    top = tight.max()
    above, _ = max_norm_bound(trajectory, 1, limit=1.05 * top)
    assert above.max() <= 1.05 * top  # certified below the limit
    below, at = max_norm_bound(trajectory, 1, limit=0.95 * top)
    worst = int(np.argmax(below))
    assert below[worst] > 0.95 * top  # a definite violation ...
    speed_there = np.linalg.norm(trajectory.derivatives([at[worst]], 1)[1, 0, :3])
    assert speed_there > 0.95 * top  # ... found at a time where the speed really is above the limit


def test_non_finite_coefficients_give_nan_bounds() -> None:
    trajectory = random_trajectories(1, seed=3)[0]
    coefficients = trajectory.coefficients.copy()
    coefficients[1, 0, 3] = np.nan
    broken = Trajectory(trajectory.segment_times_s, coefficients, trajectory.waypoints)
    bound, _ = max_norm_bound(broken, 1)
    assert np.isnan(bound[1])
    assert np.isfinite(np.delete(bound, 1)).all()


def test_subdivision_matrices_are_de_casteljau_splits() -> None:
    # Control points on the parts, from the parent's, equal those converted directly from the monomial form.
    rng = np.random.default_rng(4)
    for degree in (3, 7):
        monomial = rng.normal(size=(degree + 1, 4))
        parent = _BERNSTEIN[degree] @ monomial
        split = _subdivision_matrices(degree, 8)
        assert np.all(split >= 0.0)
        np.testing.assert_allclose(split.sum(axis=1), 1.0, rtol=0, atol=1e-15)
        for i in range(8):
            direct = _hull_matrices(np.array([i / 8]), np.array([1 / 8]), degree)[0] @ monomial
            np.testing.assert_allclose(split[i * (degree + 1) : (i + 1) * (degree + 1)] @ parent, direct, atol=1e-12)


def test_deep_refinement_stays_sound_on_large_and_tiny_scales() -> None:
    # rtol 1e-9 drives the subdivision to max_depth, where the carried rounding slack must still cover the curve.
    for scale in (1e-3, 1.0, 1e4):
        for trajectory in random_trajectories(5, seed=21):
            scaled = Trajectory(trajectory.segment_times_s, trajectory.coefficients * scale, trajectory.waypoints)
            bound, _ = max_norm_bound(scaled, 2, rtol=1e-9)
            for i, values in enumerate(dense_values(scaled, 2)):
                actual = np.linalg.norm(values[:, :3], axis=1).max()
                assert bound[i] >= actual * (1 - 1e-13), (scale, i, bound[i], actual)
                assert bound[i] <= actual * (1 + 1e-4) + 1e-9 * scale


def test_several_functions_at_once_match_one_at_a_time() -> None:
    def speed(values: np.ndarray) -> np.ndarray:
        return np.asarray(np.linalg.norm(values[..., :3], axis=-1))

    def negative_z(values: np.ndarray) -> np.ndarray:
        return np.asarray(-values[..., 2])

    for trajectory in random_trajectories(6, seed=8):
        pairs = [(speed, None), (speed, 2.0), (negative_z, -0.5)]
        together = max_convex_bounds(trajectory, 1, pairs)
        for (function, limit), (bound, at) in zip(pairs, together, strict=True):
            alone, alone_at = max_convex_bound(trajectory, 1, function, limit)
            np.testing.assert_array_equal(bound, alone)
            np.testing.assert_array_equal(at, alone_at)

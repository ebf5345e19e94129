"""Sampled trajectories: quintic Hermite interpolation reproduces quintics and follows minimum-snap pieces."""

from __future__ import annotations

import numpy as np
import pytest

from minsnap import Trajectory, solve_min_snap
from minsnap.allocation import constant_speed_times
from quadsim.sampled_trajectory import SampledTrajectory, polynomial_derivatives, quintic_hermite_coefficients


def test_hermite_reproduces_a_quintic_exactly() -> None:
    rng = np.random.default_rng(3)
    coefficients = rng.normal(size=(6, 4))
    h = 0.7
    start = polynomial_derivatives(coefficients, 0.0, max_order=2)
    end = polynomial_derivatives(coefficients, h, max_order=2)
    np.testing.assert_allclose(quintic_hermite_coefficients(start, end, h), coefficients, atol=1e-10)


@pytest.fixture
def trajectory() -> Trajectory:
    waypoints = np.array([[0, 0, 1, 0], [2, 1, 1.5, 0.5], [4, -1, 2, 0.2], [6, 0, 1.5, -0.3]], float)
    return solve_min_snap(waypoints, constant_speed_times(waypoints, 2.0))


def test_samples_follow_the_trajectory_between_knots(trajectory: Trajectory) -> None:
    sampled = SampledTrajectory.from_trajectory(trajectory, samples_per_segment=4)
    times = np.linspace(0.0, sampled.duration_s - 1e-9, 301)
    exact = trajectory.derivatives(times, max_order=2)
    got = np.array([sampled.derivatives(t)[:3] for t in times]).transpose(1, 0, 2)
    assert np.abs(got[0] - exact[0]).max() < 1e-3  # position within a millimetre
    assert np.abs(got[1] - exact[1]).max() < 1e-2
    assert np.abs(got[2] - exact[2]).max() < 0.1


def test_after_the_end_the_reference_rests_at_the_last_sample(trajectory: Trajectory) -> None:
    sampled = SampledTrajectory.from_trajectory(trajectory, samples_per_segment=2)
    after = sampled.derivatives(sampled.duration_s + 3.0)
    np.testing.assert_allclose(after[0], sampled.values[0, -1])
    assert not after[1:].any()


def test_rejects_times_that_do_not_increase() -> None:
    values = np.zeros((3, 3, 4))
    with pytest.raises(ValueError, match="strictly increasing"):
        SampledTrajectory(times_s=np.array([0.0, 1.0, 1.0]), values=values)

"""`Trajectory`: evaluation against numpy's polynomials, snap cost against quadrature, JSON round trips."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from numpy.polynomial import polynomial as npoly

from minsnap import EndpointState, Trajectory, TrajectoryInputError, solve_min_snap


@pytest.fixture
def trajectory() -> Trajectory:
    """A 6-segment trajectory with yaw and a moving start."""
    rng = np.random.default_rng(11)
    waypoints = np.hstack([np.cumsum(rng.normal(size=(7, 3)), axis=0), rng.uniform(-3, 3, (7, 1))])
    start = EndpointState(velocity=np.array([1.0, -0.5, 0.2]), acceleration=np.array([0.0, 1.0, 0.0]), yaw_rate=0.3)
    return solve_min_snap(waypoints, rng.uniform(0.5, 2.0, 6), start=start)


def _reference_derivative(traj: Trajectory, times_s: np.ndarray, order: int) -> np.ndarray:
    """`K x 4` order-th derivative from numpy's polynomial routines, segment picked by the knot times."""
    knots = traj.knot_times_s
    out = np.empty((times_s.shape[0], 4))
    for k, t in enumerate(times_s):
        segment = min(int(np.searchsorted(knots, t, side="right")) - 1, traj.num_segments - 1)
        for axis in range(4):
            coefficients = npoly.polyder(traj.coefficients[segment, axis], order)
            out[k, axis] = npoly.polyval(t - knots[segment], coefficients)
    return out


def test_derivatives_agree_with_numpy_polynomials(trajectory: Trajectory) -> None:
    """Each derivative 0..7 at random times and at the knots equals numpy's polyder/polyval of the coefficients."""
    rng = np.random.default_rng(12)
    times = np.concatenate([rng.uniform(0.0, trajectory.duration_s, 50), trajectory.knot_times_s])
    values = trajectory.derivatives(times, max_order=7)
    assert values.shape == (8, times.shape[0], 4)
    for order in range(8):
        expected = _reference_derivative(trajectory, times, order)
        np.testing.assert_allclose(values[order], expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())


def test_times_outside_the_trajectory_are_clamped_to_its_ends(trajectory: Trajectory) -> None:
    """Before the start the trajectory holds its first state, after the end its last state."""
    values = trajectory.derivatives([-5.0, 0.0, trajectory.duration_s, trajectory.duration_s + 5.0], max_order=3)
    np.testing.assert_array_equal(values[:, 0], values[:, 1])
    np.testing.assert_array_equal(values[:, 3], values[:, 2])


@pytest.mark.parametrize("max_order", [-1, 8])
def test_derivative_order_out_of_range_is_rejected(trajectory: Trajectory, max_order: int) -> None:
    """A 7th-order polynomial has derivatives 0..7 only."""
    with pytest.raises(ValueError, match="max_order"):
        trajectory.derivatives([0.0], max_order=max_order)


def test_position_sample_and_timing_helpers_are_consistent(trajectory: Trajectory) -> None:
    """`position`, `sample`, `knot_times_s` and `duration_s` describe the same trajectory."""
    assert trajectory.knot_times_s[0] == 0.0
    assert trajectory.knot_times_s[-1] == pytest.approx(trajectory.duration_s)
    np.testing.assert_allclose(trajectory.position(trajectory.knot_times_s), trajectory.waypoints[:, :3], atol=1e-9)
    times, values = trajectory.sample(rate_hz=50.0)
    assert times[0] == 0.0
    assert times[-1] == trajectory.duration_s
    assert np.all(np.diff(times) <= 1.0 / 50.0 + 1e-12)
    assert values.shape == (5, times.shape[0], 4)
    np.testing.assert_array_equal(values[0, :, :3], trajectory.position(times))


def test_snap_cost_equals_quadrature_of_squared_snap(trajectory: Trajectory) -> None:
    """`snap_cost` is the integral of |snap|^2 (Gauss-Legendre, exact for these degree-6 integrands)."""
    nodes, weights = np.polynomial.legendre.leggauss(8)
    total_xyz = total_yaw = 0.0
    for start_s, duration in zip(trajectory.knot_times_s[:-1], trajectory.segment_times_s, strict=True):
        times = start_s + 0.5 * duration * (nodes + 1.0)
        # Evaluate just inside the segment so the knot belongs to it.
        snap = trajectory.derivatives(np.clip(times, start_s, start_s + duration * (1 - 1e-15)), max_order=4)[4]
        total_xyz += 0.5 * duration * float(weights @ (snap[:, :3] ** 2).sum(axis=1))
        total_yaw += 0.5 * duration * float(weights @ snap[:, 3] ** 2)
    assert trajectory.snap_cost() == pytest.approx(total_xyz, rel=1e-10)
    assert trajectory.snap_cost(include_yaw=True) == pytest.approx(total_xyz + total_yaw, rel=1e-10)


def test_json_round_trip_is_exact(trajectory: Trajectory) -> None:
    """to_json then from_json gives bit-identical arrays and identical evaluations."""
    text = trajectory.to_json()
    restored = Trajectory.from_json(text)
    for name in ("segment_times_s", "coefficients", "waypoints"):
        original, copy = getattr(trajectory, name), getattr(restored, name)
        assert copy.dtype == np.float64
        np.testing.assert_array_equal(copy, original, strict=True)
    times = np.linspace(0.0, trajectory.duration_s, 77)
    np.testing.assert_array_equal(restored.derivatives(times, 6), trajectory.derivatives(times, 6))
    assert restored.to_json() == text
    assert json.loads(text)["format"] == "minsnap.trajectory/1"


def test_dict_round_trip_is_exact(trajectory: Trajectory) -> None:
    """to_dict/from_dict, the form a message or YAML layer uses, is exact as well."""
    restored = Trajectory.from_dict(trajectory.to_dict())
    np.testing.assert_array_equal(restored.coefficients, trajectory.coefficients)
    np.testing.assert_array_equal(restored.segment_times_s, trajectory.segment_times_s)
    np.testing.assert_array_equal(restored.waypoints, trajectory.waypoints)


_DROP = object()


def _edited(trajectory: Trajectory, **changes: Any) -> str:
    """The trajectory's JSON with some fields replaced (or dropped with `_DROP`)."""
    data = trajectory.to_dict()
    data.update(changes)
    return json.dumps({key: value for key, value in data.items() if value is not _DROP})


def _times_with_first(trajectory: Trajectory, value: float) -> list[float]:
    return [value, *trajectory.segment_times_s[1:].tolist()]


def _coefficients_with_first(trajectory: Trajectory, value: float) -> list[Any]:
    coefficients = trajectory.coefficients.copy()
    coefficients[0, 0, 0] = value
    return coefficients.tolist()


MALFORMED_JSON: dict[str, tuple[Any, str]] = {
    "not JSON": (lambda t: "{not json", "not valid JSON"),
    "empty text": (lambda t: "", "not valid JSON"),
    "a list": (lambda t: "[1, 2, 3]", "JSON object"),
    "null": (lambda t: "null", "JSON object"),
    "other format": (lambda t: _edited(t, format="something/else"), "format"),
    "no format": (lambda t: _edited(t, format=_DROP), "format"),
    "no coefficients": (lambda t: _edited(t, coefficients=_DROP), "missing the field 'coefficients'"),
    "no waypoints": (lambda t: _edited(t, waypoints=_DROP), "missing the field 'waypoints'"),
    "no times": (lambda t: _edited(t, segment_times_s=_DROP), "missing the field 'segment_times_s'"),
    "one time short": (lambda t: _edited(t, segment_times_s=t.segment_times_s[:-1].tolist()), "shapes disagree"),
    "three axes": (lambda t: _edited(t, coefficients=t.coefficients[:, :3].tolist()), "shapes disagree"),
    "one waypoint short": (lambda t: _edited(t, waypoints=t.waypoints[:-1].tolist()), "shapes disagree"),
    "ragged coefficients": (lambda t: _edited(t, coefficients=[[1.0, 2.0], [3.0]]), "rectangular arrays"),
    "text times": (lambda t: _edited(t, segment_times_s=["a"] * t.num_segments), "rectangular arrays"),
    "scalar times": (lambda t: _edited(t, segment_times_s=1.0), "segment_times_s must be a list"),
    "negative time": (lambda t: _edited(t, segment_times_s=_times_with_first(t, -1.0)), "finite and > 0"),
    "zero time": (lambda t: _edited(t, segment_times_s=_times_with_first(t, 0.0)), "finite and > 0"),
    "NaN time": (lambda t: _edited(t, segment_times_s=_times_with_first(t, float("nan"))), "finite and > 0"),
    "infinite coefficient": (lambda t: _edited(t, coefficients=_coefficients_with_first(t, np.inf)), "finite"),
}


@pytest.mark.parametrize(("make_text", "message"), MALFORMED_JSON.values(), ids=MALFORMED_JSON.keys())
def test_from_json_rejects_malformed_input(trajectory: Trajectory, make_text: Any, message: str) -> None:
    """Malformed trajectory text raises `TrajectoryInputError` naming the problem, never a bare KeyError/IndexError."""
    with pytest.raises(TrajectoryInputError, match=message):
        Trajectory.from_json(make_text(trajectory))


def test_time_scaled_from_rest_is_the_solve_of_the_scaled_times() -> None:
    rng = np.random.default_rng(5)
    waypoints = np.hstack([np.cumsum(rng.normal(size=(6, 3)), axis=0), rng.uniform(-3, 3, (6, 1))])
    times = rng.uniform(0.5, 2.0, 5)
    base = solve_min_snap(waypoints, times)
    for factor in (0.5, 0.93, 1.0, 1.7, 4.0):
        scaled = base.time_scaled(factor)
        solved = solve_min_snap(waypoints, times * factor)
        np.testing.assert_allclose(scaled.segment_times_s, solved.segment_times_s, rtol=1e-15)
        probe = np.linspace(0.0, solved.duration_s, 301)
        for order in range(5):
            expected = solved.derivatives(probe, max_order=4)[order]
            got = scaled.derivatives(probe, max_order=4)[order]
            np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())
        # The same path: velocity divided by the factor at the matching time.
        np.testing.assert_allclose(
            scaled.derivatives(probe, 1)[1], base.derivatives(probe / factor, 1)[1] / factor, atol=1e-9
        )


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan"), float("inf")])
def test_time_scaled_rejects_a_factor_that_is_not_positive_and_finite(trajectory: Trajectory, factor: float) -> None:
    with pytest.raises(ValueError, match="factor"):
        trajectory.time_scaled(factor)

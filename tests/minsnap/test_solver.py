"""Properties of `solve_min_snap` and `snap_cost_and_gradient` a user relies on.

The reference for optimality is a dense KKT solve written here from scratch (monomial coefficients
in local segment time, continuity imposed only up to jerk); the banded solver must reproduce it and
must be C^6 at interior waypoints, which the reference gets from optimality alone.
"""

from __future__ import annotations

from math import factorial

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from minsnap import EndpointState, Trajectory, snap_cost_and_gradient, solve_min_snap

NUM_COEFFS = 8
MAX_CONTINUOUS_ORDER = 6


def _falling(n: int, k: int) -> float:
    return float(factorial(n) // factorial(n - k)) if k <= n else 0.0


def _derivative_row(t: float, order: int) -> NDArray[np.float64]:
    """Row r with ``r @ c`` = the `order`-th derivative at local time t of ``sum_j c_j t^j``."""
    return np.array([_falling(j, order) * t ** (j - order) if j >= order else 0.0 for j in range(NUM_COEFFS)])


def _knot_limits(traj: Trajectory) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Derivatives 0..6 at each segment's end (left limits) and start (right limits), `7 x M x 4` each.

    Evaluated straight from the coefficients, so the check does not depend on `Trajectory.derivatives`.
    """
    orders = range(MAX_CONTINUOUS_ORDER + 1)
    at_end = np.stack([_derivative_row(t, k) for k in orders for t in traj.segment_times_s])
    at_end = at_end.reshape(len(orders), traj.num_segments, NUM_COEFFS)
    left = np.einsum("kmc,mac->kma", at_end, traj.coefficients)
    at_start = np.array([_derivative_row(0.0, k) for k in orders])
    right = np.einsum("kc,mac->kma", at_start, traj.coefficients)
    return left, right


def _natural_scale(traj: Trajectory, left: NDArray[np.float64], right: NDArray[np.float64]) -> NDArray[np.float64]:
    """`7 x M x 4`: size of the terms whose sum gives the k-th derivative on each segment.

    A segment's polynomial is fixed by position, velocity, acceleration and jerk at its ends; its
    k-th derivative is a sum of those values times ``T^(r-k)``, so rounding errors in it are
    relative to ``max_r |d_r| T^(r-k)``, not to the (possibly much smaller) derivative itself.
    """
    end_size = np.maximum(np.abs(left[:4]), np.abs(right[:4]))  # r x M x 4
    powers = np.arange(4)[None, :, None] - np.arange(MAX_CONTINUOUS_ORDER + 1)[:, None, None]  # k x r x 1
    terms = end_size[None] * traj.segment_times_s[None, None, :, None] ** powers[..., None]
    return terms.max(axis=1)


def _assert_continuous(traj: Trajectory, rtol: float, natural: bool) -> None:
    """Assert derivatives 0..6 agree from both sides of every interior waypoint.

    `natural=False`: relative to the largest |k-th derivative| at any knot (per axis);
    `natural=True`: relative to `_natural_scale` of the two adjacent segments.
    """
    if traj.num_segments < 2:
        return
    left, right = _knot_limits(traj)
    jump = np.abs(left[:, :-1] - right[:, 1:])
    if natural:
        scale = _natural_scale(traj, left, right)
        scale = np.maximum(scale[:, :-1], scale[:, 1:])
    else:
        scale = np.maximum(np.abs(left).max(axis=1), np.abs(right).max(axis=1))[:, None, :]
    tolerance = rtol * scale + 1e-300
    worst = np.unravel_index(np.argmax(jump / tolerance), jump.shape)
    assert np.all(jump <= tolerance), (
        f"derivative {worst[0]} jumps by {jump[worst]:.3g} at waypoint {worst[1] + 1} axis {worst[2]} "
        f"(tolerance {tolerance[worst]:.3g})"
    )


def _assert_waypoints_met(traj: Trajectory, waypoints: NDArray[np.float64], atol_m: float) -> None:
    """Positions from both sides of every knot equal the waypoints to `atol_m` (yaw: in rad, modulo 2 pi)."""
    left, right = _knot_limits(traj)
    reached = np.concatenate([right[0, :1], left[0]])  # arrival at each waypoint
    departed = np.concatenate([right[0], left[0, -1:]])
    for values in (reached, departed):
        np.testing.assert_allclose(values[:, :3], waypoints[:, :3], rtol=0, atol=atol_m)
        if waypoints.shape[1] == 4:
            yaw_error = np.angle(np.exp(1j * (values[:, 3] - waypoints[:, 3])))
            np.testing.assert_allclose(yaw_error, 0.0, rtol=0, atol=atol_m)


def _random_problem(
    rng: np.random.Generator, num_waypoints: int, with_yaw: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A random walk from a random start (steps of about 0.5..3 m), yaw anywhere, times 0.5..3 s."""
    steps = rng.normal(size=(num_waypoints - 1, 3)) * rng.uniform(0.5, 3.0)
    positions = rng.uniform(-5, 5, size=3) + np.vstack([np.zeros(3), np.cumsum(steps, axis=0)])
    if with_yaw:
        positions = np.hstack([positions, rng.uniform(-np.pi, np.pi, size=(num_waypoints, 1))])
    return positions, rng.uniform(0.5, 3.0, size=num_waypoints - 1)


def _random_state(rng: np.random.Generator) -> EndpointState:
    """A moving vehicle: random velocity, acceleration, jerk and yaw rates."""
    yaw_rate, yaw_acceleration, yaw_jerk = rng.normal(size=3)
    return EndpointState(
        velocity=rng.normal(size=3) * 2,
        acceleration=rng.normal(size=3) * 3,
        jerk=rng.normal(size=3) * 5,
        yaw_rate=float(yaw_rate),
        yaw_acceleration=float(yaw_acceleration),
        yaw_jerk=float(yaw_jerk),
    )


# ---------------------------------------------------------------------------------------------
# Independent reference: dense KKT system in monomial coefficients.


def _dense_kkt_coefficients(
    waypoints: NDArray[np.float64],
    segment_times_s: NDArray[np.float64],
    start: NDArray[np.float64],
    end: NDArray[np.float64],
) -> tuple[NDArray[np.float64], float]:
    """Minimum-snap coefficients `M x D x 8` and snap cost from one dense KKT solve.

    Args:
        waypoints: `N x D` positions (and unwrapped yaw) to pass through.
        segment_times_s: `N-1` durations.
        start, end: `3 x D` velocity, acceleration, jerk at the first and last waypoint.
    """
    num_segments = segment_times_s.shape[0]
    num_vars = NUM_COEFFS * num_segments
    hessian = np.zeros((num_vars, num_vars))
    for i, duration in enumerate(segment_times_s):
        for a in range(4, NUM_COEFFS):
            for b in range(4, NUM_COEFFS):
                power = a + b - 7
                hessian[8 * i + a, 8 * i + b] = _falling(a, 4) * _falling(b, 4) * duration**power / power
    rows: list[NDArray[np.float64]] = []
    values: list[NDArray[np.float64]] = []

    def constrain(entries: dict[int, NDArray[np.float64]], value: NDArray[np.float64]) -> None:
        row = np.zeros(num_vars)
        for segment, coefficients_row in entries.items():
            row[8 * segment : 8 * segment + 8] += coefficients_row
        rows.append(row)
        values.append(value)

    zero = np.zeros(waypoints.shape[1])
    for i, duration in enumerate(segment_times_s):
        constrain({i: _derivative_row(0.0, 0)}, waypoints[i])
        constrain({i: _derivative_row(duration, 0)}, waypoints[i + 1])
    for i in range(num_segments - 1):
        for order in (1, 2, 3):
            constrain({i: _derivative_row(segment_times_s[i], order), i + 1: -_derivative_row(0.0, order)}, zero)
    for order in (1, 2, 3):
        constrain({0: _derivative_row(0.0, order)}, start[order - 1])
        last = num_segments - 1
        constrain({last: _derivative_row(segment_times_s[-1], order)}, end[order - 1])
    a_eq = np.array(rows)
    b_eq = np.array(values)
    kkt = np.block([[2.0 * hessian, a_eq.T], [a_eq, np.zeros((a_eq.shape[0], a_eq.shape[0]))]])
    rhs = np.vstack([np.zeros((num_vars, waypoints.shape[1])), b_eq])
    solution = np.linalg.solve(kkt, rhs)[:num_vars]
    cost = float(np.einsum("id,ij,jd->", solution[:, :3], hessian, solution[:, :3]))
    return solution.reshape(num_segments, NUM_COEFFS, -1).transpose(0, 2, 1), cost


@pytest.mark.parametrize("seed", range(8))
def test_solution_equals_dense_kkt_solve(seed: int) -> None:
    """Coefficients, sampled positions and snap cost equal an independent dense KKT solve."""
    rng = np.random.default_rng(seed)
    num_waypoints = int(rng.integers(2, 13))
    waypoints, times = _random_problem(rng, num_waypoints)
    start, end = _random_state(rng), _random_state(rng)

    traj = solve_min_snap(waypoints, times, start, end)

    unwrapped = waypoints.copy()
    unwrapped[:, 3] = np.unwrap(unwrapped[:, 3])
    reference, reference_cost = _dense_kkt_coefficients(unwrapped, times, start.as_array(), end.as_array())
    coefficient_scale = np.abs(reference).max(axis=(0, 1), keepdims=True)  # per power of t
    relative_error = np.abs(traj.coefficients - reference) / coefficient_scale
    assert relative_error.max() < 1e-6, f"coefficients differ by {relative_error.max():.2g} of their scale"

    sample_times = np.linspace(0.0, traj.duration_s, 400)
    sampled = traj.derivatives(sample_times, max_order=0)[0]
    knots = np.concatenate([[0.0], np.cumsum(times)])
    segment = np.clip(np.searchsorted(knots, sample_times, side="right") - 1, 0, len(times) - 1)
    local = sample_times - knots[segment]
    expected = np.einsum("kac,kc->ka", reference[segment], local[:, None] ** np.arange(NUM_COEFFS))
    np.testing.assert_allclose(sampled, expected, rtol=0, atol=1e-6 * max(1.0, np.abs(expected).max()))
    assert traj.snap_cost() == pytest.approx(reference_cost, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Waypoints, yaw, continuity, boundary states.


@pytest.mark.parametrize("seed", range(4))
def test_waypoints_are_met_in_position_and_yaw(seed: int) -> None:
    """Both polynomials meeting at a waypoint pass through it; yaw equals the waypoint yaw modulo 2 pi."""
    rng = np.random.default_rng(100 + seed)
    waypoints, times = _random_problem(rng, int(rng.integers(2, 20)))
    traj = solve_min_snap(waypoints, times)
    _assert_waypoints_met(traj, waypoints, atol_m=1e-9)
    at_knots = traj.derivatives(traj.knot_times_s, max_order=0)[0]
    np.testing.assert_allclose(at_knots[:, :3], waypoints[:, :3], rtol=0, atol=1e-9)


def test_three_column_waypoints_give_zero_yaw() -> None:
    """An `N x 3` waypoint array yields a trajectory with yaw identically zero."""
    traj = solve_min_snap([[0, 0, 0], [1, 0, 0], [1, 1, 1]], [1.0, 2.0])
    yaw = traj.derivatives(np.linspace(0, traj.duration_s, 50), max_order=3)[:, :, 3]
    np.testing.assert_array_equal(yaw, 0.0)


def test_yaw_across_pi_takes_the_short_way() -> None:
    """Yaw 3.1 rad then -3.1 rad turns 2 pi - 6.2 = 0.083 rad through pi, not 6.2 rad back through 0."""
    short_turn = 2 * np.pi - 6.2
    traj = solve_min_snap([[0, 0, 0, 3.1], [1, 0, 0, -3.1]], [1.0])
    yaw = traj.derivatives(np.linspace(0.0, 1.0, 201), max_order=0)[0, :, 3]
    assert yaw[0] == pytest.approx(3.1)
    assert yaw[-1] == pytest.approx(3.1 + short_turn)
    assert np.all(np.diff(yaw) >= -1e-12), "a rest-to-rest turn should be monotonic"
    assert np.ptp(yaw) == pytest.approx(short_turn)


def test_yaw_sequence_unwraps_every_step_to_at_most_pi() -> None:
    """Each consecutive yaw step of the trajectory is the shortest turn between the waypoint yaws."""
    yaw_waypoints = np.array([0.0, 3.0, -3.0, 2.9, -0.1, -3.1, 3.1])
    positions = np.column_stack([np.arange(7.0), np.zeros(7), np.zeros(7), yaw_waypoints])
    traj = solve_min_snap(positions, np.ones(6))
    yaw_at_knots = traj.derivatives(traj.knot_times_s, max_order=0)[0, :, 3]
    steps = np.diff(yaw_at_knots)
    wrapped_steps = np.angle(np.exp(1j * np.diff(yaw_waypoints)))
    np.testing.assert_allclose(steps, wrapped_steps, atol=1e-9)
    _assert_waypoints_met(traj, positions, atol_m=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_derivatives_zero_to_six_are_continuous_at_interior_waypoints(seed: int) -> None:
    """The optimum is C^6: derivatives 0..6 agree from both sides of each interior waypoint."""
    rng = np.random.default_rng(200 + seed)
    waypoints, times = _random_problem(rng, int(rng.integers(3, 25)))
    traj = solve_min_snap(waypoints, times, _random_state(rng), _random_state(rng))
    _assert_continuous(traj, rtol=1e-7, natural=False)
    _, right = _knot_limits(traj)
    assert np.abs(right[MAX_CONTINUOUS_ORDER, 1:]).max() > 1e-3, "the check is vacuous if the 6th derivative is 0"


@pytest.mark.parametrize("seed", range(4))
def test_boundary_derivatives_equal_the_endpoint_states(seed: int) -> None:
    """A replan from a moving state starts (and ends) with the given velocity, acceleration and jerk."""
    rng = np.random.default_rng(300 + seed)
    waypoints, times = _random_problem(rng, int(rng.integers(2, 10)))
    start, end = _random_state(rng), _random_state(rng)
    traj = solve_min_snap(waypoints, times, start=start, end=end)
    values = traj.derivatives([0.0, traj.duration_s], max_order=3)
    np.testing.assert_allclose(values[1:, 0, :], start.as_array(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(values[1:, 1, :], end.as_array(), rtol=1e-9, atol=1e-9)


def test_default_endpoint_states_are_at_rest() -> None:
    """Without boundary states the trajectory starts and ends with zero velocity, acceleration and jerk."""
    rng = np.random.default_rng(7)
    waypoints, times = _random_problem(rng, 6)
    traj = solve_min_snap(waypoints, times)
    values = traj.derivatives([0.0, traj.duration_s], max_order=3)
    np.testing.assert_allclose(values[1:], 0.0, atol=1e-9)


def test_two_waypoints_solve_the_fully_constrained_segment() -> None:
    """With one segment the polynomial is the unique 7th-order Hermite interpolant of the end states."""
    start = EndpointState(velocity=np.array([1.0, 0.0, -1.0]), acceleration=np.array([0.0, 2.0, 0.0]))
    traj = solve_min_snap([[0, 0, 0], [2, 1, 0]], [1.5], start=start)
    values = traj.derivatives([0.0, 1.5], max_order=3)
    np.testing.assert_allclose(values[0, :, :3], [[0, 0, 0], [2, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(values[1:, 0, :], start.as_array(), atol=1e-12)
    np.testing.assert_allclose(values[1:, 1, :], 0.0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Time scaling, cost and gradient.


@pytest.mark.parametrize("alpha", [0.25, 0.7, 3.0])
def test_scaling_all_times_scales_derivatives_and_cost(alpha: float) -> None:
    """Times x alpha: the k-th derivative at alpha*t is alpha^-k times the original; snap cost x alpha^-7."""
    rng = np.random.default_rng(400)
    waypoints, times = _random_problem(rng, 8)
    start, end = _random_state(rng), _random_state(rng)

    def scaled(state: EndpointState) -> EndpointState:
        return EndpointState(
            velocity=state.velocity / alpha,
            acceleration=state.acceleration / alpha**2,
            jerk=state.jerk / alpha**3,
            yaw_rate=state.yaw_rate / alpha,
            yaw_acceleration=state.yaw_acceleration / alpha**2,
            yaw_jerk=state.yaw_jerk / alpha**3,
        )

    base = solve_min_snap(waypoints, times, start, end)
    stretched = solve_min_snap(waypoints, alpha * times, scaled(start), scaled(end))
    sample_times = np.linspace(0.0, base.duration_s, 157)
    original = base.derivatives(sample_times, max_order=6)
    rescaled = stretched.derivatives(alpha * sample_times, max_order=6)
    for order in range(7):
        expected = alpha ** (-order) * original[order]
        np.testing.assert_allclose(rescaled[order], expected, rtol=0, atol=1e-7 * np.abs(expected).max())
    assert stretched.snap_cost(include_yaw=True) == pytest.approx(alpha**-7 * base.snap_cost(include_yaw=True))


@pytest.mark.parametrize("include_yaw", [False, True])
def test_cost_from_gradient_function_equals_trajectory_snap_cost(include_yaw: bool) -> None:
    """`snap_cost_and_gradient` reports the snap cost of the trajectory `solve_min_snap` returns."""
    rng = np.random.default_rng(500)
    waypoints, times = _random_problem(rng, 9)
    start, end = _random_state(rng), _random_state(rng)
    cost, _ = snap_cost_and_gradient(waypoints, times, start, end, include_yaw=include_yaw)
    traj = solve_min_snap(waypoints, times, start, end)
    assert cost == pytest.approx(traj.snap_cost(include_yaw=include_yaw), rel=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_gradient_matches_central_finite_differences(seed: int) -> None:
    """The envelope-theorem gradient equals central differences of the optimal cost."""
    rng = np.random.default_rng(600 + seed)
    waypoints, times = _random_problem(rng, int(rng.integers(2, 12)))
    start, end = _random_state(rng), _random_state(rng)
    _, gradient = snap_cost_and_gradient(waypoints, times, start, end, include_yaw=True)
    numeric = np.empty_like(times)
    for i in range(times.shape[0]):
        step = 1e-5 * times[i]
        plus, minus = times.copy(), times.copy()
        plus[i] += step
        minus[i] -= step
        cost_plus, _ = snap_cost_and_gradient(waypoints, plus, start, end, include_yaw=True)
        cost_minus, _ = snap_cost_and_gradient(waypoints, minus, start, end, include_yaw=True)
        numeric[i] = (cost_plus - cost_minus) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-6 * np.abs(numeric).max())


def test_gradient_satisfies_euler_homogeneity_for_rest_to_rest() -> None:
    """Rest to rest, J(alpha T) = alpha^-7 J(T), so sum_i T_i dJ/dT_i = -7 J; the gradient is negative overall."""
    rng = np.random.default_rng(700)
    waypoints, times = _random_problem(rng, 12, with_yaw=False)
    cost, gradient = snap_cost_and_gradient(waypoints, times)
    assert float(gradient @ times) == pytest.approx(-7.0 * cost, rel=1e-8)


@pytest.mark.parametrize("offset_m", [1e3, 1e5])
def test_cost_and_gradient_do_not_depend_on_where_the_origin_is(offset_m: float) -> None:
    """Moving every waypoint by the same offset (a far-away local frame) leaves cost and gradient unchanged."""
    rng = np.random.default_rng(710)
    waypoints, times = _random_problem(rng, 10, with_yaw=False)
    cost, gradient = snap_cost_and_gradient(waypoints, times)
    cost_far, gradient_far = snap_cost_and_gradient(waypoints + offset_m, times)
    assert cost_far == pytest.approx(cost, rel=1e-9)
    np.testing.assert_allclose(gradient_far, gradient, rtol=1e-7, atol=1e-7 * np.abs(gradient).max())


# ---------------------------------------------------------------------------------------------
# Random and near-degenerate problems.

CONTINUITY_RTOL = 1e-7  # relative to the natural scale of each derivative (see `_natural_scale`)
PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_solution(waypoints: NDArray[np.float64], times: NDArray[np.float64], waypoint_atol_m: float) -> None:
    traj = solve_min_snap(waypoints, times)
    assert np.all(np.isfinite(traj.coefficients))
    _assert_waypoints_met(traj, waypoints, atol_m=waypoint_atol_m)
    _assert_continuous(traj, rtol=CONTINUITY_RTOL, natural=True)
    cost, gradient = snap_cost_and_gradient(waypoints, times)
    assert np.isfinite(cost)
    assert cost >= 0.0
    assert np.all(np.isfinite(gradient))


@st.composite
def _general_problems(draw: st.DrawFn) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """2..30 waypoints anywhere in a 100 m box with yaw, times 0.1..10 s."""
    seed = draw(st.integers(0, 2**32 - 1))
    num_waypoints = draw(st.integers(2, 30))
    rng = np.random.default_rng(seed)
    points = np.hstack([rng.uniform(-50, 50, (num_waypoints, 3)), rng.uniform(-4, 4, (num_waypoints, 1))])
    return points, rng.uniform(0.1, 10.0, num_waypoints - 1)


@st.composite
def _nearly_collinear_problems(draw: st.DrawFn) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Points on a line, perturbed off it by at most a micrometre."""
    seed = draw(st.integers(0, 2**32 - 1))
    num_waypoints = draw(st.integers(3, 30))
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    distances = np.cumsum(rng.uniform(0.05, 5.0, num_waypoints))
    points = distances[:, None] * direction + rng.uniform(-1e-6, 1e-6, (num_waypoints, 3))
    return points, rng.uniform(0.2, 5.0, num_waypoints - 1)


@st.composite
def _short_and_long_segment_problems(draw: st.DrawFn) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Segments of 0.05..0.1 s and 10..20 s (up to 400x apart) mixed in one trajectory."""
    seed = draw(st.integers(0, 2**32 - 1))
    num_waypoints = draw(st.integers(3, 30))
    rng = np.random.default_rng(seed)
    points = np.cumsum(rng.normal(size=(num_waypoints, 3)), axis=0)
    is_short = rng.random(num_waypoints - 1) < 0.5
    one_short, one_long = rng.permutation(num_waypoints - 1)[:2]
    is_short[one_short], is_short[one_long] = True, False
    times = np.where(is_short, rng.uniform(0.05, 0.1, num_waypoints - 1), rng.uniform(10.0, 20.0, num_waypoints - 1))
    return points, times


@st.composite
def _tiny_spacing_problems(draw: st.DrawFn) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Some consecutive waypoints 1.01..10 micrometres apart (the minimum is 1 micrometre), far from the origin."""
    seed = draw(st.integers(0, 2**32 - 1))
    num_waypoints = draw(st.integers(2, 30))
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(num_waypoints - 1, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    tiny = rng.random(num_waypoints - 1) < 0.5
    lengths = np.where(tiny, rng.uniform(1.01e-6, 1e-5, num_waypoints - 1), rng.uniform(0.1, 3.0, num_waypoints - 1))
    offsets = np.vstack([np.zeros(3), np.cumsum(directions * lengths[:, None], axis=0)])
    return offsets + 100.0, rng.uniform(0.1, 3.0, num_waypoints - 1)


@PROPERTY_SETTINGS
@given(_general_problems())
def test_random_problems_meet_waypoints_and_are_continuous(problem: tuple[NDArray, NDArray]) -> None:
    """Any waypoint set and times: waypoints met, C^6 at interior waypoints, no NaN."""
    _check_solution(*problem, waypoint_atol_m=1e-6)


@PROPERTY_SETTINGS
@given(_nearly_collinear_problems())
def test_nearly_collinear_problems_meet_waypoints_and_are_continuous(problem: tuple[NDArray, NDArray]) -> None:
    """Nearly collinear waypoints: waypoints met to far below the micrometre off-line perturbation."""
    _check_solution(*problem, waypoint_atol_m=1e-9)


@PROPERTY_SETTINGS
@given(_short_and_long_segment_problems())
def test_mixed_short_and_long_segments_meet_waypoints_and_are_continuous(problem: tuple[NDArray, NDArray]) -> None:
    """0.05 s and 20 s segments in one trajectory: a micrometre at the waypoints, or the rounding of the
    polynomial's own terms there if that is larger, and C^6."""
    waypoints, times = problem
    _check_solution(waypoints, times, waypoint_atol_m=max(1e-6, _rounding_bound_m(solve_min_snap(waypoints, times))))


ROUNDING_ULPS = 64
"""Rounding allowed at a knot, in units of the float64 epsilon times the sum of the polynomial's terms there.
Measured over 1500 problems drawn like these: the terms of a 10-20 s segment sum to up to 4.4e9 m (one epsilon
of them ~1e-6 m), and the waypoint errors were at most 12 of these units (up to 5e-7 m)."""


def _rounding_bound_m(traj: Trajectory) -> float:
    """Float64 rounding of a position at the end of each segment: ROUNDING_ULPS * eps * sum_k |c_k| T^k."""
    powers = traj.segment_times_s[:, None, None] ** np.arange(traj.coefficients.shape[2])
    terms = np.abs(traj.coefficients[:, :3, :]) * powers
    return float(ROUNDING_ULPS * np.finfo(np.float64).eps * terms.sum(axis=2).max())


@PROPERTY_SETTINGS
@given(_tiny_spacing_problems())
def test_tiny_spacing_problems_meet_waypoints_and_are_continuous(problem: tuple[NDArray, NDArray]) -> None:
    """Waypoints a few micrometres apart 100 m from the origin: met to far below their spacing."""
    _check_solution(*problem, waypoint_atol_m=1e-9)


def test_thousands_of_waypoints_solve_and_meet_waypoints() -> None:
    """1500 waypoints (a long survey path) solve, pass every waypoint and stay continuous."""
    rng = np.random.default_rng(800)
    waypoints, times = _random_problem(rng, 1500)
    traj = solve_min_snap(waypoints, times)
    assert traj.num_segments == 1499
    assert np.all(np.isfinite(traj.coefficients))
    _assert_waypoints_met(traj, waypoints, atol_m=1e-8)
    _assert_continuous(traj, rtol=CONTINUITY_RTOL, natural=True)

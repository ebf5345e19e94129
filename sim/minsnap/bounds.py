"""Sound bounds of a piecewise polynomial over whole segments, from its Bernstein form.

On a sub-interval ``[u, u + w]`` of a segment (``u, w`` as fractions of the segment's duration), the
`r`-th time derivative of each axis is a polynomial of degree ``7 - r`` in ``s in [0, 1]``; written in
the Bernstein basis its values lie in the convex hull of its control points, and the first and last
control points are its values at the two ends. So, for any convex function `phi` of the axis values
(a norm, one axis, the distance outside a box, the signed excess over a geofence), the largest `phi`
over the control points bounds `phi` over the whole sub-interval from above, and the largest over the
end points bounds it from below. Splitting an interval in two shrinks the gap quadratically; the
functions here split adaptively (branch and bound) until the bound is within a relative tolerance of
an attained value, or below a given limit, or a sampled value is already above it (a definite
violation), or the depth runs out (the bound is then reported as it is: conservative).

Floating-point rounding in the conversion is covered by adding ``32 eps`` times the same sums taken
over absolute values, so the bounds hold for the exact polynomials the coefficients define.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import comb

import numpy as np
from numpy.typing import ArrayLike, NDArray

from minsnap.basis import NUM_COEFFS, falling_factorial
from minsnap.trajectory import Trajectory

ConvexFunction = Callable[[NDArray[np.float64]], NDArray[np.float64]]
"""Maps axis values `... x 4` (x, y, z, yaw) to `...`; must be convex and 1-Lipschitz in the Euclidean norm."""

_ROUNDING = 32.0 * np.finfo(np.float64).eps


def _bernstein_matrix(degree: int) -> NDArray[np.float64]:
    """`(n+1) x (n+1)` map from monomial coefficients on [0, 1] to Bernstein control points."""
    n = degree
    return np.array([[comb(i, k) / comb(n, k) if k <= i else 0.0 for k in range(n + 1)] for i in range(n + 1)])


_BERNSTEIN = {n: _bernstein_matrix(n) for n in range(NUM_COEFFS)}
_BINOMIAL = np.array([[comb(j, k) for j in range(NUM_COEFFS)] for k in range(NUM_COEFFS)], dtype=np.float64)


def normalised_coefficients(trajectory: Trajectory, order: int = 0) -> NDArray[np.float64]:
    """`M x 4 x (8 - order)` coefficients of the `order`-th time derivative in normalised time ``tau = t / T``."""
    if not 0 <= order < NUM_COEFFS:
        raise ValueError(f"order must be in 0..{NUM_COEFFS - 1}, got {order}")
    durations = trajectory.segment_times_s
    powers = np.arange(order, NUM_COEFFS)
    factors = np.array([falling_factorial(j, order) for j in range(order, NUM_COEFFS)], dtype=np.float64)
    # d^r/dt^r of c_j t^j = f(j, r) c_j t^(j-r) = f(j, r) c_j T^(j-r) tau^(j-r).
    scale = durations[:, None] ** (powers - order)[None, :] * factors[None, :]
    return np.asarray(trajectory.coefficients[:, :, order:] * scale[:, None, :], dtype=np.float64)


def _hull_matrices(starts: NDArray[np.float64], widths: NDArray[np.float64], degree: int) -> NDArray[np.float64]:
    """`K x (n+1) x (n+1)` maps from normalised monomial coefficients to Bernstein control points on
    ``[u, u + w]`` (all entries >= 0 as u, w >= 0)."""
    n1 = degree + 1
    j = np.arange(n1)
    exponent = j[None, :] - j[:, None]  # [k, j] = j - k
    valid = exponent >= 0
    u_pow = np.where(valid[None], starts[:, None, None] ** np.maximum(exponent, 0)[None], 0.0)
    w_pow = widths[:, None] ** j[None, :]  # K x (k)
    shift = _BINOMIAL[:n1, :n1][None] * u_pow * w_pow[:, :, None]  # K x k x j: coefficient of s^k from tau^j
    return np.asarray(_BERNSTEIN[degree][None] @ shift, dtype=np.float64)


def bernstein_control_points(
    trajectory: Trajectory,
    order: int = 0,
    segments: ArrayLike | None = None,
    starts: ArrayLike | None = None,
    widths: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bernstein control points of the `order`-th derivative on sub-intervals of segments.

    Args:
        trajectory: the piecewise polynomial.
        order: derivative order (0 = position).
        segments: `K` segment indices (default: every segment once).
        starts, widths: `K` start and width of each sub-interval as fractions of its segment (default 0, 1).

    Returns:
        (control points `K x 4 x (8 - order)`, rounding slack of each of them, same shape, >= 0).
    """
    coeffs = normalised_coefficients(trajectory, order)
    seg = np.arange(trajectory.num_segments) if segments is None else np.asarray(segments, dtype=np.intp)
    u = np.zeros(seg.shape) if starts is None else np.asarray(starts, dtype=np.float64)
    w = np.ones(seg.shape) if widths is None else np.asarray(widths, dtype=np.float64)
    matrices = _hull_matrices(u, w, NUM_COEFFS - 1 - order)
    local = coeffs[seg]
    points = np.einsum("kij,kaj->kai", matrices, local)
    slack = _ROUNDING * (np.einsum("kij,kaj->kai", matrices, np.abs(local)) + np.abs(points))
    return points, slack


def axis_ranges(
    trajectory: Trajectory, order: int = 0, pieces: int = 1
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sound lower and upper bounds (`M x 4` each) of the `order`-th derivative of every axis on every segment.

    Each segment is cut into `pieces` equal parts, each bounded by its Bernstein hull (more pieces: tighter).
    """
    if pieces < 1:
        raise ValueError(f"pieces must be >= 1, got {pieces}")
    m = trajectory.num_segments
    seg = np.repeat(np.arange(m), pieces)
    starts = np.tile(np.arange(pieces) / pieces, m)
    points, slack = bernstein_control_points(trajectory, order, seg, starts, np.full(seg.shape, 1.0 / pieces))
    lower = (points - slack).min(axis=2).reshape(m, pieces, 4).min(axis=1)
    upper = (points + slack).max(axis=2).reshape(m, pieces, 4).max(axis=1)
    return lower, upper


def _segment_max(values: NDArray[np.float64], seg: NDArray[np.intp], m: int) -> NDArray[np.float64]:
    """Largest value of each segment (-inf where none); `seg` must be sorted (as the halvings keep it)."""
    out = np.full(m, -np.inf)
    firsts = np.flatnonzero(np.concatenate([[True], seg[1:] != seg[:-1]]))
    out[seg[firsts]] = np.maximum.reduceat(values, firsts)
    return out


def max_convex_bound(
    trajectory: Trajectory,
    order: int,
    function: ConvexFunction,
    limit: float | None = None,
    rtol: float = 0.01,
    atol: float = 1e-6,
    max_depth: int = 12,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sound upper bound, per segment, of a convex function of the `order`-th derivative.

    Branch and bound over halvings of each segment: an interval is split while its hull bound exceeds the
    best value attained so far on its segment by more than ``rtol |best| + atol`` and, when a `limit` is
    given, while the bound is above the limit and no attained value on the segment is (a definite
    violation needs no sharper bound). After `max_depth` halvings the bound is reported as it stands.

    Args:
        trajectory: the piecewise polynomial.
        order: derivative order of the argument of `function`.
        function: convex, 1-Lipschitz map of axis values `... x 4` to `...` (see `ConvexFunction`).
        limit: stop refining a segment once its bound is <= limit, or an attained value is > limit.
        rtol, atol: tightness sought when refining (relative to the best attained value, and absolute).
        max_depth: most halvings of a segment.

    Returns:
        (bound `M`: >= `function` everywhere on the segment; time `M` (s, trajectory time) of the largest
        attained value found on the segment, where a violation shows).
    """
    m = trajectory.num_segments
    coeffs = normalised_coefficients(trajectory, order)
    nonfinite = ~np.isfinite(coeffs).all(axis=(1, 2))
    coeffs[nonfinite] = 0.0  # bounded as zero, reported as NaN
    degree = NUM_COEFFS - 1 - order
    seg = np.arange(m)
    starts, widths = np.zeros(m), np.ones(m)
    best = np.full(m, -np.inf)
    best_time = np.zeros(m)
    bound = np.full(m, -np.inf)
    knots = trajectory.knot_times_s
    durations = trajectory.segment_times_s
    absolute = np.abs(coeffs)
    for depth in range(max_depth + 1):
        if depth == 0:  # whole segments: the plain Bernstein matrix
            whole = _BERNSTEIN[degree].T
            points = np.matmul(coeffs, whole).transpose(0, 2, 1)  # K x (n+1) x 4
            slack = _ROUNDING * (np.matmul(absolute, whole).transpose(0, 2, 1) + np.abs(points))
        else:
            matrices = _hull_matrices(starts, widths, degree)
            local = coeffs[seg]
            points = np.einsum("kij,kaj->kia", matrices, local)  # K x (n+1) x 4
            slack = _ROUNDING * (np.einsum("kij,kaj->kia", matrices, absolute[seg]) + np.abs(points))
        values = function(points)  # K x (n+1)
        hull = values.max(axis=1) + np.sqrt(np.square(slack).sum(axis=2)).max(axis=1)
        # The end control points are values of the polynomial: attained.
        ends = values[:, [0, -1]]
        end_times = knots[seg, None] + durations[seg, None] * (starts[:, None] + widths[:, None] * np.array([0.0, 1.0]))
        flat_seg = np.repeat(seg, 2)
        level_best = _segment_max(ends.ravel(), flat_seg, m)
        improved = level_best > best
        at_best = ends.ravel() == level_best[flat_seg]
        winners = flat_seg[at_best]
        best_time[winners[improved[winners]]] = end_times.ravel()[at_best][improved[winners]]
        best = np.maximum(best, level_best)
        refine = hull > best[seg] + rtol * np.abs(best[seg]) + atol
        if limit is not None:
            refine &= (hull > limit) & (best[seg] <= limit)
        if depth == max_depth:
            refine[:] = False
        if not refine.all():
            bound = np.maximum(bound, _segment_max(hull[~refine], seg[~refine], m))
        if not refine.any():
            break
        seg = np.repeat(seg[refine], 2)
        half = np.repeat(widths[refine] / 2.0, 2)
        starts = np.repeat(starts[refine], 2) + np.tile([0.0, 1.0], int(refine.sum())) * half
        widths = half
    bound = np.maximum(bound, best)
    bound[nonfinite] = np.nan
    return bound, best_time


def max_norm_bound(
    trajectory: Trajectory,
    order: int,
    axes: Sequence[int] = (0, 1, 2),
    limit: float | None = None,
    rtol: float = 0.01,
    max_depth: int = 12,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sound upper bound of the Euclidean norm of the `order`-th derivative over `axes` on each segment
    (order 1: speed, 2: acceleration), with the time of the largest value found; see `max_convex_bound`."""
    chosen = list(axes)

    def norm(values: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(np.sqrt(np.square(values[..., chosen]).sum(axis=-1)), dtype=np.float64)

    return max_convex_bound(trajectory, order, norm, limit, rtol, max_depth=max_depth)


def max_axis_bound(
    trajectory: Trajectory,
    axis: int,
    order: int = 0,
    limit: float | None = None,
    rtol: float = 0.01,
    max_depth: int = 12,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sound upper bound of one axis's `order`-th derivative on each segment, and where its maximum was found."""
    return max_convex_bound(trajectory, order, lambda v: v[..., axis], limit, rtol, max_depth=max_depth)


def min_axis_bound(
    trajectory: Trajectory,
    axis: int,
    order: int = 0,
    limit: float | None = None,
    rtol: float = 0.01,
    max_depth: int = 12,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sound lower bound of one axis's `order`-th derivative on each segment (e.g. axis 2: the lowest z), and
    where its minimum was found; `limit` is a lower limit here."""
    negated_limit = None if limit is None else -limit
    negated = max_convex_bound(trajectory, order, lambda v: -v[..., axis], negated_limit, rtol, max_depth=max_depth)
    bound, times = negated
    return -bound, times


def max_box_distance_bound(
    trajectory: Trajectory,
    low: ArrayLike,
    high: ArrayLike,
    limit: float | None = None,
    rtol: float = 0.01,
    max_depth: int = 12,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sound upper bound of the Euclidean distance from the position to the box [low, high] (0 inside) on
    each segment, and where the largest distance was found."""
    lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)

    def distance(values: NDArray[np.float64]) -> NDArray[np.float64]:
        outside = np.maximum(np.maximum(lo - values[..., :3], values[..., :3] - hi), 0.0)
        return np.asarray(np.sqrt(np.square(outside).sum(axis=-1)), dtype=np.float64)

    return max_convex_bound(trajectory, 0, distance, limit, rtol, max_depth=max_depth)


def max_horizontal_distance_bound(
    trajectory: Trajectory,
    centre: ArrayLike,
    limit: float | None = None,
    rtol: float = 0.01,
    max_depth: int = 12,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sound upper bound of the horizontal distance from `centre` (x, y) on each segment, and where the
    largest distance was found (a cylinder geofence's radius check)."""
    c = np.asarray(centre, dtype=np.float64)

    def distance(values: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(np.sqrt(np.square(values[..., :2] - c).sum(axis=-1)), dtype=np.float64)

    return max_convex_bound(trajectory, 0, distance, limit, rtol, max_depth=max_depth)

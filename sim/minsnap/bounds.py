"""Sound bounds of a piecewise polynomial over whole segments, from its Bernstein form.

On a sub-interval ``[u, u + w]`` of a segment (``u, w`` as fractions of the segment's duration), the
`r`-th time derivative of each axis is a polynomial of degree ``7 - r`` in ``s in [0, 1]``; written in
the Bernstein basis its values lie in the convex hull of its control points, and the first and last
control points are its values at the two ends. So, for any convex function `phi` of the axis values
(a norm, one axis, the distance outside a box, the signed excess over a geofence), the largest `phi`
over the control points bounds `phi` over the whole sub-interval from above, and the largest over the
end points bounds it from below. Splitting an interval shrinks the gap quadratically in its width; the
functions here split adaptively (branch and bound) until the bound is within a relative tolerance of
an attained value, or below a given limit, or a sampled value is already above it (a definite
violation), or the depth runs out (the bound is then reported as it is: conservative).

Floating-point rounding in the conversion is covered by adding ``32 eps`` times the same sums taken
over absolute values, and a subdivision (the parts' control points from the parent's, by a fixed
non-negative matrix) carries the parent's slack and adds its own rounding, so the bounds hold for the
exact polynomials the coefficients define.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
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
_DERIVATIVE_SCALING = {
    r: (
        np.arange(NUM_COEFFS - r, dtype=np.float64),
        np.array([falling_factorial(j, r) for j in range(r, NUM_COEFFS)], dtype=np.float64),
    )
    for r in range(NUM_COEFFS)
}
"""Per derivative order r: the exponents j - r of the segment duration and the factors j!/(j-r)!, j = r..7."""
_BINOMIAL = np.array([[comb(j, k) for j in range(NUM_COEFFS)] for k in range(NUM_COEFFS)], dtype=np.float64)


def normalised_coefficients(trajectory: Trajectory, order: int = 0) -> NDArray[np.float64]:
    """`M x 4 x (8 - order)` coefficients of the `order`-th time derivative in normalised time ``tau = t / T``."""
    if not 0 <= order < NUM_COEFFS:
        raise ValueError(f"order must be in 0..{NUM_COEFFS - 1}, got {order}")
    durations = trajectory.segment_times_s
    exponents, factors = _DERIVATIVE_SCALING[order]
    # d^r/dt^r of c_j t^j = f(j, r) c_j t^(j-r) = f(j, r) c_j T^(j-r) tau^(j-r).
    scale = durations[:, None] ** exponents[None, :] * factors[None, :]
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


def _subdivision_matrices(degree: int, branching: int) -> NDArray[np.float64]:
    """`(b (n+1)) x (n+1)` map from the Bernstein control points on an interval to those on its `b` equal parts
    (child i's rows at ``i (n+1) ... (i+1) (n+1)``; all entries >= 0, each row sums to 1), computed in exact
    rational arithmetic and rounded once (each entry within half an ulp)."""
    n = degree
    to_bernstein = [[Fraction(comb(i, k), comb(n, k)) if k <= i else Fraction(0) for k in range(n + 1)]
                    for i in range(n + 1)]  # fmt: skip
    to_monomial = [[Fraction((-1) ** (j - k) * comb(n, j) * comb(j, k)) if k <= j else Fraction(0)
                    for k in range(n + 1)] for j in range(n + 1)]  # fmt: skip
    rows = []
    for i in range(branching):
        u, w = Fraction(i, branching), Fraction(1, branching)
        # tau = u + w s: the coefficient of s^k from tau^j is C(j, k) u^(j-k) w^k.
        shift = [[comb(j, k) * u ** (j - k) * w**k if k <= j else Fraction(0) for j in range(n + 1)]
                 for k in range(n + 1)]  # fmt: skip
        for r in range(n + 1):
            monomial_row = [sum(to_bernstein[r][k] * shift[k][j] for k in range(n + 1)) for j in range(n + 1)]
            rows.append([float(sum(monomial_row[j] * to_monomial[j][c] for j in range(n + 1))) for c in range(n + 1)])
    return np.asarray(rows, dtype=np.float64)


_SUBDIVISION: dict[tuple[int, int], NDArray[np.float64]] = {}


def _subdivision(degree: int, branching: int) -> NDArray[np.float64]:
    """`_subdivision_matrices`, computed once per (degree, branching) and read-only."""
    key = (degree, branching)
    if key not in _SUBDIVISION:
        matrix = _subdivision_matrices(degree, branching)
        matrix.setflags(write=False)
        _SUBDIVISION[key] = matrix
    return _SUBDIVISION[key]


def _update_best(
    values: NDArray[np.float64],
    seg: NDArray[np.intp],
    starts: NDArray[np.float64],
    widths: NDArray[np.float64],
    knots: NDArray[np.float64],
    durations: NDArray[np.float64],
    best: NDArray[np.float64],
    best_time: NDArray[np.float64],
) -> None:
    """Raise `best` (and move `best_time`) of each segment, in place, to the largest end control point of its
    intervals (values of the polynomial at the intervals' ends: attained)."""
    ends = values[:, [0, -1]].ravel()
    flat_seg = np.repeat(seg, 2)
    level_best = _segment_max(ends, flat_seg, best.shape[0])
    improved = level_best > best
    if improved.any():
        winner = np.flatnonzero((ends == level_best[flat_seg]) & improved[flat_seg])
        piece, side = winner // 2, (winner % 2).astype(np.float64)
        best_time[flat_seg[winner]] = knots[seg[piece]] + durations[seg[piece]] * (starts[piece] + widths[piece] * side)
        np.maximum(best, level_best, out=best)


@dataclass(frozen=True)
class _WholeSegments:
    """The Bernstein form of one derivative on whole segments: what every bound of it starts from."""

    points: NDArray[np.float64]  # M x (n+1) x 4 control points
    slack: NDArray[np.float64]  # their rounding slack, same shape, >= 0
    slack_norm: NDArray[np.float64]  # M: the largest Euclidean norm of a control point's slack on the segment
    nonfinite: NDArray[np.bool_]  # M: segments with non-finite coefficients (bounded as zero, reported as NaN)
    knots: NDArray[np.float64]
    durations: NDArray[np.float64]


def _whole_segments(trajectory: Trajectory, order: int) -> _WholeSegments:
    """The control points of the `order`-th derivative on every whole segment, with their rounding slack."""
    coeffs = normalised_coefficients(trajectory, order)
    nonfinite = np.asarray(~np.isfinite(coeffs).all(axis=(1, 2)), dtype=bool)
    coeffs[nonfinite] = 0.0
    whole = _BERNSTEIN[NUM_COEFFS - 1 - order].T
    points = np.matmul(coeffs, whole).transpose(0, 2, 1)  # M x (n+1) x 4
    slack = _ROUNDING * (np.matmul(np.abs(coeffs), whole).transpose(0, 2, 1) + np.abs(points))
    slack_norm = np.sqrt(np.square(slack).sum(axis=2)).max(axis=1)
    return _WholeSegments(points, slack, slack_norm, nonfinite, trajectory.knot_times_s, trajectory.segment_times_s)


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

    Branch and bound over subdivisions of each segment: an interval is cut into 8 equal parts (three halvings
    at once: the hull's gap shrinks 64-fold, so few rounds of vectorised work reach a tight bound) while its
    hull bound exceeds the best value attained so far on its segment by more than ``rtol |best| + atol`` and,
    when a `limit` is given, while the bound is above the limit and no attained value on the segment is (a
    definite violation needs no sharper bound). After `max_depth` halvings the bound is reported as it stands.

    The parts' control points come from their parent's by a fixed non-negative subdivision matrix whose rows
    sum to one; the rounding slack is carried along (the parent's slack mapped by the same matrix, plus the
    rounding of the product), so the bounds stay sound at every depth.

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
    return _branch_and_bound(_whole_segments(trajectory, order), function, limit, rtol, atol, max_depth)


def max_convex_bounds(
    trajectory: Trajectory,
    order: int,
    functions: Sequence[tuple[ConvexFunction, float | None]],
    rtol: float = 0.01,
    atol: float = 1e-6,
    max_depth: int = 12,
) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """`max_convex_bound` of several (function, limit) pairs of the same derivative, in order; the Bernstein form
    of the whole segments is computed once for all of them."""
    whole = _whole_segments(trajectory, order)
    return [_branch_and_bound(whole, function, limit, rtol, atol, max_depth) for function, limit in functions]


def _branch_and_bound(
    whole: _WholeSegments,
    function: ConvexFunction,
    limit: float | None,
    rtol: float,
    atol: float,
    max_depth: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """`max_convex_bound` from the whole segments' Bernstein form."""
    points, slack, knots, durations = whole.points, whole.slack, whole.knots, whole.durations
    m, n1 = points.shape[0], points.shape[1]
    degree = n1 - 1
    seg = np.arange(m)
    starts, widths = np.zeros(m), np.ones(m)
    # Whole segments first (one interval each; the end control points are values of the polynomial: attained).
    values = function(points)  # M x (n+1)
    hull = values.max(axis=1) + whole.slack_norm
    side = np.argmax(values[:, [0, -1]], axis=1)
    best = np.where(side == 0, values[:, 0], values[:, -1])
    best_time = knots[:m] + durations * side
    depth = 0
    while True:
        refine = hull > best[seg] + rtol * np.abs(best[seg]) + atol
        if limit is not None:
            refine &= (hull > limit) & (best[seg] <= limit)
        if depth >= max_depth:
            refine[:] = False
        if depth == 0:
            bound = np.where(refine, -np.inf, hull)
        elif not refine.all():
            bound = np.maximum(bound, _segment_max(hull[~refine], seg[~refine], m))
        if not refine.any():
            break
        halvings = min(3, max_depth - depth)
        parts = 2**halvings
        split = _subdivision(degree, parts)
        parent, parent_slack = points[refine], slack[refine]
        count = parent.shape[0]
        rounding = _ROUNDING * np.matmul(split, np.abs(parent))
        points = np.matmul(split, parent).reshape(count * parts, n1, 4)
        slack = (np.matmul(split, parent_slack) * (1.0 + _ROUNDING) + rounding).reshape(count * parts, n1, 4)
        seg = np.repeat(seg[refine], parts)
        part_width = np.repeat(widths[refine] / parts, parts)
        starts = np.repeat(starts[refine], parts) + np.tile(np.arange(parts, dtype=np.float64), count) * part_width
        widths = part_width
        depth += halvings
        values = function(points)  # K x (n+1)
        hull = values.max(axis=1) + np.sqrt(np.square(slack).sum(axis=2)).max(axis=1)
        _update_best(values, seg, starts, widths, knots, durations, best, best_time)
    bound = np.maximum(bound, best)
    bound[whole.nonfinite] = np.nan
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

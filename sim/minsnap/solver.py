"""Closed-form minimum-snap solve with a banded linear system (cost linear in the number of segments).

Unconstrained formulation (Richter, Bry and Roy, 2013): each segment is fixed by the position,
velocity, acceleration and jerk at its two ends. Positions at every waypoint and the derivatives at
the first and last waypoint are given; velocity, acceleration and jerk at interior waypoints are
free. The snap cost is a sum of per-segment quadratic forms that couple only neighbouring
waypoints, so its Hessian in the free derivatives is block-tridiagonal (3 x 3 blocks, 5 bands
above the diagonal) and one banded Cholesky solve gives all axes at once. The optimum is C^6 at
interior waypoints.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg.lapack import dpbsv as _banded_cholesky_solve

from minsnap.basis import (
    HERMITE,
    NUM_COEFFS,
    NUM_END_DERIVATIVES,
    segment_snap_form_derivatives,
    segment_snap_forms,
)
from minsnap.errors import TrajectoryInputError
from minsnap.trajectory import Trajectory
from minsnap.validation import as_segment_times, as_vector, as_waypoints

NUM_AXES = 4  # x, y, z, yaw
FREE_PER_KNOT = NUM_END_DERIVATIVES - 1  # velocity, acceleration, jerk
BANDS_ABOVE_DIAGONAL = 2 * FREE_PER_KNOT - 1


def _zeros3() -> NDArray[np.float64]:
    return np.zeros(3)


@dataclass(frozen=True)
class EndpointState:
    """Velocity, acceleration and jerk (world frame, m/s^k) and yaw rates (rad/s^k) at an end of a trajectory.

    The default is at rest, which is what a trajectory from a hover to a stop uses; a replan from a
    moving vehicle passes the vehicle's current state as `start`.
    """

    velocity: NDArray[np.float64] = field(default_factory=_zeros3)
    acceleration: NDArray[np.float64] = field(default_factory=_zeros3)
    jerk: NDArray[np.float64] = field(default_factory=_zeros3)
    yaw_rate: float = 0.0
    yaw_acceleration: float = 0.0
    yaw_jerk: float = 0.0

    def as_array(self, name: str = "endpoint state") -> NDArray[np.float64]:
        """Return a `3 x 4` array: rows velocity, acceleration, jerk; columns x, y, z, yaw."""
        vectors = (self.velocity, self.acceleration, self.jerk)
        yaws = (self.yaw_rate, self.yaw_acceleration, self.yaw_jerk)
        out = np.empty((3, NUM_AXES))
        try:
            if all(np.shape(v) == (3,) for v in vectors) and all(np.ndim(y) == 0 for y in yaws):
                out[:, :3] = vectors
                out[:, 3] = yaws
                if np.isfinite(out).all():
                    return out
        except (TypeError, ValueError):
            pass
        return self._checked_array(name)

    def _checked_array(self, name: str) -> NDArray[np.float64]:
        """Slow path of `as_array`: check each part and raise with a message naming the bad one."""
        rows = []
        for label, vector, yaw in (
            ("velocity", self.velocity, self.yaw_rate),
            ("acceleration", self.acceleration, self.yaw_acceleration),
            ("jerk", self.jerk, self.yaw_jerk),
        ):
            rows.append(np.append(as_vector(vector, f"{name} {label}", 3), as_vector([yaw], f"{name} yaw {label}", 1)))
        return np.vstack(rows)


_AT_REST = np.zeros((NUM_END_DERIVATIVES - 1, NUM_AXES))
_AT_REST.setflags(write=False)


def unwrap_yaw(yaw_rad: NDArray[np.float64]) -> NDArray[np.float64]:
    """Unwrap waypoint yaw so that each step takes the short way round (|step| <= pi, as `np.unwrap`)."""
    steps = np.diff(yaw_rad)
    wrapped = (steps + np.pi) % (2.0 * np.pi) - np.pi
    wrapped[(wrapped == -np.pi) & (steps > 0)] = np.pi
    out = np.empty_like(yaw_rad)
    out[0] = yaw_rad[0]
    np.cumsum(wrapped, out=out[1:])
    out[1:] += yaw_rad[0]
    return out


@dataclass(frozen=True)
class _Structure:
    """Index bookkeeping of the free derivatives for one waypoint count (cached: it depends on nothing else)."""

    free_index: NDArray[np.intp]  # M x 8: index into the free vector, or -1 where the value is known
    num_free: int
    free_mask: NDArray[np.bool_]  # M x 8
    known_mask: NDArray[np.float64]  # M x 8 x 1: 1.0 where the value is known
    rhs_scatter: NDArray[np.intp]  # flat (free index, axis) target of each free entry of the M x 8 x D rhs
    rhs_gather: NDArray[np.intp]  # flat position of those entries in the M x 8 x D rhs
    band_scatter: NDArray[np.intp]  # flat target in the banded matrix of each upper-triangle pair
    band_gather: NDArray[np.intp]  # flat position of those pairs in the M x 8 x 8 forms


@functools.lru_cache(maxsize=64)
def _structure(num_waypoints: int) -> _Structure:
    num_segments = num_waypoints - 1
    num_free = max(0, (num_waypoints - 2) * FREE_PER_KNOT)
    seg = np.arange(num_segments)[:, None]
    local = np.arange(2 * NUM_END_DERIVATIVES)[None, :]
    knot = seg + local // NUM_END_DERIVATIVES
    order = local % NUM_END_DERIVATIVES
    free = (knot > 0) & (knot < num_waypoints - 1) & (order > 0)
    free_index = np.where(free, (knot - 1) * FREE_PER_KNOT + (order - 1), -1)

    axes = np.arange(NUM_AXES)
    flat_rhs = np.arange(num_segments * 2 * NUM_END_DERIVATIVES * NUM_AXES).reshape(num_segments, -1, NUM_AXES)
    rhs_gather = flat_rhs[free].reshape(-1)
    rhs_scatter = (free_index[free][:, None] * NUM_AXES + axes[None, :]).reshape(-1)

    rows = np.broadcast_to(free_index[:, :, None], (num_segments, 8, 8))
    cols = np.broadcast_to(free_index[:, None, :], (num_segments, 8, 8))
    pair = (rows >= 0) & (cols >= 0) & (rows <= cols)
    flat_forms = np.arange(num_segments * 64).reshape(num_segments, 8, 8)
    band_gather = flat_forms[pair]
    band_scatter = (BANDS_ABOVE_DIAGONAL + rows[pair] - cols[pair]) * num_free + cols[pair]
    for array in (free_index, free, rhs_gather, rhs_scatter, band_gather, band_scatter):
        array.setflags(write=False)
    known_mask = (~free).astype(np.float64)[:, :, None]
    known_mask.setflags(write=False)
    return _Structure(
        free_index=free_index,
        num_free=num_free,
        free_mask=free,
        known_mask=known_mask,
        rhs_scatter=rhs_scatter,
        rhs_gather=rhs_gather,
        band_scatter=band_scatter,
        band_gather=band_gather,
    )


def _known_end_values(
    points: NDArray[np.float64], start: NDArray[np.float64], end: NDArray[np.float64]
) -> NDArray[np.float64]:
    """`N x 4 x 4` array (waypoint, derivative order, axis) with every known value filled, free ones zero."""
    values = np.zeros((points.shape[0], NUM_END_DERIVATIVES, NUM_AXES))
    values[:, 0, :] = points
    values[0, 1:, :] = start
    values[-1, 1:, :] = end
    return values


def _solve_free_derivatives(
    forms: NDArray[np.float64], known: NDArray[np.float64], structure: _Structure
) -> NDArray[np.float64]:
    """Minimise the snap cost over the free derivatives; return the completed `N x 4 x 4` end values."""
    if structure.num_free == 0:
        return known
    known_part = _segment_end_values(known) * structure.known_mask
    # A constant offset of both end positions is in the null space of every form: measure positions from
    # each segment's start so that far from the origin no digits cancel.
    known_part[:, (0, NUM_END_DERIVATIVES), :] -= known_part[:, :1, :]
    rhs_local = -(forms @ known_part)  # M x 8 x D
    rhs = np.bincount(
        structure.rhs_scatter,
        weights=rhs_local.reshape(-1)[structure.rhs_gather],
        minlength=structure.num_free * NUM_AXES,
    ).reshape(structure.num_free, NUM_AXES)
    # Upper banded storage for solveh_banded: ab[u + i - j, j] = H[i, j] for i <= j.
    banded = np.bincount(
        structure.band_scatter,
        weights=forms.reshape(-1)[structure.band_gather],
        minlength=(BANDS_ABOVE_DIAGONAL + 1) * structure.num_free,
    ).reshape(BANDS_ABOVE_DIAGONAL + 1, structure.num_free)
    # LAPACK's banded Cholesky solve (what scipy.linalg.solveh_banded wraps, without its per-call checks).
    _, free_values, info = _banded_cholesky_solve(banded, rhs, lower=0, overwrite_ab=1, overwrite_b=1)
    if info != 0:
        raise TrajectoryInputError(
            f"minimum-snap system is not positive definite for these segment times (LAPACK pbsv info={info})"
        )
    completed = known.copy()
    completed[1:-1, 1:, :] = free_values.reshape(-1, FREE_PER_KNOT, NUM_AXES)
    return completed


def _segment_end_values(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """`M x 8 x 4` end values per segment from `N x 4 x 4` per-waypoint values."""
    return np.concatenate([values[:-1], values[1:]], axis=1)


_END_ORDER = np.tile(np.arange(NUM_END_DERIVATIVES), 2)


def _coefficients(end_values: NDArray[np.float64], times: NDArray[np.float64]) -> NDArray[np.float64]:
    """Monomial coefficients in local time, `M x 4 x 8`, from per-segment end values `M x 8 x 4`."""
    powers = times[:, None] ** np.arange(NUM_COEFFS)[None, :]  # M x 8
    tau_coeffs = HERMITE @ (end_values * powers[:, _END_ORDER, None])  # M x 8 x D
    # C order, as `Trajectory.from_json` builds it, so a trajectory evaluates bit-identically after a round trip.
    return np.ascontiguousarray((tau_coeffs / powers[:, :, None]).transpose(0, 2, 1))


@dataclass(frozen=True)
class _Prepared:
    points: NDArray[np.float64]
    times: NDArray[np.float64]
    known: NDArray[np.float64]


def _prepare(
    waypoints: ArrayLike, segment_times_s: ArrayLike, start: EndpointState | None, end: EndpointState | None
) -> _Prepared:
    points = as_waypoints(waypoints)
    points[:, 3] = unwrap_yaw(points[:, 3])
    times = as_segment_times(segment_times_s, points.shape[0])
    start_array = _AT_REST if start is None else start.as_array("start")
    end_array = _AT_REST if end is None else end.as_array("end")
    return _Prepared(points=points, times=times, known=_known_end_values(points, start_array, end_array))


def solve_min_snap(
    waypoints: ArrayLike,
    segment_times_s: ArrayLike,
    start: EndpointState | None = None,
    end: EndpointState | None = None,
) -> Trajectory:
    """Minimum-snap trajectory through waypoints with given segment times.

    Args:
        waypoints: `N x 3` (x, y, z in m) or `N x 4` (with yaw in rad) waypoints, N >= 2.
        segment_times_s: `N-1` durations in seconds, all > 0.
        start: velocity/acceleration/jerk at the first waypoint (default: at rest).
        end: velocity/acceleration/jerk at the last waypoint (default: at rest).

    Returns:
        The trajectory; yaw waypoints are unwrapped so each turn takes the short way.

    Raises:
        TrajectoryInputError: bad waypoints, times or boundary states (the message says which).
    """
    prepared = _prepare(waypoints, segment_times_s, start, end)
    forms = segment_snap_forms(prepared.times)
    values = _solve_free_derivatives(forms, prepared.known, _structure(prepared.points.shape[0]))
    coeffs = _coefficients(_segment_end_values(values), prepared.times)
    return Trajectory(segment_times_s=prepared.times, coefficients=coeffs, waypoints=prepared.points)


def snap_cost_and_gradient(
    waypoints: ArrayLike,
    segment_times_s: ArrayLike,
    start: EndpointState | None = None,
    end: EndpointState | None = None,
    include_yaw: bool = False,
) -> tuple[float, NDArray[np.float64]]:
    """Optimal snap cost for the given segment times and its gradient with respect to them.

    The gradient uses the envelope theorem: at the optimum the free derivatives are stationary, so
    ``dJ/dT_i = d_i^T (dH_i/dT_i) d_i`` with d_i the end values of segment i.

    Returns:
        (cost, gradient): the cost summed over x, y, z (and yaw if asked), and its `N-1`-dim gradient.
    """
    prepared = _prepare(waypoints, segment_times_s, start, end)
    forms = segment_snap_forms(prepared.times)
    values = _solve_free_derivatives(forms, prepared.known, _structure(prepared.points.shape[0]))
    seg_values = _segment_end_values(values)[:, :, : (4 if include_yaw else 3)].copy()
    # The forms vanish on constant offsets; measuring positions from each segment's start keeps the
    # cost from cancelling terms of size |position|^2 (far from the origin it would lose all digits).
    seg_values[:, [0, NUM_END_DERIVATIVES], :] -= seg_values[:, :1, :]
    cost = float(np.einsum("mad,mab,mbd->", seg_values, forms, seg_values))
    d_forms = segment_snap_form_derivatives(prepared.times)
    gradient = np.einsum("mad,mab,mbd->m", seg_values, d_forms, seg_values)
    return cost, gradient


__all__ = ["EndpointState", "TrajectoryInputError", "snap_cost_and_gradient", "solve_min_snap", "unwrap_yaw"]

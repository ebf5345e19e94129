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

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

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
        rows = []
        for label, vector, yaw in (
            ("velocity", self.velocity, self.yaw_rate),
            ("acceleration", self.acceleration, self.yaw_acceleration),
            ("jerk", self.jerk, self.yaw_jerk),
        ):
            rows.append(np.append(as_vector(vector, f"{name} {label}", 3), as_vector([yaw], f"{name} yaw {label}", 1)))
        return np.vstack(rows)


def unwrap_yaw(yaw_rad: NDArray[np.float64]) -> NDArray[np.float64]:
    """Unwrap waypoint yaw so that each step takes the short way round (|step| <= pi)."""
    return np.unwrap(yaw_rad)


@dataclass(frozen=True)
class _Structure:
    """Index bookkeeping of the free derivatives for one waypoint count."""

    free_index: NDArray[np.intp]  # M x 8: index into the free vector, or -1 where the value is known
    num_free: int


def _structure(num_waypoints: int) -> _Structure:
    num_segments = num_waypoints - 1
    seg = np.arange(num_segments)[:, None]
    local = np.arange(2 * NUM_END_DERIVATIVES)[None, :]
    knot = seg + local // NUM_END_DERIVATIVES
    order = local % NUM_END_DERIVATIVES
    interior = (knot > 0) & (knot < num_waypoints - 1)
    free = interior & (order > 0)
    free_index = np.where(free, (knot - 1) * FREE_PER_KNOT + (order - 1), -1)
    return _Structure(free_index=free_index, num_free=max(0, (num_waypoints - 2) * FREE_PER_KNOT))


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
    seg_values = _segment_end_values(known)
    free_mask = structure.free_index >= 0
    known_part = np.where(free_mask[:, :, None], 0.0, seg_values)
    rhs_local = -np.einsum("mab,mbd->mad", forms, known_part)  # M x 8 x D
    rhs = np.zeros((structure.num_free, NUM_AXES))
    np.add.at(rhs, structure.free_index[free_mask], rhs_local[free_mask])

    # Upper banded storage for solveh_banded: ab[u + i - j, j] = H[i, j] for i <= j.
    rows = structure.free_index[:, :, None]
    cols = structure.free_index[:, None, :]
    pair = (rows >= 0) & (cols >= 0) & (rows <= cols)
    rows_b = np.broadcast_to(rows, forms.shape)[pair]
    cols_b = np.broadcast_to(cols, forms.shape)[pair]
    banded = np.zeros((BANDS_ABOVE_DIAGONAL + 1, structure.num_free))
    np.add.at(banded, (BANDS_ABOVE_DIAGONAL + rows_b - cols_b, cols_b), forms[pair])
    try:
        free_values = scipy.linalg.solveh_banded(banded, rhs, lower=False, check_finite=False)
    except np.linalg.LinAlgError as exc:  # pragma: no cover - positive definite for valid input
        raise TrajectoryInputError(f"minimum-snap system is singular for these segment times: {exc}") from exc
    completed = known.copy()
    interior = completed[1:-1, 1:, :]
    interior[...] = free_values.reshape(-1, FREE_PER_KNOT, NUM_AXES)
    return completed


def _segment_end_values(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """`M x 8 x 4` end values per segment from `N x 4 x 4` per-waypoint values."""
    return np.concatenate([values[:-1], values[1:]], axis=1)


def _coefficients(end_values: NDArray[np.float64], times: NDArray[np.float64]) -> NDArray[np.float64]:
    """Monomial coefficients in local time, `M x 4 x 8`, from per-segment end values `M x 8 x 4`."""
    order = np.tile(np.arange(NUM_END_DERIVATIVES), 2)
    scaled = end_values * times[:, None, None] ** order[None, :, None]
    tau_coeffs = np.einsum("cb,mbd->mdc", HERMITE, scaled)
    return tau_coeffs / times[:, None, None] ** np.arange(NUM_COEFFS)[None, None, :]


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
    start_array = (start or EndpointState()).as_array("start")
    end_array = (end or EndpointState()).as_array("end")
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

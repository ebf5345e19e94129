"""Checks on waypoints, segment times and boundary states, with messages a user can act on."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from minsnap.errors import TrajectoryInputError

MIN_WAYPOINT_SPACING_M = 1e-6


def as_waypoints(waypoints: ArrayLike) -> NDArray[np.float64]:
    """Return waypoints as an `N x 4` array (x, y, z, yaw); a missing yaw column becomes zeros.

    Raises `TrajectoryInputError` for fewer than 2 waypoints, a wrong shape, NaN/inf values
    or two consecutive waypoints at the same position.
    """
    try:
        points = np.array(waypoints, dtype=np.float64)  # a copy: the solver unwraps yaw in it
    except (TypeError, ValueError) as exc:
        raise TrajectoryInputError(f"waypoints must be numbers in an N x 3 or N x 4 array: {exc}") from exc
    if points.ndim != 2 or points.shape[1] not in (3, 4):
        raise TrajectoryInputError(
            f"waypoints must be an N x 3 (x, y, z) or N x 4 (x, y, z, yaw) array, got shape {points.shape}"
        )
    if points.shape[0] < 2:
        raise TrajectoryInputError(f"a trajectory needs at least 2 waypoints, got {points.shape[0]}")
    if not np.isfinite(points).all():
        row, col = (int(v) for v in np.argwhere(~np.isfinite(points))[0])
        axis = "xyzw"[col] if col < 3 else "yaw"
        raise TrajectoryInputError(
            f"waypoint {row} has a non-finite {axis} value ({points[row, col]}); every coordinate must be finite"
        )
    if points.shape[1] == 3:
        points = np.hstack([points, np.zeros((points.shape[0], 1))])
    steps = np.diff(points[:, :3], axis=0)
    spacing = np.sqrt(np.einsum("ij,ij->i", steps, steps))
    if (spacing < MIN_WAYPOINT_SPACING_M).any():
        repeated = np.flatnonzero(spacing < MIN_WAYPOINT_SPACING_M)
        i = int(repeated[0])
        raise TrajectoryInputError(
            f"waypoints {i} and {i + 1} are at the same position ({spacing[i]:.3g} m apart, "
            f"minimum {MIN_WAYPOINT_SPACING_M} m); remove the repeated waypoint"
        )
    return points


def as_segment_times(segment_times_s: ArrayLike, num_waypoints: int) -> NDArray[np.float64]:
    """Return segment times as a float array of length `num_waypoints - 1`, all finite and > 0."""
    try:
        times = np.asarray(segment_times_s, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TrajectoryInputError(f"segment times must be numbers: {exc}") from exc
    if times.ndim > 1:
        raise TrajectoryInputError(f"segment times must be a 1-D array of N-1 durations, got shape {times.shape}")
    times = times.reshape(-1)
    if times.shape[0] != num_waypoints - 1:
        raise TrajectoryInputError(
            f"{num_waypoints} waypoints need {num_waypoints - 1} segment times, got {times.shape[0]}"
        )
    bad = np.flatnonzero(~np.isfinite(times) | (times <= 0.0))
    if bad.size:
        i = int(bad[0])
        raise TrajectoryInputError(f"segment time {i} is {times[i]} s; every segment time must be finite and > 0")
    return times


def as_vector(value: ArrayLike, name: str, size: int) -> NDArray[np.float64]:
    """Return `value` as a finite float vector of length `size`."""
    try:
        vector = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TrajectoryInputError(f"{name} must be {size} numbers: {exc}") from exc
    if vector.shape[0] != size:
        raise TrajectoryInputError(f"{name} must have {size} components, got {vector.shape[0]}")
    if not np.all(np.isfinite(vector)):
        raise TrajectoryInputError(f"{name} must be finite, got {vector.tolist()}")
    return vector

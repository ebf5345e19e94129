"""Bad input to the solver raises `TrajectoryInputError` with a message that names the problem."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from minsnap import EndpointState, TrajectoryInputError, snap_cost_and_gradient, solve_min_snap
from minsnap.validation import MIN_WAYPOINT_SPACING_M

SQUARE = [[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
SQUARE_TIMES = [1.0, 1.0, 1.0]


def _with(points: list[list[float]], row: int, col: int, value: float) -> list[list[float]]:
    edited = [list(point) for point in points]
    edited[row][col] = value
    return edited


BAD_WAYPOINTS: dict[str, tuple[Any, Any, str]] = {
    "one waypoint": ([[0.0, 0.0, 0.0]], [], "at least 2 waypoints, got 1"),
    "no waypoints": (np.zeros((0, 3)), [], "at least 2 waypoints, got 0"),
    "NaN x": (_with(SQUARE, 2, 0, np.nan), SQUARE_TIMES, "waypoint 2 has a non-finite x"),
    "inf z": (_with(SQUARE, 1, 2, np.inf), SQUARE_TIMES, "waypoint 1 has a non-finite z"),
    "NaN yaw": (np.hstack([SQUARE, [[0.0], [np.nan], [0.0], [0.0]]]), SQUARE_TIMES, "waypoint 1 has a non-finite yaw"),
    "repeated waypoint": (
        [SQUARE[0], SQUARE[1], SQUARE[1], SQUARE[2]],
        SQUARE_TIMES,
        "waypoints 1 and 2 are at the same",
    ),
    "below minimum spacing": (
        [[0.0, 0.0, 0.0], [0.5 * MIN_WAYPOINT_SPACING_M, 0.0, 0.0]],
        [1.0],
        "waypoints 0 and 1 are at the same position",
    ),
    "two columns": ([[0.0, 0.0], [1.0, 1.0]], [1.0], "N x 3"),
    "five columns": (np.zeros((3, 5)), [1.0, 1.0], "got shape \\(3, 5\\)"),
    "flat vector": ([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], [1.0], "N x 3"),
    "three dimensions": (np.zeros((2, 3, 1)), [1.0], "N x 3"),
    "ragged rows": ([[0.0, 0.0, 0.0], [1.0, 1.0]], [1.0], "N x 3"),
    "text": ([["a", "b", "c"], ["d", "e", "f"]], [1.0], "must be numbers"),
}


@pytest.mark.parametrize(("waypoints", "times", "message"), BAD_WAYPOINTS.values(), ids=BAD_WAYPOINTS.keys())
def test_bad_waypoints_are_rejected_with_the_reason(waypoints: Any, times: Any, message: str) -> None:
    """Too few, non-finite, repeated or wrongly shaped waypoints are named in the error."""
    with pytest.raises(TrajectoryInputError, match=message):
        solve_min_snap(waypoints, times)


BAD_TIMES: dict[str, tuple[Any, str]] = {
    "zero": ([1.0, 0.0, 1.0], "segment time 1 is 0.0 s; every segment time must be finite and > 0"),
    "negative": ([1.0, 1.0, -2.0], "segment time 2 is -2.0 s"),
    "NaN": ([np.nan, 1.0, 1.0], "segment time 0 is nan s"),
    "infinite": ([1.0, np.inf, 1.0], "segment time 1 is inf s"),
    "too few": ([1.0, 1.0], "4 waypoints need 3 segment times, got 2"),
    "too many": ([1.0, 1.0, 1.0, 1.0], "4 waypoints need 3 segment times, got 4"),
    "column vector": ([[1.0], [1.0], [1.0]], "1-D array of N-1 durations, got shape \\(3, 1\\)"),
    "text": (["1", "x", "1"], "segment times must be numbers"),
}


@pytest.mark.parametrize(("times", "message"), BAD_TIMES.values(), ids=BAD_TIMES.keys())
def test_bad_segment_times_are_rejected_with_the_reason(times: Any, message: str) -> None:
    """Non-positive, non-finite, mis-sized or mis-shaped segment times are named in the error."""
    with pytest.raises(TrajectoryInputError, match=message):
        solve_min_snap(SQUARE, times)


BAD_STATES: dict[str, tuple[str, EndpointState, str]] = {
    "NaN start velocity": (
        "start",
        EndpointState(velocity=np.array([0.0, np.nan, 0.0])),
        "start velocity must be finite",
    ),
    "inf end jerk": ("end", EndpointState(jerk=np.array([np.inf, 0.0, 0.0])), "end jerk must be finite"),
    "NaN start yaw rate": ("start", EndpointState(yaw_rate=np.nan), "start yaw velocity must be finite"),
    "inf end yaw acceleration": ("end", EndpointState(yaw_acceleration=-np.inf), "end yaw acceleration must be finite"),
    "2-vector acceleration": (
        "start",
        EndpointState(acceleration=np.array([1.0, 2.0])),
        "start acceleration must have 3 components, got 2",
    ),
}


@pytest.mark.parametrize(("which", "state", "message"), BAD_STATES.values(), ids=BAD_STATES.keys())
def test_non_finite_or_mis_sized_boundary_states_are_rejected(which: str, state: EndpointState, message: str) -> None:
    """A replan from a corrupted vehicle state fails loudly, saying which end and which quantity."""
    with pytest.raises(TrajectoryInputError, match=message):
        solve_min_snap(SQUARE, SQUARE_TIMES, **{which: state})


def test_cost_and_gradient_validate_like_the_solver() -> None:
    """`snap_cost_and_gradient` rejects the same bad input with the same kind of error."""
    with pytest.raises(TrajectoryInputError, match="segment time 0"):
        snap_cost_and_gradient(SQUARE, [0.0, 1.0, 1.0])
    with pytest.raises(TrajectoryInputError, match="at the same position"):
        snap_cost_and_gradient([SQUARE[0], SQUARE[0]], [1.0])


def test_input_error_is_a_value_error() -> None:
    """Callers that catch `ValueError` also catch bad trajectory input."""
    assert issubclass(TrajectoryInputError, ValueError)


def test_accepted_edge_cases() -> None:
    """Valid but unusual input is accepted: spacing just above the minimum, a loop back to the start, lists."""
    just_apart = [[0.0, 0.0, 0.0], [1.01 * MIN_WAYPOINT_SPACING_M, 0.0, 0.0]]
    assert solve_min_snap(just_apart, [0.5]).num_segments == 1
    loop = [*SQUARE, SQUARE[0]]
    assert solve_min_snap(loop, [1.0] * 4).num_segments == 4
    assert solve_min_snap(((0, 0, 0), (1, 2, 3)), 2.0).num_segments == 1  # scalar time, one segment
    turn_in_place_then_move = [[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 3.0]]
    assert solve_min_snap(turn_in_place_then_move, [1.0]).num_segments == 1


def test_input_arrays_are_not_modified() -> None:
    """The solver copies its input: the caller's waypoint yaw is not unwrapped in place."""
    waypoints = np.array([[0.0, 0.0, 0.0, 3.1], [1.0, 0.0, 0.0, -3.1]])
    times = np.array([1.0])
    before = waypoints.copy()
    solve_min_snap(waypoints, times)
    np.testing.assert_array_equal(waypoints, before)
    np.testing.assert_array_equal(times, [1.0])

"""Typed errors raised for bad trajectory input."""

from __future__ import annotations


class TrajectoryInputError(ValueError):
    """A waypoint set, segment-time vector or boundary state cannot define a trajectory.

    The message says what was wrong and what a valid input looks like.
    """

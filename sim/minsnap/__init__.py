"""Minimum-snap trajectories: closed-form banded solve, evaluation, time allocation, JSON."""

from minsnap.errors import TrajectoryInputError
from minsnap.solver import EndpointState, snap_cost_and_gradient, solve_min_snap
from minsnap.trajectory import Trajectory

__all__ = ["EndpointState", "Trajectory", "TrajectoryInputError", "snap_cost_and_gradient", "solve_min_snap"]

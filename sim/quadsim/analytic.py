"""Fidelity 0: the analytic feasibility check (differential flatness against the rotor limits)."""

from __future__ import annotations

import time

import numpy as np

from minsnap import Trajectory
from minsnap.bounds import min_axis_bound
from quadsim.certificate import RotorSpeedBounds, rotor_speed_bounds
from quadsim.evaluation import EvaluationResult, FeasibilityCriteria, FidelityEvaluator
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams


def sample_times(trajectory: Trajectory, rate_hz: float | None = None, samples_per_segment: int = 32) -> np.ndarray:
    """Sample times: `samples_per_segment` evenly in every segment (knots included), merged with a uniform
    grid at `rate_hz` when one is given.

    Rotor speeds along a 7th-order segment are smooth functions of time, so a fixed number of samples
    per segment finds their extremes to a fraction of a percent at a cost independent of the duration.
    """
    fractions = np.linspace(0.0, 1.0, max(2, samples_per_segment))
    per_segment = (trajectory.knot_times_s[:-1, None] + trajectory.segment_times_s[:, None] * fractions).ravel()
    times = np.union1d(per_segment, trajectory.knot_times_s)
    if rate_hz is not None:
        count = max(2, int(np.ceil(trajectory.duration_s * rate_hz)) + 1)
        times = np.union1d(times, np.linspace(0.0, trajectory.duration_s, count))
    return times


class AnalyticEvaluator(FidelityEvaluator):
    """Feasible when every rotor's required speed stays inside [min, max] along the whole trajectory
    and the trajectory stays above the ground clearance.

    The rotor speeds are bounded over whole segments by `quadsim.certificate.rotor_speed_bounds` (dense
    samples plus a margin for the gaps between them; its docstring states the assumption), the height and
    the thrust direction by the Bernstein hulls of `minsnap.bounds`; the reported rotor speeds are those
    certified bounds, the sampled extremes are in `extra`. Assumes perfect tracking (position and yaw errors
    are reported as 0). Cost: milliseconds.
    """

    name = "analytic"
    level = 0

    def __init__(
        self,
        vehicle: VehicleParams | None = None,
        criteria: FeasibilityCriteria | None = None,
        sample_rate_hz: float | None = None,
        samples_per_segment: int = 32,
        max_step_s: float = 0.01,
    ) -> None:
        super().__init__(vehicle, criteria)
        self.sample_rate_hz = sample_rate_hz
        self.samples_per_segment = samples_per_segment
        self.max_step_s = max_step_s if sample_rate_hz is None else min(max_step_s, 1.0 / sample_rate_hz)

    def rotor_bounds(self, trajectory: Trajectory) -> RotorSpeedBounds:
        """The certified rotor-speed range and the samples behind it."""
        return rotor_speed_bounds(trajectory, self.vehicle, self.max_step_s, self.samples_per_segment)

    def rotor_speed_profile(self, trajectory: Trajectory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample times `K` (increasing), required rotor speeds `K x 4` (rad/s, negative = negative thrust),
        singular flags: the samples of the sound rotor check."""
        bounds = self.rotor_bounds(trajectory)
        times, first = np.unique(bounds.times_s, return_index=True)
        return times, bounds.speeds_rad_s[first], bounds.singular[first]

    def evaluate_one(self, trajectory: Trajectory) -> EvaluationResult:
        """Check the rotor speeds, the thrust direction and the height along the whole trajectory."""
        start = time.perf_counter()
        v = self.vehicle
        reasons = []
        clearance = self.criteria.ground_clearance_m
        lowest, at = min_axis_bound(trajectory, 2, 0, limit=clearance)
        low = int(np.argmin(lowest))
        if lowest[low] < clearance:
            reasons.append(
                f"trajectory goes below the ground clearance: z={lowest[low]:.2f} m < {clearance} m "
                f"at t={at[low]:.2f} s"
            )
        rotors = self.rotor_bounds(trajectory)
        vertical, _ = min_axis_bound(trajectory, 2, 2, limit=-GRAVITY_M_S2)
        if rotors.singular.any() or vertical.min() <= -GRAVITY_M_S2:
            reasons.append("thrust vanishes or heading undefined (free fall or 90 deg pitch)")
        max_speed, min_speed = rotors.max_rad_s, rotors.min_rad_s
        if max_speed > v.rotor_speed_max_rad_s:
            reasons.append(f"rotor speed {max_speed:.0f} rad/s > limit {v.rotor_speed_max_rad_s:.0f} rad/s")
        if min_speed < v.rotor_speed_min_rad_s:
            reasons.append(f"rotor speed {min_speed:.0f} rad/s < minimum {v.rotor_speed_min_rad_s:.0f} rad/s")
        return EvaluationResult(
            fidelity=self.name,
            feasible=not reasons,
            max_position_error_m=0.0,
            max_yaw_error_rad=0.0,
            max_rotor_speed_rad_s=max_speed,
            rotor_speed_limit_rad_s=v.rotor_speed_max_rad_s,
            min_rotor_speed_rad_s=min_speed,
            wall_time_s=time.perf_counter() - start,
            reason="; ".join(reasons),
            duration_s=trajectory.duration_s,
            extra={
                "sampled_max_rotor_speed_rad_s": float(rotors.speeds_rad_s.max()),
                "sampled_min_rotor_speed_rad_s": float(rotors.speeds_rad_s.min()),
                "min_z_bound_m": float(lowest[low]),
            },
        )

    def is_feasible(self, trajectory: Trajectory) -> bool:
        """True when the trajectory passes the analytic check."""
        return self.evaluate_one(trajectory).feasible

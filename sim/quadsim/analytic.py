"""Fidelity 0: the analytic feasibility check (differential flatness against the rotor limits)."""

from __future__ import annotations

import time

import numpy as np

from minsnap import Trajectory
from quadsim.evaluation import EvaluationResult, FeasibilityCriteria, FidelityEvaluator
from quadsim.flatness import flat_state
from quadsim.vehicle import VehicleParams


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

    Assumes perfect tracking (position and yaw errors are reported as 0). Cost: milliseconds.
    """

    name = "analytic"
    level = 0

    def __init__(
        self,
        vehicle: VehicleParams | None = None,
        criteria: FeasibilityCriteria | None = None,
        sample_rate_hz: float | None = None,
        samples_per_segment: int = 32,
    ) -> None:
        super().__init__(vehicle, criteria)
        self.sample_rate_hz = sample_rate_hz
        self.samples_per_segment = samples_per_segment

    def rotor_speed_profile(self, trajectory: Trajectory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample times `K`, required rotor speeds `K x 4` (rad/s, negative = negative thrust), singular flags."""
        times, speeds, singular, _ = self._profile(trajectory)
        return times, speeds, singular

    def _profile(self, trajectory: Trajectory) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        times = sample_times(trajectory, self.sample_rate_hz, self.samples_per_segment)
        derivatives = trajectory.derivatives(times, max_order=4)
        state = flat_state(derivatives, self.vehicle)
        speeds = state.rotor_speeds_rad_s
        # Refine around the highest and the lowest sample: the extremes decide feasibility.
        extremes = {int(np.argmax(speeds.max(axis=1))), int(np.argmin(speeds.min(axis=1)))}
        refined = [np.linspace(times[max(i - 1, 0)], times[min(i + 1, len(times) - 1)], 33) for i in sorted(extremes)]
        extra = np.setdiff1d(np.concatenate(refined), times)
        if extra.size:
            extra_derivatives = trajectory.derivatives(extra, max_order=4)
            extra_state = flat_state(extra_derivatives, self.vehicle)
            order = np.argsort(np.concatenate([times, extra]))
            times = np.concatenate([times, extra])[order]
            speeds = np.concatenate([speeds, extra_state.rotor_speeds_rad_s])[order]
            singular = np.concatenate([state.singular, extra_state.singular])[order]
            heights = np.concatenate([derivatives[0, :, 2], extra_derivatives[0, :, 2]])[order]
            return times, speeds, singular, heights
        return times, speeds, state.singular, derivatives[0, :, 2]

    def evaluate_one(self, trajectory: Trajectory) -> EvaluationResult:
        """Check the rotor speeds along the trajectory."""
        start = time.perf_counter()
        times, speeds, singular, heights = self._profile(trajectory)
        v = self.vehicle
        reasons = []
        low = int(np.argmin(heights))
        if heights[low] < self.criteria.ground_clearance_m:
            reasons.append(
                f"trajectory goes below the ground clearance: z={heights[low]:.2f} m < "
                f"{self.criteria.ground_clearance_m} m at t={times[low]:.2f} s"
            )
        if singular.any():
            reasons.append("thrust vanishes or heading undefined (free fall or 90 deg pitch)")
        max_speed, min_speed = float(np.max(speeds)), float(np.min(speeds))
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
        )

    def is_feasible(self, trajectory: Trajectory) -> bool:
        """True when the trajectory passes the analytic check."""
        return self.evaluate_one(trajectory).feasible

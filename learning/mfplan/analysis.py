"""What the reward estimator sees of a trajectory (features) and learns (a feasibility score).

Features are cheap (one analytic pass, about a millisecond) and describe how hard a trajectory is to
fly: pace, peak speed, acceleration, jerk, snap and yaw rate, and the rotor speeds the analytic
check needs. The score puts every fidelity's verdict on one scale: the log of the largest fraction
of a limit used, so a trajectory is feasible at a fidelity exactly when its score there is <= 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minsnap import Trajectory
from quadsim.analytic import AnalyticEvaluator
from quadsim.evaluation import EvaluationResult, FeasibilityCriteria
from quadsim.vehicle import VehicleParams

FEATURE_NAMES = (
    "log_seconds_per_metre",
    "peak_speed_m_s",
    "peak_acceleration_m_s2",
    "peak_jerk_m_s3",
    "log1p_peak_snap_m_s4",
    "peak_yaw_rate_rad_s",
    "max_rotor_speed_ratio",
    "min_rotor_speed_ratio",
    "num_segments",
)
NUM_FEATURES = len(FEATURE_NAMES)
SCORE_FAILED = math.log(8.0)
"""Score of a flight that could not be completed (crash, divergence, singular): far past every limit."""
SCORE_MIN = -3.0
SAMPLES_PER_SEGMENT = 16


@dataclass(frozen=True)
class TrajectoryAnalysis:
    """Features of a trajectory and its analytic verdict (from the same pass)."""

    features: np.ndarray
    analytic: EvaluationResult

    @property
    def analytic_score(self) -> float:
        """The analytic fidelity's feasibility score."""
        return feasibility_score(self.analytic)


def analyse(
    trajectory: Trajectory, analytic: AnalyticEvaluator, result: EvaluationResult | None = None
) -> TrajectoryAnalysis:
    """Features (`NUM_FEATURES`) and the analytic check of one trajectory (`result`: that check, if already run)."""
    result = result if result is not None else analytic.evaluate_one(trajectory)
    fractions = np.linspace(0.0, 1.0, SAMPLES_PER_SEGMENT)
    times = (trajectory.knot_times_s[:-1, None] + trajectory.segment_times_s[:, None] * fractions).ravel()
    d = trajectory.derivatives(times, max_order=4)
    length = float(np.linalg.norm(np.diff(trajectory.waypoints[:, :3], axis=0), axis=1).sum())
    limit = analytic.vehicle.rotor_speed_max_rad_s
    features = np.array(
        [
            math.log(trajectory.duration_s / max(length, 1e-6)),
            np.linalg.norm(d[1, :, :3], axis=1).max(),
            np.linalg.norm(d[2, :, :3], axis=1).max(),
            np.linalg.norm(d[3, :, :3], axis=1).max(),
            math.log1p(float(np.linalg.norm(d[4, :, :3], axis=1).max())),
            np.abs(d[1, :, 3]).max(),
            result.max_rotor_speed_rad_s / limit,
            result.min_rotor_speed_rad_s / limit,
            float(trajectory.num_segments),
        ]
    )
    return TrajectoryAnalysis(features=features, analytic=result)


def feasibility_score(
    result: EvaluationResult, vehicle: VehicleParams | None = None, criteria: FeasibilityCriteria | None = None
) -> float:
    """log(largest fraction of a limit used), clipped to [SCORE_MIN, SCORE_FAILED]; <= 0 exactly when feasible.

    Analytic results use the rotor speed limits; simulated flights use the tracking bounds.
    """
    vehicle = vehicle or VehicleParams()
    criteria = criteria or FeasibilityCriteria()
    if result.fidelity == "analytic":
        usage = _analytic_usage(result, vehicle)
    elif math.isfinite(result.max_position_error_m) and math.isfinite(result.max_yaw_error_rad):
        usage = max(
            result.max_position_error_m / criteria.max_position_error_m,
            result.max_yaw_error_rad / criteria.max_yaw_error_rad,
        )
        if not result.feasible and usage <= 1.0:  # stopped for a reason the bounds do not show (a crash)
            usage = math.exp(SCORE_FAILED)
    else:
        usage = math.exp(SCORE_FAILED)
    score = math.log(max(usage, 1e-12))
    return float(min(max(score, SCORE_MIN), SCORE_FAILED))


def _analytic_usage(result: EvaluationResult, vehicle: VehicleParams) -> float:
    """The analytic check's usage of the rotors' thrust margin (see `VehicleParams.thrust_margin_usage`)."""
    if not result.feasible and ("free fall" in result.reason or "ground" in result.reason):
        return math.exp(SCORE_FAILED)
    top, bottom = result.max_rotor_speed_rad_s, result.min_rotor_speed_rad_s
    if not (math.isfinite(top) and math.isfinite(bottom)):
        return math.exp(SCORE_FAILED)
    return vehicle.thrust_margin_usage(top, bottom)

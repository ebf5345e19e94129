"""The evaluator interface every fidelity implements, its result record, and parallel batches."""

from __future__ import annotations

import abc
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from minsnap import Trajectory
from quadsim.flight_log import FlightLog
from quadsim.rotations import norm3
from quadsim.vehicle import VehicleParams
from runkit import get_logger

log = get_logger("quadsim.evaluation")


@dataclass(frozen=True)
class FeasibilityCriteria:
    """When a flown trajectory counts as feasible (the MFRL paper's criteria by default)."""

    max_position_error_m: float = 0.2
    max_yaw_error_rad: float = math.radians(15.0)
    divergence_error_m: float = 2.0
    """A flight whose position error exceeds this is stopped early: it has diverged."""
    ground_clearance_m: float = 0.03
    """The vehicle's centre below this height means it hit the ground; a trajectory that goes below it is
    infeasible at every fidelity (minimum-snap paths can overshoot below the lowest waypoint)."""
    settle_time_s: float = 0.5
    """Time flown after the end of the trajectory, holding the last waypoint; it is checked too."""

    def stop_reason(self, position_m: np.ndarray, reference_m: np.ndarray, time_s: float) -> str:
        """Why a flight must stop now (diverged, or hit the ground), or "" to go on."""
        error = norm3(position_m - reference_m)
        if error > self.divergence_error_m:
            return f"diverged: position error {error:.2f} m at t={time_s:.2f} s"
        if position_m[2] < self.ground_clearance_m:
            return f"hit the ground: z={position_m[2]:.3f} m < {self.ground_clearance_m} m at t={time_s:.2f} s"
        return ""


@dataclass(frozen=True)
class EvaluationResult:
    """Outcome of one trajectory at one fidelity.

    `max_rotor_speed_ratio` is the highest rotor speed (commanded in simulation, required in the
    analytic check) divided by the rotor's limit; > 1 means the limit was needed beyond its range.
    `reason` is empty when feasible, otherwise says why not (and names the first violation).
    """

    fidelity: str
    feasible: bool
    max_position_error_m: float
    max_yaw_error_rad: float
    max_rotor_speed_rad_s: float
    rotor_speed_limit_rad_s: float
    min_rotor_speed_rad_s: float
    wall_time_s: float
    reason: str = ""
    duration_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def max_rotor_speed_ratio(self) -> float:
        """Highest rotor speed over the limit."""
        return self.max_rotor_speed_rad_s / self.rotor_speed_limit_rad_s

    @classmethod
    def failure(
        cls, fidelity: str, vehicle: VehicleParams, reason: str, wall_time_s: float, duration_s: float = 0.0
    ) -> EvaluationResult:
        """An infeasible result for a flight that could not be completed (diverged, crashed, raised)."""
        return cls(
            fidelity=fidelity,
            feasible=False,
            max_position_error_m=math.inf,
            max_yaw_error_rad=math.inf,
            max_rotor_speed_rad_s=math.nan,
            rotor_speed_limit_rad_s=vehicle.rotor_speed_max_rad_s,
            min_rotor_speed_rad_s=math.nan,
            wall_time_s=wall_time_s,
            reason=reason,
            duration_s=duration_s,
        )


class FidelityEvaluator(abc.ABC):
    """Evaluates trajectories at one fidelity. Adding a fidelity is one subclass of this.

    Subclasses implement `evaluate_one`; `evaluate` runs a batch, in worker processes when
    `num_workers > 1`. A flight that fails in any way is returned as infeasible with a reason,
    never raised, so that one bad trajectory cannot kill a batch.
    """

    name: str = "abstract"
    level: int = 0
    """Fidelity level: 0 analytic, 1 MuJoCo, 2 high fidelity (higher is costlier and closer to reality)."""

    def __init__(self, vehicle: VehicleParams | None = None, criteria: FeasibilityCriteria | None = None) -> None:
        self.vehicle = vehicle or VehicleParams()
        self.criteria = criteria or FeasibilityCriteria()

    @abc.abstractmethod
    def evaluate_one(self, trajectory: Trajectory) -> EvaluationResult:
        """Evaluate a single trajectory."""

    def safe_evaluate_one(self, trajectory: Trajectory) -> EvaluationResult:
        """`evaluate_one`, with any exception turned into an infeasible result."""
        start = time.perf_counter()
        try:
            return self.evaluate_one(trajectory)
        except Exception as exc:  # a failed flight is a result, not a crash of the batch
            log.warning("%s evaluation raised %s: %s", self.name, type(exc).__name__, exc)
            return EvaluationResult.failure(
                self.name,
                self.vehicle,
                f"evaluation raised {type(exc).__name__}: {exc}",
                time.perf_counter() - start,
                trajectory.duration_s,
            )

    def evaluate(self, trajectories: Sequence[Trajectory], num_workers: int = 1) -> list[EvaluationResult]:
        """Evaluate a batch; with `num_workers > 1` the trajectories are spread over worker processes."""
        workers = max(1, min(num_workers, len(trajectories), os.cpu_count() or 1))
        if workers == 1:
            return [self.safe_evaluate_one(t) for t in trajectories]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.safe_evaluate_one, trajectories, chunksize=1))


class SimulatedFidelity(FidelityEvaluator):
    """A fidelity that flies the trajectory in a simulator: subclasses implement `fly`."""

    @abc.abstractmethod
    def fly(self, trajectory: Trajectory) -> FlightLog:
        """Fly the trajectory; stop early (with `FlightLog.failure` set) on divergence, NaN or a crash."""

    def evaluate_one(self, trajectory: Trajectory) -> EvaluationResult:
        """Fly the trajectory and judge it against the feasibility criteria."""
        start = time.perf_counter()
        flight = self.fly(trajectory)
        return judge_flight(
            self.name, self.vehicle, self.criteria, flight, time.perf_counter() - start, trajectory.duration_s
        )


def judge_flight(
    fidelity: str,
    vehicle: VehicleParams,
    criteria: FeasibilityCriteria,
    flight: FlightLog,
    wall_time_s: float,
    duration_s: float,
) -> EvaluationResult:
    """Turn a completed (or stopped) flight into a result against the criteria."""
    position_error, yaw_error = flight.position_error_m, flight.yaw_error_rad
    rotor_speeds, failure = flight.rotor_speed_cmd_rad_s, flight.failure
    max_pos = float(np.max(position_error)) if position_error.size else math.inf
    max_yaw = float(np.max(yaw_error)) if yaw_error.size else math.inf
    reasons = [failure] if failure else []
    if max_pos > criteria.max_position_error_m:
        reasons.append(f"position error {max_pos:.3f} m > {criteria.max_position_error_m} m")
    if max_yaw > criteria.max_yaw_error_rad:
        reasons.append(
            f"yaw error {math.degrees(max_yaw):.1f} deg > {math.degrees(criteria.max_yaw_error_rad):.1f} deg"
        )
    return EvaluationResult(
        fidelity=fidelity,
        feasible=not reasons,
        max_position_error_m=max_pos,
        max_yaw_error_rad=max_yaw,
        max_rotor_speed_rad_s=float(np.max(rotor_speeds)) if rotor_speeds.size else math.nan,
        rotor_speed_limit_rad_s=vehicle.rotor_speed_max_rad_s,
        min_rotor_speed_rad_s=float(np.min(rotor_speeds)) if rotor_speeds.size else math.nan,
        wall_time_s=wall_time_s,
        reason="; ".join(reasons),
        duration_s=duration_s,
    )

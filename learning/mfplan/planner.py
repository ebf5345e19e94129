"""The certified planner: the policy proposes segment times, the analytic check certifies the trajectory.

`CertifiedPlanner.plan` validates the waypoints, asks the policy for segment times (one forward pass),
solves the minimum-snap trajectory and checks it against the vehicle's rotor limits. A trajectory that
fails is slowed down: every segment time is multiplied by one factor `s >= 1`, found by bracketing and
bisection (in log space) to the smallest factor that passes, within a relative tolerance. Nothing is
ever returned as feasible without passing the check; when no factor up to `max_time_scale` passes, the
result says so (`feasible=False`, `trajectory=None`) and why.

A checkpoint may carry a `safety_margin` (written by `mfrl calibrate`): the policy's times are slowed
down by it before they are certified. It is the conformal quantile of how much slower the policy's plans
had to be to fly at the highest fidelity in wind never seen before, so that a chosen fraction of flights
(99 % by default) passes there too, not only the analytic check. The margin is calibrated on plans
from rest and applied to them only: stretching the times of a plan that starts from a moving vehicle
changes its path (the start velocity stays), and in-flight replans stretched this way were seen to
loop wide or dip below the floor; they get the policy's own times, certified as usual.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from mfplan.policy import TimeAllocationPolicy, encode_validated_course, load_policy
from minsnap import EndpointState, Trajectory, TrajectoryInputError, solve_min_snap
from minsnap.validation import as_waypoints
from quadsim.analytic import AnalyticEvaluator
from quadsim.evaluation import EvaluationResult, FeasibilityCriteria
from quadsim.vehicle import VehicleParams

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "mfrl_policy.pt"
"""Where the package's trained policy lives (written by `mfrl train`)."""

CertifiedBy = Literal["policy", "time-scale search", "none"]


@dataclass(frozen=True)
class PlanResult:
    """Outcome of one `CertifiedPlanner.plan` call.

    Attributes:
        trajectory: the certified trajectory, or None when no feasible one was found (never fly it then).
        segment_times_s: `M` segment times of the certified trajectory; when infeasible, the last times tried.
        total_time_s: their sum.
        feasible: True exactly when `trajectory` passed the analytic check.
        certified_by: "policy" (the policy's own times passed), "time-scale search" (slowed down by
            `time_scale` to pass), or "none" (infeasible).
        time_scale: the factor applied to the policy's times (1 when the policy's times passed).
        planning_time_ms: wall time of the whole `plan` call.
        policy_time_ms: wall time of encoding the course and the policy's forward pass.
        feasibility_checks: analytic checks made.
        reason: empty when feasible; otherwise why not.
        analytic: the analytic check's result for `segment_times_s`.
    """

    trajectory: Trajectory | None
    segment_times_s: NDArray[np.float64]
    total_time_s: float
    feasible: bool
    certified_by: CertifiedBy
    time_scale: float
    planning_time_ms: float
    policy_time_ms: float
    feasibility_checks: int
    reason: str
    analytic: EvaluationResult | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary, with the trajectory's polynomial coefficients (`Trajectory.to_dict`) or None."""
        analytic = self.analytic
        return {
            "feasible": self.feasible,
            "certified_by": self.certified_by,
            "time_scale": self.time_scale,
            "total_time_s": self.total_time_s,
            "segment_times_s": self.segment_times_s.tolist(),
            "planning_time_ms": self.planning_time_ms,
            "policy_time_ms": self.policy_time_ms,
            "feasibility_checks": self.feasibility_checks,
            "reason": self.reason,
            "max_rotor_speed_ratio": _finite_or_none(analytic.max_rotor_speed_ratio) if analytic else None,
            "trajectory": self.trajectory.to_dict() if self.trajectory is not None else None,
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class _Attempt:
    scale: float
    segment_times_s: NDArray[np.float64]
    trajectory: Trajectory | None
    result: EvaluationResult


class CertifiedPlanner:
    """Policy-proposed segment times, certified by the analytic feasibility check (see the module docstring).

    Args:
        policy: the time-allocation policy.
        vehicle: the vehicle whose rotor limits the check enforces.
        criteria: feasibility criteria (ground clearance).
        max_time_scale: the slowest factor the search tries before it gives up.
        scale_tolerance: relative tolerance of the searched factor.
        max_checks: analytic checks per plan at most (the search stops early with the smallest passing factor).
        safety_margin: factor (>= 1) applied to the policy's times before they are certified.
    """

    def __init__(
        self,
        policy: TimeAllocationPolicy,
        vehicle: VehicleParams | None = None,
        criteria: FeasibilityCriteria | None = None,
        max_time_scale: float = 16.0,
        scale_tolerance: float = 1e-2,
        max_checks: int = 12,
        safety_margin: float = 1.0,
    ) -> None:
        if not (math.isfinite(safety_margin) and safety_margin >= 1.0):
            raise ValueError(f"safety_margin must be a finite factor >= 1, got {safety_margin}")
        if not (max_time_scale > 1.0 and 0.0 < scale_tolerance < 1.0 and max_checks >= 2):
            raise ValueError(
                "need max_time_scale > 1, 0 < scale_tolerance < 1 and max_checks >= 2, got "
                f"{max_time_scale}, {scale_tolerance}, {max_checks}"
            )
        self.policy = policy
        self.analytic = AnalyticEvaluator(vehicle, criteria)
        self.max_time_scale = float(max_time_scale)
        self.scale_tolerance = float(scale_tolerance)
        self.max_checks = int(max_checks)
        self.safety_margin = float(safety_margin)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path = DEFAULT_CHECKPOINT,
        vehicle: VehicleParams | None = None,
        criteria: FeasibilityCriteria | None = None,
        **options: Any,
    ) -> CertifiedPlanner:
        """A planner with the policy of a checkpoint (`mfplan.policy.MissingCheckpointError` if there is none),
        and the checkpoint's calibrated `safety_margin` unless one is given."""
        policy, metadata = load_policy(path)
        options.setdefault("safety_margin", calibrated_margin(metadata))
        return cls(policy, vehicle, criteria, **options)

    @property
    def vehicle(self) -> VehicleParams:
        """The vehicle the check enforces."""
        return self.analytic.vehicle

    def plan(self, waypoints: Any, start: EndpointState | None = None) -> PlanResult:
        """A certified minimum-snap trajectory through `N x 3` or `N x 4` waypoints (ENU m, yaw rad), ending at rest.

        Args:
            waypoints: the course; the first waypoint is where the vehicle is now.
            start: the vehicle's state at the first waypoint (default: at rest).

        Raises:
            TrajectoryInputError: waypoints or start state that cannot define a trajectory (the message says why).
        """
        began = time.perf_counter()
        points = as_waypoints(waypoints)
        start_array = np.zeros((3, 4)) if start is None else start.as_array("start")
        encoding = encode_validated_course(points, start_array[0, :3], start_array[1, :3])
        proposal = self.policy.act(encoding, deterministic=True)
        if _path_is_scale_invariant(start):  # calibrated on plans from rest; see the module docstring
            proposal = proposal * self.safety_margin
        policy_ms = 1e3 * (time.perf_counter() - began)

        return self._certify(points, proposal, start, began, policy_ms)

    def certify(
        self, waypoints: Any, segment_times_s: NDArray[np.float64], start: EndpointState | None = None
    ) -> PlanResult:
        """Certify given segment times: check them, and search the time scale upwards if they fail.

        The trainer uses this to reward a sampled allocation with the time the planner would deliver.
        """
        began = time.perf_counter()
        points = as_waypoints(waypoints)
        return self._certify(points, np.asarray(segment_times_s, dtype=np.float64), start, began, 0.0)

    def _certify(
        self,
        points: NDArray[np.float64],
        proposal: NDArray[np.float64],
        start: EndpointState | None,
        began: float,
        policy_ms: float,
    ) -> PlanResult:
        attempts = [self._attempt(points, proposal, 1.0, start)]
        if not attempts[0].result.feasible:
            self._search(points, proposal, start, attempts)
        passing = [a for a in attempts if a.result.feasible]
        if passing:
            best = min(passing, key=lambda a: a.scale)
            certified_by: CertifiedBy = "policy" if best.scale == 1.0 else "time-scale search"
            reason = ""
        else:
            best = max(attempts, key=lambda a: a.scale)
            certified_by = "none"
            reason = _failure_reason(attempts)
        return PlanResult(
            trajectory=best.trajectory if passing else None,
            segment_times_s=best.segment_times_s,
            total_time_s=float(best.segment_times_s.sum()),
            feasible=bool(passing),
            certified_by=certified_by,
            time_scale=best.scale,
            planning_time_ms=1e3 * (time.perf_counter() - began),
            policy_time_ms=policy_ms,
            feasibility_checks=len(attempts),
            reason=reason,
            analytic=best.result,
        )

    def _attempt(
        self, points: NDArray[np.float64], proposal: NDArray[np.float64], scale: float, start: EndpointState | None
    ) -> _Attempt:
        """Solve and check the proposal slowed down by `scale`."""
        times = proposal * scale
        try:
            trajectory = solve_min_snap(points, times, start)
        except TrajectoryInputError as exc:  # e.g. segment times so uneven that the system is singular
            failure = EvaluationResult.failure("analytic", self.vehicle, f"minimum-snap solve failed: {exc}", 0.0)
            return _Attempt(scale, times, None, failure)
        return _Attempt(scale, times, trajectory, self.analytic.safe_evaluate_one(trajectory))

    def _search(
        self,
        points: NDArray[np.float64],
        proposal: NDArray[np.float64],
        start: EndpointState | None,
        attempts: list[_Attempt],
    ) -> None:
        """Append attempts until the smallest passing scale is bracketed to the tolerance (or checks run out).

        Works on x = log(scale) with a bracket [failing, passing]. The next scale comes from the rotor-limit
        excess of the bracket's ends (false position, Illinois variant), aimed just above the estimated
        boundary so that a good estimate closes the bracket in two checks; where the excess says nothing
        (ground, singular), it bisects or doubles.
        """
        first = attempts[0].result
        if _path_is_scale_invariant(start) and "ground clearance" in first.reason:
            return  # at rest at both ends, a time scale does not change the path's shape: it stays too low
        tolerance = math.log1p(self.scale_tolerance)
        x_max = math.log(self.max_time_scale)
        low = _Bracket(0.0, self._excess(first))
        high: _Bracket | None = None
        retained = ""  # which end the previous step kept ("low"/"high"): Illinois halves its excess if kept twice
        while len(attempts) < self.max_checks:
            if high is None:
                x = self._extrapolate(low, x_max)
            else:
                if high.x - low.x <= tolerance:
                    return
                x = _false_position(low, high) + 0.4 * tolerance
                x = min(max(x, low.x + 0.5 * tolerance), high.x - 0.5 * tolerance)
            attempt = self._attempt(points, proposal, math.exp(x), start)
            attempts.append(attempt)
            excess = self._excess(attempt.result)
            if attempt.result.feasible:
                if high is not None and retained == "low":
                    low = _Bracket(low.x, 0.5 * low.excess)
                high, retained = _Bracket(x, excess), "low"
            else:
                if high is None and x >= x_max:
                    return
                if retained == "high" and high is not None:
                    high = _Bracket(high.x, 0.5 * high.excess)
                low, retained = _Bracket(x, excess), "high"

    def _extrapolate(self, low: _Bracket, x_max: float) -> float:
        """Next x while nothing has passed: where the excess, falling as 4 log(scale) (snap ~ 1/s^4), reaches 0."""
        step = low.excess / 4.0 if math.isfinite(low.excess) and low.excess > 0 else math.log(2.0)
        return min(low.x + max(step, 2.0 * math.log1p(self.scale_tolerance)) * 1.05, x_max)

    def _excess(self, result: EvaluationResult) -> float:
        """log of the rotors' thrust-margin usage (> 0: over a limit; NaN: unknown)."""
        top, bottom = result.max_rotor_speed_rad_s, result.min_rotor_speed_rad_s
        if not (math.isfinite(top) and math.isfinite(bottom)):
            return math.nan
        return math.log(max(self.vehicle.thrust_margin_usage(top, bottom), 1e-12))


@dataclass(frozen=True)
class _Bracket:
    """One end of the search bracket: x = log(scale) and the rotor-limit excess there."""

    x: float
    excess: float


def _false_position(low: _Bracket, high: _Bracket) -> float:
    """Where the line through the ends' excesses crosses 0 (the midpoint when they do not straddle it)."""
    if math.isfinite(low.excess) and math.isfinite(high.excess) and low.excess > 0 >= high.excess:
        return low.x + low.excess * (high.x - low.x) / (low.excess - high.excess)
    return 0.5 * (low.x + high.x)


def calibrated_margin(metadata: dict[str, Any]) -> float:
    """The safety margin `mfrl calibrate` stored in a checkpoint's metadata (1 when it was never calibrated)."""
    return float(metadata.get("calibration", {}).get("safety_margin", 1.0))


def _path_is_scale_invariant(start: EndpointState | None) -> bool:
    """Whether the path's shape is the same at every time scale (true when it starts at rest; it ends at rest)."""
    return start is None or not np.any(start.as_array("start"))


def _failure_reason(attempts: list[_Attempt]) -> str:
    """Why no attempt passed."""
    slowest = max(attempts, key=lambda a: a.scale)
    if len(attempts) == 1:
        return (
            "the path goes below the ground clearance, and slowing down a trajectory that starts and ends at "
            f"rest does not change its path: {slowest.result.reason}"
        )
    return (
        f"no time scale up to {slowest.scale:g}x the policy's times passes the analytic check "
        f"({len(attempts)} checks); at {slowest.scale:g}x: {slowest.result.reason}"
    )

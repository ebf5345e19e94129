"""The certified planner: the policy proposes segment times, the safety certificate decides what may fly.

`CertifiedPlanner.plan` validates the waypoints, asks the policy for segment times (one forward pass),
solves the minimum-snap trajectory and checks it with `quadsim.certificate.TrajectoryCertificate`: rotor
limits, speed, acceleration, excursion outside the box of the start and the waypoints, ground clearance
and an optional geofence, each bounded over every whole segment. Nothing is returned as feasible without
passing it; a refusal says which constraint no candidate could meet (`PlanResult.constraint`).

How times are searched when the policy's own times fail:

* From rest (at rest at both ends) the path's shape is the same at every time scale, so every segment
  time is multiplied by one factor `s >= 1`, bracketed and refined (false position in log space) to the
  smallest factor that passes, within a relative tolerance. A shape failure (excursion, ground,
  geofence) cannot be fixed this way and goes straight to repair.
* From a moving start (a replan in the air) the start state is kept exact and every candidate is
  re-solved with it: slowing the times down changes the path (the start velocity stays), so each scale
  on a geometric grid is solved and certified as a new trajectory, shape included, and the fastest
  passing one is kept. A plan is never stretched into a shape the certificate has not seen.
* From a moving start, a first waypoint (not the goal) within `pass_radius_m` (0.5 m) or within `pass_horizon_s`
  (0.5 s) of flight at the start speed is taken as reached before anything else is tried (PX4's acceptance
  radius, `NAV_ACC_RAD`, is 2 m by default: 0.5 s at 4 m/s; passing exactly through it would take a sharp
  correction, and a waypoint the vehicle passed during the plan's lead is behind it); only when no plan past it
  passes is it planned through (`reach_close_waypoint_first=False`: taken as reached only as the first repair).
* Repair, when no scale of the policy's times passes: from a moving start, the policy's times with the first
  segment two, then four times as long (the start velocity and acceleration need time to turn); other
  allocations of the same waypoints (trapezoidal, constant speed, blends with the policy's), each searched the
  same way; then intermediate waypoints on the straight segments where the violation happened (the policy
  allocates the densified course); each certified as usual. Only when nothing passes is the plan refused.

A checkpoint may carry a `safety_margin` and a `moving_safety_margin` (written by `mfrl calibrate`): the
policy's times are slowed down by the first for plans from rest and by the second for replans from a moving
vehicle, each calibrated on flights of its own kind, before they are certified.

Tightened plans from rest (`tighten=True`, or a checkpoint calibrated with `mfrl calibrate --tighten`): the
policy chooses how the time is split among the segments and the certificate how fast the course is flown.
The first candidate is the policy's split at the boundary estimated from samples of its trajectory (a
proposal with slack is sped up, one that fails slowed down); when the certificate refuses the estimate, the
search above slows it down to the boundary. `safety_margin` is then applied to that boundary: calibrated that
way, it says how far the certificate's boundary is from the highest fidelity's. Replans from a moving start are
not tightened (their path changes with the time scale) unless `tighten_moving` is set (a checkpoint calibrated
with `--tighten-moving` says so; the shipped one is not): the estimate is then iterated on re-solved
trajectories, the start state kept, and `moving_safety_margin` is applied to the boundary found.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from mfplan.configs import DEFAULT_CHECKPOINT
from mfplan.policy import TimeAllocationPolicy, encode_validated_course, load_policy
from minsnap import EndpointState, Trajectory, TrajectoryInputError, solve_min_snap
from minsnap.allocation import constant_speed_times, trapezoidal_times
from minsnap.basis import NUM_COEFFS
from minsnap.bounds import normalised_coefficients
from minsnap.validation import as_waypoints
from quadsim.analytic import AnalyticEvaluator
from quadsim.certificate import CertificateResult, SafetyLimits, TrajectoryCertificate
from quadsim.evaluation import EvaluationResult, FeasibilityCriteria
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

CertifiedBy = Literal["policy", "time-scale search", "repair", "none"]

SHAPE_CONSTRAINTS = frozenset({"excursion", "ground clearance", "geofence"})
"""Constraints on the path's shape: from rest, no time scale changes them."""
WAYPOINT_REACHED_REPAIR = "waypoint 1 taken as reached"
"""How `PlanResult.repair` begins when a replan in motion skipped its first waypoint as reached."""

MOVING_SCALE_RATIO = 1.3
"""Ratio between consecutive scales of the moving-start grid."""

TIGHTENED_MOVING_FIRST_RATIO = 1.1
"""Tightened replans in motion: the first slower scale tried when the estimated boundary fails (then the grid)."""

MOVING_ESTIMATE_SOLVES = 4
"""Tightened replans in motion: re-solved trajectories the boundary estimate may use (each about 0.2 ms)."""

_ESTIMATE_FRACTIONS = np.linspace(0.0, 1.0, 24)
_ESTIMATE_POWERS = {order: _ESTIMATE_FRACTIONS[None, :] ** np.arange(NUM_COEFFS - order)[:, None] for order in (1, 2)}
"""The boundary estimate's samples: 24 a segment, at fixed fractions; `[order]` maps normalised coefficients of
that derivative to its values there."""

MAX_ADDED_WAYPOINTS_ROUNDS = 2
"""Rounds of intermediate waypoints the repair may add (each round splits the violating segments)."""


@dataclass(frozen=True)
class PlanResult:
    """Outcome of one `CertifiedPlanner.plan` call.

    Attributes:
        trajectory: the certified trajectory, or None when no candidate passed (never fly it then).
        segment_times_s: segment times of the certified trajectory; when refused, the last times tried.
        total_time_s: their sum.
        feasible: True exactly when `trajectory` passed the certificate.
        certified_by: "policy" (the policy's own times passed; tightened: its split passed at the estimated
            boundary, in one check), "time-scale search" (the policy's times scaled by `time_scale`, searched),
            "repair" (another allocation or added waypoints: see `repair`), or "none" (refused).
        time_scale: the factor applied to the certified allocation (1 when it passed as proposed; tightened,
            the boundary's factor times the margin, below 1 when the policy's times had slack).
        planning_time_ms: wall time of the whole `plan` call.
        policy_time_ms: wall time of encoding the course and the policy's forward pass.
        feasibility_checks: certificate checks made.
        reason: empty when feasible; otherwise why not, naming the constraint.
        analytic: the rotor-limit part of the certificate as an analytic `EvaluationResult`.
        constraint: empty when feasible; otherwise the constraint no candidate met ("speed",
            "acceleration", "excursion", "ground clearance", "geofence", "rotor speed max", ...).
        repair: how a repaired plan was made ("trapezoidal", "constant speed", "blend", "+N waypoints"), or "".
        certificate: the certificate of the returned trajectory (or of the last candidate when refused).
        waypoint_times_s: when the trajectory reaches each of the given waypoints (its knot times, less those
            of waypoints a repair added); empty when refused.
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
    constraint: str = ""
    repair: str = ""
    certificate: CertificateResult | None = None
    waypoint_times_s: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary, with the trajectory's polynomial coefficients (`Trajectory.to_dict`) or None."""
        analytic = self.analytic
        return {
            "feasible": self.feasible,
            "certified_by": self.certified_by,
            "repair": self.repair,
            "constraint": self.constraint,
            "time_scale": self.time_scale,
            "total_time_s": self.total_time_s,
            "segment_times_s": self.segment_times_s.tolist(),
            "planning_time_ms": self.planning_time_ms,
            "policy_time_ms": self.policy_time_ms,
            "feasibility_checks": self.feasibility_checks,
            "reason": self.reason,
            "max_rotor_speed_ratio": _finite_or_none(analytic.max_rotor_speed_ratio) if analytic else None,
            "certified_bounds": (
                {k: _finite_or_none(v) for k, v in self.certificate.bounds.items()} if self.certificate else None
            ),
            "trajectory": self.trajectory.to_dict() if self.trajectory is not None else None,
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class _Attempt:
    """One candidate: an allocation of some waypoints at one scale, solved and certified."""

    scale: float
    points: NDArray[np.float64]
    segment_times_s: NDArray[np.float64]
    trajectory: Trajectory | None
    certificate: CertificateResult | None
    solve_error: str = ""

    @property
    def passed(self) -> bool:
        return self.certificate is not None and self.certificate.passed

    @property
    def constraint(self) -> str:
        if self.certificate is None:
            return "minimum-snap solve"
        return self.certificate.constraint

    @property
    def shape_failure(self) -> bool:
        """Whether a shape constraint failed (from rest, no time scale can fix it)."""
        return self.certificate is not None and any(
            v.constraint in SHAPE_CONSTRAINTS for v in self.certificate.violations
        )

    @property
    def only_shape_failure(self) -> bool:
        """Whether it failed on shape constraints alone (the limits a time scale relaxes all held)."""
        certificate = self.certificate
        return (
            certificate is not None
            and bool(certificate.violations)
            and all(v.constraint in SHAPE_CONSTRAINTS for v in certificate.violations)
        )

    @property
    def reason(self) -> str:
        if self.certificate is None:
            return f"minimum-snap solve failed: {self.solve_error}"
        return self.certificate.reason


class _Budget:
    """Certificate checks left for one plan, and its wall-clock deadline."""

    def __init__(self, checks: int, deadline_s: float | None = None) -> None:
        self.left = checks
        self.deadline = None if deadline_s is None else time.perf_counter() + deadline_s
        self.timed_out = False

    def take(self) -> bool:
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.timed_out, self.left = True, 0
        if self.left <= 0:
            return False
        self.left -= 1
        return True


def planner_certificate(
    vehicle: VehicleParams | None = None,
    criteria: FeasibilityCriteria | None = None,
    limits: SafetyLimits | None = None,
) -> TrajectoryCertificate:
    """The certificate a `CertifiedPlanner` with these arguments enforces (default limits: the criteria's ground
    clearance, the vehicle's speed, acceleration and tilt)."""
    if limits is None:
        limits = SafetyLimits(ground_clearance_m=(criteria or FeasibilityCriteria()).ground_clearance_m)
    return TrajectoryCertificate(vehicle, limits)


class CertifiedPlanner:
    """Policy-proposed segment times, certified by the safety certificate (see the module docstring).

    Args:
        policy: the time-allocation policy.
        vehicle: the vehicle whose limits the certificate enforces.
        criteria: feasibility criteria (its ground clearance is used unless `limits` is given).
        max_time_scale: the slowest factor a search tries before it gives up.
        scale_tolerance: relative tolerance of the searched factor (from rest).
        max_checks: certificate checks per search of one allocation.
        safety_margin: factor (>= 1) applied to the policy's times of plans from rest before they are certified.
        moving_safety_margin: factor (>= 1) applied to the policy's times of replans from a moving start.
        limits: what the certificate bounds (speed, acceleration, excursion, ground, geofence); default:
            the vehicle's limits, a 2 m excursion and the criteria's ground clearance.
        max_total_checks: certificate checks per `plan` call, repair included (bounds the planning time).
        deadline_s: wall-clock time a `plan` call may spend searching (None: no deadline); when it runs out, the
            best candidate so far is returned if one passed, else the plan is refused and the reason says so. A
            replan that arrives late is worse than none: the vehicle has flown on meanwhile.
        pass_radius_m: from a moving start, a first waypoint this close is taken as reached (see
            `reach_close_waypoint_first`; `PlanResult.repair` says so).
        pass_horizon_s: ... and so may one the vehicle reaches within this time at its start speed (at 4 m/s,
            2 m, PX4's default acceptance radius; a replan from the reference ahead of the vehicle often starts
            just before or just after the waypoint the vehicle was approaching when the path was sent). 0.5 s
            rather than 0.3 s halves the demo mission's replans that brake below 0.5 m/s (`bench/replan_chain.py`).
        first_segment_factors: the repairs of a replan in motion that lengthen the policy's first segment by these
            factors (the other segments kept), in turn, before other allocations are tried.
        reach_close_waypoint_first: from a moving start, a first waypoint within the pass radius or horizon is
            taken as reached before a plan through it is tried (as PX4's acceptance radius does: the vehicle heads
            on to the next waypoint), and planned through only when no plan past it passes; `PlanResult.repair`
            says so either way. False: taken as reached only as a repair, when no plan through it passes (the
            behaviour before 2026-12-07's evening; `mfrl eval` plans so, as its baselines pass every waypoint).
        tighten: from rest, fly the policy's split at the certificate's boundary (estimated, certified, searched
            when the estimate fails), slowed down by `safety_margin` (see the module docstring); False: the
            policy's times (times the margin) are kept when they pass.
        tighten_moving: the same for replans from a moving start: the boundary is estimated on trajectories
            re-solved with the start state kept (the path changes with the time scale), certified, searched slower
            when the estimate fails, and slowed down by `moving_safety_margin`.
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
        limits: SafetyLimits | None = None,
        max_total_checks: int = 40,
        deadline_s: float | None = None,
        pass_radius_m: float = 0.5,
        moving_safety_margin: float = 1.0,
        tighten: bool = False,
        tighten_moving: bool = False,
        pass_horizon_s: float = 0.5,
        first_segment_factors: tuple[float, ...] = (2.0, 4.0),
        reach_close_waypoint_first: bool = True,
    ) -> None:
        for name, margin in (("safety_margin", safety_margin), ("moving_safety_margin", moving_safety_margin)):
            if not (math.isfinite(margin) and margin >= 1.0):
                raise ValueError(f"{name} must be a finite factor >= 1, got {margin}")
        if not (max_time_scale > 1.0 and 0.0 < scale_tolerance < 1.0 and max_checks >= 2 and max_total_checks >= 2):
            raise ValueError(
                "need max_time_scale > 1, 0 < scale_tolerance < 1, max_checks >= 2 and max_total_checks >= 2, got "
                f"{max_time_scale}, {scale_tolerance}, {max_checks}, {max_total_checks}"
            )
        criteria = criteria or FeasibilityCriteria()
        self.policy = policy
        self.certificate = planner_certificate(vehicle, criteria, limits)
        self.analytic = AnalyticEvaluator(self.certificate.vehicle, criteria)
        """The rotor-limit check alone (the baselines that the planner is compared with use it)."""
        self.max_time_scale = float(max_time_scale)
        self.scale_tolerance = float(scale_tolerance)
        self.max_checks = int(max_checks)
        self.max_total_checks = int(max_total_checks)
        if deadline_s is not None and not deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0 (or None), got {deadline_s}")
        self.deadline_s = deadline_s
        if not pass_radius_m >= 0:
            raise ValueError(f"pass_radius_m must be >= 0, got {pass_radius_m}")
        self.pass_radius_m = float(pass_radius_m)
        if not (math.isfinite(pass_horizon_s) and pass_horizon_s >= 0):
            raise ValueError(f"pass_horizon_s must be finite and >= 0, got {pass_horizon_s}")
        self.pass_horizon_s = float(pass_horizon_s)
        if not all(math.isfinite(f) and f > 1.0 for f in first_segment_factors):
            raise ValueError(f"first_segment_factors must be finite factors > 1, got {first_segment_factors}")
        self.first_segment_factors = tuple(float(f) for f in first_segment_factors)
        self.reach_close_waypoint_first = bool(reach_close_waypoint_first)
        self.safety_margin = float(safety_margin)
        self.moving_safety_margin = float(moving_safety_margin)
        self.tighten = bool(tighten)
        self.tighten_moving = bool(tighten_moving)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path = DEFAULT_CHECKPOINT,
        vehicle: VehicleParams | None = None,
        criteria: FeasibilityCriteria | None = None,
        **options: Any,
    ) -> CertifiedPlanner:
        """A planner with the policy of a checkpoint (`mfplan.policy.MissingCheckpointError` if there is none,
        `mfplan.policy.PolicyCheckpointError` for a file that is not a current policy checkpoint), and the
        checkpoint's calibrated `safety_margin` and `moving_safety_margin` (and whether they were calibrated for
        tightened plans, `tighten` and `tighten_moving`) unless they are given."""
        policy, metadata = load_policy(path)
        options.setdefault("safety_margin", calibrated_margin(metadata))
        options.setdefault("moving_safety_margin", calibrated_margin(metadata, moving=True))
        options.setdefault("tighten", calibrated_tightened(metadata))
        options.setdefault("tighten_moving", calibrated_tightened(metadata, moving=True))
        return cls(policy, vehicle, criteria, **options)

    @property
    def vehicle(self) -> VehicleParams:
        """The vehicle the certificate enforces."""
        return self.certificate.vehicle

    @property
    def limits(self) -> SafetyLimits:
        """What the certificate bounds."""
        return self.certificate.limits

    def plan(self, waypoints: Any, start: EndpointState | None = None) -> PlanResult:
        """A certified minimum-snap trajectory through `N x 3` or `N x 4` waypoints (ENU m, yaw rad), ending at rest.

        Args:
            waypoints: the course; the first waypoint is where the vehicle is now.
            start: the vehicle's state at the first waypoint (default: at rest); kept exact.

        Raises:
            TrajectoryInputError: waypoints or start state that cannot define a trajectory (the message says why).
        """
        began = time.perf_counter()
        points = as_waypoints(waypoints)
        start_array = np.zeros((3, 4)) if start is None else start.as_array("start")
        refusal = self._waypoint_refusal(points) or self._start_refusal(start_array)
        if refusal is not None:
            constraint, reason = refusal
            return _refused_before_solving(points, constraint, reason, began)
        budget = _Budget(self.max_total_checks, self.deadline_s)
        close = self._close_first_waypoint(points, start_array) if self.reach_close_waypoint_first else ""
        planned = np.vstack([points[:1], points[2:]]) if close else points  # a close waypoint taken as reached first
        proposal = self._propose(planned, start_array)
        policy_ms = 1e3 * (time.perf_counter() - began)
        attempts = self._search(planned, proposal, start, budget)
        repair = f"{WAYPOINT_REACHED_REPAIR} ({close})" if close else ""
        if close and not any(a.passed for a in attempts):  # no plan past it passes: through it, then the repairs
            proposal, repair = self._propose(points, start_array), ""
            attempts = self._search(points, proposal, start, budget)
        certified_by: CertifiedBy = "policy" if attempts[0].passed else "time-scale search"
        if not any(a.passed for a in attempts):
            for label, repaired in self._repairs(points, proposal, start, attempts, budget, reached_tried=bool(close)):
                attempts.extend(repaired)
                if any(a.passed for a in repaired):
                    certified_by, repair = "repair", label
                    break
        chosen = None
        at_rest = _at_rest(start)
        margin = self.safety_margin if at_rest else self.moving_safety_margin
        if self._tightened(at_rest) and margin > 1.0 and any(a.passed for a in attempts):
            chosen = self._slowed_by_margin(min((a for a in attempts if a.passed), key=_total_time), start, margin)
            attempts.append(chosen)
        result = self._result(points, attempts, certified_by, repair, began, policy_ms, chosen)
        if budget.timed_out and not result.feasible:
            reason = f"{result.reason} (the planning deadline of {1e3 * (self.deadline_s or 0.0):.0f} ms ran out)"
            result = dataclasses.replace(result, reason=reason)
        return result

    def certify(
        self, waypoints: Any, segment_times_s: NDArray[np.float64], start: EndpointState | None = None
    ) -> PlanResult:
        """Certify given segment times: check them, and search their time scale if they fail (no repair).

        The trainer uses this to reward a sampled allocation with the time the planner would deliver.
        """
        began = time.perf_counter()
        points = as_waypoints(waypoints)
        proposal = np.asarray(segment_times_s, dtype=np.float64)
        attempts = self._search(points, proposal, start, _Budget(self.max_checks))
        certified_by: CertifiedBy = "policy" if attempts[0].passed else "time-scale search"
        return self._result(points, attempts, certified_by, "", began, 0.0)

    def _waypoint_refusal(self, points: NDArray[np.float64]) -> tuple[str, str] | None:
        """(constraint, reason) when a waypoint itself breaks a shape limit: no trajectory through it can pass."""
        clearance = self.limits.ground_clearance_m
        low = int(np.argmin(points[:, 2]))
        if points[low, 2] < clearance:
            which = "the start (waypoint 0)" if low == 0 else f"waypoint {low}"
            return "ground clearance", (
                f"refused: {which} is at z={points[low, 2]:.2f} m, below the ground clearance {clearance} m"
            )
        fence = self.limits.geofence
        if fence is not None:
            excess = fence.excess_m(points[:, :3])
            worst = int(np.argmax(excess))
            if excess[worst] > 0.0:
                return "geofence", f"refused: waypoint {worst} is {excess[worst]:.2f} m outside the geofence"
        return None

    def _start_refusal(self, start_array: NDArray[np.float64]) -> tuple[str, str] | None:
        """(constraint, reason) when the start state itself breaks a limit: every trajectory from it would."""
        certificate = self.certificate
        speed = float(np.linalg.norm(start_array[0, :3]))  # rows: velocity, acceleration, jerk
        if speed > certificate.max_speed_m_s:
            return (
                "speed",
                f"refused: the start speed {speed:.2f} m/s is above the limit {certificate.max_speed_m_s} m/s",
            )
        accel = start_array[1, :3]
        if float(np.linalg.norm(accel)) > certificate.max_acceleration_m_s2:
            return "acceleration", (
                f"refused: the start acceleration {np.linalg.norm(accel):.2f} m/s^2 is above the limit "
                f"{certificate.max_acceleration_m_s2} m/s^2"
            )
        tilt = math.degrees(math.atan2(math.hypot(accel[0], accel[1]), accel[2] + GRAVITY_M_S2))
        if tilt > certificate.max_tilt_deg:
            return (
                "tilt",
                f"refused: the start acceleration tilts the thrust {tilt:.1f} deg, above the limit "
                f"{certificate.max_tilt_deg} deg",
            )
        return None

    # Candidates ----------------------------------------------------------------------------------------------
    def _propose(self, points: NDArray[np.float64], start_array: NDArray[np.float64]) -> NDArray[np.float64]:
        """The policy's segment times, slowed by the calibrated margin of plans from rest or of moving replans."""
        encoding = encode_validated_course(points, start_array[0, :3], start_array[1, :3])
        proposal = self.policy.act(encoding, deterministic=True)
        at_rest = not np.any(start_array)
        if self._tightened(at_rest):  # tightened: the margin comes last
            return proposal
        return proposal * (self.safety_margin if at_rest else self.moving_safety_margin)

    def _tightened(self, at_rest: bool) -> bool:
        """Whether plans of this kind (from rest, or from a moving start) are flown at the certificate's boundary."""
        return self.tighten if at_rest else self.tighten_moving

    def _slowed_by_margin(self, boundary: _Attempt, start: EndpointState | None, margin: float) -> _Attempt:
        """A tightened plan slowed down by its safety margin and certified again (from rest a slower plan of the
        same shape passes, so the check guards against numerical edge cases; from a moving start the re-solved
        path changes, and a slowed plan that fails is refused: the vehicle keeps its current plan)."""
        split = boundary.segment_times_s / boundary.scale
        base = None
        if _at_rest(start) and boundary.trajectory is not None:
            base = boundary.trajectory.time_scaled(1.0 / boundary.scale)
        return self._attempt(boundary.points, split, boundary.scale * margin, start, base)

    def _attempt(
        self,
        points: NDArray[np.float64],
        times: NDArray[np.float64],
        scale: float,
        start: EndpointState | None,
        base: Trajectory | None = None,
    ) -> _Attempt:
        """Solve and certify `times * scale` through `points` (the excursion box is that of `points`).

        `base`: the rest-to-rest solution of `times` itself; the attempt is then its time-scaled copy (exactly
        the solution of the scaled times from rest: `Trajectory.time_scaled`), with no new solve."""
        scaled = times * scale
        if base is not None:
            trajectory = base.time_scaled(scale)
            return _Attempt(scale, points, scaled, trajectory, self.certificate.check(trajectory))
        try:
            trajectory = solve_min_snap(points, scaled, start)
        except TrajectoryInputError as exc:  # e.g. segment times so uneven that the system is singular
            return _Attempt(scale, points, scaled, None, None, str(exc))
        return _Attempt(scale, points, scaled, trajectory, self.certificate.check(trajectory))

    @staticmethod
    def _solved(
        points: NDArray[np.float64], times: NDArray[np.float64], start: EndpointState | None
    ) -> Trajectory | None:
        """The minimum-snap trajectory of `times`, or None when it cannot be solved (an attempt says why)."""
        try:
            return solve_min_snap(points, times, start)
        except TrajectoryInputError:
            return None

    def _search(
        self,
        points: NDArray[np.float64],
        times: NDArray[np.float64],
        start: EndpointState | None,
        budget: _Budget,
    ) -> list[_Attempt]:
        """Attempts of one allocation: as proposed (tightened: at its estimated boundary), then its time scale
        searched when that fails (at least one attempt)."""
        budget.take()
        at_rest = _at_rest(start)
        base = self._solved(points, times, start) if at_rest else None  # from rest every scale is a copy of it
        scale = 1.0
        if self._tightened(at_rest):
            scale = self._estimated_boundary(base) if at_rest else self._estimated_moving_boundary(points, times, start)
        attempts = [self._attempt(points, times, scale, start, base)]
        if attempts[0].passed:
            return attempts
        if at_rest:
            self._search_from_rest(points, times, start, attempts, budget, base)
        else:
            self._search_moving(points, times, start, attempts, budget)
        return attempts

    def _search_from_rest(
        self,
        points: NDArray[np.float64],
        times: NDArray[np.float64],
        start: EndpointState | None,
        attempts: list[_Attempt],
        budget: _Budget,
        base: Trajectory | None,
    ) -> None:
        """Append attempts until the smallest passing scale is bracketed to the tolerance (or checks run out);
        `base` is the rest-to-rest solution of `times` (None: solve each scale).

        Works on x = log(scale) with a bracket [failing, passing]. The next scale comes from the excess of
        the bracket's ends over the limits that a time scale relaxes (false position, Illinois variant),
        aimed just above the estimated boundary so that a good estimate closes the bracket in two checks.
        A shape violation stops the search: from rest the path is the same at every scale.
        """
        first = attempts[0]
        if first.shape_failure:
            return
        tolerance = math.log1p(self.scale_tolerance)
        x_max = math.log(self.max_time_scale)
        low = _Bracket(math.log(first.scale), self._excess(first))
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
            if not budget.take():
                return
            attempt = self._attempt(points, times, math.exp(x), start, base)
            attempts.append(attempt)
            if attempt.shape_failure:
                return  # cannot happen from rest unless numerically on the edge: nothing to gain by going on
            excess = self._excess(attempt)
            if attempt.passed:
                if high is not None and retained == "low":
                    low = _Bracket(low.x, 0.5 * low.excess)
                high, retained = _Bracket(x, excess), "low"
            else:
                if high is None and x >= x_max:
                    return
                if retained == "high" and high is not None:
                    high = _Bracket(high.x, 0.5 * high.excess)
                low, retained = _Bracket(x, excess), "high"

    def _search_moving(
        self,
        points: NDArray[np.float64],
        times: NDArray[np.float64],
        start: EndpointState | None,
        attempts: list[_Attempt],
        budget: _Budget,
    ) -> None:
        """From a moving start: each scale of a geometric grid above the first attempt's re-solved with the start
        kept and certified whole; stop at the first that passes, then bisect once (geometrically) towards the last
        failing scale. Tightened, the first step is finer, and the policy's own times (scale 1, the untightened
        planner's first candidate) are tried on the way up from an estimate faster than them."""
        scale = attempts[0].scale
        ladder = []  # the first scales to try, then the grid
        if scale != 1.0:
            ladder = [scale * TIGHTENED_MOVING_FIRST_RATIO] if scale * TIGHTENED_MOVING_FIRST_RATIO < 1.0 else []
            ladder += [1.0] if scale < 1.0 else []
        while len(attempts) < self.max_checks and scale < self.max_time_scale:
            ratio = TIGHTENED_MOVING_FIRST_RATIO if scale == attempts[0].scale != 1.0 else MOVING_SCALE_RATIO
            previous, scale = scale, ladder.pop(0) if ladder else min(scale * ratio, self.max_time_scale)
            if not budget.take():
                return
            attempt = self._attempt(points, times, scale, start)
            attempts.append(attempt)
            if attempt.shape_failure and attempt.only_shape_failure and attempts[-2].only_shape_failure:
                return  # slower only keeps the start velocity longer: the path swings wider, not back in
            if attempt.passed:
                middle = math.sqrt(scale * previous)
                if len(attempts) < self.max_checks and budget.take():
                    attempts.append(self._attempt(points, times, middle, start))
                return

    def _repairs(
        self,
        points: NDArray[np.float64],
        proposal: NDArray[np.float64],
        start: EndpointState | None,
        failed: list[_Attempt],
        budget: _Budget,
        reached_tried: bool = False,
    ) -> Iterator[tuple[str, list[_Attempt]]]:
        """From a moving start, a first waypoint within `pass_radius_m` (or `pass_horizon_s` at the start speed)
        taken as reached (unless `reached_tried`: it was, first), then the first segment slower; other allocations
        of the same waypoints; then added intermediate waypoints; each searched as usual."""
        start_array = np.zeros((3, 4)) if start is None else start.as_array("start")
        moving = bool(np.any(start_array))
        close = self._close_first_waypoint(points, start_array)
        if close and not reached_tried and budget.left > 0:
            # A moving vehicle this close to its next waypoint has reached it (an acceptance radius, as PX4's
            # NAV_ACC_RAD): a sharp correction to pass exactly through it is what fails; go on to the next.
            rest = np.vstack([points[:1], points[2:]])
            yield (
                f"{WAYPOINT_REACHED_REPAIR} ({close})",
                self._search(rest, self._propose(rest, start_array), start, budget),
            )
        for factor in self.first_segment_factors if moving and points.shape[0] > 2 else ():
            # The start velocity and acceleration are fixed: a first segment too short for them to be turned
            # towards the next waypoints fails at every common scale (slowing all segments keeps its share).
            if budget.left <= 0:
                break
            retimed = proposal.copy()
            retimed[0] *= factor
            yield f"first segment {factor:g}x slower", self._search(points, retimed, start, budget)
        speed = 0.5 * self.certificate.max_speed_m_s
        accel = 0.5 * self.certificate.max_acceleration_m_s2
        trapezoid = trapezoidal_times(points, speed, accel)
        ratio = proposal.sum() / trapezoid.sum()
        for label, times in (
            ("trapezoidal", trapezoid),
            ("blend", np.sqrt(proposal * trapezoid * ratio)),
            ("constant speed", constant_speed_times(points, 0.5 * speed)),
        ):
            if budget.left <= 0:
                return
            yield label, self._search(points, times, start, budget)
        dense = points
        attempts = failed
        for round_index in range(MAX_ADDED_WAYPOINTS_ROUNDS):
            if budget.left <= 0:
                return
            worst = min(attempts, key=lambda a: a.scale if a.trajectory is not None else math.inf)
            dense = _split_violating_segments(dense, worst, all_segments=round_index > 0)
            times = self._propose(dense, start_array)
            attempts = self._search(dense, times, start, budget)
            yield f"+{dense.shape[0] - points.shape[0]} waypoints", attempts

    def _close_first_waypoint(self, points: NDArray[np.float64], start_array: NDArray[np.float64]) -> str:
        """How far the first waypoint is (not the goal), when the start moves and it is within `pass_radius_m` or
        `pass_horizon_s` of flight at the start speed: it may be taken as reached; "" otherwise."""
        if points.shape[0] <= 2 or not np.any(start_array):
            return ""
        ahead = float(np.linalg.norm(points[1, :3] - points[0, :3]))
        speed = float(np.linalg.norm(start_array[0, :3]))
        if ahead > max(self.pass_radius_m, speed * self.pass_horizon_s):
            return ""
        return f"{ahead:.2f} m away at {speed:.1f} m/s"

    # Result ------------------------------------------------------------------------------------------------
    def _result(
        self,
        points: NDArray[np.float64],
        attempts: list[_Attempt],
        certified_by: CertifiedBy,
        repair: str,
        began: float,
        policy_ms: float,
        chosen: _Attempt | None = None,
    ) -> PlanResult:
        """The plan: the fastest passing attempt (or `chosen`, a tightened plan slowed by the margin, which must
        pass), else a refusal naming the constraint."""
        passing = [a for a in attempts if a.passed] if chosen is None else [chosen] if chosen.passed else []
        if passing:
            best = min(passing, key=_total_time)
            if certified_by in ("policy", "time-scale search"):  # tightened or slowed: the scale was searched
                certified_by = "policy" if best is attempts[0] else "time-scale search"
            reason, constraint = "", ""
        else:
            failed = attempts if chosen is None else [chosen]
            best = failed[-1]
            certified_by = "none"
            constraint = _most_common_constraint(failed)
            reason = _failure_reason(failed, constraint)
        given = _given_knots(points, best.points) if passing else np.zeros(0, dtype=np.intp)
        return PlanResult(
            waypoint_times_s=best.trajectory.knot_times_s[given] if passing and best.trajectory else np.zeros(0),
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
            analytic=self._analytic(best),
            constraint=constraint,
            repair=repair,
            certificate=best.certificate,
        )

    def _analytic(self, attempt: _Attempt) -> EvaluationResult:
        """The rotor-limit part of a certificate, in the analytic fidelity's result record."""
        vehicle = self.vehicle
        certificate = attempt.certificate
        if certificate is None:
            return EvaluationResult.failure("analytic", vehicle, attempt.reason, 0.0)
        return EvaluationResult(
            fidelity="analytic",
            feasible=certificate.passed,
            max_position_error_m=0.0,
            max_yaw_error_rad=0.0,
            max_rotor_speed_rad_s=certificate.bounds.get("max_rotor_speed_rad_s", math.nan),
            rotor_speed_limit_rad_s=vehicle.rotor_speed_max_rad_s,
            min_rotor_speed_rad_s=certificate.bounds.get("min_rotor_speed_rad_s", math.nan),
            wall_time_s=certificate.wall_time_s,
            reason=certificate.reason,
            duration_s=float(attempt.segment_times_s.sum()),
        )

    def _extrapolate(self, low: _Bracket, x_max: float) -> float:
        """Next x while nothing has passed: where the excess, falling as 4 log(scale) (snap ~ 1/s^4), reaches 0."""
        step = low.excess / 4.0 if math.isfinite(low.excess) and low.excess > 0 else math.log(2.0)
        return min(low.x + max(step, 2.0 * math.log1p(self.scale_tolerance)) * 1.05, x_max)

    def _estimated_boundary(self, trajectory: Trajectory | None) -> float:
        """The time scale of a trajectory from rest a tolerance above the estimated boundary of the certificate.

        From rest, times scaled by f give the same path with velocity / f and acceleration / f^2, so the scale at
        which speed, acceleration, tilt (cos t |a_xy| - sin t (a_z + g) <= 0) and the singular bound
        (a_z + g > 0) reach their limits is solved for on 24 samples a segment of the trajectory of `times`. The
        rotors are not estimated and samples miss the peaks between them: the certificate decides, and the
        search slows a failing estimate down. 1 when the trajectory could not be solved (None: the attempt says
        why).
        """
        factor = None if trajectory is None else self._boundary_factor(trajectory)
        if factor is None:
            return 1.0
        return self._clamped_scale(factor * (1.0 + self.scale_tolerance))

    def _estimated_moving_boundary(
        self, points: NDArray[np.float64], times: NDArray[np.float64], start: EndpointState | None
    ) -> float:
        """From a moving start, the time scale of `times` a tolerance above the estimated boundary.

        The start state is kept, so the path changes with the scale and the from-rest estimate is only a step:
        it is iterated on re-solved trajectories (at most `MOVING_ESTIMATE_SOLVES`, each step within a factor 2)
        until it settles within half the tolerance, or a step makes it no better. The fastest scale whose samples
        were inside the limits is kept; when none was, the last step's scale, or 1 (the policy's own times,
        searched as if untightened) when a step made it no better (a sharp turn through a waypoint just ahead gets
        worse the slower it is flown). The certificate decides.
        """
        tolerance = 0.5 * math.log1p(self.scale_tolerance)
        scale, inside = 1.0, math.inf  # inside: the fastest scale whose samples were within the limits (+ tolerance)
        previous, lost = math.nan, False
        for _ in range(MOVING_ESTIMATE_SOLVES):
            trajectory = self._solved(points, times * scale, start)
            factor = None if trajectory is None else self._boundary_factor(trajectory)
            if factor is None:
                lost = True
                break
            excess = math.log(factor)
            if excess <= tolerance:
                inside = min(inside, scale)
            if abs(excess) <= tolerance:
                break
            if excess * previous > 0.0 and abs(excess) >= abs(previous):
                lost = True  # the step made it no better (e.g. slowing down before a waypoint just ahead)
                break
            previous = excess
            scale = self._clamped_scale(scale * min(max(factor, 0.5), 2.0))
        if math.isfinite(inside):
            return self._clamped_scale(inside * (1.0 + self.scale_tolerance))
        # Still outside: the last step's scale while the steps were closing in; else the policy's own times,
        # searched as if untightened.
        return 1.0 if lost else self._clamped_scale(scale * (1.0 + self.scale_tolerance))

    def _clamped_scale(self, scale: float) -> float:
        """A scale within [1 / max_time_scale, max_time_scale] (1 when not finite)."""
        return min(max(scale, 1.0 / self.max_time_scale), self.max_time_scale) if math.isfinite(scale) else 1.0

    def _boundary_factor(self, trajectory: Trajectory) -> float | None:
        """The factor by which the trajectory's times would have to be scaled, from rest, for the sampled speed,
        acceleration, tilt and singular bounds to reach their limits (> 1: over them); None when not finite."""
        # Samples at fixed fractions of every segment: each derivative is its normalised coefficients times one
        # fixed matrix of powers (`M x 3 x 24`).
        velocity = normalised_coefficients(trajectory, 1)[:, :3] @ _ESTIMATE_POWERS[1]
        accel = normalised_coefficients(trajectory, 2)[:, :3] @ _ESTIMATE_POWERS[2]
        theta = math.radians(self.certificate.max_tilt_deg)
        tilt = math.cos(theta) * np.hypot(accel[:, 0], accel[:, 1]) - math.sin(theta) * accel[:, 2]
        factor = max(
            math.sqrt(float(np.square(velocity).sum(axis=1).max())) / self.certificate.max_speed_m_s,
            math.sqrt(math.sqrt(float(np.square(accel).sum(axis=1).max())) / self.certificate.max_acceleration_m_s2),
            math.sqrt(max(float(tilt.max()), 0.0) / (math.sin(theta) * GRAVITY_M_S2)),
            math.sqrt(max(-float(accel[:, 2].min()), 0.0) / GRAVITY_M_S2),
        )
        return factor if math.isfinite(factor) and factor > 0.0 else None

    def _excess(self, attempt: _Attempt) -> float:
        """How far over the limits that a time scale relaxes, in units of 4 log(scale) (NaN: unknown).

        Rotor thrust-margin usage falls roughly as 1/s^4, acceleration as 1/s^2, speed as 1/s: each
        is brought to the rotor's units so that one false-position step serves them all.
        """
        certificate = attempt.certificate
        if certificate is None:
            return math.nan
        bounds, vehicle = certificate.bounds, self.vehicle
        top = bounds.get("max_rotor_speed_rad_s", math.nan)
        bottom = bounds.get("min_rotor_speed_rad_s", math.nan)
        speed = bounds.get("max_speed_m_s", math.nan)
        accel = bounds.get("max_acceleration_m_s2", math.nan)
        terms = []
        if math.isfinite(top) and math.isfinite(bottom):
            terms.append(math.log(max(vehicle.thrust_margin_usage(top, bottom), 1e-12)))
        speed_limit, accel_limit = self.certificate.max_speed_m_s, self.certificate.max_acceleration_m_s2
        if math.isfinite(speed) and speed > 0:
            terms.append(4.0 * math.log(speed / speed_limit))
        if math.isfinite(accel) and accel > 0:
            terms.append(2.0 * math.log(accel / accel_limit))
        tilt = bounds.get("tilt_excess_m_s2", math.nan)
        if math.isfinite(tilt):  # an acceleration excess over the tilt cone (<= 0: inside); accelerations go as 1/s^2
            terms.append(2.0 * math.log1p(max(tilt, -0.5 * GRAVITY_M_S2) / GRAVITY_M_S2))
        return max(terms) if terms else math.nan


@dataclass(frozen=True)
class _Bracket:
    """One end of the search bracket: x = log(scale) and the excess there."""

    x: float
    excess: float


def _false_position(low: _Bracket, high: _Bracket) -> float:
    """Where the line through the ends' excesses crosses 0 (the midpoint when they do not straddle it)."""
    if math.isfinite(low.excess) and math.isfinite(high.excess) and low.excess > 0 >= high.excess:
        return low.x + low.excess * (high.x - low.x) / (low.excess - high.excess)
    return 0.5 * (low.x + high.x)


def _split_violating_segments(
    points: NDArray[np.float64], attempt: _Attempt, all_segments: bool
) -> NDArray[np.float64]:
    """The waypoints with the midpoint of straight segments added: the segment where the attempt's first
    violation happened and its neighbours, or every segment."""
    count = points.shape[0] - 1
    if all_segments or attempt.trajectory is None or attempt.certificate is None or not attempt.certificate.violations:
        chosen = set(range(count))
    else:
        when = attempt.certificate.violations[0].time_s
        index = int(attempt.trajectory.segment_index(np.array([when]))[0]) if math.isfinite(when) else 0
        chosen = {i for i in (index - 1, index, index + 1) if 0 <= i < count}
    rows = []
    for i in range(count):
        rows.append(points[i])
        if i in chosen:
            rows.append(0.5 * (points[i] + points[i + 1]))
    rows.append(points[-1])
    return np.asarray(rows)


def _refused_before_solving(points: NDArray[np.float64], constraint: str, reason: str, began: float) -> PlanResult:
    """The result of a plan refused from its waypoints alone (nothing solved, nothing checked)."""
    return PlanResult(
        trajectory=None,
        segment_times_s=np.zeros(points.shape[0] - 1),
        total_time_s=0.0,
        feasible=False,
        certified_by="none",
        time_scale=1.0,
        planning_time_ms=1e3 * (time.perf_counter() - began),
        policy_time_ms=0.0,
        feasibility_checks=0,
        reason=reason,
        analytic=None,
        constraint=constraint,
    )


def _given_knots(given: NDArray[np.float64], used: NDArray[np.float64]) -> NDArray[np.intp]:
    """Index in `used` (the given waypoints, with repair's added ones between them or the first goal taken as
    reached) of each given waypoint; a waypoint taken as reached gets the start's index (reached at t = 0)."""
    if used.shape[0] == given.shape[0] and np.array_equal(used, given):
        return np.arange(given.shape[0])
    indices, j = [], 0
    for point in given:
        k = j
        while k < used.shape[0] and not np.array_equal(used[k], point):
            k += 1
        if k == used.shape[0]:  # not flown through: taken as reached where the plan starts
            indices.append(0)
            continue
        indices.append(k)
        j = k
    return np.asarray(indices, dtype=np.intp)


def calibrated_margin(metadata: dict[str, Any], moving: bool = False) -> float:
    """The safety margin `mfrl calibrate` stored in a checkpoint's metadata for plans from rest (or, `moving`,
    for replans from a moving start); 1 when it was never calibrated (or, moving, could not be: the calibration's
    `moving_calibration_problem` says why; the certificate's search still slows such replans down as it must)."""
    margin = metadata.get("calibration", {}).get("moving_safety_margin" if moving else "safety_margin")
    return 1.0 if margin is None else float(margin)


def calibrated_tightened(metadata: dict[str, Any], moving: bool = False) -> bool:
    """Whether a checkpoint's margins were calibrated for tightened plans from rest (`mfrl calibrate --tighten`),
    or, `moving`, for tightened replans from a moving start (calibrations without `tighten_moving` did not)."""
    return bool(metadata.get("calibration", {}).get("tighten_moving" if moving else "tighten", False))


def _total_time(attempt: _Attempt) -> float:
    return float(attempt.segment_times_s.sum())


def _at_rest(start: EndpointState | None) -> bool:
    """Whether the plan starts at rest (then its shape is the same at every time scale; it ends at rest)."""
    return start is None or not np.any(start.as_array("start"))


def _constraint_counts(attempts: list[_Attempt]) -> dict[str, int]:
    """How many attempts broke each constraint (an attempt may break several)."""
    counts: dict[str, int] = {}
    for attempt in attempts:
        names = {v.constraint for v in attempt.certificate.violations} if attempt.certificate else {attempt.constraint}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _most_common_constraint(attempts: list[_Attempt]) -> str:
    """The constraint that the most attempts broke (the first seen on a tie)."""
    counts = _constraint_counts(attempts)
    return max(counts, key=lambda name: counts[name]) if counts else ""


def _failure_reason(attempts: list[_Attempt], constraint: str) -> str:
    """Why no attempt passed, naming the constraint (and the others that were broken, with counts)."""
    counts = _constraint_counts(attempts)
    broken = ", ".join(f"{name} in {count}" for name, count in sorted(counts.items(), key=lambda kv: -kv[1]))
    example = next((a for a in reversed(attempts) if a.constraint == constraint), attempts[-1])
    return (
        f"refused: no candidate meets the {constraint} constraint ({len(attempts)} candidates, up to "
        f"{max(a.scale for a in attempts):g}x the proposed times; broken: {broken}); for example: {example.reason}"
    )

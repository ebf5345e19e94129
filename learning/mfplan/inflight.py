"""Chains of in-air replans as the demo's waypoint mission makes them, without ROS.

The demo's mission (`ros2_ws/src/mfrl/mfrl/waypoint_mission.py`) sends a course, then every `interval_s` of the
plan being flown moves the waypoints beyond the one being approached (horizontally, seeded) and sends the rest
again; the replanner plans from the reference of the plan flown, `lead_s` ahead of the path's arrival (its
planning deadline plus a delivery margin), with the start's velocity, acceleration and jerk kept. Each move is
replanned from the last plan served, so a replan starts wherever the previous one took the vehicle: often just
before, or just past, the waypoint it was approaching, at several metres a second. A refused move keeps the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mfplan.planner import WAYPOINT_REACHED_REPAIR, CertifiedPlanner, PlanResult
from minsnap import EndpointState, Trajectory
from quadsim.certificate import SafetyLimits

REPLANNER_LIMITS = SafetyLimits(max_excursion_m=2.0, ground_clearance_m=0.5)
"""The replanner node's default certificate limits (`mfrl.configs.ReplannerConfig`), for planners that stand in
for it."""


@dataclass(frozen=True)
class MissionSettings:
    """The demo mission's moves (its defaults: `mfrl.configs.WaypointMissionConfig`) and the replanner's lead."""

    moves: int = 3
    """Moves of the waypoints ahead, one after another."""
    interval_s: float = 1.5
    """Time into the plan flown at which a move is sent ..."""
    jitter_s: float = 0.3
    """... plus a uniform delay up to this (the node's timing varies with load)."""
    displacement_m: float = 1.0
    """How far each moved waypoint goes (horizontally)."""
    lead_s: float = 0.27
    """How far ahead of the path's arrival the replan starts (the node's default deadline, 0.25 s, + 20 ms)."""


@dataclass(frozen=True)
class Replan:
    """One move and its replan."""

    sent_s: float
    """When the move was sent, in the time of the plan being flown."""
    points: NDArray[np.float64]
    """The waypoints planned through: the start (the reference `lead_s` later), then the course ahead, moved."""
    start: EndpointState
    result: PlanResult
    start_speed_m_s: float


def fly_moves(
    planner: CertifiedPlanner, course: NDArray[np.float64], seed: int, settings: MissionSettings | None = None
) -> list[Replan]:
    """Plan `course` from rest, then make the mission's moves one after another (see the module docstring).

    Raises:
        ValueError: the course itself is refused (the mission would not start).
    """
    settings = settings or MissionSettings()
    rng = np.random.default_rng(seed)
    first = planner.plan(course)
    if not first.feasible or first.trajectory is None:
        raise ValueError(f"the course is refused: {first.reason}")
    plan: Trajectory = first.trajectory
    replans = []
    for _ in range(settings.moves):
        sent = settings.interval_s + rng.uniform(0.0, settings.jitter_s)
        approaching = int(np.searchsorted(plan.knot_times_s, sent, side="right"))
        if sent + settings.lead_s >= 0.95 * plan.duration_s or approaching >= plan.waypoints.shape[0]:
            break
        d = plan.derivatives([sent + settings.lead_s], max_order=3)[:, 0]
        ahead = plan.waypoints[approaching:].copy()  # the waypoint approached and the goal stay put
        angles = rng.uniform(0.0, 2.0 * np.pi, max(ahead.shape[0] - 2, 0))
        ahead[1:-1, :2] += settings.displacement_m * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        points = np.vstack([d[0], ahead])
        start = EndpointState(velocity=d[1, :3], acceleration=d[2, :3], jerk=d[3, :3])
        result = planner.plan(points, start)
        replans.append(Replan(sent, points, start, result, float(np.linalg.norm(d[1, :3]))))
        if result.feasible and result.trajectory is not None:
            plan = result.trajectory
    return replans


def min_speed_after(result: PlanResult, window_s: float = 1.5, samples: int = 61) -> float:
    """The lowest speed of a served replan within `window_s` of its start (a replan that brakes to a near stop
    shows here; the demo's summary reports the same figure from the flight). NaN when refused."""
    if not result.feasible or result.trajectory is None:
        return float("nan")
    return min_speed_within(result.trajectory, window_s, samples)


def min_speed_within(trajectory: Trajectory, window_s: float = 1.5, samples: int = 61) -> float:
    """The lowest speed of `trajectory` over its first `window_s` seconds (`samples` evenly spaced samples)."""
    times = np.linspace(0.0, min(window_s, trajectory.duration_s), samples)
    return float(np.linalg.norm(trajectory.derivatives(times, max_order=1)[1, :, :3], axis=1).min())


@dataclass(frozen=True)
class ReferenceReplan:
    """The time-optimal reference's plan for one served replan: same waypoints, start and certificate."""

    min_speed_m_s: float
    """Its lowest speed within 1.5 s of the start (NaN when the reference finds no certified plan)."""
    total_time_s: float
    """Its duration (NaN when none)."""


def reference_replan(planner: CertifiedPlanner, replan: Replan) -> ReferenceReplan:
    """The reference optimiser (`mfplan.evaluation.reference_plan`: the shortest certified times from the baseline's
    split, slow) through the waypoints the served replan flies through (its first waypoint dropped when the planner
    took it as reached), from its start, under `planner`'s certificate at its boundary: whether a near stop is forced
    by those waypoints and the limits, or is the allocation's."""
    from mfplan.evaluation import reference_plan  # evaluation imports the planner stack: only when asked

    points = replan.points
    if replan.result.repair.startswith(WAYPOINT_REACHED_REPAIR):
        points = np.vstack([points[:1], points[2:]])
    certificate = planner.certificate
    trajectory = reference_plan(points, replan.start, lambda t: certificate.check(t).passed)
    if trajectory is None:
        return ReferenceReplan(float("nan"), float("nan"))
    return ReferenceReplan(min_speed_within(trajectory), float(trajectory.duration_s))

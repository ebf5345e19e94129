"""Benchmark of chained in-air replans: how many of the demo mission's moves the planner serves, and how they fly.

Prints one JSON object to stdout (progress goes to stderr). The demo's mission is flown without ROS
(`mfplan.inflight.fly_moves`: the built-in course, three 1 m moves of the waypoints ahead, each replanned from the
last plan's reference 0.27 s ahead, as the replanner node does) at the node's limits (2 m excursion, 0.5 m ground
clearance), over `--seeds` seeds, by six planners from the shipped checkpoint (and, with `--candidate PATH`, a
seventh: that checkpoint's planner as it is calibrated, `candidate`):

* `shipped` and `tightened_in_motion` (replans in motion flown at the certificate's boundary, margin 1.0: the
  option that `mfrl calibrate --tighten-moving` writes);
* each with today's repairs and with the repairs before 2026-12-07 (`before`: the pass radius a fixed 0.5 m, not
  growing with the start speed, and the first segment only ever doubled), in the same run;
* `shipped_repair_only`: the shipped planner taking a close first waypoint as reached only when no plan through it
  passes (`reach_close_waypoint_first=False`), and `shipped_pass_horizon_0_3s`: that, with "close" meaning 0.3 s
  of flight at the start speed, not 0.5 s (the planner until 2026-12-07's evening).

Per planner: replans, refused (and by constraint), the repairs used, the lowest speed within 1.5 s of each served
replan (a replan that brakes to a near stop), and the planning time. No deadline: the counts do not depend on the
machine's speed. `reference`: on the shipped (and candidate) planner's served replans, the time-optimal reference
(`mfplan.inflight.reference_replan`) through the same waypoints from the same start under the same certificate:
how many near stops it makes too (forced by the waypoints and the limits) and how many it avoids.

Usage: ``python bench/replan_chain.py [--smoke] [--seeds N] [--candidate PATH]`` (or ``SMOKE_TEST=1``); the full
run takes about a minute and a half.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import bench_prelude  # noqa: F401  (first: one BLAS thread, and this folder off sys.path)
import numpy as np
import torch

from mfplan.inflight import REPLANNER_LIMITS, Replan, fly_moves, min_speed_after, reference_replan
from mfplan.planner import DEFAULT_CHECKPOINT, CertifiedPlanner
from quadsim.courses import DEFAULT_COURSE, load_course
from runkit.config import smoke_requested

BEFORE = {"pass_horizon_s": 0.0, "first_segment_factors": (2.0,), "reach_close_waypoint_first": False}
TIGHTENED_IN_MOTION = {"tighten_moving": True, "moving_safety_margin": 1.0}
REPAIR_ONLY = {"reach_close_waypoint_first": False}
"""A close first waypoint taken as reached only when no plan through it passes (as until 2026-12-07's evening)."""
PASS_HORIZON_0_3_S = {"pass_horizon_s": 0.3, **REPAIR_ONLY}
"""The planner until 2026-12-07's evening: that, within 0.3 s of flight at the start speed (not 0.5 s)."""
NEAR_STOP_M_S = 0.5


def log(message: str) -> None:
    """Progress to stderr, keeping stdout for the JSON result."""
    print(f"[bench/replan_chain] {message}", file=sys.stderr, flush=True)


def fly(
    options: dict[str, Any], seeds: int, checkpoint: Path = DEFAULT_CHECKPOINT
) -> tuple[dict[str, Any], CertifiedPlanner, list[Replan]]:
    """Fly the mission's moves over `seeds` seeds with a planner of these options; the figures, the planner and
    its replans."""
    planner = CertifiedPlanner.from_checkpoint(checkpoint, limits=REPLANNER_LIMITS, **options)
    course = load_course()
    replans = [replan for seed in range(seeds) for replan in fly_moves(planner, course, seed)]
    return figures_of(replans), planner, replans


def figures_of(replans: list[Replan]) -> dict[str, Any]:
    """A planner's figures over its replans."""
    served = [r for r in replans if r.result.feasible]
    speeds = np.array([min_speed_after(r.result) for r in served])
    planning = np.array([r.result.planning_time_ms for r in replans])
    repairs = Counter(r.result.repair.split(" (")[0] or "none" for r in served)
    return {
        "replans": len(replans),
        "served": len(served),
        "refused": len(replans) - len(served),
        "refused_fraction": (len(replans) - len(served)) / max(len(replans), 1),
        "refused_by_constraint": dict(Counter(r.result.constraint for r in replans if not r.result.feasible)),
        "repairs_of_served": dict(repairs),
        "start_speed_m_s_mean": float(np.mean([r.start_speed_m_s for r in replans])) if replans else None,
        "min_speed_within_1_5_s": {
            "p10_m_s": float(np.percentile(speeds, 10)) if speeds.size else None,
            "median_m_s": float(np.median(speeds)) if speeds.size else None,
            "mean_m_s": float(speeds.mean()) if speeds.size else None,
            "near_stops": int((speeds < NEAR_STOP_M_S).sum()),
            "near_stop_below_m_s": NEAR_STOP_M_S,
        },
        "served_plan_duration_s_mean": float(np.mean([r.result.total_time_s for r in served])) if served else None,
        "planning_ms": {"p50": float(np.percentile(planning, 50)), "p99": float(np.percentile(planning, 99))},
    }


def reference_figures(planner: CertifiedPlanner, replans: list[Replan]) -> dict[str, Any]:
    """The time-optimal reference on each served replan of `planner` (same waypoints, start and certificate): its
    near stops, and how many of the planner's near stops it avoids (the ones the allocation, not the limits, made)."""
    served = [r for r in replans if r.result.feasible]
    references = [reference_replan(planner, r) for r in served]
    ours = np.array([min_speed_after(r.result) for r in served])
    theirs = np.array([ref.min_speed_m_s for ref in references])
    found = np.isfinite(theirs)
    times = np.array([ref.total_time_s for ref in references])
    durations = np.array([r.result.total_time_s for r in served])
    return {
        "replans": len(served),
        "reference_found": int(found.sum()),
        "near_stops": int((theirs[found] < NEAR_STOP_M_S).sum()),
        "planner_near_stops": int((ours < NEAR_STOP_M_S).sum()),
        "planner_near_stops_the_reference_also_makes": int(
            ((ours < NEAR_STOP_M_S) & found & (theirs < NEAR_STOP_M_S)).sum()
        ),
        "planner_near_stops_the_reference_avoids": int(
            ((ours < NEAR_STOP_M_S) & found & (theirs >= NEAR_STOP_M_S)).sum()
        ),
        "min_speed_within_1_5_s_median_m_s": float(np.median(theirs[found])) if found.any() else None,
        "total_time_over_reference_mean": float(np.mean(durations[found] / times[found])) if found.any() else None,
        "note": "reference: mfplan.inflight.reference_replan, the shortest certified times through the waypoints"
        " each served replan flies through (a waypoint taken as reached dropped) from its start, at the"
        " certificate's boundary; slow (tenths of a second a replan)",
    }


def run(seeds: int, smoke: bool, candidate: Path | None = None) -> dict[str, Any]:
    """Every planner, and the comparison of today's repairs with the ones before (and a candidate checkpoint's
    planner as calibrated, when given)."""
    torch.set_num_threads(1)
    planners: dict[str, dict[str, Any]] = {}
    runs: list[tuple[str, dict[str, Any], Path]] = [
        ("shipped", {}, DEFAULT_CHECKPOINT),
        ("shipped_before", BEFORE, DEFAULT_CHECKPOINT),
        ("shipped_repair_only", REPAIR_ONLY, DEFAULT_CHECKPOINT),
        ("shipped_pass_horizon_0_3s", PASS_HORIZON_0_3_S, DEFAULT_CHECKPOINT),
        ("tightened_in_motion", TIGHTENED_IN_MOTION, DEFAULT_CHECKPOINT),
        ("tightened_in_motion_before", {**TIGHTENED_IN_MOTION, **BEFORE}, DEFAULT_CHECKPOINT),
    ]
    if candidate is not None:
        runs.append(("candidate", {}, candidate))
    reference: dict[str, Any] = {}
    for name, options, checkpoint in runs:
        began = time.perf_counter()
        planners[name], planner, replans = fly(options, seeds, checkpoint)
        figures = planners[name]
        log(f"{name}: {figures['refused']} of {figures['replans']} refused ({time.perf_counter() - began:.1f} s)")
        if name in ("shipped", "candidate"):
            began = time.perf_counter()
            reference[name] = reference_figures(planner, replans)
            log(
                f"reference on {name}'s replans: {reference[name]['near_stops']} near stops; of {name}'s"
                f" {reference[name]['planner_near_stops']}, it avoids"
                f" {reference[name]['planner_near_stops_the_reference_avoids']} ({time.perf_counter() - began:.1f} s)"
            )
    comparison = {
        kind: {
            "refused_now": planners[kind]["refused"],
            "refused_before": planners[f"{kind}_before"]["refused"],
            "replans": planners[kind]["replans"],
        }
        for kind in ("shipped", "tightened_in_motion")
    }
    return {
        "benchmark": "replan_chain",
        "smoke": smoke,
        "course": DEFAULT_COURSE,
        "seeds": seeds,
        "limits": {
            "max_excursion_m": REPLANNER_LIMITS.max_excursion_m,
            "ground_clearance_m": REPLANNER_LIMITS.ground_clearance_m,
        },
        "before": {key: list(value) if isinstance(value, tuple) else value for key, value in BEFORE.items()},
        "candidate": None if candidate is None else str(candidate),
        "planners": planners,
        "reference": reference,
        "comparison": comparison,
        "python": platform.python_version(),
    }


def main() -> None:
    """Parse the command line, run, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="three seeds (also SMOKE_TEST=1)")
    parser.add_argument("--seeds", type=int, default=60, help="seeds of the mission's moves (3 moves each)")
    parser.add_argument(
        "--candidate", type=Path, default=None, help="also fly this policy checkpoint's planner, as it is calibrated"
    )
    args = parser.parse_args()
    smoke = smoke_requested(args.smoke)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    started = time.perf_counter()
    result = run(3 if smoke else args.seeds, smoke, args.candidate)
    result["wall_time_s"] = time.perf_counter() - started
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Calibrate the planner's safety margin at the highest fidelity, by split conformal prediction.

The policy is trained against an estimate of feasibility; how often its plans actually fly is measured
here, on courses and in wind that neither training nor evaluation uses. For each (course, wind) flight
the smallest slow-down `k` of the policy's times that flies feasibly in RotorPy is searched. With `n`
such boundaries, the margin is the ceil((n + 1)(1 - miss_rate))-th smallest: if a new flight is
exchangeable with the calibration flights, slowing the policy's times down by that margin makes it fly
with probability at least 1 - miss_rate. With `--tighten` the flights from rest are the planner's tightened
plans (the policy's split at the certificate's boundary), and the margin slows that boundary down instead;
`--tighten-moving` does the same for the replans in motion (re-solved with the start kept).
The margin is written into the checkpoint's metadata, where
`CertifiedPlanner.from_checkpoint` reads it.

Replans from a moving vehicle get their own margin (`moving_safety_margin`), calibrated the same way on
flights that start in motion: each calibration course is interrupted part-way (`mfplan.courses.moving_replan`,
its remaining waypoints displaced by 0-3 m like the replanning sets), and the policy's replan from the
vehicle's state there is slowed down, start kept exact, until RotorPy flies it.

    mfrl calibrate --checkpoint runs/mfrl/policy.pt
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from mfplan.boundaries import BoundarySearch, search_boundaries
from mfplan.configs import CALIBRATION_WIND_OFFSET, DISPLACEMENTS_M, TRAIN_WIND_SEED_STRIDE, CalibrateConfig
from mfplan.courses import course_set, moving_replan
from mfplan.dispatch import EvaluationDispatcher, EvaluatorSpec
from mfplan.planner import CertifiedPlanner
from mfplan.policy import read_policy, save_policy
from minsnap import EndpointState
from runkit import get_logger, to_jsonable

log = get_logger("mfplan.calibration")

CALIBRATION_COURSE_SEED = 31_337
"""Seed of the calibration courses (the held-out test set and training pools use other seeds)."""


def conformal_margin(boundaries: np.ndarray, miss_rate: float) -> float:
    """The ceil((n + 1)(1 - miss_rate))-th smallest boundary (inf when there are too few for that rank)."""
    values = np.sort(np.asarray(boundaries, dtype=float))
    rank = math.ceil((len(values) + 1) * (1.0 - miss_rate))
    if rank > len(values):
        return math.inf
    return float(values[rank - 1])


def _calibration_searches(
    planner: CertifiedPlanner, flights: list[tuple[np.ndarray, EndpointState | None]], cfg: CalibrateConfig, first: int
) -> tuple[list[BoundarySearch], int]:
    """One boundary search per (certified flight, wind); the number of flights the planner did not certify as is.

    Wind seeds are numbered from `first` flights into the calibration range, so no two searches share one."""
    searches: list[BoundarySearch] = []
    uncertified = 0
    for index, (waypoints, start) in enumerate(flights):
        plan = planner.plan(waypoints, start)
        if not plan.feasible or plan.certified_by == "repair":
            # refused: nothing is flown; repaired (another allocation or added waypoints): the margin scales the
            # policy's own times of the given waypoints, which this plan does not fly
            uncertified += 1
            continue
        if plan.trajectory is not None:  # the waypoints flown: a close first one taken as reached is not
            waypoints = plan.trajectory.waypoints
        tightened = planner.tighten if start is None else planner.tighten_moving
        if tightened:  # the policy's split at the certificate's boundary: slowed down from there
            flown, low = plan.segment_times_s, 1.0
        else:  # the policy's own times
            flown, low = plan.segment_times_s / plan.time_scale, plan.time_scale
        for wind in range(cfg.winds):
            seed = cfg.seed * TRAIN_WIND_SEED_STRIDE + CALIBRATION_WIND_OFFSET + (first + index) * cfg.winds + wind
            searches.append(BoundarySearch(waypoints, flown, seed, low=low, start=start))
    return searches, uncertified


def _margin_problem(boundaries: np.ndarray, cfg: CalibrateConfig, kind: str) -> str:
    """Why no finite conformal margin exists for these flights ("" when one does)."""
    if math.isfinite(conformal_margin(boundaries, cfg.miss_rate)):
        return ""
    return (
        f"no margin up to {cfg.max_margin} reaches a miss rate of {cfg.miss_rate} on {len(boundaries)} {kind} "
        f"flights ({int(np.sum(~np.isfinite(boundaries)))} infeasible at every slow-down searched; a rank needs "
        f"at least {math.ceil((1 - cfg.miss_rate) / cfg.miss_rate)} flights)"
    )


def calibrate(config: CalibrateConfig) -> dict[str, Any]:
    """Search every calibration flight's boundary (from rest and in motion), pick the conformal margins, store
    them in the checkpoint."""
    cfg = config.resolved()
    started = time.perf_counter()
    loaded = read_policy(cfg.checkpoint)
    policy, metadata = loaded.policy, loaded.metadata
    planner = CertifiedPlanner(
        policy, safety_margin=1.0, moving_safety_margin=1.0, tighten=cfg.tighten, tighten_moving=cfg.tighten_moving
    )
    spec = EvaluatorSpec()
    courses = course_set(cfg.courses, CALIBRATION_COURSE_SEED + cfg.seed)
    searches, uncertified = _calibration_searches(planner, [(c, None) for c in courses], cfg, 0)
    rng = np.random.default_rng(CALIBRATION_COURSE_SEED + cfg.seed + 1)
    replans = [
        moving_replan(course, float(DISPLACEMENTS_M[i % len(DISPLACEMENTS_M)]), rng, i)
        for i, course in enumerate(courses)
    ]
    moving, moving_uncertified = _calibration_searches(
        planner, [(r.waypoints, r.start) for r in replans], cfg, len(courses)
    )
    if not searches or not moving:
        raise RuntimeError("no calibration course (from rest or in motion) could be certified: nothing to calibrate on")
    with EvaluationDispatcher(spec, cfg.num_workers, cfg.ray_address, show_progress=cfg.progress) as dispatcher:
        search_boundaries(dispatcher, searches + moving, "rotorpy", cfg.max_margin, cfg.tolerance)
    boundaries = np.array([s.boundary for s in searches])
    moving_boundaries = np.array([s.boundary for s in moving])
    problem = _margin_problem(boundaries, cfg, "from-rest")
    if problem:
        raise RuntimeError(problem)
    margin = conformal_margin(boundaries, cfg.miss_rate)
    moving_problem = _margin_problem(moving_boundaries, cfg, "moving-start")
    moving_margin = None if moving_problem else conformal_margin(moving_boundaries, cfg.miss_rate)
    if moving_problem:  # the margin from rest still holds; moving replans keep the policy's own times, certified
        log.warning("moving-start replans not calibrated: %s", moving_problem)
    calibration = {
        "safety_margin": margin,
        "moving_safety_margin": moving_margin,
        "tighten": cfg.tighten,
        "tighten_moving": cfg.tighten_moving,
        "moving_calibration_problem": moving_problem,
        "miss_rate": cfg.miss_rate,
        "flights": len(boundaries),
        "moving_flights": len(moving_boundaries),
        "uncertified_courses": uncertified,
        "uncertified_moving_replans": moving_uncertified,
        "fidelity": "rotorpy",
        "boundaries": sorted(boundaries.tolist()),
        "moving_boundaries": sorted(moving_boundaries.tolist()),
        "fraction_flying_without_margin": float(np.mean(boundaries <= 1.0)),
        "moving_fraction_flying_without_margin": float(np.mean(moving_boundaries <= 1.0)),
        "command": f"mfrl calibrate --checkpoint {cfg.checkpoint} --courses {cfg.courses} --winds {cfg.winds} "
        f"--miss-rate {cfg.miss_rate} --seed {cfg.seed}"
        + (" --tighten" if cfg.tighten else "")
        + (" --tighten-moving" if cfg.tighten_moving else ""),
        "wall_time_s": time.perf_counter() - started,
    }
    save_policy(cfg.checkpoint, policy, {**metadata, "calibration": to_jsonable(calibration)}, config=loaded.config)
    log.info(
        "safety margin %.3f from %d flights from rest, %s from %d moving-start flights (miss rate %.3f); written to %s",
        margin,
        len(boundaries),
        "none" if moving_margin is None else f"{moving_margin:.3f}",
        len(moving_boundaries),
        cfg.miss_rate,
        cfg.checkpoint,
    )
    return calibration

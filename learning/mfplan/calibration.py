"""Calibrate the planner's safety margin at the highest fidelity, by split conformal prediction.

The policy is trained against an estimate of feasibility; how often its plans actually fly is measured
here, on courses and in wind that neither training nor evaluation uses. For each (course, wind) flight
the smallest slow-down `k` of the policy's times that flies feasibly in RotorPy is searched. With `n`
such boundaries, the margin is the ceil((n + 1)(1 - miss_rate))-th smallest: if a new flight is
exchangeable with the calibration flights, slowing the policy's times down by that margin makes it fly
with probability at least 1 - miss_rate. The margin is written into the checkpoint's metadata, where
`CertifiedPlanner.from_checkpoint` reads it.

    mfrl calibrate --checkpoint runs/mfrl/policy.pt
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from mfplan.boundaries import BoundarySearch, search_boundaries
from mfplan.configs import CALIBRATION_WIND_OFFSET, TRAIN_WIND_SEED_STRIDE, CalibrateConfig
from mfplan.courses import course_set
from mfplan.dispatch import EvaluationDispatcher, EvaluatorSpec
from mfplan.planner import CertifiedPlanner
from mfplan.policy import read_policy, save_policy
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


def calibrate(config: CalibrateConfig) -> dict[str, Any]:
    """Search every calibration flight's boundary, pick the conformal margin, store it in the checkpoint."""
    cfg = config.resolved()
    started = time.perf_counter()
    loaded = read_policy(cfg.checkpoint)
    policy, metadata = loaded.policy, loaded.metadata
    planner = CertifiedPlanner(policy, safety_margin=1.0)
    spec = EvaluatorSpec()
    courses = course_set(cfg.courses, CALIBRATION_COURSE_SEED + cfg.seed)
    searches: list[BoundarySearch] = []
    uncertified = 0
    for index, waypoints in enumerate(courses):
        plan = planner.plan(waypoints)
        if not plan.feasible or plan.certified_by == "repair":
            # refused: nothing is flown; repaired (another allocation or added waypoints): the margin scales the
            # policy's own times of the given waypoints, which this plan does not fly
            uncertified += 1
            continue
        proposal = plan.segment_times_s / plan.time_scale  # the policy's own times
        for wind in range(cfg.winds):
            seed = cfg.seed * TRAIN_WIND_SEED_STRIDE + CALIBRATION_WIND_OFFSET + index * cfg.winds + wind
            searches.append(BoundarySearch(waypoints, proposal, seed, low=plan.time_scale))
    if not searches:
        raise RuntimeError("no calibration course could be certified: nothing to calibrate on")
    with EvaluationDispatcher(spec, cfg.num_workers, cfg.ray_address, show_progress=cfg.progress) as dispatcher:
        search_boundaries(dispatcher, searches, "rotorpy", cfg.max_margin, cfg.tolerance)
    boundaries = np.array([s.boundary for s in searches])
    margin = conformal_margin(boundaries, cfg.miss_rate)
    if not math.isfinite(margin):
        raise RuntimeError(
            f"no margin up to {cfg.max_margin} reaches a miss rate of {cfg.miss_rate} on {len(boundaries)} flights "
            f"({int(np.sum(~np.isfinite(boundaries)))} infeasible at every slow-down searched; a rank needs "
            f"at least {math.ceil((1 - cfg.miss_rate) / cfg.miss_rate)} flights)"
        )
    calibration = {
        "safety_margin": margin,
        "miss_rate": cfg.miss_rate,
        "flights": len(boundaries),
        "uncertified_courses": uncertified,
        "fidelity": "rotorpy",
        "boundaries": sorted(boundaries.tolist()),
        "fraction_flying_without_margin": float(np.mean(boundaries <= 1.0)),
        "command": f"mfrl calibrate --checkpoint {cfg.checkpoint} --courses {cfg.courses} --winds {cfg.winds} "
        f"--miss-rate {cfg.miss_rate} --seed {cfg.seed}",
        "wall_time_s": time.perf_counter() - started,
    }
    save_policy(cfg.checkpoint, policy, {**metadata, "calibration": to_jsonable(calibration)}, config=loaded.config)
    log.info(
        "safety margin %.3f from %d flights (miss rate %.3f); written to %s",
        margin,
        len(boundaries),
        cfg.miss_rate,
        cfg.checkpoint,
    )
    return calibration

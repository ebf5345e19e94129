"""Benchmark of the MFRL planner on 10-waypoint courses, against the slow baseline in the same run.

Prints one JSON object to stdout (progress goes to stderr). On one CPU thread it measures, per call:

* policy inference: encoding the course and the policy's forward pass (also the forward pass alone);
* policy + min-snap: the above and the minimum-snap solve (the replanning figure of the targets);
* the certified plan: `CertifiedPlanner.plan`, which adds the analytic check (and, when the policy's times
  fail it, the time-scale search);
* the certified plan paced as in service: one call per course after 50 ms of idle (`certified_plan_paced_ms`,
  and its ratio to the back-to-back figure): caches go cold between plans, as in the replanner node;
* the certificate: `TrajectoryCertificate.check` alone on each course's policy trajectory, against the old
  analytic-only sampling (32 samples a segment, `quadsim.flatness.flat_state`, no bound) timed in the same run;
* the baseline: `minsnap.allocation.optimise_segment_times` (snap-optimal time ratios, then the shortest
  feasible time scale by bisection on the analytic check), wall time per course.

The policy comes from `--checkpoint PATH`, else from the package's default checkpoint, else it is randomly
initialised (the JSON says which): latency does not depend on the weights, trajectory times do.

Usage: ``python bench/planner.py [--smoke] [--checkpoint PATH]`` (or ``SMOKE_TEST=1``); smoke takes seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_prelude  # noqa: F401  (first: one BLAS thread, and this folder off sys.path)
import numpy as np
import torch
from numpy.typing import NDArray

from mfplan.courses import random_course
from mfplan.planner import DEFAULT_CHECKPOINT, CertifiedPlanner, calibrated_margin, calibrated_tightened
from mfplan.policy import TimeAllocationPolicy, encode_course, load_policy
from minsnap import solve_min_snap
from minsnap.allocation import optimise_segment_times, trapezoidal_times
from quadsim.analytic import sample_times
from quadsim.flatness import flat_state
from runkit.config import smoke_requested

NUM_WAYPOINTS = 10
TARGET_POLICY_MIN_SNAP_P50_MS = 1.0
TARGET_POLICY_MIN_SNAP_P99_MS = 3.0
TARGET_SPEEDUP_VS_BASELINE = 1000.0
PACED_GAP_S = 0.05
"""Idle time before each paced call: the latency bench's path period (20 Hz replanning)."""
PACED_ROUNDS = 2
BASELINE_MAX_SPEED_M_S = 3.0
BASELINE_MAX_ACCEL_M_S2 = 3.0


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run."""

    smoke: bool
    """Shrink everything to finish in seconds (for tests)."""
    num_courses: int
    """10-waypoint courses timed (each stage runs on every course)."""
    repeats: int
    """Timed calls per course and stage (after one warm-up call)."""
    baseline_courses: int
    """Courses on which the baseline is run (once each: it takes tens of milliseconds or more)."""
    seed: int = 0


def make_config(smoke: bool) -> BenchConfig:
    """Full or smoke-sized configuration."""
    if smoke:
        return BenchConfig(smoke=True, num_courses=4, repeats=20, baseline_courses=2)
    return BenchConfig(smoke=False, num_courses=50, repeats=100, baseline_courses=50)


def log(message: str) -> None:
    """Progress to stderr, keeping stdout for the JSON result."""
    print(f"[bench/planner] {message}", file=sys.stderr, flush=True)


def summary_ms(times_s: NDArray[np.float64]) -> dict[str, float | int]:
    """Median, p99 and mean in ms."""
    return {
        "p50_ms": float(np.median(times_s) * 1e3),
        "p99_ms": float(np.percentile(times_s, 99) * 1e3),
        "mean_ms": float(np.mean(times_s) * 1e3),
        "samples": int(times_s.shape[0]),
    }


def time_per_call(
    function: Callable[[NDArray[np.float64]], Any], courses: list[NDArray[np.float64]], repeats: int
) -> NDArray[np.float64]:
    """Wall time (s) of `repeats` calls on every course, after one warm-up call per course."""
    times = []
    for course in courses:
        function(course)
        for _ in range(repeats):
            start = time.perf_counter()
            function(course)
            times.append(time.perf_counter() - start)
    return np.asarray(times)


def time_paced(
    function: Callable[[NDArray[np.float64]], Any], courses: list[NDArray[np.float64]], rounds: int, gap_s: float
) -> NDArray[np.float64]:
    """Wall time (s) of one call per course per round, each after `gap_s` of sleep (the first round untimed).

    The replanner serves paths as they come (the latency bench sends one every 50 ms, a mission far fewer):
    between two plans the process sleeps and the CPU's caches go to other work. Back-to-back calls
    (`time_per_call`) keep them warm and give the lower figure."""
    times = []
    for round_index in range(rounds + 1):
        for course in courses:
            time.sleep(gap_s)
            start = time.perf_counter()
            function(course)
            if round_index:
                times.append(time.perf_counter() - start)
    return np.asarray(times)


def load_or_initialise(checkpoint: Path | None) -> tuple[TimeAllocationPolicy, dict[str, Any]]:
    """The checkpoint's policy (given, else the package default), or a randomly initialised one."""
    path = checkpoint if checkpoint is not None else DEFAULT_CHECKPOINT
    if checkpoint is not None or DEFAULT_CHECKPOINT.is_file():
        policy, metadata = load_policy(path)
        return policy, {"source": "checkpoint", "path": str(path), "metadata": metadata}
    torch.manual_seed(0)
    return TimeAllocationPolicy().eval(), {
        "source": "random-init",
        "path": None,
        "note": f"no checkpoint at {DEFAULT_CHECKPOINT}: a randomly initialised policy (seed 0) was timed; "
        "latencies are the same for a trained one, trajectory times and search counts are not",
    }


def bench_latency(planner: CertifiedPlanner, courses: list[NDArray[np.float64]], repeats: int) -> dict[str, Any]:
    """p50/p99 of each planning stage on the same courses."""
    policy = planner.policy
    encodings = {id(course): encode_course(course) for course in courses}
    log(f"policy forward alone, {len(courses)} courses x {repeats}")
    forward = time_per_call(lambda c: policy.act(encodings[id(c)]), courses, repeats)
    log("policy inference (encode + forward)")
    inference = time_per_call(lambda c: policy.act(encode_course(c)), courses, repeats)
    log("policy + min-snap")
    with_solve = time_per_call(lambda c: solve_min_snap(c, policy.act(encode_course(c))), courses, repeats)
    log("certified plan (policy + min-snap + analytic check, search when needed)")
    certified = time_per_call(planner.plan, courses, repeats)
    log(f"certified plan paced: one call every {PACED_GAP_S * 1e3:.0f} ms of idle, {PACED_ROUNDS} rounds")
    paced = time_paced(planner.plan, courses, PACED_ROUNDS, PACED_GAP_S)
    results = [planner.plan(course) for course in courses]
    return {
        "policy_forward": summary_ms(forward),
        "policy_inference": summary_ms(inference),
        "policy_min_snap": summary_ms(with_solve),
        "certified_plan": summary_ms(certified),
        "certified_plan_paced": {**summary_ms(paced), "idle_before_each_call_s": PACED_GAP_S},
        "certified_by": {
            kind: sum(r.certified_by == kind for r in results)
            for kind in ("policy", "time-scale search", "repair", "none")
        },
        "mean_feasibility_checks": float(np.mean([r.feasibility_checks for r in results])),
        "planner_total_time_s": [r.total_time_s if r.feasible else None for r in results],
    }


def bench_certificate(planner: CertifiedPlanner, courses: list[NDArray[np.float64]], repeats: int) -> dict[str, Any]:
    """p50/p99 of one certificate check on each course's policy trajectory, and of the old analytic-only
    sampling (32 samples a segment through `flat_state`, no bound between samples) as the reference."""
    policy, certificate, vehicle = planner.policy, planner.certificate, planner.vehicle
    trajectories = {id(c): solve_min_snap(c, policy.act(encode_course(c))) for c in courses}

    def sampled(course: NDArray[np.float64]) -> float:
        trajectory = trajectories[id(course)]
        times = sample_times(trajectory, None, 32)
        return float(flat_state(trajectory.derivatives(times, max_order=4), vehicle).rotor_speeds_rad_s.max())

    log("certificate check alone, and the old 32-sample analytic sampling")
    check = time_per_call(lambda c: certificate.check(trajectories[id(c)]), courses, repeats)
    old = time_per_call(sampled, courses, repeats)
    check_ms, old_ms = summary_ms(check), summary_ms(old)
    passed = [certificate.check(t).passed for t in trajectories.values()]
    return {
        "check_ms": check_ms,
        "old_sampling_ms": old_ms,
        "ratio_p50": check_ms["p50_ms"] / old_ms["p50_ms"],
        "ratio_p99": check_ms["p99_ms"] / old_ms["p99_ms"],
        "passed_fraction": float(np.mean(passed)),
        "note": "certificate check over old sampling (32 samples a segment, flat_state, no bound), same run",
    }


def bench_baseline(planner: CertifiedPlanner, courses: list[NDArray[np.float64]]) -> dict[str, Any]:
    """The baseline's wall time per course, with the same analytic check."""
    analytic = planner.analytic
    wall, total, feasible, checks, iterations = [], [], [], [], []
    for index, course in enumerate(courses):
        initial = trapezoidal_times(course, BASELINE_MAX_SPEED_M_S, BASELINE_MAX_ACCEL_M_S2)
        start = time.perf_counter()
        result = optimise_segment_times(course, analytic.is_feasible, initial)
        wall.append(time.perf_counter() - start)
        total.append(result.total_time_s)
        feasible.append(result.feasible)
        checks.append(result.feasibility_checks)
        iterations.append(result.ratio_iterations)
        log(f"baseline course {index + 1}/{len(courses)}: {wall[-1] * 1e3:.1f} ms, {result.total_time_s:.2f} s")
    return {
        "wall_per_course": summary_ms(np.asarray(wall)),
        "total_time_s": total,
        "feasible_fraction": float(np.mean(feasible)),
        "mean_feasibility_checks": float(np.mean(checks)),
        "mean_ratio_iterations": float(np.mean(iterations)),
        "initial_times": f"trapezoidal_times(v_max={BASELINE_MAX_SPEED_M_S}, a_max={BASELINE_MAX_ACCEL_M_S2})",
    }


def run(config: BenchConfig, checkpoint: Path | None) -> dict[str, Any]:
    """Run every part and assemble the result with targets and pass flags."""
    torch.set_num_threads(1)
    policy, policy_info = load_or_initialise(checkpoint)
    margin = calibrated_margin(policy_info.get("metadata", {}))
    moving_margin = calibrated_margin(policy_info.get("metadata", {}), moving=True)
    tighten = calibrated_tightened(policy_info.get("metadata", {}))
    tighten_moving = calibrated_tightened(policy_info.get("metadata", {}), moving=True)
    planner = CertifiedPlanner(  # as from_checkpoint
        policy, safety_margin=margin, moving_safety_margin=moving_margin, tighten=tighten, tighten_moving=tighten_moving
    )
    rng = np.random.default_rng(config.seed)
    courses = [random_course(rng, num_waypoints=NUM_WAYPOINTS) for _ in range(config.num_courses)]
    latency = bench_latency(planner, courses, config.repeats)
    certificate = bench_certificate(planner, courses, config.repeats)
    log(
        f"certificate check p50 {certificate['check_ms']['p50_ms']:.3f} ms, p99 {certificate['check_ms']['p99_ms']:.3f}"
        f" ms; old 32-sample analytic sampling p50 {certificate['old_sampling_ms']['p50_ms']:.3f} ms:"
        f" ratio {certificate['ratio_p50']:.2f} (p50), {certificate['ratio_p99']:.2f} (p99)"
    )
    baseline = bench_baseline(planner, courses[: config.baseline_courses])

    baseline_p50 = baseline["wall_per_course"]["p50_ms"]
    speedup_policy_min_snap = baseline_p50 / latency["policy_min_snap"]["p50_ms"]
    speedup_certified = baseline_p50 / latency["certified_plan"]["p50_ms"]
    pairs = [
        (ours, theirs)
        for ours, theirs in zip(latency["planner_total_time_s"], baseline["total_time_s"], strict=False)
        if ours is not None
    ]
    time_ratio = float(np.mean([ours / theirs for ours, theirs in pairs])) if pairs else None
    return {
        "benchmark": "planner",
        "smoke": config.smoke,
        "policy": policy_info,
        "num_waypoints": NUM_WAYPOINTS,
        "num_courses": config.num_courses,
        "repeats_per_course": config.repeats,
        "tightened": tighten,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "threads": "torch and BLAS/OpenMP limited to 1 thread",
            "numpy": np.__version__,
            "torch": torch.__version__,
        },
        "policy_inference_ms": latency["policy_inference"],
        "policy_min_snap_ms": latency["policy_min_snap"],
        "certified_plan_ms": latency["certified_plan"],
        "certified_plan_paced_ms": latency["certified_plan_paced"],
        "paced_over_back_to_back_p50": latency["certified_plan_paced"]["p50_ms"] / latency["certified_plan"]["p50_ms"],
        "baseline_ms": baseline["wall_per_course"],
        "certificate_check_ms": certificate["check_ms"],
        "certificate": certificate,
        "speedup_vs_baseline": {
            "policy_min_snap": speedup_policy_min_snap,
            "certified_plan": speedup_certified,
            "note": "baseline p50 wall time per course over the planner's p50 per call",
        },
        "latency": latency,
        "baseline": baseline,
        "total_time_ratio_planner_over_baseline": time_ratio,
        "total_time_note": (
            "mean over courses both certified; meaningful only for a trained policy"
            if policy_info["source"] == "checkpoint"
            else "a randomly initialised policy: this ratio says nothing about a trained one"
        ),
        "targets": {
            "policy_min_snap_p50_ms_max": TARGET_POLICY_MIN_SNAP_P50_MS,
            "policy_min_snap_p99_ms_max": TARGET_POLICY_MIN_SNAP_P99_MS,
            "speedup_vs_baseline_min": TARGET_SPEEDUP_VS_BASELINE,
        },
        "pass": {
            "policy_min_snap_p50_ms": latency["policy_min_snap"]["p50_ms"] <= TARGET_POLICY_MIN_SNAP_P50_MS,
            "policy_min_snap_p99_ms": latency["policy_min_snap"]["p99_ms"] <= TARGET_POLICY_MIN_SNAP_P99_MS,
            "speedup_vs_baseline_policy_min_snap": speedup_policy_min_snap >= TARGET_SPEEDUP_VS_BASELINE,
            "speedup_vs_baseline_certified_plan": speedup_certified >= TARGET_SPEEDUP_VS_BASELINE,
        },
    }


def main() -> None:
    """Parse the command line, run, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="shrink the run to a few seconds (also SMOKE_TEST=1)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="policy checkpoint (default: the package's)")
    args = parser.parse_args()
    smoke = smoke_requested(args.smoke)
    started = time.perf_counter()
    result = run(make_config(smoke), args.checkpoint)
    result["wall_time_s"] = time.perf_counter() - started
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

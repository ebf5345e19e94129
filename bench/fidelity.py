"""Benchmark of the three fidelities (analytic, MuJoCo, RotorPy): cost, real-time factor and agreement.

Prints one JSON object to stdout (progress goes to stderr). In one run, on one core, it flies the
same trajectories at every fidelity and measures:

* the cost of one evaluation at each fidelity (median wall time), over every trajectory of the
  sweep and over those that every fidelity flew to the end (feasible at all three);
* the real-time factor of the MuJoCo and RotorPy flights (flown time, trajectory plus settle,
  over wall time) on the flights that every fidelity completed; the target is MuJoCo >= 50. As the
  baseline in the same run (the machine's speed varies from hour to hour), the real-time factor of the
  same MuJoCo model stepped alone at hover (`mujoco_physics_only`: no controller, no aerodynamics, no
  logging), and the flight's share of it (`mujoco_flight_over_physics_only`);
* agreement on feasibility: random waypoint courses (seeded; a 9 x 9 x 3 m box, z >= 0.5 m, 5-8
  waypoints at least 1 m apart, heading changes of up to 90 deg per segment) with segment times
  for a nominal speed, each flown with all times multiplied by factors from slow to too fast.
  Per course and fidelity it reports the feasibility boundary (the smallest feasible time scale
  and the fastest feasible average speed on the grid), and per pair of fidelities the fraction of
  (course, scale) pairs on which they agree. Disagreements are listed with their reasons; a
  course whose min-snap path dips to the floor (`min_reference_height_m`, the same at every scale)
  crashes in both simulators while the analytic check, which knows no floor, passes it.

The simulators are flown twice, by the project's controller (drag feed-forward and integral action,
`quadsim.controller.SE3Gains()`) and, as the baseline measured in the same run, by the same controller
without either (`mujoco_pd`, `rotorpy_pd`: PD with flatness feed-forward only, the controller before
Step 10); `boundary_scale_ratio_to_analytic_median` shows how much of the gap to the analytic
boundary the drag-aware controller closes.

Usage: ``python bench/fidelity.py [--smoke]`` (or ``SMOKE_TEST=1``); the smoke run takes seconds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

import bench_prelude  # noqa: F401  (first: one BLAS thread, and this folder off sys.path)
import mujoco
import numpy as np
from numpy.typing import NDArray

from minsnap import solve_min_snap
from minsnap.allocation import constant_speed_times, segment_lengths_m
from quadsim.analytic import AnalyticEvaluator
from quadsim.controller import SE3Gains
from quadsim.evaluation import EvaluationResult, FeasibilityCriteria, FidelityEvaluator
from quadsim.mujoco_flight import MujocoEvaluator
from quadsim.rotorpy_flight import RotorPyEvaluator
from quadsim.vehicle import VehicleParams
from runkit import to_jsonable
from runkit.config import smoke_requested

TARGET_MUJOCO_REALTIME_FACTOR = 50.0
BOX_M = (9.0, 9.0, 3.0)
MIN_HEIGHT_M = 0.5
MIN_SPACING_M = 1.0
MAX_YAW_STEP_RAD = np.pi / 2
REASON_CHARS = 100
BASELINE_GAINS = SE3Gains(ki_position=(0.0, 0.0, 0.0), aero_feedforward=False)
"""The controller before Step 10 (no drag feed-forward, no integral action): the baseline flown in the same run."""


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run."""

    smoke: bool
    """Shrink everything to finish in seconds (for tests)."""
    num_courses: int
    """Random waypoint courses in the agreement sweep."""
    waypoints_range: tuple[int, int]
    """Fewest and most waypoints of a course (inclusive)."""
    time_scales: tuple[float, ...]
    """Factors on the nominal segment times, slow (large) to too fast (small)."""
    nominal_speed_m_s: float = 2.0
    """Speed along the straight segments that sets the nominal segment times."""
    seed: int = 0
    """Seed of the courses and of RotorPy's wind and sensor noise."""


def make_config(smoke: bool) -> BenchConfig:
    """Full or smoke-sized configuration."""
    if smoke:
        return BenchConfig(True, 2, (5, 5), (1.0, 0.55, 0.3))
    return BenchConfig(False, 8, (5, 8), tuple(float(s) for s in np.round(np.geomspace(2.5, 0.3, 12), 4)))


def log(message: str) -> None:
    """Progress to stderr, keeping stdout for the JSON result."""
    print(message, file=sys.stderr, flush=True)


def random_course(rng: np.random.Generator, num_waypoints: int) -> NDArray[np.float64]:
    """`N x 4` waypoints (x, y, z, yaw) in the box, at least `MIN_SPACING_M` from each other."""
    low, high = np.array([0.0, 0.0, MIN_HEIGHT_M]), np.array(BOX_M)
    points: list[NDArray[np.float64]] = []
    while len(points) < num_waypoints:
        candidate = rng.uniform(low, high)
        if all(np.linalg.norm(candidate - p) >= MIN_SPACING_M for p in points):
            points.append(candidate)
    steps = rng.uniform(-MAX_YAW_STEP_RAD, MAX_YAW_STEP_RAD, num_waypoints - 1)
    yaw = rng.uniform(-np.pi, np.pi) + np.concatenate([[0.0], np.cumsum(steps)])
    return np.column_stack([np.array(points), yaw])


def make_courses(config: BenchConfig) -> list[NDArray[np.float64]]:
    """The seeded random courses of the sweep."""
    rng = np.random.default_rng(config.seed)
    low, high = config.waypoints_range
    return [random_course(rng, int(rng.integers(low, high + 1))) for _ in range(config.num_courses)]


def warm_up(evaluators: dict[str, FidelityEvaluator]) -> None:
    """One short evaluation each, so that one-time costs (MuJoCo's model compile) stay out of the timings."""
    hover = solve_min_snap(np.array([[0.0, 0.0, 1.0, 0.0], [0.5, 0.0, 1.0, 0.0]]), [1.0])
    for evaluator in evaluators.values():
        evaluator.evaluate_one(hover)


def sweep(
    config: BenchConfig, courses: list[NDArray[np.float64]], evaluators: dict[str, FidelityEvaluator]
) -> list[list[dict[str, EvaluationResult]]]:
    """Results `[course][scale][fidelity]` of every course at every time scale, serially on one core."""
    grid = []
    for index, waypoints in enumerate(courses):
        nominal = constant_speed_times(waypoints, config.nominal_speed_m_s)
        row = []
        for scale in config.time_scales:
            trajectory = solve_min_snap(waypoints, scale * nominal)
            results = {name: e.safe_evaluate_one(trajectory) for name, e in evaluators.items()}
            row.append(results)
            verdicts = " ".join(f"{n}={'ok' if r.feasible else 'NO'}({r.wall_time_s:.2f}s)" for n, r in results.items())
            log(f"course {index} scale {scale:.3f} ({trajectory.duration_s:.1f} s): {verdicts}")
        grid.append(row)
    return grid


def feasibility_boundary(
    feasible: list[bool], scales: tuple[float, ...], path_length_m: float, nominal_s: float
) -> dict[str, Any]:
    """Smallest feasible scale on the grid, its average speed, and whether feasibility is monotone in the scale."""
    ordered = sorted(zip(scales, feasible, strict=True))  # fastest (smallest scale) first
    feasible_scales = [s for s, ok in ordered if ok]
    verdicts = [ok for _, ok in ordered]
    monotone = verdicts == sorted(verdicts)  # False..False, True..True
    if not feasible_scales:
        return {"min_feasible_scale": None, "fastest_feasible_avg_speed_m_s": None, "monotone": monotone}
    best = min(feasible_scales)
    return {
        "min_feasible_scale": best,
        "fastest_feasible_avg_speed_m_s": path_length_m / (best * nominal_s),
        "monotone": monotone,
    }


def min_reference_height_m(waypoints: NDArray[np.float64], nominal_speed_m_s: float) -> float:
    """Lowest point of the course's min-snap path (the same at every time scale); near 0 the simulators crash."""
    trajectory = solve_min_snap(waypoints, constant_speed_times(waypoints, nominal_speed_m_s))
    return float(trajectory.position(np.linspace(0.0, trajectory.duration_s, 2001))[:, 2].min())


def summarise(
    config: BenchConfig,
    courses: list[NDArray[np.float64]],
    grid: list[list[dict[str, EvaluationResult]]],
    names: list[str],
    settle_s: float,
) -> dict[str, Any]:
    """Costs, real-time factors, boundaries and agreement from the sweep."""
    pairs = [results for row in grid for results in row]
    completed = [results for results in pairs if all(r.feasible for r in results.values())]
    cost = {
        name: {
            "median_wall_s_all": float(np.median([p[name].wall_time_s for p in pairs])),
            "median_wall_s_completed_by_all": float(np.median([p[name].wall_time_s for p in completed]))
            if completed
            else None,
        }
        for name in names
    }
    realtime = {
        name: float(np.median([(p[name].duration_s + settle_s) / p[name].wall_time_s for p in completed]))
        if completed
        else None
        for name in ("mujoco", "rotorpy")
    }
    agreement = {  # between the fidelities, each flown by the project's controller
        f"{a}-{b}": float(np.mean([p[a].feasible == p[b].feasible for p in pairs]))
        for a, b in itertools.combinations([n for n in names if not n.endswith("_pd")], 2)
    }
    per_course = []
    for waypoints, row in zip(courses, grid, strict=True):
        length = float(segment_lengths_m(waypoints).sum())
        nominal_s = float(constant_speed_times(waypoints, config.nominal_speed_m_s).sum())
        boundaries = {
            name: feasibility_boundary([r[name].feasible for r in row], config.time_scales, length, nominal_s)
            for name in names
        }
        per_course.append(
            {
                "num_waypoints": len(waypoints),
                "path_length_m": length,
                "min_reference_height_m": min_reference_height_m(waypoints, config.nominal_speed_m_s),
                "boundary": boundaries,
            }
        )
    disagreements = [
        {
            "course": i,
            "scale": config.time_scales[j],
            "feasible": {name: results[name].feasible for name in names},
            "reasons": {name: results[name].reason[:REASON_CHARS] for name in names if results[name].reason},
        }
        for i, row in enumerate(grid)
        for j, results in enumerate(row)
        if len({r.feasible for r in results.values()}) > 1
    ]
    feasible_fraction = {
        name: [float(np.mean([row[j][name].feasible for row in grid])) for j in range(len(config.time_scales))]
        for name in names
    }
    return {
        "cost_per_evaluation_s": cost,
        "realtime_factor": realtime,
        "num_pairs": len(pairs),
        "num_completed_by_all": len(completed),
        "agreement_rate": agreement,
        "boundary_scale_ratio_to_analytic_median": boundary_ratios(per_course, names),
        "feasible_fraction_by_scale": feasible_fraction,
        "courses": per_course,
        "disagreements": disagreements,
    }


def physics_only_realtime_factor(evaluator: MujocoEvaluator, simulated_s: float) -> float:
    """Real-time factor of the evaluator's MuJoCo model stepped alone (hover thrust held, the flight's physics
    steps per control step, nothing else): the ceiling a MuJoCo flight's real-time factor approaches."""
    model = evaluator.model
    data = mujoco.MjData(model)
    data.qpos[2] = 1.0
    data.ctrl[:] = evaluator.vehicle.mass_kg * 9.81 / 4.0
    data.act[:] = data.ctrl
    steps = max(1, round(simulated_s / (evaluator.physics_steps_per_control * model.opt.timestep)))
    began = time.perf_counter()
    for _ in range(steps):
        mujoco.mj_step(model, data, nstep=evaluator.physics_steps_per_control)
    wall = time.perf_counter() - began
    return steps * evaluator.physics_steps_per_control * model.opt.timestep / wall


def boundary_ratios(per_course: list[dict[str, Any]], names: list[str]) -> dict[str, float | None]:
    """Median over courses of each fidelity's smallest feasible scale over the analytic one (> 1: needs slower)."""
    ratios: dict[str, float | None] = {}
    for name in names[1:]:
        values = [
            c["boundary"][name]["min_feasible_scale"] / c["boundary"]["analytic"]["min_feasible_scale"]
            for c in per_course
            if c["boundary"][name]["min_feasible_scale"] and c["boundary"]["analytic"]["min_feasible_scale"]
        ]
        ratios[name] = float(np.median(values)) if values else None
    return ratios


def run(config: BenchConfig) -> dict[str, Any]:
    """Run the benchmark and return its JSON-ready result."""
    started = time.perf_counter()
    vehicle, criteria = VehicleParams(), FeasibilityCriteria()
    rotorpy = RotorPyEvaluator(vehicle, criteria, seed=config.seed)
    evaluators: dict[str, FidelityEvaluator] = {
        "analytic": AnalyticEvaluator(vehicle, criteria),
        "mujoco": MujocoEvaluator(vehicle, criteria),
        "rotorpy": rotorpy,
        "mujoco_pd": MujocoEvaluator(vehicle, criteria, gains=BASELINE_GAINS),
        "rotorpy_pd": RotorPyEvaluator(vehicle, criteria, gains=BASELINE_GAINS, seed=config.seed),
    }
    warm_up(evaluators)
    courses = make_courses(config)
    grid = sweep(config, courses, evaluators)
    names = list(evaluators)
    summary = summarise(config, courses, grid, names, criteria.settle_time_s)
    mujoco_rtf = summary["realtime_factor"]["mujoco"]
    mujoco_evaluator = evaluators["mujoco"]
    assert isinstance(mujoco_evaluator, MujocoEvaluator)
    physics_only = physics_only_realtime_factor(mujoco_evaluator, 2.0 if config.smoke else 60.0)
    summary["realtime_factor"]["mujoco_physics_only"] = physics_only
    summary["realtime_factor"]["mujoco_flight_over_physics_only"] = (
        mujoco_rtf / physics_only if mujoco_rtf is not None else None
    )
    ratios = summary["boundary_scale_ratio_to_analytic_median"]
    return {
        "benchmark": "fidelity",
        "smoke": config.smoke,
        "config": config,
        "vehicle": vehicle.name,
        "criteria": criteria,
        "rotorpy": {"control_rate_hz": 1.0 / rotorpy.control_dt_s, "conditions": rotorpy.conditions},
        "controllers": {"mujoco, rotorpy": SE3Gains(), "mujoco_pd, rotorpy_pd (baseline)": BASELINE_GAINS},
        **summary,
        "targets": {
            "mujoco_realtime_factor": {
                "target": f">= {TARGET_MUJOCO_REALTIME_FACTOR:g}",
                "value": mujoco_rtf,
                "pass": mujoco_rtf is not None and mujoco_rtf >= TARGET_MUJOCO_REALTIME_FACTOR,
            },
            "rotorpy_boundary_closer_to_analytic_than_baseline": {
                "target": "rotorpy < rotorpy_pd (median boundary scale over the analytic one)",
                "value": {"rotorpy": ratios.get("rotorpy"), "rotorpy_pd": ratios.get("rotorpy_pd")},
                "pass": ratios.get("rotorpy") is not None
                and ratios.get("rotorpy_pd") is not None
                and ratios["rotorpy"] < ratios["rotorpy_pd"],
            },
        },
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "wall_time_s": time.perf_counter() - started,
    }


def main() -> None:
    """Parse the command line, run, print the JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="shrink the run to a few seconds (also SMOKE_TEST=1)")
    args = parser.parse_args()
    smoke = smoke_requested(args.smoke)
    result = run(make_config(smoke))
    print(json.dumps(to_jsonable(result), indent=2))


if __name__ == "__main__":
    main()

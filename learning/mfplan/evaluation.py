"""Evaluation of the MFRL planner against the heuristic and the slow baseline, on held-out courses.

For the nominal held-out courses and their replanning variants (waypoints displaced by 1, 2 and 3 m),
each method plans every course, and every plan is flown at the simulated fidelities:

* `heuristic`: trapezoidal time ratios scaled to the analytic feasibility boundary;
* `baseline`: Step 1's time optimisation (snap-optimal ratios, bisection to the analytic boundary);
* `baseline-hifi` (nominal set): the same ratios with the time scale bisected against the highest
  fidelity itself (RotorPy flights): what the baseline must spend to be as feasible as MFRL claims;
* `mfrl`: the learned policy through the certified planner.

Writes `report.md`, `report.json` and `report.png` to the output folder.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

from flightkit import format_table, get_logger, write_bytes_atomic, write_json_atomic, write_text_atomic
from mfplan.configs import EvalConfig
from mfplan.courses import held_out_courses, replanning_set
from mfplan.dispatch import EvaluationDispatcher, EvaluatorSpec
from mfplan.planner import CertifiedPlanner
from minsnap import Trajectory, solve_min_snap
from minsnap.allocation import optimise_segment_times, scale_to_feasibility_boundary, trapezoidal_times
from quadsim.analytic import AnalyticEvaluator
from quadsim.evaluation import EvaluationResult

log = get_logger("mfplan.evaluation")

REPLAN_SEED = 7


@dataclass
class PlannedCourse:
    """One method's plan of one course and its flights."""

    method: str
    course_set: str
    course_index: int
    trajectory: Trajectory | None
    planning_time_ms: float
    analytic_feasible: bool
    flights: dict[str, EvaluationResult] = field(default_factory=dict)

    @property
    def total_time_s(self) -> float:
        """Total time of the plan (NaN without one)."""
        return self.trajectory.duration_s if self.trajectory is not None else float("nan")


Planner = Callable[[np.ndarray], tuple[Trajectory | None, bool]]


def timed(plan: Planner, waypoints: np.ndarray) -> tuple[Trajectory | None, bool, float]:
    """Run a planner and time it (ms)."""
    start = time.perf_counter()
    trajectory, feasible = plan(waypoints)
    return trajectory, feasible, 1e3 * (time.perf_counter() - start)


def make_methods(planner: CertifiedPlanner, analytic: AnalyticEvaluator) -> dict[str, Planner]:
    """The compared planners: waypoints -> (trajectory or None, analytically feasible)."""

    def heuristic(waypoints: np.ndarray) -> tuple[Trajectory | None, bool]:
        ratios = trapezoidal_times(waypoints, max_speed_m_s=3.0, max_accel_m_s2=3.0)
        scale, feasible, _ = scale_to_feasibility_boundary(waypoints, ratios, analytic.is_feasible)
        return solve_min_snap(waypoints, scale * ratios), feasible

    def baseline(waypoints: np.ndarray) -> tuple[Trajectory | None, bool]:
        initial = trapezoidal_times(waypoints, max_speed_m_s=3.0, max_accel_m_s2=3.0)
        result = optimise_segment_times(waypoints, analytic.is_feasible, initial)
        return result.trajectory, result.feasible

    def mfrl(waypoints: np.ndarray) -> tuple[Trajectory | None, bool]:
        result = planner.plan(waypoints)
        return (result.trajectory if result.feasible else None), result.feasible

    return {"heuristic": heuristic, "baseline": baseline, "mfrl": mfrl}


def hifi_baseline(
    waypoints: np.ndarray, dispatcher: EvaluationDispatcher, analytic: AnalyticEvaluator, fidelity: str
) -> tuple[Trajectory | None, float]:
    """The baseline's ratios with the time scale bisected against flights at `fidelity` (slow)."""
    start = time.perf_counter()
    initial = trapezoidal_times(waypoints, max_speed_m_s=3.0, max_accel_m_s2=3.0)
    analytic_result = optimise_segment_times(waypoints, analytic.is_feasible, initial)

    def flies(trajectory: Trajectory) -> bool:
        return dispatcher.evaluate([(trajectory, fidelity)])[0].feasible

    scale, feasible, _ = scale_to_feasibility_boundary(
        waypoints, analytic_result.segment_times_s, flies, relative_tolerance=1e-2
    )
    trajectory = solve_min_snap(waypoints, scale * analytic_result.segment_times_s) if feasible else None
    return trajectory, 1e3 * (time.perf_counter() - start)


def summarise(plans: list[PlannedCourse], fidelities: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per (set, method): time, feasibility per fidelity, tracking error, planning time."""
    rows = []
    sets = sorted({p.course_set for p in plans}, key=lambda s: float(s.split("=")[1].rstrip("m")))
    for course_set in sets:
        in_set = [p for p in plans if p.course_set == course_set]
        baseline_times = {p.course_index: p.total_time_s for p in in_set if p.method == "baseline"}
        for method in dict.fromkeys(p.method for p in in_set):
            mine = [p for p in in_set if p.method == method]
            ratios = [p.total_time_s / baseline_times[p.course_index] for p in mine if p.course_index in baseline_times]
            row: dict[str, Any] = {
                "set": course_set,
                "method": method,
                "courses": len(mine),
                "planned": sum(p.trajectory is not None for p in mine),
                "mean_total_time_s": float(np.nanmean([p.total_time_s for p in mine])),
                "time_vs_baseline": float(np.nanmean(ratios)) if ratios else float("nan"),
                "planning_ms_p50": float(np.percentile([p.planning_time_ms for p in mine], 50)),
                "planning_ms_p99": float(np.percentile([p.planning_time_ms for p in mine], 99)),
            }
            for fidelity in fidelities:
                flown = [p.flights[fidelity] for p in mine if fidelity in p.flights]
                row[f"feasible_{fidelity}"] = float(np.mean([f.feasible for f in flown])) if flown else float("nan")
                errors = [f.max_position_error_m for f in flown if np.isfinite(f.max_position_error_m)]
                row[f"max_pos_err_{fidelity}_m"] = float(np.median(errors)) if errors else float("nan")
            rows.append(row)
    return rows


def plot_report(rows: list[dict[str, Any]], fidelities: tuple[str, ...], path: Path) -> Path:
    """Bar charts: time relative to the baseline, feasibility at the highest fidelity, planning time."""
    sets = list(dict.fromkeys(r["set"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), layout="constrained")
    width = 0.8 / len(methods)
    top = fidelities[-1] if fidelities else None
    for k, method in enumerate(methods):
        x = np.arange(len(sets)) + k * width
        get = {r["set"]: r for r in rows if r["method"] == method}
        axes[0].bar(x, [get[s]["time_vs_baseline"] if s in get else np.nan for s in sets], width, label=method)
        if top:
            axes[1].bar(x, [get[s][f"feasible_{top}"] if s in get else np.nan for s in sets], width, label=method)
        axes[2].bar(x, [get[s]["planning_ms_p50"] if s in get else np.nan for s in sets], width, label=method)
    for ax, title in zip(axes, ["total time / baseline", f"feasible at {top}", "planning time p50 (ms)"], strict=True):
        ax.set_xticks(np.arange(len(sets)) + 0.4 - width / 2, sets)
        ax.set_title(title)
    axes[0].axhline(1.0, color="black", lw=0.8)
    axes[0].axhline(0.96, color="red", ls="--", lw=0.8, label="-4 % target")
    axes[1].axhline(0.99, color="red", ls="--", lw=0.8, label="99 % target")
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def run_evaluation(config: EvalConfig) -> dict[str, Any]:
    """Plan and fly every held-out set with every method; write the report."""
    cfg = config.resolved()
    planner = CertifiedPlanner.from_checkpoint(cfg.checkpoint)
    spec = EvaluatorSpec(rotorpy_seed=cfg.rotorpy_seed)
    analytic = AnalyticEvaluator(spec.vehicle, spec.criteria)
    methods = make_methods(planner, analytic)
    nominal = held_out_courses(cfg.courses)
    plans: list[PlannedCourse] = []
    with EvaluationDispatcher(spec, cfg.num_workers, cfg.ray_address) as dispatcher:
        for displacement in cfg.displacements_m:
            courses = replanning_set(nominal, displacement, REPLAN_SEED)
            name = f"d={displacement:g}m"
            for index, waypoints in enumerate(tqdm(courses, desc=f"plan {name}", unit="course")):
                for method, plan in methods.items():
                    trajectory, feasible, ms = timed(plan, waypoints)
                    plans.append(PlannedCourse(method, name, index, trajectory, ms, feasible))
                if displacement == 0.0 and index < cfg.hifi_baseline_courses and cfg.fidelities:
                    trajectory, ms = hifi_baseline(waypoints, dispatcher, analytic, cfg.fidelities[-1])
                    plans.append(PlannedCourse(f"baseline-{cfg.fidelities[-1]}", name, index, trajectory, ms, True))
        requests = [(p, f) for p in plans if p.trajectory is not None for f in cfg.fidelities]
        log.info("flying %d plans at %s", len(requests), ", ".join(cfg.fidelities))
        results = dispatcher.evaluate([(p.trajectory, f) for p, f in requests if p.trajectory is not None])
    for (plan_, fidelity), result in zip(requests, results, strict=True):
        plan_.flights[fidelity] = result
    rows = summarise(plans, cfg.fidelities)
    columns = ["set", "method", "planned", "time_vs_baseline", "planning_ms_p50", "planning_ms_p99"]
    columns += [f"feasible_{f}" for f in cfg.fidelities] + [f"max_pos_err_{f}_m" for f in cfg.fidelities]
    table = format_table(columns, [[r[c] for c in columns] for r in rows])
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    png = plot_report(rows, cfg.fidelities, cfg.out_dir / "report.png")
    report = {
        "checkpoint": str(cfg.checkpoint),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "rows": rows,
        "plot": str(png),
    }
    write_json_atomic(cfg.out_dir / "report.json", report)
    markdown = (
        "# MFRL evaluation\n\n"
        f"Checkpoint `{cfg.checkpoint}`; {cfg.courses} held-out courses per set; "
        f"flights at {', '.join(cfg.fidelities)}.\n"
        "`time_vs_baseline`: mean over courses of total time / the baseline's (analytic-boundary) time.\n\n"
        "```\n" + table + "\n```\n\n![report](report.png)\n"
    )
    write_text_atomic(cfg.out_dir / "report.md", markdown)
    print(table)
    return report

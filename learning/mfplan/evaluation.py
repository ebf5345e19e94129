"""Evaluation of the MFRL planner against the heuristic and the slow baseline, on held-out courses.

For the nominal held-out courses and their replanning variants (waypoints displaced by 1, 2 and 3 m),
and for moving replans (`moving d=...`: each course interrupted part-way, the vehicle in motion, its
remaining waypoints displaced; `mfplan.courses.moving_replan`), each method plans every course, and every
plan is flown in MuJoCo and in RotorPy, in wind and sensor noise that no training run has seen
(`EvalConfig.wind_seeds`, each plan once per realisation):

* `heuristic`: trapezoidal time ratios scaled to the analytic feasibility boundary;
* `baseline`: Step 1's time optimisation (snap-optimal ratios, bisection to the analytic boundary);
* `baseline-matched`: the baseline slowed down by the one margin that makes it as feasible at the
  highest fidelity as MFRL is on the nominal set (the smallest such margin, found from every nominal
  course's RotorPy boundary in every held-out wind: in-sample, so it favours the baseline). This is
  the comparison "at equal feasibility";
* `baseline-rotorpy` (nominal set): the baseline's ratios with the time scale bisected against RotorPy
  flights in the training wind, course by course (tens of seconds per course), then flown in the
  held-out wind like everything else;
* `baseline-certified`: the baseline's snap-optimal ratios bisected to the boundary of the safety certificate
  MFRL's plans must pass (instead of the analytic one): the baseline's split under MFRL's own constraints, so
  `mfrl_shorter_than_certified_baseline_percent_<set>` says what the learned allocation earns over it;
* `reference`: a slow time optimisation under the safety certificate MFRL's plans must pass (speed, tilt,
  acceleration, excursion and rotor limits), segment by segment from the baseline's ratios (or trapezoidal
  ones when those cannot be certified at any scale): `minsnap.allocation.shortest_feasible_times`. The
  analytic baseline only respects the rotor limits, and on most courses breaks the certificate's tilt or
  acceleration limit before them; `time_vs_reference` is every method's time over this yardstick's;
* `mfrl`: the learned policy through the certified planner.

Writes `report.md`, `report.json` and `report.png` (times, feasibility, planning time, and the
baseline's time-feasibility curve with MFRL on it) to the output folder.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mfplan.boundaries import BoundarySearch, search_boundaries
from mfplan.configs import EvalConfig
from mfplan.courses import held_out_courses, moving_replanning_set, replanning_set
from mfplan.dispatch import EvaluationDispatcher, EvaluatorSpec
from mfplan.planner import CertifiedPlanner
from minsnap import EndpointState, Trajectory, solve_min_snap
from minsnap.allocation import (
    optimise_segment_times,
    optimise_time_ratios,
    scale_to_feasibility_boundary,
    shortest_feasible_times,
    trapezoidal_times,
)
from quadsim.analytic import AnalyticEvaluator
from quadsim.evaluation import EvaluationResult
from runkit import format_table, get_logger, save_figure, to_jsonable, write_json_atomic, write_text_atomic
from runkit.metrics import progress_bar

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
    flights: dict[str, list[EvaluationResult]] = field(default_factory=dict)
    """Results per fidelity: one per wind realisation at RotorPy, one at MuJoCo."""

    @property
    def total_time_s(self) -> float:
        """Total time of the plan (NaN without one)."""
        return self.trajectory.duration_s if self.trajectory is not None else float("nan")


Planner = Callable[[np.ndarray, EndpointState | None], tuple[Trajectory | None, bool]]
Course = tuple[np.ndarray, EndpointState | None]
"""Waypoints and the vehicle's state at the first one (None: at rest)."""


def timed(plan: Planner, course: Course) -> tuple[Trajectory | None, bool, float]:
    """Run a planner and time it (ms)."""
    began = time.perf_counter()
    trajectory, feasible = plan(*course)
    return trajectory, feasible, 1e3 * (time.perf_counter() - began)


def reference_plan(
    waypoints: np.ndarray, start: EndpointState | None, certified: Callable[[Trajectory], bool]
) -> Trajectory | None:
    """The `reference` method: `shortest_feasible_times` under `certified` from the baseline's snap-optimal
    ratios, or from trapezoidal ones when those cannot be certified at any scale; None when neither can."""
    trapezoid = trapezoidal_times(waypoints, max_speed_m_s=3.0, max_accel_m_s2=3.0)
    snap_ratios, _ = optimise_time_ratios(waypoints, trapezoid, start)
    for initial in (snap_ratios, trapezoid):
        result = shortest_feasible_times(waypoints, certified, initial, start)
        if result.feasible:
            return result.trajectory
    return None


def make_methods(planner: CertifiedPlanner, analytic: AnalyticEvaluator) -> dict[str, Planner]:
    """The compared planners: (waypoints, start) -> (trajectory or None, analytically feasible)."""

    def heuristic(waypoints: np.ndarray, start: EndpointState | None) -> tuple[Trajectory | None, bool]:
        ratios = trapezoidal_times(waypoints, max_speed_m_s=3.0, max_accel_m_s2=3.0)
        scale, feasible, _ = scale_to_feasibility_boundary(waypoints, ratios, analytic.is_feasible, start=start)
        return solve_min_snap(waypoints, scale * ratios, start=start), feasible

    def baseline(waypoints: np.ndarray, start: EndpointState | None) -> tuple[Trajectory | None, bool]:
        initial = trapezoidal_times(waypoints, max_speed_m_s=3.0, max_accel_m_s2=3.0)
        result = optimise_segment_times(waypoints, analytic.is_feasible, initial, start=start)
        return result.trajectory, result.feasible

    def mfrl(waypoints: np.ndarray, start: EndpointState | None) -> tuple[Trajectory | None, bool]:
        result = planner.plan(waypoints, start)
        return (result.trajectory if result.feasible else None), result.feasible

    def certified(trajectory: Trajectory) -> bool:
        return planner.certificate.check(trajectory).passed

    def baseline_certified(waypoints: np.ndarray, start: EndpointState | None) -> tuple[Trajectory | None, bool]:
        initial = trapezoidal_times(waypoints, max_speed_m_s=3.0, max_accel_m_s2=3.0)
        result = optimise_segment_times(waypoints, certified, initial, start=start)
        return (result.trajectory, True) if result.feasible else (None, False)

    def reference(waypoints: np.ndarray, start: EndpointState | None) -> tuple[Trajectory | None, bool]:
        trajectory = reference_plan(waypoints, start, certified)
        return trajectory, trajectory is not None

    return {
        "heuristic": heuristic,
        "baseline": baseline,
        "baseline-certified": baseline_certified,
        "reference": reference,
        "mfrl": mfrl,
    }


def matching_margin(boundaries: np.ndarray, target: float) -> float:
    """The smallest slow-down at which at least a `target` fraction of the flights is feasible (inf if none).

    `boundaries` holds each flight's boundary factor (inf: infeasible at every factor searched).
    """
    finite = np.sort(boundaries[np.isfinite(boundaries)])
    for margin in finite:
        if np.mean(boundaries <= margin) >= target - 1e-12:
            return float(margin)
    return math.inf


def summarise(plans: list[PlannedCourse], fidelities: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per (set, method): time, feasibility per fidelity, tracking error, planning time."""
    rows = []
    sets = sorted({p.course_set for p in plans}, key=_set_order)
    for course_set in sets:
        in_set = [p for p in plans if p.course_set == course_set]
        baseline_times = {p.course_index: p.total_time_s for p in in_set if p.method == "baseline"}
        reference_times = {p.course_index: p.total_time_s for p in in_set if p.method == "reference"}
        for method in dict.fromkeys(p.method for p in in_set):
            mine = [p for p in in_set if p.method == method]
            ratios = [p.total_time_s / baseline_times[p.course_index] for p in mine if p.course_index in baseline_times]
            to_reference = [
                p.total_time_s / reference_times[p.course_index] for p in mine if p.course_index in reference_times
            ]
            row: dict[str, Any] = {
                "set": course_set,
                "method": method,
                "courses": len(mine),
                "planned": sum(p.trajectory is not None for p in mine),
                "mean_total_time_s": float(np.nanmean([p.total_time_s for p in mine])),
                "time_vs_baseline": float(np.nanmean(ratios)) if ratios else float("nan"),
                "time_vs_reference": (
                    float(np.nanmean(to_reference)) if np.isfinite(to_reference).any() else float("nan")
                ),
                "planning_ms_p50": float(np.percentile([p.planning_time_ms for p in mine], 50)),
                "planning_ms_p99": float(np.percentile([p.planning_time_ms for p in mine], 99)),
            }
            for fidelity in fidelities:
                flown = [f for p in mine for f in p.flights.get(fidelity, [])]
                row[f"flights_{fidelity}"] = len(flown)
                row[f"feasible_{fidelity}"] = float(np.mean([f.feasible for f in flown])) if flown else float("nan")
                errors = [f.max_position_error_m for f in flown if np.isfinite(f.max_position_error_m)]
                row[f"max_pos_err_{fidelity}_m"] = float(np.median(errors)) if errors else float("nan")
            rows.append(row)
    return rows


def _set_order(name: str) -> tuple[bool, float]:
    """Sets from rest first, then moving replans; each by displacement ("d=2m", "moving d=2m")."""
    return name.startswith("moving"), float(name.split("=")[1].rstrip("m"))


def plot_report(
    rows: list[dict[str, Any]], fidelities: tuple[str, ...], frontier: dict[str, Any] | None, path: Path
) -> Path:
    """Bar charts (time relative to the baseline, feasibility at the highest fidelity, planning time) and
    the baseline's time-feasibility curve on the nominal set with every method's point on it."""
    sets = list(dict.fromkeys(r["set"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.8), layout="constrained")
    width = 0.8 / len(methods)
    top = fidelities[-1] if fidelities else None
    for k, method in enumerate(methods):
        x = np.arange(len(sets)) + k * width
        get = {r["set"]: r for r in rows if r["method"] == method}
        axes[0].bar(x, [get[s]["time_vs_baseline"] if s in get else np.nan for s in sets], width, label=method)
        if top:
            axes[1].bar(x, [get[s][f"feasible_{top}"] if s in get else np.nan for s in sets], width, label=method)
        axes[2].bar(x, [get[s]["planning_ms_p50"] if s in get else np.nan for s in sets], width, label=method)
    for ax, title in zip(
        axes[:3], ["total time / baseline", f"feasible at {top}", "planning time p50 (ms)"], strict=True
    ):
        ax.set_xticks(np.arange(len(sets)) + 0.4 - width / 2, sets)
        ax.set_title(title)
    axes[0].axhline(1.0, color="black", lw=0.8)
    axes[1].axhline(0.99, color="red", ls="--", lw=0.8, label="99 % target")
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    ax = axes[3]
    if frontier is not None and top:
        margins = np.asarray(frontier["margins"])
        ax.step(margins, frontier["feasible"], where="post", color="C1", label="baseline x margin")
        for k, method in enumerate(methods):
            nominal = [r for r in rows if r["method"] == method and r["set"] == sets[0]]
            if nominal:
                ax.scatter(nominal[0]["time_vs_baseline"], nominal[0][f"feasible_{top}"], color=f"C{k}", zorder=3)
                ax.annotate(method, (nominal[0]["time_vs_baseline"], nominal[0][f"feasible_{top}"]), fontsize=8)
        ax.set_xlabel("total time / baseline")
        ax.set_ylabel(f"feasible at {top} ({sets[0]}, held-out wind)")
        ax.set_title("time vs feasibility (nominal courses)")
        ax.legend(fontsize=8, loc="lower right")
    else:
        ax.set_axis_off()
    try:
        return save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)


def fly_plans(
    dispatcher: EvaluationDispatcher, plans: list[PlannedCourse], fidelities: tuple[str, ...], winds: tuple[int, ...]
) -> None:
    """Fly every plan once at each fidelity, and at the highest-noise one (RotorPy) once per wind."""
    requests: list[tuple[PlannedCourse, str, int | None]] = []
    for plan in plans:
        if plan.trajectory is None:
            continue
        for fidelity in fidelities:
            for seed in winds if fidelity.startswith("rotorpy") else (None,):
                requests.append((plan, fidelity, seed))
    log.info("flying %d flights (%s)", len(requests), ", ".join(fidelities))
    results = dispatcher.evaluate(
        [(p.trajectory, f) for p, f, _ in requests if p.trajectory is not None],
        [s for _, _, s in requests],
        progress="fly",
    )
    for (plan, fidelity, _), result in zip(requests, results, strict=True):
        plan.flights.setdefault(fidelity, []).append(result)


def run_evaluation(config: EvalConfig) -> dict[str, Any]:
    """Plan and fly every held-out set with every method; write the report."""
    cfg = config.resolved()
    # Every method passes through every waypoint: MFRL too takes a close one as reached only as a repair.
    planner = CertifiedPlanner.from_checkpoint(cfg.checkpoint, reach_close_waypoint_first=False)
    spec = EvaluatorSpec(rotorpy_seed=cfg.rotorpy_seed)
    analytic = AnalyticEvaluator(spec.vehicle, spec.criteria)
    methods = make_methods(planner, analytic)
    nominal = held_out_courses(cfg.courses)
    top = cfg.fidelities[-1] if cfg.fidelities else None
    plans: list[PlannedCourse] = []
    course_sets: dict[str, list[Course]] = {}
    for displacement in cfg.displacements_m:
        course_sets[f"d={displacement:g}m"] = [(c, None) for c in replanning_set(nominal, displacement, REPLAN_SEED)]
    for displacement in cfg.moving_displacements_m:
        replans = moving_replanning_set(nominal, displacement, REPLAN_SEED)
        course_sets[f"moving d={displacement:g}m"] = [(r.waypoints, r.start) for r in replans]
    for name, courses in course_sets.items():
        with progress_bar(len(courses), f"plan {name}", cfg.progress, unit="course") as bar:
            for index, course in enumerate(courses):
                for method, plan in methods.items():
                    trajectory, feasible, ms = timed(plan, course)
                    plans.append(PlannedCourse(method, name, index, trajectory, ms, feasible))
                bar.update(1)
    nominal_set = next(iter(course_sets))
    frontier: dict[str, Any] | None = None
    targets: dict[str, Any] = {}
    with EvaluationDispatcher(spec, cfg.num_workers, cfg.ray_address, show_progress=cfg.progress) as dispatcher:
        fly_plans(dispatcher, plans, cfg.fidelities, cfg.wind_seeds)
        if top is not None:
            frontier, extra = match_baseline(dispatcher, cfg, plans, course_sets, nominal_set, top)
            fly_plans(dispatcher, extra, cfg.fidelities, cfg.wind_seeds)
            plans += extra
        if cfg.model_error_fidelities:  # MFRL's plans with a mass the controller is not told about
            fly_plans(dispatcher, [p for p in plans if p.method == "mfrl"], cfg.model_error_fidelities, cfg.wind_seeds)
    rows = summarise(plans, cfg.fidelities + cfg.model_error_fidelities)
    if top is not None and frontier is not None:
        targets = target_figures(rows, nominal_set, top, frontier, cfg.model_error_fidelities)
    columns = ["set", "method", "planned", "time_vs_baseline", "time_vs_reference"]
    columns += ["planning_ms_p50", "planning_ms_p99"]
    columns += [f"feasible_{f}" for f in cfg.fidelities + cfg.model_error_fidelities]
    columns += [f"max_pos_err_{f}_m" for f in cfg.fidelities]
    table = format_table(columns, [[r[c] for c in columns] for r in rows])
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    png = plot_report(rows, cfg.fidelities, frontier, cfg.out_dir / "report.png")
    report = {
        "checkpoint": str(cfg.checkpoint),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "rows": rows,
        "frontier": frontier,
        "targets": targets,
        "plot": str(png),
    }
    write_json_atomic(cfg.out_dir / "report.json", to_jsonable(report))
    target_lines = "".join(
        f"- `{k}`: {v:.4g}\n" if isinstance(v, float) else f"- `{k}`: {v}\n" for k, v in targets.items()
    )
    markdown = (
        "# MFRL evaluation\n\n"
        f"Checkpoint `{cfg.checkpoint}`; {cfg.courses} held-out courses per set; flights at "
        f"{', '.join(cfg.fidelities)}; RotorPy in held-out winds {list(cfg.wind_seeds)} (every plan once per wind).\n"
        "`time_vs_baseline`: mean over courses of total time / the baseline's (analytic-boundary) time; "
        "`time_vs_reference`: / the certified reference time optimisation's. "
        "`baseline-matched`: the baseline slowed down by the smallest margin that is as feasible at the "
        "highest fidelity as MFRL on the nominal set.\n\n"
        "```\n"
        + table
        + "\n```\n\n"
        + ("## Targets\n\n" + target_lines + "\n" if targets else "")
        + "![report](report.png)\n"
    )
    write_text_atomic(cfg.out_dir / "report.md", markdown)
    print(table)
    if targets:
        print(json.dumps(to_jsonable(targets), indent=2))
    return report


def match_baseline(
    dispatcher: EvaluationDispatcher,
    cfg: EvalConfig,
    plans: list[PlannedCourse],
    course_sets: dict[str, list[Course]],
    nominal_set: str,
    top: str,
) -> tuple[dict[str, Any], list[PlannedCourse]]:
    """The baseline's time-feasibility curve on the nominal set, the margin that matches MFRL there, and the
    extra plans to fly: `baseline-matched` on every set and `baseline-rotorpy` on the first nominal courses."""
    baselines = {(p.course_set, p.course_index): p for p in plans if p.method == "baseline"}
    nominal_baselines = [p for p in plans if p.method == "baseline" and p.course_set == nominal_set]
    curve = [
        BoundarySearch(course_sets[nominal_set][p.course_index][0], p.trajectory.segment_times_s, seed)
        for p in nominal_baselines
        if p.trajectory is not None
        for seed in cfg.wind_seeds
    ]
    tuned = [
        (
            BoundarySearch(course_sets[nominal_set][p.course_index][0], p.trajectory.segment_times_s, cfg.rotorpy_seed),
            p,
        )
        for p in nominal_baselines[: cfg.hifi_baseline_courses]
        if p.trajectory is not None
    ]
    log.info("searching %d RotorPy boundaries of the baseline", len(curve) + len(tuned))
    search_boundaries(dispatcher, curve + [t for t, _ in tuned], top, cfg.max_margin, cfg.margin_tolerance)
    unplanned = sum(p.trajectory is None for p in nominal_baselines) * len(cfg.wind_seeds)
    boundaries = np.array([s.boundary for s in curve] + [math.inf] * unplanned)
    mfrl_nominal = [
        f for p in plans if p.method == "mfrl" and p.course_set == nominal_set for f in p.flights.get(top, [])
    ]
    mfrl_feasible = float(np.mean([f.feasible for f in mfrl_nominal])) if mfrl_nominal else 0.0
    margin = matching_margin(boundaries, mfrl_feasible)
    margins = sorted({1.0, *boundaries[np.isfinite(boundaries)].tolist(), cfg.max_margin})
    frontier = {
        "margins": margins,
        "feasible": [float(np.mean(boundaries <= m)) for m in margins],
        "mfrl_feasible": mfrl_feasible,
        "matching_margin": margin,
        "boundaries": boundaries.tolist(),
    }
    extra: list[PlannedCourse] = []
    if math.isfinite(margin):
        for (course_set, index), base in baselines.items():
            trajectory = None
            if base.trajectory is not None:
                waypoints, start = course_sets[course_set][index]
                trajectory = solve_min_snap(waypoints, margin * base.trajectory.segment_times_s, start=start)
            extra.append(PlannedCourse("baseline-matched", course_set, index, trajectory, base.planning_time_ms, True))
    for search, base in tuned:
        trajectory = None
        if math.isfinite(search.boundary):
            trajectory = solve_min_snap(search.waypoints, search.boundary * search.times_s)
        cost_ms = base.planning_time_ms + 1e3 * search.flight_seconds
        extra.append(PlannedCourse(f"baseline-{top}", nominal_set, base.course_index, trajectory, cost_ms, True))
    return frontier, extra


def target_figures(
    rows: list[dict[str, Any]],
    nominal_set: str,
    top: str,
    frontier: dict[str, Any],
    model_error_fidelities: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The targets, measured: time against the analytic boundary and at equal feasibility, feasibility (also with
    a mass error the controller is not told about), planning speed-up."""
    get = {(r["set"], r["method"]): r for r in rows}
    mfrl, matched = get.get((nominal_set, "mfrl")), get.get((nominal_set, "baseline-matched"))
    baseline, searched = get.get((nominal_set, "baseline")), get.get((nominal_set, f"baseline-{top}"))
    mfrl_rows = [r for r in rows if r["method"] == "mfrl"]
    out: dict[str, Any] = {
        "matching_margin": frontier["matching_margin"],
        f"mfrl_feasible_{top}_nominal": frontier["mfrl_feasible"],
    }
    for label, counted in (
        ("all_sets", mfrl_rows),
        ("from_rest", [r for r in mfrl_rows if not r["set"].startswith("moving")]),
        ("moving", [r for r in mfrl_rows if r["set"].startswith("moving")]),
    ):
        flights = sum(r[f"flights_{top}"] for r in counted)
        feasible = sum(r[f"feasible_{top}"] * r[f"flights_{top}"] for r in counted if r[f"flights_{top}"])
        out[f"mfrl_feasible_{top}_{label}"] = feasible / flights if flights else float("nan")
        out[f"mfrl_flights_{top}_{label}"] = flights
    for row in mfrl_rows:  # the baseline is the snap-optimal split bisected to the analytic boundary
        out[f"mfrl_time_vs_analytic_boundary_{row['set']}"] = row["time_vs_baseline"]
        out[f"mfrl_time_vs_reference_{row['set']}"] = row["time_vs_reference"]
    for row in rows:  # how far the certificate itself keeps any plan from the analytic (rotor-limit) boundary
        if row["method"] == "reference":
            out[f"reference_time_vs_analytic_boundary_{row['set']}"] = row["time_vs_baseline"]
        certified = get.get((row["set"], "baseline-certified"))
        if row["method"] == "mfrl" and certified:  # the same constraints: what the allocation itself earns
            shorter = 1.0 - row["mean_total_time_s"] / certified["mean_total_time_s"]
            out[f"mfrl_shorter_than_certified_baseline_percent_{row['set']}"] = 100.0 * shorter
    for fidelity in model_error_fidelities:
        counted = [r for r in mfrl_rows if r.get(f"flights_{fidelity}")]
        total = sum(r[f"flights_{fidelity}"] for r in counted)
        ok = sum(r[f"feasible_{fidelity}"] * r[f"flights_{fidelity}"] for r in counted)
        out[f"mfrl_feasible_{fidelity}_all_sets"] = ok / total if total else float("nan")
        out[f"mfrl_flights_{fidelity}_all_sets"] = total
    if mfrl and matched:
        out["mfrl_time_vs_matched_baseline"] = mfrl["mean_total_time_s"] / matched["mean_total_time_s"]
        out["mfrl_shorter_than_matched_baseline_percent"] = 100.0 * (1.0 - out["mfrl_time_vs_matched_baseline"])
    if mfrl and baseline:
        out["planning_speedup_vs_baseline_p50"] = baseline["planning_ms_p50"] / mfrl["planning_ms_p50"]
    if mfrl and searched:
        out[f"planning_speedup_vs_baseline_{top}_p50"] = searched["planning_ms_p50"] / mfrl["planning_ms_p50"]
        out[f"mfrl_time_vs_baseline_{top}"] = mfrl["mean_total_time_s"] / searched["mean_total_time_s"]
    return out

"""`make demo`: fly the replanning graph with the MuJoCo quadrotor in the loop and report.

    mfrl-demo                       # built-in course, 3 in-flight replans, writes runs/ros_demo/
    mfrl-demo --replan-count 5 --real-time-factor 2
    mfrl-demo --foxglove            # also stream the scene to Foxglove (ws://127.0.0.1:8765)

It starts the demo graph (replanner, quadrotor_sim, tracker, waypoint_mission, bag_recorder) with
the pip-only runner, lets the mission send the course and move the waypoints ahead of the vehicle
mid-flight, and when the vehicle rests at the goal reads the bag back and writes `demo.png` (planned
vs flown path, replan events, tracking error) and `summary.json` (flight time and its ratio to the analytic
boundary of the course as finally flown, the lowest speed after an in-flight replan, tracking error,
replan latencies p50/p99, planner time), and prints them.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray

from mfrl_graph.flight_record import FlightRecord, read_flight
from mfrl_graph.graph import GraphOptions, GraphSpec
from mfrl_graph.runner import checked_graph, run_graph
from minsnap.allocation import optimise_segment_times, trapezoidal_times
from minsnap.waypoint_files import load_waypoints
from quadsim.analytic import AnalyticEvaluator
from quadsim.courses import DEFAULT_COURSE, load_course
from runkit import (
    UserError,
    as_user_error,
    format_table,
    get_logger,
    run_cli,
    to_jsonable,
    write_bytes_atomic,
    write_json_atomic,
)

LOG = get_logger("mfrl_graph.demo")


@dataclass(frozen=True)
class DemoArgs:
    """Fly the ROS 2 replanning graph in simulation, replanning in the air, and report."""

    out_dir: Path = Path("runs/ros_demo")
    """Where the bag, the node logs, demo.png and summary.json go (the old bag there is replaced)."""
    course: str = DEFAULT_COURSE
    """A built-in course (quadsim.courses) or a waypoint file (.csv, .yaml); its x, y, z are flown."""
    replan_count: int = 3
    """How many times the waypoints ahead of the vehicle move in flight."""
    real_time_factor: float = 1.0
    """Pace of the simulation (0: as fast as the controller answers)."""
    timeout_s: float = 180.0
    """Wall-clock limit of the mission."""
    foxglove: bool = False
    """Stream the scene to Foxglove (foxglove-sdk) on ws://127.0.0.1:8765 while flying."""
    controller: Literal["se3", "policy"] = "se3"
    """The vehicle's controller: the geometric SE(3) tracker, or the learned one (policy_controller)."""
    controller_checkpoint: str = ""
    """controller policy: a policyopt checkpoint (empty: the shipped MDPO controller)."""


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile, or None without values."""
    return float(np.percentile(values, q)) if values else None


REPLAN_SPEED_WINDOW_S = 1.5
"""The vehicle's speed after an in-flight replan is watched this long (does the replan brake it?)."""


def analytic_boundary_s(course: NDArray[np.float64]) -> float | None:
    """Total time of the course (from rest, N x 3) at the analytic (rotor-limit) boundary: Step 1's time
    optimisation against the analytic check (None when it finds no feasible time)."""
    if course.shape[0] < 2:
        return None
    analytic = AnalyticEvaluator()
    result = optimise_segment_times(course, analytic.is_feasible, trapezoidal_times(course, 3.0, 3.0))
    return float(result.trajectory.duration_s) if result.feasible and result.trajectory is not None else None


def min_speed_after_replans(record: FlightRecord, events: list[dict[str, Any]]) -> float | None:
    """Lowest vehicle speed within `REPLAN_SPEED_WINDOW_S` after any in-flight replan took effect (None: none)."""
    speeds = np.linalg.norm(record.odom_velocity, axis=1) if len(record.odom_t) else np.zeros(0)
    lowest: float | None = None
    for event in events:
        if event.get("kind") != "moved waypoints" or "plan_stamp_s" not in event:
            continue
        start = float(event["plan_stamp_s"])
        window = (record.odom_t >= start) & (record.odom_t <= start + REPLAN_SPEED_WINDOW_S)
        if window.any():
            low = float(speeds[window].min())
            lowest = low if lowest is None else min(lowest, low)
    return lowest


def summarise(record: FlightRecord, mission: dict[str, Any], wall_time_s: float) -> dict[str, Any]:
    """The demo's figures from the bag and the mission's results."""
    start = min((p.start_s for p in record.plans), default=0.0)
    times, errors = record.tracking_error_m()
    flying = times >= start
    ref_steps = np.linalg.norm(np.diff(record.ref_position, axis=0), axis=1) if len(record.ref_t) > 1 else np.zeros(1)
    ref_vel_steps = (
        np.linalg.norm(np.diff(record.ref_velocity, axis=0), axis=1) if len(record.ref_t) > 1 else np.zeros(1)
    )
    odom_vel_steps = (
        np.linalg.norm(np.diff(record.odom_velocity, axis=0), axis=1) if len(record.odom_t) > 1 else np.zeros(1)
    )
    events = mission.get("events", [])
    # The course's first path also waits for the replanner's side of discovery: kept apart from the replans.
    latencies = [float(e["latency_ms"]) for e in events if e.get("kind") == "moved waypoints" and "latency_ms" in e]
    course_latency = next(
        (float(e["latency_ms"]) for e in events if e.get("kind") == "course" and "latency_ms" in e), None
    )
    final_course = np.asarray(mission.get("final_course", []), dtype=float).reshape(-1, 3)
    boundary_s = analytic_boundary_s(final_course)
    flight_time_s = mission.get("flight_time_s")
    return {
        "success": bool(mission.get("success")),
        "message": mission.get("message"),
        "flight_time_s": flight_time_s,
        "analytic_boundary_s": boundary_s,
        "flight_time_vs_analytic_boundary": flight_time_s / boundary_s if flight_time_s and boundary_s else None,
        "min_speed_after_replans_m_s": min_speed_after_replans(record, events),
        "final_error_m": mission.get("final_error_m"),
        "max_tracking_error_m": float(errors[flying].max()) if flying.any() else None,
        "mean_tracking_error_m": float(errors[flying].mean()) if flying.any() else None,
        "plans": len(record.plans),
        "course_plans": sum(1 for e in events if e.get("kind") == "course" and e.get("result") == "planned"),
        "in_flight_replans": sum(
            1 for e in events if e.get("kind") == "moved waypoints" and e.get("result") == "planned"
        ),
        "refused_paths": [
            f"{e.get('kind')}: {e.get('result')}" for e in events if str(e.get("result", "")).startswith("error")
        ],
        "replanner_errors": record.errors,
        "course_latency_ms": course_latency,
        "replan_latency_ms": {
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "count": len(latencies),
        },
        "replanner_latency_ms": {
            "p50": percentile(record.latency_ms, 50),
            "p99": percentile(record.latency_ms, 99),
        },
        "planner_time_ms": {
            "p50": percentile(record.planning_time_ms, 50),
            "p99": percentile(record.planning_time_ms, 99),
        },
        "continuity": {
            "max_reference_step_m": float(ref_steps.max()),
            "max_reference_velocity_step_m_s": float(ref_vel_steps.max()),
            "max_vehicle_velocity_step_m_s": float(odom_vel_steps.max()),
            "control_period_s": float(np.median(np.diff(record.odom_t))) if len(record.odom_t) > 1 else None,
        },
        "messages": record.counts,
        "wall_time_s": wall_time_s,
    }


def plot_demo(record: FlightRecord, mission: dict[str, Any], path: Path) -> Path:
    """Planned vs flown path (top view and altitude), replan events, tracking error and speed."""
    fig, axes = plt.subplots(2, 2, figsize=(14, 9), layout="constrained")
    ax_xy, ax_z, ax_err, ax_speed = axes.ravel()
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, max(len(record.plans), 1)))
    for i, (plan, colour) in enumerate(zip(record.plans, colours, strict=False)):
        label = "plan 1 (course)" if i == 0 else f"replan {i}"
        ax_xy.plot(plan.positions_m[:, 0], plan.positions_m[:, 1], color=colour, lw=1.5, ls="--", label=label)
        ax_z.plot(plan.start_s + plan.times_s, plan.positions_m[:, 2], color=colour, lw=1.5, ls="--")
    if len(record.odom_t):
        ax_xy.plot(record.odom_position[:, 0], record.odom_position[:, 1], color="tab:red", lw=1.2, label="flown")
        ax_z.plot(record.odom_t, record.odom_position[:, 2], color="tab:red", lw=1.2, label="flown")
    initial = np.asarray(mission.get("initial_course", []), dtype=float).reshape(-1, 3)
    final = np.asarray(mission.get("final_course", []), dtype=float).reshape(-1, 3)
    if initial.size:
        ax_xy.scatter(initial[:, 0], initial[:, 1], marker="x", color="grey", s=50, label="waypoints (sent first)")
    if final.size:
        ax_xy.scatter(
            final[:, 0], final[:, 1], marker="o", facecolors="none", edgecolors="black", s=60, label="waypoints (moved)"
        )
    ax_xy.set(xlabel="x (m)", ylabel="y (m)", title="top view: planned (dashed) vs flown", aspect="equal")
    ax_xy.legend(fontsize=7, loc="best")
    ax_z.set(xlabel="sim time (s)", ylabel="z (m)", title="altitude")
    times, errors = record.tracking_error_m()
    ax_err.plot(times, 100.0 * errors, color="tab:blue")
    ax_err.set(
        xlabel="sim time (s)", ylabel="|vehicle - reference| (cm)", title="tracking error (vertical lines: plans)"
    )
    if len(record.ref_t):
        ax_speed.plot(
            record.ref_t, np.linalg.norm(record.ref_velocity, axis=1), color="black", lw=1.5, label="reference"
        )
    if len(record.odom_t):
        ax_speed.plot(record.odom_t, np.linalg.norm(record.odom_velocity, axis=1), color="tab:red", lw=1, label="flown")
    ax_speed.set(xlabel="sim time (s)", ylabel="speed (m/s)", title="speed (vertical lines: plans)")
    ax_speed.legend(fontsize=8)
    for plan in record.plans:
        for ax in (ax_err, ax_speed, ax_z):
            ax.axvline(plan.start_s, color="grey", lw=0.8, ls=":")
    fig.suptitle("MFRL replanning graph: MuJoCo quadrotor in the loop, waypoints moved in flight")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


class MissionFailed(RuntimeError):  # noqa: N818  (the name says what happened)
    """The demo graph ended without the mission's results (a node died or the graph timed out)."""


def _course_waypoints(course: str) -> NDArray[np.float64]:
    """A built-in course by name, or the waypoints of a file (errors name the file and the line)."""
    if Path(course).suffix.lower() in (".csv", ".yaml", ".yml"):
        return load_waypoints(course)
    with as_user_error(FileNotFoundError, prefix="--course: "):
        return load_course(course)


def demo_graph(args: DemoArgs) -> GraphSpec:
    """The demo graph for `args`, every argument checked (`UserError`) before anything is started or deleted."""
    if not args.timeout_s > 0.0:
        raise UserError(f"--timeout-s must be > 0, got {args.timeout_s}")
    course = _course_waypoints(args.course)[:, :3]
    options = GraphOptions(
        mode="sim",
        viewer=True,
        real_time_factor=args.real_time_factor,
        course=tuple(float(v) for v in course.reshape(-1)),
        replan_count=args.replan_count,
        bag_dir=str(args.out_dir / "bag"),
        results_file=str(args.out_dir / "mission.json"),
        mission_timeout_s=args.timeout_s,
        foxglove=args.foxglove,
        controller=args.controller,
        controller_checkpoint=args.controller_checkpoint,
    )
    return checked_graph("demo", options)


def run(args: DemoArgs) -> dict[str, Any]:
    """Fly the demo graph and write the report; return the summary (`MissionFailed` when the mission wrote none)."""
    began = time.monotonic()
    graph = demo_graph(args)
    out = args.out_dir
    bag_dir, results_file = out / "bag", out / "mission.json"
    out.mkdir(parents=True, exist_ok=True)
    if bag_dir.exists():
        shutil.rmtree(bag_dir)
    results_file.unlink(missing_ok=True)
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", "42")
    outcome = run_graph(graph, env=env, log_dir=out / "logs", timeout_s=args.timeout_s + 30.0)
    if not results_file.is_file():
        raise MissionFailed(f"the mission wrote no results ({outcome.reason}); node logs are in {out / 'logs'}")
    import json

    mission = json.loads(results_file.read_text())
    record = read_flight(bag_dir)
    summary = summarise(record, mission, time.monotonic() - began)
    summary["graph_outcome"] = outcome.reason
    plot_demo(record, mission, out / "demo.png")
    write_json_atomic(out / "summary.json", to_jsonable(summary))
    return summary


def _p50_p99(figures: dict[str, float | None]) -> str:
    """ "p50 / p99" in ms, or "none" when no plan was timed (a mission that failed before planning)."""
    p50, p99 = figures.get("p50"), figures.get("p99")
    return "none" if p50 is None or p99 is None else f"{p50:.2f} / {p99:.2f}"


def _ms(value: float | None) -> str:
    """A time in ms, or "none" when it was not measured."""
    return "none" if value is None else f"{value:.2f}"


def demo_command(args: DemoArgs) -> int:
    """Fly the demo, print the table; exit status 0 when the vehicle reached the goal, else 1."""
    try:
        summary = run(args)
    except MissionFailed as exc:
        print(f"mfrl-demo: {exc}", file=sys.stderr)
        return 1
    replans = summary["in_flight_replans"]
    rows = [
        ["goal reached", summary["success"]],
        ["flight time (s)", summary["flight_time_s"]],
        [
            "flight time / the course's analytic boundary (rotor limits, from rest, as finally flown)",
            summary["flight_time_vs_analytic_boundary"],
        ],
        [
            f"min speed within {REPLAN_SPEED_WINDOW_S:g} s after an in-flight replan (m/s)",
            summary["min_speed_after_replans_m_s"],
        ],
        ["max tracking error (m)", summary["max_tracking_error_m"]],
        ["plans (course + in-flight replans)", f"{summary['plans']} ({summary['course_plans']} + {replans})"],
        ["paths the replanner refused (tried again)", len(summary["refused_paths"])],
        ["replan latency p50 / p99 (ms, path sent -> trajectory received)", _p50_p99(summary["replan_latency_ms"])],
        ["first plan latency (ms, includes the graph's discovery)", _ms(summary["course_latency_ms"])],
        ["planner time p50 / p99 (ms)", _p50_p99(summary["planner_time_ms"])],
        ["wall time (s)", summary["wall_time_s"]],
    ]
    print(format_table(["figure", "value"], rows))
    print(f"wrote {args.out_dir / 'demo.png'}, {args.out_dir / 'summary.json'} and the bag {args.out_dir / 'bag'}")
    if not summary["success"]:
        refused = "; ".join(summary["refused_paths"]) or "none"
        print(
            f"mfrl-demo: the mission failed: {summary['message']} (refused paths: {refused}); "
            f"node logs are in {args.out_dir / 'logs'}",
            file=sys.stderr,
        )
    return 0 if summary["success"] else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of `mfrl-demo`: a bad argument ends in one line and exit status 2, before any node starts."""
    return run_cli(DemoArgs, demo_command, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""Plan a minimum-snap trajectory through a course and fly it at all three fidelities.

    quadsim-demo                        # built-in course, writes runs/demo/
    quadsim-demo --waypoints my.csv     # your course (CSV header x,y,z[,yaw], or YAML)

Prints a table (time, feasibility, tracking error per fidelity) and writes a PNG (3-D path, speed,
rotor speeds vs limits, tracking error) and a JSON summary.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from minsnap import Trajectory, TrajectoryInputError, solve_min_snap
from minsnap.allocation import optimise_segment_times, scale_to_feasibility_boundary, trapezoidal_times
from minsnap.waypoint_files import load_waypoints
from quadsim.analytic import AnalyticEvaluator
from quadsim.courses import DEFAULT_COURSE, load_course
from quadsim.evaluation import EvaluationResult, FeasibilityCriteria, judge_flight
from quadsim.flight_log import FlightLog
from quadsim.mujoco_flight import MujocoEvaluator
from quadsim.plots import plot_fidelity_flights
from quadsim.rotorpy_flight import FlightConditions, RotorPyEvaluator
from quadsim.vehicle import VehicleParams
from runkit import as_user_error, format_table, get_logger, run_cli, to_jsonable, write_json_atomic

log = get_logger("quadsim.demo")


@dataclass
class DemoConfig:
    """Fly one course at the analytic, MuJoCo and RotorPy fidelities, at the analytic boundary and with a margin."""

    waypoints: Path | None = None
    """Waypoint file (CSV with header x,y,z[,yaw], or YAML); default: the built-in course."""
    course: str = DEFAULT_COURSE
    """Built-in course used when no waypoint file is given."""
    out_dir: Path = Path("runs/demo")
    """Where the PNG and the JSON summary are written."""
    time_margins: tuple[float, ...] = (1.0, 1.35)
    """Factors on the shortest analytically feasible times; each is flown at every fidelity."""
    seed: int = 0
    """Seed of the high-fidelity simulator's wind and sensor noise."""
    wind_speed_m_s: float = 1.0
    """Mean wind speed (blowing towards +x) in the high-fidelity simulator, with Dryden gusts on top."""


@dataclass(frozen=True)
class FidelityRun:
    """One trajectory flown at every fidelity."""

    time_margin: float
    trajectory: Trajectory
    results: dict[str, EvaluationResult]
    flights: dict[str, FlightLog]


def plan_baseline(waypoints: np.ndarray, vehicle: VehicleParams) -> tuple[np.ndarray, dict[str, Any]]:
    """Baseline time optimisation against the analytic check; return segment times at the boundary and facts."""
    analytic = AnalyticEvaluator(vehicle)
    initial = trapezoidal_times(waypoints, max_speed_m_s=3.0, max_accel_m_s2=3.0)
    heuristic_scale, _, _ = scale_to_feasibility_boundary(waypoints, initial, analytic.is_feasible)
    result = optimise_segment_times(waypoints, analytic.is_feasible, initial)
    if not result.feasible:
        raise TrajectoryInputError("no feasible time allocation found for this course within 64x the initial times")
    facts = {
        "baseline_optimisation_wall_time_s": result.wall_time_s,
        "baseline_ratio_iterations": result.ratio_iterations,
        "baseline_feasibility_checks": result.feasibility_checks,
        "baseline_total_time_s": result.total_time_s,
        "trapezoidal_ratios_at_boundary_total_time_s": heuristic_scale * float(initial.sum()),
    }
    return result.segment_times_s, facts


def fly_at_all_fidelities(
    trajectory: Trajectory, margin: float, vehicle: VehicleParams, criteria: FeasibilityCriteria, config: DemoConfig
) -> FidelityRun:
    """Evaluate a trajectory analytically and fly it in MuJoCo and RotorPy."""
    conditions = FlightConditions(mean_wind_m_s=(config.wind_speed_m_s, 0.0, 0.0))
    simulators: dict[str, MujocoEvaluator | RotorPyEvaluator] = {
        "mujoco": MujocoEvaluator(vehicle, criteria),
        "rotorpy": RotorPyEvaluator(vehicle, criteria, conditions=conditions, seed=config.seed),
    }
    results = {"analytic": AnalyticEvaluator(vehicle, criteria).evaluate_one(trajectory)}
    flights: dict[str, FlightLog] = {}
    for name, simulator in simulators.items():
        log.info("flying %.2f s (margin %.2f) at the %s fidelity", trajectory.duration_s, margin, name)
        start = time.perf_counter()
        flights[name] = simulator.fly(trajectory)
        wall_s = time.perf_counter() - start
        results[name] = judge_flight(name, vehicle, criteria, flights[name], wall_s, trajectory.duration_s)
    return FidelityRun(time_margin=margin, trajectory=trajectory, results=results, flights=flights)


def results_table(runs: list[FidelityRun]) -> str:
    """The terminal table: one row per (trajectory, fidelity)."""
    rows = [
        [
            f"{run.trajectory.duration_s:.2f} (x{run.time_margin:.2f})",
            name,
            "yes" if r.feasible else "NO",
            r.max_position_error_m,
            float(np.degrees(r.max_yaw_error_rad)),
            r.max_rotor_speed_ratio,
            r.wall_time_s,
            r.reason or "-",
        ]
        for run in runs
        for name, r in run.results.items()
    ]
    headers = ["time (s)", "fidelity", "feasible", "max pos err (m)", "max yaw err (deg)", "rotor/limit", "wall (s)"]
    return format_table([*headers, "why not"], rows)


def course_waypoints(config: DemoConfig) -> np.ndarray:
    """The waypoints of `--waypoints`, or else of the built-in course `--course` (UserError when there is none)."""
    if config.waypoints:
        return load_waypoints(config.waypoints)
    with as_user_error(FileNotFoundError, prefix="--course: "):
        return load_course(config.course)


def run(config: DemoConfig) -> dict[str, Any]:
    """Run the demo and return its summary (also written to `out_dir/summary.json`)."""
    if not config.time_margins or min(config.time_margins) <= 0:
        raise TrajectoryInputError(f"time margins must be > 0, got {config.time_margins}")
    vehicle = VehicleParams()
    criteria = FeasibilityCriteria()
    waypoints = course_waypoints(config)
    log.info("planning through %d waypoints", len(waypoints))
    boundary_times, planning = plan_baseline(waypoints, vehicle)
    log.info(
        "baseline time optimisation: %.2f s at the analytic boundary, found in %.3f s",
        planning["baseline_total_time_s"],
        planning["baseline_optimisation_wall_time_s"],
    )
    runs = [
        fly_at_all_fidelities(solve_min_snap(waypoints, boundary_times * margin), margin, vehicle, criteria, config)
        for margin in config.time_margins
    ]
    print(f"\n{len(waypoints)} waypoints; segment times from the baseline optimisation, times the margin")
    print(results_table(runs))
    shown = runs[-1]
    analytic = AnalyticEvaluator(vehicle, criteria)
    times, speeds, _ = analytic.rotor_speed_profile(shown.trajectory)
    png = plot_fidelity_flights(
        shown.trajectory,
        shown.flights,
        (times, speeds),
        vehicle,
        config.out_dir / "demo.png",
        title=f"{len(waypoints)} waypoints, {shown.trajectory.duration_s:.2f} s (margin {shown.time_margin:.2f}), "
        f"vehicle {vehicle.name}",
    )
    summary = {
        "waypoints": waypoints,
        "vehicle": vehicle,
        "criteria": criteria,
        "planning": planning,
        "runs": [
            {
                "time_margin": r.time_margin,
                "total_time_s": r.trajectory.duration_s,
                "segment_times_s": r.trajectory.segment_times_s,
                "fidelities": {
                    name: {**to_jsonable(res), "max_rotor_speed_ratio": res.max_rotor_speed_ratio}
                    for name, res in r.results.items()
                },
            }
            for r in runs
        ],
        "plot": str(png),
    }
    path = write_json_atomic(config.out_dir / "summary.json", summary)
    print(f"\nwrote {png} and {path}")
    return summary


def demo_command(config: DemoConfig) -> int:
    """Run the demo from the command line; exit status 0."""
    run(config)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (`quadsim-demo`): bad waypoints or arguments end in one line and exit status 2."""
    status = run_cli(DemoConfig, demo_command, argv=argv, description=__doc__, user_errors=(TrajectoryInputError,))
    raise SystemExit(status)


if __name__ == "__main__":
    main()

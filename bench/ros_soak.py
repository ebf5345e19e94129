"""Soak benchmark: an outside client replans every 200 ms on moving goals, MuJoCo in the loop, for half an hour.

The replanner graph in sim mode (replanner, `quadrotor_sim`, `tracker`) runs at `--real-time-factor`
(default 1: sim time is wall time); the outside client of `tests/ros/inflight_client.py` (documented
topics and QoS only) sends a new path every 200 ms of sim time, taking in turn a goal circling at
0.5 m/s on a 2 m circle and a 3-pose course whose goals drift at 0.3 m/s (one minute of sim time each).

Prints one JSON object: plans, refusals by reason, plans outside the certificate (a plan whose samples,
interpolated as a follower would, exceed the speed bound or leave the box of its own path grown by the
excursion bound: must be 0), the vehicle's largest excursion from the box of every goal sent and its top
speed, whether it crashed (touched the ground or flipped), the replanner process's RSS (VmRSS) at the
start and the end and its growth per hour (least-squares fit over samples every 10 s, and from the two
end values), and the latency from path sent to trajectory received (wall) as p50/p99 per one-minute
window and overall. `--out DIR` also writes `ros_soak.json` and `ros_soak.png` (latency and RSS over time).

Usage: ``python bench/ros_soak.py [--minutes 30] [--smoke] [--out DIR]`` (``SMOKE_TEST=1``: ``--smoke``,
2 minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import bench_prelude  # noqa: F401  (first: one BLAS thread, and this folder off sys.path)
import numpy as np

from mfrl.configs import ReplannerConfig
from mfrl_graph.graph import GraphOptions, build_graph
from mfrl_graph.runner import GraphProcesses
from quadsim.vehicle import VehicleParams
from runkit import write_json_atomic
from runkit.config import smoke_requested

REPO_ROOT = Path(__file__).resolve().parents[1]
CLIENT_FILE = REPO_ROOT / "tests" / "ros" / "inflight_client.py"
SMOKE_MINUTES = 2.0
REPLAN_INTERVAL_S = 0.2
PATTERN_PERIOD_S = 60.0
RSS_PERIOD_S = 10.0
WINDOW_S = 60.0
START_POSITION = (0.0, 0.0, 1.0)
"""quadrotor_sim's initial_position_m in the package's parameter file."""
TRACKING_TOLERANCE_M = 0.3
"""The vehicle may leave its goals' box by the excursion bound plus this much (tracking error)."""


class NodeDiedError(Exception):
    """A node of the graph exited during the soak."""


def load_client() -> ModuleType:
    """The outside client (tests/ros/inflight_client.py), imported by path."""
    spec = importlib.util.spec_from_file_location("inflight_client", CLIENT_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def replanner_bounds() -> tuple[float, float]:
    """(speed bound, excursion bound) of the replanner as configured by default (a speed of 0: the vehicle's)."""
    config = ReplannerConfig()
    return config.max_speed_m_s or VehicleParams().max_speed_m_s, config.max_excursion_m


def rss_mb(pid: int) -> float | None:
    """VmRSS of a process in MiB (None if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def growth_per_hour(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) samples, in MiB per hour (None with fewer than two samples)."""
    if len(samples) < 2:
        return None
    t, y = np.array(samples).T
    if np.ptp(t) <= 0.0:
        return None
    return float(np.polyfit(t, y, 1)[0] * 3600.0)


def endpoint_growth_per_hour(start: tuple[float, float], end: tuple[float, float]) -> float | None:
    """(end RSS - start RSS) / elapsed hours."""
    hours = (end[0] - start[0]) / 3600.0
    return (end[1] - start[1]) / hours if hours > 0.0 else None


def percentiles_ms(latencies_s: list[float]) -> dict[str, Any]:
    """n, p50 and p99 (ms) of latencies in seconds."""
    if not latencies_s:
        return {"n": 0, "p50_ms": None, "p99_ms": None}
    ms = 1e3 * np.asarray(latencies_s)
    return {"n": int(ms.size), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def latency_windows(sends: list[Any], began_wall: float) -> list[dict[str, Any]]:
    """p50 / p99 of path-to-trajectory latency in each one-minute window (wall) of the flight."""
    windows: dict[int, list[float]] = {}
    for send in sends:
        if send.latency_s is not None and send.wall_s >= began_wall:
            windows.setdefault(int((send.wall_s - began_wall) // WINDOW_S), []).append(send.latency_s)
    return [{"minute": k, **percentiles_ms(v)} for k, v in sorted(windows.items())]


def write_figure(path: Path, windows: list[dict[str, Any]], rss: list[tuple[float, float]]) -> None:
    """Latency p50 / p99 per window and the replanner's RSS over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    minutes = [w["minute"] + 0.5 for w in windows]
    top.plot(minutes, [w["p50_ms"] for w in windows], "o-", label="p50")
    top.plot(minutes, [w["p99_ms"] for w in windows], "s-", label="p99")
    top.set_ylabel("path -> trajectory (ms, wall)")
    top.set_title("ros_soak: in-flight replanning every 200 ms")
    top.legend()
    top.grid(alpha=0.3)
    if rss:
        t, y = np.array(rss).T
        bottom.plot(t / 60.0, y, "-", color="tab:red")
    bottom.set_ylabel("replanner RSS (MiB)")
    bottom.set_xlabel("minutes")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(minutes: float, real_time_factor: float, domain_id: int, seed: int, viewer: bool) -> dict[str, Any]:
    """Start the graph, replan for `minutes` of wall time, return the figures."""
    client_module = load_client()
    speed_bound, excursion_bound = replanner_bounds()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    domain_id = client_module.find_free_domain(domain_id)  # another run's nodes there would mix with ours
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    with tempfile.TemporaryDirectory(prefix="ros_soak_") as scratch:
        options = GraphOptions(mode="sim", real_time_factor=real_time_factor, viewer=viewer)
        processes = GraphProcesses(build_graph("replanner", options), env=dict(os.environ), log_dir=Path(scratch))
        processes.start()
        client = client_module.InflightClient("ros_soak", domain_id, odom_stride=5)
        died: list[str] = []
        try:
            if not client.wait_for_graph(90.0):
                raise RuntimeError("the graph did not come up (replanner, tracker, /clock, /odom)")
            pattern = client_module.Alternating(
                [client_module.CirclingGoal(seed), client_module.DriftingCourse(seed + 1)], PATTERN_PERIOD_S
            )
            if not client.first_plan(pattern, 90.0):
                logs = {q.name: q.read_text()[-600:] for q in Path(scratch).glob("*.log")}
                raise RuntimeError(
                    f"no trajectory was flown within 90 s: {client.first_plan_failure()}; node logs: {logs}"
                )
            since_sim = client.record.plans[0].stamp_s
            began_wall = time.monotonic()
            replanner_pid = processes.processes["replanner"].pid
            rss: list[tuple[float, float]] = []
            next_rss = [began_wall]

            def on_tick() -> None:
                now = time.monotonic()
                if now < next_rss[0]:
                    return
                next_rss[0] = now + RSS_PERIOD_S
                value = rss_mb(replanner_pid)
                if value is not None:
                    rss.append((now - began_wall, value))
                died.extend(n for n, p in processes.processes.items() if p.poll() is not None and n not in died)
                if died:
                    raise NodeDiedError(", ".join(died))

            with contextlib.suppress(NodeDiedError):  # reported as nodes_died
                client.fly(pattern, math.inf, 60.0 * minutes, (REPLAN_INTERVAL_S, REPLAN_INTERVAL_S), seed, on_tick)
            wall_s = time.monotonic() - began_wall
            value = rss_mb(replanner_pid)
            if value is not None:
                rss.append((wall_s, value))
            summary = client_module.summarise(
                client.record, speed_bound, excursion_bound, np.array(START_POSITION), since_sim
            )
            windows = latency_windows(client.record.sends, began_wall)
            overall = percentiles_ms(
                [s.latency_s for s in client.record.sends if s.latency_s is not None and s.wall_s >= began_wall]
            )
        finally:
            client.close()
            processes.stop()
            logs = {p.name: p.read_text()[-1500:] for p in Path(scratch).glob("*.log")}
    return {
        "benchmark": "ros_soak",
        "what": (
            "outside client replanning every 200 ms of sim time (circling goal and drifting 3-pose course, a minute "
            "each) through the sim graph (replanner, MuJoCo quadrotor_sim, tracker); safety checked from outside"
        ),
        "minutes": minutes,
        "domain_id": domain_id,
        "real_time_factor": real_time_factor,
        "wall_s": wall_s,
        "sim_s": summary.sim_s,
        "sends": summary.sends,
        "plans": summary.plans,
        "planned": summary.planned,
        "refused": summary.refused,
        "unanswered": summary.unanswered,
        "refusals_by_reason": summary.refusals,
        "speed_bound_m_s": speed_bound,
        "excursion_bound_m": excursion_bound,
        "plans_outside_certificate": summary.plans_outside_certificate,
        "plans_over_speed": summary.plans_over_speed,
        "plans_outside_box": summary.plans_outside_box,
        "plan_peak_speed_m_s": summary.plan_peak_speed_m_s,
        "plan_max_excursion_m": summary.plan_max_excursion_m,
        "vehicle_bound_m": excursion_bound + TRACKING_TOLERANCE_M,
        "vehicle_max_excursion_m": summary.vehicle_max_excursion_m,
        "vehicle_max_speed_m_s": summary.vehicle_max_speed_m_s,
        "vehicle_min_z_m": summary.vehicle_min_z_m,
        "vehicle_max_distance_m": summary.vehicle_max_distance_m,
        "crashed": summary.crashed,
        "crash_time_s": summary.crash_time_s,
        "nodes_died": died,
        "rss_start_mb": rss[0][1] if rss else None,
        "rss_end_mb": rss[-1][1] if rss else None,
        "rss_elapsed_s": (rss[-1][0] - rss[0][0]) if rss else None,
        "rss_growth_mb_per_h": growth_per_hour(rss),
        "rss_growth_endpoints_mb_per_h": endpoint_growth_per_hour(rss[0], rss[-1]) if rss else None,
        "rss_samples": [[t, y] for t, y in rss],
        "latency": overall,
        "latency_windows": windows,
        "logs_tail": logs if died else {},
        "platform": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="wall minutes of replanning (default 30)")
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_MINUTES:g} minutes; also SMOKE_TEST=1")
    parser.add_argument("--out", type=Path, default=None, help="write ros_soak.json and ros_soak.png here")
    parser.add_argument("--real-time-factor", type=float, default=1.0, help="sim pace (0: as fast as it goes)")
    parser.add_argument("--no-viewer", action="store_true", help="the replanner publishes no viewer topics")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--domain-id",
        type=int,
        default=int(os.environ.get("ROS_DOMAIN_ID", "78")),
        help="first ROS domain id tried (one with other nodes in it is skipped)",
    )
    args = parser.parse_args(argv)
    smoke = smoke_requested(args.smoke)
    minutes = SMOKE_MINUTES if smoke else args.minutes
    try:
        result = run(minutes, args.real_time_factor, args.domain_id, args.seed, not args.no_viewer)
    except RuntimeError as exc:
        print(f"ros_soak: error: {exc}", file=sys.stderr)
        return 1
    result["smoke"] = smoke
    result["figure"] = None
    if args.out is not None:
        figure = args.out / "ros_soak.png"
        write_figure(figure, result["latency_windows"], [(t, y) for t, y in result["rss_samples"]])
        result["figure"] = str(figure)
        write_json_atomic(args.out / "ros_soak.json", result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

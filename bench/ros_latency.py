"""Benchmark: waypoints message in -> trajectory message out through ROS 2 over loopback.

Starts the replanner (its own process, as in the graph) and the `latency_probe` node (another
process), which sends random 10-waypoint courses one at a time and times each until the trajectory
comes back. Prints one JSON object: `p50_ms`, `p99_ms` of that round, and in the same run the
planner's own time (`planner_p50_ms`, `planner_p99_ms`, `CertifiedPlanner.plan`) and the replanner's
callback-to-publish time, so the transport and message overhead can be read off. Target: p50 <= 5 ms.

Usage: ``python bench/ros_latency.py [--smoke] [--messages N]`` (or ``SMOKE_TEST=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import bench_prelude  # noqa: F401  (first: one BLAS thread, and this folder off sys.path)
import numpy as np

from mfrl_graph.graph import GraphOptions, GraphSpec, NodeSpec, build_graph
from mfrl_graph.runner import run_graph
from runkit.config import smoke_requested

TARGET_P50_MS = 5.0


def _percentiles(values: list[float]) -> dict[str, float | None]:
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return {"p50": None, "p99": None, "mean": None}
    return {
        "p50": float(np.percentile(finite, 50)),
        "p99": float(np.percentile(finite, 99)),
        "mean": float(np.mean(finite)),
    }


def run(messages: int, warmup: int, waypoints: int, domain_id: int, viewer: bool) -> dict[str, Any]:
    """Run the replanner and the probe; return the figures."""
    with tempfile.TemporaryDirectory(prefix="ros_latency_") as scratch:
        results_file = Path(scratch) / "latency.json"
        base = build_graph("replanner", GraphOptions(mode="external", viewer=viewer))
        probe = NodeSpec(
            "latency_probe",
            "latency_probe",
            {"messages": messages, "warmup": warmup, "waypoints": waypoints, "results_file": str(results_file)},
            (("replanner_status", "/replanner/status"),),
            ends_graph=True,
        )
        graph = GraphSpec("ros_latency", (*base.nodes, probe), base.params_file)
        env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
        outcome = run_graph(graph, env=env, log_dir=Path(scratch) / "logs", timeout_s=60.0 + 2.0 * (messages + warmup))
        if outcome.code != 0 or not results_file.is_file():
            logs = {p.name: p.read_text()[-1500:] for p in (Path(scratch) / "logs").glob("*.log")}
            raise RuntimeError(f"latency run failed: {outcome.reason}; logs: {logs}")
        raw = json.loads(results_file.read_text())
    latency, planner, replanner = (_percentiles(raw[k]) for k in ("latency_ms", "planner_ms", "replanner_ms"))
    return {
        "benchmark": "ros_latency",
        "what": (
            "nav_msgs/Path in -> trajectory_msgs/MultiDOFJointTrajectory out, two processes, loopback; the replanner "
            "alone (external mode, no odometry): each plan starts from the path's first pose, at rest"
        ),
        "waypoints": waypoints,
        "viewer_topics": viewer,
        "messages_sent": messages,
        "messages": len(raw["latency_ms"]),
        "errors": raw["errors"],
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "mean_ms": latency["mean"],
        "planner_p50_ms": planner["p50"],
        "planner_p99_ms": planner["p99"],
        "replanner_callback_to_publish_p50_ms": replanner["p50"],
        "replanner_callback_to_publish_p99_ms": replanner["p99"],
        "overhead_p50_ms": (latency["p50"] - planner["p50"]) if latency["p50"] and planner["p50"] else None,
        "target_p50_ms": TARGET_P50_MS,
        # a message without an answer (an error, a timeout) counts against the target: p50 over answers alone
        # would hide it
        "meets_target": bool(latency["p50"] is not None and latency["p50"] <= TARGET_P50_MS and not raw["errors"]),
        "platform": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
    }


def main() -> int:
    """Parse the arguments, run, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few messages (seconds); also SMOKE_TEST=1")
    parser.add_argument("--messages", type=int, default=300, help="timed messages (default 300)")
    parser.add_argument("--waypoints", type=int, default=10, help="waypoints per course (default 10)")
    parser.add_argument(
        "--no-viewer", action="store_true", help="the replanner publishes no viewer topics (launch arg viewer:=false)"
    )
    parser.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "77")))
    args = parser.parse_args()
    smoke = smoke_requested(args.smoke)
    messages, warmup = (20, 3) if smoke else (args.messages, 10)
    try:
        result = run(messages, warmup, args.waypoints, args.domain_id, not args.no_viewer)
    except RuntimeError as exc:
        print(f"ros_latency: error: {exc}", file=sys.stderr)
        return 1
    result["smoke"] = smoke
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The `latency_probe` node: times waypoints-in to trajectory-out through the replanner (bench/ros_latency.py).

It sends random courses on `waypoints` one at a time (at most one per `send_period_s`), each with its
own stamp, and times (wall clock, this process) from publishing to receiving the `trajectory` with
that stamp; the replanner's status for the same plan gives the planner's own time. Results go to
`results_file`; the node then exits.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from nav_msgs.msg import Path
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from trajectory_msgs.msg import MultiDOFJointTrajectory

from mfplan.courses import random_course
from mfrl import qos
from mfrl.configs import LatencyProbeConfig
from mfrl.conversions import path_from_points, stamp_to_ns
from mfrl.node_main import run_node
from mfrl.parameters import ConfigParameters
from mfrl.trajectory_wire import WireFormatError, read_trajectory
from runkit import write_json_atomic

FIRST_STAMP_S = 1000


class LatencyProbe(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("latency_probe")
        self.exit_code: int | None = None
        self.params = ConfigParameters(self, LatencyProbeConfig, read_only=True)
        config: LatencyProbeConfig = self.params.config
        self.config = config
        rng = np.random.default_rng(config.seed)
        total = config.warmup + config.messages
        self.courses = [random_course(rng, num_waypoints=config.waypoints) for _ in range(total)]
        self.index = 0
        self.sent_at = 0.0
        self.awaiting_ns: int | None = None
        self.latencies_ms: dict[int, float] = {}
        self.planner_ms: dict[int, float] = {}
        self.replanner_ms: dict[int, float] = {}
        self.errors: list[str] = []
        self.publisher = self.create_publisher(Path, "waypoints", qos.REQUEST)
        self.create_subscription(MultiDOFJointTrajectory, "trajectory", self.on_trajectory, qos.LATCHED, raw=True)
        self.create_subscription(DiagnosticStatus, "replanner_status", self.on_status, qos.REQUEST)
        self.create_timer(0.002, self.on_timer, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def on_trajectory(self, data: bytes) -> None:
        """Time the path this trajectory answers, read in full as a follower reads it."""
        try:
            stamp_ns = read_trajectory(data).stamp_ns
        except (WireFormatError, ValueError) as exc:  # counted as an error of the run, not a crash
            self.errors.append(f"unreadable trajectory: {exc}")
            self.awaiting_ns = None
            return
        received = time.perf_counter()
        if stamp_ns == self.awaiting_ns:
            self.latencies_ms[stamp_ns] = 1e3 * (received - self.sent_at)
            self.awaiting_ns = None

    def on_status(self, msg: DiagnosticStatus) -> None:
        """Keep the replanner's figures of each plan; count errors."""
        values = {kv.key: kv.value for kv in msg.values}
        if msg.level == DiagnosticStatus.ERROR:
            self.errors.append(msg.message)
            self.awaiting_ns = None
        elif "plan_stamp_ns" in values:
            stamp_ns = int(values["plan_stamp_ns"])
            self.planner_ms[stamp_ns] = float(values["planning_time_ms"])
            self.replanner_ms[stamp_ns] = float(values["latency_ms"])

    def on_timer(self) -> None:
        """Send the next path when the last one is answered (or timed out)."""
        if self.publisher.get_subscription_count() == 0:
            return
        now = time.perf_counter()
        if self.awaiting_ns is not None:
            if now - self.sent_at < self.config.answer_timeout_s:
                return
            self.errors.append(f"no trajectory within {self.config.answer_timeout_s} s")
            self.awaiting_ns = None
        if now - self.sent_at < self.config.send_period_s:
            return
        if self.index == len(self.courses):
            if now - self.sent_at > 0.5:  # the last status may follow its trajectory
                self.finish()
            return
        stamp = Time(sec=FIRST_STAMP_S + self.index)
        message = path_from_points(self.courses[self.index], self.config.frame_id, stamp)
        self.index += 1
        self.awaiting_ns = stamp_to_ns(stamp)
        self.sent_at = time.perf_counter()
        self.publisher.publish(message)

    def finish(self) -> None:
        """Write every timed plan (warm-up left out) and end."""
        first_timed_ns = (FIRST_STAMP_S + self.config.warmup) * 1_000_000_000
        timed = sorted(ns for ns in self.latencies_ms if ns >= first_timed_ns)
        results: dict[str, Any] = {
            "latency_ms": [self.latencies_ms[ns] for ns in timed],
            "planner_ms": [self.planner_ms.get(ns, float("nan")) for ns in timed],
            "replanner_ms": [self.replanner_ms.get(ns, float("nan")) for ns in timed],
            "errors": self.errors,
            "sent": len(self.courses),
            "waypoints": self.config.waypoints,
        }
        if self.config.results_file:
            write_json_atomic(self.config.results_file, results)
        self.exit_code = 0 if timed else 1


def main(args: list[str] | None = None) -> int:
    """Entry point of the `latency_probe` executable."""
    return run_node(LatencyProbe, args)


if __name__ == "__main__":
    raise SystemExit(main())

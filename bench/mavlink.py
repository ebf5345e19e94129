"""Benchmark: the bridge's setpoint stream at 50 Hz over UDP loopback, its period jitter and its CPU use.

The bridge's link (receive and heartbeat threads) and its setpoint streamer send SET_POSITION_TARGET_LOCAL_NED from
a trajectory to a real peer, a separate process that receives on a UDP port, for `--seconds`. Figures:

* `jitter_p50_ms`, `jitter_p99_ms`: |period - 20 ms| between consecutive sends (the streamer's own send times);
* `receiver_jitter_p99_ms`: the same seen by the peer (arrival times, after the loopback);
* `rate_hz`; `cpu_percent_of_core`: CPU time of this process (the bridge: link threads plus streamer) over wall time;
  `streamer_cpu_percent_of_core`: the streamer thread alone;
* `full_bridge_vs_px4sim`: the whole `Px4Bridge` (telemetry parsing at PX4's rates, heartbeats, time sync,
  failsafe monitor, streamer) in OFFBOARD against px4sim in another process: jitter, rate and this process's
  CPU. The CPU target is judged on this one;
* the baseline from the same run: a naive loop (`send; time.sleep(period)`) with the same encoder and socket.

Each is measured in three conditions (`streamer`, `full_bridge`, `baseline` hold them by name): `quiet_normal` (a quiet
machine, normal scheduling), `loaded_normal` (a busy Python process on every core, `--load-processes`) and
`loaded_realtime` (the same load, the streamer thread at SCHED_FIFO `--realtime-priority`; `realtime_granted` says
whether the OS allowed it). The top-level figures are the quiet run's.

Targets: p99 jitter <= 2 ms, CPU <= 5 % of a core. Usage: ``python bench/mavlink.py [--smoke] [--seconds S]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import textwrap
import time
from typing import Any

import bench_prelude  # noqa: F401  (first: one BLAS thread, and this folder off sys.path)
import numpy as np
import psutil

from px4link.config import LinkConfig
from px4link.connection import MavlinkConnection
from px4link.offboard import SetpointStreamer, period_jitter_ms
from px4link.setpoints import encode_target, target_from_derivatives
from runkit.config import smoke_requested

TARGET_JITTER_P99_MS = 2.0
TARGET_CPU_PERCENT = 5.0
RATE_HZ = 50.0

_SINK = textwrap.dedent(
    """
    import socket, sys, time, json
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    sock.settimeout(0.2)
    times = []
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        try:
            data = sock.recv(65535)
        except socket.timeout:
            continue
        if len(data) > 40:  # setpoints, not heartbeats
            times.append(time.monotonic())
    print(json.dumps(times), flush=True)
    """
)


class _Circle:
    """A 2 m circle at 1.5 m height, 4 s a lap, heading along the path."""

    def derivatives(self, t_s: float) -> np.ndarray:
        w = 2.0 * np.pi / 4.0
        c, s = np.cos(w * t_s), np.sin(w * t_s)
        d = np.zeros((3, 4))
        d[0] = [2.0 * c, 2.0 * s, 1.5, w * t_s + np.pi / 2]
        d[1] = [-2.0 * w * s, 2.0 * w * c, 0.0, w]
        d[2] = [-2.0 * w * w * c, -2.0 * w * w * s, 0.0, 0.0]
        return d


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "p50": float(np.percentile(values, 50)),
        "p99": float(np.percentile(values, 99)),
        "max": float(values.max()),
    }


def _start_sink(seconds: float) -> tuple[subprocess.Popen[str], int]:
    sink = subprocess.Popen(
        [sys.executable, "-c", _SINK, str(seconds)], stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL
    )
    assert sink.stdout is not None
    return sink, int(sink.stdout.readline())


def _sink_times(sink: subprocess.Popen[str]) -> np.ndarray:
    out, _ = sink.communicate(timeout=30)
    return np.array(json.loads(out.strip().splitlines()[-1]), dtype=np.float64)


def run_bridge(seconds: float, realtime_priority: int = 0) -> dict[str, Any]:
    """Stream through the bridge's link and streamer; return its figures."""
    sink, port = _start_sink(seconds + 1.0)
    conn = MavlinkConnection(LinkConfig(url=f"udpout:127.0.0.1:{port}")).start()
    trajectory = _Circle()
    start = time.monotonic()
    streamer = SetpointStreamer(
        conn,
        lambda now: target_from_derivatives(trajectory.derivatives(now - start)),
        RATE_HZ,
        realtime_priority=realtime_priority,
    )
    process = psutil.Process()
    cpu0, wall0 = process.cpu_times(), time.monotonic()
    streamer.start()
    time.sleep(seconds)
    streamer.stop()
    cpu1, wall1 = process.cpu_times(), time.monotonic()
    conn.close()
    sends = streamer.send_times_s()
    received = _sink_times(sink)
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    jitter = _percentiles(period_jitter_ms(sends, 1.0 / RATE_HZ))
    return {
        "jitter_p50_ms": jitter["p50"],
        "jitter_p99_ms": jitter["p99"],
        "jitter_max_ms": jitter["max"],
        "receiver_jitter_p99_ms": _percentiles(period_jitter_ms(received, 1.0 / RATE_HZ))["p99"],
        "rate_hz": float((sends.size - 1) / (sends[-1] - sends[0])) if sends.size > 1 else 0.0,
        "setpoints_sent": int(sends.size),
        "setpoints_received": int(received.size),
        "overruns": streamer.overruns,
        "cpu_percent_of_core": 100.0 * cpu_s / (wall1 - wall0),
        "streamer_cpu_percent_of_core": 100.0 * streamer.thread_cpu_s / (wall1 - wall0),
        "realtime_priority": realtime_priority if streamer.realtime else 0,
    }


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_full_bridge(seconds: float, realtime_priority: int = 0) -> dict[str, Any]:
    """The whole `Px4Bridge` in OFFBOARD against px4sim in its own process: figures of this process only.

    Everything the bridge runs on a vehicle runs here: receiving and parsing PX4's telemetry (attitude,
    position, odometry, battery, EKF status at PX4's onboard-link rates), heartbeats, time sync, the
    50 Hz failsafe monitor and the setpoint streamer flying a circle.
    """
    from px4link.bridge import Px4Bridge
    from px4link.config import BridgeConfig, OffboardConfig

    port = _free_udp_port()
    vehicle = subprocess.Popen(
        [sys.executable, "-m", "px4sim.cli", "--url", f"udpout:127.0.0.1:{port}", "--status-period-s", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    config = BridgeConfig(
        link=LinkConfig(url=f"udpin:127.0.0.1:{port}"),
        offboard=OffboardConfig(rate_hz=RATE_HZ, realtime_priority=realtime_priority),
    )
    try:
        with Px4Bridge(config) as bridge:
            if not bridge.wait_vehicle(20.0):
                raise RuntimeError(f"px4sim did not answer: {vehicle.stderr.read() if vehicle.stderr else ''}")
            deadline = time.monotonic() + 10.0
            while bridge.telemetry().local_position is None and time.monotonic() < deadline:
                time.sleep(0.05)
            bridge.follow(_Circle(), time.monotonic())
            bridge.start_offboard()
            first = bridge.streamer.send_times_s().size
            process = psutil.Process()
            cpu0, wall0 = process.cpu_times(), time.monotonic()
            received0 = bridge.counters().link.frames_received
            time.sleep(seconds)
            cpu1, wall1 = process.cpu_times(), time.monotonic()
            received = bridge.counters().link.frames_received - received0
            sends = bridge.streamer.send_times_s()[first:]
            mode = bridge.telemetry().status
    finally:
        vehicle.terminate()
        vehicle.wait(timeout=10)
    wall = wall1 - wall0
    jitter = _percentiles(period_jitter_ms(sends, 1.0 / RATE_HZ))
    return {
        "jitter_p50_ms": jitter["p50"],
        "jitter_p99_ms": jitter["p99"],
        "rate_hz": float((sends.size - 1) / (sends[-1] - sends[0])) if sends.size > 1 else 0.0,
        "cpu_percent_of_core": 100.0 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / wall,
        "telemetry_messages_per_s": received / wall,
        "vehicle_mode": mode.mode_name if mode is not None else "unknown",
    }


def run_baseline(seconds: float) -> dict[str, Any]:
    """The naive loop: encode, send, sleep(period); same encoder and a plain UDP socket."""
    from pymavlink.dialects.v20 import common as mavlink2

    sink, port = _start_sink(seconds + 1.0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mav = mavlink2.MAVLink(None, srcSystem=1, srcComponent=191)
    trajectory = _Circle()
    period = 1.0 / RATE_HZ
    sends: list[float] = []
    cpu0 = time.thread_time()
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        message = encode_target(mav, target_from_derivatives(trajectory.derivatives(now - start)), 0, 1, 1)
        sends.append(time.monotonic())
        sock.sendto(message.pack(mav), ("127.0.0.1", port))  # type: ignore[attr-defined]
        time.sleep(period)
    wall = time.monotonic() - start
    cpu_s = time.thread_time() - cpu0
    sock.close()
    received = _sink_times(sink)
    times = np.array(sends)
    jitter = _percentiles(period_jitter_ms(times, period))
    return {
        "jitter_p50_ms": jitter["p50"],
        "jitter_p99_ms": jitter["p99"],
        "receiver_jitter_p99_ms": _percentiles(period_jitter_ms(received, period))["p99"],
        "rate_hz": float((times.size - 1) / (times[-1] - times[0])),
        "cpu_percent_of_core": 100.0 * cpu_s / wall,
    }


class _Load:
    """`processes` busy loops (plain Python, normal priority) for the length of a `with` block: a loaded computer."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> _Load:
        self._procs = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"], stdout=subprocess.DEVNULL)
            for _ in range(self.processes)
        ]
        time.sleep(0.5)  # let them take the cores
        return self

    def __exit__(self, *_exc: object) -> None:
        for proc in self._procs:
            proc.kill()
            proc.wait()


def _conditions(realtime_priority: int, load_processes: int) -> list[tuple[str, int, int]]:
    """(name, SCHED_FIFO priority, busy processes) of each measured condition."""
    return [
        ("quiet_normal", 0, 0),
        ("loaded_normal", 0, load_processes),
        ("loaded_realtime", realtime_priority, load_processes),
    ]


def main() -> None:
    """Run the stream, the whole bridge and the baseline quiet and under load, at normal and real-time priority."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="about 2 s per run (for tests)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per run (default 20; smoke 2)")
    parser.add_argument(
        "--realtime-priority", type=int, default=20, help="SCHED_FIFO priority of the real-time runs (default 20)"
    )
    parser.add_argument(
        "--load-processes", type=int, default=os.cpu_count() or 1,
        help="busy processes that load the machine in the loaded runs (default: one per core)",
    )  # fmt: skip
    args = parser.parse_args()
    smoke = smoke_requested(args.smoke)
    seconds = args.seconds if args.seconds is not None else (2.0 if smoke else 20.0)
    streamer: dict[str, Any] = {}
    full: dict[str, Any] = {}
    baseline: dict[str, Any] = {}
    for name, priority, load in _conditions(args.realtime_priority, args.load_processes):
        with _Load(load):
            load_avg = os.getloadavg()[0]
            streamer[name] = {**run_bridge(seconds, priority), "busy_processes": load, "load_avg_1min": load_avg}
            full[name] = {**run_full_bridge(seconds, priority), "busy_processes": load}
            if priority == 0:
                baseline[name] = {**run_baseline(seconds), "busy_processes": load}
    realtime_granted = streamer["loaded_realtime"]["realtime_priority"] > 0
    bridge = streamer["quiet_normal"]
    result = {
        "benchmark": "mavlink_setpoint_stream",
        "what": "SET_POSITION_TARGET_LOCAL_NED at 50 Hz over UDP loopback to a separate receiving process; "
        "quiet, and with busy processes on every core at normal and at SCHED_FIFO priority",
        "smoke": smoke,
        "seconds": seconds,
        **bridge,
        "streamer": streamer,
        "full_bridge_vs_px4sim": full["quiet_normal"],
        "full_bridge": full,
        "baseline_naive_sleep": baseline["quiet_normal"],
        "baseline": baseline,
        "realtime_granted": realtime_granted,
        "jitter_p99_ratio_baseline_over_bridge": (
            baseline["quiet_normal"]["jitter_p99_ms"] / bridge["jitter_p99_ms"] if bridge["jitter_p99_ms"] > 0 else None
        ),
        "jitter_p99_ratio_loaded_normal_over_realtime": (
            streamer["loaded_normal"]["jitter_p99_ms"] / streamer["loaded_realtime"]["jitter_p99_ms"]
            if streamer["loaded_realtime"]["jitter_p99_ms"] > 0
            else None
        ),
        "rate_error_baseline_percent": 100.0 * (baseline["quiet_normal"]["rate_hz"] - RATE_HZ) / RATE_HZ,
        "rate_error_bridge_percent": 100.0 * (bridge["rate_hz"] - RATE_HZ) / RATE_HZ,
        "target_jitter_p99_ms": TARGET_JITTER_P99_MS,
        "target_cpu_percent_of_core": TARGET_CPU_PERCENT,
        "meets_jitter_target": {
            name: bool(run["jitter_p99_ms"] <= TARGET_JITTER_P99_MS) for name, run in streamer.items()
        },
        "meets_cpu_target": {
            name: bool(run["cpu_percent_of_core"] <= TARGET_CPU_PERCENT) for name, run in full.items()
        },
        "platform": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""bench/ros_latency.py in smoke mode: one JSON object with the round-trip figures and the planner's own time."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .script_loader import load_bench_script, run_bench_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "ros_latency.py"


@pytest.mark.bench
@pytest.mark.ros
def test_reports_round_trip_and_planner_time_from_the_same_run() -> None:
    pytest.importorskip("rclpy", reason="the ROS 2 wheels (extra `ros`) are not installed")
    env = {"SMOKE_TEST": "1", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    domain = str(200 + os.getpid() % 30)
    result = run_bench_script(SCRIPT, "--smoke", "--domain-id", domain, env=env, timeout_s=180)
    assert result["messages"] == 20
    assert result["load"].startswith("none")
    assert "quiet" not in result
    # The only refusal allowed: "behind", a replanner starved of CPU on a loaded machine (CI runs two workers)
    # saying so instead of planning from stale inputs; the bench then does not claim its target.
    assert all(error.startswith("path refused: behind") for error in result["errors"]), result["errors"]
    assert not (result["errors"] and result["meets_target"])
    assert 0.0 < result["p50_ms"] <= result["p99_ms"]
    # The planner runs inside the round trip: its own time is part of it.
    assert 0.0 < result["planner_p50_ms"] < result["p50_ms"]
    assert result["replanner_callback_to_publish_p50_ms"] < result["p50_ms"]


def _bench_module() -> Any:
    return load_bench_script(SCRIPT, "ros_latency_bench")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _cpu_ticks(pid: int) -> int:
    """User CPU time of a process so far, in clock ticks (/proc/<pid>/stat's utime)."""
    return int(Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[11])


@pytest.mark.bench
def test_the_load_keeps_cores_busy_only_while_it_measures() -> None:
    bench = _bench_module()
    with bench.busy_cores(2) as pids:
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)
        deadline = time.monotonic() + 10.0
        while not all(_cpu_ticks(pid) >= 10 for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_cpu_ticks(pid) >= 10 for pid in pids)  # spinning (user time), not sleeping
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(RuntimeError), bench.busy_cores(1) as pids:
        raise RuntimeError("the round failed")
    assert not _alive(pids[0])  # killed whatever happened in the round
    assert bench.load_description(1) == "one core busy (1 spin process)"
    assert bench.load_description(0).startswith("none")


@pytest.mark.bench
def test_the_quiet_baseline_runs_without_the_load_and_the_headline_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench_module()
    real_busy_cores = bench.busy_cores
    spinning: list[int] = []
    seen: list[int] = []

    @contextmanager
    def recording_busy_cores(spinners: int) -> Iterator[list[int]]:
        with real_busy_cores(spinners) as pids:
            spinning.extend(pids)
            try:
                yield pids
            finally:
                spinning.clear()

    def fake_run(*_args: object) -> dict[str, Any]:
        seen.append(sum(_alive(pid) for pid in spinning))
        p50, p99 = (8.0, 20.0) if seen[-1] else (4.0, 5.0)
        return {"p50_ms": p50, "p99_ms": p99, "messages": 3, "errors": []}

    monkeypatch.setattr(bench, "run", fake_run)
    monkeypatch.setattr(bench, "busy_cores", recording_busy_cores)
    result = bench.measure(3, 0, 10, 0, True, 1, True)
    assert seen == [0, 1]  # the baseline first, quiet; then the headline round under one busy core
    assert result["load"] == "one core busy (1 spin process)"
    assert result["quiet"]["load"].startswith("none")
    assert (result["p50_ms"], result["quiet"]["p50_ms"]) == (8.0, 4.0)
    assert result["load_ratio_p50"] == pytest.approx(2.0)
    assert result["load_ratio_p99"] == pytest.approx(4.0)
    assert "quiet" not in bench.measure(3, 0, 10, 0, True, 1, False)

"""Smoke run of `bench/mavlink.py`: one JSON object with the stream's jitter, rate and CPU, and the naive baseline.

Timings are reported, not held to the targets here (the machines are shared and noisy); bounds are generous.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .script_loader import run_bench_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "mavlink.py"


@pytest.mark.bench
@pytest.mark.mavlink
def test_reports_jitter_rate_and_cpu_with_a_baseline_from_the_same_run() -> None:
    pytest.importorskip("psutil")
    result = run_bench_script(SCRIPT, "--smoke", timeout_s=240)
    assert result["smoke"] is True
    # Rates are timed on a shared, loaded CI machine: the bands catch a broken pacing (no stream, double rate,
    # a 10 Hz stall), and the figures themselves are the benchmark's JSON, not this test's assertions.
    assert 30.0 < result["rate_hz"] < 60.0
    assert result["setpoints_received"] >= 0.9 * result["setpoints_sent"], "the peer must receive the stream"
    assert 0.0 <= result["jitter_p50_ms"] <= result["jitter_p99_ms"]
    assert 0.0 < result["cpu_percent_of_core"] < 50.0
    full = result["full_bridge_vs_px4sim"]  # the whole bridge, flying px4sim in OFFBOARD
    assert full["vehicle_mode"] == "OFFBOARD"
    assert 30.0 < full["rate_hz"] < 60.0
    assert full["telemetry_messages_per_s"] > 50.0, "the bridge must be parsing the vehicle's telemetry"
    assert 0.0 < full["cpu_percent_of_core"] < 100.0
    baseline = result["baseline_naive_sleep"]
    # The naive loop drifts: sleep(period) after the work runs slower than 50 Hz; the deadline-paced stream does not.
    assert abs(result["rate_error_bridge_percent"]) < abs(result["rate_error_baseline_percent"])
    assert baseline["rate_hz"] < 50.0
    # The three conditions the README's table reports, each with the load it ran under.
    for section in ("streamer", "full_bridge"):
        assert set(result[section]) == {"quiet_normal", "loaded_normal", "loaded_realtime"}
    assert set(result["baseline"]) == {"quiet_normal", "loaded_normal"}
    assert result["streamer"]["quiet_normal"]["busy_processes"] == 0
    assert result["streamer"]["loaded_normal"]["busy_processes"] == (os.cpu_count() or 1)
    granted = result["realtime_granted"]
    assert result["streamer"]["loaded_realtime"]["realtime_priority"] == (20 if granted else 0)
    assert result["streamer"]["quiet_normal"] == {k: result[k] for k in result["streamer"]["quiet_normal"]}

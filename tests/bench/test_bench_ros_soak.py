"""bench/ros_soak.py in smoke mode (2 minutes of replanning every 200 ms, MuJoCo in the loop): what a user relies on.

Run through its real entry point (a subprocess, as a user runs it). Asserted: no plan outside its certificate,
the vehicle inside its bound and not crashed, the replanner's RSS measured at both ends with the growth
computed from them, and latency percentiles that are ordered. Timings themselves are reported, not asserted.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from .script_loader import load_bench_script, run_bench_script

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "ros_soak.py"

# One flight graph at a time: two MuJoCo graphs flat out on two cores starve each other's replanner
# (seconds without an answer, seen in CI); `make test` runs pytest with --dist loadgroup.
pytestmark = [
    pytest.mark.ros,
    pytest.mark.sim,
    pytest.mark.bench,
    pytest.mark.slow,
    pytest.mark.xdist_group("flight_graph"),
]


@pytest.fixture(scope="module")
def smoke_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    pytest.importorskip("rclpy", reason="the ROS 2 wheels (extra `ros`) are not installed")
    out = tmp_path_factory.mktemp("ros_soak")
    env = {"SMOKE_TEST": "1", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    domain = str(170 + os.getpid() % 25)
    result = run_bench_script(SCRIPT, "--out", str(out), "--domain-id", domain, env=env, timeout_s=420)
    assert json.loads((out / "ros_soak.json").read_text()) == result
    return result, out


def test_smoke_mode_replans_for_two_minutes_every_200_ms(smoke_result: tuple[dict[str, Any], Path]) -> None:
    result, _ = smoke_result
    assert result["smoke"] is True
    assert result["minutes"] == 2.0
    assert result["wall_s"] >= 0.95 * 120.0
    assert result["nodes_died"] == [], result["logs_tail"]
    # A path every 200 ms of sim time: at least half the ideal count even if the sim ran slow.
    assert result["sends"] >= 0.5 * result["sim_s"] / 0.2
    assert result["plans"] > 0
    assert result["planned"] + result["refused"] + result["unanswered"] == result["sends"]
    assert sum(result["refusals_by_reason"].values()) == result["refused"]
    assert all(reason.strip() for reason in result["refusals_by_reason"])


def test_no_plan_outside_the_certificate(smoke_result: tuple[dict[str, Any], Path]) -> None:
    result, _ = smoke_result
    figures = {k: result[k] for k in ("plan_peak_speed_m_s", "plan_max_excursion_m", "plans", "refusals_by_reason")}
    assert result["plans_outside_certificate"] == 0, figures
    assert result["plans_over_speed"] <= result["plans_outside_certificate"]
    assert result["plans_outside_box"] <= result["plans_outside_certificate"]


def test_vehicle_stays_inside_its_bound_and_does_not_crash(smoke_result: tuple[dict[str, Any], Path]) -> None:
    result, _ = smoke_result
    figures = {k: result[k] for k in ("vehicle_max_excursion_m", "vehicle_max_speed_m_s", "crash_time_s")}
    assert not result["crashed"], figures
    assert result["vehicle_min_z_m"] > 0.05, figures
    assert result["vehicle_max_excursion_m"] <= result["vehicle_bound_m"], figures
    assert result["vehicle_bound_m"] == pytest.approx(result["excursion_bound_m"] + 0.3)
    assert result["vehicle_max_speed_m_s"] <= result["speed_bound_m_s"] + 0.5, figures


def test_rss_is_measured_at_both_ends_and_growth_comes_from_them(smoke_result: tuple[dict[str, Any], Path]) -> None:
    result, _ = smoke_result
    samples = result["rss_samples"]
    assert len(samples) >= 10  # every 10 s over two minutes
    assert result["rss_start_mb"] == samples[0][1] > 0.0
    assert result["rss_end_mb"] == samples[-1][1] > 0.0
    hours = result["rss_elapsed_s"] / 3600.0
    assert result["rss_elapsed_s"] == pytest.approx(samples[-1][0] - samples[0][0])
    expected = (result["rss_end_mb"] - result["rss_start_mb"]) / hours
    assert result["rss_growth_endpoints_mb_per_h"] == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert math.isfinite(result["rss_growth_mb_per_h"])


def test_latency_percentiles_are_ordered_overall_and_per_minute(smoke_result: tuple[dict[str, Any], Path]) -> None:
    result, out = smoke_result
    overall = result["latency"]
    assert overall["n"] > 0
    assert 0.0 < overall["p50_ms"] <= overall["p99_ms"]
    windows = result["latency_windows"]
    assert [w["minute"] for w in windows] == sorted({w["minute"] for w in windows})
    assert windows[0]["minute"] == 0
    assert sum(w["n"] for w in windows) == overall["n"]
    for window in windows:
        assert 0.0 < window["p50_ms"] <= window["p99_ms"]
    assert result["figure"] == str(out / "ros_soak.png")
    assert (out / "ros_soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_growth_fit_and_endpoints_agree_on_a_straight_line() -> None:
    bench = load_bench_script(SCRIPT, "bench_ros_soak")
    samples = [(t, 300.0 + 0.01 * t) for t in range(0, 121, 10)]  # 36 MiB an hour
    assert bench.growth_per_hour(samples) == pytest.approx(36.0)
    assert bench.endpoint_growth_per_hour(samples[0], samples[-1]) == pytest.approx(36.0)
    assert bench.growth_per_hour(samples[:1]) is None

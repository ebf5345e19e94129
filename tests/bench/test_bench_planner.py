"""Smoke run of `bench/planner.py`: one JSON object with every latency, the baseline, targets and pass flags.

Timings are reported, never asserted: the machines are noisy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from mfplan.policy import TimeAllocationPolicy, save_policy

from .script_loader import run_bench_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "planner.py"


def _run_smoke(*args: str) -> dict[str, Any]:
    return run_bench_script(SCRIPT, "--smoke", *args)


@pytest.mark.bench
def test_smoke_run_reports_every_figure(tmp_path: Path) -> None:
    torch.manual_seed(0)
    checkpoint = save_policy(tmp_path / "policy.pt", TimeAllocationPolicy(), {"purpose": "bench smoke test"})
    result = _run_smoke("--checkpoint", str(checkpoint))
    assert result["smoke"] is True
    assert result["policy"]["source"] == "checkpoint"
    assert result["policy"]["metadata"] == {"purpose": "bench smoke test"}
    assert result["num_waypoints"] == 10
    for key in (
        "policy_inference_ms",
        "policy_min_snap_ms",
        "certified_plan_ms",
        "certified_plan_paced_ms",
        "baseline_ms",
        "certificate_check_ms",
    ):
        figure = result[key]
        assert 0 < figure["p50_ms"] <= figure["p99_ms"] < math.inf, key
    assert result["latency"]["policy_forward"]["p50_ms"] > 0
    certificate = result["certificate"]
    assert 0 < certificate["old_sampling_ms"]["p50_ms"] <= certificate["old_sampling_ms"]["p99_ms"]
    assert 0 < certificate["ratio_p50"] < math.inf
    assert 0 < certificate["ratio_p99"] < math.inf
    assert 0.0 <= certificate["passed_fraction"] <= 1.0
    assert result["policy_inference_ms"]["samples"] == result["num_courses"] * result["repeats_per_course"]
    assert result["certified_plan_paced_ms"]["samples"] == 2 * result["num_courses"]
    assert result["certified_plan_paced_ms"]["idle_before_each_call_s"] == 0.05
    assert 0 < result["paced_over_back_to_back_p50"] < math.inf
    assert sum(result["latency"]["certified_by"].values()) == result["num_courses"]
    for key in ("policy_min_snap", "certified_plan"):
        assert 0 < result["speedup_vs_baseline"][key] < math.inf
    assert set(result["pass"]) == {
        "policy_min_snap_p50_ms",
        "policy_min_snap_p99_ms",
        "speedup_vs_baseline_policy_min_snap",
        "speedup_vs_baseline_certified_plan",
    }
    assert all(isinstance(flag, bool) for flag in result["pass"].values())
    assert result["targets"]["policy_min_snap_p50_ms_max"] == 1.0


@pytest.mark.bench
def test_smoke_run_times_the_shipped_checkpoint_by_default() -> None:
    from mfplan.planner import DEFAULT_CHECKPOINT

    result = _run_smoke()
    assert result["policy"]["source"] == "checkpoint"
    assert result["policy"]["path"] == str(DEFAULT_CHECKPOINT)

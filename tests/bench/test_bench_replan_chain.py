"""Smoke run of `bench/replan_chain.py`: one JSON object with every planner's counts, consistent with each other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .script_loader import run_bench_script

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "replan_chain.py"


@pytest.mark.bench
def test_smoke_run_reports_every_planner() -> None:
    result = run_bench_script(SCRIPT, "--smoke")
    assert result["smoke"] is True
    assert result["seeds"] == 3
    assert set(result["planners"]) == {
        "shipped",
        "shipped_before",
        "shipped_repair_only",
        "shipped_pass_horizon_0_3s",
        "tightened_in_motion",
        "tightened_in_motion_before",
    }
    assert result["candidate"] is None
    for name, figures in result["planners"].items():
        assert 0 < figures["replans"] <= 3 * 3, name  # at most three moves a seed
        assert figures["served"] + figures["refused"] == figures["replans"], name
        assert sum(figures["refused_by_constraint"].values()) == figures["refused"], name
        assert sum(figures["repairs_of_served"].values()) == figures["served"], name
        assert 0 < figures["planning_ms"]["p50"] <= figures["planning_ms"]["p99"], name
    reference, shipped = result["reference"]["shipped"], result["planners"]["shipped"]
    assert reference["replans"] == shipped["served"]
    assert reference["planner_near_stops"] == shipped["min_speed_within_1_5_s"]["near_stops"]
    assert 0 <= reference["near_stops"] <= reference["reference_found"] <= reference["replans"]
    also, avoided = (
        reference["planner_near_stops_the_reference_also_makes"],
        reference["planner_near_stops_the_reference_avoids"],
    )
    assert also + avoided <= reference["planner_near_stops"]
    for kind, row in result["comparison"].items():
        assert row["refused_now"] == result["planners"][kind]["refused"]
        assert row["refused_before"] == result["planners"][f"{kind}_before"]["refused"]


def test_a_bad_seed_count_is_refused_with_a_clear_error() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--seeds", "0"], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )
    assert completed.returncode == 2
    assert "--seeds must be >= 1" in completed.stderr


@pytest.mark.bench
def test_a_candidate_checkpoint_is_flown_beside_the_shipped_one() -> None:
    """The shipped file named as the candidate flies exactly as the shipped planner (the counts do not depend on
    the machine); a missing candidate is an error, not a silent fallback to the shipped file."""
    from mfplan.planner import DEFAULT_CHECKPOINT

    result = run_bench_script(SCRIPT, "--smoke", "--candidate", str(DEFAULT_CHECKPOINT))
    assert result["candidate"] == str(DEFAULT_CHECKPOINT)
    shipped, candidate = result["planners"]["shipped"], result["planners"]["candidate"]
    for key in ("replans", "served", "refused_by_constraint", "repairs_of_served", "min_speed_within_1_5_s"):
        assert candidate[key] == shipped[key], key
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--candidate", str(REPO_ROOT / "no_such_policy.pt")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert completed.returncode != 0
    assert "no_such_policy.pt" in completed.stderr

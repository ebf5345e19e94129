"""`mfrl eval --smoke`: every method plans every course, plans are flown in held-out wind, the baseline is
matched to MFRL's feasibility, and the report says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mfplan.configs import EvalConfig
from mfplan.evaluation import run_evaluation
from mfplan.policy import TimeAllocationPolicy, save_policy

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_smoke_evaluation_writes_a_complete_report(tmp_path: Path) -> None:
    checkpoint = save_policy(tmp_path / "policy.pt", TimeAllocationPolicy(), {"command": "test"})
    config = EvalConfig(checkpoint=checkpoint, out_dir=tmp_path / "eval", smoke=True, num_workers=2, progress=False)
    report = run_evaluation(config)
    rows = report["rows"]
    assert {r["set"] for r in rows} == {"d=0m", "d=2m", "moving d=1m"}
    assert [r["set"] for r in rows if r["method"] == "mfrl"] == ["d=0m", "d=2m", "moving d=1m"]
    frontier = report["frontier"]
    matched = frontier["matching_margin"]
    methods = {"heuristic", "baseline", "mfrl"} | ({"baseline-matched"} if matched != float("inf") else set())
    assert {r["method"] for r in rows} == methods | {"reference", "baseline-certified"}
    # The matched baseline is at least as feasible as MFRL on the nominal set (that is how its margin is chosen),
    # and the curve it comes from only rises with the margin.
    nominal = {r["method"]: r for r in rows if r["set"] == "d=0m"}
    if "baseline-matched" in nominal:
        assert nominal["baseline-matched"]["feasible_rotorpy"] >= nominal["mfrl"]["feasible_rotorpy"]
        assert nominal["baseline-matched"]["time_vs_baseline"] == pytest.approx(matched)
    assert frontier["feasible"] == sorted(frontier["feasible"])
    for row in rows:
        assert row["courses"] == 3
        # Every analytic-boundary plan exists; MFRL's are certified, so all three methods plan every course.
        assert row["planned"] == 3
        assert 0.0 <= row["feasible_mujoco"] <= 1.0
        assert 0.0 <= row["feasible_rotorpy"] <= 1.0
        assert row["flights_rotorpy"] == 3  # one held-out wind in the smoke run
        assert row["planning_ms_p50"] > 0
    baseline_rows = [r for r in rows if r["method"] == "baseline"]
    assert all(r["time_vs_baseline"] == pytest.approx(1.0) for r in baseline_rows)
    # The certified reference optimisation is every row's second yardstick.
    assert all(r["time_vs_reference"] == pytest.approx(1.0) for r in rows if r["method"] == "reference")
    written = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert [r["method"] for r in written["rows"]] == [r["method"] for r in rows]
    assert "mfrl_time_vs_matched_baseline" in written["targets"] or matched == float("inf")
    # MFRL's plans (and only MFRL's) are also flown with a payload the controller is not told about.
    for row in rows:
        assert row["flights_rotorpy_mass+15"] == (3 if row["method"] == "mfrl" else 0)
    targets = written["targets"]
    assert targets["mfrl_flights_rotorpy_mass+15_all_sets"] == 9
    # Moving replans are their own rows and figures (one held-out wind: one RotorPy flight per plan).
    moving = next(r for r in rows if r["method"] == "mfrl" and r["set"] == "moving d=1m")
    assert (targets["mfrl_flights_rotorpy_from_rest"], targets["mfrl_flights_rotorpy_moving"]) == (6, moving["planned"])
    assert targets["mfrl_feasible_rotorpy_moving"] == pytest.approx(moving["feasible_rotorpy"])
    assert 0.0 <= targets["mfrl_feasible_rotorpy_mass+15_all_sets"] <= 1.0
    assert targets["mfrl_time_vs_analytic_boundary_d=0m"] == pytest.approx(nominal["mfrl"]["time_vs_baseline"])
    assert targets["mfrl_time_vs_reference_moving d=1m"] == pytest.approx(moving["time_vs_reference"])
    # The baseline's own split under MFRL's certificate: never shorter than the certified reference optimisation.
    certified = next(r for r in rows if r["method"] == "baseline-certified" and r["set"] == "d=0m")
    assert certified["time_vs_reference"] >= 1.0 - 1e-6
    shorter = 100.0 * (1.0 - nominal["mfrl"]["mean_total_time_s"] / certified["mean_total_time_s"])
    assert targets["mfrl_shorter_than_certified_baseline_percent_d=0m"] == pytest.approx(shorter)
    assert (tmp_path / "eval" / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert "time_vs_baseline" in (tmp_path / "eval" / "report.md").read_text()

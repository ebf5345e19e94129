"""The SPPO report: one command runs every stage, reuses finished ones, and states the claims it checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmalign.report import SPPOReportConfig, summarise
from runkit.testing import run_console_script


@pytest.mark.slow
def test_the_report_runs_every_stage_once_and_rebuilds_from_finished_runs(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run_console_script("llmalign", ["report-sppo", "--out-dir", str(out), "--seeds", "0", "1"])
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert set(report["win_rate_vs_sft"]) == {"sppo", "dpo", "ipo"}
    assert report["iterations"] == 2  # the smoke runs' iterations
    for rows in report["win_rate_vs_sft"].values():
        assert [r["iteration"] for r in rows] == [1, 2]
        assert all(len(r["per_seed"]) == 2 for r in rows)
    assert set(report["claims"]) == {
        "sppo_win_rate_rises_every_iteration", "sppo_above_dpo_at_every_iteration", "sppo_above_ipo_at_every_iteration"
    }  # fmt: skip
    assert Path(report["plot"]).stat().st_size > 1000
    assert json.loads((out / "sppo_report.json").read_text())["win_rate_vs_sft"] == report["win_rate_vs_sft"]

    # a stage that died before its summary is run again; the finished ones are reused as they are
    (out / "dpo" / "seed1" / "summary.json").unlink()
    before = (out / "sppo" / "seed0" / "summary.json").read_bytes()
    again = run_console_script("llmalign", ["report-sppo", "--out-dir", str(out), "--seeds", "0", "1"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "dpo seed 1" in again.stderr
    assert "sppo seed 0" not in again.stderr
    assert (out / "sppo" / "seed0" / "summary.json").read_bytes() == before
    assert json.loads(again.stdout)["win_rate_vs_sft"] == report["win_rate_vs_sft"]


def test_the_claims_are_read_from_the_mean_win_rates() -> None:
    def run(*rates: float) -> dict[str, object]:
        return {"history": [{"win_rate_vs_sft": 0.5}] + [{"win_rate_vs_sft": r} for r in rates]}

    stages = {
        "judge": {"accuracy": 0.8},
        "runs": {
            "sppo/seed0": run(0.55, 0.6, 0.65), "dpo/seed0": run(0.5, 0.62, 0.6), "ipo/seed0": run(0.5, 0.5, 0.5),
        },
    }  # fmt: skip
    report = summarise(stages, SPPOReportConfig(seeds=(0,)))
    assert report["claims"] == {
        "sppo_win_rate_rises_every_iteration": True,
        "sppo_above_dpo_at_every_iteration": False,  # 0.6 < 0.62 at iteration 2
        "sppo_above_ipo_at_every_iteration": True,
    }
    assert report["win_rate_vs_sft"]["sppo"][2]["win_rate_vs_sft"]["mean"] == pytest.approx(0.65)

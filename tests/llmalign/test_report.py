"""The SPPO report: one command runs every stage, reuses finished ones, tunes each loss's beta on seeds of its
own, and checks the claims on the means and on seed-paired intervals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from llmalign.report import LOSSES, SPPOReportConfig, run_key, run_stages, summarise
from runkit.config import ConfigValueError
from runkit.testing import run_console_script


@pytest.mark.slow
def test_the_report_runs_every_stage_once_and_rebuilds_from_finished_runs(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run_console_script("llmalign", ["report-sppo", "--out-dir", str(out), "--seeds", "0", "1"])
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert set(report["win_rate_vs_sft"]) == {"sppo", "dpo", "ipo"}
    assert report["betas"] == {"sppo": 0.1, "dpo": 0.1, "ipo": 0.1}
    assert report["tuning"] is None
    assert report["iterations"] == 2  # the smoke runs' iterations
    for rows in report["win_rate_vs_sft"].values():
        assert [r["iteration"] for r in rows] == [1, 2]
        assert all(len(r["per_seed"]) == 2 for r in rows)
    assert [r["n"] for r in report["differences"]["sppo_gain"]] == [2, 2]
    headroom = report["best_of_k_headroom"]
    assert headroom["k"] == 5
    assert 0 <= headroom["hidden_judge_best_of_k"]["mean"] <= 1
    assert "sppo_above_dpo_significant_at_every_iteration" in report["claims"]
    assert Path(report["plot"]).stat().st_size > 1000
    assert json.loads((out / "sppo_report.json").read_text())["win_rate_vs_sft"] == report["win_rate_vs_sft"]

    # a stage that died before its summary is run again; the finished ones are reused as they are
    (out / "dpo" / "beta0.1" / "seed1" / "summary.json").unlink()
    before = (out / "sppo" / "beta0.1" / "seed0" / "summary.json").read_bytes()
    again = run_console_script("llmalign", ["report-sppo", "--out-dir", str(out), "--seeds", "0", "1"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "dpo beta 0.1 seed 1" in again.stderr
    assert "sppo beta 0.1 seed 0" not in again.stderr
    assert (out / "sppo" / "beta0.1" / "seed0" / "summary.json").read_bytes() == before
    assert json.loads(again.stdout)["win_rate_vs_sft"] == report["win_rate_vs_sft"]


def _history(*rates: float) -> dict[str, object]:
    return {"history": [{"win_rate_vs_sft": 0.5}] + [{"win_rate_vs_sft": r} for r in rates]}


def _stages(runs: dict[str, dict[str, object]]) -> dict[str, object]:
    return {"judge": {"accuracy": 0.8}, "runs": runs, "betas": {loss: 0.1 for loss in LOSSES}}


def test_the_mean_claims_are_read_from_the_mean_win_rates() -> None:
    runs = {
        run_key("sppo", 0.1, 0): _history(0.55, 0.6, 0.65),
        run_key("dpo", 0.1, 0): _history(0.5, 0.62, 0.6),
        run_key("ipo", 0.1, 0): _history(0.5, 0.5, 0.5),
    }
    report = summarise(_stages(runs), SPPOReportConfig(seeds=(0,)))
    claims = report["claims"]
    assert claims["sppo_win_rate_rises_every_iteration"] is True
    assert claims["sppo_above_dpo_at_every_iteration"] is False  # 0.6 < 0.62 at iteration 2
    assert claims["sppo_above_ipo_at_every_iteration"] is True
    # one seed has no interval: nothing is significant
    assert not any(v for k, v in claims.items() if k.endswith("significant") or "_significant_" in k)
    assert report["win_rate_vs_sft"]["sppo"][2]["win_rate_vs_sft"]["mean"] == pytest.approx(0.65)


def test_the_significance_claims_use_intervals_paired_by_seed() -> None:
    # SPPO is above DPO by 0.05 +- 0.01 on every seed although the seeds' levels differ by far more: paired,
    # that is significant. IPO beats SPPO on one seed by a lot: its interval crosses zero.
    levels = {0: 0.0, 1: 0.2, 2: -0.15}
    runs: dict[str, dict[str, object]] = {}
    for seed, level in levels.items():
        wobble = 0.01 * seed
        runs[run_key("sppo", 0.1, seed)] = _history(0.55 + level, 0.6 + level, 0.65 + level)
        runs[run_key("dpo", 0.1, seed)] = _history(0.5 + level + wobble, 0.55 + level, 0.6 + level - wobble)
        ipo = 0.9 if seed == 1 else 0.45 + level
        runs[run_key("ipo", 0.1, seed)] = _history(ipo, ipo, ipo)
    report = summarise(_stages(runs), SPPOReportConfig(seeds=(0, 1, 2)))
    gain = report["differences"]["sppo_gain"]
    assert [row["mean"] for row in gain] == pytest.approx([0.05 + sum(levels.values()) / 3, 0.05, 0.05])
    assert report["claims"]["sppo_above_dpo_significant_at_every_iteration"] is True
    assert report["claims"]["sppo_above_ipo_significant_at_every_iteration"] is False
    assert report["claims"]["sppo_above_ipo_at_every_iteration"] is True  # on the means, not significant
    # the SFT model's own level differs from 0.5 + level, so iteration 1's gain is not shown
    assert report["claims"]["sppo_rises_every_iteration_significant"] is False
    # unpaired, the seeds' levels would hide the DPO difference: its interval is wider than the paired one
    unpaired = report["win_rate_vs_sft"]["sppo"][0]["win_rate_vs_sft"]["ci95"]
    paired = report["differences"]["sppo_minus_dpo"][0]["ci95"]
    assert unpaired[1] - unpaired[0] > 10 * (paired[1] - paired[0])


def _finished(folder: Path, summary: dict[str, object]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary))


def test_each_loss_gets_the_beta_that_did_best_on_the_tuning_seeds(tmp_path: Path) -> None:
    """Finished stages are reused, so the tuning and the report read these summaries without training."""
    config = SPPOReportConfig(out_dir=tmp_path, seeds=(0, 1), tune_betas=(0.1, 1.0), tune_seeds=(7, 8))
    _finished(tmp_path / "judge", {"accuracy": 0.7})
    for seed in (0, 1, 7, 8):
        _finished(tmp_path / "sft" / f"seed{seed}", {})
    for seed, (oracle, learned) in {0: (0.8, 0.6), 1: (0.7, 0.5)}.items():
        figures = {"k": 5.0, "hidden_judge_best_of_k": oracle, "learned_judge_best_of_k": learned}
        (tmp_path / "headroom").mkdir(exist_ok=True)
        (tmp_path / "headroom" / f"seed{seed}.json").write_text(json.dumps(figures))
    finals = {("sppo", 0.1): 0.56, ("sppo", 1.0): 0.58, ("dpo", 0.1): 0.57, ("dpo", 1.0): 0.52}
    finals |= {("ipo", 0.1): 0.55, ("ipo", 1.0): 0.55}  # a tie: the first listed wins
    for (loss, beta), final in finals.items():
        for seed in (7, 8):
            _finished(tmp_path / run_key(loss, beta, seed), _history(0.5, final + 0.001 * seed))
    chosen = {"sppo": 1.0, "dpo": 0.1, "ipo": 0.1}
    for loss, beta in chosen.items():
        for seed in (0, 1):
            _finished(tmp_path / run_key(loss, beta, seed), _history(0.6, 0.6))
    stages = run_stages(config)
    assert stages["betas"] == chosen
    assert stages["tuning"]["chosen"] == chosen
    assert set(stages["runs"]) == {run_key(loss, beta, seed) for loss, beta in chosen.items() for seed in (0, 1)}
    report = summarise(stages, config)
    assert report["betas"] == chosen
    assert report["best_of_k_headroom"]["learned_judge_best_of_k"]["mean"] == pytest.approx(0.55)
    rows = report["tuning"]["final_win_rate_vs_sft"]["sppo"]
    assert [r["final_win_rate_vs_sft"]["mean"] for r in rows] == pytest.approx([0.5675, 0.5875])


def test_tuning_seeds_must_not_be_report_seeds() -> None:
    with pytest.raises(ConfigValueError, match="tune_seeds"):
        SPPOReportConfig(seeds=(0, 1, 2), tune_betas=(0.1, 1.0), tune_seeds=(2, 3))
    with pytest.raises(ConfigValueError, match="tune_betas"):
        SPPOReportConfig(tune_betas=(0.1, 0.0))
    for bad in (0.0, -0.1, math.inf, math.nan):
        with pytest.raises(ConfigValueError, match="dpo_beta"):
            SPPOReportConfig(dpo_beta=bad)

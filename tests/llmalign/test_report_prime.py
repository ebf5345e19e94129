"""The PRIME report: the accuracies over seeds, the paired differences and the claims against hand values (no
training), the SFT chain's stage settings, and one smoke run of the whole command that reuses its finished
stages when run again."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmalign.model import TinyLMConfig
from llmalign.report_prime import (
    PRIMEReportConfig,
    check_claims,
    common_steps,
    samples_table,
    sft_stage_config,
    sft_stage_names,
    summarise,
)
from runkit.config import ConfigValueError
from runkit.testing import run_console_script

T1 = 12.7062047  # t_{0.975, 1}


def _history(*accuracies: tuple[float, float]) -> list[dict[str, Any]]:
    """Evaluation rows at (step, greedy accuracy); the sampled accuracy is 0.1 below the greedy one."""
    return [
        {"step": step, "heldout_accuracy": acc, "heldout_accuracy_sampled": acc - 0.1, "heldout_step_accuracy": acc}
        for step, acc in accuracies
    ]


def _run(*accuracies: tuple[float, float], trained: int = 256, sampled: int = 300) -> dict[str, Any]:
    samples = {"sampled_responses": sampled, "trained_rollouts": trained}
    return {"history": _history(*accuracies), "steps": 40, "samples": samples, "wall_s": 1.0}


RUNS = {
    "prime/seed0": _run((0, 0.40), (20, 0.45), (40, 0.50)),
    "prime/seed1": _run((0, 0.50), (20, 0.52), (40, 0.58), sampled=320),
    "rloo/seed0": _run((0, 0.40), (20, 0.44), (40, 0.46)),
    "rloo/seed1": _run((0, 0.50), (20, 0.51), (30, 0.9), (40, 0.54)),  # an evaluation the others lack
}


def test_the_summary_averages_each_step_over_seeds_and_pairs_the_final_differences() -> None:
    report = summarise({"runs": RUNS}, PRIMEReportConfig(seeds=(0, 1)))
    assert report["steps"] == [0.0, 20.0, 40.0]  # step 30 is not in every run
    assert report["final_step"] == 40.0
    greedy = report["accuracy"]["heldout_accuracy"]
    assert [r["per_seed"] for r in greedy["prime"]] == [[0.40, 0.50], [0.45, 0.52], [0.50, 0.58]]
    np.testing.assert_allclose([r["mean"] for r in greedy["prime"]], [0.45, 0.485, 0.54])
    np.testing.assert_allclose([r["mean"] for r in greedy["rloo"]], [0.45, 0.475, 0.50])
    half = T1 * (0.1 / math.sqrt(2)) / math.sqrt(2)  # t * sd / sqrt(n) of [0.4, 0.5]
    np.testing.assert_allclose(greedy["prime"][0]["ci95"], [0.45 - half, 0.45 + half], rtol=1e-6)
    sampled = report["accuracy"]["heldout_accuracy_sampled"]
    np.testing.assert_allclose([r["mean"] for r in sampled["prime"]], [0.35, 0.385, 0.44])

    # the SFT model: step 0, the same for both methods
    assert report["sft_is_the_step0_of_both_methods"] is True
    assert report["sft"]["heldout_accuracy"]["per_seed"] == [0.40, 0.50]
    assert report["sft"]["heldout_accuracy"]["mean"] == pytest.approx(0.45)

    differences = report["difference_at_final_step"]["heldout_accuracy"]
    np.testing.assert_allclose(differences["prime_minus_sft"]["per_seed"], [0.10, 0.08])
    assert differences["prime_minus_sft"]["mean"] == pytest.approx(0.09)
    half = T1 * (0.02 / math.sqrt(2)) / math.sqrt(2)
    np.testing.assert_allclose(differences["prime_minus_sft"]["ci95"], [0.09 - half, 0.09 + half], rtol=1e-6)
    np.testing.assert_allclose(differences["prime_minus_rloo"]["per_seed"], [0.04, 0.04])
    np.testing.assert_allclose(differences["prime_minus_rloo"]["ci95"], [0.04, 0.04], atol=1e-12)  # no spread
    np.testing.assert_allclose(differences["rloo_minus_sft"]["per_seed"], [0.06, 0.04])
    assert report["prime_relative_gain_over_sft"]["heldout_accuracy"] == pytest.approx(0.2)  # 0.09 / 0.45
    assert report["prime_relative_gain_over_sft"]["heldout_accuracy_sampled"] == pytest.approx(0.09 / 0.35)

    assert report["claims"] == {
        "prime_above_sft": True,
        "prime_above_rloo": True,
        "rloo_above_sft": True,
        "prime_minus_sft_interval_excludes_zero": False,  # two seeds: a wide interval
        "prime_minus_sft_interval_above_zero": False,
        "prime_minus_rloo_interval_excludes_zero": True,
        "prime_minus_rloo_interval_above_zero": True,
        "rloo_minus_sft_interval_excludes_zero": False,
        "rloo_minus_sft_interval_above_zero": False,
    }
    assert report["claims_sampled"]["prime_above_rloo"] is True

    assert report["samples"]["matched"] is True  # as many trained-on rollouts; the sampled ones may differ
    assert report["samples"]["per_run"]["prime/seed1"] == {"steps": 40, "sampled_responses": 320,
                                                           "trained_rollouts": 256}  # fmt: skip


def test_one_seed_gives_means_without_intervals_and_equal_is_not_above() -> None:
    runs = {"prime/seed3": _run((0, 0.4), (10, 0.4)), "rloo/seed3": _run((0, 0.4), (10, 0.45))}
    report = summarise({"runs": runs}, PRIMEReportConfig(seeds=(3,)))
    assert report["accuracy"]["heldout_accuracy"]["prime"][1]["ci95"] is None
    assert report["claims"]["prime_above_sft"] is False  # 0.4 = 0.4
    assert report["claims"]["prime_above_rloo"] is False
    assert report["claims"]["rloo_above_sft"] is True
    assert not any(v for k, v in report["claims"].items() if "interval" in k)  # no interval excludes anything


def test_a_step0_that_differs_between_the_methods_is_flagged() -> None:
    runs = {"prime/seed0": _run((0, 0.4), (10, 0.5)), "rloo/seed0": _run((0, 0.41), (10, 0.45))}
    report = summarise({"runs": runs}, PRIMEReportConfig(seeds=(0,)))
    assert report["sft_is_the_step0_of_both_methods"] is False
    assert report["sft"]["heldout_accuracy"]["per_seed"] == [0.4]  # PRIME's step 0


def test_the_claims_read_the_paired_intervals() -> None:
    sft = {"mean": 0.45, "ci95": [0.4, 0.5]}
    final = {"prime": {"mean": 0.5}, "rloo": {"mean": 0.52}}
    differences = {
        "prime_minus_sft": {"mean": 0.05, "ci95": [0.01, 0.09]},
        "prime_minus_rloo": {"mean": -0.02, "ci95": [-0.03, -0.01]},
        "rloo_minus_sft": {"mean": 0.07, "ci95": None},
    }
    assert check_claims(sft, final, differences) == {
        "prime_above_sft": True,
        "prime_above_rloo": False,
        "rloo_above_sft": True,
        "prime_minus_sft_interval_excludes_zero": True,
        "prime_minus_sft_interval_above_zero": True,
        "prime_minus_rloo_interval_excludes_zero": True,  # below zero: RLOO ahead
        "prime_minus_rloo_interval_above_zero": False,
        "rloo_minus_sft_interval_excludes_zero": False,
        "rloo_minus_sft_interval_above_zero": False,
    }


def test_the_sample_counts_must_match_per_seed() -> None:
    runs = {"prime/seed0": _run((0, 0.4), trained=256), "rloo/seed0": _run((0, 0.4), trained=240)}
    table = samples_table(runs, [0])
    assert table["matched_per_seed"] == {"seed0": False}
    assert table["matched"] is False
    old = {"prime/seed0": {"steps": 2, "history": []}, "rloo/seed0": {"steps": 2, "history": []}}  # no counts
    assert samples_table(old, [0])["matched"] is False
    assert common_steps({"a": {"history": _history((0, 0.1), (5, 0.2))}, "b": {"history": _history((5, 0.3))}}) == [5.0]


def test_the_sft_chain_starts_each_stage_from_the_last_with_fresh_examples(tmp_path: Path) -> None:
    config = PRIMEReportConfig(out_dir=tmp_path, seeds=(2,))
    assert sft_stage_names(config) == ["sft_a", "sft_b", "sft_c"]
    first = sft_stage_config(config, 0, 2, None)
    assert (first.seed, first.examples, first.epochs, first.learning_rate) == (2, 6000, 3, 2e-3)
    assert first.model == TinyLMConfig(hidden_size=128, layers=4, heads=4, intermediate_size=384)
    assert first.init_model is None
    assert first.task == "arithmetic"
    assert first.run_path == tmp_path / "sft_a" / "seed2"
    last = sft_stage_config(config, 2, 2, tmp_path / "sft_b" / "seed2" / "model")
    assert (last.seed, last.examples, last.epochs, last.learning_rate) == (202, 20000, 1, 1e-3)
    assert last.init_model == tmp_path / "sft_b" / "seed2" / "model"
    smoke = sft_stage_config(PRIMEReportConfig(out_dir=tmp_path, smoke=True), 1, 0, None).resolved()
    assert (smoke.examples, smoke.epochs, smoke.model.hidden_size) == (64, 1, 32)  # the smoke rule shrank them


def test_the_config_refuses_mismatched_sft_stages_and_an_unknown_update() -> None:
    with pytest.raises(ConfigValueError, match="sft_epochs"):
        PRIMEReportConfig(sft_examples=(6000, 10000), sft_epochs=(3,), sft_learning_rates=(2e-3, 1e-3))
    with pytest.raises(ConfigValueError, match="prm_update"):
        PRIMEReportConfig(prm_update="during")
    with pytest.raises(ConfigValueError, match="sft_seed_stride"):
        PRIMEReportConfig(seeds=(0, 100))
    with pytest.raises(ConfigValueError, match="seeds"):
        PRIMEReportConfig(seeds=())


@pytest.mark.slow
def test_the_report_runs_every_stage_once_and_rebuilds_from_finished_runs(tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["report-prime", "--out-dir", str(out), "--seeds", "0"]
    done = run_console_script("llmalign", args)  # SMOKE_TEST=1: every stage at its smoke sizes
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["steps"] == [0.0, 1.0, 2.0]  # the smoke runs: 2 steps, evaluated after each
    for metric in ("heldout_accuracy", "heldout_accuracy_sampled"):
        assert set(report["accuracy"][metric]) == {"prime", "rloo"}
        for rows in report["accuracy"][metric].values():
            assert [r["step"] for r in rows] == report["steps"]
            assert all(len(r["per_seed"]) == 1 and r["ci95"] is None for r in rows)
        assert set(report["difference_at_final_step"][metric]) == {"prime_minus_sft", "prime_minus_rloo",
                                                                  "rloo_minus_sft"}  # fmt: skip
    assert set(report["claims"]) == {
        "prime_above_sft", "prime_above_rloo", "rloo_above_sft",
        "prime_minus_sft_interval_excludes_zero", "prime_minus_sft_interval_above_zero",
        "prime_minus_rloo_interval_excludes_zero", "prime_minus_rloo_interval_above_zero",
        "rloo_minus_sft_interval_excludes_zero", "rloo_minus_sft_interval_above_zero",
    }  # fmt: skip
    assert report["sft_is_the_step0_of_both_methods"] is True
    assert report["samples"]["matched"] is True
    assert set(report["samples"]["per_run"]) == {"prime/seed0", "rloo/seed0"}
    assert all(r["steps"] == 2 and r["sampled_responses"] >= 32 for r in report["samples"]["per_run"].values())
    assert set(report["sft_stages"]) == {"sft_a/seed0", "sft_b/seed0", "sft_c/seed0"}
    assert [report["sft_stages"][f"sft_{c}/seed0"]["seed"] for c in "abc"] == [0, 100, 200]
    assert Path(report["plot"]).stat().st_size > 1000
    assert json.loads((out / "prime_report.json").read_text())["accuracy"] == report["accuracy"]
    assert (out / "sft_c" / "seed0" / "model" / "model.safetensors").is_file()

    # a stage that died before its summary is run again; the finished ones are reused as they are
    (out / "rloo" / "seed0" / "summary.json").unlink()
    before = {path: path.read_bytes() for path in out.glob("*/**/summary.json")}
    again = run_console_script("llmalign", args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "rloo seed 0" in again.stderr
    for stage in ("sft_a seed 0", "sft_b seed 0", "sft_c seed 0", "prime seed 0"):
        assert stage not in again.stderr
    assert {path: path.read_bytes() for path in before} == before
    assert json.loads(again.stdout)["accuracy"] == report["accuracy"]

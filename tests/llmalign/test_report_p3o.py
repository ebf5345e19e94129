"""The P3O report: the frontier (upper envelope on a common KL grid) against hand values, the claims read from
it, and one smoke run of the whole command that reuses its finished stages when run again."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmalign.configs import JudgeConfig
from llmalign.report_p3o import P3OReportConfig, check_claims, envelope, envelope_indices, kl_grid, summarise
from runkit.config import ConfigValueError
from runkit.testing import run_console_script

NAN = float("nan")


def test_the_envelope_is_the_best_reward_at_or_below_each_kl() -> None:
    kls = [0.0, 0.5, 1.0, 2.0, 0.3, 0.2]
    rewards = [0.5, 0.7, 0.6, 0.9, NAN, 0.55]  # an unscorable point (NaN) never counts
    grid = [-0.1, 0.0, 0.25, 0.5, 0.75, 1.5, 2.0, 3.0]
    assert envelope_indices(kls, rewards, grid) == [None, 0, 5, 1, 1, 1, 3, 3]
    np.testing.assert_array_equal(envelope(kls, rewards, grid), [NAN, 0.5, 0.55, 0.7, 0.7, 0.7, 0.9, 0.9])
    assert envelope_indices([0.0, 0.1], [0.5, 0.5], [0.2]) == [0]  # a tie: the first point


def test_the_grid_ends_at_the_largest_kl_every_curve_reaches() -> None:
    grid = kl_grid([[0.0, 1.0, 3.0], [0.0, 2.0], [0.0, 4.0, NAN]], points=4)
    np.testing.assert_allclose(grid, [0.5, 1.0, 1.5, 2.0])
    assert grid[-1] == 2.0  # exactly: a curve's last point lies on the grid's last KL
    assert kl_grid([[0.0, 0.6]], points=3)[-1] == 0.6
    np.testing.assert_array_equal(kl_grid([[0.0, -0.1], [0.0, 1.0]], points=2), [0.0, 0.0])  # never left KL 0


def _history(*points: tuple[float, float]) -> list[dict[str, Any]]:
    """Evaluation rows at (kl, win rate); the judge's score is twice the win rate, the scorable fraction equals it."""
    return [
        {"update": 20.0 * i, "kl_to_sft": kl, "win_rate_vs_sft": win, "judge_score": 2 * win,
         "scorable_fraction": win, "rm_score": 0.0}
        for i, (kl, win) in enumerate(points)
    ]  # fmt: skip


SFT = (0.0, 0.5)  # update 0: the SFT model itself
HISTORIES = {
    ("p3o", 0.1, 0): [SFT, (0.3, 0.6), (0.6, 0.7)],
    ("p3o", 0.5, 0): [SFT, (0.15, 0.55)],
    ("p3o", 0.1, 1): [SFT, (0.35, 0.65), (0.9, 0.8)],
    ("p3o", 0.5, 1): [SFT, (0.1, 0.52)],
    ("ppo", 0.1, 0): [SFT, (0.5, 0.58), (1.2, 0.62)],
    ("ppo", 0.5, 0): [SFT, (0.3, 0.52)],
    ("ppo", 0.1, 1): [SFT, (0.6, 0.6)],
    ("ppo", 0.5, 1): [SFT, (0.15, 0.51)],
}


def _stages(histories: dict[tuple[str, float, int], list[tuple[float, float]]]) -> dict[str, Any]:
    runs = {f"{v}/kl{k:g}/seed{s}": {"history": _history(*pts), "updates": 40} for (v, k, s), pts in histories.items()}
    return {"judge": {"accuracy": 0.7, "mean_abs_error": 0.1}, "runs": runs}


def test_the_summary_reads_each_frontier_on_the_common_grid_and_pairs_the_seeds() -> None:
    separate = {("p3o-separate", k, s): pts for (v, k, s), pts in HISTORIES.items() if v == "ppo"}  # PPO's twin
    config = P3OReportConfig(seeds=(0, 1), kl_coefs=(0.1, 0.5), variants=("p3o", "p3o-separate", "ppo"), grid_points=3)
    report = summarise(_stages({**HISTORIES, **separate}), config)
    # K = min(0.6, 0.9, 1.2, 0.6) over the (variant, seed) curves
    np.testing.assert_allclose(report["kl_grid"], [0.2, 0.4, 0.6])
    wins = report["frontier"]["win_rate_vs_sft"]
    assert [r["per_seed"] for r in wins["p3o"]] == [[0.55, 0.52], [0.6, 0.65], [0.7, 0.65]]
    assert [r["per_seed"] for r in wins["ppo"]] == [[0.5, 0.51], [0.52, 0.51], [0.58, 0.6]]
    np.testing.assert_allclose([r["mean"] for r in wins["p3o"]], [0.535, 0.625, 0.675])
    differences = report["difference_vs_ppo"]["win_rate_vs_sft"]
    assert set(differences) == {"p3o", "p3o-separate"}
    np.testing.assert_allclose([r["per_seed"] for r in differences["p3o"]], [[0.05, 0.01], [0.08, 0.14], [0.12, 0.05]])
    first = differences["p3o"][0]
    half = 12.7062047 * 0.04 / math.sqrt(2) / math.sqrt(2)  # t_{0.975, 1} * sd / sqrt(n)
    np.testing.assert_allclose(first["ci95"], [0.03 - half, 0.03 + half], rtol=1e-6)
    assert first["n"] == 2
    assert report["claims"] == {
        "p3o_above_ppo_at_every_kl": True,
        "p3o_minus_ppo_interval_excludes_zero_at": 0,  # two seeds: wide intervals
        "p3o_minus_ppo_interval_above_zero_at": 0,
        "p3o_separate_above_ppo_at_every_kl": False,  # equal is not above
        "p3o_separate_minus_ppo_interval_excludes_zero_at": 0,  # [0, 0]
        "p3o_separate_minus_ppo_interval_above_zero_at": 0,
    }
    # the secondary reward: the judge's score, with the scorable fraction of the points the frontier takes
    scores = report["frontier"]["judge_score"]["p3o"]
    np.testing.assert_allclose([r["mean"] for r in scores], [1.07, 1.25, 1.35])
    np.testing.assert_allclose([r["scorable_fraction"] for r in scores], [0.535, 0.625, 0.675])
    assert report["claims_judge_score"]["p3o_above_ppo_at_every_kl"] is True
    assert len(report["points"]["p3o"]) == 10
    assert report["points"]["p3o"][1] == {"seed": 0, "kl_coef": 0.1, "update": 20.0, "kl_to_sft": 0.3,
                                          "win_rate_vs_sft": 0.6, "judge_score": 1.2, "scorable_fraction": 0.6,
                                          "rm_score": 0.0}  # fmt: skip


def test_a_run_with_no_scorable_response_leaves_its_point_out_of_the_judge_score_frontier() -> None:
    stages = _stages({("p3o", 0.1, 0): [SFT, (0.4, 0.7)], ("ppo", 0.1, 0): [SFT, (0.4, 0.6)]})
    stages["runs"]["p3o/kl0.1/seed0"]["history"][1].update(judge_score=None, scorable_fraction=0.0)  # as JSON has it
    report = summarise(stages, P3OReportConfig(seeds=(0,), kl_coefs=(0.1,), variants=("p3o", "ppo"), grid_points=2))
    assert [r["mean"] for r in report["frontier"]["judge_score"]["p3o"]] == [1.0, 1.0]  # the SFT point's
    assert [r["mean"] for r in report["frontier"]["win_rate_vs_sft"]["p3o"]] == [0.5, 0.7]
    assert report["frontier"]["win_rate_vs_sft"]["p3o"][1]["ci95"] is None  # one seed
    assert report["claims"]["p3o_above_ppo_at_every_kl"] is False  # equal at the first grid KL


def test_the_claims_count_the_grid_kls_whose_paired_interval_excludes_zero() -> None:
    def rows(*values: tuple[float, list[float] | None]) -> list[dict[str, Any]]:
        return [{"kl": 0.1 * i, "mean": m, "ci95": ci, "n": 3} for i, (m, ci) in enumerate(values)]

    frontier = {
        "p3o": rows((0.6, None), (0.7, None), (0.8, None)),
        "p3o-separate": rows((0.6, None), (0.5, None), (0.8, None)),
        "ppo": rows((0.55, None), (0.6, None), (0.7, None)),
    }
    differences = {
        "p3o": rows((0.05, [-0.01, 0.11]), (0.1, [0.02, 0.18]), (0.1, [0.01, 0.19])),
        "p3o-separate": rows((0.05, [0.01, 0.09]), (-0.1, [-0.2, -0.01]), (0.1, None)),
    }
    assert check_claims(frontier, differences) == {
        "p3o_above_ppo_at_every_kl": True,
        "p3o_minus_ppo_interval_excludes_zero_at": 2,
        "p3o_minus_ppo_interval_above_zero_at": 2,
        "p3o_separate_above_ppo_at_every_kl": False,
        "p3o_separate_minus_ppo_interval_excludes_zero_at": 2,
        "p3o_separate_minus_ppo_interval_above_zero_at": 1,
    }


def test_the_config_refuses_an_unknown_variant_and_a_pairwise_judge() -> None:
    with pytest.raises(ConfigValueError, match="variants"):
        P3OReportConfig(variants=("p3o", "dpo"))
    with pytest.raises(ConfigValueError, match=r"judge\.kind"):
        P3OReportConfig(judge=JudgeConfig(kind="pairwise"))


@pytest.mark.slow
def test_the_report_runs_every_stage_once_and_rebuilds_from_finished_runs(tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["report-p3o", "--out-dir", str(out), "--seeds", "0", "--kl-coefs", "0.1"]
    done = run_console_script("llmalign", args)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert set(report["frontier"]) == {"win_rate_vs_sft", "judge_score"}
    assert set(report["frontier"]["win_rate_vs_sft"]) == {"p3o", "p3o-separate", "ppo"}
    assert set(report["difference_vs_ppo"]["win_rate_vs_sft"]) == {"p3o", "p3o-separate"}
    assert len(report["kl_grid"]) == 12
    for rows in report["frontier"]["win_rate_vs_sft"].values():
        assert [r["kl"] for r in rows] == report["kl_grid"]
        assert all(len(r["per_seed"]) == 1 and r["ci95"] is None for r in rows)
    assert set(report["claims"]) == {
        "p3o_above_ppo_at_every_kl", "p3o_minus_ppo_interval_excludes_zero_at", "p3o_minus_ppo_interval_above_zero_at",
        "p3o_separate_above_ppo_at_every_kl", "p3o_separate_minus_ppo_interval_excludes_zero_at",
        "p3o_separate_minus_ppo_interval_above_zero_at",
    }  # fmt: skip
    assert set(report["updates_per_run"].values()) == {2}  # the smoke runs' updates
    assert len(report["points"]["ppo"]) == 3  # updates 0, 1 and 2
    assert Path(report["plot"]).stat().st_size > 1000
    assert json.loads((out / "p3o_report.json").read_text())["frontier"] == report["frontier"]

    # a stage that died before its summary is run again; the finished ones are reused as they are
    (out / "ppo" / "kl0.1" / "seed0" / "summary.json").unlink()
    before = {path: path.read_bytes() for path in out.glob("*/**/summary.json")}
    again = run_console_script("llmalign", args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "ppo kl0.1 seed 0" in again.stderr
    for stage in ("reward model", "sft seed 0", "p3o kl0.1 seed 0", "p3o-separate kl0.1 seed 0"):
        assert stage not in again.stderr
    assert {path: path.read_bytes() for path in before} == before
    assert json.loads(again.stdout)["frontier"] == report["frontier"]

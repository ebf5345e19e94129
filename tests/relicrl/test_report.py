"""The ReLIC report: its claims are computed on paired seeds, and one command writes JSON, table and plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from relicrl.report import ReportConfig, build_report, in_context_claims


def rows(*curves: list[float]) -> list[dict[str, list[float]]]:
    return [{"success_by_episode": curve} for curve in curves]


def test_claims_pair_seeds_and_say_when_an_interval_excludes_zero() -> None:
    per_seed = {
        "relic": rows([0.2, 0.6, 0.8, 0.9], [0.3, 0.5, 0.7, 0.8], [0.2, 0.7, 0.9, 0.9]),
        "rl2-lstm": rows([0.2, 0.3, 0.3, 0.2], [0.3, 0.2, 0.2, 0.3], [0.2, 0.3, 0.2, 0.3]),
    }
    claims = in_context_claims(per_seed)
    # ReLIC: second half (episodes 3-4) minus episode 1 = 0.65, 0.45, 0.7 per seed.
    assert claims["gain"]["relic"]["mean"] == pytest.approx(np.mean([0.65, 0.45, 0.7]))
    assert claims["relic_rises_in_context_significant"]
    # The LSTM's curve is flat: its gain is 0.05, -0.05, 0.05 and not significant.
    assert claims["gain"]["rl2-lstm"]["mean"] == pytest.approx(np.mean([0.05, -0.05, 0.05]))
    assert not claims["rl2-lstm_rises_in_context_significant"]
    # ReLIC minus the LSTM over episodes 2-4, paired by seed.
    differences = [2.3 / 3 - 0.8 / 3, 2 / 3 - 0.7 / 3, 2.5 / 3 - 0.8 / 3]
    assert claims["relic_minus"]["rl2-lstm"]["mean"] == pytest.approx(np.mean(differences))
    low, high = claims["relic_minus"]["rl2-lstm"]["ci95"]
    assert 0 < low < claims["relic_minus"]["rl2-lstm"]["mean"] < high
    assert claims["relic_above_rl2-lstm_significant"]


def test_a_variant_worse_than_relic_in_one_seed_only_is_not_significant() -> None:
    per_seed = {
        "relic": rows([0.2, 0.6, 0.8], [0.2, 0.3, 0.3], [0.2, 0.6, 0.8]),
        "relic-no-sink": rows([0.2, 0.5, 0.7], [0.2, 0.9, 0.9], [0.2, 0.5, 0.7]),
    }
    claims = in_context_claims(per_seed)
    assert not claims["relic_above_relic-no-sink"]
    assert not claims["relic_above_relic-no-sink_significant"]


def test_one_command_writes_the_report_with_its_claims(tmp_path: Path) -> None:
    payload = build_report(ReportConfig(env="darkroom-6x6", smoke=True, out_dir=tmp_path, progress=False))
    out = tmp_path / "darkroom-6x6"
    saved = json.loads((out / "report.json").read_text())
    assert saved["claims"] == json.loads(json.dumps(payload["claims"]))
    assert set(saved["claims"]["gain"]) == {"relic", "rl2-lstm"}
    assert "rl2-lstm" in saved["claims"]["relic_minus"]
    assert "ReLIC minus rl2-lstm" in (out / "report.md").read_text()
    assert (out / "success_vs_episodes.png").stat().st_size > 1000
    assert (out / "relic" / "seed0" / "policy.pt").is_file()


def test_steps_to_goal_count_up_to_the_goal_and_a_miss_counts_every_step() -> None:
    from relicnav import make_trial_env, trial_seeds
    from relicrl.evaluate import run_trials
    from relicrl.model import ModelSpec, build_policy

    torch.manual_seed(0)
    policy = build_policy(ModelSpec(vector_dim=2, num_actions=5))
    layouts = trial_seeds("darkroom-6x6", "eval", 8)
    results = run_trials(policy, "darkroom-6x6", layouts, episodes=3, demo_episodes=1, seed=0)
    env = make_trial_env("darkroom-6x6")
    for row, layout in enumerate(layouts):
        env.new_trial(layout)
        assert env.goal is not None
        # The expert's episode walks straight to the goal from (0, 0).
        assert results.steps_to_goal[row, 0] == max(1, int(env.goal.sum()))
    missed = ~results.success
    assert missed.any(), "an untrained policy should miss some goals"
    np.testing.assert_array_equal(results.steps_to_goal[missed], results.steps[missed])
    assert (results.steps_to_goal[results.success] <= results.steps[results.success]).all()

"""`bench/rl_sps.py`: policyopt's PPO against the in-file CleanRL-style loop, same settings, same run.

Timings are reported, never asserted (the machines are shared and noisy); what is asserted is that the two
sides are comparable (same network size, same budget) and that the JSON carries every figure.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .script_loader import load_bench_script, run_bench_script

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "rl_sps.py"


def _load_script() -> ModuleType:
    return load_bench_script(SCRIPT, "bench_rl_sps")


def _run_smoke() -> dict[str, Any]:
    return run_bench_script(SCRIPT, "--smoke")


def test_both_sides_train_networks_of_the_same_size() -> None:
    import gymnasium as gym

    from policyopt.networks import ActorCritic, PolicySpec

    bench = _load_script()
    env = gym.make("Hopper-v5")
    spec = PolicySpec.from_spaces(env.observation_space, env.action_space, (64, 64))
    ours = ActorCritic(spec)
    theirs = bench.ClassicAgent(spec.obs_dim, spec.action_dim, 64)
    env.close()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_settings_give_the_same_budget_to_both() -> None:
    bench = _load_script()
    settings = bench.SpsSettings(env_id="Hopper-v5", num_envs=2, num_steps=128, updates=3)
    assert settings.total_timesteps == 3 * 2 * 128


def test_overall_rate_is_total_steps_over_total_time() -> None:
    bench = _load_script()
    # Two equal-sized measurements at 100 and 300 steps/s: 2 units of work in 1/100 + 1/300 s.
    assert bench.overall([100.0, 300.0]) == pytest.approx(2.0 / (1.0 / 100.0 + 1.0 / 300.0))


@pytest.mark.bench
@pytest.mark.slow
def test_smoke_run_reports_both_throughputs_and_their_ratio() -> None:
    result = _run_smoke()
    assert result["smoke"] is True
    assert result["settings"]["env_id"] == "Hopper-v5"
    assert 0 < result["sps_ours"] < math.inf
    assert 0 < result["sps_cleanrl_style"] < math.inf
    assert result["sps_ratio"] == pytest.approx(result["sps_ours"] / result["sps_cleanrl_style"])
    assert result["sps_ratio_cpu_time"] == pytest.approx(
        result["sps_cpu_time_ours"] / result["sps_cpu_time_cleanrl_style"]
    )
    assert len(result["rounds"]) == result["settings"]["rounds"]
    assert result["target_sps_ratio_min"] == 1.0
    assert result["pass"] == (result["sps_ratio"] >= 1.0)

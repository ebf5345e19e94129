"""SAC and off-policy MDPO runs: the command's smoke mode, determinism, resume, and learning Pendulum-v1."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from policyopt.checkpoint import CHECKPOINT_FILE, load_checkpoint
from policyopt.mdpo_offpolicy import MDPOOffPolicyConfig, OffPolicyMDPO
from policyopt.sac import SACConfig, SoftActorCritic, train
from runkit.config import RunDirectoryError
from runkit.metrics import RunLogger, read_scalars
from runkit.testing import assert_resume_matches, assert_same_seed_same_result, run_console_script

ALGOS: dict[str, tuple[type[SACConfig], type[SoftActorCritic]]] = {
    "sac": (SACConfig, SoftActorCritic),
    "mdpo-offpolicy": (MDPOOffPolicyConfig, OffPolicyMDPO),
}


def tiny_config(algo: str, run_dir: Path, **overrides: Any) -> SACConfig:
    """A few hundred Pendulum steps with small networks: seconds, with learning after 100 steps."""
    config_type = ALGOS[algo][0]
    settings: dict[str, Any] = {
        "env_id": "Pendulum-v1",
        "total_timesteps": 400,
        "num_envs": 2,
        "learning_starts": 100,
        "batch_size": 16,
        "hidden_sizes": (16, 16),
        "buffer_size": 1_000,
        "checkpoint_every_steps": 0,
        "eval_episodes": 1,
        "log_every_updates": 10,
        "run_dir": run_dir,
        "tensorboard": False,
        "progress": False,
    }
    if algo == "mdpo-offpolicy":
        settings["sgd_steps"] = 40
    settings.update(overrides)
    return config_type(**settings)


def parameters(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    modules: dict[str, dict[str, torch.Tensor]] = load_checkpoint(run_dir / CHECKPOINT_FILE).state["modules"]
    return modules


def losses(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    return {k: v for k, v in read_scalars(run_dir).items() if k.startswith(("losses/", "charts/episodic"))}


@pytest.mark.parametrize("algo", list(ALGOS))
def test_smoke_run_of_the_command_writes_checkpoint_and_scalars(algo: str, tmp_path: Path) -> None:
    """`policyopt sac` (the console script, SMOKE_TEST=1 as CI sets it) runs a smoke-sized run."""
    result = run_console_script(
        "policyopt", [algo, "--env-id", "Pendulum-v1", "--run-dir", str(tmp_path), "--no-progress"], timeout_s=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert json.loads(result.stdout) == summary
    assert summary["algo"] == algo
    assert summary["total_timesteps"] == 512
    state = load_checkpoint(tmp_path / CHECKPOINT_FILE).state
    assert state["algo"] == algo
    assert state["global_step"] == 512
    scalars = read_scalars(tmp_path)
    assert "rollout/eval_mean_return" in scalars
    assert scalars["charts/SPS"][-1][1] > 0
    assert "losses/qf_loss" in scalars
    if algo == "mdpo-offpolicy":
        assert scalars["charts/mirror_iteration"][-1][1] > 1  # the anchor was refreshed


def outcome(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """What a run ended with: every parameter, the logged losses and returns, the evaluation's returns."""
    return {"parameters": parameters(run_dir), "losses": losses(run_dir), "eval_returns": summary["eval_returns"]}


@pytest.mark.parametrize("algo", list(ALGOS))
def test_same_seed_twice_gives_identical_runs(algo: str, tmp_path: Path) -> None:
    agent_type = ALGOS[algo][1]
    folders = (tmp_path / f"run{index}" for index in itertools.count())

    def run(seed: int) -> dict[str, Any]:
        run_dir = next(folders)
        return outcome(run_dir, train(tiny_config(algo, run_dir, seed=seed), agent_type))

    assert_same_seed_same_result(run, seed=1, other_seed=2)


@pytest.mark.parametrize("algo", list(ALGOS))
def test_resume_continues_exactly_where_the_run_stopped(
    algo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent_type = ALGOS[algo][1]

    def uninterrupted() -> dict[str, Any]:
        straight = tmp_path / "straight"
        return outcome(straight, train(tiny_config(algo, straight, checkpoint_every_steps=200), agent_type))

    def interrupted_then_resumed() -> dict[str, Any]:
        resumed = tmp_path / "resumed"
        advance = RunLogger.advance
        done = [0]

        def crash_after_300_steps(self: RunLogger, steps: int, **postfix: float) -> None:
            advance(self, steps, **postfix)
            done[0] += steps
            if done[0] >= 300:
                raise KeyboardInterrupt("simulated kill")

        monkeypatch.setattr(RunLogger, "advance", crash_after_300_steps)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_config(algo, resumed, checkpoint_every_steps=200), agent_type)
        assert load_checkpoint(resumed / CHECKPOINT_FILE).state["global_step"] == 200
        monkeypatch.setattr(RunLogger, "advance", advance)
        summary = train(tiny_config(algo, resumed, checkpoint_every_steps=200, resume=True), agent_type)
        return outcome(resumed, summary)

    assert_resume_matches(uninterrupted, interrupted_then_resumed)


def test_resume_without_checkpoint_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match="nothing to resume"):
        train(tiny_config("sac", tmp_path, resume=True), SoftActorCritic)
    assert not (tmp_path / "scalars.jsonl").exists()


@pytest.mark.learning
@pytest.mark.slow
@pytest.mark.parametrize("algo", list(ALGOS))
def test_learns_pendulum_swing_up(algo: str, tmp_path: Path) -> None:
    """A random policy scores about -1200 on Pendulum-v1; a swing-up and balance scores above -400."""
    overrides: dict[str, Any] = {
        "total_timesteps": 4_500 if algo == "sac" else 5_500,
        "num_envs": 1,
        "learning_starts": 1_000,
        "batch_size": 64,
        "hidden_sizes": (64, 64),
        "buffer_size": 10_000,
        "eval_episodes": 5,
        "log_every_updates": 500,
    }
    if algo == "mdpo-offpolicy":
        overrides["sgd_steps"] = 250
    summary = train(tiny_config(algo, tmp_path, **overrides), ALGOS[algo][1])
    assert summary["eval_mean_return"] > -400.0, summary["eval_returns"]


def test_policyopt_cli_runs_mdpo_offpolicy_not_sac(tmp_path: Path) -> None:
    """`policyopt mdpo-offpolicy` (cli.py calls the module's `train(config)`) trains the MDPO agent."""
    from policyopt import mdpo_offpolicy

    summary = mdpo_offpolicy.train(tiny_config("mdpo-offpolicy", tmp_path, total_timesteps=200))  # type: ignore[arg-type]
    assert summary["algo"] == "mdpo-offpolicy"
    assert "old_actor" in parameters(tmp_path)

"""SAC and off-policy MDPO runs: the CLI's smoke mode, determinism, resume, and learning Pendulum-v1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from policyopt.checkpoint import CHECKPOINT_FILE, load_checkpoint
from policyopt.mdpo_offpolicy import MDPOOffPolicyConfig, OffPolicyMDPO
from policyopt.runlog import RunLogger, read_scalars
from policyopt.sac import SACConfig, SoftActorCritic, train

REPO = Path(__file__).resolve().parents[2]
ALGOS: dict[str, tuple[type[SACConfig], type[SoftActorCritic], str]] = {
    "sac": (SACConfig, SoftActorCritic, "policyopt.sac"),
    "mdpo-offpolicy": (MDPOOffPolicyConfig, OffPolicyMDPO, "policyopt.mdpo_offpolicy"),
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
    return load_checkpoint(run_dir / CHECKPOINT_FILE)["modules"]


def assert_same_parameters(a: Path, b: Path) -> None:
    left, right = parameters(a), parameters(b)
    assert left.keys() == right.keys()
    for name in left:
        for key in left[name]:
            torch.testing.assert_close(left[name][key], right[name][key], rtol=0, atol=0, msg=f"{name}.{key}")


def losses(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    return {k: v for k, v in read_scalars(run_dir).items() if k.startswith(("losses/", "charts/episodic"))}


@pytest.mark.parametrize("algo", list(ALGOS))
def test_smoke_cli_runs_and_writes_checkpoint_and_scalars(algo: str, tmp_path: Path) -> None:
    module = ALGOS[algo][2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("learning", "sim"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            module,
            "--smoke",
            "--env-id",
            "Pendulum-v1",
            "--run-dir",
            str(tmp_path),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["algo"] == algo
    assert summary["total_timesteps"] == 512
    state = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert state["algo"] == algo
    assert state["global_step"] == 512
    scalars = read_scalars(tmp_path)
    assert scalars["charts/SPS"][-1][1] > 0
    assert "losses/qf_loss" in scalars
    if algo == "mdpo-offpolicy":
        assert scalars["charts/mirror_iteration"][-1][1] > 1  # the anchor was refreshed


@pytest.mark.parametrize("algo", list(ALGOS))
def test_same_seed_twice_gives_identical_runs(algo: str, tmp_path: Path) -> None:
    agent_type = ALGOS[algo][1]
    first = train(tiny_config(algo, tmp_path / "a"), agent_type)
    second = train(tiny_config(algo, tmp_path / "b"), agent_type)
    assert first["eval_returns"] == second["eval_returns"]
    assert_same_parameters(tmp_path / "a", tmp_path / "b")
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    other = train(tiny_config(algo, tmp_path / "c", seed=2), agent_type)
    assert other["eval_returns"] != first["eval_returns"]


@pytest.mark.parametrize("algo", list(ALGOS))
def test_resume_continues_exactly_where_the_run_stopped(
    algo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent_type = ALGOS[algo][1]
    train(tiny_config(algo, tmp_path / "straight", checkpoint_every_steps=200), agent_type)

    advance = RunLogger.advance
    done = [0]

    def crash_after_300_steps(self: RunLogger, steps: int, **postfix: float) -> None:
        advance(self, steps, **postfix)
        done[0] += steps
        if done[0] >= 300:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(RunLogger, "advance", crash_after_300_steps)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(algo, tmp_path / "resumed", checkpoint_every_steps=200), agent_type)
    assert load_checkpoint(tmp_path / "resumed" / CHECKPOINT_FILE)["global_step"] == 200
    monkeypatch.setattr(RunLogger, "advance", advance)
    train(tiny_config(algo, tmp_path / "resumed", checkpoint_every_steps=200, resume=True), agent_type)
    assert_same_parameters(tmp_path / "straight", tmp_path / "resumed")
    assert losses(tmp_path / "straight") == losses(tmp_path / "resumed")


def test_resume_without_checkpoint_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(tiny_config("sac", tmp_path, resume=True), SoftActorCritic)


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

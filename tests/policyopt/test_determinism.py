"""Same seed, same run; a resumed run continues exactly like an uninterrupted one (runkit.testing's helpers)."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from policyopt.configs import MDPOConfig, OnPolicyConfig, PPOConfig, PropsConfig
from policyopt.mdpo import MDPOTrainer
from policyopt.onpolicy import OnPolicyTrainer
from policyopt.ppo import PPOTrainer
from policyopt.props import PropsTrainer
from runkit.config import RunDirectoryError
from runkit.metrics import read_scalars
from runkit.testing import assert_resume_matches, assert_same_seed_same_result

SMALL = {"seed": 3, "num_envs": 2, "num_steps": 32, "total_timesteps": 256, "num_minibatches": 2, "update_epochs": 2}
TIMING = {"charts/SPS"}
"""Scalars that measure the machine, not the run."""


def _config(cls: type[OnPolicyConfig], run_dir: Path, env_id: str = "CartPole-v1", **kw: object) -> OnPolicyConfig:
    return cls(env_id=env_id, run_dir=run_dir, tensorboard=False, progress=False, **{**SMALL, **kw})


def _params(trainer: OnPolicyTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for m in trainer.modules().values() for p in m.parameters()]


def _log(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    return {name: series for name, series in read_scalars(run_dir).items() if name not in TIMING}


@pytest.mark.parametrize(
    ("cls", "trainer_cls", "extra"),
    [
        (PPOConfig, PPOTrainer, {}),
        (PropsConfig, PropsTrainer, {"props_update_every": 16}),
        (MDPOConfig, MDPOTrainer, {}),
    ],
)
def test_same_seed_twice_gives_identical_parameters_and_returns(
    tmp_path: Path, cls: type[OnPolicyConfig], trainer_cls: type[OnPolicyTrainer], extra: dict[str, object]
) -> None:
    folders = (tmp_path / f"run{index}" for index in itertools.count())

    def run(seed: int) -> dict[str, Any]:
        run_dir = next(folders)
        trainer = trainer_cls(_config(cls, run_dir, **{**extra, "seed": seed}))  # type: ignore[arg-type]
        trainer.train()
        return {"parameters": _params(trainer), "returns": read_scalars(run_dir)["charts/episodic_return"]}

    assert_same_seed_same_result(run, seed=3, other_seed=4)


@pytest.mark.parametrize(
    ("cls", "trainer_cls", "env_id", "extra"),
    [
        (PPOConfig, PPOTrainer, "CartPole-v1", {}),
        (PropsConfig, PropsTrainer, "Pendulum-v1", {"props_update_every": 16}),
        # a MuJoCo env (its MjData and generator restored) and the MDPO step-size schedule across the restart
        (MDPOConfig, MDPOTrainer, "Hopper-v5", {}),
    ],
)
def test_resume_continues_exactly_like_an_uninterrupted_run(
    tmp_path: Path, cls: type[OnPolicyConfig], trainer_cls: type[OnPolicyTrainer], env_id: str, extra: dict[str, object]
) -> None:
    full_dir, resumed_dir = tmp_path / "full", tmp_path / "resumed"
    logs: dict[str, dict[str, list[tuple[int, float]]]] = {}

    def uninterrupted() -> list[torch.Tensor]:
        full = trainer_cls(_config(cls, full_dir, env_id, checkpoint_every_steps=128, **extra))  # type: ignore[arg-type]
        original_save = full.save

        def save_and_keep_midway() -> Path:
            path = original_save()
            if full.global_step == 128:  # what an interrupted run would have left behind
                resumed_dir.mkdir()
                shutil.copy(path, resumed_dir / path.name)
                shutil.copy(full_dir / "scalars.jsonl", resumed_dir / "scalars.jsonl")
            return path

        full.save = save_and_keep_midway  # type: ignore[method-assign]
        assert full.train()["global_step"] == 256
        logs["full"] = _log(full_dir)
        return _params(full)

    def interrupted_then_resumed() -> list[torch.Tensor]:
        config = _config(cls, resumed_dir, env_id, checkpoint_every_steps=128, resume=True, **extra)
        resumed = trainer_cls(config)  # type: ignore[arg-type]
        summary = resumed.train()
        assert summary["resumed"] is True
        assert resumed.global_step == 256
        logs["resumed"] = _log(resumed_dir)
        return _params(resumed)

    assert_resume_matches(uninterrupted, interrupted_then_resumed)
    assert logs["full"] == logs["resumed"]  # every logged figure, before and after the restart


def test_resume_without_a_checkpoint_and_a_fresh_run_in_a_used_folder_are_refused(tmp_path: Path) -> None:
    trainer = PPOTrainer(_config(PPOConfig, tmp_path / "empty", resume=True))  # type: ignore[arg-type]
    with pytest.raises(RunDirectoryError, match="nothing to resume"):
        trainer.train()
    used = tmp_path / "used"
    PPOTrainer(_config(PPOConfig, used, total_timesteps=64)).train()  # type: ignore[arg-type]
    checkpoint_before = (used / "checkpoint.pt").read_bytes()
    with pytest.raises(RunDirectoryError, match="holds an earlier run"):
        PPOTrainer(_config(PPOConfig, used, total_timesteps=64)).train()  # type: ignore[arg-type]
    assert (used / "checkpoint.pt").read_bytes() == checkpoint_before  # the earlier run is untouched

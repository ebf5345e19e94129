"""Same seed, same run; a resumed run continues exactly like an uninterrupted one (SB3-style tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from policyopt.configs import MDPOConfig, OnPolicyConfig, PPOConfig, PropsConfig
from policyopt.mdpo import MDPOTrainer
from policyopt.onpolicy import OnPolicyTrainer
from policyopt.ppo import PPOTrainer
from policyopt.props import PropsTrainer
from policyopt.runlog import read_scalars

SMALL = {"seed": 3, "num_envs": 2, "num_steps": 32, "total_timesteps": 256, "num_minibatches": 2, "update_epochs": 2}


def _config(cls: type[OnPolicyConfig], run_dir: Path, env_id: str = "CartPole-v1", **kw: object) -> OnPolicyConfig:
    return cls(env_id=env_id, run_dir=run_dir, tensorboard=False, progress=False, **{**SMALL, **kw})


def _params(trainer: OnPolicyTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for m in trainer.modules().values() for p in m.parameters()]


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
    runs = []
    for name in ("a", "b"):
        trainer = trainer_cls(_config(cls, tmp_path / name, **extra))  # type: ignore[arg-type]
        trainer.train()
        runs.append((_params(trainer), read_scalars(tmp_path / name)["charts/episodic_return"]))
    (params_a, returns_a), (params_b, returns_b) = runs
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b, strict=True))
    assert returns_a == returns_b
    different = trainer_cls(_config(cls, tmp_path / "c", seed=4, **extra))  # type: ignore[arg-type]
    different.train()
    assert not all(torch.equal(a, b) for a, b in zip(params_a, _params(different), strict=True))


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
    config = _config(cls, full_dir, env_id, checkpoint_every_steps=128, **extra)
    full = trainer_cls(config)  # type: ignore[arg-type]
    original_save = full.save

    def save_and_keep_midway() -> Path:
        path = original_save()
        if full.global_step == 128:  # the checkpoint an interrupted run would have left behind
            resumed_dir.mkdir()
            shutil.copy(path, resumed_dir / path.name)
            shutil.copy(full_dir / "scalars.jsonl", resumed_dir / "scalars.jsonl")
        return path

    full.save = save_and_keep_midway  # type: ignore[method-assign]
    full.train()
    resumed = trainer_cls(_config(cls, resumed_dir, env_id, checkpoint_every_steps=128, resume=True, **extra))  # type: ignore[arg-type]
    summary = resumed.train()
    assert summary["resumed"] is True
    assert resumed.global_step == full.global_step == 256
    assert all(torch.equal(a, b) for a, b in zip(_params(full), _params(resumed), strict=True))
    timing = {"charts/SPS"}
    full_log = {k: v for k, v in read_scalars(full_dir).items() if k not in timing}
    assert full_log == {k: v for k, v in read_scalars(resumed_dir).items() if k not in timing}


def test_resume_without_a_checkpoint_says_what_is_missing(tmp_path: Path) -> None:
    trainer = PPOTrainer(_config(PPOConfig, tmp_path / "empty", resume=True))  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        trainer.train()

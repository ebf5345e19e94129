"""Learning thresholds on tiny environments, and PROPS's lower sampling error on a bandit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import policyopt.toy_envs  # noqa: F401
from policyopt.configs import MDPOConfig, OnPolicyConfig, PPOConfig, PropsConfig
from policyopt.mdpo import MDPOTrainer
from policyopt.onpolicy import OnPolicyTrainer
from policyopt.ppo import PPOTrainer
from policyopt.props import PropsTrainer
from runkit.metrics import read_scalars

QUIET = {"tensorboard": False, "progress": False, "checkpoint_every_steps": 0}
ALGORITHMS = [
    pytest.param(PPOConfig, PPOTrainer, {}, id="ppo"),
    pytest.param(PropsConfig, PropsTrainer, {"props_update_every": 64}, id="props"),
    pytest.param(MDPOConfig, MDPOTrainer, {}, id="mdpo"),
]


def _returns(run_dir: Path) -> np.ndarray:
    return np.array([v for _, v in read_scalars(run_dir)["charts/episodic_return"]])


@pytest.mark.learning
@pytest.mark.parametrize(("cls", "trainer_cls", "extra"), ALGORITHMS)
@pytest.mark.parametrize("env_id", ["policyopt.toy_envs:Bandit-v0", "policyopt.toy_envs:Bandit10-v0"])
def test_each_algorithm_solves_a_bandit(
    tmp_path: Path,
    env_id: str,
    cls: type[OnPolicyConfig],
    trainer_cls: type[OnPolicyTrainer],
    extra: dict[str, object],
) -> None:
    config = cls(
        env_id=env_id,
        run_dir=tmp_path,
        num_envs=4,
        num_steps=64,
        total_timesteps=4096,
        num_minibatches=2,
        update_epochs=4,
        learning_rate=1e-2,
        anneal_lr=False,
        normalize_observation=False,
        sampling_error_every=0,
        **extra,
        **QUIET,  # type: ignore[arg-type]
    )
    trainer_cls(config).train()  # type: ignore[arg-type]
    returns = _returns(tmp_path)
    # best arm pays 1.0, a uniform policy 0.5 on average
    assert returns[-100:].mean() > 0.9


@pytest.mark.learning
@pytest.mark.slow
@pytest.mark.parametrize(("cls", "trainer_cls", "extra"), ALGORITHMS)
def test_each_algorithm_learns_cartpole(
    tmp_path: Path, cls: type[OnPolicyConfig], trainer_cls: type[OnPolicyTrainer], extra: dict[str, object]
) -> None:
    config = cls(
        env_id="CartPole-v1",
        run_dir=tmp_path,
        num_envs=4,
        num_steps=128,
        total_timesteps=12_288,
        num_minibatches=4,
        update_epochs=4,
        learning_rate=2.5e-3,
        normalize_reward=False,
        sampling_error_every=0,
        **extra,
        **QUIET,  # type: ignore[arg-type]
    )
    trainer_cls(config).train()  # type: ignore[arg-type]
    returns = _returns(tmp_path)
    assert returns[:20].mean() < 40  # a random policy balances ~22 steps
    assert returns[-20:].mean() > 80


@pytest.mark.learning
@pytest.mark.slow
def test_ppo_improves_on_pendulum(tmp_path: Path) -> None:
    config = PPOConfig(
        env_id="Pendulum-v1",
        run_dir=tmp_path,
        num_envs=4,
        num_steps=256,
        total_timesteps=20_480,
        num_minibatches=8,
        update_epochs=10,
        learning_rate=1e-3,
        gamma=0.9,
        sampling_error_every=0,
        **QUIET,  # type: ignore[arg-type]
    )
    PPOTrainer(config).train()
    returns = _returns(tmp_path)
    assert returns[-8:].mean() > returns[:8].mean() + 200


@pytest.mark.learning
def test_props_sampling_error_is_below_ppo_on_a_bandit(tmp_path: Path) -> None:
    """Same seed, same budget, same data per update: PROPS's data matches the target policy more closely."""
    common = {
        "env_id": "policyopt.toy_envs:Bandit-v0",
        "seed": 0,
        "num_envs": 1,
        "num_steps": 128,
        "total_timesteps": 128 * 12,
        "num_minibatches": 4,
        "update_epochs": 2,
        "learning_rate": 1e-4,  # the target policy stays stochastic: the regime where sampling error matters
        "normalize_observation": False,
        "sampling_error_every": 1,  # off by default
        **QUIET,
    }
    behaviour = {"props_update_every": 16, "props_update_epochs": 4, "props_num_minibatches": 4, "buffer_batches": 2}
    PPOTrainer(PPOConfig(run_dir=tmp_path / "ppo", **common)).train()  # type: ignore[arg-type]
    props = PropsConfig(run_dir=tmp_path / "props", **behaviour, **common)  # type: ignore[arg-type]
    PropsTrainer(props).train()
    buffered = PropsConfig(run_dir=tmp_path / "buffer", props_enabled=False, **behaviour, **common)  # type: ignore[arg-type]
    PropsTrainer(buffered).train()

    def errors(name: str) -> np.ndarray:
        return np.array([v for _, v in read_scalars(tmp_path / name)["rollout/sampling_error"]])

    ppo, props_se, ppo_buffer = errors("ppo"), errors("props"), errors("buffer")
    assert len(ppo) == len(props_se) == 12
    # after the first update (the buffer then holds one batch only): lower on average, and at most updates
    assert props_se[1:].mean() < 0.5 * ppo[1:].mean()
    assert props_se[1:].mean() < 0.5 * ppo_buffer[1:].mean()
    assert np.mean(props_se[1:] < ppo[1:]) >= 0.7

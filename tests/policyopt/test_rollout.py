"""GAE against hand-computed values, and NEXT_STEP autoreset rows kept out of the training data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import policyopt.toy_envs  # noqa: F401  (registers the toy environments)
from policyopt.configs import PPOConfig
from policyopt.envs import make_vector_env
from policyopt.ppo import PPOTrainer
from policyopt.rollout import compute_gae


def test_gae_matches_hand_computation_with_truncation_and_autoreset() -> None:
    gamma, lam = 0.9, 0.8
    # one env: steps 0, 1 (truncated at 1), 2 = autoreset row, 3 (terminated)
    rewards = torch.tensor([[1.0], [2.0], [0.0], [3.0]])
    values = torch.tensor([[0.5], [0.4], [0.7], [0.2]])  # values[2] = V(final obs of the truncated episode)
    terminated = torch.tensor([[0.0], [0.0], [0.0], [1.0]])
    ended = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    valid = torch.tensor([[1.0], [1.0], [0.0], [1.0]])
    next_value = torch.tensor([9.0])  # after a terminated step: must not be used
    adv, ret = compute_gae(rewards, values, terminated, ended, valid, next_value, gamma, lam)
    a3 = 3.0 - 0.2
    a1 = 2.0 + gamma * 0.7 - 0.4  # truncated: bootstrap from V(final obs), recursion stops
    a0 = (1.0 + gamma * 0.4 - 0.5) + gamma * lam * a1
    assert adv[:, 0].tolist() == pytest.approx([a0, a1, 0.0, a3])
    assert ret[:, 0].tolist() == pytest.approx([a0 + 0.5, a1 + 0.4, 0.0, a3 + 0.2])


def test_autoreset_steps_are_not_transitions(tmp_path: Path) -> None:
    """FixedLength-v0 ends after 3 steps: its final observation [3] appears only in autoreset rows."""
    config = PPOConfig(
        env_id="policyopt.toy_envs:FixedLength-v0",
        num_envs=2,
        num_steps=16,
        total_timesteps=32,
        normalize_observation=False,
        normalize_reward=False,
        run_dir=tmp_path,
        tensorboard=False,
        progress=False,
    )
    trainer = PPOTrainer(config)
    trainer.envs = make_vector_env(config.env_id, 2, 0, env_kwargs={"length": 3})
    obs, _ = trainer.envs.reset(seed=0)
    trainer.next_obs = torch.as_tensor(obs)
    trainer.collect(trainer.next_rows())
    s = trainer.storage
    # rows: obs 0, 1, 2, then the autoreset row that carries the final obs 3, and again
    assert s.obs[:8, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0]
    assert s.valid[:8, 0].tolist() == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert s.terminated[:8, 0].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    batch = trainer.training_batch()
    assert 3.0 not in batch["obs"][:, 0].tolist()
    assert int(batch["obs"].shape[0]) == 2 * 12  # 12 of 16 rows per env are transitions

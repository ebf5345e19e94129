"""Replay buffer: Gymnasium 1.x NEXT_STEP autoreset steps never become transitions; terminated, not truncated."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from policyopt.replay import ReplayBuffer


def _step(buffer: ReplayBuffer, obs: list[float], next_obs: list[float], term: list[bool], trunc: list[bool]) -> int:
    n = len(obs)
    return buffer.add(
        np.array(obs, dtype=np.float32).reshape(n, 1),
        np.zeros((n, 1), dtype=np.float32),
        np.array(next_obs, dtype=np.float32),  # reward = next observation: easy to recognise
        np.array(next_obs, dtype=np.float32).reshape(n, 1),
        np.array(term),
        np.array(trunc),
    )


def test_step_after_an_episode_end_is_dropped_per_sub_environment() -> None:
    buffer = ReplayBuffer(100, (1,), (1,), num_envs=2)
    assert _step(buffer, [0, 10], [1, 11], [False, False], [False, False]) == 2
    # env 0 terminates, env 1 is truncated by a time limit
    assert _step(buffer, [1, 11], [2, 12], [True, False], [False, True]) == 2
    # both are reset steps (final observation -> reset observation): nothing stored
    assert _step(buffer, [2, 12], [100, 200], [False, False], [False, False]) == 0
    assert _step(buffer, [100, 200], [101, 201], [False, False], [False, False]) == 2
    assert len(buffer) == 6
    pairs = {
        (float(o), float(n)) for o, n in zip(buffer.observations[:6, 0], buffer.next_observations[:6, 0], strict=True)
    }
    assert (2.0, 100.0) not in pairs
    assert (12.0, 200.0) not in pairs
    terminal = {float(o): float(t) for o, t in zip(buffer.observations[:6, 0], buffer.terminated[:6], strict=True)}
    assert terminal[1.0] == 1.0  # terminated: no bootstrap
    assert terminal[11.0] == 0.0  # truncated: bootstraps from the final observation


def test_real_vector_env_transitions_are_consecutive_states_of_one_episode() -> None:
    """Pendulum's state is (cos, sin, theta_dot): a stored transition must integrate theta_dot consistently."""
    envs = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync", max_episode_steps=5)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    buffer = ReplayBuffer(1000, (3,), (1,), num_envs=2)
    obs, _ = envs.reset(seed=3)
    envs.action_space.seed(3)
    kept = 0
    for _ in range(30):
        actions = envs.action_space.sample()
        next_obs, rewards, terminated, truncated, _ = envs.step(actions)
        kept += buffer.add(obs, actions, rewards, next_obs, terminated, truncated)
        obs = next_obs
    envs.close()
    # 30 vector steps of 6-step cycles (5 steps + 1 reset step) in each of 2 envs: 25 transitions each.
    assert kept == len(buffer) == 50
    n = len(buffer)
    theta = np.arctan2(buffer.observations[:n, 1], buffer.observations[:n, 0])
    next_theta = np.arctan2(buffer.next_observations[:n, 1], buffer.next_observations[:n, 0])
    # Pendulum integrates theta += theta_dot_new * dt with dt = 0.05 (wrapped to (-pi, pi]).
    delta = np.angle(np.exp(1j * (next_theta - theta)))
    np.testing.assert_allclose(delta, buffer.next_observations[:n, 2] * 0.05, atol=1e-4)
    assert np.all(buffer.terminated[:n] == 0.0)  # Pendulum only truncates
    assert np.all(buffer.rewards[:n] < 0.0)  # no reward-0 reset steps


def test_sampling_is_seeded_and_state_dict_round_trips() -> None:
    def filled(seed: int) -> ReplayBuffer:
        buffer = ReplayBuffer(8, (2,), (1,), num_envs=1, seed=seed)
        for i in range(11):  # wraps around the ring
            buffer.add(
                np.full((1, 2), i, np.float32),
                np.full((1, 1), -i, np.float32),
                np.array([float(i)]),
                np.full((1, 2), i + 1, np.float32),
                np.array([False]),
                np.array([i == 6]),
            )
        return buffer

    a, b = filled(5), filled(5)
    assert len(a) == 8
    assert a.position == 2
    torch.testing.assert_close(a.sample(16).observations, b.sample(16).observations)
    copy = ReplayBuffer(8, (2,), (1,), num_envs=1, seed=99)
    copy.load_state_dict(a.state_dict())
    for _ in range(3):
        x, y = a.sample(4), copy.sample(4)
        torch.testing.assert_close(x.observations, y.observations)
        torch.testing.assert_close(x.rewards, y.rewards)
    assert copy.resetting.tolist() == a.resetting.tolist()
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(9, (2,), (1,), num_envs=1).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(4, (2,), (1,), num_envs=1).sample(1)

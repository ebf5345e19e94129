"""Tiny environments for learning tests: a multi-armed bandit and an episode of known length.

Registered on import, so "policyopt.toy_envs:Bandit-v0" (2 arms), "policyopt.toy_envs:Bandit10-v0"
and "policyopt.toy_envs:FixedLength-v0" work as `env_id`s.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class MultiArmedBandit(gym.Env[np.ndarray, np.int64]):
    """One state, `arms` actions; arm i pays `means[i]` plus Gaussian noise; every episode is one step.

    Default means rise linearly from 0 to 1, so the last arm is best.
    """

    def __init__(self, arms: int = 2, noise_std: float = 0.1, means: tuple[float, ...] | None = None) -> None:
        self.means = np.asarray(means if means is not None else np.linspace(0.0, 1.0, arms), dtype=np.float64)
        self.noise_std = float(noise_std)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(len(self.means))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """The single state."""
        super().reset(seed=seed)
        return np.ones(1, dtype=np.float32), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Pull an arm; the episode ends."""
        reward = float(self.means[int(action)] + self.noise_std * self.np_random.standard_normal())
        return np.ones(1, dtype=np.float32), reward, True, False, {}


class FixedLength(gym.Env[np.ndarray, np.int64]):
    """Observation = [step index]; reward 1 per step; terminates after exactly `length` steps (for autoreset tests)."""

    def __init__(self, length: int = 5) -> None:
        self.length = int(length)
        self.t = 0
        self.observation_space = gym.spaces.Box(0.0, float(length), (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Back to step 0."""
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        """One step; terminated at step `length`."""
        self.t += 1
        return np.array([float(self.t)], dtype=np.float32), 1.0, self.t >= self.length, False, {}


gym.register("Bandit-v0", entry_point="policyopt.toy_envs:MultiArmedBandit")
gym.register("Bandit10-v0", entry_point="policyopt.toy_envs:MultiArmedBandit", kwargs={"arms": 10})
gym.register("FixedLength-v0", entry_point="policyopt.toy_envs:FixedLength")

__all__ = ["FixedLength", "MultiArmedBandit"]

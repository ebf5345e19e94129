"""CueBandit: the smallest in-context memory task, for a fast learning test of an in-context RL trainer.

Each trial draws one rewarded arm out of `arms` (uniformly, from the trial seed). Every episode is a
corridor of `horizon` steps with nothing to see; the action at the last step chooses an arm (actions
before it do nothing) and earns reward 1 if it is the trial's arm, else 0; the episode then terminates.
The default `horizon=1` makes each episode one choice.

The observation is `{"vector": [1.0, t / horizon]}` with `t` the steps taken in the episode: it carries
nothing about the arm. So a policy without memory across episodes earns `1 / arms` per episode on average
over trials, whatever it does, while one that remembers which arm paid can approach 1 after the first
few episodes of a trial (win-stay, lose-shift finds the arm within `arms` episodes).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from relicnav.trial import check_action, seed_split


class CueBandit:
    """The cue-bandit trial environment; see the module docstring."""

    def __init__(self, arms: int = 4, horizon: int = 1) -> None:
        if arms < 2 or horizon < 1:
            raise ValueError(f"CueBandit needs arms >= 2 and horizon >= 1, got arms={arms}, horizon={horizon}")
        self.arms = arms
        self.max_episode_steps = horizon
        self.observation_space = gymnasium.spaces.Dict(
            {"vector": gymnasium.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)}
        )
        self.action_space = gymnasium.spaces.Discrete(arms)
        self.rewarded_arm: int | None = None
        self._steps = 0
        self._over = True

    def new_trial(self, seed: int) -> None:
        """Draw the rewarded arm from `seed`."""
        seed_split(seed)  # validates the seed
        self.rewarded_arm = int(np.random.default_rng(seed).integers(self.arms))
        self._over = True

    def reset(self) -> dict[str, np.ndarray]:
        """Start an episode at the corridor's entrance."""
        if self.rewarded_arm is None:
            raise RuntimeError("CueBandit.reset() before new_trial(seed): a trial fixes the rewarded arm first")
        self._steps = 0
        self._over = False
        return self._observation()

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Walk one step; at the last one, `action` is the arm chosen (reward 1 if rewarded; terminated)."""
        arm = check_action(action, self.arms)
        if self._over:
            raise RuntimeError("CueBandit.step() outside an episode: call reset() first")
        self._steps += 1
        terminated = self._steps >= self.max_episode_steps
        success = terminated and arm == self.rewarded_arm
        self._over = terminated
        return self._observation(), float(success), terminated, False, {"success": success}

    def expert_action(self) -> int:
        """The rewarded arm."""
        if self.rewarded_arm is None:
            raise RuntimeError("CueBandit.expert_action() before new_trial(seed)")
        return self.rewarded_arm

    def close(self) -> None:
        """Nothing to release."""

    def _observation(self) -> dict[str, np.ndarray]:
        return {"vector": np.array([1.0, self._steps / self.max_episode_steps], dtype=np.float32)}

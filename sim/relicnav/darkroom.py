"""Darkroom: the ReLIC authors' grid task (from Decision-Pretrained Transformer), as a `TrialEnv`.

A `dim x dim` grid; the agent starts every episode at (0, 0) and moves with 5 actions: 0 +x, 1 -x, 2 +y,
3 -y, 4 stay (moves into the border leave it in place). It earns reward 1 for every step that ends on the
goal cell, which it does not observe (the observation is its own position, `[x, y] / (dim - 1)`): the
goal can only be found by exploring and remembered in context. An episode truncates after `horizon`
steps and never terminates; `info["success"]` is true once the goal was reached in the episode.

Layouts (trials) are goal cells, split as the authors split them: the `dim * dim` cells listed x-major,
shuffled with `numpy.random.RandomState(0)`, the first 80 % for training and the last 20 % held out (for
dim 10: 80 train goals, 20 eval goals). `new_trial(seed)` takes the seed's split and index from
`relicnav.trial.seed_split` (train seeds are `0, 1, ...`, eval seeds `EVAL_SEED_OFFSET + 0, 1, ...`) and
uses goal `index % len(split goals)` of that split, so consecutive seeds of `trial_seeds("darkroom", ...)`
walk through the split's goals in the authors' shuffled order and no train seed reaches an eval goal.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium
import numpy as np

from relicnav.trial import check_action, seed_split

MOVES = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [0, 0]])
"""Displacement of each action: +x, -x, +y, -y, stay."""

TRAIN_FRACTION = 0.8


def split_goals(dim: int, split: Literal["train", "eval"]) -> np.ndarray:
    """The goal cells of `split`, a `k x 2` int array of (x, y), in the authors' shuffled order."""
    cells = np.array([(x, y) for x in range(dim) for y in range(dim)])
    np.random.RandomState(seed=0).shuffle(cells)
    cut = int(TRAIN_FRACTION * len(cells))
    return cells[:cut] if split == "train" else cells[cut:]


class Darkroom:
    """The Darkroom trial environment; see the module docstring."""

    def __init__(self, dim: int = 10, horizon: int = 100) -> None:
        if dim < 2 or horizon < 1:
            raise ValueError(f"Darkroom needs dim >= 2 and horizon >= 1, got dim={dim}, horizon={horizon}")
        self.dim = dim
        self.max_episode_steps = horizon
        self.observation_space = gymnasium.spaces.Dict(
            {"vector": gymnasium.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)}
        )
        self.action_space = gymnasium.spaces.Discrete(len(MOVES))
        self._goals = {split: split_goals(dim, split) for split in ("train", "eval")}
        self.goal: np.ndarray | None = None
        self._state = np.zeros(2, dtype=np.int64)
        self._steps = 0
        self._success = False
        self._over = True

    def new_trial(self, seed: int) -> None:
        """Take the goal of layout seed `seed` (see the module docstring)."""
        split, index = seed_split(seed)
        goals = self._goals[split]
        self.goal = goals[index % len(goals)].copy()
        self._over = True

    def reset(self) -> dict[str, np.ndarray]:
        """Start an episode at (0, 0)."""
        if self.goal is None:
            raise RuntimeError("Darkroom.reset() before new_trial(seed): a trial fixes the goal first")
        self._state = np.zeros(2, dtype=np.int64)
        self._steps = 0
        self._success = False
        self._over = False
        return self._observation()

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Move; reward 1 when the new cell is the goal; truncated after `horizon` steps."""
        index = check_action(action, len(MOVES))
        if self._over or self.goal is None:
            raise RuntimeError("Darkroom.step() outside an episode: call reset() first")
        self._state = np.clip(self._state + MOVES[index], 0, self.dim - 1)
        self._steps += 1
        on_goal = bool(np.array_equal(self._state, self.goal))
        self._success |= on_goal
        truncated = self._steps >= self.max_episode_steps
        self._over = truncated
        return self._observation(), float(on_goal), False, truncated, {"success": self._success}

    def expert_action(self) -> int:
        """The authors' optimal action: close the x gap, then the y gap, then stay."""
        if self.goal is None:
            raise RuntimeError("Darkroom.expert_action() before new_trial(seed)")
        for axis in range(2):
            if self._state[axis] != self.goal[axis]:
                return 2 * axis + (0 if self._state[axis] < self.goal[axis] else 1)
        return 4

    def close(self) -> None:
        """Nothing to release."""

    def _observation(self) -> dict[str, np.ndarray]:
        return {"vector": (self._state / (self.dim - 1)).astype(np.float32)}

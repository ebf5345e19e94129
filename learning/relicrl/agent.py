"""A trained ReLIC policy acting one observation at a time, keeping its context across episodes.

This is what the `relic_nav` ROS node (and any other caller) drives: `act(observation, reward)` returns
an action and appends the step to the context; `mark_episode_boundary()` says that the next observation
starts a new episode of the same trial; `reset_context()` forgets the trial (a new scene). Bad
observations raise `ValueError` before anything is appended, so the context stays as it was.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from relicrl.checkpoint import load_policy
from relicrl.model import ContextCache, ContextPolicy, RecurrentContext
from relicrl.tokens import EpisodeTracker, observation_arrays


class InContextAgent:
    """One agent, one context: act step by step, mark episode boundaries, reset between trials."""

    def __init__(
        self, policy: ContextPolicy, *, max_context: int = 65_536, greedy: bool = False, seed: int = 0
    ) -> None:
        if max_context < 1:
            raise ValueError(f"max_context must be >= 1, got {max_context}")
        self.policy = policy.eval()
        self.spec = policy.spec
        self.max_context = max_context
        self.greedy = greedy
        self.generator = torch.Generator().manual_seed(seed)
        self.last_step_s = 0.0
        self.context_resets = 0
        self.reset_context()

    @classmethod
    def load(cls, path: str | Path, **options: object) -> InContextAgent:
        """An agent from a policy file (read safely; `relicrl.checkpoint.load_policy`)."""
        policy, _ = load_policy(path)
        return cls(policy, **options)  # type: ignore[arg-type]

    @property
    def context_length(self) -> int:
        """Steps held in the context."""
        return int(self._context.length)

    def reset_context(self) -> None:
        """Forget everything: the next observation starts a new trial's first episode."""
        self._context: ContextCache | RecurrentContext = self.policy.new_context(1, min(self.max_context, 4096))
        self._tracker = EpisodeTracker(1)
        self._last_action: int | None = None
        self._boundary = False

    def mark_episode_boundary(self) -> None:
        """The next observation starts a new episode of the same trial (the context is kept)."""
        self._boundary = True

    def act(self, observation: Mapping[str, np.ndarray], reward: float = 0.0) -> int:
        """The action for `observation`; `reward` is what the previous action earned.

        When the context is full (`max_context` steps) it is reset first, and `context_resets` counts it.

        Raises:
            ValueError: an observation the policy cannot read (missing part, wrong shape or dtype, NaN), or a
                reward that is not finite. Nothing is appended to the context.
        """
        vector, image = observation_arrays([observation], self.spec)
        if not np.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward!r}")
        if self.context_length >= self.max_context:
            self.reset_context()
            self.context_resets += 1
        if self._last_action is not None:
            over = np.array([self._boundary])
            self._tracker.advance(np.array([self._last_action]), np.array([reward], dtype=np.float32), over)
        self._boundary = False
        started = time.perf_counter()
        logits, _ = self.policy.step(self._tracker.inputs(vector, image), self._context)
        if self.greedy:
            action = int(logits[0].argmax())
        else:
            probs = torch.softmax(logits[0], dim=-1)
            action = int(torch.multinomial(probs, 1, generator=self.generator))
        self.last_step_s = time.perf_counter() - started
        self._last_action = action
        return action


__all__ = ["InContextAgent"]

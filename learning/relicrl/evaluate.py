"""In-context evaluation: success against the number of episodes already in context, on held-out layouts.

The paper's main figure: each held-out trial runs `episodes` episodes in one layout with the context
kept across them; success (and steps) is recorded per episode index. Few-shot imitation: the first
`demo_episodes` episodes are driven by the environment's shortest-path expert and sit in the context
like the agent's own experience (its actions as the previous actions, its rewards); the figure compares
the agent's success after them with a run that has no demonstration.

All trials run as one batch (one environment per trial), acting with the KV cache; actions are sampled
from the policy (as in training) unless `greedy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.distributions import Categorical

from relicnav import make_trial_env
from relicrl.model import ContextPolicy
from relicrl.tokens import EpisodeTracker, observation_arrays
from runkit.metrics import progress_bar


@dataclass(frozen=True)
class TrialResults:
    """Per trial and episode index: success (bool), steps, return and steps to goal, `trials x episodes` arrays.

    `steps_to_goal` counts the episode's steps up to the one that reached the goal; an episode that never
    reached it counts all its steps (so the mean is a lower bound where success is below one).
    """

    success: np.ndarray
    steps: np.ndarray
    returns: np.ndarray
    demo_episodes: int
    steps_to_goal: np.ndarray

    def success_by_episode(self) -> np.ndarray:
        """Mean success at each episode index (over trials)."""
        return self.success.mean(axis=0)

    def agent_success(self) -> float:
        """Mean success over the agent's own episodes (demonstrations excluded)."""
        return float(self.success[:, self.demo_episodes :].mean())


def run_trials(
    policy: ContextPolicy,
    env_name: str,
    seeds: Sequence[int],
    episodes: int,
    *,
    demo_episodes: int = 0,
    greedy: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> TrialResults:
    """Run one trial per layout seed for `episodes` episodes each (the first `demo_episodes` by the expert)."""
    if not 0 <= demo_episodes < episodes:
        raise ValueError(f"demo_episodes must be in [0, episodes), got {demo_episodes} of {episodes}")
    envs = [make_trial_env(env_name) for _ in seeds]
    batch = len(envs)
    generator = torch.Generator().manual_seed(seed)
    try:
        for env, layout in zip(envs, seeds, strict=True):
            env.new_trial(int(layout))
        observations = [env.reset() for env in envs]
        horizon = max(env.max_episode_steps for env in envs)
        context = policy.new_context(batch, episodes * horizon)
        tracker = EpisodeTracker(batch)
        success = np.zeros((batch, episodes), dtype=bool)
        steps = np.zeros((batch, episodes), dtype=np.int64)
        returns = np.zeros((batch, episodes))
        steps_to_goal = np.zeros((batch, episodes), dtype=np.int64)
        episode = np.zeros(batch, dtype=np.int64)
        bar = progress_bar(batch * episodes, f"eval {env_name}", progress, unit="episode")
        while (episode < episodes).any():
            step_inputs = tracker.inputs(*observation_arrays(observations, policy.spec))
            logits, _ = policy.step(step_inputs, context)
            if greedy:
                sampled = logits.argmax(-1)
            else:
                sampled = torch.multinomial(Categorical(logits=logits).probs, 1, generator=generator)[:, 0]
            actions = sampled.numpy().copy()
            rewards = np.zeros(batch, dtype=np.float32)
            over = np.zeros(batch, dtype=bool)
            for i, env in enumerate(envs):
                k = int(episode[i])
                if k < demo_episodes:
                    actions[i] = env.expert_action()
                obs, reward, terminated, truncated, info = env.step(int(actions[i]))
                rewards[i] = reward
                if k < episodes:
                    steps[i, k] += 1
                    returns[i, k] += reward
                    if not success[i, k] and info.get("success", False):
                        success[i, k] = True
                        steps_to_goal[i, k] = steps[i, k]
                if terminated or truncated:
                    over[i] = True
                    episode[i] += 1
                    if k < episodes:
                        bar.update(1)
                    obs = env.reset()
                observations[i] = obs
            tracker.advance(actions, rewards, over)
        bar.close()
    finally:
        for env in envs:
            env.close()
    steps_to_goal = np.where(success, steps_to_goal, steps)
    return TrialResults(success, steps, returns, demo_episodes, steps_to_goal)


__all__ = ["TrialResults", "run_trials"]

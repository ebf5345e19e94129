"""Deterministic-policy evaluation episodes: the figure the PROPS and MDPO papers report.

`evaluate_policy(act, env_id, episodes, seed)` runs `episodes` episodes of a fresh `make_env(env_id)`
(gym.make, observations flattened; no normalisation, no action clipping of its own: `act` is the deployed policy, which
normalises with frozen training statistics and clips to the action bounds itself) and returns their raw
returns. Episode k is reset with seed + k, so two policies evaluated with the same seed meet the same
initial states. Training episodes are seeded from the run's seed; evaluation starts EVAL_SEED_OFFSET above.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from policyopt.envs import make_env

EVAL_SEED_OFFSET = 10_000
"""Evaluation episodes are seeded from seed + 10_000 on (never a training episode's seed)."""


def evaluate_policy(act: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int, seed: int) -> list[float]:
    """Returns of `episodes` episodes of `act` (raw observation -> action), reset with seeds seed, seed + 1, ..."""
    env = make_env(env_id)
    returns: list[float] = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(act(np.asarray(obs)))
                total += float(reward)
                done = bool(terminated or truncated)
            returns.append(total)
    finally:
        env.close()
    return returns


__all__ = ["EVAL_SEED_OFFSET", "evaluate_policy"]

"""Learning test: on a task whose answer is only in context, ReLIC beats what any memoryless policy can reach.

CueBandit (relicnav): every trial hides one rewarded arm of four; each episode is one choice; nothing in
the observation tells the arm. A policy without memory across episodes earns 1/4 on average over trials
whatever it does; one that remembers what paid can approach 1 after the first episodes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relicnav import trial_seeds
from relicrl.checkpoint import load_policy
from relicrl.configs import RelicConfig
from relicrl.evaluate import run_trials
from relicrl.trainer import POLICY_FILE, train

MEMORYLESS_CEILING = 0.25


@pytest.mark.learning
@pytest.mark.slow
def test_relic_learns_in_context_what_a_memoryless_policy_cannot(tmp_path: Path) -> None:
    config = RelicConfig(
        env="cuebandit",
        seed=0,
        run_dir=tmp_path / "run",
        total_steps=16_384,
        num_envs=8,
        rollout_steps=64,
        updates_per_rollout=4,
        learning_rate=1e-3,
        warmup_steps=1000,
        progress=False,
        tensorboard=False,
    )
    train(config)
    policy, _ = load_policy(tmp_path / "run" / POLICY_FILE)
    results = run_trials(policy, "cuebandit", trial_seeds("cuebandit", "eval", 64), episodes=12, seed=1)
    by_episode = results.success_by_episode()
    later = float(by_episode[4:].mean())  # after up to four tries the arm is known
    assert by_episode[0] < 0.5, f"the first choice of a trial cannot know the arm, got {by_episode[0]:.2f}"
    assert later > 0.7, f"success after 4 in-context episodes {later:.2f} (memoryless ceiling {MEMORYLESS_CEILING})"

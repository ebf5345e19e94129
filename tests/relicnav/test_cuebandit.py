"""CueBandit: what a memoryless policy can earn, what a remembering one can, and the trial structure."""

from __future__ import annotations

import numpy as np
import pytest

from relicnav import CueBandit, trial_seeds


def play(env: CueBandit, arm: int) -> float:
    env.reset()
    reward, terminated = 0.0, False
    while not terminated:
        _, reward, terminated, _, _ = env.step(arm)
    return reward


@pytest.mark.parametrize("arms", [2, 4])
def test_a_fixed_arm_earns_one_over_arms_across_trials(arms: int) -> None:
    env = CueBandit(arms=arms)
    seeds = trial_seeds("cuebandit", "train", 4000)
    for arm in range(arms):
        rewards = []
        for seed in seeds:
            env.new_trial(seed)
            rewards.append(play(env, arm))
        assert abs(np.mean(rewards) - 1 / arms) < 0.03, (arm, np.mean(rewards))


def test_observations_carry_nothing_about_the_arm() -> None:
    env = CueBandit(arms=4, horizon=3)
    seen = set()
    for seed in trial_seeds("cuebandit", "eval", 40):
        env.new_trial(seed)
        trace = [env.reset()["vector"].tobytes()]
        trace += [env.step(0)[0]["vector"].tobytes() for _ in range(3)]
        seen.add(tuple(trace))
    assert len(seen) == 1


def test_a_policy_that_remembers_approaches_one() -> None:
    env = CueBandit(arms=4)
    per_episode = np.zeros(20)
    seeds = trial_seeds("cuebandit", "train", 200)
    for seed in seeds:
        env.new_trial(seed)
        arm = 0
        for episode in range(20):
            reward = play(env, arm)
            per_episode[episode] += reward
            arm = arm if reward == 1.0 else (arm + 1) % 4  # win-stay, lose-shift
    per_episode /= len(seeds)
    assert np.all(per_episode[4:] == 1.0)
    assert per_episode.mean() > 0.9


def test_the_arm_stays_for_the_trial_and_follows_the_seed() -> None:
    env = CueBandit(arms=4)
    arms = []
    for seed in range(40):
        env.new_trial(seed)
        paid = [arm for arm in range(4) if play(env, arm) == 1.0]
        assert len(paid) == 1
        assert all(play(env, paid[0]) == 1.0 for _ in range(5))
        assert env.expert_action() == paid[0]
        arms.append(paid[0])
    assert set(arms) == {0, 1, 2, 3}
    env.new_trial(7)
    assert env.expert_action() == arms[7]


def test_only_the_last_step_of_the_corridor_chooses_and_ends() -> None:
    env = CueBandit(arms=3, horizon=4)
    env.new_trial(1)
    arm = env.expert_action()
    env.reset()
    outcomes = [env.step((arm + 1) % 3)[1:4] for _ in range(3)]
    assert outcomes == [(0.0, False, False)] * 3
    obs, reward, terminated, truncated, info = env.step(arm)
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    assert env.observation_space.contains(obs)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(arm)


def test_reset_before_a_trial_and_bad_actions_raise() -> None:
    env = CueBandit(arms=4)
    with pytest.raises(RuntimeError, match="new_trial"):
        env.reset()
    env.new_trial(0)
    env.reset()
    for action in (4, -1, 1.5, None):
        with pytest.raises(ValueError, match="action"):
            env.step(action)  # type: ignore[arg-type]

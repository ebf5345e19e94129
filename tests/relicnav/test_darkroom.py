"""Darkroom: the authors' goal split, transitions, rewards, truncation and expert."""

from __future__ import annotations

import numpy as np
import pytest

from relicnav import Darkroom, trial_seeds


def authors_split() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The authors' construction (relic/envs/custom_envs/example.py), written out independently."""
    goals = np.array([[(j, i) for i in range(10)] for j in range(10)]).reshape(-1, 2)
    np.random.RandomState(seed=0).shuffle(goals)
    return [tuple(g) for g in goals[:80]], [tuple(g) for g in goals[80:]]


def goals_of(env: Darkroom, seeds: list[int]) -> list[tuple[int, int]]:
    found = []
    for seed in seeds:
        env.new_trial(seed)
        assert env.goal is not None
        found.append((int(env.goal[0]), int(env.goal[1])))
    return found


def test_split_seeds_walk_through_the_authors_goals_in_order() -> None:
    train, held_out = authors_split()
    env = Darkroom()
    assert goals_of(env, trial_seeds("darkroom", "train", 80)) == train
    assert goals_of(env, trial_seeds("darkroom", "eval", 20)) == held_out


def test_no_seed_of_one_split_reaches_a_goal_of_the_other() -> None:
    train, held_out = authors_split()
    env = Darkroom()
    assert set(goals_of(env, trial_seeds("darkroom", "train", 500, start=37))) == set(train)
    assert set(goals_of(env, trial_seeds("darkroom", "eval", 500, start=11))) == set(held_out)
    assert not set(train) & set(held_out)


def test_the_goal_stays_for_the_trial_and_the_same_seed_gives_it_again() -> None:
    env = Darkroom()
    env.new_trial(5)
    first = env.goal.copy() if env.goal is not None else None
    for _ in range(3):
        env.reset()
        for _ in range(20):
            env.step(env.expert_action())
        assert np.array_equal(env.goal, first)
    env.new_trial(6)
    assert not np.array_equal(env.goal, first)
    env.new_trial(5)
    assert np.array_equal(env.goal, first)


def seed_with_goal(env: Darkroom, goal: tuple[int, int]) -> int:
    for seed in trial_seeds("darkroom", "train", 80) + trial_seeds("darkroom", "eval", 20):
        env.new_trial(seed)
        if env.goal is not None and tuple(env.goal) == goal:
            return seed
    raise AssertionError(f"no seed has goal {goal}")


def test_moves_clip_at_the_border_and_reward_only_on_the_goal() -> None:
    env = Darkroom(dim=10, horizon=100)
    env.new_trial(seed_with_goal(env, (1, 1)))
    obs = env.reset()
    assert np.array_equal(obs["vector"], [0.0, 0.0])
    expected = [  # action, cell after it, reward
        (1, (0, 0), 0.0),
        (3, (0, 0), 0.0),
        (0, (1, 0), 0.0),
        (4, (1, 0), 0.0),
        (2, (1, 1), 1.0),
        (4, (1, 1), 1.0),
        (2, (1, 2), 0.0),
        (3, (1, 1), 1.0),
    ]
    for action, cell, reward in expected:
        obs, got, terminated, truncated, _ = env.step(action)
        assert np.allclose(obs["vector"], np.array(cell) / 9)
        assert got == reward
        assert not terminated
        assert not truncated
    env.reset()
    for _ in range(9):
        obs, *_ = env.step(0)
    assert np.allclose(obs["vector"], [1.0, 0.0])
    assert np.allclose(env.step(0)[0]["vector"], [1.0, 0.0])


def test_success_is_sticky_within_an_episode_and_cleared_by_reset() -> None:
    env = Darkroom()
    env.new_trial(seed_with_goal(env, (1, 0)))
    env.reset()
    assert env.step(4)[4]["success"] is False
    assert env.step(0)[4]["success"] is True
    assert env.step(0)[4]["success"] is True  # left the goal: still a successful episode
    env.reset()
    assert env.step(4)[4]["success"] is False


def test_episodes_truncate_at_the_horizon_and_never_terminate() -> None:
    env = Darkroom(horizon=5)
    env.new_trial(0)
    env.reset()
    flags = [env.step(4)[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(4)


@pytest.mark.parametrize("horizon", [1, 30])
def test_expert_collects_the_closed_form_return_on_every_goal(horizon: int) -> None:
    env = Darkroom(horizon=horizon)
    for seed in trial_seeds("darkroom", "train", 80) + trial_seeds("darkroom", "eval", 20):
        env.new_trial(seed)
        assert env.goal is not None
        env.reset()
        rewards, truncated, info = [], False, {}
        while not truncated:
            _, reward, _, truncated, info = env.step(env.expert_action())
            rewards.append(reward)
        first_on_goal = max(int(env.goal.sum()), 1)  # stays put (action 4) when the goal is (0, 0)
        assert sum(rewards) == max(horizon - first_on_goal + 1, 0)
        assert info["success"] == (first_on_goal <= horizon)


def test_observations_lie_in_the_observation_space() -> None:
    env = Darkroom(dim=7, horizon=50)
    env.new_trial(3)
    rng = np.random.default_rng(0)
    obs, truncated = env.reset(), False
    while True:
        assert env.observation_space.contains(obs)
        if truncated:
            break
        obs, _, _, truncated, _ = env.step(int(rng.integers(5)))


def test_reset_before_a_trial_and_bad_actions_raise() -> None:
    env = Darkroom()
    with pytest.raises(RuntimeError, match="new_trial"):
        env.reset()
    env.new_trial(0)
    env.reset()
    for action in (5, -1, 0.0, "0"):
        with pytest.raises(ValueError, match="action"):
            env.step(action)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dim"):
        Darkroom(dim=1)

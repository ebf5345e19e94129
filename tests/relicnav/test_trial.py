"""The trial interface's seeds, factory and action checks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from relicnav import ENV_NAMES, CueBandit, Darkroom, TrialEnv, make_trial_env, trial_seeds
from relicnav.trial import check_action, seed_split


@pytest.mark.parametrize("name", ENV_NAMES)
def test_train_and_eval_seeds_are_disjoint_and_reproducible(name: str) -> None:
    train = trial_seeds(name, "train", 1000)
    evaluation = trial_seeds(name, "eval", 1000)
    assert len(set(train)) == len(set(evaluation)) == 1000
    assert not set(train) & set(evaluation)
    assert trial_seeds(name, "train", 1000) == train
    assert trial_seeds(name, "eval", 10, start=990) == evaluation[990:]
    assert {seed_split(s)[0] for s in train} == {"train"}
    assert {seed_split(s)[0] for s in evaluation} == {"eval"}


def test_unknown_names_and_splits_say_what_is_allowed() -> None:
    for call in (lambda: make_trial_env("gridworld"), lambda: trial_seeds("gridworld", "train", 3)):
        with pytest.raises(ValueError, match="gridworld") as raised:
            call()
        assert all(name in str(raised.value) for name in ENV_NAMES)
    with pytest.raises(ValueError, match="'train' or 'eval'"):
        trial_seeds("darkroom", "test", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="count"):
        trial_seeds("darkroom", "train", -1)


def test_factory_builds_the_named_environment_with_its_arguments() -> None:
    darkroom = make_trial_env("darkroom", dim=5, horizon=7)
    assert isinstance(darkroom, Darkroom)
    assert darkroom.dim == 5
    assert darkroom.max_episode_steps == 7
    bandit = make_trial_env("cuebandit", arms=3)
    assert isinstance(bandit, CueBandit)
    assert bandit.action_space.n == 3
    assert isinstance(darkroom, TrialEnv)
    assert isinstance(bandit, TrialEnv)


def test_the_laptop_darkroom_is_a_6x6_grid_with_20_step_episodes_and_held_out_goals() -> None:
    small = make_trial_env("darkroom-6x6")
    assert isinstance(small, Darkroom)
    assert (small.dim, small.max_episode_steps) == (6, 20)
    goals = {}
    for split, count in (("train", 28), ("eval", 8)):
        cells = set()
        for seed in trial_seeds("darkroom-6x6", split, 3 * count):  # type: ignore[arg-type]
            small.new_trial(seed)
            assert small.goal is not None
            cells.add(tuple(int(v) for v in small.goal))
        goals[split] = cells
    assert len(goals["train"]) == 28
    assert len(goals["eval"]) == 8
    assert not goals["train"] & goals["eval"]
    # The farthest goal is reachable in one episode; the expert gets there and stays.
    small.new_trial(trial_seeds("darkroom-6x6", "eval", 8)[0])
    small.reset()
    rewards = [small.step(small.expert_action())[1] for _ in range(20)]
    assert rewards[-1] == 1.0
    assert sum(rewards) >= 10
    assert make_trial_env("darkroom-6x6", horizon=30).max_episode_steps == 30


@pytest.mark.parametrize("action", [-1, 5, 1.0, "1", True, None, np.float32(2.0), np.array([1])])
def test_bad_actions_raise_value_error(action: object) -> None:
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        check_action(action, 5)


def test_numpy_integer_actions_are_accepted_as_ints() -> None:
    checked = check_action(np.int64(4), 5)
    assert checked == 4
    assert type(checked) is int


def test_importing_relicnav_loads_neither_miniworld_nor_habitat() -> None:
    heavy = ("miniworld", "pyglet", "habitat", "torch")
    code = f"import sys, relicnav; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert completed.stdout.strip() == "[]"

"""Typed configurations: the exploration schedule, the evaluation's held-out wind, and refusals of bad values."""

from __future__ import annotations

import itertools

import pytest

from mfplan.configs import EVAL_WIND_SEEDS, TRAIN_WIND_SEED_STRIDE, EvalConfig, TrainConfig


def test_exploration_falls_log_linearly_from_initial_to_final() -> None:
    config = TrainConfig(iterations=11, initial_action_std=0.4, final_action_std=0.1)
    stds = [config.action_std(i) for i in range(1, 12)]
    assert stds[0] == pytest.approx(0.4)
    assert stds[-1] == pytest.approx(0.1)
    assert stds[5] == pytest.approx(0.2)  # halfway in log space
    assert all(a > b for a, b in itertools.pairwise(stds))
    assert config.action_std(500) == pytest.approx(0.1)  # a resumed run past the end keeps the final value


def test_exploration_schedule_must_fall() -> None:
    with pytest.raises(ValueError, match="final_action_std"):
        TrainConfig(initial_action_std=0.1, final_action_std=0.2)


def test_evaluation_wind_is_never_a_training_wind() -> None:
    for seed in range(9):  # every training run's RotorPy seeds are [seed * stride, (seed + 1) * stride)
        low, high = seed * TRAIN_WIND_SEED_STRIDE, (seed + 1) * TRAIN_WIND_SEED_STRIDE
        assert all(not low <= wind < high for wind in EVAL_WIND_SEEDS)
    assert EvalConfig().wind_seeds == EVAL_WIND_SEEDS
    assert EvalConfig(smoke=True).resolved().wind_seeds == EVAL_WIND_SEEDS[:1]


def test_evaluation_needs_a_wind() -> None:
    with pytest.raises(ValueError, match="wind_seeds"):
        EvalConfig(wind_seeds=())

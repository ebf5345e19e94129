"""Typed configurations: the exploration schedule, the evaluation's held-out wind, refusals of bad values, the
run folder, runkit's smoke rule, and a command line that starts without torch."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from mfplan.configs import EVAL_WIND_SEEDS, TRAIN_WIND_SEED_STRIDE, CalibrateConfig, EvalConfig, TrainConfig
from runkit.config import RunConfig


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


def test_train_config_is_a_run_config_with_the_seed_in_its_default_run_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMOKE_TEST", raising=False)
    assert isinstance(TrainConfig(), RunConfig)
    assert TrainConfig(seed=3).resolved().run_dir == Path("runs/mfrl/seed3")
    assert TrainConfig(run_dir=Path("elsewhere")).resolved().run_dir == Path("elsewhere")
    assert TrainConfig().resolved() == TrainConfig(run_dir=Path("runs/mfrl/seed0"))  # no smoke: nothing shrinks


@pytest.mark.parametrize("via_environment", [False, True])
def test_smoke_shrinks_only_what_the_user_left_at_its_default(
    monkeypatch: pytest.MonkeyPatch, via_environment: bool
) -> None:
    if via_environment:
        monkeypatch.setenv("SMOKE_TEST", "1")
    else:
        monkeypatch.delenv("SMOKE_TEST", raising=False)
    flag = not via_environment
    train = TrainConfig(iterations=12, smoke=flag).resolved()
    assert (train.smoke, train.iterations, train.train_courses) == (True, 12, 16)
    evaluation = EvalConfig(courses=10, wind_seeds=(1, 2, 3), smoke=flag).resolved()
    assert (evaluation.smoke, evaluation.courses, evaluation.wind_seeds) == (True, 10, (1, 2, 3))
    assert evaluation.displacements_m == (0.0, 2.0)
    assert evaluation.moving_displacements_m == (1.0,)
    calibrate = CalibrateConfig(checkpoint=Path("x.pt"), courses=9, smoke=flag).resolved()
    assert (calibrate.smoke, calibrate.courses, calibrate.winds, calibrate.miss_rate) == (True, 9, 1, 0.2)
    assert calibrate.checkpoint == Path("x.pt")


def test_without_smoke_nothing_shrinks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMOKE_TEST", raising=False)
    assert EvalConfig().resolved() == EvalConfig()
    assert CalibrateConfig(checkpoint=Path("x.pt")).resolved() == CalibrateConfig(checkpoint=Path("x.pt"))


def test_the_command_line_starts_without_torch() -> None:
    """The configs (and so `mfrl --help`) import neither torch nor BoTorch nor matplotlib."""
    code = "import sys, mfplan.cli; print(sorted(m for m in ('torch', 'botorch', 'matplotlib') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"

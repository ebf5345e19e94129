"""Calibration of the planner's safety margin: the conformal rank, and a smoke run that stores the margin."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mfplan.calibration import calibrate, conformal_margin
from mfplan.configs import CalibrateConfig
from mfplan.planner import CertifiedPlanner
from mfplan.policy import TimeAllocationPolicy, load_policy, read_policy, save_policy


def test_conformal_margin_is_the_finite_sample_quantile() -> None:
    boundaries = np.arange(1, 100, dtype=float)  # 99 flights: rank ceil(100 * 0.99) = 99, the largest
    assert conformal_margin(boundaries, 0.01) == 99.0
    assert conformal_margin(boundaries, 0.1) == 90.0  # rank ceil(100 * 0.9) = 90
    assert math.isinf(conformal_margin(boundaries[:-1], 0.01))  # 98 flights cannot certify 99 %
    assert math.isinf(conformal_margin(np.array([1.0, np.inf, np.inf]), 0.2))  # never flew: no margin


def test_calibration_needs_enough_flights_and_a_sane_miss_rate() -> None:
    with pytest.raises(ValueError, match="miss_rate"):
        CalibrateConfig(checkpoint=Path("x.pt"), miss_rate=0.0)
    with pytest.raises(ValueError, match="course"):
        CalibrateConfig(checkpoint=Path("x.pt"), courses=0)


@pytest.mark.sim
@pytest.mark.slow
def test_smoke_calibration_writes_a_margin_the_planner_uses(tmp_path: Path) -> None:
    path = save_policy(tmp_path / "policy.pt", TimeAllocationPolicy(), {"command": "test"}, config={"seed": 0})
    calibration = calibrate(CalibrateConfig(checkpoint=path, smoke=True, num_workers=2, progress=False))
    assert calibration["flights"] == 4
    assert calibration["safety_margin"] >= 1.0
    # The margin is the rank-4 boundary of 4 flights at miss rate 0.2: every calibration flight flies with it.
    assert calibration["safety_margin"] == max(calibration["boundaries"])
    _, metadata = load_policy(path)
    assert metadata["command"] == "test"  # the training provenance is kept
    assert read_policy(path).config == {"seed": 0}  # and so is the training run's config
    assert metadata["calibration"]["safety_margin"] == calibration["safety_margin"]
    assert CertifiedPlanner.from_checkpoint(path).safety_margin == calibration["safety_margin"]

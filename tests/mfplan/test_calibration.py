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
    # Six courses (one wind each in a smoke run): an untrained policy's plans are repaired now and then, and a
    # rank at miss rate 0.2 needs 4 flights of each kind.
    config = CalibrateConfig(checkpoint=path, courses=6, smoke=True, num_workers=2, progress=False)
    calibration = calibrate(config)
    assert calibration["flights"] + calibration["uncertified_courses"] == 6
    assert calibration["safety_margin"] >= 1.0
    # The margin is the rank-ceil(0.8 (n + 1)) boundary of n flights: with n <= 6, the largest or the one below.
    assert (
        calibration["safety_margin"]
        == sorted(calibration["boundaries"])[math.ceil(0.8 * (calibration["flights"] + 1)) - 1]
    )
    # Moving-start replans (one cut from each course, started in motion) get their own margin the same way.
    assert calibration["moving_flights"] + calibration["uncertified_moving_replans"] == 6
    # When a moving flight is infeasible at every slow-down searched, no margin of that rank exists: the
    # calibration says so and the planner keeps the policy's own times for moving replans (still certified).
    # With fewer flights than the rank needs (an untrained policy's moving plans are sometimes uncertified), there
    # is no margin either, and the calibration says how many flights a rank needs.
    moving = sorted(calibration["moving_boundaries"])
    rank = math.ceil(0.8 * (len(moving) + 1))
    if rank > len(moving):
        assert calibration["moving_safety_margin"] is None
        assert "a rank needs at least" in calibration["moving_calibration_problem"]
    elif math.isfinite(moving[rank - 1]):
        assert calibration["moving_safety_margin"] == moving[rank - 1] >= 1.0
        assert calibration["moving_calibration_problem"] == ""
    else:
        assert calibration["moving_safety_margin"] is None
        assert "infeasible at every slow-down" in calibration["moving_calibration_problem"]
    _, metadata = load_policy(path)
    assert metadata["command"] == "test"  # the training provenance is kept
    assert read_policy(path).config == {"seed": 0}  # and so is the training run's config
    assert metadata["calibration"]["safety_margin"] == calibration["safety_margin"]
    planner = CertifiedPlanner.from_checkpoint(path)
    assert planner.safety_margin == calibration["safety_margin"]
    assert planner.moving_safety_margin == (calibration["moving_safety_margin"] or 1.0)


@pytest.mark.sim
@pytest.mark.slow
def test_a_tightened_calibration_measures_from_the_certificates_boundary(tmp_path: Path) -> None:
    """`--tighten --tighten-moving`: the flights (from rest and in motion) are the tightened plans, so the margins
    (>= 1) slow the certificate's boundary down; the checkpoint then plans tightened by default, with them."""
    path = save_policy(tmp_path / "policy.pt", TimeAllocationPolicy(), {"command": "test"}, config={"seed": 0})
    config = CalibrateConfig(
        checkpoint=path, courses=5, smoke=True, num_workers=2, progress=False, tighten=True, tighten_moving=True
    )
    calibration = calibrate(config)
    assert calibration["tighten"] is True
    assert calibration["tighten_moving"] is True
    assert calibration["command"].endswith("--tighten --tighten-moving")
    assert calibration["flights"] >= 4
    assert min(calibration["boundaries"]) >= 1.0  # 1: the boundary itself flies
    assert calibration["moving_flights"] >= 4
    assert min(calibration["moving_boundaries"]) >= 1.0
    planner = CertifiedPlanner.from_checkpoint(path)
    assert planner.tighten
    assert planner.tighten_moving
    assert planner.safety_margin == calibration["safety_margin"]
    assert planner.moving_safety_margin == (calibration["moving_safety_margin"] or 1.0)

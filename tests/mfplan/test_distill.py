"""`mfrl distill`: the teacher's times are certified and the targets invert the policy's time map; a smoke run
writes a policy that plans and whose times moved toward the teacher's; a resumed run reuses every reference it
saved (no worker pool is started); references of another run are refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mfplan import distill as distill_module
from mfplan.configs import DistillConfig
from mfplan.distill import (
    POLICY_CHECKPOINT,
    REFERENCES_FILE,
    DistillError,
    distill,
    distillation_courses,
    log_factor_targets,
    reference_times,
)
from mfplan.planner import CertifiedPlanner, planner_certificate
from mfplan.policy import TimeAllocationPolicy, encode_course, read_policy, segment_times_from_log_factors
from minsnap import solve_min_snap
from runkit import SUMMARY_FILE
from runkit.testing import run_console_script

pytestmark = [pytest.mark.slow]


def _config(run_dir: Path, **overrides: object) -> DistillConfig:
    options: dict[str, object] = {"run_dir": run_dir, "smoke": True, "num_workers": 1, "progress": False}
    options.update(overrides)
    return DistillConfig(**options)  # type: ignore[arg-type]


def test_the_teachers_times_are_certified_from_rest_and_in_motion() -> None:
    courses = distillation_courses(DistillConfig(courses=6, moving_fraction=0.5, seed=3))
    assert any(np.any(c.start.velocity) for c in courses)
    assert any(not np.any(c.start.velocity) for c in courses)
    certificate = planner_certificate()
    for course in courses[:4]:
        times = reference_times(course)
        assert times is not None
        trajectory = solve_min_snap(course.waypoints, times, start=course.start)
        assert certificate.check(trajectory).passed


def test_targets_are_the_log_factors_that_give_the_teachers_times() -> None:
    policy = TimeAllocationPolicy()
    waypoints = np.array([[0, 0, 1, 0], [3, 1, 1.5, 0.3], [5, 4, 2, 0.6], [2, 6, 1.2, 1.0]], dtype=float)
    encoding = encode_course(waypoints)
    times = np.array([1.7, 2.2, 1.9])
    targets = log_factor_targets(encoding, times, policy)
    back = segment_times_from_log_factors(encoding.segment_lengths_m, targets, policy.config)
    np.testing.assert_allclose(back, times, rtol=1e-12)


def test_smoke_run_writes_a_policy_that_plans_closer_to_the_teacher(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_console_script("mfrl", ["distill", "--run-dir", str(run_dir), "--num-workers", "1", "--no-progress"])
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert json.loads(result.stdout) == summary
    assert summary["certified_references"] >= 10
    assert summary["validation_mse"] < summary["initial_validation_mse"]
    written = read_policy(run_dir / POLICY_CHECKPOINT)
    assert written.metadata["command"].startswith(f"mfrl distill --run-dir {run_dir}")
    assert written.metadata["distillation"]["epoch"] >= 1
    plan = CertifiedPlanner.from_checkpoint(run_dir / POLICY_CHECKPOINT).plan(
        np.array([[0, 0, 1, 0], [3, 1, 1.5, 0.3], [5, 4, 2, 0.6], [2, 6, 1.2, 1.0]])
    )
    assert plan.feasible
    assert plan.total_time_s > 0


def test_resume_reuses_the_saved_references_and_other_runs_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "first"
    distill(_config(first, epochs=1))
    saved = (first / REFERENCES_FILE).read_bytes()

    class NoPool:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("a resumed run recomputed references it had saved")

    monkeypatch.setattr(distill_module, "ProcessPoolExecutor", NoPool)
    summary = distill(_config(first, epochs=3, resume=True))
    assert summary["epoch"] >= 1
    assert (first / REFERENCES_FILE).read_bytes() == saved

    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(first / REFERENCES_FILE, other / REFERENCES_FILE)
    with pytest.raises(DistillError, match="references of another run"):
        distill(_config(other, courses=20, resume=True))


def test_a_fresh_policy_can_be_the_starting_point(tmp_path: Path) -> None:
    config = _config(tmp_path / "fresh", init_checkpoint=None, courses=6, epochs=1)
    summary = distill(config)
    assert summary["init_checkpoint"] is None
    assert read_policy(tmp_path / "fresh" / POLICY_CHECKPOINT).metadata["distillation"]["init_checkpoint"] is None


def test_the_initial_teacher_keeps_replans_in_motion_as_the_starting_policy_flies_them(tmp_path: Path) -> None:
    """Every course in motion, taught by the starting policy: its own times are the targets, so no epoch can beat
    the starting weights and they are what is written."""
    summary = distill(_config(tmp_path / "run", courses=6, moving_fraction=1.0, moving_teacher="initial"))
    assert summary["moving_references"] == summary["certified_references"]
    assert summary["initial_validation_mse"] < 1e-10
    assert summary["epoch"] == 0
    written = read_policy(tmp_path / "run" / POLICY_CHECKPOINT).policy
    shipped = read_policy(DistillConfig().init_checkpoint or "").policy
    for name, tensor in shipped.state_dict().items():
        assert torch.equal(written.state_dict()[name], tensor), name


def test_the_committed_candidate_is_a_calibrated_distilled_policy() -> None:
    """learning/mfplan/checkpoints/candidate_distilled/: what its README says it is (safe loader, calibrated)."""
    from mfplan.configs import DEFAULT_CHECKPOINT

    path = DEFAULT_CHECKPOINT.parent / "candidate_distilled" / "mfrl_policy.pt"
    candidate = read_policy(path)
    assert candidate.metadata["command"] == "mfrl distill --run-dir runs/mfrl_distill/seed0"
    assert candidate.metadata["distillation"]["certified_references"] == 7024
    calibration = candidate.metadata["calibration"]
    assert calibration["tighten"] is True
    assert calibration["safety_margin"] == pytest.approx(1.0)
    assert calibration["flights"] == 112
    assert calibration["moving_safety_margin"] == pytest.approx(1.0439, abs=1e-4)
    planner = CertifiedPlanner.from_checkpoint(path)
    assert planner.tighten

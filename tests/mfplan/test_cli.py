"""`mfrl plan`: JSON out with the fields a user scripts against; bad files give the line and the problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mfplan.planner import DEFAULT_CHECKPOINT
from mfplan.policy import TimeAllocationPolicy, save_policy
from minsnap import Trajectory
from quadsim.analytic import AnalyticEvaluator


def _mfrl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mfplan.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return save_policy(tmp_path / "policy.pt", TimeAllocationPolicy(), {"command": "test"})


@pytest.fixture
def course(tmp_path: Path) -> Path:
    path = tmp_path / "course.csv"
    path.write_text("x,y,z,yaw\n0,0,1,0\n3,1,1.5,0.3\n5,4,2,0.6\n2,6,1.2,1.0\n")
    return path


def test_plan_writes_certified_json(course: Path, checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = _mfrl("plan", "--waypoints", str(course), "--checkpoint", str(checkpoint), "--out", str(out))
    assert result.returncode == 0, result.stderr
    plan = json.loads(out.read_text())
    for key in ("segment_times_s", "total_time_s", "feasible", "planning_time_ms"):
        assert key in plan
    assert plan["feasible"] is True
    assert len(plan["segment_times_s"]) == 3
    trajectory = Trajectory.from_dict(plan["trajectory"])
    assert trajectory.duration_s == pytest.approx(plan["total_time_s"])
    assert AnalyticEvaluator().is_feasible(trajectory)


def test_plan_to_stdout_from_a_moving_start(course: Path, checkpoint: Path) -> None:
    result = _mfrl(
        "plan", "--waypoints", str(course), "--checkpoint", str(checkpoint), "--start-velocity", "1", "0", "0"
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    velocity = Trajectory.from_dict(plan["trajectory"]).derivatives([0.0], max_order=1)[1, 0, :3]
    assert velocity.tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_bad_waypoint_file_names_the_line(tmp_path: Path, checkpoint: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y,z\n0,0,1\n1,nope,1\n")
    result = _mfrl("plan", "--waypoints", str(bad), "--checkpoint", str(checkpoint))
    assert result.returncode == 2
    assert f"{bad}:3: column 'y' is 'nope', not a number" in result.stderr


def test_missing_checkpoint_says_how_to_make_one(course: Path, tmp_path: Path) -> None:
    result = _mfrl("plan", "--waypoints", str(course), "--checkpoint", str(tmp_path / "none.pt"))
    assert result.returncode == 2
    assert "mfrl train" in result.stderr


def test_the_shipped_checkpoint_plans_by_default(course: Path) -> None:
    assert DEFAULT_CHECKPOINT.is_file(), "the trained checkpoint ships with the package"
    result = _mfrl("plan", "--waypoints", str(course))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["feasible"] is True

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


def _one_line_user_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a command that stopped on a user's mistake (exit status 2, no traceback)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_a_binary_waypoint_file_is_one_line_naming_it(tmp_path: Path, checkpoint: Path) -> None:
    binary = tmp_path / "course.csv"
    binary.write_bytes(bytes(range(128, 256)))
    line = _one_line_user_error(_mfrl("plan", "--waypoints", str(binary), "--checkpoint", str(checkpoint)))
    assert f"{binary}:1: not a UTF-8 text file" in line


def test_a_broken_yaml_waypoint_file_names_the_line(tmp_path: Path, checkpoint: Path) -> None:
    broken = tmp_path / "course.yaml"
    broken.write_text("waypoints:\n  - [0, 0, 1]\n  - [1, 2\n  - [3, 3, 1]\n")  # line 3 is never closed
    line = _one_line_user_error(_mfrl("plan", "--waypoints", str(broken), "--checkpoint", str(checkpoint)))
    assert f"{broken}:4: not valid YAML" in line


@pytest.mark.parametrize("command", ["plan", "eval"])
def test_a_corrupt_checkpoint_is_one_line_naming_it(tmp_path: Path, course: Path, command: str) -> None:
    corrupt = tmp_path / "policy.pt"
    corrupt.write_bytes(b"not a torch file at all")
    extra = ["--waypoints", str(course)] if command == "plan" else ["--smoke"]
    line = _one_line_user_error(_mfrl(command, "--checkpoint", str(corrupt), *extra))
    assert f"{corrupt} is not a readable policy checkpoint" in line

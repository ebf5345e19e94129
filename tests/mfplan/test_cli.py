"""`mfrl`: plan's JSON out with the fields a user scripts against; bad files give the line and the problem;
run folders follow runkit's rules; the smoke rule never overrides what the user set; the shipped checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from mfplan import cli
from mfplan.configs import EvalConfig, TrainConfig
from mfplan.planner import DEFAULT_CHECKPOINT, CertifiedPlanner
from mfplan.policy import CHECKPOINT_FORMAT, TimeAllocationPolicy, read_policy, save_policy
from minsnap import Trajectory
from quadsim.analytic import AnalyticEvaluator
from runkit.testing import run_console_script


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
    assert f"{corrupt} is not a readable mfplan policy checkpoint" in line


class _TouchesAFile:
    """Unpickling this object would call `Path.touch(marker)`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_crafted_pickle_is_refused_with_one_line_and_runs_nothing(tmp_path: Path, course: Path) -> None:
    marker = tmp_path / "marker"
    crafted = tmp_path / "policy.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "state": {"model": _TouchesAFile(marker)}}, crafted)
    result = run_console_script("mfrl", ["plan", "--waypoints", str(course), "--checkpoint", str(crafted)])
    line = _one_line_user_error(result)
    assert f"{crafted} is not a readable mfplan policy checkpoint" in line
    assert "refused by the safe loader" in line
    assert not marker.exists(), "loading the checkpoint ran the code in it"


def test_a_retired_policy_file_names_the_command_that_re_exports_it(tmp_path: Path, course: Path) -> None:
    old = tmp_path / "old.pt"
    torch.save({"format": "mfplan.policy/1", "state_dict": {}, "metadata": {}}, old)
    line = _one_line_user_error(_mfrl("plan", "--waypoints", str(course), "--checkpoint", str(old)))
    assert f"python learning/mfplan/checkpoints/upgrade.py {old}" in line


# ---------------------------------------------------------------------------------------------
# Run folders and the smoke rule.


def test_train_resume_on_an_empty_or_new_folder_exits_2_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (empty, tmp_path / "new"):
        result = run_console_script("mfrl", ["train", "--resume", "--run-dir", str(folder)], timeout_s=300)
        line = _one_line_user_error(result)
        assert f"nothing to resume in {folder}" in line
    assert not (tmp_path / "new").exists()
    assert list(empty.iterdir()) == []


def test_a_fresh_train_in_a_used_folder_is_refused_and_the_folder_is_left_alone(tmp_path: Path) -> None:
    used = tmp_path / "run"
    used.mkdir()
    (used / "evaluations.jsonl").write_text('{"torn": ')  # an earlier run's data set, with a torn last line
    before = {p.name: p.read_bytes() for p in used.iterdir()}
    line = _one_line_user_error(run_console_script("mfrl", ["train", "--run-dir", str(used)], timeout_s=300))
    assert f"{used} holds an earlier run" in line
    assert "pass --resume" in line
    assert {p.name: p.read_bytes() for p in used.iterdir()} == before


def _parsed(monkeypatch: pytest.MonkeyPatch, argv: list[str], target: str) -> Any:
    """The config the `mfrl` command line `argv` runs (the command's function is replaced: nothing runs)."""
    module_name, function = target.split(":")
    module = __import__(module_name, fromlist=[function])
    seen: list[Any] = []

    def record(config: Any) -> dict[str, Any]:
        seen.append(config.resolved())
        return {}

    monkeypatch.setattr(module, function, record)
    with pytest.raises(SystemExit) as exit_status:
        cli.main(argv)
    assert exit_status.value.code == 0
    assert len(seen) == 1
    return seen[0]


@pytest.mark.parametrize("smoke_flag", [True, False])
def test_eval_smoke_keeps_the_courses_the_user_asked_for(monkeypatch: pytest.MonkeyPatch, smoke_flag: bool) -> None:
    if smoke_flag:
        monkeypatch.delenv("SMOKE_TEST", raising=False)
        argv = ["eval", "--courses", "10", "--smoke"]
    else:
        monkeypatch.setenv("SMOKE_TEST", "1")  # as CI sets it: the same rule as --smoke
        argv = ["eval", "--courses", "10"]
    config = _parsed(monkeypatch, argv, "mfplan.evaluation:run_evaluation")
    assert isinstance(config, EvalConfig)
    assert config.smoke is True
    assert config.courses == 10  # the user's value
    smoke = EvalConfig().smoke_sizes()
    assert config.displacements_m == smoke["displacements_m"]  # what the user left at its default shrinks
    assert config.hifi_baseline_courses == 0


def test_train_smoke_keeps_what_the_user_set_and_names_the_run_folder_by_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMOKE_TEST", raising=False)
    config = _parsed(monkeypatch, ["train", "--smoke", "--iterations", "12", "--seed", "4"], "mfplan.trainer:train")
    assert isinstance(config, TrainConfig)
    assert config.iterations == 12
    assert config.train_courses == TrainConfig().smoke_sizes()["train_courses"]
    assert config.run_dir == Path("runs/mfrl/seed4")


# ---------------------------------------------------------------------------------------------
# The shipped checkpoint.


def test_the_shipped_checkpoint_loads_through_the_current_format() -> None:
    assert torch.load(DEFAULT_CHECKPOINT, weights_only=True)["format"] == CHECKPOINT_FORMAT
    shipped = read_policy(DEFAULT_CHECKPOINT)
    assert shipped.metadata["iteration"] == 240
    # Recalibrated for Step 10's drag-aware controller (1.2219 with the controller before it), for tightened
    # plans: 104 of 104 flights from rest fly at the certificate's boundary.
    calibration = shipped.metadata["calibration"]
    assert calibration["safety_margin"] == pytest.approx(1.0)
    assert calibration["flights"] == 104
    assert calibration["tighten"] is True
    assert calibration["command"].endswith("--courses 56 --winds 2 --miss-rate 0.01 --seed 0 --tighten")
    assert shipped.config["iterations"] == 240  # the training configuration, moved from the /1 metadata
    assert "train_config" not in shipped.metadata
    planner = CertifiedPlanner.from_checkpoint()  # as the ROS replanner builds it
    assert planner.safety_margin == shipped.metadata["calibration"]["safety_margin"]
    assert planner.tighten

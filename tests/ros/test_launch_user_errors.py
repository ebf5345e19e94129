"""`mfrl-launch` and `mfrl-demo`: a bad argument is one line and exit status 2, found before any node starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mfrl_graph import demo, runner


@pytest.fixture
def no_process_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the runner tries to start a node."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a node process was started: {args}")

    monkeypatch.setattr(runner.subprocess, "Popen", refuse)


def _one_line(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.usefixtures("no_process_starts")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["demo", "--course", "0", "0", "1", "nan", "1", "1.5", "4", "0", "1"],
            "--course: waypoint 1 has a non-finite x",
        ),
        (["demo", "--course", "0", "0", "1", "2", "1"], "--course: 5 numbers; give three per waypoint"),
        (["demo"], "the demo graph needs a course of at least two waypoints"),
        (["demo", "--course", "0", "0", "1", "2", "0", "1", "--replan-count", "-1"], "--replan-count must be >= 0"),
        (["replanner", "--real-time-factor", "-2"], "--real-time-factor must be finite and >= 0"),
        (["replanner", "--checkpoint", "no/such/policy.pt"], "--checkpoint: no such file no/such/policy.pt"),
        (["replanner", "--params-file", "no/such/params.yaml"], "parameter file no/such/params.yaml does not exist"),
    ],
)
def test_mfrl_launch_refuses_a_bad_argument_before_starting(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = runner.main(argv)
    assert message in _one_line(code, capsys.readouterr().err)


@pytest.mark.usefixtures("no_process_starts")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--replan-count", "-1"], "--replan-count must be >= 0, got -1"),
        (["--course", "nosuch"], "--course: no built-in course 'nosuch'"),
        (["--timeout-s", "0"], "--timeout-s must be > 0"),
        (["--controller", "policy", "--controller-checkpoint", "none.pt"], "--controller-checkpoint: no such file"),
    ],
)
def test_mfrl_demo_refuses_a_bad_argument_before_touching_anything(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    code = demo.main(["--out-dir", str(out), *argv])
    assert message in _one_line(code, capsys.readouterr().err)
    assert not out.exists()  # nothing created, no old bag deleted


def test_mfrl_demo_names_the_line_of_a_binary_course_file(
    tmp_path: Path, no_process_starts: None, capsys: pytest.CaptureFixture[str]
) -> None:
    course = tmp_path / "course.csv"
    course.write_bytes(b"x,y,z\n0,0,1\n\xff\xfe\n")
    code = demo.main(["--out-dir", str(tmp_path / "demo"), "--course", str(course)])
    assert f"{course}:3: not a UTF-8 text file" in _one_line(code, capsys.readouterr().err)


@pytest.mark.parametrize(
    "command",
    [
        ["mfrl_graph.runner", "demo", "--course", "0", "0", "1", "nan", "1", "1.5", "4", "0", "1"],
        ["mfrl_graph.demo", "--replan-count", "-1"],
    ],
)
def test_the_entry_points_fail_fast_in_their_own_process(command: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path
    )
    line = _one_line(result.returncode, result.stderr)
    assert line.startswith("error: ")
    assert "started" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # mfrl-demo's default runs/ros_demo was not created

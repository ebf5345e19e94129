"""`quadsim-demo` and `px4link review` on the runner: a user's mistake is one line and exit status 2, no traceback.

(The other console scripts are checked next to their packages' tests: tests/mfplan/test_cli.py,
tests/policyopt/test_cli_user_errors.py, tests/ros/test_launch_user_errors.py.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _user_error(module: str, *args: str, cwd: Path) -> str:
    """Run `python -m module args` in `cwd`; return its one stderr line after checking exit status 2."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_quadsim_demo_names_a_binary_waypoint_file(tmp_path: Path) -> None:
    course = tmp_path / "course.yaml"
    course.write_bytes(bytes(range(128, 256)))
    line = _user_error("quadsim.demo", "--waypoints", str(course), "--out-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert f"{course}:1: not a UTF-8 text file" in line
    assert not (tmp_path / "out").exists()


def test_quadsim_demo_names_an_unknown_course(tmp_path: Path) -> None:
    line = _user_error("quadsim.demo", "--course", "nosuch", "--out-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert line.startswith("error: --course: no built-in course 'nosuch'; available: [")


@pytest.mark.parametrize(
    ("content", "problem"), [(b"", "Header too short"), (bytes(range(256)) * 2, "Failed to parse header")]
)
def test_px4link_review_of_a_file_that_is_not_a_ulog(tmp_path: Path, content: bytes, problem: str) -> None:
    log = tmp_path / "flight.ulg"
    log.write_bytes(content)
    line = _user_error("px4link.cli", "review", str(log), "--out-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert line == f"error: {log} is not a readable PX4 ULog: Invalid file format ({problem})"


def test_px4link_review_of_a_missing_file(tmp_path: Path) -> None:
    line = _user_error("px4link.cli", "review", str(tmp_path / "none.ulg"), cwd=tmp_path)
    assert line == f"error: no such log file: {tmp_path / 'none.ulg'}"

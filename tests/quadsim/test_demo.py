"""The demo command: plans, flies at three fidelities, prints a table, writes a PNG and a JSON summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.sim


def _run_demo(course: Path, out_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "quadsim.demo", "--waypoints", str(course), "--out-dir", str(out_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_demo_cli_writes_plot_and_summary(tmp_path: Path) -> None:
    course = tmp_path / "short.csv"
    course.write_text("x,y,z,yaw\n0,0,1,0\n2,1,1.5,0.3\n4,0,2,0\n5,2,1.2,0.5\n")
    result = _run_demo(course, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    for fidelity in ("analytic", "mujoco", "rotorpy"):
        assert fidelity in result.stdout
    png = tmp_path / "out" / "demo.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    runs = summary["runs"]
    assert [r["time_margin"] for r in runs] == [1.0, 1.35]
    for run in runs:
        assert set(run["fidelities"]) == {"analytic", "mujoco", "rotorpy"}
        # Every run is planned to pass the analytic check: the baseline lands on its boundary.
        assert run["fidelities"]["analytic"]["feasible"] is True
    assert runs[1]["total_time_s"] == pytest.approx(1.35 * runs[0]["total_time_s"], rel=1e-9)
    # The slower trajectory flies at least as accurately in MuJoCo.
    mujoco = [r["fidelities"]["mujoco"]["max_position_error_m"] for r in runs]
    assert mujoco[1] <= mujoco[0] + 1e-3


def test_demo_reports_a_bad_waypoint_file_with_its_line(tmp_path: Path) -> None:
    course = tmp_path / "bad.csv"
    course.write_text("x,y,z\n0,0,1\n1,oops,1\n")
    result = _run_demo(course, tmp_path / "out")
    assert result.returncode == 2
    assert f"{course}:3: column 'y' is 'oops', not a number" in result.stderr
    assert not (tmp_path / "out").exists()

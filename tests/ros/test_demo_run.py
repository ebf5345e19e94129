"""`mfrl-demo` end to end (what `make demo` runs): the table, demo.png, summary.json and the bag."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mfrl_graph.demo import main
from mfrl_graph.flight_record import read_flight
from quadsim.courses import course_path


@pytest.mark.ros
@pytest.mark.sim
@pytest.mark.slow
def test_the_demo_flies_replans_and_writes_its_report(
    ros_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    course = tmp_path / "my_course.csv"  # a waypoint file of the user's (here: the built-in course's)
    shutil.copy(course_path(), course)
    out = tmp_path / "demo"
    code = main(
        ["--out-dir", str(out), "--course", str(course), "--replan-count", "1", "--real-time-factor", "1",
         "--timeout-s", "120"]
    )  # fmt: skip
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0, printed + captured.err[-3000:]
    assert "goal reached" in printed
    assert "True" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["success"] is True
    assert summary["in_flight_replans"] == 1
    assert summary["plans"] == summary["course_plans"] + 1  # the course, then one replan in the air
    assert summary["course_plans"] in (1, 2)  # sent again if a late controller refused it as stale
    assert summary["max_tracking_error_m"] < 0.1
    assert 0.0 < summary["replan_latency_ms"]["p50"] <= summary["replan_latency_ms"]["p99"]
    assert summary["replan_latency_ms"]["count"] == 1  # the in-flight replan; the course is timed apart
    assert summary["course_latency_ms"] > 0.0
    # The flight against the course's analytic (rotor-limit) boundary: slower, as any flight that stops at the
    # goal and keeps a margin is, but within reason; and the vehicle keeps moving through the in-air replan.
    assert 1.0 < summary["flight_time_vs_analytic_boundary"] < 5.0
    assert summary["flight_time_vs_analytic_boundary"] == pytest.approx(
        summary["flight_time_s"] / summary["analytic_boundary_s"]
    )
    assert summary["min_speed_after_replans_m_s"] is not None
    assert summary["min_speed_after_replans_m_s"] >= 0.0
    png = (out / "demo.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 20_000  # four panels of plots, not an empty figure
    record = read_flight(out / "bag")
    assert len(record.plans) == summary["plans"]
    assert len(record.odom_t) > 100

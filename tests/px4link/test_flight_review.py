"""Flight review of ULogs with a known planned/flown pair, written by px4sim's ULog writer in PX4's NED."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from px4link.cli import main
from px4link.flight_review import FlightReviewError, load_flight, review_flight
from px4sim.ulog_writer import PX4_TOPICS, UlogWriter

T0_US = 5_000_000  # the log starts 5 s after boot, as PX4's logger does after its own start-up
RADIUS_M, ALTITUDE_M, OMEGA_RAD_S = 2.0, 1.5, 2.0 * math.pi / 10.0
OFFSET_EAST_M = 0.1  # the flown path runs this far east of the plan throughout offboard
BUMP_UP_M, BUMP_FROM_S, BUMP_TO_S = 0.3, 6.0, 7.0  # and this much higher in [6, 7) s
OFFBOARD_FROM_S, OFFBOARD_TO_S = 2.0, 12.0


def _planned_enu(t: float) -> tuple[np.ndarray, np.ndarray]:
    """The plan in ENU (a circle), position and velocity, at `t` seconds since the log started."""
    a = OMEGA_RAD_S * (t - OFFBOARD_FROM_S)
    position = np.array([RADIUS_M * math.cos(a), RADIUS_M * math.sin(a), ALTITUDE_M])
    velocity = RADIUS_M * OMEGA_RAD_S * np.array([-math.sin(a), math.cos(a), 0.0])
    return position, velocity


def _to_ned(v: np.ndarray) -> list[float]:
    """ENU -> NED written out by hand (north = y, east = x, down = -z), independent of quadsim.frames."""
    return [float(v[1]), float(v[0]), float(-v[2])]


def _flown_enu(t: float) -> tuple[np.ndarray, np.ndarray]:
    if t < OFFBOARD_FROM_S:
        return _planned_enu(OFFBOARD_FROM_S)[0] * [1, 1, t / OFFBOARD_FROM_S], np.zeros(3)
    if t > OFFBOARD_TO_S:
        return _planned_enu(OFFBOARD_TO_S)[0] + np.array([OFFSET_EAST_M, 0.0, 0.0]), np.zeros(3)
    position, velocity = _planned_enu(t)
    position = position + np.array([OFFSET_EAST_M, 0.0, BUMP_UP_M if BUMP_FROM_S <= t < BUMP_TO_S else 0.0])
    return position, velocity


def _write_log(
    path: Path,
    planned_topic: str | None = "trajectory_setpoint",
    with_status: bool = True,
    nan_setpoints_every: int = 0,
) -> Path:
    """A 14 s flight: armed at 1 s, offboard 2-12 s tracking a circle, land, disarmed at 13 s."""
    with UlogWriter(path, T0_US, info={"sys_name": "px4sim"}) as writer:
        writer.add_topic("vehicle_local_position", PX4_TOPICS["vehicle_local_position"])
        if planned_topic:
            writer.add_topic(planned_topic, PX4_TOPICS[planned_topic])
        if with_status:
            writer.add_topic("vehicle_status", PX4_TOPICS["vehicle_status"])
        writer.add_topic("battery_status", PX4_TOPICS["battery_status"])
        status = [(0.0, 1, 2), (1.0, 2, 2), (OFFBOARD_FROM_S, 2, 14), (OFFBOARD_TO_S, 2, 18), (13.0, 1, 18)]
        for k in range(0, 1401):  # 100 Hz local position, 50 Hz setpoints, 2 Hz status and battery
            t = k / 100.0
            stamp = T0_US + round(t * 1e6)
            position, velocity = _flown_enu(t)
            px, py, pz = _to_ned(position)
            vx, vy, vz = _to_ned(velocity)
            writer.write(
                "vehicle_local_position", {"timestamp": stamp, "x": px, "y": py, "z": pz, "vx": vx, "vy": vy, "vz": vz}
            )
            if planned_topic and k % 2 == 0 and OFFBOARD_FROM_S <= t <= OFFBOARD_TO_S:
                p, v = (_to_ned(x) for x in _planned_enu(t))
                if nan_setpoints_every and (k // 2) % nan_setpoints_every == 0:
                    p = [math.nan] * 3  # a velocity-only setpoint: PX4 marks the unused position NaN
                if planned_topic == "trajectory_setpoint":
                    writer.write(planned_topic, {"timestamp": stamp, "position": p, "velocity": v})
                else:
                    writer.write(planned_topic, {"timestamp": stamp, "x": p[0], "y": p[1], "z": p[2]})
            if k % 50 == 0:
                writer.write("battery_status", {"timestamp": stamp, "voltage_v": 16.0 - t * 0.01, "remaining": 0.9})
                if with_status:
                    arming, nav = next((a, n) for ts, a, n in reversed(status) if t >= ts)
                    writer.write("vehicle_status", {"timestamp": stamp, "arming_state": arming, "nav_state": nav})
    return path


def _expected_errors() -> tuple[float, float]:
    """Max and RMS tracking error over the offboard flown samples, from the construction of the log."""
    times = np.arange(0, 1401) / 100.0
    tracked = times[(times >= OFFBOARD_FROM_S) & (times <= OFFBOARD_TO_S)]
    bumped = (tracked >= BUMP_FROM_S) & (tracked < BUMP_TO_S)
    errors = np.where(bumped, math.hypot(OFFSET_EAST_M, BUMP_UP_M), OFFSET_EAST_M)
    return float(errors.max()), float(np.sqrt(np.mean(errors**2)))


def test_review_measures_the_known_tracking_error_speed_and_flight_time(tmp_path: Path) -> None:
    log_path = _write_log(tmp_path / "circle.ulg")
    summary, png, json_path = review_flight(log_path, tmp_path / "review")

    expected_max, expected_rms = _expected_errors()
    assert summary.planned_topic == "trajectory_setpoint"
    assert summary.tracking_error_max_m == pytest.approx(expected_max, abs=2e-3)
    assert summary.tracking_error_rms_m == pytest.approx(expected_rms, abs=2e-3)
    assert summary.max_speed_m_s == pytest.approx(RADIUS_M * OMEGA_RAD_S, rel=1e-4)
    assert summary.flight_time_s == pytest.approx(13.0 - 1.0 + 0.0, abs=1e-6), "armed from 1 s to 13 s"
    assert summary.tracked_time_s == pytest.approx(OFFBOARD_TO_S - OFFBOARD_FROM_S, abs=0.02)
    assert summary.log_duration_s == pytest.approx(14.0)
    modes = [(c["time_s"], c["armed"], c["mode"]) for c in summary.status_changes]
    assert modes == [
        (0.0, False, "POSCTL"),
        (1.0, True, "POSCTL"),
        (2.0, True, "OFFBOARD"),
        (12.0, True, "AUTO.LAND"),
        (13.0, False, "AUTO.LAND"),
    ]

    on_disk = json.loads(json_path.read_text())
    assert on_disk["tracking_error_max_m"] == pytest.approx(expected_max, abs=2e-3)
    assert on_disk["flight_time_s"] == pytest.approx(12.0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000, "the figure should hold four panels of data"


def test_positions_come_out_in_enu(tmp_path: Path) -> None:
    """The plan starts 2 m east at 1.5 m up; PX4 logged it as 2 m east, 1.5 m down (NED)."""
    track = load_flight(_write_log(tmp_path / "frames.ulg"))
    np.testing.assert_allclose(track.planned_positions_m[0], [RADIUS_M, 0.0, ALTITUDE_M], atol=1e-6)
    quarter = np.argmin(np.abs(track.planned_times_s - (OFFBOARD_FROM_S + 2.5)))  # a quarter turn: north
    np.testing.assert_allclose(track.planned_positions_m[quarter], [0.0, RADIUS_M, ALTITUDE_M], atol=1e-5)
    np.testing.assert_allclose(
        track.flown_velocities_m_s[quarter * 2 + 200], [-RADIUS_M * OMEGA_RAD_S, 0, 0], atol=1e-5
    )


def test_the_plan_falls_back_to_the_local_position_setpoint(tmp_path: Path) -> None:
    log_path = _write_log(tmp_path / "lps.ulg", planned_topic="vehicle_local_position_setpoint")
    summary, _, _ = review_flight(log_path, tmp_path / "review")
    assert summary.planned_topic == "vehicle_local_position_setpoint"
    assert summary.tracking_error_max_m == pytest.approx(_expected_errors()[0], abs=2e-3)


def test_setpoints_without_a_position_are_skipped(tmp_path: Path) -> None:
    log_path = _write_log(tmp_path / "nan.ulg", nan_setpoints_every=5)
    summary, _, _ = review_flight(log_path, tmp_path / "review")
    assert math.isfinite(summary.tracking_error_rms_m)
    assert summary.tracking_error_max_m == pytest.approx(_expected_errors()[0], abs=2e-3)


def test_without_vehicle_status_the_flight_time_is_the_flown_span(tmp_path: Path) -> None:
    summary, _, _ = review_flight(_write_log(tmp_path / "nostatus.ulg", with_status=False), tmp_path / "review")
    assert summary.status_changes == []
    assert summary.flight_time_s == pytest.approx(14.0)


def test_a_log_without_a_plan_is_refused_naming_the_topics_it_has(tmp_path: Path) -> None:
    log_path = _write_log(tmp_path / "noplan.ulg", planned_topic=None)
    with pytest.raises(FlightReviewError, match="trajectory_setpoint") as info:
        load_flight(log_path)
    assert "battery_status" in str(info.value)
    assert "vehicle_local_position" in str(info.value)
    with pytest.raises(SystemExit) as exited:  # a user's error: one line, exit status 2
        main(["review", str(log_path), "--out-dir", str(tmp_path / "review")])
    assert exited.value.code == 2
    assert not (tmp_path / "review").exists()


def test_px4link_review_runs_as_a_command(tmp_path: Path) -> None:
    log_path = _write_log(tmp_path / "cli.ulg")
    out_dir = tmp_path / "review"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-m", "px4link.cli", "review", str(log_path), "--out-dir", str(out_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "tracking error max" in result.stdout
    assert "OFFBOARD" in result.stdout
    assert json.loads((out_dir / "cli.json").read_text())["planned_topic"] == "trajectory_setpoint"
    assert (out_dir / "cli.png").is_file()

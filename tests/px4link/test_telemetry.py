"""Telemetry parsers against known values: PX4's NED/FRD messages as the project's ENU/FLU records.

Each expected value is worked out by hand from the frame definitions (NED x north, y east, z down; FRD
x forward, y right, z down; ENU x east, y north, z up; FLU x forward, y left, z up), not by running the
conversion the other way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymavlink.dialects.v20 import common as mavlink2

from px4link import px4_modes
from px4link.telemetry import (
    parse_attitude,
    parse_battery_status,
    parse_local_position,
    parse_odometry,
    parse_status,
)

C45 = math.cos(math.pi / 4)


def _yaw_enu(q_wxyz: tuple[float, float, float, float]) -> float:
    w, x, y, z = q_wxyz
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def test_a_vehicle_nose_north_level_has_enu_yaw_90_degrees_and_frd_rates_become_flu() -> None:
    msg = mavlink2.MAVLink_attitude_quaternion_message(
        time_boot_ms=1500, q1=1.0, q2=0.0, q3=0.0, q4=0.0, rollspeed=0.1, pitchspeed=0.2, yawspeed=0.3,
        repr_offset_q=[0.0, 0.0, 0.0, 0.0],
    )  # fmt: skip
    attitude = parse_attitude(msg)
    assert attitude.time_boot_s == pytest.approx(1.5)
    assert np.allclose(np.abs(attitude.q_wxyz), [C45, 0.0, 0.0, C45])  # a +90 deg turn about up
    assert _yaw_enu(attitude.q_wxyz) == pytest.approx(math.pi / 2)
    # roll right (FRD +x) is roll about forward (FLU +x); pitch up (FRD +y) is FLU -y; yaw right is FLU -z
    assert attitude.body_rates_flu_rad_s == pytest.approx((0.1, -0.2, -0.3))


def test_body_frame_odometry_velocity_is_rotated_into_the_world() -> None:
    # PX4 heading 90 deg in NED (nose east), flying forward at 2 m/s and climbing at 0.5 m/s (FRD z up is -0.5)
    q_ned_east = [C45, 0.0, 0.0, C45]
    msg = mavlink2.MAVLink_odometry_message(
        time_usec=2_000_000, frame_id=mavlink2.MAV_FRAME_LOCAL_NED, child_frame_id=mavlink2.MAV_FRAME_BODY_FRD,
        x=1.0, y=2.0, z=-3.0, q=q_ned_east, vx=2.0, vy=0.0, vz=-0.5, rollspeed=0.0, pitchspeed=0.0,
        yawspeed=0.0, pose_covariance=[float("nan")] * 21, velocity_covariance=[float("nan")] * 21,
        reset_counter=0, estimator_type=0, quality=100,
    )  # fmt: skip
    odom = parse_odometry(msg)
    assert odom.position_enu_m == pytest.approx((2.0, 1.0, 3.0))  # north 1, east 2, 3 m up
    assert _yaw_enu(odom.q_wxyz) == pytest.approx(0.0, abs=1e-12)  # nose east is ENU yaw 0
    assert odom.velocity_enu_m_s == pytest.approx((2.0, 0.0, 0.5))
    world = mavlink2.MAVLink_odometry_message(
        time_usec=0, frame_id=mavlink2.MAV_FRAME_LOCAL_NED, child_frame_id=mavlink2.MAV_FRAME_LOCAL_NED,
        x=0.0, y=0.0, z=0.0, q=q_ned_east, vx=1.0, vy=-1.0, vz=0.2, rollspeed=0.0, pitchspeed=0.0, yawspeed=0.0,
        pose_covariance=[float("nan")] * 21, velocity_covariance=[float("nan")] * 21, reset_counter=0,
        estimator_type=0, quality=100,
    )  # fmt: skip
    assert parse_odometry(world).velocity_enu_m_s == pytest.approx((-1.0, 1.0, -0.2))


def test_local_position_ned_is_enu() -> None:
    msg = mavlink2.MAVLink_local_position_ned_message(time_boot_ms=10, x=4.0, y=-1.0, z=-2.5, vx=0.5, vy=1.5, vz=0.3)
    local = parse_local_position(msg)
    assert local.position_enu_m == pytest.approx((-1.0, 4.0, 2.5))
    assert local.velocity_enu_m_s == pytest.approx((1.5, 0.5, -0.3))


def _battery(voltages: list[int], current_cA: int, remaining: int) -> mavlink2.MAVLink_battery_status_message:
    return mavlink2.MAVLink_battery_status_message(
        id=0, battery_function=0, type=0, temperature=32767, voltages=voltages + [65535] * (10 - len(voltages)),
        current_battery=current_cA, current_consumed=-1, energy_consumed=-1, battery_remaining=remaining,
        time_remaining=0, charge_state=0, voltages_ext=[0, 0, 0, 0], mode=0, fault_bitmask=0,
    )  # fmt: skip


def test_battery_status_sums_the_cells_and_reads_unknowns_as_none() -> None:
    known = parse_battery_status(_battery([4000, 4100, 3900], 1234, 55))
    assert known.voltage_v == pytest.approx(12.0)
    assert known.current_a == pytest.approx(12.34)
    assert known.remaining_fraction == pytest.approx(0.55)
    unknown = parse_battery_status(_battery([16800], -1, -1))
    assert unknown.voltage_v == pytest.approx(16.8)
    assert unknown.current_a is None
    assert unknown.remaining_fraction is None


def test_heartbeat_gives_armed_and_px4s_mode() -> None:
    base = px4_modes.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | px4_modes.MAV_MODE_FLAG_SAFETY_ARMED
    offboard = mavlink2.MAVLink_heartbeat_message(
        type=2, autopilot=12, base_mode=base, custom_mode=6 << 16, system_status=4, mavlink_version=3
    )
    status = parse_status(offboard)
    assert status.armed
    assert status.mode_name == "OFFBOARD"  # PX4 main mode 6 in the custom mode's third byte
    land = mavlink2.MAVLink_heartbeat_message(
        type=2, autopilot=12, base_mode=px4_modes.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
        custom_mode=(4 << 16) | (6 << 24), system_status=4, mavlink_version=3,
    )  # fmt: skip
    status = parse_status(land)
    assert not status.armed
    assert status.mode_name == "AUTO.LAND"  # main mode 4 AUTO, sub mode 6 LAND

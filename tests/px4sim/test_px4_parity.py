"""Where px4sim once differed from PX4, seen over MAVLink by a raw pymavlink ground station.

Each test names the PX4 source file that holds the rule it checks.
"""

from __future__ import annotations

import time

import pytest
from conftest import VehicleFactory
from ground import Ground, SetpointStream
from pymavlink.dialects.v20 import common as mavlink

from px4sim import px4_custom_mode as px4_modes
from px4sim.params import ParamStore, float_bits_of_int, int_of_float_bits

pytestmark = [pytest.mark.mavlink, pytest.mark.sim]

ACCEPTED = 0
ARM = mavlink.MAV_CMD_COMPONENT_ARM_DISARM


def _until(check: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def _beat(ground: Ground, mav_type: int) -> None:
    ground.send(ground.mav.heartbeat_encode(mav_type, mavlink.MAV_AUTOPILOT_INVALID, 0, 0, 0))


def test_rearm_after_offboard_loss_landing_and_disarm(make_vehicle: VehicleFactory) -> None:
    """PX4: src/modules/commander/failsafe/framework.cpp: failsafe actions are removed on disarm."""
    vehicle, ground = make_vehicle(params={"COM_OF_LOSS_T": 0.5, "COM_OBL_RC_ACT": 4, "COM_DISARM_LAND": 0.3})
    stream = SetpointStream(ground, rate_hz=50.0)
    stream.position_ned = (0.0, 0.0, -0.8)
    stream.start()
    time.sleep(0.3)
    assert ground.set_mode(px4_modes.OFFBOARD) == ACCEPTED
    assert ground.command(ARM, 1.0) == ACCEPTED
    assert _until(lambda: vehicle.snapshot().position_enu[2] > 0.6, 5.0), "did not climb"
    stream.stop()
    assert _until(lambda: vehicle.snapshot().mode == px4_modes.LAND, 2.0), "offboard loss did not land"
    assert _until(lambda: not vehicle.snapshot().armed, 8.0), "did not land and disarm"
    assert not vehicle.snapshot().failsafes, "the failsafe outlived the disarm"
    assert ground.set_mode(px4_modes.HOLD) == ACCEPTED
    assert ground.command(ARM, 1.0) == ACCEPTED, vehicle.snapshot().statustexts[-3:]


def test_datalink_loss_counts_only_gcs_heartbeats(make_vehicle: VehicleFactory) -> None:
    """PX4: src/modules/commander/Commander.cpp (dataLinkCheck): only heartbeat_type_gcs resets the timer."""
    vehicle, ground = make_vehicle(params={"NAV_DLL_ACT": 1, "COM_DL_LOSS_T": 5, "COM_DISARM_PRFLT": -1.0})
    _beat(ground, mavlink.MAV_TYPE_GCS)  # the link exists from the first GCS heartbeat on
    assert ground.command(ARM, 1.0) == ACCEPTED
    since = time.monotonic()
    deadline = since + 7.0
    lost = None
    while time.monotonic() < deadline and lost is None:  # a companion computer keeps beating, the GCS is gone
        _beat(ground, mavlink.MAV_TYPE_ONBOARD_CONTROLLER)
        lost = next((m for t, m in ground.messages("STATUSTEXT") if t >= since and "Failsafe" in m.text), None)
        time.sleep(0.2)
    assert lost is not None, "companion heartbeats kept the GCS data link alive"
    assert "ground control station" in vehicle.snapshot().statustexts[-1]
    assert "datalink_loss" in vehicle.snapshot().failsafes
    _beat(ground, mavlink.MAV_TYPE_GCS)
    assert _until(lambda: "datalink_loss" not in vehicle.snapshot().failsafes, 2.0)


def test_param_set_type_mismatch_writes_nothing_out_of_range_applies(make_vehicle: VehicleFactory) -> None:
    """PX4: src/modules/mavlink/mavlink_parameters.cpp: types must match; min/max are not enforced."""
    vehicle, ground = make_vehicle()
    since = time.monotonic()
    # A float value declared INT32 for a FLOAT parameter (it became 4.2e-45 before).
    ground.send(ground.mav.param_set_encode(1, 1, b"MIS_TAKEOFF_ALT", 3.0, mavlink.MAV_PARAM_TYPE_INT32))
    text = ground.wait("STATUSTEXT", lambda m: "mismatch" in m.text, since=since)
    assert "MIS_TAKEOFF_ALT" in text.text
    time.sleep(0.2)
    assert vehicle.params.get("MIS_TAKEOFF_ALT") == 2.5
    assert not [m for t, m in ground.messages("PARAM_VALUE") if t >= since], "PX4 answers a mismatch by text only"
    # An INT32 parameter sent as a plain REAL32 float: refused the same way.
    ground.send(ground.mav.param_set_encode(1, 1, b"COM_OBL_RC_ACT", 4.0, mavlink.MAV_PARAM_TYPE_REAL32))
    ground.wait("STATUSTEXT", lambda m: "mismatch" in m.text and "COM_OBL_RC_ACT" in m.text, since=since)
    assert vehicle.params.get("COM_OBL_RC_ACT") == 0

    since = time.monotonic()
    ground.send(ground.mav.param_set_encode(1, 1, b"COM_OBL_RC_ACT", float_bits_of_int(42), 6))
    echoed = ground.wait("PARAM_VALUE", lambda m: m.param_id == "COM_OBL_RC_ACT", since=since)
    assert int_of_float_bits(echoed.param_value) == 42, "PX4 applies an out-of-range value"
    ground.send(ground.mav.param_set_encode(1, 1, b"MIS_TAKEOFF_ALT", 120.0, mavlink.MAV_PARAM_TYPE_REAL32))
    echoed = ground.wait("PARAM_VALUE", lambda m: m.param_id == "MIS_TAKEOFF_ALT", since=since)
    assert echoed.param_value == pytest.approx(120.0)
    assert vehicle.params.get("MIS_TAKEOFF_ALT") == 120.0
    assert any("outside" in m.text for t, m in ground.messages("STATUSTEXT") if t >= since)


def test_offset_frames_are_refused_as_px4_refuses_them(make_vehicle: VehicleFactory) -> None:
    """PX4: src/modules/mavlink/mavlink_receiver.cpp takes MAV_FRAME_LOCAL_NED and MAV_FRAME_BODY_NED only."""
    vehicle, ground = make_vehicle()
    for frame in (mavlink.MAV_FRAME_LOCAL_OFFSET_NED, mavlink.MAV_FRAME_BODY_OFFSET_NED):
        since = time.monotonic()
        ground.send(
            ground.mav.set_position_target_local_ned_encode(
                0, 1, 1, frame, 0b0000_1101_1111_1000, 1.0, 0.0, -1.0, 0, 0, 0, 0, 0, 0, 0, 0
            )
        )
        text = ground.wait("STATUSTEXT", lambda m: "coordinate frame" in m.text, since=since)
        assert f"coordinate frame {frame}" in text.text
        assert text.severity == mavlink.MAV_SEVERITY_CRITICAL
    assert vehicle.snapshot().counters.setpoints == 0
    assert not vehicle.snapshot().offboard_signal_ok


def test_failsafe_holds_com_fail_act_t_before_its_action(make_vehicle: VehicleFactory) -> None:
    """PX4: src/modules/commander/failsafe/framework.cpp: Hold for COM_FAIL_ACT_T, then the configured action."""
    assert ParamStore().get("COM_FAIL_ACT_T") == 5.0  # PX4's default since v1.14
    vehicle, ground = make_vehicle(
        params={"NAV_DLL_ACT": 3, "COM_DL_LOSS_T": 5, "COM_FAIL_ACT_T": 2.0, "MIS_TAKEOFF_ALT": 1.0}
    )
    ground.start_heartbeats(rate_hz=5.0)
    assert ground.command(ARM, 1.0) == ACCEPTED
    assert ground.command(mavlink.MAV_CMD_NAV_TAKEOFF, *([0.0] * 6), float("nan")) == ACCEPTED
    assert _until(lambda: vehicle.snapshot().mode == px4_modes.HOLD, 8.0), "takeoff did not end in hold"
    ground.stop_heartbeats()  # the GCS goes silent
    since = time.monotonic()
    text = ground.wait("STATUSTEXT", lambda m: "Hold for 2" in m.text, timeout_s=7.0, since=since)
    held_at = next(t for t, m in ground.messages("STATUSTEXT") if m is text)
    assert vehicle.snapshot().mode == px4_modes.HOLD
    assert _until(lambda: vehicle.snapshot().mode == px4_modes.LAND, 3.5), "the land never came"
    delay = time.monotonic() - held_at
    assert 1.7 <= delay <= 2.6, f"landing began {delay:.2f} s after the hold, COM_FAIL_ACT_T 2 s"

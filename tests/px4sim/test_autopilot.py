"""The simulated vehicle over MAVLink, seen by a raw pymavlink ground station: PX4's documented behaviour."""

from __future__ import annotations

import os
import time

import pytest
from conftest import VehicleFactory
from ground import SetpointStream
from pymavlink.dialects.v20 import common as mavlink

from px4sim import px4_custom_mode as px4_modes
from px4sim.params import PX4_PARAMS, float_bits_of_int, int_of_float_bits

pytestmark = pytest.mark.mavlink

ACCEPTED, TEMPORARILY_REJECTED, DENIED, UNSUPPORTED = 0, 1, 2, 3
ARM = mavlink.MAV_CMD_COMPONENT_ARM_DISARM


def test_heartbeat_identifies_px4_quadrotor_and_encodes_mode(make_vehicle: VehicleFactory) -> None:
    _, ground = make_vehicle()
    hb = ground.heartbeat()
    assert hb.type == mavlink.MAV_TYPE_QUADROTOR
    assert hb.autopilot == mavlink.MAV_AUTOPILOT_PX4
    assert hb.base_mode & px4_modes.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
    assert not hb.base_mode & px4_modes.MAV_MODE_FLAG_SAFETY_ARMED
    assert px4_modes.decode_custom_mode(hb.custom_mode) == px4_modes.HOLD
    assert hb.system_status == mavlink.MAV_STATE_STANDBY
    assert ground.latest("HEARTBEAT").get_msgbuf()[0] == 0xFD  # MAVLink 2 frames


def test_param_list_read_set_and_refusal(make_vehicle: VehicleFactory) -> None:
    vehicle, ground = make_vehicle()
    ground.send(ground.mav.param_request_list_encode(1, 1))
    deadline = time.monotonic() + 5.0
    while len({m.param_id for _, m in ground.messages("PARAM_VALUE")}) < len(PX4_PARAMS):
        assert time.monotonic() < deadline, "parameter list incomplete"
        time.sleep(0.02)
    values = {m.param_id: m for _, m in ground.messages("PARAM_VALUE")}
    assert values["COM_OF_LOSS_T"].param_value == pytest.approx(1.0)
    assert values["COM_OBL_RC_ACT"].param_type == mavlink.MAV_PARAM_TYPE_INT32
    assert values["COM_OF_LOSS_T"].param_count == len(PX4_PARAMS)

    def set_param(name: str, wire: float, ptype: int) -> object:
        since = time.monotonic()
        ground.send(ground.mav.param_set_encode(1, 1, name.encode(), wire, ptype))
        return ground.wait("PARAM_VALUE", lambda m: m.param_id == name, since=since)

    echoed = set_param("COM_OBL_RC_ACT", float_bits_of_int(4), mavlink.MAV_PARAM_TYPE_INT32)
    assert int_of_float_bits(echoed.param_value) == 4  # type: ignore[attr-defined]
    wide = set_param("MIS_TAKEOFF_ALT", 500.0, mavlink.MAV_PARAM_TYPE_REAL32)
    assert wide.param_value == pytest.approx(500.0)  # type: ignore[attr-defined]  # PX4 does not enforce max
    assert vehicle.snapshot().counters.param_sets_refused == 0

    since = time.monotonic()
    ground.send(ground.mav.param_request_read_encode(1, 1, b"COM_OBL_RC_ACT", -1))
    read = ground.wait("PARAM_VALUE", lambda m: m.param_id == "COM_OBL_RC_ACT", since=since)
    assert int_of_float_bits(read.param_value) == 4


def test_arming_refused_with_reason_then_accepted(make_vehicle: VehicleFactory) -> None:
    vehicle, ground = make_vehicle()
    vehicle.set_battery_remaining(0.10)
    since = time.monotonic()
    assert ground.command(ARM, 1.0) == TEMPORARILY_REJECTED
    text = ground.wait("STATUSTEXT", lambda m: "Preflight Fail" in m.text, since=since)
    assert "battery" in text.text
    assert text.severity <= mavlink.MAV_SEVERITY_CRITICAL
    assert not vehicle.snapshot().armed

    vehicle.set_estimator_ok(False)
    vehicle.set_battery_remaining(0.9)
    assert ground.command(ARM, 1.0) == TEMPORARILY_REJECTED
    assert "ekf2" in vehicle.snapshot().statustexts[-1]
    assert ground.command(ARM, 1.0, 21196.0) == ACCEPTED  # force overrides the checks
    assert ground.command(ARM, 0.0) == ACCEPTED
    vehicle.set_estimator_ok(True)
    assert ground.command(ARM, 1.0) == ACCEPTED
    ground.wait("HEARTBEAT", lambda m: m.base_mode & px4_modes.MAV_MODE_FLAG_SAFETY_ARMED)


def test_offboard_needs_the_setpoint_stream_first(make_vehicle: VehicleFactory) -> None:
    _, ground = make_vehicle()
    since = time.monotonic()
    assert ground.set_mode(px4_modes.OFFBOARD) == TEMPORARILY_REJECTED
    ground.wait("STATUSTEXT", lambda m: "Offboard" in m.text, since=since)
    stream = SetpointStream(ground, rate_hz=20.0).start()
    try:
        time.sleep(1.0)
        assert ground.set_mode(px4_modes.OFFBOARD) == ACCEPTED
        hb = ground.wait("HEARTBEAT", lambda m: m.custom_mode == px4_modes.encode_custom_mode(px4_modes.OFFBOARD))
        assert px4_modes.decode_custom_mode(hb.custom_mode).name == "OFFBOARD"
    finally:
        stream.stop()
    # Modes that need RC are refused: the vehicle has none.
    assert ground.set_mode(px4_modes.POSCTL) == TEMPORARILY_REJECTED
    assert ground.command(mavlink.MAV_CMD_DO_SET_MODE, 0.0, 6.0, 0.0) == DENIED  # no custom-mode flag


def test_commands_unknown_duplicate_and_message_requests(make_vehicle: VehicleFactory) -> None:
    vehicle, ground = make_vehicle()
    assert ground.command(mavlink.MAV_CMD_DO_SET_SERVO, 1.0, 1500.0) == UNSUPPORTED
    assert ground.command(ARM, 1.0, confirmation=0) == ACCEPTED
    assert ground.command(ARM, 1.0, confirmation=1) == ACCEPTED
    assert vehicle.snapshot().counters.duplicate_commands == 1
    assert ground.command(ARM, 0.0) == ACCEPTED

    since = time.monotonic()
    assert ground.command(mavlink.MAV_CMD_REQUEST_MESSAGE, float(mavlink.MAVLINK_MSG_ID_AUTOPILOT_VERSION)) == ACCEPTED
    version = ground.wait("AUTOPILOT_VERSION", since=since)
    assert version.capabilities & mavlink.MAV_PROTOCOL_CAPABILITY_MAVLINK2

    assert ground.command(mavlink.MAV_CMD_SET_MESSAGE_INTERVAL, float(mavlink.MAVLINK_MSG_ID_ATTITUDE), 1e5) == ACCEPTED
    time.sleep(0.3)
    start = time.monotonic()
    time.sleep(1.0)
    count = len([t for t, _ in ground.messages("ATTITUDE") if start <= t < start + 1.0])
    assert 6 <= count <= 14, f"{count} ATTITUDE in 1 s at a 10 Hz interval"
    assert (
        ground.command(mavlink.MAV_CMD_SET_MESSAGE_INTERVAL, float(mavlink.MAVLINK_MSG_ID_ATTITUDE), -1.0) == ACCEPTED
    )


def test_timesync_is_answered(make_vehicle: VehicleFactory) -> None:
    _, ground = make_vehicle()
    since = time.monotonic()
    ground.send(ground.mav.timesync_encode(0, 123456789))
    reply = ground.wait("TIMESYNC", lambda m: m.ts1 == 123456789, since=since)
    assert reply.tc1 > 0


def test_reboot_goes_silent_and_keeps_params(make_vehicle: VehicleFactory) -> None:
    vehicle, ground = make_vehicle()
    since = time.monotonic()
    ground.send(ground.mav.param_set_encode(1, 1, b"MIS_TAKEOFF_ALT", 4.0, mavlink.MAV_PARAM_TYPE_REAL32))
    ground.wait("PARAM_VALUE", lambda m: m.param_id == "MIS_TAKEOFF_ALT", since=since)
    assert ground.command(ARM, 1.0) == ACCEPTED
    assert ground.command(mavlink.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN, 1.0) == DENIED  # armed
    assert ground.command(ARM, 0.0) == ACCEPTED
    assert ground.command(mavlink.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN, 1.0) == ACCEPTED
    time.sleep(0.4)
    assert vehicle.snapshot().rebooting
    ground.clear()
    time.sleep(0.5)
    assert not ground.messages("HEARTBEAT"), "a rebooting vehicle is silent"
    hb = ground.wait("HEARTBEAT", timeout_s=3.0)
    assert not hb.base_mode & px4_modes.MAV_MODE_FLAG_SAFETY_ARMED
    assert px4_modes.decode_custom_mode(hb.custom_mode) == px4_modes.HOLD
    since = time.monotonic()
    ground.send(ground.mav.param_request_read_encode(1, 1, b"MIS_TAKEOFF_ALT", -1))
    assert ground.wait("PARAM_VALUE", lambda m: m.param_id == "MIS_TAKEOFF_ALT", since=since).param_value == 4.0
    assert vehicle.snapshot().counters.reboots == 1


def test_random_bytes_never_stop_the_vehicle(make_vehicle: VehicleFactory) -> None:
    vehicle, ground = make_vehicle()
    rng = __import__("random").Random(7)
    good = ground.mav.command_long_encode(1, 1, ARM, 0, 1.0, 0, 0, 0, 0, 0, 0).pack(ground.mav)
    for i in range(300):
        if i % 3 == 0:  # corrupted or truncated real frames
            frame = bytearray(good)
            frame[rng.randrange(len(frame))] ^= 0xFF
            ground.send_raw(bytes(frame[: rng.randrange(1, len(frame) + 1)]))
        else:
            ground.send_raw(os.urandom(rng.randrange(1, 300)))
    time.sleep(0.3)
    assert ground.command(ARM, 1.0) == ACCEPTED
    assert vehicle.snapshot().counters.parse_errors > 0

"""MAVLink 2 signing on the vehicle: wrong key and unsigned refused and counted, right key accepted, replays refused."""

from __future__ import annotations

import time

import pytest
from conftest import VehicleFactory
from pymavlink.dialects.v20 import common as mavlink

from px4sim.signing import SignatureVerifier, signing_timestamp_now

pytestmark = pytest.mark.mavlink

KEY = bytes(range(32))
WRONG = bytes(range(1, 33))
ARM = mavlink.MAV_CMD_COMPONENT_ARM_DISARM


def _no_ack(ground: object, command: int) -> bool:
    try:
        ground.command(command, 1.0, timeout_s=0.7)  # type: ignore[attr-defined]
    except TimeoutError:
        return True
    return False


def test_required_signing_refuses_unsigned_and_wrong_key(make_vehicle: VehicleFactory) -> None:
    vehicle, unsigned = make_vehicle(signing_key=KEY, require_signing=True)
    hb = unsigned.heartbeat()
    assert hb.get_msgbuf()[2] & 0x01, "the vehicle signs what it sends"
    assert _no_ack(unsigned, ARM)
    unsigned.mav.signing.secret_key = WRONG
    unsigned.mav.signing.sign_outgoing = True
    unsigned.mav.signing.timestamp = signing_timestamp_now()
    assert _no_ack(unsigned, ARM)
    counters = vehicle.snapshot().counters
    assert counters.rejected_unsigned >= 1
    assert counters.rejected_bad_signature >= 1
    assert not vehicle.snapshot().armed

    unsigned.mav.signing.secret_key = KEY
    assert unsigned.command(ARM, 1.0) == 0
    assert vehicle.snapshot().armed


def test_replayed_frame_is_refused(make_vehicle: VehicleFactory) -> None:
    vehicle, ground = make_vehicle(ground_key=KEY, signing_key=KEY, require_signing=True)
    ground.heartbeat()
    assert ground.command(ARM, 1.0) == 0
    captured = ground.raw_sent[-1]
    assert ground.command(ARM, 0.0) == 0
    acks_before = len(ground.messages("COMMAND_ACK"))
    ground.send_raw(captured)  # an attacker replays the signed "arm"
    time.sleep(0.5)
    assert len(ground.messages("COMMAND_ACK")) == acks_before
    assert not vehicle.snapshot().armed
    assert vehicle.snapshot().counters.rejected_replayed == 1


def test_key_without_requirement_accepts_unsigned_but_not_forged(make_vehicle: VehicleFactory) -> None:
    vehicle, ground = make_vehicle(signing_key=KEY)
    ground.heartbeat()
    assert ground.command(ARM, 1.0) == 0
    ground.mav.signing.secret_key = WRONG
    ground.mav.signing.sign_outgoing = True
    ground.mav.signing.timestamp = signing_timestamp_now()
    assert _no_ack(ground, ARM)
    assert vehicle.snapshot().counters.rejected_bad_signature >= 1


def test_verifier_refuses_old_new_stream() -> None:
    mav = mavlink.MAVLink(None, srcSystem=9, srcComponent=1)
    mav.signing.secret_key = KEY
    mav.signing.sign_outgoing = True
    mav.signing.timestamp = signing_timestamp_now() - 10 * 60 * 100_000  # ten minutes old
    frame = bytes(mav.heartbeat_encode(6, 8, 0, 0, 0).pack(mav))
    verifier = SignatureVerifier(KEY)
    assert not verifier.check(frame)
    assert verifier.counters.replayed == 1

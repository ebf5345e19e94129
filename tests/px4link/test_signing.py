"""MAVLink 2 signing: the right key is accepted, a wrong key, unsigned frames and replayed frames are refused and
counted, and commands signed by the bridge are accepted by a peer that requires signing."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pymavlink.dialects.v20 import common as mavlink2

from px4link.config import LinkConfig
from px4link.connection import MavlinkConnection
from px4link.signing import SigningConfig, SigningConfigError, key_from_passphrase, signing_timestamp_now

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def _bridge_side(key: bytes, require: bool = True) -> MavlinkConnection:
    # The receive path alone (no socket): frames are fed as if they came from the link.
    return MavlinkConnection(
        LinkConfig(url="udpin:127.0.0.1:1", signing=SigningConfig(secret_key_hex=key.hex(), require=require))
    )


def _vehicle_frames(key: bytes | None, count: int = 3, link_id: int = 0, start_ts: int | None = None) -> list[bytes]:
    mav = mavlink2.MAVLink(None, srcSystem=1, srcComponent=1)
    if key is not None:
        mav.signing.secret_key = key
        mav.signing.sign_outgoing = True
        mav.signing.link_id = link_id
        mav.signing.timestamp = signing_timestamp_now() if start_ts is None else start_ts
    out = []
    for _ in range(count):
        msg = mav.heartbeat_encode(2, 12, 129, 6 << 16, 4)
        out.append(bytes(msg.pack(mav)))
        mav.seq = (mav.seq + 1) % 256
    return out


def _heartbeats(conn: MavlinkConnection) -> list[Any]:
    seen: list[Any] = []
    conn.subscribe(seen.append, "HEARTBEAT")
    return seen


def test_right_key_is_accepted() -> None:
    conn = _bridge_side(KEY)
    seen = _heartbeats(conn)
    for frame in _vehicle_frames(KEY):
        conn.feed(frame)
    assert len(seen) == 3
    counters = conn.counters().signing
    assert counters.good_signatures == 3
    assert counters.refused == 0


def test_wrong_key_is_refused_and_counted() -> None:
    conn = _bridge_side(KEY)
    seen = _heartbeats(conn)
    for frame in _vehicle_frames(OTHER_KEY):
        conn.feed(frame)
    assert seen == []
    counters = conn.counters().signing
    assert counters.bad_signatures == 3
    assert counters.refused == 3
    assert conn.counters().bad_frames == 3


def test_unsigned_is_refused_when_signing_is_required() -> None:
    conn = _bridge_side(KEY)
    seen = _heartbeats(conn)
    for frame in _vehicle_frames(None):
        conn.feed(frame)
    assert seen == []
    assert conn.counters().signing.refused == 3


def test_unsigned_is_accepted_when_signing_is_optional() -> None:
    conn = _bridge_side(KEY, require=False)
    seen = _heartbeats(conn)
    for frame in _vehicle_frames(None):
        conn.feed(frame)
    assert len(seen) == 3
    assert conn.counters().signing.unsigned_accepted == 3


def test_replayed_frame_is_refused() -> None:
    conn = _bridge_side(KEY)
    seen = _heartbeats(conn)
    frames = _vehicle_frames(KEY, count=2)
    conn.feed(frames[0])
    conn.feed(frames[1])
    conn.feed(frames[0])  # an attacker replays a captured frame: its timestamp is old for this stream
    conn.feed(frames[1])
    assert len(seen) == 2
    assert conn.counters().signing.refused == 2


def test_stale_new_stream_is_refused() -> None:
    # A stream first heard with a timestamp over a minute older than ours is a recording, not a live peer.
    conn = _bridge_side(KEY)
    seen = _heartbeats(conn)
    conn.feed(_vehicle_frames(KEY, count=1)[0])
    old = signing_timestamp_now() - 120 * 100_000
    conn.feed(_vehicle_frames(KEY, count=1, link_id=7, start_ts=old)[0])
    assert len(seen) == 1


def test_key_from_passphrase_is_sha256_and_config_validates() -> None:
    import hashlib

    assert key_from_passphrase("correct horse") == hashlib.sha256(b"correct horse").digest()
    assert SigningConfig(passphrase="correct horse").key() == key_from_passphrase("correct horse")
    with pytest.raises(SigningConfigError, match="32 bytes"):
        SigningConfig(secret_key_hex="abcd")
    with pytest.raises(SigningConfigError, match="needs a key"):
        SigningConfig()
    with pytest.raises(SigningConfigError, match="link_id"):
        SigningConfig(passphrase="x", link_id=300)


@pytest.mark.mavlink
def test_signed_commands_reach_a_peer_that_requires_signing(connection_to: Any) -> None:
    import socket

    # A peer that requires signing: its parser holds the key and refuses anything else.
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    vehicle = mavlink2.MAVLink(None, srcSystem=1, srcComponent=1)
    vehicle.robust_parsing = True
    vehicle.signing.secret_key = KEY
    vehicle.signing.allow_unsigned_callback = lambda _m, _i: False
    good = connection_to(sock.getsockname()[1], signing=SigningConfig(secret_key_hex=KEY.hex()))
    bad = connection_to(sock.getsockname()[1], signing=SigningConfig(secret_key_hex=OTHER_KEY.hex()), component_id=192)
    unsigned = connection_to(sock.getsockname()[1], component_id=193)
    for conn in (good, bad, unsigned):
        conn.send(conn.mav.command_long_encode(1, 1, mavlink2.MAV_CMD_COMPONENT_ARM_DISARM, 0, 1, 0, 0, 0, 0, 0, 0))
    accepted: set[int] = set()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and 191 not in accepted:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            continue
        for msg in vehicle.parse_buffer(data) or []:
            if msg.get_type() == "COMMAND_LONG":
                accepted.add(msg.get_srcComponent())
    time.sleep(0.3)
    sock.setblocking(False)
    try:
        while True:
            for msg in vehicle.parse_buffer(sock.recv(65535)) or []:
                if msg.get_type() == "COMMAND_LONG":
                    accepted.add(msg.get_srcComponent())
    except BlockingIOError:
        pass
    sock.close()
    assert accepted == {191}, "only the command signed with the right key may be accepted"
    assert vehicle.signing.reject_count >= 2


def test_optional_signing_accepts_unsigned_frames_but_never_a_failed_signature() -> None:
    conn = _bridge_side(KEY, require=False)
    seen = _heartbeats(conn)
    for frame in _vehicle_frames(None, count=2) + _vehicle_frames(OTHER_KEY, count=2):
        conn.feed(frame)
    good = _vehicle_frames(KEY, count=1)[0]
    conn.feed(good)
    conn.feed(good)  # replayed
    assert len(seen) == 3  # two unsigned, one good
    counters = conn.counters().signing
    assert (counters.unsigned_accepted, counters.bad_signatures, counters.replayed, counters.refused) == (2, 3, 1, 3)


def test_a_wrong_key_with_a_future_timestamp_does_not_poison_the_stream() -> None:
    conn = _bridge_side(KEY)
    seen = _heartbeats(conn)
    future = signing_timestamp_now() + 3600 * 100_000
    for frame in _vehicle_frames(OTHER_KEY, count=256, start_ts=future):
        conn.feed(frame)
    for frame in _vehicle_frames(KEY, count=3):
        conn.feed(frame)
    assert len(seen) == 3
    assert conn.counters().signing.bad_signatures == 256


def test_the_outgoing_timestamp_is_kept_across_a_restart(tmp_path: Any) -> None:
    stamp_file = tmp_path / "signing_timestamp"
    later = signing_timestamp_now() + 600 * 100_000  # a run whose clock was ten minutes ahead of today's
    stamp_file.write_text(f"{later}\n")
    signing = SigningConfig(secret_key_hex=KEY.hex(), timestamp_file=str(stamp_file))
    conn = MavlinkConnection(LinkConfig(url="udpin:127.0.0.1:1", signing=signing))
    sent = bytes(conn.mav.heartbeat_encode(6, 8, 0, 0, 4).pack(conn.mav))
    assert int.from_bytes(sent[-12:-6], "little") > later, "a restart must never stamp below what was sent before"
    conn.close()
    assert int(stamp_file.read_text()) > later
    fresh = tmp_path / "none_yet"
    signing = SigningConfig(secret_key_hex=KEY.hex(), timestamp_file=str(fresh))
    conn = MavlinkConnection(LinkConfig(url="udpin:127.0.0.1:1", signing=signing))
    conn.close()
    assert abs(int(fresh.read_text()) - signing_timestamp_now()) < 100_000  # the clock, within a second

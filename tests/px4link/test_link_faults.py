"""Faults on the link: random bytes never crash the receive path; corrupted and truncated frames are counted and
survived; with 10 % packet loss both ways commands and parameters still complete (retries); missing ACKs time out."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymavlink.dialects.v20 import common as mavlink2

from px4link.commands import CommandSender, CommandTimeout
from px4link.config import CommandConfig, LinkConfig
from px4link.connection import MavlinkConnection
from px4link.params import ParamClient
from px4sim.link_faults import LinkFaultRelay, LinkFaults, frame_msg_id, split_frames

_FUZZ_CONN = MavlinkConnection(LinkConfig(url="udpin:127.0.0.1:1"))


def _heartbeat_frame(seq: int = 0) -> bytes:
    mav = mavlink2.MAVLink(None, srcSystem=1, srcComponent=1)
    mav.seq = seq
    return bytes(mav.heartbeat_encode(2, 12, 129, 6 << 16, 4).pack(mav))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_never_raise(data: bytes, datagram: bool) -> None:
    _FUZZ_CONN.feed(data, datagram=datagram)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(min_value=0, max_value=20), st.binary(max_size=40))
def test_a_good_frame_after_garbage_in_its_own_datagram_is_still_parsed(prefix: bytes, cut: int, suffix: bytes) -> None:
    conn = MavlinkConnection(LinkConfig(url="udpin:127.0.0.1:1"))
    seen: list[Any] = []
    conn.subscribe(seen.append, "HEARTBEAT")
    frame = _heartbeat_frame()
    conn.feed(prefix + frame[:cut] + suffix, datagram=True)  # garbage and a truncated frame
    conn.feed(frame, datagram=True)
    assert len(seen) >= 1, "a datagram boundary must resynchronise the parser"


def test_mutated_frames_are_counted_not_raised() -> None:
    conn = MavlinkConnection(LinkConfig(url="udpin:127.0.0.1:1"))
    frame = bytearray(_heartbeat_frame())
    frame[12] ^= 0xFF  # payload byte: CRC mismatch
    conn.feed(bytes(frame))
    conn.feed(_heartbeat_frame()[:-3])  # truncated
    counters = conn.counters()
    assert counters.frames_received == 0
    assert counters.bad_frames >= 1
    assert counters.parse_errors == 0


def test_a_raising_subscriber_does_not_stop_dispatch() -> None:
    conn = MavlinkConnection(LinkConfig(url="udpin:127.0.0.1:1"))
    seen: list[Any] = []

    def broken(_msg: Any) -> None:
        raise RuntimeError("boom")

    conn.subscribe(broken, "HEARTBEAT")
    conn.subscribe(seen.append, "HEARTBEAT")
    conn.feed(_heartbeat_frame())
    assert len(seen) == 1
    assert conn.counters().callback_errors == 1


def test_relay_splits_frames_and_reads_ids() -> None:
    a, b = _heartbeat_frame(1), _heartbeat_frame(2)
    assert split_frames(a + b) == [a, b]
    assert frame_msg_id(a) == 0


@pytest.fixture
def relayed(peer: Any, connection_to: Any) -> Any:
    """Bridge <-> relay <-> peer; yields (relay, connection, peer)."""
    relay = LinkFaultRelay(LinkFaults(seed=3)).start()
    peer.remote = ("127.0.0.1", relay.port_b)
    peer.fixed_remote = True
    conn = connection_to(relay.port_a)
    assert conn.wait_vehicle(3.0)
    yield relay, conn, peer
    relay.stop()


@pytest.mark.mavlink
def test_ten_percent_loss_both_ways_still_completes_commands_and_params(relayed: Any) -> None:
    relay, conn, peer = relayed
    relay.update_faults(loss_probability=0.10)
    config = CommandConfig(ack_timeout_s=0.15, retries=8)
    sender, params = CommandSender(conn, config), ParamClient(conn, config)
    for _ in range(10):
        sender.arm()
        sender.disarm()
        assert params.read("COM_OBL_RC_ACT").value == 5
    assert sum(relay.counters.lost.values()) > 0, "the relay must actually have lost packets"
    assert not peer.armed


@pytest.mark.mavlink
def test_corrupted_and_truncated_frames_are_counted_and_survived(relayed: Any) -> None:
    relay, conn, _peer = relayed
    relay.update_faults(corrupt_probability=0.2, truncate_probability=0.2)
    time.sleep(1.5)
    # each attempt gets through both ways with probability 0.6 x 0.6: 21 attempts (the most CommandConfig
    # allows) all fail with probability 0.64**21 < 1e-4
    sender = CommandSender(conn, CommandConfig(ack_timeout_s=0.15, retries=20))
    sender.arm()
    counters = conn.counters()
    assert counters.bad_frames > 0
    assert counters.parse_errors == 0
    assert counters.frames_received > 20
    assert sum(relay.counters.corrupted.values()) + sum(relay.counters.truncated.values()) > 0


@pytest.mark.mavlink
def test_dropped_acks_end_in_a_timeout_that_names_the_command(relayed: Any) -> None:
    relay, conn, peer = relayed
    relay.update_faults(drop_msg_ids_b_to_a=frozenset({mavlink2.MAVLINK_MSG_ID_COMMAND_ACK}))
    sender = CommandSender(conn, CommandConfig(ack_timeout_s=0.1, retries=2))
    with pytest.raises(CommandTimeout, match="MAV_CMD_NAV_LAND"):
        sender.land()
    assert len([c for c in peer.commands if c.command == mavlink2.MAV_CMD_NAV_LAND]) == 3
    assert relay.counters.dropped_frames["b_to_a"] >= 3


@pytest.mark.mavlink
def test_delayed_acks_beyond_the_timeout_are_absorbed_by_retries(relayed: Any) -> None:
    relay, conn, peer = relayed
    relay.update_faults(delay_s=0.15)
    sender = CommandSender(conn, CommandConfig(ack_timeout_s=0.2, retries=3))
    result = sender.arm()
    assert result.elapsed_s >= 0.25  # two legs of 0.15 s
    assert peer.armed

"""TIMESYNC: the vehicle-clock offset from a round trip with a known answer, and replies that are not ours ignored."""

from __future__ import annotations

import time

import pytest
from pymavlink.dialects.v20 import common as mavlink2

from px4link.config import LinkConfig
from px4link.connection import MavlinkConnection

VEHICLE_AHEAD_NS = 5_000_000_000  # the vehicle's clock reads 5 s more than ours


def _reply(tc1: int, ts1: int, system: int = 1, component: int = 1) -> bytes:
    mav = mavlink2.MAVLink(None, srcSystem=system, srcComponent=component)
    return bytes(mav.timesync_encode(tc1, ts1).pack(mav))


def _connection() -> MavlinkConnection:
    return MavlinkConnection(LinkConfig(url="udpin:127.0.0.1:1"))  # not started: fed directly


def test_offset_and_round_trip_from_a_reply_with_a_known_vehicle_clock() -> None:
    conn = _connection()
    sent_ns = time.monotonic_ns() - 4_000_000  # our request left 4 ms ago ...
    vehicle_ns = sent_ns + 2_000_000 + VEHICLE_AHEAD_NS  # ... and the vehicle stamped it half way
    conn.feed(_reply(vehicle_ns, sent_ns))
    estimate = conn.timesync
    assert estimate is not None
    assert estimate.round_trip_s == pytest.approx(0.004, abs=0.002)
    # the midpoint assumption: the error is at most half the round trip's asymmetry (here the feed's own delay)
    assert abs(estimate.offset_ns - VEHICLE_AHEAD_NS) < 1_000_000


@pytest.mark.parametrize(
    ("ts1_from_now_ns", "source"),
    [
        (+1_000_000, (1, 1)),  # a "reply" to a request we have not sent yet
        (-2_000_000_000, (1, 1)),  # older than a second: not the round trip of a live request
        (-2_000_000, (2, 1)),  # another vehicle's reply
    ],
)
def test_replies_that_are_not_ours_leave_the_estimate_alone(ts1_from_now_ns: int, source: tuple[int, int]) -> None:
    conn = _connection()
    ts1 = time.monotonic_ns() + ts1_from_now_ns
    conn.feed(_reply(ts1 + VEHICLE_AHEAD_NS, ts1, *source))
    assert conn.timesync is None

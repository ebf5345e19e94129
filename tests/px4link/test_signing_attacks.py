"""Signing under attack, through the real link: the bridge and the simulated PX4 (its own process, requiring
signing) talk over UDP through a tap that records and can replay; an attacker on the network sends its own frames.

Cases: timestamp poisoning with a wrong key (pymavlink's own check would lock the vehicle out), one hostile datagram
redirecting the bridge's replies, replays of the vehicle's frames, the bridge's outgoing timestamps against the
clock, a vehicle reboot, and the timestamp kept across a restart of the bridge.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymavlink.dialects.v20 import common as mavlink2

from px4link.bridge import Px4Bridge
from px4link.config import BridgeConfig, FailsafeConfig, LinkConfig
from px4link.failsafes import FailsafeEvent, FailsafeKind
from px4link.signing import SigningConfig, signing_timestamp_now

from .conftest import free_udp_port, wait_until
from .mavlink_tap import Tap, frames, signing_timestamp, start_px4sim, stop_px4sim

pytestmark = [pytest.mark.mavlink, pytest.mark.slow]

KEY = bytes(range(32))
WRONG_KEY = bytes(range(100, 132))
SIGNED = 0x01


def _start_vehicle(port: int) -> subprocess.Popen[bytes]:
    return start_px4sim(port, "--signing-key-hex", KEY.hex(), "--require-signing", "--stream-rate-scale", "0.2")


class _Setup:
    def __init__(self, bridge: Px4Bridge, tap: Tap, vehicle: subprocess.Popen[bytes]) -> None:
        self.bridge, self.tap, self.vehicle = bridge, tap, vehicle
        self.events: list[Any] = []
        bridge.add_listener(self.events.append)

    def link_lost(self) -> bool:
        return any(isinstance(e, FailsafeEvent) and e.kind == FailsafeKind.LINK_LOST for e in self.events)


@pytest.fixture
def signed_link(tmp_path: Path) -> Iterator[_Setup]:
    bridge_port = free_udp_port()
    tap = Tap(bridge_port)
    signing = SigningConfig(secret_key_hex=KEY.hex(), timestamp_file=str(tmp_path / "signing_timestamp"))
    bridge = Px4Bridge(
        BridgeConfig(
            link=LinkConfig(url=f"udpin:127.0.0.1:{bridge_port}", signing=signing),
            failsafes=FailsafeConfig(link_loss_s=0.5),
        )
    )
    setup: _Setup | None = None
    vehicle = _start_vehicle(tap.port)
    try:
        with bridge:
            assert bridge.wait_vehicle(30.0), "no signed heartbeat from px4sim"
            setup = _Setup(bridge, tap, vehicle)
            yield setup
    finally:
        stop_px4sim(vehicle if setup is None else setup.vehicle)  # a test may have rebooted it: stop the one running
        if setup is not None and setup.vehicle is not vehicle:
            stop_px4sim(vehicle)
        tap.close()


def _forged_heartbeats(count: int, key: bytes | None, timestamp: int) -> list[bytes]:
    """Heartbeats that claim to be the vehicle (system 1, component 1, link 0), signed with `key` (None: unsigned)."""
    mav = mavlink2.MAVLink(None, srcSystem=1, srcComponent=1)
    if key is not None:
        mav.signing.secret_key = key
        mav.signing.sign_outgoing = True
        mav.signing.link_id = 0
        mav.signing.timestamp = timestamp
    return [bytes(mav.heartbeat_encode(2, 12, 129, 4 << 16, 4).pack(mav)) for _ in range(count)]


def test_forged_future_timestamps_with_a_wrong_key_neither_lock_out_nor_redirect(signed_link: _Setup) -> None:
    bridge = signed_link.bridge
    future = signing_timestamp_now() + 3600 * 100_000  # an hour ahead
    forged = _forged_heartbeats(256, WRONG_KEY, future) + _forged_heartbeats(16, None, 0)
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stop = threading.Event()

    def keep_sending() -> None:  # from another address, every 5 ms: it must never become the reply address
        while not stop.wait(0.005):
            attacker.sendto(forged[0], signed_link.tap.bridge)

    try:
        for frame in forged:
            attacker.sendto(frame, signed_link.tap.bridge)
        sent_s = time.monotonic()
        thread = threading.Thread(target=keep_sending, daemon=True)
        thread.start()
        time.sleep(2.0)
        counters = bridge.counters().link.signing
        assert counters.bad_signatures >= 256
        assert counters.refused >= 256 + 16
        assert not signed_link.link_lost(), "forged frames locked the vehicle's real frames out"
        assert bridge.connection.vehicle_heartbeat_age_s() < 1.5
        assert max(t for t, _ in signed_link.tap.to_bridge) > sent_s + 1.0, "the vehicle stopped sending"
        for name in ("COM_OF_LOSS_T", "COM_DL_LOSS_T", "MPC_XY_VEL_MAX"):
            value = bridge.params.read(name, timeout_s=0.5, retries=1).value
            assert value > 0.0, "the bridge's requests no longer reach the vehicle"
    finally:
        stop.set()
        attacker.close()


def test_replayed_vehicle_frames_are_refused_and_counted(signed_link: _Setup) -> None:
    bridge = signed_link.bridge
    time.sleep(1.0)
    recorded = [data for _, data in signed_link.tap.to_bridge[-20:]]
    replayed = sum(len(frames(data)) for data in recorded)
    before = bridge.counters().link.signing
    for data in recorded:
        signed_link.tap.send_to_bridge(data)  # from the vehicle's own path: only the timestamps can tell
    time.sleep(0.5)
    after = bridge.counters().link.signing
    assert after.replayed - before.replayed == replayed
    assert not signed_link.link_lost()


def test_outgoing_timestamps_follow_the_clock_and_a_rebooted_vehicle_accepts_them(signed_link: _Setup) -> None:
    bridge, tap = signed_link.bridge, signed_link.tap
    time.sleep(3.0)
    stamped = [(now, signing_timestamp(f)) for now, _, data in tap.to_vehicle for f in frames(data) if f[2] & SIGNED]
    assert len(stamped) > 5
    lags_s = [(now - ts) / 100_000 for now, ts in stamped]
    assert max(abs(lag) for lag in lags_s) < 0.5, f"outgoing stamps drift from the clock by up to {max(lags_s):.2f} s"
    stamps = [ts for _, ts in stamped]
    assert all(b > a for a, b in itertools.pairwise(stamps)), "stamps must rise frame by frame"
    # A reboot: a new vehicle process knows none of the bridge's streams and accepts only fresh stamps.
    stop_px4sim(signed_link.vehicle)
    signed_link.vehicle = _start_vehicle(tap.port)
    assert wait_until(signed_link.link_lost, 10.0), "the vehicle's restart was not seen as a link loss"  # loaded CI
    assert wait_until(lambda: bridge.connection.vehicle_heartbeat_age_s() < 0.5, 30.0), "rebooted vehicle not heard"
    assert bridge.params.read("COM_OF_LOSS_T", timeout_s=1.0, retries=3).value > 0.0

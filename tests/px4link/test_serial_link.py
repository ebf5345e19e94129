"""The serial transport over a pseudo-terminal: heartbeats both ways as a byte stream, and a hang-up (the cable
pulled, the flight controller rebooting) that the link survives without spinning and recovers from when the device
comes back."""

from __future__ import annotations

import os
import select
import sys
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymavlink.dialects.v20 import common as mavlink2

from px4link.config import LinkConfig
from px4link.connection import MavlinkConnection

pytestmark = [
    pytest.mark.mavlink,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals as on the companion computer"),
]


class FlightControllerEnd:
    """The far end of a pty pair: sends PX4's heartbeat at 10 Hz, collects the frames the bridge writes."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo or line editing before the link under test opens it (by its path)
        self.device = os.ttyname(self._slave)
        self.mav = mavlink2.MAVLink(None, srcSystem=1, srcComponent=1)
        self.parser = mavlink2.MAVLink(None)
        self.parser.robust_parsing = True
        self.received: list[mavlink2.MAVLink_message] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_beat = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + 0.1
                beat = self.mav.heartbeat_encode(
                    mavlink2.MAV_TYPE_QUADROTOR, mavlink2.MAV_AUTOPILOT_PX4, 0, 0, mavlink2.MAV_STATE_STANDBY
                )
                try:
                    os.write(self.master, beat.pack(self.mav))
                except OSError:
                    return
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    return
                self.received += [m for m in self.parser.parse_buffer(data) or [] if m.get_type() != "BAD_DATA"]

    def hang_up(self) -> None:
        """Close the master side: the device's reads fail, as when a USB serial adapter is unplugged."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def fc_link(tmp_path: Path) -> Iterator[tuple[Path, list[FlightControllerEnd]]]:
    """A stable device path (a symlink, as udev gives /dev/serial/by-id/...) to the current pty."""
    ends = [FlightControllerEnd()]
    link = tmp_path / "ttyFC"
    link.symlink_to(ends[0].device)
    yield link, ends
    for end in ends:
        if not end._stop.is_set():
            end.hang_up()


def test_heartbeats_cross_a_serial_link_both_ways(fc_link: tuple[Path, list[FlightControllerEnd]]) -> None:
    link, ends = fc_link
    conn = MavlinkConnection(LinkConfig(url=f"serial://{link}?baud=921600")).start()
    try:
        assert conn.wait_vehicle(3.0), "the vehicle's heartbeat did not come through the serial device"
        deadline = time.monotonic() + 3.0
        while not any(m.get_type() == "HEARTBEAT" for m in ends[0].received) and time.monotonic() < deadline:
            time.sleep(0.05)
        ours = [m for m in ends[0].received if m.get_type() == "HEARTBEAT"]
        assert ours, "no heartbeat of ours reached the flight controller"
        assert (ours[0].get_srcSystem(), ours[0].get_srcComponent()) == (1, 191)
        assert conn.counters().bad_frames == 0
    finally:
        conn.close()


def test_a_hang_up_neither_spins_nor_kills_the_link_and_the_device_coming_back_restores_it(
    fc_link: tuple[Path, list[FlightControllerEnd]],
) -> None:
    link, ends = fc_link
    conn = MavlinkConnection(LinkConfig(url=f"serial://{link}?baud=921600")).start()
    try:
        assert conn.wait_vehicle(3.0)
        ends[0].hang_up()
        deadline = time.monotonic() + 2.0
        while conn.counters().link_drops == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert conn.counters().link_drops == 1

        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(1.0)
        cpu_share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        assert cpu_share < 0.3, f"the receive thread spins on a hung-up device ({cpu_share:.0%} of a core)"
        assert conn.vehicle_message_age_s(time.monotonic()) > 0.9

        ends.append(FlightControllerEnd())  # the flight controller is back, on a new pty behind the same path
        link.unlink()
        link.symlink_to(ends[-1].device)
        deadline = time.monotonic() + 4.0
        while conn.vehicle_message_age_s(time.monotonic()) > 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert conn.vehicle_message_age_s(time.monotonic()) < 0.3, "the link did not reopen the device"
        assert conn.counters().link_drops == 1
    finally:
        conn.close()

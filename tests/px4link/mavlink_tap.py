"""Test peers for the bridge's link tests: px4sim in its own process, and a UDP tap between it and the bridge that
records both directions, cuts either one, drops chosen message ids, and injects. Raw bytes only: nothing of px4link.
"""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIGNED = 0x01
SIGNING_EPOCH_UNIX_S = 1420070400  # 2015-01-01 UTC, MAVLink 2 signing's origin (written here: nothing of px4link)
HEARTBEAT, COMMAND_LONG, COMMAND_ACK, SET_POSITION_TARGET_LOCAL_NED = 0, 76, 77, 84


def frames(datagram: bytes) -> list[bytes]:
    """The MAVLink 2 frames of a datagram (found by their length fields)."""
    out, i = [], 0
    while i + 12 <= len(datagram) and datagram[i] == 0xFD:
        length = 12 + datagram[i + 1] + (13 if datagram[i + 2] & SIGNED else 0)
        out.append(datagram[i : i + length])
        i += length
    return out


def msg_id(frame: bytes) -> int:
    """The message id of a MAVLink 2 frame."""
    return int.from_bytes(frame[7:10], "little")


def signing_timestamp(frame: bytes) -> int:
    """The signing timestamp of a signed frame."""
    return int.from_bytes(frame[-12:-6], "little")


class Tap:
    """A UDP relay between the bridge (listening on `bridge_port`) and the vehicle (sending to `port`).

    Keeps every datagram it forwards with its time (`to_bridge`: monotonic s; `to_vehicle`: signing timestamp units
    and monotonic s); `cut_to_vehicle` / `cut_to_bridge` drop a whole direction; `drop_to_bridge` drops frames of
    those message ids on their way to the bridge; `send_to_bridge` injects from the tap's own socket.
    """

    def __init__(self, bridge_port: int) -> None:
        self.bridge = ("127.0.0.1", bridge_port)
        self.vehicle_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.vehicle_side.bind(("127.0.0.1", 0))
        self.bridge_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.bridge_side.bind(("127.0.0.1", 0))
        self.port = int(self.vehicle_side.getsockname()[1])
        self.vehicle: tuple[str, int] | None = None
        self.to_bridge: list[tuple[float, bytes]] = []
        self.to_vehicle: list[tuple[int, float, bytes]] = []
        self.cut_to_vehicle = False
        self.cut_to_bridge = False
        self.drop_to_bridge: frozenset[int] = frozenset()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.vehicle_side, self.bridge_side], [], [], 0.05)
            for sock in ready:
                try:
                    data, address = sock.recvfrom(65535)
                except OSError:
                    continue
                if sock is self.vehicle_side:
                    self.vehicle = address
                    if self.cut_to_bridge:
                        continue
                    if self.drop_to_bridge:
                        data = b"".join(f for f in frames(data) if msg_id(f) not in self.drop_to_bridge)
                        if not data:
                            continue
                    self.to_bridge.append((time.monotonic(), data))
                    self.bridge_side.sendto(data, self.bridge)
                elif self.vehicle is not None and not self.cut_to_vehicle:
                    stamp = int((time.time() - SIGNING_EPOCH_UNIX_S) * 100_000)
                    self.to_vehicle.append((stamp, time.monotonic(), data))
                    self.vehicle_side.sendto(data, self.vehicle)

    def cut(self) -> float:
        """Cut both directions; returns the time."""
        self.cut_to_vehicle = self.cut_to_bridge = True
        return time.monotonic()

    def restore(self) -> float:
        """Restore both directions; returns the time."""
        self.cut_to_vehicle = self.cut_to_bridge = False
        return time.monotonic()

    def frames_to_vehicle(self, message_id: int, since_s: float = 0.0) -> list[tuple[float, bytes]]:
        """Frames of `message_id` forwarded to the vehicle at or after monotonic `since_s`."""
        sent = [(t, data) for _, t, data in self.to_vehicle if t >= since_s]
        return [(t, f) for t, data in sent for f in frames(data) if msg_id(f) == message_id]

    def send_to_bridge(self, data: bytes) -> None:
        self.bridge_side.sendto(data, self.bridge)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.vehicle_side.close()
        self.bridge_side.close()


def start_px4sim(port: int, *args: str, params: dict[str, float] | None = None) -> subprocess.Popen[bytes]:
    """px4sim's own command in its own process, sending to `port`."""
    param_args = [a for name, value in (params or {}).items() for a in ("--param", f"{name}={value}")]
    return subprocess.Popen(
        [sys.executable, "-m", "px4sim.cli", "--url", f"udpout:127.0.0.1:{port}", *args, *param_args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop_px4sim(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

"""A raw pymavlink ground station for the simulated vehicle's tests (UDP on loopback, MAVLink 2)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from pymavlink.dialects.v20 import common as mavlink

from px4sim import px4_custom_mode as px4_modes
from px4sim.signing import signing_timestamp_now


class _Out:
    def __init__(self, ground: Ground) -> None:
        self.ground = ground

    def write(self, data: bytes) -> None:
        self.ground.send_raw(bytes(data))


class Ground:
    """Listens on an ephemeral UDP port; the vehicle is pointed at it with `udpout:127.0.0.1:<port>`."""

    def __init__(self, system_id: int = 255, component_id: int = 190, signing_key: bytes | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.peer: tuple[str, int] | None = None
        self.mav = mavlink.MAVLink(_Out(self), srcSystem=system_id, srcComponent=component_id)
        self.parser = mavlink.MAVLink(None)
        self.parser.robust_parsing = True
        if signing_key is not None:
            self.mav.signing.secret_key = signing_key
            self.mav.signing.sign_outgoing = True
            self.mav.signing.timestamp = signing_timestamp_now()
        self.received: list[tuple[float, Any]] = []
        self.raw_sent: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._rx, daemon=True)
        self._thread.start()
        self._hb_thread: threading.Thread | None = None
        self._hb_stop = threading.Event()

    @property
    def url(self) -> str:
        """The URL to give the vehicle."""
        return f"udpout:127.0.0.1:{self.port}"

    def _rx(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            self.peer = addr
            now = time.monotonic()
            for msg in self.parser.parse_buffer(data) or []:
                if msg.get_type() != "BAD_DATA":
                    with self._lock:
                        self.received.append((now, msg))

    def send_raw(self, data: bytes) -> None:
        """Send bytes to the vehicle (once it has been heard from)."""
        self.raw_sent.append(data)
        if self.peer is not None and not self._stop.is_set():
            self.sock.sendto(data, self.peer)

    def send(self, msg: Any) -> None:
        """Send a message (signed when the ground has a key)."""
        self.mav.send(msg)

    def wait_peer(self, timeout_s: float = 5.0) -> None:
        """Wait until the vehicle has sent something."""
        deadline = time.monotonic() + timeout_s
        while self.peer is None:
            if time.monotonic() > deadline:
                raise TimeoutError("vehicle never heard")
            time.sleep(0.01)

    def clear(self) -> None:
        """Forget what was received so far."""
        with self._lock:
            self.received.clear()

    def messages(self, kind: str) -> list[tuple[float, Any]]:
        """(arrival time, message) of every `kind` message received so far."""
        with self._lock:
            return [(t, m) for t, m in self.received if m.get_type() == kind]

    def wait(
        self, kind: str, cond: Callable[[Any], bool] = lambda m: True, timeout_s: float = 5.0, since: float = 0.0
    ) -> Any:
        """The first `kind` message (arrived after `since`) that satisfies `cond`; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            for t, m in self.messages(kind):
                if t >= since and cond(m):
                    return m
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {kind} within {timeout_s} s")
            time.sleep(0.01)

    def command(
        self, command: int, *params: float, confirmation: int = 0, target: int = 1, timeout_s: float = 3.0
    ) -> int:
        """Send a COMMAND_LONG and return the COMMAND_ACK's result."""
        p = list(params) + [0.0] * (7 - len(params))
        since = time.monotonic()
        self.send(self.mav.command_long_encode(target, 1, command, confirmation, *p))
        ack = self.wait("COMMAND_ACK", lambda m: m.command == command, timeout_s, since)
        return int(ack.result)

    def set_mode(self, mode: px4_modes.Px4Mode) -> int:
        """MAV_CMD_DO_SET_MODE for a PX4 mode; the ACK's result."""
        return self.command(mavlink.MAV_CMD_DO_SET_MODE, *px4_modes.set_mode_params(mode))

    def heartbeat(self) -> Any:
        """The latest HEARTBEAT."""
        return self.wait("HEARTBEAT", timeout_s=3.0)

    def latest(self, kind: str) -> Any:
        """The latest `kind` message (waits for one)."""
        self.wait(kind)
        return self.messages(kind)[-1][1]

    def start_heartbeats(self, rate_hz: float = 2.0) -> None:
        """Send GCS heartbeats in the background."""

        def beat() -> None:
            while not self._stop.is_set() and not self._hb_stop.is_set():
                self.send(self.mav.heartbeat_encode(mavlink.MAV_TYPE_GCS, mavlink.MAV_AUTOPILOT_INVALID, 0, 0, 0))
                time.sleep(1.0 / rate_hz)

        self._hb_thread = threading.Thread(target=beat, daemon=True)
        self._hb_thread.start()

    def stop_heartbeats(self) -> None:
        """Stop the background GCS heartbeats (the ground station goes silent, the socket stays)."""
        self._hb_stop.set()
        if self._hb_thread is not None:
            self._hb_thread.join(timeout=1.0)

    def close(self) -> None:
        """Stop the threads and close the socket."""
        self._stop.set()
        self._thread.join(timeout=1.0)
        if self._hb_thread is not None:
            self._hb_thread.join(timeout=1.0)
        self.sock.close()


class SetpointStream:
    """Streams SET_POSITION_TARGET_LOCAL_NED at a fixed rate from a background thread."""

    def __init__(self, ground: Ground, rate_hz: float = 50.0) -> None:
        self.ground = ground
        self.period_s = 1.0 / rate_hz
        self.position_ned = (0.0, 0.0, -2.0)
        self.velocity_ned = (0.0, 0.0, 0.0)
        self.yaw_ned = 0.0
        self.type_mask = 0b0000_1001_1100_0000  # position + velocity + yaw; acceleration, force, yaw rate ignored
        self.last_sent_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SetpointStream:
        """Start streaming."""
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            g = self.ground
            boot_ms = int((time.monotonic() - start) * 1000)
            g.send(
                g.mav.set_position_target_local_ned_encode(
                    boot_ms,
                    1,
                    1,
                    mavlink.MAV_FRAME_LOCAL_NED,
                    self.type_mask,
                    *self.position_ned,
                    *self.velocity_ned,
                    0.0,
                    0.0,
                    0.0,
                    self.yaw_ned,
                    0.0,
                )
            )
            self.last_sent_s = time.monotonic()
            time.sleep(self.period_s)

    def stop(self) -> float:
        """Stop streaming; return when the last setpoint went out."""
        self._stop.set()
        self._thread.join(timeout=1.0)
        return self.last_sent_s

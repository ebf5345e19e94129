"""A small PX4-like MAVLink peer written for the bridge's protocol tests (raw pymavlink; it imports nothing of
px4link), a fault relay, and a MAVSDK autopilot.

The peer answers commands the way a test asks (accept, deny, ignore, delay, IN_PROGRESS first), keeps parameters
with PX4's bytewise int encoding, switches to OFFBOARD only while setpoints stream, falls back to AUTO.LOITER when
they stop for COM_OF_LOSS_T, and records every command and setpoint it received with the time.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymavlink.dialects.v20 import common as mavlink2

OFFBOARD_MAIN_MODE = 6
AUTO_MAIN_MODE = 4
LOITER_SUB, TAKEOFF_SUB, LAND_SUB = 3, 2, 6


def free_udp_port() -> int:
    """A UDP port nobody holds now (bind to 0, read it, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ReceivedCommand:
    time_s: float
    command: int
    confirmation: int
    params: tuple[float, ...]
    source: tuple[int, int]


@dataclass
class PeerBehaviour:
    """How the peer answers: per command id, "accept", "deny", "ignore", "in_progress" (then accept),
    "camera_accepts" (only the vehicle's camera, component 100, ACKs it ACCEPTED) or a delay."""

    policy: dict[int, str] = field(default_factory=dict)
    ack_delay_s: dict[int, float] = field(default_factory=dict)
    ignore_first: dict[int, int] = field(default_factory=dict)
    param_rejects: set[str] = field(default_factory=set)
    """Parameters whose PARAM_SET is refused (PX4 then echoes the value it kept)."""
    param_old_value_first: bool = False
    """Before answering a PARAM_SET, send the old value 50 ms ahead (another client's read crossing ours)."""


class PeerVehicle:
    """A PX4-like vehicle on UDP (see the module docstring). Replies to whoever spoke last, or to `remote`."""

    def __init__(self, remote: tuple[str, int] | None = None, signing_key: bytes | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.remote = remote
        self.fixed_remote = remote is not None
        self.mav = mavlink2.MAVLink(None, srcSystem=1, srcComponent=1)
        self.mav.robust_parsing = True
        if signing_key is not None:
            for end in (self.mav,):
                end.signing.secret_key = signing_key
                end.signing.sign_outgoing = True
                end.signing.timestamp = int((time.time() - 1420070400) * 100_000)
                end.signing.allow_unsigned_callback = lambda _mav, _msg_id: False
        self.behaviour = PeerBehaviour()
        self.lock = threading.Lock()
        self.armed = False
        self.main_mode, self.sub_mode = AUTO_MAIN_MODE, LOITER_SUB
        self.position_ned = [0.0, 0.0, 0.0]
        self.battery_remaining = 90
        self.ekf_flags = 0x3FF & ~(1 << 7)  # all solutions, no const-pos mode
        self.params: dict[str, tuple[float | int, int]] = {
            "COM_OF_LOSS_T": (1.0, mavlink2.MAV_PARAM_TYPE_REAL32),
            "COM_OBL_RC_ACT": (5, mavlink2.MAV_PARAM_TYPE_INT32),
            "NAV_DLL_ACT": (0, mavlink2.MAV_PARAM_TYPE_INT32),
            "COM_DL_LOSS_T": (10, mavlink2.MAV_PARAM_TYPE_INT32),
            "MIS_TAKEOFF_ALT": (2.5, mavlink2.MAV_PARAM_TYPE_REAL32),
        }
        self.commands: list[ReceivedCommand] = []
        self.setpoints: list[tuple[float, Any]] = []
        self.messages: list[tuple[float, Any]] = []
        self.telemetry_rate_hz = 50.0
        self.silent = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peer-vehicle", daemon=True)
        self._delayed: list[tuple[float, int, tuple[int, int], int | None, tuple[float, ...]]] = []

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> PeerVehicle:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.sock.close()

    @property
    def mode(self) -> tuple[int, int]:
        return self.main_mode, self.sub_mode

    def send(self, message: Any) -> None:
        if self.remote is None or self.silent:
            return
        try:
            self.sock.sendto(message.pack(self.mav), self.remote)
            self.mav.seq = (self.mav.seq + 1) % 256
        except OSError:
            pass

    def _run(self) -> None:
        period = 1.0 / self.telemetry_rate_hz
        next_tick = time.monotonic()
        beat = 0
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], max(0.0, min(0.005, next_tick - time.monotonic())))
            if ready:
                try:
                    data, address = self.sock.recvfrom(65535)
                except OSError:
                    data = b""
                if data:
                    if not self.fixed_remote:
                        self.remote = address
                    self._on_bytes(data)
            now = time.monotonic()
            self._send_due_acks(now)
            if now >= next_tick:
                next_tick += period
                beat += 1
                self._offboard_loss_check(now)
                self._telemetry(beat)

    def _telemetry(self, beat: int) -> None:
        base = mavlink2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (mavlink2.MAV_MODE_FLAG_SAFETY_ARMED if self.armed else 0)
        custom = (self.main_mode << 16) | (self.sub_mode << 24)
        boot_ms = int(time.monotonic() * 1000) & 0xFFFFFFFF
        if beat % 5 == 0:
            self.send(
                self.mav.heartbeat_encode(mavlink2.MAV_TYPE_QUADROTOR, mavlink2.MAV_AUTOPILOT_PX4, base, custom, 4)
            )
            self.send(self.mav.estimator_status_encode(0, self.ekf_flags, 0, 0, 0, 0, 0, 0, 0, 0))
            self.send(self.mav.extended_sys_state_encode(0, 2 if self.armed else 1))
            self.send(self.mav.sys_status_encode(0, 0, 0, 0, 16000, 100, self.battery_remaining, 0, 0, 0, 0, 0, 0))
        x, y, z = self.position_ned
        self.send(self.mav.local_position_ned_encode(boot_ms, x, y, z, 0.0, 0.0, 0.0))

    def _offboard_loss_check(self, now: float) -> None:
        if self.main_mode != OFFBOARD_MAIN_MODE:
            return
        last = self.setpoints[-1][0] if self.setpoints else 0.0
        if now - last > float(self.params["COM_OF_LOSS_T"][0]):
            self.main_mode, self.sub_mode = AUTO_MAIN_MODE, LOITER_SUB

    def _on_bytes(self, data: bytes) -> None:
        try:
            messages = self.mav.parse_buffer(data) or []
        except Exception:
            return
        now = time.monotonic()
        for message in messages:
            kind = message.get_type()
            if kind == "BAD_DATA":
                continue
            self.messages.append((now, message))
            if kind == "COMMAND_LONG":
                self._on_command(message, now)
            elif kind == "SET_POSITION_TARGET_LOCAL_NED":
                self.setpoints.append((now, message))
                if self.main_mode == OFFBOARD_MAIN_MODE:
                    self.position_ned = [message.x, message.y, message.z]
            elif kind == "PARAM_REQUEST_READ":
                self._send_param(_name(message.param_id))
            elif kind == "PARAM_SET":
                self._on_param_set(message)

    def _send_param(self, name: str) -> None:
        if name not in self.params:
            return
        value, param_type = self.params[name]
        carried = struct.unpack("<f", struct.pack("<i", int(value)))[0] if param_type == 6 else float(value)
        index = list(self.params).index(name)
        self.send(self.mav.param_value_encode(name.encode(), carried, param_type, len(self.params), index))

    def _on_param_set(self, message: Any) -> None:
        name = _name(message.param_id)
        if self.behaviour.param_old_value_first:
            self._send_param(name)
            time.sleep(0.05)  # the bridge sees the old value on its own before the echo
        if name in self.params and name not in self.behaviour.param_rejects:
            _, param_type = self.params[name]
            value: float | int
            if param_type == 6:
                value = struct.unpack("<i", struct.pack("<f", message.param_value))[0]
            else:
                value = float(message.param_value)
            self.params[name] = (value, param_type)
        self._send_param(name)

    def _on_command(self, message: Any, now: float) -> None:
        command = int(message.command)
        params = tuple(getattr(message, f"param{i}") for i in range(1, 8))
        self.commands.append(
            ReceivedCommand(
                now, command, int(message.confirmation), params, (message.get_srcSystem(), message.get_srcComponent())
            )
        )
        b = self.behaviour
        if b.ignore_first.get(command, 0) > 0:
            b.ignore_first[command] -= 1
            return
        policy = b.policy.get(command, "accept")
        if policy == "ignore":
            return
        source = (message.get_srcSystem(), message.get_srcComponent())
        if policy == "camera_accepts":
            camera = mavlink2.MAVLink(None, srcSystem=1, srcComponent=mavlink2.MAV_COMP_ID_CAMERA)
            ack = camera.command_ack_encode(command, mavlink2.MAV_RESULT_ACCEPTED, 0, 0, source[0], source[1])
            if self.remote is not None:
                self.sock.sendto(ack.pack(camera), self.remote)
            return
        if policy == "in_progress":
            self._ack(command, mavlink2.MAV_RESULT_IN_PROGRESS, source, now)
            b.policy[command] = "accept"
            self._delayed.append((now + 0.3, command, source, None, params))
            return
        result = mavlink2.MAV_RESULT_DENIED if policy == "deny" else self._execute(command, params, now)
        delay = b.ack_delay_s.get(command, 0.0)
        if delay:
            self._delayed.append((now + delay, command, source, result, params))
        else:
            self._ack(command, result, source, now)

    def _send_due_acks(self, now: float) -> None:
        due = [d for d in self._delayed if d[0] <= now]
        self._delayed = [d for d in self._delayed if d[0] > now]
        for _, command, source, result, params in due:
            self._ack(command, self._execute(command, params, now) if result is None else result, source, now)

    def _ack(self, command: int, result: int, source: tuple[int, int], now: float) -> None:
        self.send(self.mav.command_ack_encode(command, result, 0, 0, source[0], source[1]))

    def _execute(self, command: int, params: tuple[float, ...], now: float) -> int:
        if command == mavlink2.MAV_CMD_COMPONENT_ARM_DISARM:
            self.armed = params[0] > 0.5
            return mavlink2.MAV_RESULT_ACCEPTED
        if command == mavlink2.MAV_CMD_DO_SET_MODE:
            main, sub = int(params[1]), int(params[2])
            if main == OFFBOARD_MAIN_MODE:
                recent = [t for t, _ in self.setpoints if now - t < 0.5]
                if len(recent) < 2:
                    return mavlink2.MAV_RESULT_DENIED  # PX4: no offboard signal
            self.main_mode, self.sub_mode = main, sub
            return mavlink2.MAV_RESULT_ACCEPTED
        if command == mavlink2.MAV_CMD_NAV_TAKEOFF:
            self.main_mode, self.sub_mode = AUTO_MAIN_MODE, TAKEOFF_SUB
            self.position_ned[2] = -float(self.params["MIS_TAKEOFF_ALT"][0])
            return mavlink2.MAV_RESULT_ACCEPTED
        if command == mavlink2.MAV_CMD_NAV_LAND:
            self.main_mode, self.sub_mode = AUTO_MAIN_MODE, LAND_SUB
            return mavlink2.MAV_RESULT_ACCEPTED
        return mavlink2.MAV_RESULT_ACCEPTED

    def first_command_time(self, command: int, **match: float) -> float | None:
        for c in self.commands:
            if c.command == command and all(abs(c.params[int(k[1:]) - 1] - v) < 1e-6 for k, v in match.items()):
                return c.time_s
        return None


def _name(raw: bytes | str) -> str:
    return (raw.decode("ascii", "replace") if isinstance(raw, bytes | bytearray) else str(raw)).rstrip("\x00")


@pytest.fixture
def udp_port() -> int:
    """A free UDP port on 127.0.0.1."""
    return free_udp_port()


@pytest.fixture
def peer() -> Iterator[PeerVehicle]:
    """A PX4-like peer that replies to whoever speaks to it (point the bridge at udpout:127.0.0.1:peer.port)."""
    vehicle = PeerVehicle().start()
    yield vehicle
    vehicle.stop()


def wait_until(predicate: Any, timeout_s: float, step_s: float = 0.01) -> bool:
    """Poll `predicate()` until true or timeout; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


def link_config(port: int, **changes: Any) -> Any:
    """A LinkConfig that sends to 127.0.0.1:`port` (udpout), fast heartbeats for quick tests."""
    from px4link.config import LinkConfig

    changes.setdefault("url", f"udpout:127.0.0.1:{port}")
    changes.setdefault("heartbeat_period_s", 0.2)
    return LinkConfig(**changes)


@pytest.fixture
def connection_to(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A factory of started MavlinkConnections (closed at teardown)."""
    from px4link.connection import MavlinkConnection

    opened: list[Any] = []

    def make(port: int, **changes: Any) -> Any:
        conn = MavlinkConnection(link_config(port, **changes)).start()
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.close()


@pytest.fixture
def mavsdk_autopilot() -> Iterator[Any]:
    """A factory of MAVSDK autopilots (sysid 1, compid 1) that send to a given UDP port: an independent MAVLink peer."""
    mavsdk = pytest.importorskip("mavsdk.mavsdk")
    from mavsdk.component_type import ComponentType

    made: list[Any] = []

    def make(port: int) -> Any:
        configuration = mavsdk.Configuration.create_with_component_type(ComponentType.AUTOPILOT)
        instance = mavsdk.Mavsdk(configuration)
        result = instance.add_any_connection(f"udpout://127.0.0.1:{port}")
        assert int(result) == 0, f"MAVSDK could not open udpout to {port}: {result}"
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.destroy()

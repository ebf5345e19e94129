"""A UDP relay between two MAVLink peers that injects link faults: loss, corruption, truncation, delay, dropped
message ids (e.g. COMMAND_ACK), and a switch that cuts the link and restores it.

Peer A sends to `port_a`, peer B to `port_b`; the relay learns each peer's address from its first datagram and
forwards what it receives from one side to the other. Faults are drawn from a seeded generator per datagram (frames
are located with the MAVLink length fields, so dropping a message id drops just those frames). Speaks raw bytes only:
it shares no code with either peer.
"""

from __future__ import annotations

import heapq
import random
import select
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Literal

Direction = Literal["a_to_b", "b_to_a"]


@dataclass(frozen=True)
class LinkFaults:
    """Faults applied to every datagram (per direction where noted).

    Attributes:
        loss_probability: a datagram is dropped with this probability.
        corrupt_probability: one random byte of a datagram is flipped with this probability.
        truncate_probability: a datagram is cut at a random length with this probability.
        delay_s: every datagram is delivered this late (plus up to `delay_jitter_s`).
        delay_jitter_s: uniform extra delay.
        drop_msg_ids_a_to_b: message ids whose frames are dropped from A to B.
        drop_msg_ids_b_to_a: message ids whose frames are dropped from B to A (77 = COMMAND_ACK).
        seed: seed of the fault generator.
    """

    loss_probability: float = 0.0
    corrupt_probability: float = 0.0
    truncate_probability: float = 0.0
    delay_s: float = 0.0
    delay_jitter_s: float = 0.0
    drop_msg_ids_a_to_b: frozenset[int] = field(default_factory=frozenset)
    drop_msg_ids_b_to_a: frozenset[int] = field(default_factory=frozenset)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("loss_probability", "corrupt_probability", "truncate_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.delay_s < 0.0 or self.delay_jitter_s < 0.0:
            raise ValueError("delays must be >= 0")


@dataclass
class RelayCounters:
    """What the relay did, per direction."""

    forwarded: dict[str, int] = field(default_factory=lambda: {"a_to_b": 0, "b_to_a": 0})
    lost: dict[str, int] = field(default_factory=lambda: {"a_to_b": 0, "b_to_a": 0})
    corrupted: dict[str, int] = field(default_factory=lambda: {"a_to_b": 0, "b_to_a": 0})
    truncated: dict[str, int] = field(default_factory=lambda: {"a_to_b": 0, "b_to_a": 0})
    dropped_frames: dict[str, int] = field(default_factory=lambda: {"a_to_b": 0, "b_to_a": 0})
    cut: dict[str, int] = field(default_factory=lambda: {"a_to_b": 0, "b_to_a": 0})


def split_frames(data: bytes) -> list[bytes]:
    """MAVLink v1/v2 frames in a datagram, by their length fields; unparseable tails come back as one piece."""
    frames: list[bytes] = []
    i = 0
    while i < len(data):
        marker = data[i]
        if marker == 0xFD and i + 3 <= len(data):
            length = 12 + data[i + 1] + (13 if data[i + 2] & 0x01 else 0)
        elif marker == 0xFE and i + 2 <= len(data):
            length = 8 + data[i + 1]
        else:
            frames.append(data[i:])
            break
        frames.append(data[i : i + length])
        i += length
    return frames


def frame_msg_id(frame: bytes) -> int | None:
    """The message id of one MAVLink frame (None when too short to tell)."""
    if len(frame) >= 10 and frame[0] == 0xFD:
        return frame[7] | (frame[8] << 8) | (frame[9] << 16)
    if len(frame) >= 6 and frame[0] == 0xFE:
        return frame[5]
    return None


class LinkFaultRelay:
    """The relay (see the module docstring). `start()`, then point peer A at `port_a` and peer B at `port_b`."""

    def __init__(self, faults: LinkFaults | None = None, host: str = "127.0.0.1") -> None:
        self._faults = faults or LinkFaults()
        self._rng = random.Random(self._faults.seed)
        self._host = host
        self._sock_a = self._bind()
        self._sock_b = self._bind()
        self._peer_a: tuple[str, int] | None = None
        self._peer_b: tuple[str, int] | None = None
        self._cut = False
        self._lock = threading.Lock()
        self._pending: list[tuple[float, int, Direction, bytes]] = []
        self._sequence = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.counters = RelayCounters()

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self._host, 0))
        sock.setblocking(False)
        return sock

    @property
    def port_a(self) -> int:
        """Where peer A sends."""
        return int(self._sock_a.getsockname()[1])

    @property
    def port_b(self) -> int:
        """Where peer B sends."""
        return int(self._sock_b.getsockname()[1])

    @property
    def faults(self) -> LinkFaults:
        """The faults in force."""
        return self._faults

    def set_faults(self, faults: LinkFaults) -> None:
        """Change the faults (the generator keeps its state)."""
        with self._lock:
            self._faults = faults

    def update_faults(self, **changes: object) -> None:
        """Change some fault fields."""
        with self._lock:
            self._faults = replace(self._faults, **changes)  # type: ignore[arg-type]

    def cut(self) -> float:
        """Drop everything both ways from now on; returns the monotonic time of the cut."""
        with self._lock:
            self._cut = True
            self._pending.clear()
        return time.monotonic()

    def restore(self) -> float:
        """Forward again; returns the monotonic time of the restore."""
        with self._lock:
            self._cut = False
        return time.monotonic()

    def start(self) -> LinkFaultRelay:
        """Start relaying (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="link-fault-relay", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop relaying and close the sockets."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._sock_a.close()
        self._sock_b.close()

    def __enter__(self) -> LinkFaultRelay:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            timeout = 0.02
            with self._lock:
                if self._pending:
                    timeout = min(timeout, max(0.0, self._pending[0][0] - time.monotonic()))
            try:
                ready, _, _ = select.select([self._sock_a, self._sock_b], [], [], timeout)
            except (OSError, ValueError):
                return
            for sock in ready:
                self._receive(sock)
            self._deliver_due()

    def _receive(self, sock: socket.socket) -> None:
        try:
            data, address = sock.recvfrom(65535)
        except OSError:
            return
        direction: Direction
        if sock is self._sock_a:
            self._peer_a = address
            direction = "a_to_b"
        else:
            self._peer_b = address
            direction = "b_to_a"
        with self._lock:
            faults, cut = self._faults, self._cut
        if cut:
            self.counters.cut[direction] += 1
            return
        payload = self._apply(data, direction, faults)
        if payload is None:
            return
        delay = faults.delay_s + (self._rng.uniform(0.0, faults.delay_jitter_s) if faults.delay_jitter_s else 0.0)
        if delay <= 0.0:
            self._send(direction, payload)
            return
        with self._lock:
            self._sequence += 1
            heapq.heappush(self._pending, (time.monotonic() + delay, self._sequence, direction, payload))

    def _apply(self, data: bytes, direction: Direction, faults: LinkFaults) -> bytes | None:
        rng = self._rng
        if faults.loss_probability and rng.random() < faults.loss_probability:
            self.counters.lost[direction] += 1
            return None
        drop = faults.drop_msg_ids_a_to_b if direction == "a_to_b" else faults.drop_msg_ids_b_to_a
        if drop:
            kept = []
            for frame in split_frames(data):
                if frame_msg_id(frame) in drop:
                    self.counters.dropped_frames[direction] += 1
                else:
                    kept.append(frame)
            data = b"".join(kept)
            if not data:
                return None
        if faults.corrupt_probability and rng.random() < faults.corrupt_probability:
            buf = bytearray(data)
            index = rng.randrange(len(buf))
            buf[index] ^= 1 << rng.randrange(8)
            data = bytes(buf)
            self.counters.corrupted[direction] += 1
        if faults.truncate_probability and len(data) > 1 and rng.random() < faults.truncate_probability:
            data = data[: rng.randrange(1, len(data))]
            self.counters.truncated[direction] += 1
        return data

    def _deliver_due(self) -> None:
        now = time.monotonic()
        due: list[tuple[Direction, bytes]] = []
        with self._lock:
            while self._pending and self._pending[0][0] <= now:
                _, _, direction, payload = heapq.heappop(self._pending)
                due.append((direction, payload))
        for direction, payload in due:
            self._send(direction, payload)

    def _send(self, direction: Direction, payload: bytes) -> None:
        if direction == "a_to_b":
            sock, peer = self._sock_b, self._peer_b
        else:
            sock, peer = self._sock_a, self._peer_a
        if peer is None:
            return  # the other side has not spoken yet: nowhere to send
        try:
            sock.sendto(payload, peer)
        except OSError:
            return
        self.counters.forwarded[direction] += 1

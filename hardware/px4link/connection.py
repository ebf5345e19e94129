"""A MAVLink 2 connection: a receive thread that parses and dispatches, our heartbeat out, the vehicle's heartbeat in,
TIMESYNC both ways, signing, and counters of everything that went wrong.

The receive thread never dies on bad input: pymavlink's parser runs in robust mode (bad bytes come back as BAD_DATA
and are counted), any other exception from parsing or from a subscriber is caught and counted, and on datagram links
the parser restarts at every datagram so a truncated frame cannot swallow the next one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymavlink.dialects.v20 import common as mavlink2

from px4link.config import LinkConfig
from px4link.link_url import parse_link_url
from px4link.signing import SigningCounters, SpecSigningMAVLink, apply_signing, signing_counters
from px4link.transports import Transport, open_transport
from runkit.logs import get_logger

_LOG = get_logger("px4link.connection")

MessageCallback = Callable[[Any], None]

SIGNING_TIMESTAMP_SAVE_PERIOD_S = 5.0
"""How often the outgoing signing timestamp is written to its file (when one is configured)."""


@dataclass(frozen=True)
class LinkCounters:
    """What the link has seen since start.

    Attributes:
        frames_received: MAVLink frames parsed and dispatched.
        bad_frames: frames or bytes the parser rejected (bad CRC, bad length, bad prefix, refused signature).
        parse_errors: exceptions raised by the parser (caught; the thread went on).
        callback_errors: exceptions raised by subscribers (caught, logged once per kind).
        bytes_received: raw bytes read from the link.
        frames_sent: frames written.
        write_failures: frames that could not be written (link down, no peer yet).
        link_drops: times the transport lost its device or connection (a serial hang-up, a closed TCP connection);
            it reopens by itself.
        signing: signing counters (all zero without signing).
    """

    frames_received: int
    bad_frames: int
    parse_errors: int
    callback_errors: int
    bytes_received: int
    frames_sent: int
    write_failures: int
    link_drops: int
    signing: SigningCounters


@dataclass(frozen=True)
class TimesyncEstimate:
    """The vehicle clock relative to ours from the last TIMESYNC round trip."""

    offset_ns: int
    """vehicle time minus our monotonic time, nanoseconds."""
    round_trip_s: float


class MavlinkConnection:
    """One MAVLink link to a vehicle (see the module docstring). Thread-safe; `start()` then `close()`."""

    def __init__(self, config: LinkConfig) -> None:
        self.config = config
        self.url = parse_link_url(config.url)
        self._transport: Transport | None = None
        self._rx = SpecSigningMAVLink(None, srcSystem=config.system_id, srcComponent=config.component_id)
        self._rx.robust_parsing = True
        self._tx = SpecSigningMAVLink(None, srcSystem=config.system_id, srcComponent=config.component_id)
        if config.signing is not None:
            apply_signing(self._rx, config.signing, sign_outgoing=False)
            apply_signing(self._tx, config.signing, sign_outgoing=True)
        self._send_lock = threading.Lock()
        self._subscribers: dict[str | None, tuple[MessageCallback, ...]] = {}
        self._subscribe_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._frames_received = 0
        self._bad_frames = 0
        self._parse_errors = 0
        self._callback_errors = 0
        self._bytes_received = 0
        self._frames_sent = 0
        self._last_vehicle_heartbeat_s: float | None = None
        self._last_vehicle_message_s: float | None = None
        self._vehicle_seen = threading.Event()
        self._vehicle_spoke = False
        self._timesync: TimesyncEstimate | None = None
        self._last_timesync_reply_s: float | None = None
        self._reported_errors: set[str] = set()

    # ---- life cycle -------------------------------------------------------------------------------------------

    def start(self) -> MavlinkConnection:
        """Open the link and start the receive and heartbeat threads; raises LinkError when the link cannot open."""
        if self._transport is not None:
            return self
        self._transport = open_transport(self.url)
        self._tx.file = self._transport
        self._stop.clear()
        for target, name in ((self._receive_loop, "px4link-rx"), (self._housekeeping_loop, "px4link-heartbeat")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        _LOG.info("link %s open as system %d component %d", self.url, self.config.system_id, self.config.component_id)
        return self

    def close(self) -> None:
        """Stop the threads and release the link (idempotent)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()
        self._save_signing_timestamp()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def __enter__(self) -> MavlinkConnection:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def transport(self) -> Transport | None:
        """The open transport (None before start)."""
        return self._transport

    # ---- sending ----------------------------------------------------------------------------------------------

    @property
    def mav(self) -> Any:
        """The pymavlink encoder (use its `*_encode` methods to build messages for `send`)."""
        return self._tx

    def send(self, message: Any) -> None:
        """Pack (sign, when configured) and write one message; never raises on a down link (counted instead)."""
        with self._send_lock:
            if self._transport is None:
                return
            try:
                self._tx.send(message)
            except Exception as exc:  # pymavlink raises on out-of-range fields: a bug here, not a link fault
                self._count_error("send", exc)
                return
            self._frames_sent += 1

    # ---- receiving --------------------------------------------------------------------------------------------

    def subscribe(self, callback: MessageCallback, msg_type: str | None = None) -> Callable[[], None]:
        """Call `callback(msg)` in the receive thread for each `msg_type` message (None: all); returns unsubscribe.

        Subscribers to all messages (state stores such as the telemetry) see each message before the subscribers to
        its type (handlers that react to it), so a reaction reads state that already includes the message."""
        with self._subscribe_lock:
            self._subscribers[msg_type] = (*self._subscribers.get(msg_type, ()), callback)

        def unsubscribe() -> None:
            with self._subscribe_lock:
                self._subscribers[msg_type] = tuple(c for c in self._subscribers.get(msg_type, ()) if c is not callback)

        return unsubscribe

    def feed(self, data: bytes, datagram: bool = True) -> int:
        """Parse and dispatch raw bytes as if they arrived on the link; returns the frames dispatched.

        This is the receive path itself (the fuzz tests drive it directly); it never raises.
        """
        self._bytes_received += len(data)
        if datagram:
            self._restart_parser()
        try:
            messages = self._rx.parse_buffer(data) or []
        except Exception as exc:  # robust mode should not raise; if it does, drop this input and go on
            self._parse_errors += 1
            self._count_error("parse", exc)
            self._restart_parser()
            return 0
        dispatched = 0
        for message in messages:
            if message.get_type() == "BAD_DATA":
                self._bad_frames += 1
                continue
            self._frames_received += 1
            dispatched += 1
            if self._dispatch(message):
                self._vehicle_spoke = True
        return dispatched

    def _restart_parser(self) -> None:
        self._rx.buf = bytearray()
        self._rx.buf_index = 0
        self._rx.expected_length = mavlink2.HEADER_LEN_V1 + 2
        self._rx.have_prefix_error = False

    def _dispatch(self, message: Any) -> bool:
        """Hand `message` to its subscribers; True when it came from the vehicle."""
        now = time.monotonic()
        msg_type = message.get_type()
        from_vehicle = (
            message.get_srcSystem() == self.config.vehicle_system_id
            and message.get_srcComponent() == self.config.vehicle_component_id
        )
        if from_vehicle:
            self._last_vehicle_message_s = now
            if msg_type == "HEARTBEAT":
                self._last_vehicle_heartbeat_s = now
                self._vehicle_seen.set()
            elif msg_type == "TIMESYNC":
                self._on_timesync(message, now)
        callbacks = self._subscribers.get(None, ()) + self._subscribers.get(msg_type, ())  # stores first
        for callback in callbacks:
            try:
                callback(message)
            except Exception as exc:
                self._callback_errors += 1
                self._count_error(f"callback {getattr(callback, '__qualname__', callback)}", exc)
        return from_vehicle

    def _count_error(self, where: str, exc: Exception) -> None:
        key = f"{where}:{type(exc).__name__}"
        if key not in self._reported_errors:
            self._reported_errors.add(key)
            _LOG.warning("%s raised %s: %s (further ones counted, not logged)", where, type(exc).__name__, exc)

    def _receive_loop(self) -> None:
        transport = self._transport
        assert transport is not None
        while not self._stop.is_set():
            try:
                data = transport.read(0.05)
            except (OSError, ValueError):
                if self._stop.is_set():
                    return
                time.sleep(0.05)
                continue
            if data:
                self._vehicle_spoke = False
                self.feed(data, datagram=transport.datagram)
                if self._vehicle_spoke:  # reply where the vehicle is, not wherever the last datagram came from
                    transport.confirm_sender()

    # ---- heartbeat and time sync ------------------------------------------------------------------------------

    def _save_signing_timestamp(self) -> None:
        try:
            self._tx.save_timestamp()
        except OSError as exc:  # a full or read-only disk must not stop the link; the clock still stamps frames
            self._count_error("signing timestamp file", exc)

    def _housekeeping_loop(self) -> None:
        next_heartbeat = time.monotonic()
        next_timesync = next_heartbeat + 0.1
        next_timestamp_save = next_heartbeat + SIGNING_TIMESTAMP_SAVE_PERIOD_S
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_timestamp_save:
                with self._send_lock:
                    self._save_signing_timestamp()
                next_timestamp_save = now + SIGNING_TIMESTAMP_SAVE_PERIOD_S
            if now >= next_heartbeat:
                self.send(
                    self._tx.heartbeat_encode(
                        mavlink2.MAV_TYPE_ONBOARD_CONTROLLER,
                        mavlink2.MAV_AUTOPILOT_INVALID,
                        0,
                        0,
                        mavlink2.MAV_STATE_ACTIVE,
                    )
                )
                next_heartbeat = max(next_heartbeat + self.config.heartbeat_period_s, now)
            if self.config.timesync_period_s > 0.0 and now >= next_timesync:
                if self._vehicle_seen.is_set():
                    self.send(self._tx.timesync_encode(0, time.monotonic_ns()))
                next_timesync = max(next_timesync + self.config.timesync_period_s, now)
            wake = min(next_heartbeat, next_timesync if self.config.timesync_period_s > 0.0 else next_heartbeat)
            self._stop.wait(max(0.0, wake - time.monotonic()))

    def _on_timesync(self, message: Any, now_s: float) -> None:
        if message.tc1 == 0:  # the vehicle asks: answer with our clock
            self.send(self._tx.timesync_encode(time.monotonic_ns(), message.ts1))
            return
        now_ns = time.monotonic_ns()
        round_trip_ns = now_ns - int(message.ts1)
        if 0 <= round_trip_ns < 10**9:  # our own request came back
            offset = int(message.tc1) - (now_ns + int(message.ts1)) // 2
            self._timesync = TimesyncEstimate(offset_ns=offset, round_trip_s=round_trip_ns * 1e-9)
            self._last_timesync_reply_s = now_s

    # ---- state ------------------------------------------------------------------------------------------------

    def wait_vehicle(self, timeout_s: float) -> bool:
        """Wait for the first vehicle heartbeat; True when it came."""
        return self._vehicle_seen.wait(timeout_s)

    def vehicle_heartbeat_age_s(self, now_s: float | None = None) -> float:
        """Seconds since the last vehicle heartbeat (inf before the first)."""
        last = self._last_vehicle_heartbeat_s
        return float("inf") if last is None else (time.monotonic() if now_s is None else now_s) - last

    def vehicle_message_age_s(self, now_s: float | None = None) -> float:
        """Seconds since anything last came from the vehicle (inf before the first)."""
        last = self._last_vehicle_message_s
        return float("inf") if last is None else (time.monotonic() if now_s is None else now_s) - last

    def uplink_age_s(self, now_s: float | None = None) -> float | None:
        """Seconds since the vehicle last answered one of our TIMESYNC requests: the proof that what we send reaches
        it (None before the first answer, or with our requests off)."""
        last = self._last_timesync_reply_s
        return None if last is None else (time.monotonic() if now_s is None else now_s) - last

    @property
    def timesync(self) -> TimesyncEstimate | None:
        """The last TIMESYNC estimate (None before the first round trip)."""
        return self._timesync

    def counters(self) -> LinkCounters:
        """A snapshot of the counters."""
        transport = self._transport
        return LinkCounters(
            frames_received=self._frames_received,
            bad_frames=self._bad_frames,
            parse_errors=self._parse_errors,
            callback_errors=self._callback_errors,
            bytes_received=self._bytes_received,
            frames_sent=self._frames_sent,
            write_failures=transport.write_failures if transport is not None else 0,
            link_drops=transport.drops if transport is not None else 0,
            signing=signing_counters(self._rx),
        )

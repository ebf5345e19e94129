"""Offboard control in the order PX4 requires: stream setpoints, and only after a second of streaming ask for OFFBOARD.

`OffboardStateMachine` is the order, with no I/O:

    IDLE --start--> PRIMING --(>= priming_s of setpoints sent)--> REQUESTING --(vehicle confirms OFFBOARD)--> ACTIVE
    PRIMING/REQUESTING/ACTIVE --link lost--> LINK_LOST (stream stops; the bridge no longer claims offboard)
    LINK_LOST --link back, vehicle last seen in OFFBOARD--> ACTIVE (a hold is streamed at once)
    REQUESTING --refused--> PRIMING;  ACTIVE --vehicle left OFFBOARD--> PRIMING;  any --stop--> IDLE
    PRIMING --heartbeat shows OFFBOARD--> ACTIVE (the vehicle is in OFFBOARD flying this stream: say so)

The vehicle confirms OFFBOARD by either piece of evidence it gives: a COMMAND_ACK that accepts the mode command
(PX4 acknowledges DO_SET_MODE after the switch), or a heartbeat whose custom mode is OFFBOARD. Either may be lost;
the state follows whichever arrives, and later heartbeats keep it true to the vehicle.

`SetpointStreamer` is the dedicated thread that sends one setpoint per period. It sleeps to absolute deadlines
(next = previous deadline + period), not `sleep(period)` after the work, so the period does not drift with the work
and its jitter stays near the scheduler's wake-up latency; it records every send time for the jitter figures. It ticks
whether or not it sends, and runs `after_tick(now)` after each tick's send: the bridge checks its failsafes there, so
one wake-up per period does both (on a small computer each wake-up costs more than the work it does).
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from px4link.connection import MavlinkConnection
from px4link.setpoints import PositionTargetNed, encode_target
from runkit.logs import get_logger

_LOG = get_logger("px4link.offboard")


class OffboardState(enum.Enum):
    """Where the offboard sequence stands."""

    IDLE = "idle"
    PRIMING = "priming"
    REQUESTING = "requesting"
    ACTIVE = "active"
    LINK_LOST = "link_lost"


_STREAMING = (OffboardState.PRIMING, OffboardState.REQUESTING, OffboardState.ACTIVE)


@dataclass(frozen=True)
class OffboardTransition:
    """One state change, with the time and why."""

    time_s: float
    before: OffboardState
    after: OffboardState
    reason: str


class OffboardOrderError(RuntimeError):
    """An offboard step was asked for out of the order PX4 requires."""


class OffboardStateMachine:
    """The offboard order (see the module docstring); thread-safe; times are monotonic seconds."""

    def __init__(self, priming_s: float = 1.0, rate_hz: float = 50.0) -> None:
        if priming_s < 1.0:
            raise ValueError(f"priming_s must be >= 1 s (PX4 needs a setpoint stream before OFFBOARD), got {priming_s}")
        self.priming_s = priming_s
        self.rate_hz = rate_hz
        self._lock = threading.Lock()
        self._state = OffboardState.IDLE
        self._first_setpoint_s: float | None = None
        self._setpoints_since_start = 0
        self.transitions: list[OffboardTransition] = []
        self._listeners: list[Callable[[OffboardTransition], None]] = []

    @property
    def state(self) -> OffboardState:
        """The current state."""
        return self._state

    @property
    def streaming(self) -> bool:
        """True while setpoints must be streamed."""
        return self._state in _STREAMING

    @property
    def claims_offboard(self) -> bool:
        """True only while the vehicle confirmed OFFBOARD and the link is up."""
        return self._state == OffboardState.ACTIVE

    def add_listener(self, callback: Callable[[OffboardTransition], None]) -> None:
        """Call `callback(transition)` on every state change (outside the lock)."""
        self._listeners.append(callback)

    def _go(self, after: OffboardState, now_s: float, reason: str) -> OffboardTransition | None:
        if after == self._state:
            return None
        transition = OffboardTransition(now_s, self._state, after, reason)
        self._state = after
        self.transitions.append(transition)
        return transition

    def _emit(self, transition: OffboardTransition | None) -> None:
        if transition is None:
            return
        _LOG.info("offboard %s -> %s: %s", transition.before.value, transition.after.value, transition.reason)
        for callback in self._listeners:
            callback(transition)

    def start(self, now_s: float) -> None:
        """Begin streaming (IDLE or LINK_LOST -> PRIMING)."""
        with self._lock:
            transition = None
            if self._state in (OffboardState.IDLE, OffboardState.LINK_LOST):
                self._first_setpoint_s = None
                self._setpoints_since_start = 0
                transition = self._go(OffboardState.PRIMING, now_s, "setpoint stream started")
        self._emit(transition)

    def on_setpoint_sent(self, now_s: float) -> None:
        """Count one streamed setpoint."""
        with self._lock:
            if self._state in _STREAMING:
                if self._first_setpoint_s is None:
                    self._first_setpoint_s = now_s
                self._setpoints_since_start += 1

    def primed(self, now_s: float) -> bool:
        """True when the stream has run long enough (time and count) for PX4 to accept OFFBOARD."""
        with self._lock:
            return self._primed(now_s)

    def _primed(self, now_s: float) -> bool:
        if self._state != OffboardState.PRIMING or self._first_setpoint_s is None:
            return False
        needed = int(self.priming_s * self.rate_hz * 0.9)
        return now_s - self._first_setpoint_s >= self.priming_s and self._setpoints_since_start >= needed

    def begin_request(self, now_s: float) -> None:
        """PRIMING -> REQUESTING; raises OffboardOrderError before the stream is primed."""
        with self._lock:
            if not self._primed(now_s):
                streamed = 0.0 if self._first_setpoint_s is None else now_s - self._first_setpoint_s
                raise OffboardOrderError(
                    f"OFFBOARD asked for in state {self._state.value} after {streamed:.2f} s and "
                    f"{self._setpoints_since_start} setpoints: PX4 needs >= {self.priming_s} s of setpoints first"
                )
            transition = self._go(OffboardState.REQUESTING, now_s, "stream primed; asking for OFFBOARD")
        self._emit(transition)

    def request_refused(self, now_s: float, reason: str) -> None:
        """REQUESTING -> PRIMING (keep streaming; the caller may ask again)."""
        with self._lock:
            transition = (
                self._go(OffboardState.PRIMING, now_s, reason) if self._state == OffboardState.REQUESTING else None
            )
        self._emit(transition)

    def mode_accepted(self, now_s: float) -> None:
        """The vehicle's COMMAND_ACK accepted the OFFBOARD request: REQUESTING -> ACTIVE."""
        with self._lock:
            transition = None
            if self._state == OffboardState.REQUESTING:
                transition = self._go(OffboardState.ACTIVE, now_s, "vehicle accepted OFFBOARD (COMMAND_ACK)")
        self._emit(transition)

    def resume_after_link_loss(self, now_s: float, reason: str) -> None:
        """LINK_LOST -> ACTIVE: the link is back and the vehicle was last seen in OFFBOARD; streaming resumes."""
        with self._lock:
            transition = (
                self._go(OffboardState.ACTIVE, now_s, reason) if self._state == OffboardState.LINK_LOST else None
            )
        self._emit(transition)

    def on_vehicle_mode(self, offboard: bool, now_s: float) -> None:
        """The heartbeat's mode: OFFBOARD confirms REQUESTING or PRIMING -> ACTIVE (the vehicle flies this stream);
        another mode takes ACTIVE -> PRIMING (the vehicle left OFFBOARD)."""
        with self._lock:
            transition = None
            if offboard and self._state in (OffboardState.REQUESTING, OffboardState.PRIMING):
                transition = self._go(OffboardState.ACTIVE, now_s, "vehicle reports OFFBOARD")
            elif not offboard and self._state == OffboardState.ACTIVE:
                transition = self._go(OffboardState.PRIMING, now_s, "vehicle left OFFBOARD")
        self._emit(transition)

    def link_lost(self, now_s: float) -> None:
        """Any streaming state -> LINK_LOST: stop streaming and stop claiming offboard."""
        with self._lock:
            transition = self._go(OffboardState.LINK_LOST, now_s, "link lost") if self._state in _STREAMING else None
        self._emit(transition)

    def stop(self, now_s: float, reason: str = "stopped") -> None:
        """Any state -> IDLE."""
        with self._lock:
            transition = self._go(OffboardState.IDLE, now_s, reason)
        self._emit(transition)


SetpointSource = Callable[[float], PositionTargetNed | None]
"""Returns the setpoint for a monotonic time (None: send nothing this tick)."""


class SetpointStreamer:
    """Sends one setpoint per period from a dedicated thread while `enabled()` says so (see the module docstring)."""

    def __init__(
        self,
        connection: MavlinkConnection,
        source: SetpointSource,
        rate_hz: float = 50.0,
        enabled: Callable[[], bool] = lambda: True,
        on_sent: Callable[[float], None] | None = None,
        after_tick: Callable[[float], None] | None = None,
        history: int = 100_000,
        realtime_priority: int = 0,
    ) -> None:
        if rate_hz < 20.0:
            raise ValueError(f"rate_hz must be >= 20 (PX4 offboard needs a steady stream), got {rate_hz}")
        self.connection = connection
        self.source = source
        self.period_s = 1.0 / rate_hz
        self.enabled = enabled
        self.on_sent = on_sent
        self.after_tick = after_tick
        self.after_tick_errors = 0
        self._sent_s: deque[float] = deque(maxlen=history)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._boot_s = time.monotonic()
        self.overruns = 0
        self.source_errors = 0
        self.thread_cpu_s = 0.0
        self.realtime_priority = realtime_priority
        self.realtime = False
        """True once the thread runs at SCHED_FIFO `realtime_priority` (False where it was refused, or 0 asked)."""
        self.started = False
        """True once the thread has started and tried for its priority."""

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="px4link-setpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _make_realtime(self) -> None:
        if self.realtime_priority <= 0 or not hasattr(os, "sched_setscheduler"):
            return
        try:  # Linux: pid 0 is the calling thread
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.realtime_priority))
            self.realtime = True
        except (OSError, PermissionError) as exc:
            _LOG.warning("SCHED_FIFO %d refused (%s): streaming at normal priority", self.realtime_priority, exc)

    def _run(self) -> None:
        self._make_realtime()
        self.started = True
        cpu_start = time.thread_time()
        link = self.connection.config
        period = self.period_s
        deadline = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < deadline:
                time.sleep(deadline - now)
                now = time.monotonic()
            if self.enabled():
                self._send_one(now, link.vehicle_system_id, link.vehicle_component_id)
            if self.after_tick is not None:
                self._run_after_tick(now)
            deadline += period
            if now - deadline > period:  # fell more than a period behind: skip the missed ticks
                self.overruns += 1
                deadline = now + period
            self.thread_cpu_s = time.thread_time() - cpu_start

    def _run_after_tick(self, now: float) -> None:
        try:
            self.after_tick(now)  # type: ignore[misc]
        except Exception as exc:  # never lose the stream to the hook
            self.after_tick_errors += 1
            if self.after_tick_errors == 1:
                _LOG.error("after_tick raised %s: %s (further ones counted)", type(exc).__name__, exc)

    def _send_one(self, now: float, target_system: int, target_component: int) -> None:
        try:
            target = self.source(now)
        except Exception as exc:
            self.source_errors += 1
            if self.source_errors == 1:
                _LOG.warning("setpoint source raised %s: %s (further ones counted)", type(exc).__name__, exc)
            return
        if target is None:
            return
        boot_ms = int((now - self._boot_s) * 1000.0)
        message = encode_target(self.connection.mav, target, boot_ms, target_system, target_component)
        self._sent_s.append(time.monotonic())
        self.connection.send(message)
        if self.on_sent is not None:
            self.on_sent(now)

    def send_times_s(self) -> NDArray[np.float64]:
        """Monotonic times of the setpoints sent (the last `history` of them)."""
        return np.array(self._sent_s, dtype=np.float64)

    def clear_history(self) -> None:
        """Forget the recorded send times."""
        self._sent_s.clear()


def period_jitter_ms(send_times_s: NDArray[np.float64], period_s: float) -> NDArray[np.float64]:
    """|period - nominal| of each consecutive pair of send times, milliseconds."""
    if send_times_s.shape[0] < 2:
        return np.zeros(0)
    return np.abs(np.diff(send_times_s) - period_s) * 1000.0

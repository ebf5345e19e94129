"""`Px4Bridge`: one object that flies a PX4 vehicle from a companion computer (no ROS imports; a node wraps it).

Threads: the link's receive and heartbeat threads, the setpoint streamer (which also runs the failsafe monitor
after each tick's send, at the stream rate), and an action worker that sends the commands failsafes call for (so a
slow ACK never delays failsafe detection). Every method is safe to call from any thread. Events (failsafes, offboard
state changes, failsafe actions) go to listeners added with `add_listener`, and the last few are kept
(`recent_events`).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymavlink.dialects.v20 import common as mavlink2

from px4link import px4_modes
from px4link.commands import CommandError, CommandResult, CommandSender, CommandTimeout
from px4link.config import BridgeConfig
from px4link.connection import LinkCounters, MavlinkConnection
from px4link.failsafes import FailsafeEvent, FailsafeInputs, FailsafeKind, FailsafeMonitor
from px4link.offboard import OffboardState, OffboardStateMachine, OffboardTransition, SetpointStreamer
from px4link.params import ParamClient, ParamError, ParamValue
from px4link.preflight import PREFLIGHT_PARAMS, PreflightFailed, PreflightReport, run_preflight
from px4link.setpoints import PositionTargetNed, TrajectoryLike, hold_target, target_from_derivatives
from px4link.telemetry import TelemetrySnapshot, TelemetryStore, parse_status
from quadsim import frames
from quadsim.aero import AeroModel
from quadsim.vehicle import VehicleParams
from runkit.logs import get_logger

_LOG = get_logger("px4link.bridge")


MAX_QUEUED_PLANS = 8
"""Plans that may wait for their start at once (a replanner has one or two in flight)."""


@dataclass(frozen=True)
class ActionEvent:
    """A command the bridge sent on its own (a failsafe's hold or land) and how it went."""

    action: str
    ok: bool
    detail: str
    time_s: float
    cause: FailsafeKind | None


BridgeEvent = FailsafeEvent | OffboardTransition | ActionEvent
BridgeListener = Callable[[BridgeEvent], None]


class OffboardError(RuntimeError):
    """Offboard could not be started (no position to hold, mode refused, never confirmed)."""


@dataclass(frozen=True)
class BridgeCounters:
    """Counters a person looks at when something is off."""

    link: LinkCounters
    command_retries: int
    command_timeouts: int
    command_rejections: int
    param_retries: int
    setpoints_sent: int
    streamer_overruns: int
    failsafe_events: int
    listener_errors: int


class Px4Bridge:
    """The bridge (see the module docstring). `start()`, fly, `stop()`; or use it as a context manager."""

    def __init__(self, config: BridgeConfig | None = None) -> None:
        self.config = config or BridgeConfig()
        link = self.config.link
        self.connection = MavlinkConnection(link)
        self.telemetry_store = TelemetryStore(link.vehicle_system_id, link.vehicle_component_id)
        self.connection.subscribe(self.telemetry_store.update)
        self.connection.subscribe(self._on_heartbeat, "HEARTBEAT")
        self.commands = CommandSender(self.connection, self.config.commands)
        self.params = ParamClient(self.connection, self.config.commands)
        offboard = self.config.offboard
        self.offboard = OffboardStateMachine(offboard.priming_s, offboard.rate_hz)
        self._aero = AeroModel(VehicleParams()) if offboard.drag_feedforward else None
        self.offboard.add_listener(self._emit)
        self.streamer = SetpointStreamer(
            self.connection,
            self._setpoint,
            offboard.rate_hz,
            enabled=lambda: self.offboard.streaming,
            on_sent=self._on_setpoint_sent,
            after_tick=self._check_failsafes,
            realtime_priority=offboard.realtime_priority,
        )
        self.monitor = FailsafeMonitor(self.config.failsafes)
        self._plan_lock = threading.Lock()
        self._trajectory: TrajectoryLike | None = None
        self._trajectory_start_s = 0.0
        self._trajectory_end_s: float | None = None
        self._queued: list[tuple[TrajectoryLike, float]] = []  # plans that take over at their start, in order
        self._hold: PositionTargetNed | None = None
        self._last_safe: PositionTargetNed | None = None
        self._trajectory_fault: str | None = None
        self._last_setpoint_enu: tuple[float, float, float] | None = None
        self._setpoints_sent = 0
        self._listeners: list[BridgeListener] = []
        self._recent: deque[BridgeEvent] = deque(maxlen=200)
        self._failsafe_events = 0
        self._lost_in_flight = False
        self._listener_errors = 0
        self._actions: queue.Queue[tuple[str, FailsafeKind | None, float] | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._streams_thread: threading.Thread | None = None
        self._heard_vehicle = False

    # ---- life cycle -------------------------------------------------------------------------------------------

    def start(self) -> Px4Bridge:
        """Open the link and start the threads; raises LinkError when the link cannot open."""
        self.connection.start()
        self._stop.clear()
        thread = threading.Thread(target=self._act, name="px4link-actions", daemon=True)
        thread.start()
        self._threads.append(thread)
        self.streamer.start()
        return self

    def stop(self) -> None:
        """Stop streaming and every thread, and close the link (idempotent)."""
        self.offboard.stop(time.monotonic(), "bridge stopped")
        self._stop.set()
        self._actions.put(None)
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()
        self.streamer.stop()
        self.connection.close()

    def __enter__(self) -> Px4Bridge:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def wait_vehicle(self, timeout_s: float = 5.0) -> bool:
        """Wait for the vehicle's first heartbeat."""
        return self.connection.wait_vehicle(timeout_s)

    # ---- events -----------------------------------------------------------------------------------------------

    def add_listener(self, callback: BridgeListener) -> None:
        """Call `callback(event)` for each failsafe, offboard state change and failsafe action (bridge threads)."""
        self._listeners.append(callback)

    def recent_events(self) -> list[BridgeEvent]:
        """The last events (up to 200), oldest first."""
        return list(self._recent)

    def _emit(self, event: BridgeEvent) -> None:
        self._recent.append(event)
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception as exc:
                self._listener_errors += 1
                _LOG.warning("bridge listener raised %s: %s", type(exc).__name__, exc)

    # ---- telemetry and checks ---------------------------------------------------------------------------------

    def telemetry(self) -> TelemetrySnapshot:
        """The latest telemetry (ENU/FLU)."""
        return self.telemetry_store.snapshot()

    def preflight(self) -> PreflightReport:
        """Run the pre-flight check (reads parameters: takes up to a few seconds on a bad link)."""
        config = self.config.preflight

        def read_now(name: str) -> ParamValue | ParamError:
            try:
                return self.params.read(name, config.param_timeout_s, config.param_retries)
            except ParamError as exc:
                return exc

        params = {name: read_now(name) for name in PREFLIGHT_PARAMS}  # first: the telemetry is judged after

        def read(name: str) -> ParamValue:
            value = params[name] if name in params else read_now(name)
            if isinstance(value, ParamError):
                raise value
            return value

        heartbeat_age = self.connection.vehicle_heartbeat_age_s()  # inf: never heard, whatever else came
        link_age = min(heartbeat_age, self.connection.vehicle_message_age_s()) if heartbeat_age < math.inf else math.inf
        return run_preflight(self.telemetry(), link_age, read, config, self.config.failsafes)

    def counters(self) -> BridgeCounters:
        """A snapshot of every counter."""
        return BridgeCounters(
            link=self.connection.counters(),
            command_retries=self.commands.retries_sent,
            command_timeouts=self.commands.timeouts,
            command_rejections=self.commands.rejections,
            param_retries=self.params.retries_sent,
            setpoints_sent=self._setpoints_sent,
            streamer_overruns=self.streamer.overruns,
            failsafe_events=self._failsafe_events,
            listener_errors=self._listener_errors,
        )

    # ---- commands ---------------------------------------------------------------------------------------------

    def arm(self, force: bool = False) -> CommandResult:
        """Arm after a passing pre-flight check (raises PreflightFailed with the reasons); `force` skips both checks."""
        if not force:
            report = self.preflight()
            if not report.ok:
                _LOG.warning("arming refused:\n%s", report.summary())
                raise PreflightFailed(report)
        return self.commands.arm(force=force)

    def disarm(self, force: bool = False) -> CommandResult:
        """Disarm (`force` also in flight: the vehicle falls)."""
        self.offboard.stop(time.monotonic(), "disarm")
        return self.commands.disarm(force=force)

    def takeoff(self, altitude_m: float | None = None) -> CommandResult:
        """Take off to `altitude_m` above home (default: config.takeoff_altitude_m) in PX4's takeoff mode.

        Sets MIS_TAKEOFF_ALT, then sends MAV_CMD_NAV_TAKEOFF without an altitude (PX4 reads one as AMSL).
        """
        altitude = self.config.takeoff_altitude_m if altitude_m is None else float(altitude_m)
        self.params.write("MIS_TAKEOFF_ALT", altitude, param_type=mavlink2.MAV_PARAM_TYPE_REAL32)
        return self.commands.takeoff()

    def land(self) -> CommandResult:
        """Land where the vehicle is; the setpoint stream stops once PX4 accepted."""
        result = self.commands.land()
        self.offboard.stop(time.monotonic(), "land commanded")
        return result

    def hold(self) -> CommandResult:
        """Hold position (AUTO.LOITER); the setpoint stream stops once PX4 accepted."""
        result = self.commands.hold()
        self.offboard.stop(time.monotonic(), "hold commanded")
        return result

    def set_mode(self, mode: px4_modes.Px4Mode | str) -> CommandResult:
        """Switch to a PX4 mode by value or name (OFFBOARD: use start_offboard, which primes the stream first)."""
        target = px4_modes.mode_by_name(mode) if isinstance(mode, str) else mode
        if target == px4_modes.OFFBOARD:
            raise OffboardError("use start_offboard(): PX4 needs a setpoint stream before OFFBOARD")
        return self.commands.set_mode(target)

    # ---- offboard ---------------------------------------------------------------------------------------------

    def follow(self, trajectory: TrajectoryLike, start_monotonic_s: float) -> None:
        """Follow `trajectory` (ENU, `derivatives(t_s)`), its t = 0 at `start_monotonic_s` (time.monotonic()).

        While a trajectory is flown, one that starts in the future waits and takes over at its start (a
        replanner plans it from the reference there, so the setpoints do not jump); it replaces the waiting
        ones that start later. With none flown it is taken at once, and its first point held until it starts.
        """
        probe = np.asarray(trajectory.derivatives(0.0))
        if probe.ndim != 2 or probe.shape[0] < 3 or probe.shape[1] != 4:
            raise ValueError(f"trajectory.derivatives(t) must return (>=3) x 4, got shape {probe.shape}")
        duration = getattr(trajectory, "duration_s", None)
        start = float(start_monotonic_s)
        with self._plan_lock:
            self._trajectory_end_s = None if duration is None else start + float(duration)
            self._trajectory_fault = None
            self._promote_due(time.monotonic())
            if self._trajectory is not None and start > time.monotonic():
                waiting = [entry for entry in self._queued if entry[1] < start]
                self._queued = [*waiting[-(MAX_QUEUED_PLANS - 1) :], (trajectory, start)]
            else:
                self._queued = []
                self._trajectory = trajectory
                self._trajectory_start_s = start
        self.monitor.reset(FailsafeKind.TRAJECTORY_STALE)
        self.monitor.reset(FailsafeKind.TRAJECTORY_FAULT)
        self.monitor.reset(FailsafeKind.GEOFENCE_SETPOINT)

    def hold_here(self) -> None:
        """Stream a hold at the vehicle's current position and heading (drops the trajectory)."""
        snapshot = self.telemetry()
        if snapshot.local_position is None:
            raise OffboardError("no LOCAL_POSITION_NED from the vehicle: no position to hold")
        yaw = snapshot.attitude.yaw_enu_rad if snapshot.attitude is not None else 0.0
        with self._plan_lock:
            self._trajectory = None
            self._trajectory_end_s = None
            self._queued = []
            self._hold = hold_target(snapshot.local_position.position_enu_m, yaw)

    def start_offboard(self, timeout_s: float = 5.0) -> None:
        """Stream setpoints for `priming_s`, then ask for OFFBOARD and wait until the vehicle confirms it.

        The vehicle confirms by an accepting COMMAND_ACK or by a heartbeat that shows OFFBOARD, whichever comes: with
        the ACKs lost (the command is retried) a heartbeat within `mode_confirm_timeout_s` still confirms. Without a
        trajectory (follow) the stream holds the current position. Raises OffboardError, or CommandRejected when the
        vehicle refused; on either the stream goes on (PRIMING) and a later heartbeat in OFFBOARD is still believed.
        """
        with self._plan_lock:
            need_hold = self._trajectory is None
        if need_hold:
            self.hold_here()
        now = time.monotonic()
        self.offboard.start(now)
        deadline = now + self.config.offboard.priming_s + timeout_s
        while not self.offboard.primed(time.monotonic()):
            if self.offboard.state == OffboardState.ACTIVE:
                return  # the vehicle already flies this stream in OFFBOARD
            if time.monotonic() > deadline or not self.offboard.streaming:
                raise OffboardError(f"setpoint stream did not prime (state {self.offboard.state.value})")
            time.sleep(0.01)
        self.offboard.begin_request(time.monotonic())
        no_ack: CommandTimeout | None = None
        try:
            self.commands.set_mode(px4_modes.OFFBOARD)
            self.offboard.mode_accepted(time.monotonic())
        except CommandTimeout as exc:  # the ACKs may be what was lost: the heartbeat decides
            no_ack = exc
        except CommandError as exc:
            self.offboard.request_refused(time.monotonic(), str(exc))
            raise
        confirm_by = time.monotonic() + self.config.offboard.mode_confirm_timeout_s
        while self.offboard.state == OffboardState.REQUESTING and time.monotonic() < confirm_by:
            time.sleep(0.01)
        if self.offboard.state != OffboardState.ACTIVE:
            why = f"no ACK ({no_ack}) and" if no_ack is not None else "the vehicle accepted it, but then"
            self.offboard.request_refused(time.monotonic(), f"OFFBOARD not confirmed: {why} no heartbeat showed it")
            raise OffboardError(
                f"OFFBOARD not confirmed: {why} no heartbeat showed it within "
                f"{self.config.offboard.mode_confirm_timeout_s} s; the stream goes on, and a later heartbeat in "
                "OFFBOARD confirms it"
            )

    def stop_offboard(self) -> None:
        """Stop streaming (PX4 then applies its offboard-loss action after COM_OF_LOSS_T: prefer hold() or land())."""
        self.offboard.stop(time.monotonic(), "stop_offboard")

    # ---- internals --------------------------------------------------------------------------------------------

    def _on_heartbeat(self, msg: Any) -> None:
        link = self.config.link
        if msg.get_srcSystem() != link.vehicle_system_id or msg.get_srcComponent() != link.vehicle_component_id:
            return
        status = parse_status(msg)
        self.offboard.on_vehicle_mode(status.mode == px4_modes.OFFBOARD, time.monotonic())

    def _on_setpoint_sent(self, now_s: float) -> None:
        self._setpoints_sent += 1
        self.offboard.on_setpoint_sent(now_s)

    def _setpoint(self, now_s: float) -> PositionTargetNed | None:
        with self._plan_lock:
            self._promote_due(now_s)
            trajectory, start, hold = self._trajectory, self._trajectory_start_s, self._hold
        if trajectory is None:
            target = hold
        else:
            try:
                target = target_from_derivatives(
                    trajectory.derivatives(now_s - start), self.config.offboard.send_yaw_rate, self._aero
                )
            except Exception as exc:  # a plan that raises or goes non-finite: hold, and the monitor says why
                target = self._trajectory_failed(trajectory, f"{type(exc).__name__}: {exc}")
        if target is None:
            return None
        position = target.position_enu_m
        self._last_setpoint_enu = position
        fence = self.config.failsafes.geofence
        if fence is not None and not fence.contains(position):
            return self._last_safe  # never command a point outside the fence; the monitor calls for a hold
        self._last_safe = target
        return target

    def _promote_due(self, now_s: float) -> None:
        """The newest waiting plan whose start has come takes over (call with the plan lock held)."""
        while self._queued and self._queued[0][1] <= now_s:
            self._trajectory, self._trajectory_start_s = self._queued.pop(0)

    def _trajectory_failed(self, trajectory: TrajectoryLike, reason: str) -> PositionTargetNed | None:
        """Drop a trajectory that cannot be evaluated; hold at the last setpoint sent, at rest."""
        last = self._last_safe
        hold = None if last is None else hold_target(last.position_enu_m, frames.yaw_ned_to_enu(last.yaw_ned_rad))
        with self._plan_lock:
            if self._trajectory is trajectory:
                self._trajectory, self._trajectory_end_s, self._hold = None, None, hold
                self._queued = []
                self._trajectory_fault = reason
        _LOG.error("trajectory dropped: %s; holding at the last setpoint", reason)
        return hold

    def _inputs(self, now_s: float) -> FailsafeInputs:
        snapshot = self.telemetry()
        with self._plan_lock:
            end, fault = self._trajectory_end_s, self._trajectory_fault
        streaming = self.offboard.streaming
        return FailsafeInputs(
            now_s=now_s,
            link_age_s=self.connection.vehicle_message_age_s(now_s),
            uplink_age_s=self.connection.uplink_age_s(now_s),
            position_enu_m=snapshot.local_position.position_enu_m if snapshot.local_position is not None else None,
            setpoint_enu_m=self._last_setpoint_enu if streaming else None,
            battery_fraction=snapshot.battery.remaining_fraction if snapshot.battery is not None else None,
            trajectory_end_age_s=None if end is None else now_s - end,
            trajectory_fault=fault,
            offboard=streaming,
            armed=bool(snapshot.status is not None and snapshot.status.armed),
        )

    def _check_failsafes(self, now_s: float) -> None:
        """One failsafe check (the streamer's after-tick hook: every period, streaming or not)."""
        if self._stop.is_set():
            return
        if not self._heard_vehicle and self.connection.vehicle_heartbeat_age_s(now_s) < 5.0:
            self._heard_vehicle = True
            self._queue_streams_off(now_s)
        for event in self.monitor.evaluate(self._inputs(now_s)):
            self._handle(event)
            if event.kind == FailsafeKind.LINK_RESTORED:
                self._queue_streams_off(now_s)  # a vehicle that rebooted streams everything again

    def _handle(self, event: FailsafeEvent) -> None:
        self._failsafe_events += 1
        _LOG.warning("failsafe %s: %s -> %s", event.kind.value, event.detail, event.action)
        act = event.action in ("hold", "land")
        if event.kind == FailsafeKind.LINK_LOST:
            snapshot = self.telemetry()
            armed = snapshot.status is not None and snapshot.status.armed
            on_ground = snapshot.landed is not None and snapshot.landed.on_ground
            self._lost_in_flight = self.offboard.streaming or (armed and not on_ground)
            self.offboard.link_lost(event.time_s)
        elif event.kind == FailsafeKind.LINK_RESTORED:
            act = act and self._lost_in_flight  # a vehicle idle on the ground is left alone
        self._emit(event)
        if act:
            self._actions.put((event.action, event.kind, event.time_s))

    def _queue_streams_off(self, now_s: float) -> None:
        """Turn the unread streams off in a thread of its own (a slow ACK must never delay a failsafe action)."""
        running = self._streams_thread is not None and self._streams_thread.is_alive()
        if self.config.streams_off and not running:
            self._streams_thread = threading.Thread(target=self._streams_off, name="px4link-streams", daemon=True)
            self._streams_thread.start()

    def _streams_off(self) -> None:
        """Ask PX4 to stop the streams the bridge does not read on this link (best effort: a refusal is logged)."""
        for message_id in self.config.streams_off:
            if self._stop.is_set():
                return
            try:
                self.commands.send_long(
                    mavlink2.MAV_CMD_SET_MESSAGE_INTERVAL, (float(message_id), -1.0), what=f"stream {message_id} off"
                )
            except CommandError as exc:
                _LOG.warning("PX4 kept streaming message %d on this link: %s", message_id, exc)
        _LOG.info("asked PX4 to stop streams %s on this link", list(self.config.streams_off))

    def _vehicle_recovering_on_its_own(self, since_s: float) -> str:
        """Why the link-restore action must not be sent ("" if it must): PX4 already lands, returns, or is disarmed.

        Judged on the first heartbeat sent after the link came back (waited for up to
        `restore_mode_wait_s`): an older one still shows the mode from before the loss.
        """
        deadline = since_s + self.config.failsafes.restore_mode_wait_s
        while not self._stop.is_set():
            now = time.monotonic()
            if self.connection.vehicle_heartbeat_age_s(now) < now - since_s or now >= deadline:
                break
            self._stop.wait(0.005)
        now = time.monotonic()
        if self.connection.vehicle_heartbeat_age_s(now) >= now - since_s:
            return ""  # no heartbeat since the return: act
        status = self.telemetry().status
        if status is None:
            return ""
        if not status.armed:
            return "the vehicle is disarmed"
        if status.mode in (px4_modes.LAND, px4_modes.RTL):
            return f"the vehicle is already in {status.mode_name} (its offboard-loss action)"
        return ""

    def _resume_hold_stream(self) -> bool:
        """Link back, vehicle last seen armed in OFFBOARD: stream a hold at its position now (True); no mode command.

        PX4 stays in OFFBOARD while setpoints arrive, so the next streamer tick holds it; a mode command instead could
        land just after PX4 began its own offboard-loss landing or return and override it. If PX4 already left
        OFFBOARD during the cut, the streamed hold is ignored by PX4 and the next heartbeat ends the bridge's claim.
        """
        snapshot = self.telemetry()
        status = snapshot.status
        if status is None or not status.armed or status.mode != px4_modes.OFFBOARD or snapshot.local_position is None:
            return False
        self.hold_here()
        now = time.monotonic()
        self.offboard.resume_after_link_loss(now, "link back; vehicle last seen in OFFBOARD: streaming a hold")
        self._emit(
            ActionEvent(
                "hold",
                True,
                "hold streamed in OFFBOARD at the vehicle's position (no mode command: PX4's own landing or return is"
                " never overridden)",
                now,
                FailsafeKind.LINK_RESTORED,
            )
        )
        return True

    def _request_heartbeat(self) -> None:
        """Ask for a heartbeat now (MAV_CMD_REQUEST_MESSAGE), so the vehicle's mode is known within a round trip."""
        try:
            self.commands.send_long(
                mavlink2.MAV_CMD_REQUEST_MESSAGE,
                (float(mavlink2.MAVLINK_MSG_ID_HEARTBEAT),),
                what="heartbeat now",
                timeout_s=0.2,
                retries=1,
            )
        except CommandError as exc:
            _LOG.info("no heartbeat on request (%s): waiting for the periodic one", exc)

    def _act(self) -> None:
        while True:
            item = self._actions.get()
            if item is None or self._stop.is_set():
                return
            action, cause, since_s = item
            if cause == FailsafeKind.LINK_RESTORED and action == "hold" and self._resume_hold_stream():
                self._request_heartbeat()  # the mode now, not the 1 Hz heartbeat's: the state follows it
                continue
            if cause == FailsafeKind.LINK_RESTORED:
                self._request_heartbeat()
                recovering = self._vehicle_recovering_on_its_own(since_s)
                if recovering:
                    self.offboard.stop(time.monotonic(), f"failsafe {cause.value}: {action} not sent")
                    self._emit(ActionEvent(action, True, f"not sent: {recovering}", time.monotonic(), cause))
                    continue
            try:
                result = self.commands.land() if action == "land" else self.commands.hold()
                ok, detail = True, f"{action} accepted after {result.attempts} attempt(s)"
            except CommandError as exc:
                ok, detail = False, str(exc)
            self.offboard.stop(time.monotonic(), f"failsafe {cause.value if cause else ''}: {action}")
            self._emit(ActionEvent(action, ok, detail, time.monotonic(), cause))

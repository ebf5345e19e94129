"""`SimulatedPx4`: a MAVLink autopilot process that behaves as PX4 documents, flying the MuJoCo quadrotor.

One background thread does everything, in order, each control period: read the datagrams that came
in (signature checks, commands, parameters, setpoints), step the commander and the physics up to the
wall clock (or one period at a time with `realtime=False`), send the telemetry that is due. Answers
(COMMAND_ACK, PARAM_VALUE, STATUSTEXT) go out as soon as the request is handled.

Usage::

    v = SimulatedPx4(Px4SimConfig(url="udpout:127.0.0.1:14540"))
    v.start()
    ...
    print(v.snapshot().mode.name)
    v.stop()
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pymavlink.dialects.v20 import common as mavlink

from px4sim import px4_custom_mode as px4_modes
from px4sim.battery import Battery, BatteryConfig
from px4sim.commander import (
    ACCEPTED,
    CRITICAL,
    DENIED,
    FORCE_MAGIC,
    INFO,
    UNSUPPORTED,
    WARNING,
    Commander,
)
from px4sim.flight import FlightModel
from px4sim.flight_log import FlightLog
from px4sim.params import ParamError, ParamStore, ParamTypeMismatchError
from px4sim.px4_custom_mode import Px4Mode
from px4sim.px4_frames import (
    enu_to_ned,
    flu_to_frd,
    heading_enu,
    quat_ned_frd_of_rotation,
    rotation_enu_flu_to_ned_frd,
    yaw_enu_to_ned,
)
from px4sim.setpoints import MAV_FRAME_BODY_NED, MAV_FRAME_LOCAL_NED, setpoint_from_body_ned, setpoint_from_local_ned
from px4sim.signing import SignatureCounters, SignatureVerifier, signing_timestamp_now
from px4sim.telemetry import GeoOrigin, TelemetryStreams, VehicleView
from px4sim.transport import UdpLink
from runkit.logs import get_logger

_log = get_logger("px4sim")
_DUPLICATE_WINDOW_S = 3.0
_MAX_CATCH_UP_S = 0.25
_ULOG_DECIMATION = 5  # log every 5th control period (50 Hz at 250 Hz)


@dataclass(frozen=True)
class Px4SimConfig:
    """The simulated vehicle.

    Attributes:
        url: where to talk (`udpout:HOST:PORT` sends there, `udpin:HOST:PORT` listens there).
        system_id: MAVLink system id of the vehicle.
        component_id: MAVLink component id of the autopilot.
        signing_key: 32-byte MAVLink 2 signing key; outgoing frames are signed when set.
        require_signing: refuse unsigned or wrongly signed incoming frames (needs `signing_key`).
        params: PX4 parameters to set at boot, by name (e.g. {"COM_OF_LOSS_T": 0.5}).
        realtime: step the physics from the wall clock; False steps one period per loop, as fast as it goes.
        home_enu: where the vehicle boots (ENU metres in the local frame); its home position.
        ulog_dir: write a ULog per arm-to-disarm cycle here (None: no logs).
        default_mode: mode at boot, by PX4 name.
        control_rate_hz: rate of the controller and physics steps.
        stream_rate_scale: multiplies every telemetry rate but HEARTBEAT's (1: PX4's onboard-link rates).
        battery: the battery model.
        origin: the local frame's origin on the Earth (for global positions).
        keep_params_on_reboot: parameters survive a reboot (as PX4's are saved); False restores the boot set.
    """

    url: str = "udpout:127.0.0.1:14540"
    system_id: int = 1
    component_id: int = 1
    signing_key: bytes | None = None
    require_signing: bool = False
    params: dict[str, float] = field(default_factory=dict)
    realtime: bool = True
    home_enu: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ulog_dir: Path | None = None
    default_mode: str = "AUTO.LOITER"
    control_rate_hz: float = 250.0
    stream_rate_scale: float = 1.0
    battery: BatteryConfig = field(default_factory=BatteryConfig)
    origin: GeoOrigin = field(default_factory=GeoOrigin)
    keep_params_on_reboot: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.system_id <= 255 or not 1 <= self.component_id <= 255:
            raise ValueError(f"system_id and component_id must be in 1..255, got {self.system_id}, {self.component_id}")
        if self.signing_key is not None and len(self.signing_key) != 32:
            raise ValueError(f"signing_key must be 32 bytes, got {len(self.signing_key)}")
        if self.require_signing and self.signing_key is None:
            raise ValueError("require_signing needs a signing_key")
        if not self.control_rate_hz > 0.0 or not self.stream_rate_scale > 0.0:
            raise ValueError("control_rate_hz and stream_rate_scale must be > 0")
        px4_modes.mode_by_name(self.default_mode)


@dataclass
class Px4SimCounters:
    """What the vehicle has seen and done since it started (kept across reboots)."""

    frames_received: int = 0
    frames_sent: int = 0
    parse_errors: int = 0
    commands: int = 0
    duplicate_commands: int = 0
    setpoints: int = 0
    param_sets_refused: int = 0
    rejected_unsigned: int = 0
    rejected_bad_signature: int = 0
    rejected_replayed: int = 0
    reboots: int = 0
    ulogs_written: int = 0


@dataclass(frozen=True)
class Px4Snapshot:
    """One consistent look at the vehicle (ENU world, project frames)."""

    time_s: float
    armed: bool
    mode: Px4Mode
    landed: bool
    rebooting: bool
    position_enu: NDArray[np.float64]
    velocity_enu: NDArray[np.float64]
    yaw_enu_rad: float
    failsafes: frozenset[str]
    battery_remaining: float
    offboard_signal_ok: bool
    counters: Px4SimCounters
    statustexts: tuple[str, ...]


class _Writer:
    """The file-like object pymavlink writes packed frames to."""

    def __init__(self, owner: SimulatedPx4) -> None:
        self.owner = owner

    def write(self, data: bytes) -> None:
        self.owner._link.send(bytes(data))
        self.owner.counters.frames_sent += 1


class SimulatedPx4:
    """See the module docstring."""

    def __init__(self, config: Px4SimConfig | None = None) -> None:
        self.config = config or Px4SimConfig()
        cfg = self.config
        self.counters = Px4SimCounters()
        self.params = ParamStore(cfg.params)
        self.dt_s = 1.0 / cfg.control_rate_hz
        self.home_enu = np.asarray(cfg.home_enu, dtype=np.float64)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._link = UdpLink(cfg.url)
        self._statustexts: list[str] = []
        self._reboot_until: float | None = None
        self._reboot_at: float | None = None
        self._ulog: FlightLog | None = None
        self._ulog_samples = 0
        self._after_ack: list[int] = []
        self.flight = FlightModel()
        self.battery = Battery(cfg.battery)
        self.commander = Commander(
            self.params, self.flight, self.battery, self.home_enu, px4_modes.mode_by_name(cfg.default_mode), self._emit
        )
        self._boot()

    # ---- life cycle -----------------------------------------------------------------------------

    def _boot(self) -> None:
        cfg = self.config
        self.mav = mavlink.MAVLink(_Writer(self), srcSystem=cfg.system_id, srcComponent=cfg.component_id)
        self._rx = mavlink.MAVLink(None, srcSystem=cfg.system_id, srcComponent=cfg.component_id)
        self._rx.robust_parsing = True
        self._verifier = SignatureVerifier(cfg.signing_key) if cfg.signing_key is not None else None
        if cfg.signing_key is not None:
            self.mav.signing.secret_key = cfg.signing_key
            self.mav.signing.sign_outgoing = True
            self.mav.signing.timestamp = signing_timestamp_now()
        self.streams = TelemetryStreams(self.mav, cfg.origin, cfg.stream_rate_scale)
        self._time_s = 0.0
        self._boot_wall = time.monotonic()
        self._recent_commands: dict[tuple[int, int, int], tuple[tuple[float, ...], int, float]] = {}
        self.commander.reset(0.0)

    @property
    def local_port(self) -> int:
        """The UDP port the vehicle's socket is bound to."""
        return self._link.local_port

    def start(self) -> None:
        """Run the vehicle in a background thread."""
        if self._thread is not None:
            raise RuntimeError("SimulatedPx4 already started")
        self._boot_wall = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="px4sim", daemon=True)
        self._thread.start()
        _log.info("simulated PX4 (system %d) on %s", self.config.system_id, self.config.url)

    def stop(self) -> None:
        """Stop the thread and close the link (a ULog being written is closed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        with self._lock:
            self._close_ulog()
        self._link.close()

    def __enter__(self) -> SimulatedPx4:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reboot(self, duration_s: float = 1.0) -> None:
        """Go silent for `duration_s` (nothing sent, everything received dropped), then boot again:
        disarmed, on the ground at home, in the default mode, parameters kept (see `keep_params_on_reboot`)."""
        with self._lock:
            self._reboot_until = time.monotonic() + max(duration_s, 0.0)
            self._close_ulog()
            self.counters.reboots += 1
            _log.info("rebooting for %.1f s", duration_s)

    def snapshot(self) -> Px4Snapshot:
        """The vehicle now."""
        with self._lock:
            c = self.commander
            state = self.flight.state()
            return Px4Snapshot(
                time_s=self._time_s,
                armed=c.armed,
                mode=c.mode,
                landed=self.flight.landed,
                rebooting=self._reboot_until is not None,
                position_enu=state.position_m.copy(),
                velocity_enu=state.velocity_m_s.copy(),
                yaw_enu_rad=heading_enu(state.rotation),
                failsafes=frozenset(c.failsafes),
                battery_remaining=self.battery.remaining,
                offboard_signal_ok=c.offboard_signal_ok(self._time_s),
                counters=replace(self.counters),
                statustexts=tuple(self._statustexts),
            )

    def set_battery_remaining(self, remaining: float) -> None:
        """Inject a state of charge (0..1): the battery checks and failsafes react on the next period."""
        with self._lock:
            self.battery.set_remaining(remaining)

    def set_estimator_ok(self, ok: bool) -> None:
        """Inject an estimator fault (False) or clear it."""
        with self._lock:
            self.commander.estimator_ok = ok

    # ---- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            wait = max(0.0, next_tick - time.monotonic()) if self.config.realtime else 0.0
            datagrams = self._link.receive(wait)
            with self._lock:
                if self._rebooting(datagrams):
                    next_tick = time.monotonic() + self.dt_s
                    continue
                for data in datagrams:
                    self._on_datagram(data)
                if self.config.realtime:
                    next_tick = self._advance_realtime()
                else:
                    self._tick()
                self._send_telemetry()
                if self._reboot_at is not None and time.monotonic() >= self._reboot_at:
                    self._reboot_at = None
                    self.reboot(1.0)

    def _rebooting(self, datagrams: list[bytes]) -> bool:
        if self._reboot_until is None:
            return False
        if time.monotonic() < self._reboot_until:
            time.sleep(self.dt_s)
            return True
        self._reboot_until = None
        if not self.config.keep_params_on_reboot:
            self.params.__init__(self.config.params)  # type: ignore[misc]
        self._boot()
        self._emit(INFO, "Startup: PX4 simulated vehicle ready")
        return False

    def _advance_realtime(self) -> float:
        target = time.monotonic() - self._boot_wall
        if target - self._time_s > _MAX_CATCH_UP_S:  # the machine stalled: let simulated time slip
            self._boot_wall += target - self._time_s - self.dt_s
            target = self._time_s + self.dt_s
        while self._time_s + self.dt_s <= target + 1e-9:
            self._tick()
        return self._boot_wall + self._time_s + self.dt_s

    def _tick(self) -> None:
        self.commander.tick(self._time_s, self.dt_s)
        self._time_s += self.dt_s
        self._log_ulog()

    def _view(self) -> VehicleView:
        c, state, p = self.commander, self.flight.state(), self.params.get
        return VehicleView(
            time_boot_s=self._time_s,
            position_ned=enu_to_ned(state.position_m),
            velocity_ned=enu_to_ned(state.velocity_m_s),
            quaternion_ned_frd=quat_ned_frd_of_rotation(state.rotation),
            rates_frd=flu_to_frd(state.body_rates_rad_s),
            home_ned=enu_to_ned(self.home_enu),
            armed=c.armed,
            mode=c.mode,
            landed=self.flight.landed,
            failsafe=bool(c.failsafes),
            estimator_ok=c.estimator_ok,
            prearm_ok=c.prearm_ok(self._time_s),
            battery_remaining=self.battery.remaining,
            battery_voltage_v=self.battery.voltage_v(int(p("BAT1_N_CELLS")), p("BAT1_V_CHARGED"), p("BAT1_V_EMPTY")),
            battery_current_a=self.battery.current_a,
            battery_consumed_mah=self.battery.consumed_mah,
            battery_cells=int(p("BAT1_N_CELLS")),
        )

    def _send_telemetry(self) -> None:
        for msg in self.streams.due(self._time_s, self._view()):
            self._send(msg)

    def _send(self, msg: mavlink.MAVLink_message) -> None:
        if self.config.signing_key is not None:
            self.mav.signing.timestamp = max(self.mav.signing.timestamp, signing_timestamp_now())
        self.mav.send(msg)

    def _emit(self, severity: int, text: str) -> None:
        self._statustexts.append(text)
        if self._ulog is not None:
            self._ulog.log_message(severity, self._time_s, text)
        _log.info("statustext: %s", text)
        if self._reboot_until is not None:
            return
        data = text.encode("utf-8")
        if len(data) <= 50:
            self._send(self.mav.statustext_encode(severity, data))
            return
        chunk_id = (len(self._statustexts) % 65535) + 1
        chunks = [data[i : i + 50] for i in range(0, len(data), 50)]
        for seq, chunk in enumerate(chunks):
            self._send(self.mav.statustext_encode(severity, chunk, chunk_id, seq))
        if len(data) % 50 == 0:
            self._send(self.mav.statustext_encode(severity, b"", chunk_id, len(chunks)))

    # ---- incoming -------------------------------------------------------------------------------

    def _on_datagram(self, data: bytes) -> None:
        # A datagram holds whole frames: a truncated one must not swallow the start of the next datagram.
        rx = self._rx
        rx.buf, rx.buf_index, rx.expected_length = bytearray(), 0, mavlink.HEADER_LEN_V1 + 2
        try:
            messages = rx.parse_buffer(data) or []
        except Exception:  # pymavlink raises on some malformed input even when parsing robustly
            self.counters.parse_errors += 1
            return
        for msg in messages:
            if msg.get_type() == "BAD_DATA":
                self.counters.parse_errors += 1
                continue
            self.counters.frames_received += 1
            if not self._signature_ok(msg):
                continue
            try:
                self._dispatch(msg)
            except Exception:  # a hostile or odd message must never stop the vehicle
                self.counters.parse_errors += 1
                _log.exception("message %s could not be handled", msg.get_type())

    def _signature_ok(self, msg: mavlink.MAVLink_message) -> bool:
        verifier = self._verifier
        if verifier is None:
            return True
        frame = bytes(msg.get_msgbuf())
        signed = len(frame) > 2 and frame[0] == 0xFD and bool(frame[2] & 0x01)
        if not signed and not self.config.require_signing:
            return True
        before = replace(verifier.counters)
        if verifier.check(frame):
            return True
        self._count_rejection(before, verifier.counters)
        return False

    def _count_rejection(self, before: SignatureCounters, after: SignatureCounters) -> None:
        self.counters.rejected_unsigned += after.unsigned - before.unsigned
        self.counters.rejected_bad_signature += after.bad_signature - before.bad_signature
        self.counters.rejected_replayed += after.replayed - before.replayed

    def _for_me(self, target_system: int, target_component: int | None = None) -> bool:
        if target_system not in (0, self.config.system_id):
            return False
        return target_component is None or target_component in (0, self.config.component_id)

    def _dispatch(self, msg: mavlink.MAVLink_message) -> None:
        kind = msg.get_type()
        now = self._time_s
        if kind == "HEARTBEAT":
            # PX4: src/modules/commander/Commander.cpp (dataLinkCheck): only MAV_TYPE_GCS heartbeats
            # (telemetry_status.heartbeat_type_gcs) keep the GCS link alive for COM_DL_LOSS_T / NAV_DLL_ACT.
            if msg.type == mavlink.MAV_TYPE_GCS:
                self.commander.on_gcs_heartbeat(now)
        elif kind == "SET_POSITION_TARGET_LOCAL_NED":
            self._on_setpoint(msg)
        elif kind in ("COMMAND_LONG", "COMMAND_INT"):
            if self._for_me(msg.target_system, msg.target_component):
                self._on_command(msg)
        elif kind == "PARAM_REQUEST_LIST":
            if self._for_me(msg.target_system):
                for name in self.params.names:
                    self._send_param(name)
        elif kind == "PARAM_REQUEST_READ":
            if self._for_me(msg.target_system):
                self._on_param_read(msg)
        elif kind == "PARAM_SET":
            if self._for_me(msg.target_system):
                self._on_param_set(msg)
        elif kind == "TIMESYNC" and msg.tc1 == 0:
            self._send(self.mav.timesync_encode(max(1, time.monotonic_ns() - round(self._boot_wall * 1e9)), msg.ts1))

    def _on_setpoint(self, msg: mavlink.MAVLink_message) -> None:
        """SET_POSITION_TARGET_LOCAL_NED, frames as PX4 takes them (see `px4sim.setpoints`)."""
        if not self._for_me(msg.target_system):
            return
        frame = int(msg.coordinate_frame)
        if frame == MAV_FRAME_LOCAL_NED:
            sp = setpoint_from_local_ned(
                msg.type_mask,
                (msg.x, msg.y, msg.z),
                (msg.vx, msg.vy, msg.vz),
                (msg.afx, msg.afy, msg.afz),
                msg.yaw,
                msg.yaw_rate,
            )
        elif frame == MAV_FRAME_BODY_NED:
            rotation = self.flight.state().rotation
            sp = setpoint_from_body_ned(
                msg.type_mask,
                (msg.vx, msg.vy, msg.vz),
                (msg.afx, msg.afy, msg.afz),
                msg.yaw,
                msg.yaw_rate,
                yaw_enu_to_ned(heading_enu(rotation)),
                rotation_enu_flu_to_ned_frd(rotation),
            )
            if sp is None and not msg.type_mask & (1 << 9):
                self._emit(CRITICAL, "SET_POSITION_TARGET_LOCAL_NED invalid")
        else:  # PX4: src/modules/mavlink/mavlink_receiver.cpp refuses every other frame
            self._emit(CRITICAL, f"SET_POSITION_TARGET_LOCAL_NED coordinate frame {frame} unsupported")
            return
        if sp is not None:
            self.counters.setpoints += 1
            self.commander.on_setpoint(sp, self._time_s)

    # ---- parameters -----------------------------------------------------------------------------

    def _send_param(self, name: str) -> None:
        spec = self.params.specs[name]
        self._send(
            self.mav.param_value_encode(
                name.encode("ascii"),
                self.params.wire_value(name),
                spec.mav_type,
                len(self.params),
                self.params.index(name),
            )
        )

    def _on_param_read(self, msg: mavlink.MAVLink_message) -> None:
        index = int(msg.param_index)
        if index >= 0:
            if index < len(self.params):
                self._send_param(self.params.names[index])
            return
        name = _param_name(msg.param_id)
        if name in self.params.specs:
            self._send_param(name)
        else:
            self._emit(WARNING, f"[pm] unknown param: {name}")

    def _on_param_set(self, msg: mavlink.MAVLink_message) -> None:
        name = _param_name(msg.param_id)
        if name not in self.params.specs:
            self._emit(WARNING, f"[pm] unknown param: {name}")
            return
        # PX4: src/modules/mavlink/mavlink_parameters.cpp: a declared type that is not the parameter's writes
        # nothing and is answered by a STATUSTEXT only; min/max are not enforced.
        try:
            self.params.set_from_wire(name, float(msg.param_value), int(msg.param_type))
        except ParamTypeMismatchError as exc:
            self.counters.param_sets_refused += 1
            self._emit(INFO, f"[pm] {exc}")
            return
        except ParamError as exc:
            self.counters.param_sets_refused += 1
            self._emit(WARNING, f"[pm] {exc}")
        else:
            if self.params.out_of_range(name):
                spec = self.params.specs[name]
                self._emit(WARNING, f"[pm] {name} {self.params.get(name):g} outside [{spec.min:g}, {spec.max:g}]")
        self._send_param(name)

    # ---- commands -------------------------------------------------------------------------------

    def _on_command(self, msg: mavlink.MAVLink_message) -> None:
        self.counters.commands += 1
        command = int(msg.command)
        is_int = msg.get_type() == "COMMAND_INT"
        params = (
            msg.param1,
            msg.param2,
            msg.param3,
            msg.param4,
            float(msg.x) if is_int else msg.param5,
            float(msg.y) if is_int else msg.param6,
            float(msg.z) if is_int else msg.param7,
        )
        key = (msg.get_srcSystem(), msg.get_srcComponent(), command)
        now = time.monotonic()
        confirmation = 0 if is_int else int(msg.confirmation)
        cached = self._recent_commands.get(key)
        if confirmation > 0 and cached is not None and cached[0] == params and now - cached[2] < _DUPLICATE_WINDOW_S:
            self.counters.duplicate_commands += 1
            self._ack(msg, command, cached[1])
            return
        self._after_ack = []
        result = self._execute(command, params)
        self._recent_commands[key] = (params, result, now)
        self._ack(msg, command, result)
        for message_id in self._after_ack:
            self._send(self.streams.build(message_id, self._view()))
        if command == mavlink.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN and result == ACCEPTED and int(params[0]) == 1:
            self._reboot_at = time.monotonic() + 0.1

    def _ack(self, msg: mavlink.MAVLink_message, command: int, result: int) -> None:
        self._send(self.mav.command_ack_encode(command, result, 0, 0, msg.get_srcSystem(), msg.get_srcComponent()))

    def _execute(self, command: int, p: tuple[float, ...]) -> int:
        c, now = self.commander, self._time_s
        if command == mavlink.MAV_CMD_COMPONENT_ARM_DISARM:
            force = round(p[1]) == FORCE_MAGIC if math.isfinite(p[1]) else False
            outcome = c.arm(force, now) if p[0] > 0.5 else c.disarm(force, now)
            return outcome.result
        if command == mavlink.MAV_CMD_DO_SET_MODE:
            try:
                mode = px4_modes.mode_from_set_mode_params(p[0], p[1], p[2])
            except ValueError as exc:
                self._emit(WARNING, str(exc)[:120])
                return DENIED
            return c.request_mode(mode, now)[0]
        if command == mavlink.MAV_CMD_NAV_TAKEOFF:
            altitude = None if not math.isfinite(p[6]) else p[6] - (self.config.origin.alt_amsl_m + self.home_enu[2])
            return c.takeoff(altitude, now)[0]
        if command == mavlink.MAV_CMD_NAV_LAND:
            return c.request_mode(px4_modes.LAND, now)[0]
        if command == mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            return c.request_mode(px4_modes.RTL, now)[0]
        if command == mavlink.MAV_CMD_DO_FLIGHTTERMINATION:
            if p[0] > 0.5:
                c.mode, c.armed = px4_modes.TERMINATION, False
                self._emit(2, "Flight termination active")
            return ACCEPTED
        if command == mavlink.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN:
            if c.armed:
                self._emit(2, "Reboot denied: vehicle armed")
                return DENIED
            return ACCEPTED if int(p[0]) in (0, 1) else UNSUPPORTED
        if command == mavlink.MAV_CMD_SET_MESSAGE_INTERVAL:
            return ACCEPTED if self.streams.set_interval(int(p[0]), p[1]) else UNSUPPORTED
        if command == mavlink.MAV_CMD_GET_MESSAGE_INTERVAL:
            self._send(self.mav.message_interval_encode(int(p[0]), self.streams.interval_us(int(p[0]))))
            return ACCEPTED
        if command in (
            mavlink.MAV_CMD_REQUEST_MESSAGE,
            mavlink.MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES,
            mavlink.MAV_CMD_GET_HOME_POSITION,
        ):
            return self._request_message(command, p)
        return UNSUPPORTED

    def _request_message(self, command: int, p: tuple[float, ...]) -> int:
        message_id = {
            mavlink.MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES: mavlink.MAVLINK_MSG_ID_AUTOPILOT_VERSION,
            mavlink.MAV_CMD_GET_HOME_POSITION: mavlink.MAVLINK_MSG_ID_HOME_POSITION,
        }.get(command, int(p[0]) if math.isfinite(p[0]) else -1)
        if message_id == mavlink.MAVLINK_MSG_ID_PARAM_VALUE or not self.streams.can_build(message_id):
            return UNSUPPORTED
        self._after_ack.append(message_id)  # acknowledged first, then sent, as PX4 does
        return ACCEPTED

    # ---- ULog -----------------------------------------------------------------------------------

    def _log_ulog(self) -> None:
        """A ULog per arm-to-disarm cycle, as PX4 logs by default (when `ulog_dir` is set)."""
        if self.config.ulog_dir is None:
            return
        armed, was_armed = self.commander.armed, self._ulog is not None
        if armed and not was_armed:
            self._open_ulog()
        if self._ulog is not None:
            self._ulog_samples += 1
            if self._ulog_samples % _ULOG_DECIMATION == 0:
                self._ulog.write_sample(self._time_s, self.commander, self.flight, self.battery, self.params)
        if was_armed and not armed:
            self._close_ulog()

    def _open_ulog(self) -> None:
        assert self.config.ulog_dir is not None
        stamp = time.strftime("%Y%m%d_%H%M%S")
        path = Path(self.config.ulog_dir) / f"px4sim_{stamp}_{self.counters.ulogs_written + 1:03d}.ulg"
        self._ulog = FlightLog(path, self._time_s)
        self._ulog_samples = 0

    def _close_ulog(self) -> None:
        if self._ulog is not None:
            self._ulog.close()
            self._ulog = None
            self.counters.ulogs_written += 1


def _param_name(raw: object) -> str:
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes | bytearray) else str(raw)
    return text.split("\x00", 1)[0].strip()

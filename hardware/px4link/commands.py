"""COMMAND_LONG with COMMAND_ACK matching, IN_PROGRESS handling, timeouts and retries, and PX4's vehicle commands.

A command is sent, then the matching ACK (same command id, addressed to us or to nobody) is waited for. No ACK within
`ack_timeout_s`: the command is sent again with `confirmation` incremented, up to `retries` times, then
`CommandTimeout`. An IN_PROGRESS ACK stops the resending and extends the wait up to `in_progress_timeout_s`. Any
result other than ACCEPTED raises `CommandRejected` with the command's and the result's names.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from pymavlink.dialects.v20 import common as mavlink2

from px4link import px4_modes
from px4link.config import CommandConfig
from px4link.connection import MavlinkConnection
from runkit.logs import get_logger

_LOG = get_logger("px4link.commands")

FORCE_ARM_DISARM_MAGIC = 21196.0
"""param2 of MAV_CMD_COMPONENT_ARM_DISARM that forces arming/disarming past the checks (PX4: also in flight)."""


def command_name(command: int) -> str:
    """MAV_CMD name of a command id ("MAV_CMD_NAV_TAKEOFF"), or its number."""
    entry = mavlink2.enums["MAV_CMD"].get(int(command))
    return entry.name if entry is not None else f"MAV_CMD {command}"


def result_name(result: int) -> str:
    """MAV_RESULT name of a result ("MAV_RESULT_DENIED"), or its number."""
    entry = mavlink2.enums["MAV_RESULT"].get(int(result))
    return entry.name if entry is not None else f"MAV_RESULT {result}"


class CommandError(RuntimeError):
    """A vehicle command did not succeed."""


class CommandRejected(CommandError):  # noqa: N818  (the name the API promises)
    """The vehicle answered with a result other than ACCEPTED."""

    def __init__(self, command: int, result: int, result_param2: int = 0, what: str = "") -> None:
        self.command = int(command)
        self.result = int(result)
        self.result_param2 = int(result_param2)
        detail = f" ({what})" if what else ""
        super().__init__(
            f"{command_name(command)}{detail} was refused by the vehicle: {result_name(result)}"
            + (f", result_param2={result_param2}" if result_param2 else "")
        )


class CommandTimeout(CommandError):  # noqa: N818
    """No final COMMAND_ACK came back."""

    def __init__(self, command: int, attempts: int, waited_s: float, what: str = "", in_progress: bool = False) -> None:
        self.command = int(command)
        self.attempts = attempts
        self.waited_s = waited_s
        detail = f" ({what})" if what else ""
        state = "stayed IN_PROGRESS" if in_progress else f"got no COMMAND_ACK after {attempts} attempt(s)"
        super().__init__(f"{command_name(command)}{detail} {state} ({waited_s:.2f} s): is the vehicle connected?")


@dataclass(frozen=True)
class CommandResult:
    """An accepted command: how many sends it took and how long until the ACK."""

    command: int
    attempts: int
    elapsed_s: float
    progress: int = 0


class _AckWaiter:
    def __init__(self, command: int) -> None:
        self.command = command
        self.event = threading.Event()
        self.ack: Any = None


class CommandSender:
    """Sends COMMAND_LONG and waits for its ACK (see the module docstring); one command of each id at a time."""

    def __init__(self, connection: MavlinkConnection, config: CommandConfig | None = None) -> None:
        self.connection = connection
        self.config = config or CommandConfig()
        self._waiters: dict[int, _AckWaiter] = {}
        self._waiters_lock = threading.Lock()
        self._command_locks: dict[int, threading.Lock] = {}
        self.retries_sent = 0
        self.timeouts = 0
        self.rejections = 0
        connection.subscribe(self._on_ack, "COMMAND_ACK")

    def _on_ack(self, ack: Any) -> None:
        link = self.connection.config
        if ack.get_srcSystem() != link.vehicle_system_id or ack.get_srcComponent() != link.vehicle_component_id:
            return  # another component of the vehicle (a camera, a gimbal) answering a command of its own
        target_system = getattr(ack, "target_system", 0)
        target_component = getattr(ack, "target_component", 0)
        if target_system not in (0, link.system_id) or target_component not in (0, link.component_id):
            return  # an ACK for another component's command
        with self._waiters_lock:
            waiter = self._waiters.get(int(ack.command))
        if waiter is not None:
            waiter.ack = ack
            waiter.event.set()

    def _lock_for(self, command: int) -> threading.Lock:
        with self._waiters_lock:
            return self._command_locks.setdefault(command, threading.Lock())

    def send_long(
        self,
        command: int,
        params: tuple[float, ...] = (),
        what: str = "",
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> CommandResult:
        """Send COMMAND_LONG with up to 7 params; return on ACCEPTED, else raise CommandRejected/CommandTimeout."""
        if len(params) > 7:
            raise ValueError(f"COMMAND_LONG has 7 params, got {len(params)}")
        p = [float(x) for x in params] + [0.0] * (7 - len(params))
        ack_timeout = self.config.ack_timeout_s if timeout_s is None else timeout_s
        attempts_allowed = 1 + (self.config.retries if retries is None else retries)
        link = self.connection.config
        with self._lock_for(command):
            waiter = _AckWaiter(command)
            with self._waiters_lock:
                self._waiters[command] = waiter
            try:
                return self._exchange(command, p, waiter, ack_timeout, attempts_allowed, what, link)
            finally:
                with self._waiters_lock:
                    self._waiters.pop(command, None)

    def _exchange(
        self,
        command: int,
        p: list[float],
        waiter: _AckWaiter,
        ack_timeout: float,
        attempts_allowed: int,
        what: str,
        link: Any,
    ) -> CommandResult:
        start = time.monotonic()
        attempts = 0
        in_progress_since: float | None = None
        while True:
            if in_progress_since is None:
                if attempts >= attempts_allowed:
                    self.timeouts += 1
                    raise CommandTimeout(command, attempts, time.monotonic() - start, what)
                if attempts:
                    self.retries_sent += 1
                message = self.connection.mav.command_long_encode(
                    link.vehicle_system_id, link.vehicle_component_id, command, min(attempts, 255), *p
                )
                self.connection.send(message)
                attempts += 1
            if not waiter.event.wait(ack_timeout):
                if (
                    in_progress_since is not None
                    and time.monotonic() - in_progress_since > self.config.in_progress_timeout_s
                ):
                    self.timeouts += 1
                    raise CommandTimeout(command, attempts, time.monotonic() - start, what, in_progress=True)
                continue
            ack, waiter.ack = waiter.ack, None
            waiter.event.clear()
            if ack.result == mavlink2.MAV_RESULT_IN_PROGRESS:
                if in_progress_since is None:
                    in_progress_since = time.monotonic()
                if time.monotonic() - in_progress_since > self.config.in_progress_timeout_s:
                    self.timeouts += 1
                    raise CommandTimeout(command, attempts, time.monotonic() - start, what, in_progress=True)
                continue
            if ack.result != mavlink2.MAV_RESULT_ACCEPTED:
                self.rejections += 1
                raise CommandRejected(command, ack.result, getattr(ack, "result_param2", 0), what)
            return CommandResult(command, attempts, time.monotonic() - start, int(getattr(ack, "progress", 0)))

    # ---- PX4's vehicle commands ---------------------------------------------------------------------------------

    def arm(self, force: bool = False) -> CommandResult:
        """Arm (force skips PX4's pre-arm checks: only when asked)."""
        return self.send_long(
            mavlink2.MAV_CMD_COMPONENT_ARM_DISARM, (1.0, FORCE_ARM_DISARM_MAGIC if force else 0.0), "arm"
        )

    def disarm(self, force: bool = False) -> CommandResult:
        """Disarm (force disarms in flight: the vehicle falls; only when asked)."""
        return self.send_long(
            mavlink2.MAV_CMD_COMPONENT_ARM_DISARM, (0.0, FORCE_ARM_DISARM_MAGIC if force else 0.0), "disarm"
        )

    def takeoff(self, altitude_amsl_m: float | None = None) -> CommandResult:
        """MAV_CMD_NAV_TAKEOFF here, keeping yaw. PX4 reads param7 as altitude above mean sea level; None (NaN)
        climbs to MIS_TAKEOFF_ALT above home (what `Px4Bridge.takeoff` sets first)."""
        nan = float("nan")
        altitude = nan if altitude_amsl_m is None else float(altitude_amsl_m)
        what = "takeoff to MIS_TAKEOFF_ALT" if altitude_amsl_m is None else f"takeoff to {altitude:.1f} m AMSL"
        return self.send_long(mavlink2.MAV_CMD_NAV_TAKEOFF, (nan, 0.0, 0.0, nan, nan, nan, altitude), what)

    def land(self) -> CommandResult:
        """MAV_CMD_NAV_LAND where the vehicle is."""
        nan = float("nan")
        return self.send_long(mavlink2.MAV_CMD_NAV_LAND, (0.0, 0.0, 0.0, nan, nan, nan, nan), "land")

    def set_mode(self, mode: px4_modes.Px4Mode) -> CommandResult:
        """MAV_CMD_DO_SET_MODE to a PX4 mode (custom mode encoding from px4link.px4_modes)."""
        return self.send_long(mavlink2.MAV_CMD_DO_SET_MODE, px4_modes.set_mode_params(mode), f"mode {mode.name}")

    def hold(self) -> CommandResult:
        """Switch to AUTO.LOITER (hold position)."""
        return self.set_mode(px4_modes.HOLD)

    def reboot(self) -> CommandResult:
        """MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN: reboot the autopilot."""
        return self.send_long(mavlink2.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN, (1.0,), "reboot autopilot")

"""Parameter read and write (PARAM_REQUEST_READ / PARAM_SET, confirmed by PARAM_VALUE) with retries and timeouts.

PX4 sends integer parameters bytewise: the int32's four bytes travel in PARAM_VALUE's float field, with
param_type MAV_PARAM_TYPE_INT32. `encode_param_value` / `decode_param_value` do that (or the plain cast ArduPilot
uses) in one place.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pymavlink.dialects.v20 import common as mavlink2

from px4link.config import CommandConfig
from px4link.connection import MavlinkConnection

IntEncoding = Literal["bytewise", "cast"]

_INT_TYPES = {
    mavlink2.MAV_PARAM_TYPE_UINT8: "<B",
    mavlink2.MAV_PARAM_TYPE_INT8: "<b",
    mavlink2.MAV_PARAM_TYPE_UINT16: "<H",
    mavlink2.MAV_PARAM_TYPE_INT16: "<h",
    mavlink2.MAV_PARAM_TYPE_UINT32: "<I",
    mavlink2.MAV_PARAM_TYPE_INT32: "<i",
}


class ParamError(RuntimeError):
    """A parameter could not be read or written."""


class ParamTimeout(ParamError):  # noqa: N818
    """No PARAM_VALUE came back for a parameter."""


class ParamRejected(ParamError):  # noqa: N818
    """The vehicle answered a PARAM_SET with a different value (read-only, out of range, wrong type)."""


def encode_param_value(value: float | int, param_type: int, encoding: IntEncoding = "bytewise") -> float:
    """The float that carries `value` in PARAM_SET/PARAM_VALUE."""
    fmt = _INT_TYPES.get(param_type)
    if fmt is None:
        return float(value)
    if encoding == "cast":
        return float(int(value))
    raw = struct.pack(fmt, int(value)).ljust(4, b"\x00")
    carried = float(struct.unpack("<f", raw)[0])
    if struct.pack("<f", carried) != raw:
        # The bits form a signalling NaN, which a Python float (pymavlink packs from one) cannot carry unchanged.
        raise ValueError(f"{value} cannot be sent bytewise through pymavlink's float field (signalling-NaN bits)")
    return carried


def decode_param_value(carried: float, param_type: int, encoding: IntEncoding = "bytewise") -> float | int:
    """The value a PARAM_VALUE's float field carries (an int for integer types)."""
    fmt = _INT_TYPES.get(param_type)
    if fmt is None:
        return float(carried)
    if encoding == "cast":
        return int(carried)
    raw = struct.pack("<f", carried)
    return int(struct.unpack(fmt, raw[: struct.calcsize(fmt)])[0])


@dataclass(frozen=True)
class ParamValue:
    """A parameter as the vehicle reported it."""

    name: str
    value: float | int
    param_type: int
    index: int
    count: int

    @property
    def is_int(self) -> bool:
        """True for integer parameter types."""
        return self.param_type in _INT_TYPES


class ParamClient:
    """Reads and writes the vehicle's parameters; keeps the last value seen of each (`cached`)."""

    def __init__(self, connection: MavlinkConnection, config: CommandConfig | None = None) -> None:
        self.connection = connection
        self.config = config or CommandConfig()
        self._cache: dict[str, ParamValue] = {}
        self._cond = threading.Condition()
        self.retries_sent = 0
        connection.subscribe(self._on_value, "PARAM_VALUE")

    def _on_value(self, message: Any) -> None:
        link = self.connection.config
        if message.get_srcSystem() != link.vehicle_system_id or message.get_srcComponent() != link.vehicle_component_id:
            return
        name = _param_name(message.param_id)
        value = ParamValue(
            name=name,
            value=decode_param_value(message.param_value, message.param_type, self.config.param_int_encoding),
            param_type=int(message.param_type),
            index=int(message.param_index),
            count=int(message.param_count),
        )
        with self._cond:
            self._cache[name] = value
            self._cond.notify_all()

    def cached(self, name: str) -> ParamValue | None:
        """The last PARAM_VALUE seen for `name` (None if never seen)."""
        with self._cond:
            return self._cache.get(name)

    def read(self, name: str, timeout_s: float | None = None, retries: int | None = None) -> ParamValue:
        """Request `name` and wait for its PARAM_VALUE; raises ParamTimeout after the retries."""
        _check_name(name)
        link = self.connection.config

        def request() -> None:
            self.connection.send(
                self.connection.mav.param_request_read_encode(
                    link.vehicle_system_id, link.vehicle_component_id, name.encode(), -1
                )
            )

        return self._exchange(name, request, timeout_s, retries, "read")

    def write(
        self,
        name: str,
        value: float | int,
        param_type: int | None = None,
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> ParamValue:
        """Set `name` and wait until the vehicle echoes the new value; raises ParamTimeout or ParamRejected.

        `param_type` defaults to the type last seen for `name` (read it first), else INT32 for ints, REAL32 for floats.
        """
        _check_name(name)
        known = self.cached(name)
        if param_type is None:
            if known is not None:
                param_type = known.param_type
            else:
                param_type = mavlink2.MAV_PARAM_TYPE_INT32 if isinstance(value, int) else mavlink2.MAV_PARAM_TYPE_REAL32
        link = self.connection.config
        carried = encode_param_value(value, param_type, self.config.param_int_encoding)

        def request() -> None:
            self.connection.send(
                self.connection.mav.param_set_encode(
                    link.vehicle_system_id, link.vehicle_component_id, name.encode(), carried, param_type
                )
            )

        def confirms(answer: ParamValue) -> bool:
            return _same_value(answer.value, value)

        echoed = self._exchange(name, request, timeout_s, retries, "write", accept=confirms)
        if not confirms(echoed):
            raise ParamRejected(
                f"PARAM_SET {name}={value} answered with {name}={echoed.value}: the vehicle kept its value"
            )
        return echoed

    def _exchange(
        self,
        name: str,
        request: Callable[[], None],
        timeout_s: float | None,
        retries: int | None,
        what: str,
        accept: Callable[[ParamValue], bool] | None = None,
    ) -> ParamValue:
        """Send `request` until a new PARAM_VALUE for `name` comes back (one that `accept`s, when given).

        A PARAM_VALUE that `accept` refuses may be a reply to someone else (a ground station reading the same
        parameter, PX4 streaming the list) that crossed ours: the wait goes on to the attempt's deadline. Only
        when no accepted value came by then is the refused one the answer (PX4 echoes its kept value to a
        PARAM_SET it rejects), without further attempts.
        """
        ack_timeout = self.config.ack_timeout_s if timeout_s is None else timeout_s
        attempts_allowed = 1 + (self.config.retries if retries is None else retries)
        with self._cond:
            seen = self._cache.get(name)
        refused: ParamValue | None = None
        for attempt in range(attempts_allowed):
            if attempt:
                self.retries_sent += 1
            request()
            deadline = time.monotonic() + ack_timeout
            with self._cond:
                while True:
                    current = self._cache.get(name)
                    if current is not None and current is not seen:
                        if accept is None or accept(current):
                            return current
                        refused, seen = current, current
                    remaining = deadline - time.monotonic()
                    if remaining <= 0.0:
                        break
                    self._cond.wait(remaining)
            if refused is not None:
                return refused
        raise ParamTimeout(
            f"parameter {what} {name}: no PARAM_VALUE after {attempts_allowed} attempt(s) of {ack_timeout:.2f} s"
        )


def _param_name(raw: bytes | str) -> str:
    text = raw.decode("ascii", errors="replace") if isinstance(raw, bytes | bytearray) else str(raw)
    return text.rstrip("\x00")


def _check_name(name: str) -> None:
    if not name or len(name) > 16 or not name.isascii():
        raise ValueError(f"parameter name must be 1..16 ASCII characters, got {name!r}")


def _same_value(echoed: float | int, wanted: float | int) -> bool:
    if isinstance(echoed, int):
        return echoed == int(wanted)
    return math.isclose(float(echoed), float(wanted), rel_tol=1e-6, abs_tol=1e-6)

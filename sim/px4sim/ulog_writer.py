"""A writer of PX4's ULog format (version 1), so that simulated flights give the logs a real PX4 gives.

Layout, little endian throughout (PX4's "ULog File Format" spec):

- header: the magic ``ULog`` 0x01 0x12 0x35, the version byte (1), the start time (uint64, µs);
- definitions: the flag bits message 'B' first (compat and incompat flags, appended-data offsets),
  then information 'I' (key "char[len] name" and its value) and format 'F' ("name:type field;...")
  messages;
- data: one add-logged-message 'A' per topic (multi_id, msg_id, name), then data 'D' (msg_id and the
  message's bytes) and logged-string 'L' messages (level, timestamp, text).

Each message starts with a 3-byte header: uint16 payload size, uint8 message type. A topic's bytes
follow the C layout of its fields in the order given: a field starts at a multiple of its element
size, and the gaps are declared as ``uint8_t[n] _paddingK`` fields. The padding that rounds a struct
up to its alignment is declared as the last field and, as the spec says, not written in data
messages.

The file is written under a hidden temporary name beside `path` and renamed to `path` only when
closed, so a writer that dies before `close()` never leaves a half-written file under the final name
(the temporary file stays behind for recovery).
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import numpy as np

MAGIC = b"ULog\x01\x12\x35"
FILE_VERSION = 1

MSG_FLAG_BITS = ord("B")
MSG_FORMAT = ord("F")
MSG_INFO = ord("I")
MSG_ADD_LOGGED = ord("A")
MSG_DATA = ord("D")
MSG_LOGGING = ord("L")

_MAX_PAYLOAD_BYTES = 0xFFFF

# ULog type name -> (struct code, size in bytes).
_TYPES: dict[str, tuple[str, int]] = {
    "int8_t": ("b", 1),
    "uint8_t": ("B", 1),
    "int16_t": ("h", 2),
    "uint16_t": ("H", 2),
    "int32_t": ("i", 4),
    "uint32_t": ("I", 4),
    "int64_t": ("q", 8),
    "uint64_t": ("Q", 8),
    "float": ("f", 4),
    "double": ("d", 8),
    "bool": ("?", 1),
    "char": ("s", 1),
}

LOG_LEVEL_NAMES = ("EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
"""ULog's log levels 0-7 (the Linux kernel's); a logged string stores the level as the digit '0'-'7'."""

FieldValue = float | int | bool | str | Sequence[float]


class UlogError(ValueError):
    """A topic, field or value that the ULog format (or this writer's order of calls) cannot take."""


@dataclass(frozen=True)
class _Field:
    name: str
    type_name: str
    count: int  # 0 for a scalar, else the array length

    @property
    def element_size(self) -> int:
        return _TYPES[self.type_name][1]

    @property
    def size(self) -> int:
        return self.element_size * max(self.count, 1)

    @property
    def declaration(self) -> str:
        suffix = f"[{self.count}]" if self.count else ""
        return f"{self.type_name}{suffix} {self.name}"


@dataclass(frozen=True)
class _Topic:
    name: str
    msg_id: int
    fields: tuple[_Field, ...]  # with interior padding, without the trailing padding
    format_text: str  # the 'F' message's text (with all padding)
    packer: struct.Struct  # the bytes written in a 'D' message (no trailing padding)


def parse_field(type_text: str, name: str) -> _Field:
    """A field from its ULog type ("float", "float[3]", "char[16]") and name; raises UlogError if unknown."""
    base, count = type_text.strip(), 0
    if base.endswith("]"):
        base, _, length = base[:-1].partition("[")
        if not length.isdigit() or int(length) < 1:
            raise UlogError(f"field {name!r}: array length in {type_text!r} must be a positive integer")
        count = int(length)
    if base not in _TYPES:
        raise UlogError(f"field {name!r}: unknown type {type_text!r}; ULog types: {sorted(_TYPES)} (or arrays of them)")
    if not name.isidentifier():
        raise UlogError(f"field name {name!r} must be an identifier (letters, digits, underscores)")
    return _Field(name, base, count)


def _layout(name: str, fields: list[tuple[str, str]]) -> tuple[tuple[_Field, ...], _Field | None]:
    """The fields with C alignment padding inserted, and the trailing padding field (None when not needed)."""
    if not fields or fields[0] != ("timestamp", "uint64_t"):
        raise UlogError(f"topic {name!r}: the first field must be ('timestamp', 'uint64_t'), got {fields[:1]}")
    laid_out: list[_Field] = []
    offset, align_max, pad_index = 0, 1, 0
    seen: set[str] = set()
    for field_name, type_text in fields:
        if field_name.startswith("_padding"):
            raise UlogError(f"topic {name!r}: field names starting with _padding are the writer's")
        if field_name in seen:
            raise UlogError(f"topic {name!r}: field {field_name!r} appears twice")
        seen.add(field_name)
        field = parse_field(type_text, field_name)
        align = field.element_size
        gap = -offset % align
        if gap:
            laid_out.append(_Field(f"_padding{pad_index}", "uint8_t", gap))
            pad_index += 1
            offset += gap
        laid_out.append(field)
        offset += field.size
        align_max = max(align_max, align)
    tail = -offset % align_max
    return tuple(laid_out), (_Field(f"_padding{pad_index}", "uint8_t", tail) if tail else None)


def _struct_code(field: _Field) -> str:
    code = _TYPES[field.type_name][0]
    if field.name.startswith("_padding"):
        return f"{field.size}x"
    if code == "s":
        return f"{max(field.count, 1)}s"
    return f"{field.count}{code}" if field.count else code


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class UlogWriter:
    """Write a ULog file: topics first (`add_topic`), then data (`write`) and strings (`log_message`).

    Args:
        path: the final file name (written atomically: a temporary file renamed on `close`).
        start_timestamp_us: the header's start time, in the same clock as the data timestamps.
        info: information messages (key -> string value), e.g. {"sys_name": "px4sim", "ver_hw": "SITL"}.
    """

    def __init__(self, path: Path, start_timestamp_us: int, info: dict[str, str] | None = None) -> None:
        if start_timestamp_us < 0:
            raise UlogError(f"start_timestamp_us must be >= 0, got {start_timestamp_us}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.temp_path = Path(tmp_name)
        """Where the file grows until `close` renames it to `path`."""
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._topics: dict[str, _Topic] = {}
        self._in_data_section = False
        self._raw(MAGIC + bytes([FILE_VERSION]) + struct.pack("<Q", int(start_timestamp_us)))
        # Flag bits: no compat/incompat flags, no appended data (three zero offsets).
        self._message(MSG_FLAG_BITS, bytes(8) + bytes(8) + struct.pack("<3Q", 0, 0, 0))
        for key, value in (info or {}).items():
            self.add_info(key, value)

    # ---- definitions -------------------------------------------------------------------------

    def add_info(self, key: str, value: str) -> None:
        """An information message with a string value ("char[len] key"); only before the first data."""
        self._require_definitions(f"info {key!r}")
        encoded = str(value).encode("utf-8")
        key_text = f"char[{len(encoded)}] {key}".encode()
        if len(key_text) > 255:
            raise UlogError(f"info key {key!r} is too long for ULog (the key text must fit in 255 bytes)")
        self._message(MSG_INFO, bytes([len(key_text)]) + key_text + encoded)

    def add_topic(self, name: str, fields: list[tuple[str, str]]) -> None:
        """Declare a topic: fields as (name, type), the first ("timestamp", "uint64_t"); only before the first data."""
        self._require_definitions(f"topic {name!r}")
        if not name.isidentifier():
            raise UlogError(f"topic name {name!r} must be an identifier (letters, digits, underscores)")
        if name in self._topics:
            raise UlogError(f"topic {name!r} is already declared")
        laid_out, tail = _layout(name, fields)
        declared = (*laid_out, tail) if tail else laid_out
        format_text = f"{name}:" + "".join(f"{f.declaration};" for f in declared)
        packer = struct.Struct("<" + "".join(_struct_code(f) for f in laid_out))
        if packer.size + 2 > _MAX_PAYLOAD_BYTES:
            raise UlogError(f"topic {name!r}: {packer.size} bytes is more than a ULog data message can carry")
        self._topics[name] = _Topic(name, len(self._topics), laid_out, format_text, packer)
        self._message(MSG_FORMAT, format_text.encode("ascii"))

    @property
    def topics(self) -> tuple[str, ...]:
        """The declared topics, in declaration order."""
        return tuple(self._topics)

    # ---- data --------------------------------------------------------------------------------

    def write(self, name: str, values: Mapping[str, FieldValue]) -> None:
        """Log one sample of a declared topic; `timestamp` is required, fields left out are written as zero.

        Array fields take a sequence of their length; char[n] fields take a string (cut to n bytes).
        """
        topic = self._topics.get(name)
        if topic is None:
            raise UlogError(f"topic {name!r} was not declared with add_topic; declared: {list(self._topics)}")
        if "timestamp" not in values:
            raise UlogError(f"topic {name!r}: every sample needs a 'timestamp' (µs)")
        known = [f.name for f in topic.fields if not f.name.startswith("_padding")]
        unknown = set(values) - set(known)
        if unknown:
            raise UlogError(f"topic {name!r} has no field(s) {sorted(unknown)}; its fields: {known}")
        packed: list[float | int | bool | bytes] = []
        for field in topic.fields:
            if field.name.startswith("_padding"):
                continue
            packed.extend(_field_values(name, field, values.get(field.name)))
        try:
            body = topic.packer.pack(*packed)
        except struct.error as exc:
            raise UlogError(f"topic {name!r}: a value does not fit its field type ({exc})") from exc
        self._enter_data_section()
        self._message(MSG_DATA, struct.pack("<H", topic.msg_id) + body)

    def log_message(self, level: int, timestamp_us: int, text: str) -> None:
        """A logged string (PX4_INFO, PX4_WARN, ...): level 0 (emergency) to 7 (debug), see LOG_LEVEL_NAMES."""
        if not 0 <= int(level) <= 7:
            raise UlogError(f"log level must be 0 (emergency) to 7 (debug), got {level}")
        self._enter_data_section()
        payload = bytes([ord("0") + int(level)]) + struct.pack("<Q", int(timestamp_us)) + text.encode("utf-8")
        self._message(MSG_LOGGING, payload[:_MAX_PAYLOAD_BYTES])

    # ---- life cycle --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once `close` has run."""
        return self._file is None

    def close(self) -> Path:
        """Flush, sync and rename the file to `path` (atomic); returns `path`. Closing twice is harmless."""
        if self._file is None:
            return self.path
        self._enter_data_section()  # a log with topics but no data still lists its subscriptions
        handle, self._file = self._file, None
        try:
            handle.flush()
            os.fchmod(handle.fileno(), _file_mode())
            os.fsync(handle.fileno())
        finally:
            handle.close()
        os.replace(self.temp_path, self.path)
        return self.path

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Every message is written whole, so the log is valid up to an error in the block: keep it.
        self.close()

    # ---- internals ---------------------------------------------------------------------------

    def _require_definitions(self, what: str) -> None:
        if self._file is None:
            raise UlogError(f"cannot add {what}: the writer is closed")
        if self._in_data_section:
            raise UlogError(f"cannot add {what} after the first data: ULog puts all definitions before the data")

    def _enter_data_section(self) -> None:
        if self._in_data_section:
            return
        self._in_data_section = True
        for topic in self._topics.values():
            self._message(MSG_ADD_LOGGED, struct.pack("<BH", 0, topic.msg_id) + topic.name.encode("ascii"))

    def _message(self, msg_type: int, payload: bytes) -> None:
        if len(payload) > _MAX_PAYLOAD_BYTES:
            raise UlogError(f"a ULog message carries at most {_MAX_PAYLOAD_BYTES} bytes, got {len(payload)}")
        self._raw(struct.pack("<HB", len(payload), msg_type) + payload)

    def _raw(self, data: bytes) -> None:
        if self._file is None:
            raise UlogError(f"the writer of {self.path} is closed")
        self._file.write(data)


def _field_values(topic: str, field: _Field, value: FieldValue | None) -> list[float | int | bool | bytes]:
    """The struct arguments of one field (zeros when `value` is None); numpy arrays and scalars are welcome."""
    kind = f"{field.type_name}[{field.count}]" if field.count else field.type_name
    if field.type_name == "char":
        text = "" if value is None else value
        if not isinstance(text, str):
            raise UlogError(f"{topic}.{field.name} is {kind}: give a string, got {type(text).__name__}")
        return [text.encode("utf-8")[: max(field.count, 1)]]
    if isinstance(value, (str, bytes)):
        raise UlogError(f"{topic}.{field.name} is {kind}: give numbers, got a string")
    expected: tuple[int, ...] = (field.count,) if field.count else ()
    array = np.zeros(expected) if value is None else np.asarray(value)
    if array.shape != expected:
        wanted = f"{field.count} numbers" if field.count else "one number"
        raise UlogError(f"{topic}.{field.name} is {kind}: give {wanted}, got shape {array.shape}")
    items = array.reshape(-1)
    if field.type_name == "bool":
        return [bool(v) for v in items]
    if field.type_name in ("float", "double"):
        return [float(v) for v in items]
    if items.dtype.kind not in "iub" and not all(float(v).is_integer() for v in items):
        raise UlogError(f"{topic}.{field.name} is {kind}: {items.tolist()} are not all integers")
    return [int(v) for v in items]


# PX4's uORB topics that flight review reads, with PX4's field names and units (NED, metres, radians).
# Each list follows PX4's generated struct order (largest types first), so only trailing padding is needed.
PX4_TOPICS: dict[str, list[tuple[str, str]]] = {
    "vehicle_local_position": [
        ("timestamp", "uint64_t"),
        ("timestamp_sample", "uint64_t"),
        ("ref_timestamp", "uint64_t"),
        ("ref_lat", "double"),
        ("ref_lon", "double"),
        ("x", "float"),
        ("y", "float"),
        ("z", "float"),
        ("vx", "float"),
        ("vy", "float"),
        ("vz", "float"),
        ("z_deriv", "float"),
        ("ax", "float"),
        ("ay", "float"),
        ("az", "float"),
        ("heading", "float"),
        ("ref_alt", "float"),
        ("dist_bottom", "float"),
        ("eph", "float"),
        ("epv", "float"),
        ("evh", "float"),
        ("evv", "float"),
        ("xy_valid", "bool"),
        ("z_valid", "bool"),
        ("v_xy_valid", "bool"),
        ("v_z_valid", "bool"),
        ("xy_global", "bool"),
        ("z_global", "bool"),
        ("dist_bottom_valid", "bool"),
    ],
    "trajectory_setpoint": [
        ("timestamp", "uint64_t"),
        ("position", "float[3]"),
        ("velocity", "float[3]"),
        ("acceleration", "float[3]"),
        ("jerk", "float[3]"),
        ("yaw", "float"),
        ("yawspeed", "float"),
    ],
    "vehicle_local_position_setpoint": [
        ("timestamp", "uint64_t"),
        ("x", "float"),
        ("y", "float"),
        ("z", "float"),
        ("vx", "float"),
        ("vy", "float"),
        ("vz", "float"),
        ("acceleration", "float[3]"),
        ("thrust", "float[3]"),
        ("yaw", "float"),
        ("yawspeed", "float"),
    ],
    "vehicle_attitude": [
        ("timestamp", "uint64_t"),
        ("timestamp_sample", "uint64_t"),
        ("q", "float[4]"),
        ("delta_q_reset", "float[4]"),
        ("quat_reset_counter", "uint8_t"),
    ],
    "battery_status": [
        ("timestamp", "uint64_t"),
        ("voltage_v", "float"),
        ("current_a", "float"),
        ("current_average_a", "float"),
        ("discharged_mah", "float"),
        ("remaining", "float"),
        ("scale", "float"),
        ("time_remaining_s", "float"),
        ("temperature", "float"),
        ("capacity", "uint16_t"),
        ("connected", "bool"),
        ("cell_count", "uint8_t"),
        ("source", "uint8_t"),
        ("warning", "uint8_t"),
    ],
    "vehicle_status": [
        ("timestamp", "uint64_t"),
        ("armed_time", "uint64_t"),
        ("takeoff_time", "uint64_t"),
        ("nav_state_timestamp", "uint64_t"),
        ("arming_state", "uint8_t"),
        ("latest_arming_reason", "uint8_t"),
        ("latest_disarming_reason", "uint8_t"),
        ("nav_state_user_intention", "uint8_t"),
        ("nav_state", "uint8_t"),
        ("vehicle_type", "uint8_t"),
        ("failsafe", "bool"),
        ("gcs_connection_lost", "bool"),
    ],
}

"""The ULog writer: pyulog (an independent reader) reads back every field; C layout; atomic files."""

from __future__ import annotations

import ctypes
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyulog import ULog

from px4sim.ulog_writer import LOG_LEVEL_NAMES, PX4_TOPICS, UlogError, UlogWriter

_CTYPES = {
    "int8_t": ctypes.c_int8,
    "uint8_t": ctypes.c_uint8,
    "int16_t": ctypes.c_int16,
    "uint16_t": ctypes.c_uint16,
    "int32_t": ctypes.c_int32,
    "uint32_t": ctypes.c_uint32,
    "int64_t": ctypes.c_int64,
    "uint64_t": ctypes.c_uint64,
    "float": ctypes.c_float,
    "double": ctypes.c_double,
    "bool": ctypes.c_bool,
}
_NUMPY = {"float": np.float32, "double": np.float64}


def _split(type_text: str) -> tuple[str, int]:
    if type_text.endswith("]"):
        base, _, n = type_text[:-1].partition("[")
        return base, int(n)
    return type_text, 0


def _sample_value(rng: np.random.Generator, type_text: str) -> object:
    base, count = _split(type_text)

    def one() -> object:
        if base == "bool":
            return bool(rng.integers(0, 2))
        if base in ("float", "double"):
            return float(rng.normal(0.0, 100.0))
        dtype = getattr(np, base.removesuffix("_t"))
        info = np.iinfo(dtype)
        return int(rng.integers(info.min, info.max, endpoint=True, dtype=dtype))

    return [one() for _ in range(count)] if count else one()


def _read_column(data: dict[str, np.ndarray], name: str, type_text: str) -> np.ndarray:
    _, count = _split(type_text)
    if count:
        return np.stack([data[f"{name}[{i}]"] for i in range(count)], axis=-1)
    return data[name]


def _assert_equal_as_logged(got: np.ndarray, expected: object, type_text: str) -> None:
    base, _ = _split(type_text)
    want = np.asarray(expected)
    if base in _NUMPY:
        np.testing.assert_array_equal(got, want.astype(_NUMPY[base]))
    else:
        assert got.astype(object).tolist() == [int(v) if np.ndim(v) == 0 else [int(x) for x in v] for v in expected]


def test_pyulog_reads_back_every_px4_topic_field_by_field(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "flight.ulg"
    written: dict[str, list[dict[str, object]]] = {name: [] for name in PX4_TOPICS}
    with UlogWriter(path, start_timestamp_us=1_000, info={"sys_name": "px4sim", "ver_hw": "SITL"}) as writer:
        for name, fields in PX4_TOPICS.items():
            writer.add_topic(name, fields)
        for k in range(20):
            for name, fields in PX4_TOPICS.items():
                sample = {field: _sample_value(rng, t) for field, t in fields[1:]}
                sample["timestamp"] = 1_000 + 10_000 * k
                writer.write(name, sample)
                written[name].append(sample)

    log = ULog(str(path))
    assert not log.file_corruption
    assert log.start_timestamp == 1_000
    assert log.msg_info_dict["sys_name"] == "px4sim"
    assert log.msg_info_dict["ver_hw"] == "SITL"
    assert {d.name for d in log.data_list} == set(PX4_TOPICS)
    for name, fields in PX4_TOPICS.items():
        data = log.get_dataset(name).data
        for field, type_text in fields:
            expected = [sample[field] for sample in written[name]]
            _assert_equal_as_logged(_read_column(data, field, type_text), expected, type_text)


def test_fields_left_out_are_zero_and_numpy_values_are_taken(tmp_path: Path) -> None:
    path = tmp_path / "partial.ulg"
    with UlogWriter(path, 0) as writer:
        writer.add_topic("trajectory_setpoint", PX4_TOPICS["trajectory_setpoint"])
        writer.write(
            "trajectory_setpoint", {"timestamp": 5, "position": np.array([1.0, -2.0, -3.0]), "yaw": np.float64(0.5)}
        )
    data = ULog(str(path)).get_dataset("trajectory_setpoint").data
    np.testing.assert_array_equal(_read_column(data, "position", "float[3]"), [[1.0, -2.0, -3.0]])
    np.testing.assert_array_equal(_read_column(data, "velocity", "float[3]"), [[0.0, 0.0, 0.0]])
    assert data["yaw"][0] == np.float32(0.5)


def _c_struct(fields: list[tuple[str, str]]) -> type[ctypes.Structure]:
    c_fields = []
    for name, type_text in fields:
        base, count = _split(type_text)
        c_type = _CTYPES[base]
        c_fields.append((name, c_type * count if count else c_type))
    return type("S", (ctypes.Structure,), {"_fields_": c_fields})


def _messages(path: Path) -> list[tuple[int, bytes]]:
    raw = path.read_bytes()
    offset, out = 16, []
    while offset < len(raw):
        size, kind = struct.unpack_from("<HB", raw, offset)
        out.append((kind, raw[offset + 3 : offset + 3 + size]))
        offset += 3 + size
    return out


@pytest.mark.parametrize(
    "fields",
    [
        [
            ("timestamp", "uint64_t"),
            ("a", "uint8_t"),
            ("b", "float"),
            ("c", "uint16_t"),
            ("d", "double"),
            ("e", "int8_t"),
        ],
        PX4_TOPICS["vehicle_attitude"],
        PX4_TOPICS["battery_status"],
    ],
    ids=["mixed", "vehicle_attitude", "battery_status"],
)
def test_layout_is_the_c_struct_with_trailing_padding_declared_but_not_written(
    tmp_path: Path, fields: list[tuple[str, str]]
) -> None:
    """Padding fields sit where a C compiler puts gaps; the struct's tail padding is declared, not logged."""
    path = tmp_path / "layout.ulg"
    with UlogWriter(path, 0) as writer:
        writer.add_topic("t", fields)
        writer.write("t", {"timestamp": 7})
    messages = _messages(path)
    assert messages[0][0] == ord("B"), "the flag bits message must come first"
    format_text = next(p for k, p in messages if k == ord("F")).decode()
    data = next(p for k, p in messages if k == ord("D"))

    c_struct = _c_struct(fields)
    offset = 0
    declared: list[tuple[str, int]] = []  # (name, offset)
    for item in format_text.split(":", 1)[1].rstrip(";").split(";"):
        type_text, name = item.split(" ")
        base, count = _split(type_text)
        declared.append((name, offset))
        offset += ctypes.sizeof(_CTYPES[base]) * max(count, 1)
    assert offset == ctypes.sizeof(c_struct), "the declared fields (with padding) must add up to the C struct size"
    for name, field_offset in declared:
        if not name.startswith("_padding"):
            assert field_offset == getattr(c_struct, name).offset, f"field {name} is not where C puts it"
    last_name, last_offset = declared[-1]
    logged = last_offset if last_name.startswith("_padding") else ctypes.sizeof(c_struct)
    assert len(data) == 2 + logged, "a data message carries the struct without its trailing padding"


def test_logged_strings_keep_level_time_and_text(tmp_path: Path) -> None:
    path = tmp_path / "strings.ulg"
    with UlogWriter(path, 0) as writer:
        writer.log_message(4, 123_456, "Low battery: 14.1 V")
        writer.log_message(6, 200_000, "Takeoff detected")
    got = [(m.log_level_str(), m.timestamp, m.message) for m in ULog(str(path)).logged_messages]
    assert got == [
        (LOG_LEVEL_NAMES[4], 123_456, "Low battery: 14.1 V"),
        (LOG_LEVEL_NAMES[6], 200_000, "Takeoff detected"),
    ]


def test_a_writer_that_dies_leaves_no_file_under_the_final_name(tmp_path: Path) -> None:
    path = tmp_path / "crash.ulg"
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from px4sim.ulog_writer import PX4_TOPICS, UlogWriter
        writer = UlogWriter(Path({str(path)!r}), 0)
        writer.add_topic("vehicle_local_position", PX4_TOPICS["vehicle_local_position"])
        for k in range(1000):
            writer.write("vehicle_local_position", {{"timestamp": k, "x": 1.0}})
        os._exit(3)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 3, result.stderr
    assert not path.exists(), "a half-written log appeared under its final name"
    leftovers = list(tmp_path.glob(".crash.ulg.*.tmp"))
    assert len(leftovers) == 1, "the unfinished log should stay beside it under a hidden temporary name"


def test_an_error_in_the_with_block_keeps_the_log_up_to_the_error(tmp_path: Path) -> None:
    path = tmp_path / "error.ulg"

    def fly_and_crash() -> None:
        with UlogWriter(path, 0) as writer:
            writer.add_topic("trajectory_setpoint", PX4_TOPICS["trajectory_setpoint"])
            for k in range(5):
                writer.write("trajectory_setpoint", {"timestamp": k})
            raise RuntimeError("simulator crashed")

    with pytest.raises(RuntimeError, match="simulator crashed"):
        fly_and_crash()
    log = ULog(str(path))
    assert log.get_dataset("trajectory_setpoint").data["timestamp"].tolist() == [0, 1, 2, 3, 4]
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_use_raises_errors_that_say_what_is_wrong(tmp_path: Path) -> None:
    with UlogWriter(tmp_path / "bad.ulg", 0) as writer:
        with pytest.raises(UlogError, match="first field"):
            writer.add_topic("t", [("x", "float")])
        with pytest.raises(UlogError, match="unknown type"):
            writer.add_topic("t", [("timestamp", "uint64_t"), ("x", "float16")])
        writer.add_topic("t", [("timestamp", "uint64_t"), ("v", "float[3]"), ("n", "uint8_t")])
        with pytest.raises(UlogError, match="no field"):
            writer.write("t", {"timestamp": 1, "w": 1.0})
        with pytest.raises(UlogError, match="3 numbers"):
            writer.write("t", {"timestamp": 1, "v": [1.0, 2.0]})
        with pytest.raises(UlogError, match="not declared"):
            writer.write("u", {"timestamp": 1})
        with pytest.raises(UlogError, match="timestamp"):
            writer.write("t", {"v": [1.0, 2.0, 3.0]})
        with pytest.raises(UlogError, match="does not fit"):
            writer.write("t", {"timestamp": 1, "n": 300})
        writer.write("t", {"timestamp": 1})
        with pytest.raises(UlogError, match="before the data"):
            writer.add_topic("late", [("timestamp", "uint64_t")])


_SCALAR_TYPES = [
    "int8_t",
    "uint8_t",
    "int16_t",
    "uint16_t",
    "int32_t",
    "uint32_t",
    "int64_t",
    "float",
    "double",
    "bool",
]


@settings(max_examples=25, deadline=None)
@given(
    types=st.lists(st.tuples(st.sampled_from(_SCALAR_TYPES), st.sampled_from([0, 0, 1, 3])), min_size=1, max_size=8),
    seed=st.integers(0, 2**31 - 1),
)
def test_any_field_list_round_trips(
    tmp_path_factory: pytest.TempPathFactory, types: list[tuple[str, int]], seed: int
) -> None:
    fields = [("timestamp", "uint64_t")] + [(f"f{i}", f"{t}[{n}]" if n else t) for i, (t, n) in enumerate(types)]
    rng = np.random.default_rng(seed)
    samples = [{"timestamp": k, **{name: _sample_value(rng, t) for name, t in fields[1:]}} for k in range(3)]
    path = tmp_path_factory.mktemp("prop") / "any.ulg"
    with UlogWriter(path, 0) as writer:
        writer.add_topic("any_topic", fields)
        for sample in samples:
            writer.write("any_topic", sample)
    data = ULog(str(path)).get_dataset("any_topic").data
    for name, type_text in fields:
        _assert_equal_as_logged(_read_column(data, name, type_text), [s[name] for s in samples], type_text)

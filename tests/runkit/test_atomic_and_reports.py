"""Atomic writes never leave a torn or temporary file; reports convert numpy and dataclasses to JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from runkit import format_table, to_jsonable, write_json_atomic, write_text_atomic


def test_write_replaces_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_failed_serialisation_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    write_json_atomic(target, {"ok": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_to_jsonable_handles_numpy_dataclasses_and_non_finite() -> None:
    @dataclass
    class Record:
        values: np.ndarray
        count: np.int64
        flag: np.bool_
        ratio: float

    out = to_jsonable({"r": Record(np.array([1.0, 2.0]), np.int64(3), np.bool_(True), float("inf")), "p": Path("a")})
    assert out == {"r": {"values": [1.0, 2.0], "count": 3, "flag": True, "ratio": None}, "p": "a"}
    json.dumps(out, allow_nan=False)


def test_format_table_aligns_columns() -> None:
    text = format_table(["name", "value"], [["a", 1.23456], ["longer", 2.0]])
    lines = text.splitlines()
    assert lines[0].startswith("name  ")
    assert "1.235" in lines[2]
    assert "2.000" in lines[3]
    assert len({line.index(line.split()[-1]) for line in lines[2:]}) == 1


def test_written_files_get_normal_permissions(tmp_path: Path) -> None:
    import os
    import stat

    mask = os.umask(0o022)
    os.umask(mask)
    target = write_text_atomic(tmp_path / "shared.txt", "x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_the_t_interval_over_seeds_matches_the_textbook_value() -> None:
    from runkit.reports import mean_t_interval

    mean, half = mean_t_interval([1.0, 2.0, 3.0])  # s = 1, n = 3, t(0.975, 2) = 4.3027
    assert mean == 2.0
    assert half == pytest.approx(4.302653 / 3**0.5, rel=1e-5)
    assert mean_t_interval([5.0]) == (5.0, 0.0)  # one seed: no interval

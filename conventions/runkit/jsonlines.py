"""Durable JSON-lines files: appends that survive a crash, and reads that recover from a torn last line.

An append is one write of whole lines, flushed and fsynced: after a crash the file ends with every
line appended before it, and at most one torn line (a write cut short). `read_json_lines` skips that
torn last line (and, with `repair`, cuts it off so the next append starts on a clean line); a line
that does not parse anywhere else is damage, not a crash, and raises `JsonLinesCorruptError`.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runkit.cli import UserError
from runkit.reports import to_jsonable

log = logging.getLogger(__name__)


class JsonLinesCorruptError(UserError, ValueError):
    """A line before the last one of a JSON-lines file does not parse (the file is damaged)."""


def append_json_lines(path: str | Path, rows: Iterable[Mapping[str, Any]], durable: bool = True) -> int:
    """Append `rows` as JSON lines in one write (flushed, and fsynced if `durable`); return how many."""
    text = "".join(json.dumps(to_jsonable(dict(row)), allow_nan=False) + "\n" for row in rows)
    if not text:
        return 0
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("ab") as handle:
        handle.write(text.encode("utf-8"))
        handle.flush()
        if durable:
            os.fsync(handle.fileno())
    return text.count("\n")


def read_json_lines(path: str | Path, repair: bool = False) -> list[Any]:
    """The parsed lines of `path` ([] if neither it nor `path`.gz exists); a torn last line is skipped (cut off if
    `repair`, never in a .gz copy).

    Raises:
        JsonLinesCorruptError: a line other than the last does not parse.
    """
    source = Path(path)
    packed = source.with_name(source.name + ".gz")
    if source.exists():
        data = source.read_bytes()
    elif packed.exists():  # an archived copy (e.g. a finished run committed as scalars.jsonl.gz): read only
        data, repair = gzip.decompress(packed.read_bytes()), False
    else:
        return []
    rows: list[Any] = []
    offset, line_number = 0, 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        line_number += 1
        if end < 0:  # no newline: the write of this line never completed
            _torn_tail(source, data, offset, line_number, "has no newline", repair)
            break
        line = data[offset:end]
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as error:
                if data[end + 1 :].strip():
                    raise JsonLinesCorruptError(f"{source}:{line_number}: not a JSON line ({error})") from None
                _torn_tail(source, data, offset, line_number, f"does not parse ({error})", repair)
                break
        offset = end + 1
    return rows


def _torn_tail(path: Path, data: bytes, offset: int, line_number: int, why: str, repair: bool) -> None:
    torn = len(data) - offset
    if not repair:
        log.warning("%s:%d: skipping a torn last line (%d bytes) that %s", path, line_number, torn, why)
        return
    log.warning("%s:%d: cutting off a torn last line (%d bytes) that %s", path, line_number, torn, why)
    with path.open("r+b") as handle:
        handle.truncate(offset)
        handle.flush()
        os.fsync(handle.fileno())


__all__ = ["JsonLinesCorruptError", "append_json_lines", "read_json_lines"]

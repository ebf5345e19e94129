"""Atomic file writes: a reader sees the old file or the new one, never a torn one.

`write_bytes_atomic` / `write_text_atomic` / `write_json_atomic` write a whole file at once;
`atomic_stream` is the same for a file written piece by piece (a video, a large array file), and
`save_figure` for a matplotlib figure.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from runkit.reports import to_jsonable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, fsync, then rename.

    The file gets the usual permissions (0666 less the umask), not the temporary file's 0600.
    """
    with atomic_stream(path) as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, payload: Any, indent: int = 2) -> Path:
    """Write `payload` as JSON atomically; numpy arrays and scalars and dataclasses are converted."""
    return write_text_atomic(path, json.dumps(to_jsonable(payload), indent=indent, allow_nan=False) + "\n")


@contextmanager
def atomic_stream(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary file to write piece by piece that appears at `path` only when the block ends without error.

    On an exception (or Ctrl-C) the partial file is removed and `path` keeps what it held before.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def save_figure(figure: Any, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically (the format from the suffix, e.g. .png or .svg); return the path."""
    target = Path(path)
    with atomic_stream(target) as handle:
        figure.savefig(handle, dpi=dpi, format=target.suffix.lstrip(".") or "png")
    return target


SUMMARY_FILE = "summary.json"
"""The figures of a finished run (or bench), in its run folder: what reports and tests read."""


def write_summary(run_dir: str | Path, summary: Any) -> Path:
    """Write a run's figures to `run_dir/summary.json` atomically; return the path."""
    return write_json_atomic(Path(run_dir) / SUMMARY_FILE, summary)

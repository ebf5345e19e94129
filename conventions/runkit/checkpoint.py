"""The one checkpoint envelope: every checkpoint and deployable file of the project is written and read here.

A file is a `torch.save` of a plain dict, the *envelope*:

    {"format": "<package>.<kind>/<version>", "config": {...}, "state": {...}, "rng": {...} | None,
     "metadata": {...}}

`config` is the run's configuration as JSON values, `state` what the package saves (tensors, module and
optimiser state dicts, numpy arrays, plain values), `rng` the random generators (`seeding.capture_rng`),
`metadata` plain values about the file (what made it, figures). Files are read with
`torch.load(weights_only=True)`: tensors and plain values only, so nothing in a file is unpickled into an
object and a crafted file cannot run code. numpy arrays are stored as tagged tensors and come back as
arrays.

Anything that is not an envelope of an expected format (a missing, truncated, foreign or pickled file,
another format, an old format that needed unpickling) raises a `CheckpointError`: one line naming the
file and the problem, a user's error (exit status 2 under the CLI runner).
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from runkit.atomic import write_bytes_atomic
from runkit.cli import UserError, typed_one_line
from runkit.reports import to_jsonable

_NUMPY_TAG = "__numpy__"
ENVELOPE_KEYS = ("format", "config", "state", "rng", "metadata")


class CheckpointError(UserError, ValueError):
    """A file is not a checkpoint of the expected format, or does not fit the run it is loaded into."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """No file at the checkpoint's path."""


@dataclass(frozen=True)
class Envelope:
    """A checkpoint as read: its format, the run's config, the saved state, the generators and the metadata."""

    path: Path
    format: str
    config: dict[str, Any]
    state: dict[str, Any]
    rng: dict[str, Any] | None
    metadata: dict[str, Any]


def config_dict(config: Any) -> dict[str, Any]:
    """A dataclass config (or a mapping) as JSON values (paths as strings, tuples as lists)."""
    if config is None:
        return {}
    data = asdict(config) if is_dataclass(config) and not isinstance(config, type) else dict(config)
    return dict(to_jsonable(data))


def storable(value: Any) -> Any:
    """`value` with numpy arrays and scalars as tagged tensors; TypeError for what a file cannot hold."""
    if isinstance(value, np.ndarray | np.generic):  # before float: np.float64 is a float
        return {_NUMPY_TAG: torch.from_numpy(np.array(value, copy=True)), "scalar": isinstance(value, np.generic)}
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return value
    if isinstance(value, Mapping):
        return {key: storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, tuple):
        return tuple(storable(item) for item in value)
    raise TypeError(f"a checkpoint cannot hold a {type(value).__name__}: store tensors, arrays and plain values")


def from_storable(value: Any) -> Any:
    """Inverse of `storable` (tagged tensors back to numpy arrays and scalars)."""
    if isinstance(value, dict):
        if value.keys() == {_NUMPY_TAG, "scalar"} and isinstance(value[_NUMPY_TAG], torch.Tensor):
            array = value[_NUMPY_TAG].numpy().copy()
            return array[()] if value["scalar"] else array
        return {key: from_storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_storable(item) for item in value]
    if isinstance(value, tuple):
        return tuple(from_storable(item) for item in value)
    return value


def envelope_bytes(
    format: str,
    state: Mapping[str, Any],
    *,
    config: Any = None,
    rng: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> bytes:
    """The bytes of an envelope (see the module docstring); TypeError for a value a file cannot hold."""
    payload = {
        "format": str(format),
        "config": config_dict(config),
        "state": storable(dict(state)),
        "rng": dict(rng) if rng is not None else None,
        "metadata": storable(dict(metadata or {})),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_envelope(
    path: str | Path,
    format: str,
    state: Mapping[str, Any],
    *,
    config: Any = None,
    rng: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write an envelope atomically (a reader sees the old file or the new one); return its path."""
    return write_bytes_atomic(path, envelope_bytes(format, state, config=config, rng=rng, metadata=metadata))


def load_envelope(
    path: str | Path,
    formats: Sequence[str],
    kind: str,
    *,
    retired: Mapping[str, str] | None = None,
) -> Envelope:
    """Read an envelope of one of `formats` safely (weights_only); `kind` names it in errors ("mfplan policy").

    Args:
        retired: old format tags -> what to do about a file in them (e.g. the command that re-exports it);
            such a file is recognised by its bytes, never unpickled, and refused with that advice.

    Raises:
        MissingCheckpointError: no file at `path`.
        CheckpointError: anything else that is not an envelope of `formats`.
    """
    source = Path(path)
    advice = dict(retired or {})
    if not source.is_file():
        raise MissingCheckpointError(f"no {kind} at {source}")
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for pickles, truncated, corrupt or foreign files
        old = _retired_format(source, advice)
        if old is not None:
            raise CheckpointError(f"{source} is in the retired format {old!r}: {advice[old]}") from None
        raise CheckpointError(f"{source} is not a readable {kind} ({typed_one_line(exc)})") from None
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if isinstance(found, str) and found in advice:
        raise CheckpointError(f"{source} is in the retired format {found!r}: {advice[found]}")
    if not isinstance(payload, dict) or found not in formats:
        raise CheckpointError(f"{source} is not a {kind} (format {found!r}, expected {' or '.join(formats)})")
    missing = [key for key in ENVELOPE_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{source} lacks the entries {missing} of a {found} file")
    for key in ("config", "state", "metadata"):
        if not isinstance(payload[key], dict):
            raise CheckpointError(f"{source}: {key!r} must be a dict, got {type(payload[key]).__name__}")
    if payload["rng"] is not None and not isinstance(payload["rng"], dict):
        raise CheckpointError(f"{source}: 'rng' must be a dict or None, got {type(payload['rng']).__name__}")
    return Envelope(
        path=source,
        format=str(found),
        config=payload["config"],
        state=from_storable(payload["state"]),
        rng=payload["rng"],
        metadata=from_storable(payload["metadata"]),
    )


def payload_difference(old: Any, new: Any, where: str = "payload") -> str | None:
    """The first place where `new` does not hold exactly what `old` held (tensors and arrays bitwise, dtypes
    included; NaN equals NaN), described; None when they are the same. For re-export scripts' checks."""
    if isinstance(old, torch.Tensor) or isinstance(new, torch.Tensor):
        if not (isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor)):
            return f"{where}: tensor vs other"
        same = old.dtype == new.dtype and old.shape == new.shape and torch.equal(old, new)
        return None if same else f"{where} differs"
    if isinstance(old, np.ndarray) or isinstance(new, np.ndarray):
        same = isinstance(old, np.ndarray) and isinstance(new, np.ndarray) and old.dtype == new.dtype
        return None if same and np.array_equal(old, new, equal_nan=True) else f"{where} differs"
    if isinstance(old, Mapping):
        if not isinstance(new, Mapping):
            return f"{where}: dict vs {type(new).__name__}"
        if set(old) != set(new):
            return f"{where}: entries {sorted(map(str, old))} vs {sorted(map(str, new))}"
        return next((d for k in old if (d := payload_difference(old[k], new[k], f"{where}.{k}"))), None)
    if isinstance(old, list | tuple):
        if not (isinstance(new, list | tuple) and len(old) == len(new)):
            return f"{where}: sequences differ"
        pairs = enumerate(zip(old, new, strict=True))
        return next((d for i, (a, b) in pairs if (d := payload_difference(a, b, f"{where}[{i}]"))), None)
    if isinstance(old, float) and math.isnan(old):
        return None if isinstance(new, float) and math.isnan(new) else f"{where}: {old!r} vs {new!r}"
    return None if type(old) is type(new) and old == new else f"{where}: {old!r} vs {new!r}"


def require(condition: bool, envelope: Envelope, problem: str) -> None:
    """CheckpointError naming the file unless `condition` (for a package's checks of what `state` holds)."""
    if not condition:
        raise CheckpointError(f"{envelope.path}: {problem}")


def _retired_format(path: Path, retired: Mapping[str, str]) -> str | None:
    """A retired format tag in a torch zip file's pickle, found by reading bytes (never unpickling)."""
    if not retired:
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")), None)
            if name is None:
                return None
            with archive.open(name) as pickled:
                head = pickled.read(1 << 20)  # the format is the payload's first key
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return None
    return next((tag for tag in retired if tag.encode() in head), None)


__all__ = [
    "ENVELOPE_KEYS",
    "CheckpointError",
    "Envelope",
    "MissingCheckpointError",
    "config_dict",
    "envelope_bytes",
    "from_storable",
    "load_envelope",
    "payload_difference",
    "require",
    "save_envelope",
    "storable",
]

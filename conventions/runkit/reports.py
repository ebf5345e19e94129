"""Report helpers: JSON-safe conversion and plain-text tables for terminal summaries."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """Convert numpy values, dataclasses, paths and tuples into plain JSON types (non-finite floats -> None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], float_format: str = "{:.3f}") -> str:
    """Render rows as an aligned plain-text table (floats formatted with `float_format`)."""

    def cell(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            return float_format.format(value)
        return str(value)

    text_rows = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text_rows)) if text_rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in text_rows)
    return "\n".join(lines)


def mean_t_interval(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of a 95 % t-interval over `values` (seeds); half-width 0 for one value."""
    from scipy import stats  # here, so that importing runkit stays light

    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    if array.size < 2:
        return mean, 0.0
    return mean, float(stats.t.ppf(0.975, array.size - 1) * array.std(ddof=1) / math.sqrt(array.size))

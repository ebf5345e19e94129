"""Every evaluation the trainer paid for, in an append-only JSON-lines file that survives a crash.

One line is one `EvaluationRecord`. The file is read and written through `runkit.jsonlines`: an append
writes its lines with one `write`, then flushes and fsyncs, so a crash (kill -9, power loss) loses at
most the lines being written; on load a torn tail (a last line without its newline, or one that does not
parse) is skipped with a warning and cut off the file, so that later appends start on a clean line.
Anything else that is not a record (a bad line before good ones, a record out of order) is damage:
`DatasetCorruptError`. Reopening the same path resumes: the records are read back and the record index
goes on from the last one.

One writer per file (the trainer); any number of read-only readers.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mfplan.analysis import NUM_FEATURES, feasibility_score
from mfplan.fidelities import FIDELITY_NAMES, fidelity_value
from quadsim.evaluation import EvaluationResult
from runkit.jsonlines import JsonLinesCorruptError, append_json_lines, read_json_lines


class DatasetCorruptError(JsonLinesCorruptError):
    """The file holds something other than records followed by at most one torn line (a user's error: one line)."""


@dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation of one trajectory at one fidelity.

    `index` and `timestamp` are given by the dataset when the record is appended.
    """

    features: tuple[float, ...]
    """The trajectory's features (`mfplan.analysis.FEATURE_NAMES`)."""
    fidelity: str
    score: float
    """`mfplan.analysis.feasibility_score`: <= 0 exactly when feasible."""
    feasible: bool
    wall_time_s: float
    course_id: str = ""
    course_seed: int | None = None
    segment_times_s: tuple[float, ...] = ()
    reason: str = ""
    """Why infeasible (the evaluator's first violation), empty when feasible."""
    wind_seed: int | None = None
    """The realisation of wind and sensor noise of a RotorPy flight (None: the evaluator's own, or not RotorPy)."""
    index: int | None = None
    timestamp: float | None = None
    """Unix time (s) the record was appended."""

    def __post_init__(self) -> None:
        fidelity_value(self.fidelity)
        object.__setattr__(self, "features", tuple(float(v) for v in self.features))
        object.__setattr__(self, "segment_times_s", tuple(float(v) for v in self.segment_times_s))
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "feasible", bool(self.feasible))
        object.__setattr__(self, "wall_time_s", float(self.wall_time_s))
        values = (*self.features, *self.segment_times_s, self.score, self.wall_time_s)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"record has a non-finite number: features, segment times, score and wall time: {values}")

    @classmethod
    def from_result(
        cls,
        features: np.ndarray | Sequence[float],
        result: EvaluationResult,
        segment_times_s: np.ndarray | Sequence[float] = (),
        course_id: str = "",
        course_seed: int | None = None,
        score: float | None = None,
        wind_seed: int | None = None,
    ) -> EvaluationRecord:
        """A record of an evaluator's result (the score defaults to `feasibility_score(result)`)."""
        return cls(
            features=tuple(np.asarray(features, dtype=float).tolist()),
            fidelity=result.fidelity,
            score=feasibility_score(result) if score is None else score,
            feasible=result.feasible,
            wall_time_s=result.wall_time_s,
            course_id=course_id,
            course_seed=course_seed,
            segment_times_s=tuple(np.asarray(segment_times_s, dtype=float).tolist()),
            reason=result.reason,
            wind_seed=wind_seed,
        )

    def to_json(self) -> str:
        """One JSON line (no newline)."""
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON values (what one line of the data set holds)."""
        return {
            "index": self.index,
            "timestamp": self.timestamp,
            "fidelity": self.fidelity,
            "score": self.score,
            "feasible": self.feasible,
            "wall_time_s": self.wall_time_s,
            "course_id": self.course_id,
            "course_seed": self.course_seed,
            "segment_times_s": list(self.segment_times_s),
            "features": list(self.features),
            "reason": self.reason,
            "wind_seed": self.wind_seed,
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> EvaluationRecord:
        """The record of one parsed JSON line (unknown keys are ignored)."""
        seed, wind = payload.get("course_seed"), payload.get("wind_seed")
        return cls(
            features=tuple(payload["features"]),
            fidelity=str(payload["fidelity"]),
            score=payload["score"],
            feasible=payload["feasible"],
            wall_time_s=payload["wall_time_s"],
            course_id=str(payload.get("course_id", "")),
            course_seed=None if seed is None else int(seed),
            segment_times_s=tuple(payload.get("segment_times_s", ())),
            reason=str(payload.get("reason", "")),
            wind_seed=None if wind is None else int(wind),
            index=int(payload["index"]),
            timestamp=float(payload["timestamp"]),
        )


class EvaluationDataset:
    """The evaluations in one JSON-lines file, loaded at construction and appended to durably."""

    def __init__(self, path: str | Path, num_features: int = NUM_FEATURES, read_only: bool = False) -> None:
        self.path = Path(path)
        self.num_features = num_features
        self.read_only = read_only
        self._records: list[EvaluationRecord] = []
        self._lock = threading.Lock()
        self.reload()

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[EvaluationRecord]:
        return iter(list(self._records))

    def __getitem__(self, position: int) -> EvaluationRecord:
        return self._records[position]

    @property
    def records(self) -> tuple[EvaluationRecord, ...]:
        """All records, oldest first."""
        return tuple(self._records)

    @property
    def next_index(self) -> int:
        """The index the next appended record gets."""
        last = self._records[-1].index if self._records else None
        return 0 if last is None else last + 1

    def reload(self) -> None:
        """Read the file again (a torn last line is skipped, and cut off unless read-only)."""
        with self._lock:
            self._records = self._read()

    def append(self, records: EvaluationRecord | Iterable[EvaluationRecord]) -> list[EvaluationRecord]:
        """Append one record or a batch durably (one write, flush, fsync); returns them as stored.

        Each stored record gets the next index and, unless it has one, the current time.
        """
        if self.read_only:
            raise PermissionError(f"dataset {self.path} was opened read-only")
        batch = [records] if isinstance(records, EvaluationRecord) else list(records)
        with self._lock:
            start = self.next_index
            now = time.time()
            stored = [
                replace(r, index=start + i, timestamp=now if r.timestamp is None else r.timestamp)
                for i, r in enumerate(batch)
            ]
            for record in stored:
                self._check_width(record)
            if not stored:
                return []
            append_json_lines(self.path, [r.to_dict() for r in stored], durable=True)
            self._records.extend(stored)
        return stored

    def counts(self) -> dict[str, int]:
        """Number of records at each fidelity (every fidelity of the ladder is a key)."""
        counts = dict.fromkeys(FIDELITY_NAMES, 0)
        for record in self._records:
            counts[record.fidelity] += 1
        return counts

    def as_tensors(
        self, fidelities: Iterable[str] | None = None, dtype: torch.dtype = torch.double
    ) -> tuple[Tensor, Tensor]:
        """Training tensors for the estimator, oldest record first.

        Args:
            fidelities: keep only records at these fidelities (all when None).
            dtype: the tensors' dtype (double for GPs).

        Returns:
            X: an `n x (d + 1)`-dim tensor: the `d` features, then the fidelity column in [0, 1].
            Y: an `n x 1`-dim tensor of scores.
        """
        wanted = set(FIDELITY_NAMES if fidelities is None else fidelities)
        for name in wanted:
            fidelity_value(name)
        chosen = [r for r in self._records if r.fidelity in wanted]
        X = torch.tensor([[*r.features, fidelity_value(r.fidelity)] for r in chosen], dtype=dtype).reshape(
            len(chosen), self.num_features + 1
        )
        Y = torch.tensor([r.score for r in chosen], dtype=dtype).reshape(len(chosen), 1)
        return X, Y

    def _check_width(self, record: EvaluationRecord) -> None:
        if len(record.features) != self.num_features:
            raise ValueError(
                f"record has {len(record.features)} features; dataset {self.path} holds {self.num_features}"
            )

    def _read(self) -> list[EvaluationRecord]:
        try:
            rows = read_json_lines(self.path, repair=not self.read_only)
        except JsonLinesCorruptError as exc:
            raise DatasetCorruptError(str(exc)) from None
        records: list[EvaluationRecord] = []
        for number, row in enumerate(rows, start=1):
            try:
                record = EvaluationRecord.from_json(row)
            except (ValueError, KeyError, TypeError) as error:
                raise DatasetCorruptError(f"{self.path}: record {number}: not an evaluation record ({error})") from None
            self._check_width(record)
            previous = records[-1].index if records else None
            if previous is not None and record.index is not None and record.index <= previous:
                raise DatasetCorruptError(
                    f"{self.path}: record {number}: record index {record.index} does not follow {previous}"
                )
            records.append(record)
        return records

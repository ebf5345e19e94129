"""The one metrics logger and progress bar of the project.

`RunLogger` writes scalars to `run_dir/scalars.jsonl` (one `{"step", "name", "value"}` object a line,
which reports and tests read without TensorBoard) and to TensorBoard events, and drives a progress
bar. Names follow CleanRL and SB3, one naming for every package: `charts/SPS`,
`charts/episodic_return`, `charts/learning_rate`, `losses/<name>` (policy_loss, value_loss, approx_kl,
...), `rollout/<name>` (what a rollout or an evaluation measured). A resumed run drops what was logged
after its checkpoint, so its log reads like an uninterrupted run's. Use it as a context manager: the
files and the bar are closed on an exception too.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from runkit.atomic import write_text_atomic
from runkit.jsonlines import read_json_lines

SCALARS_FILE = "scalars.jsonl"
METRIC_PREFIXES = ("charts/", "losses/", "rollout/")
"""Every scalar's name starts with one of these."""


def progress_bar(total: int | None, desc: str, enabled: bool = True, unit: str = "it", initial: int = 0) -> tqdm:
    """The project's progress bar (tqdm on stderr; disabled: nothing is drawn)."""
    return tqdm(
        total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, smoothing=0.1, dynamic_ncols=True
    )


class RunLogger:
    """Scalars to `run_dir/scalars.jsonl` and TensorBoard; a progress bar over `total_steps`.

    `resume_step`: drop rows logged after this step (written after the checkpoint that a resumed run
    continues from); None starts a fresh log.
    """

    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        *,
        desc: str = "run",
        unit: str = "step",
        tensorboard: bool = True,
        progress: bool = True,
        resume_step: int | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / SCALARS_FILE
        if resume_step is None:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            kept = [row for row in read_json_lines(self.path) if int(row["step"]) <= resume_step]
            write_text_atomic(self.path, "".join(json.dumps(row) + "\n" for row in kept))
        self._file = self.path.open("a", encoding="utf-8")
        self._writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=resume_step)
        self._bar = progress_bar(total_steps, desc, progress, unit, initial=resume_step or 0)
        self.last: dict[str, float] = {}

    def scalar(self, name: str, value: float, step: int) -> None:
        """Record one scalar at `step` (non-finite values are written as null).

        Raises:
            ValueError: a name outside the project's naming (`METRIC_PREFIXES`).
        """
        if not name.startswith(METRIC_PREFIXES):
            raise ValueError(f"metric {name!r} must start with one of {METRIC_PREFIXES}")
        number = float(value)
        self.last[name] = number
        row = {"step": int(step), "name": name, "value": number if math.isfinite(number) else None}
        self._file.write(json.dumps(row) + "\n")
        if self._writer is not None:
            self._writer.add_scalar(name, number, int(step))

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Record several scalars at one step."""
        for name, value in values.items():
            self.scalar(name, value, step)

    def text(self, name: str, text: str) -> None:
        """Record a text (e.g. the configuration) in TensorBoard."""
        if self._writer is not None:
            self._writer.add_text(name, text)

    def advance(self, steps: int, **postfix: float) -> None:
        """Move the progress bar by `steps` and show `postfix` figures."""
        if postfix:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        self._bar.update(steps)

    def flush(self) -> None:
        """Push buffered scalars to disk (done at every checkpoint)."""
        self._file.flush()
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the files and the bar."""
        if self._file.closed:
            return
        self.flush()
        self._file.close()
        if self._writer is not None:
            self._writer.close()
        self._bar.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars of a run: name -> [(step, value), ...] in logging order (null values skipped)."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in read_json_lines(Path(run_dir) / SCALARS_FILE):
        if row["value"] is not None:
            series[row["name"]].append((int(row["step"]), float(row["value"])))
    return dict(series)


__all__ = ["METRIC_PREFIXES", "SCALARS_FILE", "RunLogger", "progress_bar", "read_scalars"]

"""One logger for every policyopt run: TensorBoard events, a JSONL of scalars, and a progress bar.

Names follow CleanRL and SB3: `charts/SPS`, `charts/episodic_return`, `charts/learning_rate`,
`losses/policy_loss`, `losses/value_loss`, `losses/approx_kl`, `rollout/sampling_error`. The
JSONL (`scalars.jsonl`, one `{"step", "name", "value"}` object a line) lets reports and tests read
the figures without TensorBoard.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from flightkit import write_text_atomic

SCALARS_FILE = "scalars.jsonl"


class RunLogger:
    """Scalars to TensorBoard and `run_dir/scalars.jsonl`; a tqdm bar over environment steps.

    `resume_step`: drop JSONL rows logged after this step (written after the checkpoint that a
    resumed run continues from), so a resumed run's log reads like an uninterrupted one.
    """

    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        *,
        desc: str = "policyopt",
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
            kept = [line for line in self.path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
            write_text_atomic(self.path, "".join(line + "\n" for line in kept))
        self._file = self.path.open("a", encoding="utf-8")
        self._writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=resume_step)
        self._bar = tqdm(
            total=total_steps, initial=resume_step or 0, desc=desc, unit="step", disable=not progress, smoothing=0.1
        )
        self.last: dict[str, float] = {}

    def scalar(self, name: str, value: float, step: int) -> None:
        """Record one scalar at environment step `step` (non-finite values are written as null)."""
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
    path = Path(run_dir) / SCALARS_FILE
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["value"] is not None:
            series[row["name"]].append((int(row["step"]), float(row["value"])))
    return dict(series)


__all__ = ["SCALARS_FILE", "RunLogger", "read_scalars"]

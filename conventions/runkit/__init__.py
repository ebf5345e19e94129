"""runkit: the run conventions every package of the project builds on (the bottom import layer).

One of each, and nothing of the project imported:

- `runkit.atomic`: atomic writes (bytes, text, JSON, a streamed file, a figure) and `summary.json`;
- `runkit.jsonlines`: durable JSON-lines appends and reads that recover from a torn last line;
- `runkit.logs`: the logger set-up; `runkit.reports`: JSON-safe values and terminal tables;
- `runkit.config`: `RunConfig` (seed, run folder, resume, smoke, threads, determinism, progress), the one
  smoke rule (`SMOKE_TEST=1` means `--smoke`; only sizes left at their defaults shrink) and the run folder's
  rules (a fresh run never mixes with an earlier one; `--resume` without a checkpoint is an error);
- `runkit.checkpoint`: the checkpoint envelope (format, config, state, rng, metadata), read only with
  `weights_only=True`; `runkit.seeding`: seeding and the random generators' state (both import torch);
- `runkit.metrics`: `RunLogger` (scalars.jsonl + TensorBoard + progress bar) and `progress_bar`;
- `runkit.cli`: the CLI runner (tyro; user errors one line with exit 2; SIGTERM as Ctrl-C);
- `runkit.testing`: helpers for every package's tests.

Importing `runkit` itself stays light (no torch, no tyro): the torch-based modules are imported by name.
"""

from runkit.atomic import (
    SUMMARY_FILE,
    atomic_stream,
    save_figure,
    write_bytes_atomic,
    write_json_atomic,
    write_summary,
    write_text_atomic,
)
from runkit.cli import UserError, as_user_error, run_cli
from runkit.config import RunConfig, RunDirectoryError, prepare_run_dir, smoke_requested
from runkit.jsonlines import JsonLinesCorruptError, append_json_lines, read_json_lines
from runkit.logs import get_logger
from runkit.reports import format_table, to_jsonable

__all__ = [
    "SUMMARY_FILE",
    "JsonLinesCorruptError",
    "RunConfig",
    "RunDirectoryError",
    "UserError",
    "append_json_lines",
    "as_user_error",
    "atomic_stream",
    "format_table",
    "get_logger",
    "prepare_run_dir",
    "read_json_lines",
    "run_cli",
    "save_figure",
    "smoke_requested",
    "to_jsonable",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_summary",
    "write_text_atomic",
]

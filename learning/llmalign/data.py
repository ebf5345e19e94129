"""Training data: generated from a task in code, written as JSON lines, and read back with every record checked.

A supervised record is ``{"prompt": str, "response": str}``. `read_records` reads a whole file and checks it
before any training starts (valid UTF-8, one JSON object per line, both fields present and strings, a
non-empty prompt, no word the tokenizer does not know, prompt and response within the model's context); the
first bad record raises a `DataError` naming the file, the line and what is wrong, so a run never stops
half-way through on bad data and nothing already written is touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from transformers import PreTrainedTokenizerFast

from llmalign.arithmetic_task import sample_problem, solution
from llmalign.preference_task import base_response, split_prompts
from llmalign.tokenizer import encode_pair
from runkit import UserError
from runkit.atomic import write_text_atomic

Task = Literal["preference", "arithmetic"]
TASKS: tuple[Task, ...] = ("preference", "arithmetic")


class DataError(UserError, ValueError):
    """A data record that cannot be trained on (names the file, the line and the problem)."""


@dataclass(frozen=True)
class Record:
    """One supervised example."""

    prompt: str
    response: str


def generate_records(task: Task, count: int, seed: int) -> list[Record]:
    """`count` SFT examples of the task's training split, drawn from `seed`.

    preference: the train prompts, cycled, each with a response from the broad base distribution (the SFT
    model imitates it; alignment then has room to improve on it). arithmetic: training-split problems with
    their worked solutions.
    """
    rng = np.random.default_rng(seed)
    if task == "preference":
        train, _ = split_prompts()
        prompts = [train[i % len(train)] for i in range(count)]
        return [Record(p.text, base_response(p, rng)) for p in prompts]
    if task == "arithmetic":
        problems = [sample_problem(rng, held_out=False) for _ in range(count)]
        return [Record(p.text, solution(p)) for p in problems]
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def write_records(path: Path, records: list[Record]) -> Path:
    """Write records as JSON lines, atomically."""
    text = "".join(json.dumps({"prompt": r.prompt, "response": r.response}) + "\n" for r in records)
    return write_text_atomic(path, text)


def read_records(path: Path, tokenizer: PreTrainedTokenizerFast, max_positions: int) -> list[Record]:
    """Every record of a JSON-lines file, each checked (DataError on the first bad one)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    records = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if not line.strip():
            continue
        records.append(check_record(line, where, tokenizer, max_positions))
    if not records:
        raise DataError(f"{path}: no records")
    return records


def check_record(line: str, where: str, tokenizer: PreTrainedTokenizerFast, max_positions: int) -> Record:
    """One JSON line as a Record, or a DataError saying what is wrong with it."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected an object with 'prompt' and 'response', got {type(value).__name__}")
    for field in ("prompt", "response"):
        if field not in value:
            raise DataError(f"{where}: missing field {field!r}")
        if not isinstance(value[field], str):
            raise DataError(f"{where}: {field!r} must be a string, got {type(value[field]).__name__}")
    record = Record(value["prompt"], value["response"])
    if not record.prompt.strip():
        raise DataError(f"{where}: empty prompt")
    ids, _ = encode_pair(tokenizer, record.prompt, record.response)
    if tokenizer.unk_token_id in ids:
        unknown = [
            w
            for w in f"{record.prompt} {record.response}".split()
            if tokenizer.unk_token_id in tokenizer.encode(w, add_special_tokens=False)
        ]
        raise DataError(f"{where}: words the tokenizer does not know: {unknown[:3]}")
    if len(ids) > max_positions:
        raise DataError(f"{where}: {len(ids)} tokens with the specials; the model reads at most {max_positions}")
    return record


__all__ = ["TASKS", "DataError", "Record", "Task", "check_record", "generate_records", "read_records", "write_records"]

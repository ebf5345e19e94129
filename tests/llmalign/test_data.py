"""Bad data gets one clear error naming the record, before any training, and loses nothing already written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmalign.data import DataError, Record, generate_records, read_records, write_records
from llmalign.tokenizer import train_tokenizer

GOOD = json.dumps({"prompt": "1 + 2 =", "response": "1 + 2 = 3 ; answer 3"})


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"prompt": "", "response": "answer 3"}', "empty prompt"),
        (b'{"prompt": "1 + 2 ="}', "missing field 'response'"),
        (b'{"prompt": 12, "response": "answer 3"}', "'prompt' must be a string"),
        (b'{"prompt": "1 + 2 =", "response": "answer \xff"}', "not UTF-8"),
        (b"[1, 2]", "expected an object"),
        (b'{"prompt": "1 + 2 =", "response": ', "not JSON"),
        (b'{"prompt": "1 + 2 =", "response": "answer banana"}', "does not know: ['banana']"),
        (json.dumps({"prompt": "1 + 2 =", "response": " ".join(["the"] * 70)}).encode(), "the model reads at most 64"),
    ],
)
def test_each_kind_of_bad_record_is_named_with_its_line(tmp_path: Path, line: bytes, problem: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + line + b"\n" + GOOD.encode() + b"\n")
    with pytest.raises(DataError) as error:
        read_records(path, train_tokenizer(), max_positions=64)
    assert str(error.value).startswith(f"{path}:2: ")
    assert problem in str(error.value)


def test_generated_data_round_trips_through_a_file(tmp_path: Path) -> None:
    tokenizer = train_tokenizer()
    for task in ("arithmetic", "preference"):
        records = generate_records(task, 50, seed=3)
        assert records == generate_records(task, 50, seed=3)
        assert records != generate_records(task, 50, seed=4)
        path = write_records(tmp_path / f"{task}.jsonl", records)
        assert read_records(path, tokenizer, max_positions=64) == records
    with pytest.raises(DataError, match="no records"):
        read_records(write_records(tmp_path / "empty.jsonl", []), tokenizer, 64)
    assert Record("a", "b") == Record("a", "b")

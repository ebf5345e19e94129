"""ear.data: bad files are named in the error; the split is by time per user; the enumerated scenario's questions."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from ear.data import POSITIVE_RATING, DataError, default_data_dir, load_dataset


def _copy_binary_files(target: Path) -> Path:
    """ml-100k's .inter and .item (all the binary scenario reads) in `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for ext in ("inter", "item"):
        shutil.copy(default_data_dir() / f"ml-100k.{ext}", target / f"ml-100k.{ext}")
    return target


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"ml-100k\.inter: missing"):
        load_dataset("binary", tmp_path)


def test_wrong_header_is_named(tmp_path: Path) -> None:
    folder = _copy_binary_files(tmp_path / "data")
    path = folder / "ml-100k.inter"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[0] = "user\titem\tscore\ttime"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"ml-100k\.inter: header"):
        load_dataset("binary", folder)


def test_non_numeric_rating_is_named(tmp_path: Path) -> None:
    folder = _copy_binary_files(tmp_path / "data")
    path = folder / "ml-100k.inter"
    lines = path.read_text(encoding="utf-8").splitlines()
    fields = lines[3].split("\t")
    fields[2] = "five"
    lines[3] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"ml-100k\.inter: line 4"):
        load_dataset("binary", folder)


def test_split_is_by_time_per_user() -> None:
    dataset = load_dataset("binary")
    stamps: dict[tuple[str, str], float] = {}
    lines = (default_data_dir() / "ml-100k.inter").read_text(encoding="utf-8").splitlines()[1:]
    for line in lines:
        user, item, rating, timestamp = line.split("\t")[:4]
        if float(rating) >= POSITIVE_RATING:
            stamps[(user, item)] = float(timestamp)
    latest_train: dict[int, float] = defaultdict(lambda: -np.inf)
    for user, item in dataset.interactions.train.tolist():
        key = (user, item)
        latest_train[key[0]] = max(latest_train[key[0]], stamps[(dataset.users[user], dataset.items[item])])
    earliest_test: dict[int, float] = defaultdict(lambda: np.inf)
    for user, item in dataset.interactions.valid.tolist():
        stamp = stamps[(dataset.users[user], dataset.items[item])]
        assert stamp >= latest_train[user], f"user {dataset.users[user]}: a validation positive before a train one"
    for user, item in dataset.interactions.test.tolist():
        stamp = stamps[(dataset.users[user], dataset.items[item])]
        earliest_test[user] = min(earliest_test[user], stamp)
        assert stamp >= latest_train[user], f"user {dataset.users[user]}: a test positive before a train one"
    for user, item in dataset.interactions.valid.tolist():
        stamp = stamps[(dataset.users[user], dataset.items[item])]
        assert stamp <= earliest_test[user], f"user {dataset.users[user]}: a validation positive after a test one"
    assert len(dataset.interactions.valid) > 0
    assert len(dataset.interactions.test) > 0


def test_enumerated_questions_cover_every_question() -> None:
    scenario = load_dataset("enumerated").scenario
    assert len(scenario.question_of) == scenario.n_attributes
    assert set(scenario.question_of.tolist()) == set(range(scenario.n_questions))
    for question in range(scenario.n_questions):
        assert len(scenario.attributes_of_question(question)) > 0

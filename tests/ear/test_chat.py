"""`ear chat` driven from outside the way a person uses it: a scripted person who thinks of a film and answers
truthfully finds it or runs out of turns; empty lines, typos, out-of-range numbers, unknown words and end of
input get a prompt or a clean end, never a crash; quitting keeps the log; a wrong user or model is a clear error."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ear.chat import ChatIO, chat
from ear.cli import ChatConfig
from ear.configs import FMConfig, PolicyConfig
from ear.data import DataError, Dataset, load_dataset
from ear.fm import train_fm
from ear.policy import train_policy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """A small FM and policy per scenario, trained here (seconds each)."""
    root = tmp_path_factory.mktemp("ear_chat")
    out = {}
    for scenario in ("binary", "enumerated"):
        fm = train_fm(
            FMConfig(scenario=scenario, run_dir=root / scenario / "fm", epochs=2, dim=16, eval_users=20, progress=False)
        )
        policy = train_policy(
            PolicyConfig(
                fm=fm,
                run_dir=root / scenario / "policy",
                pretrain_episodes=30,
                pretrain_epochs=1,
                episodes=20,
                checkpoint_every=20,
                progress=False,
            )
        )
        out[scenario] = (fm, policy)
    return out


class Person:
    """Thinks of `target` and answers what the chat prints, truthfully, through ChatIO."""

    def __init__(self, dataset: Dataset, target: int, script: list[str | None] | None = None) -> None:
        self.dataset, self.target = dataset, target
        self.attributes = {dataset.scenario.attributes[a] for a in dataset.scenario.item_attributes[target]}
        self.script = list(script or [])
        self.lines: list[str] = []
        self.prompts: list[str] = []

    def write(self, text: str) -> None:
        self.lines.extend(text.split("\n"))

    def menu(self) -> dict[int, str]:
        """The numbered lines printed since the last prompt."""
        start = len(self.lines) - 1
        while start >= 0 and re.match(r"\s+\d+\. ", self.lines[start]):
            start -= 1
        entries = {}
        for line in self.lines[start + 1 :]:
            number, text = line.strip().split(". ", 1)
            entries[int(number)] = text
        return entries

    def read(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        assert len(self.prompts) < 200, f"the chat keeps asking: {self.prompts[-3:]}"
        if self.script:
            return self.script.pop(0)
        scenario = self.dataset.scenario
        title = self.dataset.titles[self.target]
        if prompt.startswith("genre>") and scenario.name == "binary":
            return sorted(self.attributes)[0]
        if "(yes/no)" in prompt:
            genre = re.search(r"is it a (.+) film\?", prompt)
            assert genre is not None, prompt
            return "yes" if genre.group(1) in self.attributes else "no"
        if prompt.startswith("number or no>"):
            hits = [k for k, text in self.menu().items() if text == title]
            return str(hits[0]) if hits else "no"
        if prompt.startswith("number>"):  # enumerated opening: which question can I answer
            questions = {name.split(":", 1)[0] for name in self.attributes}
            return str(next(k for k, q in enumerate(scenario.questions, start=1) if q in questions))
        menu = self.menu()  # enumerated values: every listed value the film has
        mine = [
            k for k, text in menu.items() if any(text.startswith(a.split(":", 1)[1] + " ") for a in self.attributes)
        ]
        return ",".join(map(str, mine)) if mine else "none"


def _pair(dataset: Dataset, k: int) -> tuple[str, int]:
    user, target = dataset.interactions.test[k]
    return dataset.users[int(user)], int(target)


@pytest.mark.parametrize("scenario", ["binary", "enumerated"])
def test_a_truthful_person_is_led_to_a_clean_end_and_every_turn_is_logged(
    scenario: str, models: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    fm, policy = models[scenario]
    dataset = load_dataset(scenario)  # type: ignore[arg-type]
    outcomes = []
    for k in range(0, 60, 12):
        user, target = _pair(dataset, k)
        person = Person(dataset, target)
        log = tmp_path / f"{scenario}{k}.jsonl"
        result = chat(
            ChatConfig(scenario=scenario, fm=fm, policy=policy, user=user, log=log), ChatIO(person.read, person.write)
        )  # type: ignore[arg-type]
        outcomes.append(result["outcome"])
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        assert rows[0]["role"] == "user"
        assert rows[-1] == {**rows[-1], "role": "end", "outcome": result["outcome"]}
        assert result["turns"] <= 15
        if result["outcome"] == "found":
            assert rows[-2]["accepted"] == dataset.titles[target]
    assert set(outcomes) <= {"found", "not found"}, outcomes


def test_bad_input_gets_a_prompt_and_quitting_keeps_the_log(
    models: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    fm, policy = models["binary"]
    dataset = load_dataset("binary")
    user, target = _pair(dataset, 3)
    script: list[str | None] = ["", "comdy", "help", "Comedy"]  # empty line, a typo, help, then a genre
    person = Person(dataset, target, script)
    log = tmp_path / "chat.jsonl"
    config = ChatConfig(fm=fm, policy=policy, user=user, log=log)

    def read(prompt: str) -> str | None:
        if len(person.prompts) == 4:  # the first system turn: nonsense, an out-of-range number, then quit
            person.script = ["maybe", "42", "quit"] if "yes/no" in prompt else ["42", "maybe", "quit"]
        return person.read(prompt)

    result = chat(config, ChatIO(read, person.write))
    text = "\n".join(person.lines)
    assert "empty line" in text
    assert "did you mean Comedy" in text
    assert "please" in text  # the nonsense and the out-of-range answers were asked again
    assert result["outcome"] == "quit (quit)"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows[0]["opening"] == "Comedy"
    assert rows[-1]["role"] == "end"


def test_end_of_input_at_any_point_ends_cleanly(models: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    fm, policy = models["binary"]
    for answers in ([None], ["Drama", None]):
        script: Iterator[str | None] = iter(answers)
        result = chat(
            ChatConfig(fm=fm, policy=policy, log=tmp_path / "eof.jsonl"),
            ChatIO(lambda _prompt, s=script: next(s, None), lambda _text: None),  # type: ignore[misc]
        )
        assert result["outcome"] == "quit (end of input)"


def test_an_unknown_user_or_mismatched_models_are_named(models: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    fm, policy = models["binary"]
    io = ChatIO(lambda _prompt: None, lambda _text: None)
    with pytest.raises(DataError, match="no MovieLens user '99999'"):
        chat(ChatConfig(fm=fm, policy=policy, user="99999", log=tmp_path / "x.jsonl"), io)
    with pytest.raises(DataError, match="enumerated policy"):
        chat(ChatConfig(fm=fm, policy=models["enumerated"][1], log=tmp_path / "y.jsonl"), io)

"""`ear chat`: a person plays the user. Think of a film; EAR asks about it and recommends lists of ten.

Binary scenario: "Is it a Comedy?" (yes / no). Enumerated scenario: "Which director?" with a numbered menu
of the values that remain among the candidates, each shown with films that have it (knowledge-graph values
are Freebase ids without names); answer with numbers, or `none`. A list: type the number of your film, or
`no`. Anywhere: `help`, `quit` (or end of input). Unknown answers, an empty line or a typo get a prompt
(with the closest valid answers), never a crash. Every turn is appended to the session log (JSON lines),
which is kept when you quit.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ear.cli import ChatConfig
from ear.data import DataError, Dataset
from runkit import append_json_lines

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
QUIT_WORDS = frozenset({"quit", "q", "exit", "bye"})
YES_WORDS = frozenset({"yes", "y", "yeah", "yep", "sure"})
NO_WORDS = frozenset({"no", "n", "nope", "none", "nothing"})
MENU_SIZE = 12


class QuitChatError(Exception):
    """The person quit (or the input ended)."""


@dataclass
class ChatIO:
    """Where the chat reads answers (None at end of input) and writes its lines."""

    read: Callable[[str], str | None]
    write: Callable[[str], None]


def terminal_io() -> ChatIO:
    """The terminal: input() (EOF and Ctrl-C end the chat) and print()."""

    def read(prompt: str) -> str | None:
        try:
            return input(prompt)
        except (EOFError, KeyboardInterrupt):
            return None

    return ChatIO(read=read, write=print)


def shipped_models(scenario: str) -> tuple[Path, Path]:
    """The shipped estimation model and policy of a scenario."""
    return CHECKPOINTS / f"{scenario}_fm.pt", CHECKPOINTS / f"{scenario}_policy.pt"


class _Session:
    """One chat: the conversation, the person's answers parsed and logged."""

    def __init__(self, config: ChatConfig, io: ChatIO) -> None:
        from ear.conversation import Context, Conversation, NetworkPolicy
        from ear.data import dataset_of_model
        from ear.fm import copy_for_conversation, load_fm
        from ear.policy import load_policy

        fm_path, policy_path = shipped_models(config.scenario)
        fm_path, policy_path = config.fm or fm_path, config.policy or policy_path
        fm, meta = load_fm(fm_path)
        network, policy_meta = load_policy(policy_path)
        if policy_meta.get("scenario") != meta["scenario"]:
            raise DataError(
                f"{policy_path} is a {policy_meta.get('scenario')} policy, {fm_path} a {meta['scenario']} model"
            )
        self.dataset: Dataset = dataset_of_model(meta)
        self.io, self.log = io, config.log
        self.state_kind = str(policy_meta.get("kind", "ear"))
        if config.user is None:  # a new user: the mean user, in a copy (user 0's row stands for them)
            fm = copy_for_conversation(fm)
            with_mean = fm.user_emb.weight.detach().mean(dim=0)
            fm.user_emb.weight.data[0] = with_mean
            self.user, self.positives = 0, np.zeros(0, dtype=np.int64)
        else:
            if config.user not in self.dataset.users:
                raise DataError(f"no MovieLens user {config.user!r} (users are 1..{len(self.dataset.users)})")
            self.user = self.dataset.users.index(config.user)
            self.positives = self.dataset.train_items_by_user()[self.user]
        from ear.configs import ConversationConfig

        self.config = ConversationConfig(reflection=config.reflection)
        self.context = Context(self.dataset, fm)
        self.conv = Conversation(self.context, self.user, fm, self.config, np.random.default_rng())
        self.policy = NetworkPolicy(network)
        self.scenario = self.dataset.scenario
        self.matrix = self.context.matrix

    # ---- logging and reading --------------------------------------------------------------------------------

    def record(self, **entry: Any) -> None:
        append_json_lines(self.log, [{"time": time.time(), "turn": self.conv.turn, **entry}])

    def read(self, prompt: str) -> str:
        """One non-empty line (help re-prompts); QuitChatError on quit or end of input."""
        while True:
            line = self.io.read(prompt)
            if line is None:
                raise QuitChatError("end of input")
            text = line.strip()
            if text.lower() in QUIT_WORDS:
                raise QuitChatError("quit")
            if not text:
                self.io.write("  (an empty line: please answer, or type help or quit)")
                continue
            if text.lower() in {"help", "?", "h"}:
                self.io.write(__doc__ or "")
                continue
            return text

    # ---- menus --------------------------------------------------------------------------------------------

    def examples(self, attribute: int, limit: int = 2) -> str:
        items = [int(i) for i in self.conv.candidates if self.matrix[int(i), attribute]][:limit]
        if len(items) < limit:
            items = list(np.flatnonzero(self.matrix[:, attribute])[:limit])
        return ", ".join(self.dataset.titles[int(i)] for i in items)

    def menu(self, question: int) -> list[int]:
        """The question's values most common among the candidates (at most MENU_SIZE)."""
        values = self.scenario.attributes_of_question(question)
        counts = self.matrix[np.ix_(self.conv.candidates, values)].sum(axis=0)
        order = np.argsort(-counts, kind="stable")
        return [int(values[k]) for k in order if counts[k] > 0][:MENU_SIZE]

    def label(self, attribute: int) -> str:
        name = self.scenario.attributes[attribute]
        if self.scenario.name == "binary":
            return name
        return f"{name.split(':', 1)[1]} (films: {self.examples(attribute)})"

    def consistent(self, values: NDArray[np.int64]) -> bool:
        """Whether some candidate has every known attribute and `values`; if not, the person is told."""
        if len(values) == 0 or self.matrix[np.ix_(self.conv.candidates, values)].all(axis=1).any():
            return True
        self.io.write("  no film I know has all of that together with your earlier answers; please answer again")
        return False

    def pick_values(self, options: list[int], prompt: str) -> NDArray[np.int64]:
        """Numbers from a menu (`1,3`), or none; anything else is asked again with what is valid."""
        while True:
            text = self.read(prompt)
            if text.lower() in NO_WORDS:
                return np.zeros(0, dtype=np.int64)
            tokens = text.replace(",", " ").split()
            if tokens and all(t.isdigit() and 1 <= int(t) <= len(options) for t in tokens):
                return np.array(sorted({options[int(t) - 1] for t in tokens}), dtype=np.int64)
            self.io.write(f"  please type numbers between 1 and {len(options)} (e.g. 1 or 1,3), or none")

    def yes_no(self, prompt: str) -> bool:
        while True:
            text = self.read(prompt).lower()
            if text in YES_WORDS:
                return True
            if text in NO_WORDS:
                return False
            close = difflib.get_close_matches(text, sorted(YES_WORDS | NO_WORDS), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.io.write(f"  please answer yes or no{hint}")

    # ---- turns ----------------------------------------------------------------------------------------------

    def opening(self) -> None:
        """Turn 1: the person names one thing about the film."""
        if self.scenario.name == "binary":
            names = list(self.scenario.attributes)
            self.io.write("Think of a film you like. Which genre is it? One of: " + ", ".join(names))
            while True:
                text = self.read("genre> ")
                lowered = {n.lower(): i for i, n in enumerate(names)}
                if text.lower() in lowered:
                    attribute = lowered[text.lower()]
                    break
                close = difflib.get_close_matches(text, names, n=3, cutoff=0.5)
                self.io.write(
                    f"  {text!r} is not a genre here" + (f"; did you mean {', '.join(close)}?" if close else "")
                )
            self.conv.opening(attribute, np.array([attribute], dtype=np.int64))
            self.record(role="user", opening=names[attribute])
            return
        questions = list(self.scenario.questions)
        self.io.write("Think of a film you like. Tell me one thing about it: which of these can you answer?")
        for k, name in enumerate(questions, start=1):
            self.io.write(f"  {k}. its {name}")
        while True:
            text = self.read("number> ")
            if text.isdigit() and 1 <= int(text) <= len(questions):
                question = int(text) - 1
                break
            self.io.write(f"  please type a number between 1 and {len(questions)}")
        options = self.menu(question)
        for k, attribute in enumerate(options, start=1):
            self.io.write(f"  {k}. {self.label(attribute)}")
        prompt = f"{questions[question]} (numbers, or none)> "
        values = self.pick_values(options, prompt)
        while not self.consistent(values):
            values = self.pick_values(options, prompt)
        self.conv.opening(question, values)
        self.record(role="user", opening=questions[question], values=[self.scenario.attributes[v] for v in values])

    def ask(self, question: int) -> None:
        if self.scenario.name == "binary":
            attribute = int(self.scenario.attributes_of_question(question)[0])
            prompt = f"EAR: is it a {self.scenario.attributes[attribute]} film? (yes/no) > "
            while True:
                yes = self.yes_no(prompt)
                values = np.array([attribute] if yes else [], dtype=np.int64)
                if self.consistent(values):
                    break
        else:
            options = self.menu(question)
            self.io.write(f"EAR: which {self.scenario.questions[question]}? (numbers, or none)")
            for k, attribute in enumerate(options, start=1):
                self.io.write(f"  {k}. {self.label(attribute)}")
            values = np.zeros(0, dtype=np.int64)
            while options:
                values = self.pick_values(options, "> ")
                if self.consistent(values):
                    break
        self.conv.ask(question, values)
        self.record(
            role="system", asked=self.scenario.questions[question], answer=[self.scenario.attributes[v] for v in values]
        )

    def recommend(self) -> bool:
        items = self.conv.recommend()
        self.io.write("EAR: is your film one of these?")
        for k, item in enumerate(items, start=1):
            self.io.write(f"  {k}. {self.dataset.titles[int(item)]}")
        while True:
            text = self.read("number or no> ")
            if text.lower() in NO_WORDS:
                self.conv.reject(items, self.positives)
                self.record(role="system", recommended=[self.dataset.titles[int(i)] for i in items], accepted=None)
                return False
            if text.isdigit() and 1 <= int(text) <= len(items):
                chosen = self.dataset.titles[int(items[int(text) - 1])]
                self.conv.accepted()
                self.record(role="system", recommended=[self.dataset.titles[int(i)] for i in items], accepted=chosen)
                self.io.write(f"EAR: found it in {self.conv.turn} turns: {chosen}. Enjoy!")
                return True
            self.io.write(f"  please type the number of your film (1-{len(items)}), or no")

    def run(self) -> bool:
        """The conversation; True when the person accepted a list."""
        from ear.conversation import make_state

        self.opening()
        while self.conv.turn < self.config.max_turns:
            if len(self.conv.candidates) == 0:
                self.io.write("EAR: no film I know fits every answer.")
                return False
            state = make_state(self.conv, "ear" if self.state_kind == "ear" else "crm")
            action = self.policy.act(self.conv, state, self.conv.rng)
            if action == self.conv.recommend_action:
                if self.recommend():
                    return True
            else:
                self.ask(action)
        self.io.write(f"EAR: I could not find your film in {self.config.max_turns} turns.")
        return False


def chat(config: ChatConfig, io: ChatIO) -> dict[str, Any]:
    """Hold one chat over `io`; its outcome (the log is written turn by turn)."""
    session = _Session(config, io)
    io.write(f"EAR chat ({session.scenario.name} questions). Type help for help, quit to stop. Log: {config.log}")
    try:
        found = session.run()
        outcome = "found" if found else "not found"
    except QuitChatError as reason:
        outcome = f"quit ({reason})"
        io.write(f"Bye. The conversation so far is in {config.log}")
    session.record(role="end", outcome=outcome)
    return {"outcome": outcome, "turns": session.conv.turn, "log": str(config.log)}


def run_chat(config: ChatConfig) -> int:
    """`ear chat` on the terminal."""
    chat(config, terminal_io())
    return 0

"""Simulated conversations: the user simulator, the system's conversation state, the baselines, episodes, evaluation.

The protocol is the paper's (and the authors' code, see runs/ear_authors_notes.md), with these stated differences:

- The system never knows the target: the authors re-append the target to the candidates after every filter;
  here the candidates are filtered honestly (a truthful simulated user never filters the target out, and
  tests check it). Answers that contradict every candidate raise `ContradictoryAnswersError`.
- Turn counting: the user's opening turn is turn 1 and the system acts at turns 2..max_turns (14 actions for
  max_turns = 15). The last action IS judged: a recommendation at turn 15 that holds the target is a success
  at turn 15. The authors never judge their last action (their SR@15 is success within 14 judged actions),
  so SR@15 here can only be higher than theirs for the same policy. A failed conversation counts max_turns.
- A failed conversation's last action gets the quit reward instead of its own (the authors append a quit for
  their last, unanswered action).
- The policy network's training samples from the distribution with the asked questions masked out (the
  log-probability is that of the masked distribution); the authors resample from the unmasked one.
- The history codes are the authors': +1 asked and yes, 0 asked and no (the same as padding, as in theirs),
  -1 a rejected recommendation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from ear.configs import ConversationConfig
from ear.data import Dataset, ScenarioName

if TYPE_CHECKING:
    from ear.fm import AttributeFM
    from ear.policy import PolicyNetwork

StateKind = Literal["ear", "crm"]
STATE_KINDS: tuple[StateKind, ...] = ("ear", "crm")
HISTORY_LENGTH = 15
"""Length of the history part of EAR's state (the authors' MAX_TURN)."""
LENGTH_BUCKETS = (10, 50, 100, 200, 300, 500, 1000)
"""Upper bounds of the candidate-count one-hot's first 7 buckets (the 8th is > 1000)."""
SIM_SCALE_BINARY = 5.0
"""The authors' hand-chosen factor of the binary scenario's attribute-preference part."""
SIM_TOP_K = 3
"""Enumerated scenario: the attribute-preference of a question sums its top 3 values (authors' TopKTaxo)."""
ASK_YES, ASK_NO, REC_REJECTED = 1, 0, -1


class ContradictoryAnswersError(ValueError):
    """The answers so far leave no item in the catalogue (a simulated, truthful user never gives such answers)."""


@dataclass(frozen=True)
class Rewards:
    """The authors' per-turn rewards (LastFM values; their Yelp's failed recommendation is -0.1)."""

    rec_success: float = 0.99
    ask_success: float = 0.09
    ask_fail: float = -0.01
    rec_fail: float = -0.01
    quit: float = -0.3

    @classmethod
    def for_scenario(cls, scenario: ScenarioName) -> Rewards:
        """Binary scenario: the authors' LastFM table; enumerated: their Yelp one (rec_fail -0.1)."""
        return cls() if scenario == "binary" else cls(rec_fail=-0.1)


class Simulator:
    """The simulated user: thinks of `target`, opens with one of its attributes, answers truthfully.

    Opening: one attribute of the target chosen uniformly (binary: that attribute; enumerated: its question,
    the attribute type, answered with all the target's values of that type)."""

    def __init__(self, dataset: Dataset, user: int, target: int, rng: np.random.Generator) -> None:
        self.scenario = dataset.scenario
        self.user = int(user)
        self.target = int(target)
        self.rng = rng
        self.target_attributes = self.scenario.item_attributes[self.target]

    def opening(self) -> tuple[int, NDArray[np.int64]]:
        """The user's first turn: (question, the target's attributes in it)."""
        if len(self.target_attributes) == 0:
            raise ValueError(f"item {self.target} has no attribute: the user cannot open the conversation")
        attribute = int(self.rng.choice(self.target_attributes))
        question = int(self.scenario.question_of[attribute])
        return question, self.answer(question)

    def answer(self, question: int) -> NDArray[np.int64]:
        """The target's attributes in `question` (binary: [a] for yes, [] for no; enumerated: its values)."""
        attrs = self.target_attributes
        return attrs[self.scenario.question_of[attrs] == question].astype(np.int64)

    def accepts(self, items: Sequence[int] | NDArray[np.int64]) -> bool:
        """Whether a recommended list holds the target."""
        return bool(np.any(np.asarray(items) == self.target))


class Context:
    """What every conversation over one dataset and base FM shares, computed once: the item x attribute matrix,
    the questions' attributes, the FROZEN base FM's unit-norm embeddings (EAR's attribute-preference part)."""

    def __init__(self, dataset: Dataset, base_fm: AttributeFM) -> None:
        self.dataset = dataset
        self.scenario = dataset.scenario
        self.base_fm = base_fm
        self.matrix = self.scenario.item_attribute_matrix()
        self.question_of = np.asarray(self.scenario.question_of, dtype=np.int64)
        self.n_questions = self.scenario.n_questions
        self.question_attributes = [self.scenario.attributes_of_question(q) for q in range(self.n_questions)]
        user_emb, _, attr_emb = base_fm.embeddings()
        self.user_unit = _unit(np.asarray(user_emb, dtype=np.float64))
        self.attr_unit = _unit(np.asarray(attr_emb, dtype=np.float64))
        self._train_items = dataset.train_items_by_user()

    def positives(self, user: int, target: int) -> NDArray[np.int64]:
        """The user's training positives minus the target (reflection's positives, as the authors')."""
        items = self._train_items[int(user)]
        return items[items != int(target)]


def _unit(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


class Conversation:
    """The system's side of one conversation: candidates, known attributes P, asked questions, history.

    Candidates start as the whole catalogue; the opening and every non-empty answer keep the items that have
    ALL the known attributes (an empty answer filters nothing, as the authors); a rejected list leaves them.
    With reflection on, rejections update this conversation's own copy of the FM (made once, here)."""

    def __init__(
        self, context: Context, user: int, fm: AttributeFM, config: ConversationConfig, rng: np.random.Generator
    ) -> None:
        self.context = context
        self.user = int(user)
        self.config = config
        self.rng = rng
        self.n_questions = context.n_questions
        self.candidates = np.arange(context.dataset.n_items, dtype=np.int64)
        self.known: list[int] = []
        self.asked = np.zeros(self.n_questions, dtype=bool)
        self.history: list[int] = []
        self.rejected: list[int] = []
        self.turn = 0
        if config.reflection:
            from ear.fm import copy_for_conversation

            self.fm = copy_for_conversation(fm)
        else:
            self.fm = fm
        self._entropy: NDArray[np.float64] | None = None

    @property
    def recommend_action(self) -> int:
        """The action index that means "recommend" (questions are 0..n_questions-1)."""
        return self.n_questions

    def _inform(self, question: int, attributes: NDArray[np.int64]) -> None:
        if not 0 <= question < self.n_questions:
            raise ValueError(f"question {question} out of range 0..{self.n_questions - 1}")
        if self.asked[question]:
            raise ValueError(f"question {question} was already asked")
        self.asked[question] = True
        new = [int(a) for a in attributes if int(a) not in self.known]
        if new:
            self.known.extend(new)
            keep = self.context.matrix[np.ix_(self.candidates, np.asarray(new))].all(axis=1)
            if not keep.any():
                raise ContradictoryAnswersError(f"no candidate item has every known attribute {sorted(self.known)}")
            self.candidates = self.candidates[keep]
        self._entropy = None

    def opening(self, question: int, attributes: NDArray[np.int64]) -> None:
        """The user's opening turn (turn 1; not recorded in the history, as the authors)."""
        self._inform(question, attributes)
        self.turn = 1

    def ask(self, question: int, answer: NDArray[np.int64]) -> None:
        """The system asked `question` and the user answered with these attributes ([] for no / none)."""
        self.turn += 1
        self._inform(question, answer)
        self.history.append(ASK_YES if len(answer) else ASK_NO)

    def recommend(self) -> NDArray[np.int64]:
        """The top `recommend_size` candidates (rejected ones are no longer candidates) by the FM's score."""
        if len(self.candidates) == 0:
            return self.candidates.copy()
        scores = self.fm.score_items(self.user, self.candidates, self.known)
        k = min(self.config.recommend_size, len(self.candidates))
        order = np.argsort(-np.asarray(scores), kind="stable")[:k]
        return self.candidates[order]

    def reject(self, items: NDArray[np.int64], positives: NDArray[np.int64]) -> None:
        """The user rejected `items`: drop them from the candidates; with reflection, update the FM copy."""
        self.turn += 1
        items = np.asarray(items, dtype=np.int64)
        self.candidates = self.candidates[~np.isin(self.candidates, items)]
        self.rejected.extend(int(i) for i in items)
        self.history.append(REC_REJECTED)
        self._entropy = None
        if self.config.reflection:
            from ear.fm import reflect

            reflect(
                self.fm,
                self.user,
                items.tolist(),
                positives,
                list(self.known),
                self.context.dataset.n_items,
                self.rng,
                self.config,
            )

    def accepted(self) -> None:
        """The user accepted the last list (counts the turn)."""
        self.turn += 1

    def entropy(self) -> NDArray[np.float64]:
        """Per question: the binary entropy (log2) of each attribute's share of the candidates, summed over the
        question's attributes (binary: its one attribute); asked questions 0."""
        if self._entropy is not None:
            return self._entropy
        if len(self.candidates) == 0:
            per_attribute = np.zeros(self.context.matrix.shape[1])
        else:
            per_attribute = _binary_entropy(self.context.matrix[self.candidates].mean(axis=0))
        ent: NDArray[np.float64] = np.bincount(
            self.context.question_of, weights=per_attribute, minlength=self.n_questions
        ).astype(np.float64)
        ent[self.asked] = 0.0
        self._entropy = ent
        return ent


def _binary_entropy(p: NDArray[np.float64]) -> NDArray[np.float64]:
    q = np.clip(p, 1e-12, 1 - 1e-12)
    h = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
    return np.where((p <= 0) | (p >= 1), 0.0, h)


def attribute_preference(conv: Conversation) -> NDArray[np.float64]:
    """EAR's `sim` part from the frozen base FM: cosine similarities of each attribute with P and the user.

    Binary: 5 * sum_{e in P+u} cos(f, e) / max(|P|, 1). Enumerated: per question, the top-3 of its values'
    sums, divided by |P| + 1. Asked questions -1."""
    ctx = conv.context
    anchors = np.vstack([ctx.attr_unit[conv.known], ctx.user_unit[conv.user : conv.user + 1]])
    summed = ctx.attr_unit @ anchors.sum(axis=0)  # sum over e of cos(f, e), unit vectors
    if ctx.scenario.name == "binary":
        sim = np.zeros(conv.n_questions)
        sim[ctx.question_of] = SIM_SCALE_BINARY * summed / max(len(conv.known), 1)
    else:
        sim = np.array(
            [np.sort(summed[attrs])[::-1][:SIM_TOP_K].sum() if len(attrs) else 0.0 for attrs in ctx.question_attributes]
        ) / (len(conv.known) + 1)
    sim[conv.asked] = -1.0
    return sim


def length_one_hot(n_candidates: int) -> NDArray[np.float64]:
    """8-way one-hot of the candidate count: <=10, <=50, <=100, <=200, <=300, <=500, <=1000, >1000."""
    vector = np.zeros(len(LENGTH_BUCKETS) + 1)
    vector[int(np.searchsorted(LENGTH_BUCKETS, n_candidates, side="left"))] = 1.0
    return vector


def ear_state(conv: Conversation) -> NDArray[np.float32]:
    """EAR's state [ent | sim | his | len] (2 * n_questions + 15 + 8 numbers), as the authors' `vectorize`.

    his: the last 15 history codes padded with 0; the codes are the authors' (+1 asked and yes, 0 asked and
    no, -1 rejected list), so an ask-no equals padding, as in theirs."""
    history = np.zeros(HISTORY_LENGTH)
    recent = conv.history[-HISTORY_LENGTH:]
    history[: len(recent)] = recent
    parts = [conv.entropy(), attribute_preference(conv), history, length_one_hot(len(conv.candidates))]
    return np.concatenate(parts).astype(np.float32)


def crm_state(conv: Conversation) -> NDArray[np.float32]:
    """CRM's state with a perfect belief tracker: the known attributes as a binary vector."""
    vector = np.zeros(conv.context.scenario.n_attributes, dtype=np.float32)
    vector[conv.known] = 1.0
    return vector


def state_size(dataset: Dataset, kind: StateKind) -> int:
    """Length of a state vector of `kind` in `dataset`'s scenario."""
    scenario = dataset.scenario
    return (
        2 * scenario.n_questions + HISTORY_LENGTH + len(LENGTH_BUCKETS) + 1 if kind == "ear" else scenario.n_attributes
    )


def make_state(conv: Conversation, kind: StateKind) -> NDArray[np.float32]:
    """The state vector of `kind` ("ear" or "crm")."""
    return ear_state(conv) if kind == "ear" else crm_state(conv)


class Policy(Protocol):
    """Chooses the next action: 0..n_questions-1 asks that question, n_questions recommends."""

    def act(self, conv: Conversation, state: NDArray[np.float32], rng: np.random.Generator) -> int: ...


class AlwaysRecommend:
    """Abs-Greedy: recommend at every turn."""

    def act(self, conv: Conversation, state: NDArray[np.float32], rng: np.random.Generator) -> int:
        """Always the recommend action."""
        return conv.recommend_action


class MaxEntropy:
    """The authors' rule: recommend with probability recommend_size / |candidates| (or when every question is
    asked), otherwise ask the unasked question of highest entropy."""

    def act(self, conv: Conversation, state: NDArray[np.float32], rng: np.random.Generator) -> int:
        """The rule's action (draws one number from `rng`)."""
        if conv.asked.all():
            return conv.recommend_action
        threshold = conv.config.recommend_size / max(len(conv.candidates), 1)
        if rng.random() < threshold:
            return conv.recommend_action
        ent = np.where(conv.asked, -np.inf, conv.entropy())
        return int(np.argmax(ent))


class NetworkPolicy:
    """A policy network: greedy (`sample=False`, evaluation) over the unasked questions and recommend, or
    sampling from the masked distribution (`sample=True`, REINFORCE's episodes)."""

    def __init__(self, network: PolicyNetwork, sample: bool = False) -> None:
        self.network = network
        self.sample = sample

    def act(self, conv: Conversation, state: NDArray[np.float32], rng: np.random.Generator) -> int:
        """The network's action; the network runs in eval mode (dropout off), as the authors choose actions."""
        self.network.eval()
        with torch.no_grad():
            logits = self.network(torch.from_numpy(state).unsqueeze(0))[0].double().numpy()
        masked = np.where(np.append(conv.asked, False), -np.inf, logits)
        if not self.sample:
            return int(np.argmax(masked))
        probs = np.exp(masked - masked.max())
        probs /= probs.sum()
        return int(rng.choice(len(probs), p=probs))


@dataclass
class Episode:
    """One conversation: per system action its state, action, asked-question mask and reward."""

    user: int
    target: int
    states: list[NDArray[np.float32]] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    masks: list[NDArray[np.bool_]] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    success: bool = False
    turns: int = 0

    @property
    def total_reward(self) -> float:
        """Sum of the rewards (undiscounted)."""
        return float(sum(self.rewards))


def run_episode(
    dataset: Dataset,
    base_fm: AttributeFM,
    policy: Policy,
    user: int,
    target: int,
    config: ConversationConfig,
    rng: np.random.Generator,
    state_kind: StateKind = "ear",
    positives: NDArray[np.int64] | None = None,
    *,
    context: Context | None = None,
    user_rng: np.random.Generator | None = None,
    rewards: Rewards | None = None,
) -> Episode:
    """Hold one simulated conversation of `user` thinking of `target`.

    Turn 1 is the user's opening; the system acts at turns 2..max_turns. A recommendation holding the target
    ends the conversation as a success at that turn; the max_turns-th action is judged too (the authors leave
    their last action unjudged); a failure counts max_turns turns and its last action gets the quit reward.

    Args:
        rng: the system's randomness (the policy's draws and reflection's samples).
        positives: the user's items for reflection (default: training positives minus the target).
        context: the shared precomputation (built here when not given; pass one for many conversations).
        user_rng: the simulated user's randomness (its opening attribute; default: `rng`).
        rewards: the reward table (default: `Rewards.for_scenario`).
    """
    ctx = context if context is not None else Context(dataset, base_fm)
    table = rewards if rewards is not None else Rewards.for_scenario(dataset.scenario.name)
    if positives is None:
        positives = ctx.positives(user, target)
    simulator = Simulator(dataset, user, target, user_rng if user_rng is not None else rng)
    conv = Conversation(ctx, user, base_fm, config, rng)
    conv.opening(*simulator.opening())
    episode = Episode(user=int(user), target=int(target))
    for turn in range(2, config.max_turns + 1):
        state = make_state(conv, state_kind)
        action = int(policy.act(conv, state, rng))
        episode.states.append(state)
        episode.actions.append(action)
        episode.masks.append(np.append(conv.asked, False))
        if action < conv.n_questions:
            answer = simulator.answer(action)
            conv.ask(action, answer)
            reward = table.ask_success if len(answer) else table.ask_fail
        elif action == conv.recommend_action:
            items = conv.recommend()
            if simulator.accepts(items):
                conv.accepted()
                episode.rewards.append(table.rec_success)
                episode.success, episode.turns = True, turn
                return episode
            conv.reject(items, positives)
            reward = table.rec_fail
        else:
            raise ValueError(f"action {action} out of range 0..{conv.recommend_action}")
        episode.rewards.append(table.quit if turn == config.max_turns else reward)
    episode.turns = config.max_turns
    return episode


@dataclass(frozen=True)
class EvalResult:
    """Figures of many conversations: SR@t for t = 1..max_turns, SR@max_turns, average turns, mean reward."""

    success_by_turn: list[float]
    success_rate: float
    average_turns: float
    mean_reward: float
    conversations: int
    seconds: float


def evaluate(
    dataset: Dataset,
    base_fm: AttributeFM,
    policy: Policy,
    pairs: NDArray[np.int64],
    config: ConversationConfig,
    seed: int = 0,
    state_kind: StateKind = "ear",
    progress: bool = False,
) -> EvalResult:
    """Hold one conversation per (user, target) row of `pairs`; conversation i's simulated user draws from a
    generator of (seed, i) alone, so every method meets the same openings."""
    from runkit.metrics import progress_bar

    ctx = Context(dataset, base_fm)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    turns = np.zeros(len(pairs), dtype=np.int64)
    success = np.zeros(len(pairs), dtype=bool)
    totals = np.zeros(len(pairs))
    started = time.perf_counter()
    with progress_bar(len(pairs), "conversations", progress, unit="conv") as bar:
        for i, (user, target) in enumerate(pairs):
            episode = run_episode(
                dataset,
                base_fm,
                policy,
                int(user),
                int(target),
                config,
                np.random.default_rng([seed, i, 1]),
                state_kind,
                context=ctx,
                user_rng=np.random.default_rng([seed, i, 0]),
            )
            turns[i], success[i], totals[i] = episode.turns, episode.success, episode.total_reward
            bar.update(1)
    n = max(len(pairs), 1)
    by_turn = [float(np.sum(success & (turns <= t)) / n) for t in range(1, config.max_turns + 1)]
    return EvalResult(
        success_by_turn=by_turn,
        success_rate=by_turn[-1],
        average_turns=float(turns.mean()) if len(pairs) else 0.0,
        mean_reward=float(totals.mean()) if len(pairs) else 0.0,
        conversations=len(pairs),
        seconds=time.perf_counter() - started,
    )


__all__ = [
    "STATE_KINDS",
    "AlwaysRecommend",
    "Context",
    "ContradictoryAnswersError",
    "Conversation",
    "Episode",
    "EvalResult",
    "MaxEntropy",
    "NetworkPolicy",
    "Policy",
    "Rewards",
    "Simulator",
    "StateKind",
    "attribute_preference",
    "crm_state",
    "ear_state",
    "evaluate",
    "length_one_hot",
    "make_state",
    "run_episode",
    "state_size",
]

"""A preference task whose hidden judge has real structure, an intransitive part included.

A prompt asks for a short description: ``describe <topic> for <audience> with <keyword>`` (6 topics x 3
audiences x 5 keywords = 90 prompts, split into train and held-out by a fixed rule). A response is a
sequence of words from a small vocabulary: the topics' words, style words, filler.

The hidden judge scores a response on several criteria (it never shows the scores to a trainer; the
preference model is trained from its sampled labels only):

* relevance: +1 per distinct word of the prompt's topic, +1.5 for the requested keyword, -0.5 per word of
  another topic;
* length: -0.5 per word away from the audience's ideal length (child 4, friend 6, expert 8);
* repetition: -1 per repeated word;
* style, the cyclic part: a response's style is the style class (plain, vivid, formal) most of its style
  words belong to (none on a tie or without style words). Plain beats vivid, vivid beats formal, formal
  beats plain, like rock-paper-scissors: the winner of a pair gets +STYLE_WEIGHT on top of the score
  difference. No scalar reward reproduces this part (a Bradley-Terry model cannot), which is the case
  SPPO is built for.

P(y1 beats y2 | x) = sigmoid(score(x, y1) - score(x, y2) + STYLE_WEIGHT * cycle(style(y1), style(y2))).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TOPIC_WORDS: dict[str, tuple[str, ...]] = {
    "ocean": ("wave", "salt", "tide", "reef", "shell"),
    "forest": ("pine", "moss", "fern", "owl", "bark"),
    "city": ("street", "tower", "train", "market", "lamp"),
    "desert": ("sand", "dune", "cactus", "heat", "camel"),
    "mountain": ("peak", "snow", "ridge", "stone", "eagle"),
    "garden": ("rose", "soil", "seed", "bee", "leaf"),
}
STYLE_WORDS: dict[str, tuple[str, ...]] = {
    "plain": ("simply", "clearly", "just", "only"),
    "vivid": ("bright", "wild", "glowing", "vast"),
    "formal": ("thus", "hence", "indeed", "therefore"),
}
FILLER_WORDS = ("the", "a", "and", "of", "with", "near", "very", "quiet")
AUDIENCE_LENGTH = {"child": 4, "friend": 6, "expert": 8}
"""The ideal number of words of a response, per audience."""
STYLE_BEATS = {"plain": "vivid", "vivid": "formal", "formal": "plain"}
"""Each style beats the one it names: a cycle, so no ranking of the three exists."""
STYLE_WEIGHT = 1.5
MAX_RESPONSE_WORDS = 12

WORD_TOPIC = {word: topic for topic, words in TOPIC_WORDS.items() for word in words}
WORD_STYLE = {word: style for style, words in STYLE_WORDS.items() for word in words}
RESPONSE_VOCABULARY: tuple[str, ...] = (
    *(w for words in TOPIC_WORDS.values() for w in words),
    *(w for words in STYLE_WORDS.values() for w in words),
    *FILLER_WORDS,
)


class ResponseError(ValueError):
    """A response the judge cannot score (a word outside the vocabulary, empty, or too long)."""


@dataclass(frozen=True)
class PreferencePrompt:
    """``describe <topic> for <audience> with <keyword>``."""

    topic: str
    audience: str
    keyword: str

    @property
    def text(self) -> str:
        """The prompt as the model reads it."""
        return f"describe {self.topic} for {self.audience} with {self.keyword}"

    @classmethod
    def parse(cls, text: str) -> PreferencePrompt:
        """The prompt a text names (ValueError if it is not one of the task's prompts)."""
        words = text.split()
        if len(words) != 6 or words[0] != "describe" or words[2] != "for" or words[4] != "with":
            raise ValueError(f"not a prompt of the preference task: {text!r}")
        prompt = cls(words[1], words[3], words[5])
        if prompt.topic not in TOPIC_WORDS or prompt.audience not in AUDIENCE_LENGTH:
            raise ValueError(f"unknown topic or audience in {text!r}")
        if prompt.keyword not in TOPIC_WORDS[prompt.topic]:
            raise ValueError(f"keyword {prompt.keyword!r} is not a word of {prompt.topic!r}")
        return prompt


def all_prompts() -> list[PreferencePrompt]:
    """The 90 prompts, in a fixed order."""
    return [
        PreferencePrompt(topic, audience, keyword)
        for topic, words in TOPIC_WORDS.items()
        for audience in AUDIENCE_LENGTH
        for keyword in words
    ]


def split_prompts() -> tuple[list[PreferencePrompt], list[PreferencePrompt]]:
    """(train, held-out): every prompt whose keyword is its topic's last word is held out (18 of 90)."""
    train: list[PreferencePrompt] = []
    held_out: list[PreferencePrompt] = []
    for prompt in all_prompts():
        (held_out if prompt.keyword == TOPIC_WORDS[prompt.topic][-1] else train).append(prompt)
    return train, held_out


def _check(words: list[str]) -> None:
    if not words:
        raise ResponseError("empty response")
    if len(words) > MAX_RESPONSE_WORDS:
        raise ResponseError(f"response of {len(words)} words; at most {MAX_RESPONSE_WORDS}")
    unknown = [w for w in words if w not in WORD_TOPIC and w not in WORD_STYLE and w not in FILLER_WORDS]
    if unknown:
        raise ResponseError(f"words outside the vocabulary: {unknown[:3]}")


def score_components(prompt: PreferencePrompt, response: str) -> dict[str, float]:
    """The judge's transitive criteria for one response (relevance, length, repetition)."""
    words = response.split()
    _check(words)
    own = {w for w in words if WORD_TOPIC.get(w) == prompt.topic}
    foreign = sum(1 for w in words if w in WORD_TOPIC and WORD_TOPIC[w] != prompt.topic)
    relevance = len(own) + (1.5 if prompt.keyword in own else 0.0) - 0.5 * foreign
    length = -0.5 * abs(len(words) - AUDIENCE_LENGTH[prompt.audience])
    repetition = -1.0 * (len(words) - len(set(words)))
    return {"relevance": relevance, "length": length, "repetition": repetition}


def score(prompt: PreferencePrompt, response: str) -> float:
    """The sum of the transitive criteria."""
    return float(sum(score_components(prompt, response).values()))


def style(response: str) -> str | None:
    """The style class most of the response's style words belong to (None on a tie or without style words)."""
    counts: dict[str, int] = {}
    for word in response.split():
        if word in WORD_STYLE:
            counts[WORD_STYLE[word]] = counts.get(WORD_STYLE[word], 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    leaders = [s for s, c in counts.items() if c == best]
    return leaders[0] if len(leaders) == 1 else None


def style_cycle(first: str | None, second: str | None) -> float:
    """+1 if the first style beats the second, -1 if it loses, 0 otherwise."""
    if first is None or second is None or first == second:
        return 0.0
    return 1.0 if STYLE_BEATS[first] == second else -1.0


def preference_probability(prompt: PreferencePrompt, first: str, second: str) -> float:
    """The hidden judge's P(first beats second | prompt)."""
    margin = score(prompt, first) - score(prompt, second) + STYLE_WEIGHT * style_cycle(style(first), style(second))
    return 1.0 / (1.0 + math.exp(-margin))


def sample_preference(prompt: PreferencePrompt, first: str, second: str, rng: np.random.Generator) -> int:
    """A noisy label as a human rater gives it: 1 if first is preferred (with the judge's probability), else 0."""
    return int(rng.random() < preference_probability(prompt, first, second))


def base_response(prompt: PreferencePrompt, rng: np.random.Generator) -> str:
    """A response from the broad distribution the SFT data is drawn from (some on-topic, many not good).

    Length 3-9 words; each word on the prompt's topic with probability 0.35, a style word 0.25, another
    topic's 0.1, filler otherwise.
    """
    length = int(rng.integers(3, 10))
    other_topics = [t for t in TOPIC_WORDS if t != prompt.topic]
    styles = list(STYLE_WORDS)
    words = []
    for _ in range(length):
        u = rng.random()
        if u < 0.35:
            words.append(str(rng.choice(TOPIC_WORDS[prompt.topic])))
        elif u < 0.60:
            words.append(str(rng.choice(STYLE_WORDS[styles[int(rng.integers(len(styles)))]])))
        elif u < 0.70:
            words.append(str(rng.choice(TOPIC_WORDS[other_topics[int(rng.integers(len(other_topics)))]])))
        else:
            words.append(str(rng.choice(FILLER_WORDS)))
    return " ".join(words)


__all__ = [
    "AUDIENCE_LENGTH",
    "FILLER_WORDS",
    "MAX_RESPONSE_WORDS",
    "RESPONSE_VOCABULARY",
    "STYLE_BEATS",
    "STYLE_WEIGHT",
    "STYLE_WORDS",
    "TOPIC_WORDS",
    "WORD_STYLE",
    "WORD_TOPIC",
    "PreferencePrompt",
    "ResponseError",
    "all_prompts",
    "base_response",
    "preference_probability",
    "sample_preference",
    "score",
    "score_components",
    "split_prompts",
    "style",
    "style_cycle",
]

"""Learned judges trained from the hidden judge's noisy labels: a pairwise preference model and a Bradley-Terry reward.

`PairwisePreferenceModel` plays PairRM's role in SPPO: it reads a prompt and two responses together,
``<bos> prompt <sep> first <sep> second <eos>``, and predicts P(first beats second); asked both ways and
averaged (`probability`), it is exactly complementary. Because it sees both responses it can represent
the judge's rock-paper-scissors part, which no scalar reward can. `RewardModel` is the Bradley-Terry
model P3O's and PPO's baselines use: a scalar r(x, y) per response, trained so that
sigmoid(r(x, y1) - r(x, y2)) matches the labels. Both are a small Llama backbone (no LM head) with a
linear head on the last token's state.

Training pairs (`comparison_pairs`) cover the responses a policy may write during alignment, not just the
SFT distribution: each response is drawn with its own on-topic rate, style mix and length, and labelled by
`sample_preference` (a noisy label, as a human rater gives). Agreement with the hidden judge is measured on
the held-out prompts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import nn
from transformers import LlamaModel, PreTrainedTokenizerFast

from llmalign.model import ModelFolderError, TinyLMConfig, llama_config
from llmalign.preference_task import (
    FILLER_WORDS,
    STYLE_WORDS,
    TOPIC_WORDS,
    WORD_STYLE,
    PreferencePrompt,
    preference_probability,
    sample_preference,
)
from llmalign.tokenizer import load_tokenizer, save_tokenizer
from runkit.atomic import write_bytes_atomic, write_json_atomic


@dataclass(frozen=True)
class Comparison:
    """A labelled pair: label 1 when the rater preferred `first`."""

    prompt: str
    first: str
    second: str
    label: int


def varied_response(prompt: PreferencePrompt, rng: np.random.Generator) -> str:
    """A response from a wide family: its own length (1-12), on-topic rate, keyword use, style mix and repeats."""
    length = int(rng.integers(1, 13))
    on_topic, style_rate = rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.6)
    favourite = list(STYLE_WORDS)[int(rng.integers(len(STYLE_WORDS)))]
    others = [t for t in TOPIC_WORDS if t != prompt.topic]
    words = [prompt.keyword] if rng.random() < 0.4 else []
    while len(words) < length:
        u = rng.random()
        if u < on_topic * (1 - style_rate):
            words.append(str(rng.choice(TOPIC_WORDS[prompt.topic])))
        elif u < on_topic * (1 - style_rate) + style_rate:
            style = favourite if rng.random() < 0.7 else list(STYLE_WORDS)[int(rng.integers(len(STYLE_WORDS)))]
            words.append(str(rng.choice(STYLE_WORDS[style])))
        elif rng.random() < 0.3:
            words.append(str(rng.choice(TOPIC_WORDS[others[int(rng.integers(len(others)))]])))
        else:
            words.append(str(rng.choice(FILLER_WORDS)))
    rng.shuffle(words)
    return " ".join(words[:length])


def restyled(response: str, rng: np.random.Generator) -> str:
    """The response with its style words mapped one-to-one onto another style's words (content and score kept).

    Every style word, whatever its style, is mapped (so the result has one style); a response with more
    distinct style words than a style has, or none, comes back unchanged.
    """
    words = response.split()
    originals = list(dict.fromkeys(w for w in words if w in WORD_STYLE))
    if not originals or len(originals) > min(len(v) for v in STYLE_WORDS.values()):
        return response
    target = str(rng.choice([s for s in STYLE_WORDS if s != WORD_STYLE[originals[0]]]))
    replacements = [str(w) for w in rng.permutation(list(STYLE_WORDS[target]))]
    mapping = dict(zip(originals, replacements, strict=False))
    return " ".join(mapping.get(w, w) for w in words)


def comparison_pairs(
    prompts: list[PreferencePrompt], count: int, seed: int, style_contrast: float = 0.0
) -> list[Comparison]:
    """`count` labelled comparisons on `prompts` (cycled), responses from `varied_response`.

    `style_contrast`: the fraction of pairs whose second response is the first restyled (same content,
    another style), as a rater study that probes style would collect; only such pairs isolate the cycle.
    """
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(count):
        prompt = prompts[i % len(prompts)]
        first = varied_response(prompt, rng)
        second = restyled(first, rng) if rng.random() < style_contrast else first
        if second == first:
            second = varied_response(prompt, rng)
        pairs.append(Comparison(prompt.text, first, second, sample_preference(prompt, first, second, rng)))
    return pairs


def _backbone(config: TinyLMConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaModel:
    return LlamaModel(llama_config(config, tokenizer))


def _right_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long)
    return ids, attention


class _LastTokenHead(nn.Module):
    """A backbone and a linear head on the state of each sequence's last real token."""

    kind = "judge"

    def __init__(self, config: TinyLMConfig, tokenizer: PreTrainedTokenizerFast) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.backbone = _backbone(config, tokenizer)
        self.head = nn.Linear(config.hidden_size, 1)

    def _encode(self, texts: list[list[str]]) -> list[list[int]]:
        """``<bos> t0 <sep> t1 [<sep> t2] <eos>`` as ids."""
        t = self.tokenizer
        rows = []
        for parts in texts:
            ids = [t.bos_token_id]
            for index, part in enumerate(parts):
                if index:
                    ids.append(t.sep_token_id)
                ids += t.encode(part, add_special_tokens=False)
            rows.append([*ids, t.eos_token_id])
        return rows

    def score(self, texts: list[list[str]]) -> torch.Tensor:
        """The head's output for each sequence: `B`."""
        ids, attention = _right_padded(self._encode(texts), self.tokenizer.pad_token_id)
        states = self.backbone(input_ids=ids, attention_mask=attention).last_hidden_state
        last = attention.sum(dim=-1) - 1
        return self.head(states[torch.arange(len(texts)), last]).squeeze(-1)


class PairwisePreferenceModel(_LastTokenHead):
    """P(first beats second | prompt), read jointly (PairRM's role)."""

    kind = "pairwise"

    def logits(self, prompts: list[str], first: list[str], second: list[str]) -> torch.Tensor:
        """One-way logit of P(first beats second): `B`."""
        return self.score([[p, a, b] for p, a, b in zip(prompts, first, second, strict=True)])

    def probability(self, prompts: list[str], first: list[str], second: list[str]) -> torch.Tensor:
        """P(first beats second), asked both ways and averaged: P(a, b) + P(b, a) = 1 exactly."""
        forward = torch.sigmoid(self.logits(prompts, first, second))
        backward = torch.sigmoid(self.logits(prompts, second, first))
        return 0.5 * (forward + 1.0 - backward)

    def loss(self, batch: list[Comparison]) -> torch.Tensor:
        """Cross-entropy on the labels, each pair presented both ways."""
        prompts = [c.prompt for c in batch] * 2
        first = [c.first for c in batch] + [c.second for c in batch]
        second = [c.second for c in batch] + [c.first for c in batch]
        labels = torch.tensor([c.label for c in batch] + [1 - c.label for c in batch], dtype=torch.float32)
        return nn.functional.binary_cross_entropy_with_logits(self.logits(prompts, first, second), labels)


class RewardModel(_LastTokenHead):
    """A Bradley-Terry reward r(x, y): P(y1 beats y2) = sigmoid(r(x, y1) - r(x, y2))."""

    kind = "reward"

    def reward(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        """r(x, y) for each pair: `B`."""
        return self.score([[p, r] for p, r in zip(prompts, responses, strict=True)])

    def probability(self, prompts: list[str], first: list[str], second: list[str]) -> torch.Tensor:
        """sigmoid(r(x, first) - r(x, second))."""
        return torch.sigmoid(self.reward(prompts, first) - self.reward(prompts, second))

    def loss(self, batch: list[Comparison]) -> torch.Tensor:
        """Bradley-Terry's negative log-likelihood of the labels."""
        prompts = [c.prompt for c in batch]
        margin = self.reward(prompts, [c.first for c in batch]) - self.reward(prompts, [c.second for c in batch])
        labels = torch.tensor([c.label for c in batch], dtype=torch.float32)
        return nn.functional.binary_cross_entropy_with_logits(margin, labels)


JUDGE_FILE, JUDGE_CONFIG = "judge.safetensors", "judge.json"
JUDGE_KINDS: dict[str, type[_LastTokenHead]] = {"pairwise": PairwisePreferenceModel, "reward": RewardModel}


def save_judge(model: PairwisePreferenceModel | RewardModel, folder: Path, figures: dict[str, float]) -> Path:
    """Write a learned judge: weights (safetensors), its kind, size and figures (JSON), the tokenizer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(folder / JUDGE_FILE, save({k: v.contiguous() for k, v in model.state_dict().items()}))
    meta = {"kind": model.kind, "size": asdict(model.config), "figures": figures}
    write_json_atomic(folder / JUDGE_CONFIG, meta)
    save_tokenizer(model.tokenizer, folder)
    return folder


def load_judge(folder: Path) -> PairwisePreferenceModel | RewardModel:
    """A learned judge saved by `save_judge` (ModelFolderError when a file is missing or the kind unknown)."""
    folder = Path(folder)
    for name in (JUDGE_FILE, JUDGE_CONFIG, "tokenizer.json"):
        if not (folder / name).is_file():
            raise ModelFolderError(f"{folder} holds no {name}: not a judge folder written by llmalign")
    meta = json.loads((folder / JUDGE_CONFIG).read_text())
    kind = JUDGE_KINDS.get(str(meta.get("kind")))
    if kind is None:
        raise ModelFolderError(
            f"{folder}: unknown judge kind {meta.get('kind')!r}; expected one of {list(JUDGE_KINDS)}"
        )
    model = kind(TinyLMConfig(**meta["size"]), load_tokenizer(folder))
    model.load_state_dict(load_file(str(folder / JUDGE_FILE)))
    model.eval()
    assert isinstance(model, PairwisePreferenceModel | RewardModel)
    return model


def judge_agreement(
    model: PairwisePreferenceModel | RewardModel, pairs: list[Comparison], batch_size: int = 256
) -> dict[str, float]:
    """How well a learned judge matches the hidden one on `pairs`.

    `accuracy`: the learned judge picks the response the hidden judge prefers (on the pairs the hidden
    judge is at least 60/40 on); `mean_abs_error`: |P_learned - P_hidden| averaged over all pairs.
    """
    learned, hidden = [], []
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            learned += model.probability(
                [c.prompt for c in chunk], [c.first for c in chunk], [c.second for c in chunk]
            ).tolist()
            hidden += [preference_probability(PreferencePrompt.parse(c.prompt), c.first, c.second) for c in chunk]
    learned_array, hidden_array = np.asarray(learned), np.asarray(hidden)
    decided = np.abs(hidden_array - 0.5) >= 0.1
    agree = (learned_array > 0.5) == (hidden_array > 0.5)
    return {
        "accuracy": float(agree[decided].mean()) if decided.any() else float("nan"),
        "mean_abs_error": float(np.abs(learned_array - hidden_array).mean()),
        "pairs": float(len(pairs)),
    }


def cycle_agreement(model: PairwisePreferenceModel | RewardModel, prompts: list[PreferencePrompt], seed: int) -> float:
    """Fraction of style cycles the learned judge reproduces (all three edges the hidden judge's way).

    For each prompt, three responses share their content words and differ in one style word (plain, vivid,
    formal): the hidden judge prefers each over the next around the cycle. A Bradley-Terry reward scores 0
    here by construction.
    """
    rng = np.random.default_rng(seed)
    reproduced = []
    with torch.no_grad():
        for prompt in prompts:
            content = " ".join(str(w) for w in rng.choice(TOPIC_WORDS[prompt.topic], size=2, replace=False))
            plain, vivid, formal = (f"{content} {rng.choice(STYLE_WORDS[s])} the" for s in ("plain", "vivid", "formal"))
            edges = [(plain, vivid), (vivid, formal), (formal, plain)]
            p = model.probability([prompt.text] * 3, [a for a, _ in edges], [b for _, b in edges])
            reproduced.append(bool((p > 0.5).all()))
    return float(np.mean(reproduced))


def train_judge(
    model: PairwisePreferenceModel | RewardModel,
    pairs: list[Comparison],
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> list[float]:
    """Fit a learned judge to labelled pairs with AdamW (constant rate); returns the loss of each step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    losses = []
    model.train()
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(pairs))
        for start in range(0, len(pairs), batch_size):
            loss = model.loss([pairs[i] for i in order[start : start + batch_size]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
    model.eval()
    return losses


__all__ = [
    "Comparison",
    "PairwisePreferenceModel",
    "RewardModel",
    "comparison_pairs",
    "cycle_agreement",
    "judge_agreement",
    "load_judge",
    "restyled",
    "save_judge",
    "train_judge",
    "varied_response",
]

"""The learned judges: a pairwise model can learn the judge's cycle, a Bradley-Terry reward cannot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from llmalign.model import ModelFolderError, TinyLMConfig
from llmalign.preference_model import (
    Comparison,
    PairwisePreferenceModel,
    RewardModel,
    comparison_pairs,
    judge_agreement,
    load_judge,
    restyled,
    save_judge,
    train_judge,
    varied_response,
)
from llmalign.preference_task import WORD_STYLE, PreferencePrompt, score, split_prompts, style
from llmalign.tokenizer import train_tokenizer
from runkit.testing import run_console_script

SMALL = TinyLMConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64)
PROMPT = "describe ocean for child with reef"
PLAIN, VIVID, FORMAL = "reef wave simply the", "reef wave bright the", "reef wave thus the"
CYCLE = [(PLAIN, VIVID), (VIVID, FORMAL), (FORMAL, PLAIN)]  # each first response beats the second


def _cycle_data() -> list[Comparison]:
    """The three edges of the cycle, each labelled by its winner 8 times in 10, both orders."""
    pairs = []
    for first, second in CYCLE:
        pairs += [Comparison(PROMPT, first, second, int(i < 8)) for i in range(10)]
    return pairs


@pytest.mark.slow
def test_the_pairwise_model_learns_the_cycle_the_reward_model_cannot() -> None:
    tokenizer = train_tokenizer()
    torch.manual_seed(0)
    pairwise, reward = PairwisePreferenceModel(SMALL, tokenizer), RewardModel(SMALL, tokenizer)
    for model in (pairwise, reward):
        train_judge(model, _cycle_data(), epochs=200, batch_size=30, learning_rate=3e-3, seed=0)
    with torch.no_grad():
        cycle_pairwise = [pairwise.probability([PROMPT], [a], [b]).item() for a, b in CYCLE]
        cycle_reward = [reward.probability([PROMPT], [a], [b]).item() for a, b in CYCLE]
    assert min(cycle_pairwise) > 0.65  # every edge of the cycle, as the judge has it
    # r(plain) > r(vivid) > r(formal) > r(plain) is impossible: some edge is at or below 1/2
    assert min(cycle_reward) <= 0.5 + 1e-6


def test_pairwise_probabilities_are_complementary() -> None:
    tokenizer = train_tokenizer()
    model = PairwisePreferenceModel(SMALL, tokenizer).eval()
    with torch.no_grad():
        forward = model.probability([PROMPT] * 2, [PLAIN, "reef"], [VIVID, "sand the"])
        backward = model.probability([PROMPT] * 2, [VIVID, "sand the"], [PLAIN, "reef"])
    torch.testing.assert_close(forward + backward, torch.ones(2))


def test_training_pairs_span_good_and_bad_responses_and_agreement_is_measured() -> None:
    train, held_out = split_prompts()
    pairs = comparison_pairs(train, 400, seed=0)
    assert pairs == comparison_pairs(train, 400, seed=0)
    rng = np.random.default_rng(0)
    scores = [
        score(PreferencePrompt.parse(PROMPT), varied_response(PreferencePrompt.parse(PROMPT), rng)) for _ in range(300)
    ]
    assert min(scores) < 0
    assert max(scores) >= 4.5  # near the best a 4-word answer for a child can get (5.5)
    assert 0.3 < np.mean([c.label for c in pairs]) < 0.7
    model = PairwisePreferenceModel(SMALL, train_tokenizer()).eval()
    figures = judge_agreement(model, comparison_pairs(held_out, 100, seed=1))
    assert figures["pairs"] == 100
    assert 0.0 <= figures["accuracy"] <= 1.0
    assert figures["mean_abs_error"] == pytest.approx(figures["mean_abs_error"])  # finite


def test_a_saved_judge_reloads_to_the_same_probabilities_and_a_bad_folder_is_named(tmp_path: Path) -> None:
    tokenizer = train_tokenizer()
    for kind in (PairwisePreferenceModel, RewardModel):
        torch.manual_seed(1)
        model = kind(SMALL, tokenizer).eval()
        folder = save_judge(model, tmp_path / kind.kind, {"accuracy": 0.5})
        loaded = load_judge(folder)
        assert type(loaded) is kind
        with torch.no_grad():
            torch.testing.assert_close(
                loaded.probability([PROMPT], [PLAIN], [VIVID]), model.probability([PROMPT], [PLAIN], [VIVID])
            )
    (tmp_path / "reward" / "judge.json").write_text('{"kind": "oracle", "size": {}}')
    with pytest.raises(ModelFolderError, match="unknown judge kind 'oracle'"):
        load_judge(tmp_path / "reward")
    with pytest.raises(ModelFolderError, match=r"judge\.safetensors"):
        load_judge(tmp_path)


@pytest.mark.slow
def test_the_judge_command_reports_agreement_and_cycles(tmp_path: Path) -> None:
    done = run_console_script("llmalign", ["judge", "--kind", "reward", "--run-dir", str(tmp_path / "j")])
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["cycle_agreement"] == 0.0  # a Bradley-Terry reward cannot reproduce a cycle
    assert summary["pairs"] == 32
    assert isinstance(load_judge(tmp_path / "j" / "judge"), RewardModel)


def test_style_contrast_pairs_differ_only_in_style() -> None:
    rng = np.random.default_rng(0)
    prompt = PreferencePrompt.parse(PROMPT)
    assert restyled("reef wave the", rng) == "reef wave the"  # nothing to restyle
    for _ in range(50):
        changed = restyled("reef simply wave just", rng)
        assert changed.split()[0::2] == ["reef", "wave"]
        assert style(changed) in ("vivid", "formal")
        assert score(prompt, changed) == score(prompt, "reef simply wave just")
    train, _ = split_prompts()
    pairs = comparison_pairs(train, 400, seed=0, style_contrast=1.0)

    def content(text: str) -> list[str]:
        return [w if w not in WORD_STYLE else "<style>" for w in text.split()]

    contrasted = [c for c in pairs if content(c.first) == content(c.second)]
    assert len(contrasted) > 200  # most responses can be restyled; the others get a freely drawn partner
    for c in contrasted:
        prompt = PreferencePrompt.parse(c.prompt)
        assert c.first != c.second
        assert score(prompt, c.first) == score(prompt, c.second)
        assert style(c.second) is not None
    free = comparison_pairs(train, 400, seed=0)
    assert len([c for c in free if content(c.first) == content(c.second)]) < 40  # free pairs rarely share content

"""What a model is measured by, per task, on held-out prompts the training never saw.

arithmetic: final-answer accuracy (the verifier), greedy and sampled at temperature 1, and the fraction of
steps right. preference: the hidden judge's mean score of the model's responses and the fraction it can
score at all (a response outside the vocabulary or too long scores nothing); `win_rate` compares two models
under the judge.
"""

from __future__ import annotations

import numpy as np
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from llmalign.arithmetic_task import ArithmeticProblem, is_correct, sample_problem, step_correctness
from llmalign.data import Task
from llmalign.preference_task import (
    PreferencePrompt,
    ResponseError,
    preference_probability,
    score,
    split_prompts,
)
from llmalign.sequences import sample_responses

MAX_NEW_TOKENS = 48


def held_out_prompts(task: Task, count: int, seed: int) -> list[str]:
    """`count` held-out prompts (arithmetic: fresh held-out problems; preference: the 18 held-out prompts, cycled)."""
    if task == "arithmetic":
        rng = np.random.default_rng(seed)
        return [sample_problem(rng, held_out=True).text for _ in range(count)]
    _, held_out = split_prompts()
    return [held_out[i % len(held_out)].text for i in range(count)]


def judge_score(prompt: str, response: str) -> float | None:
    """The hidden judge's score of a response (None when it cannot be scored)."""
    try:
        return score(PreferencePrompt.parse(prompt), response)
    except ResponseError:
        return None


def arithmetic_metrics(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, prompts: list[str], seed: int
) -> dict[str, float]:
    """Accuracy (greedy and sampled) and step accuracy on arithmetic prompts."""
    problems = [ArithmeticProblem.parse(p) for p in prompts]
    figures: dict[str, float] = {}
    for name, temperature in (("greedy", 0.0), ("sampled", 1.0)):
        samples = sample_responses(model, tokenizer, prompts, 1, MAX_NEW_TOKENS, temperature, seed)
        right = [is_correct(problem, text) for problem, text in zip(problems, samples.texts, strict=True)]
        figures[f"accuracy_{name}"] = float(np.mean(right))
        if name == "greedy":
            steps = [
                m
                for problem, text in zip(problems, samples.texts, strict=True)
                for m in step_correctness(problem, text)
            ]
            figures["step_accuracy_greedy"] = float(np.mean(steps))
    return figures


def preference_metrics(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, prompts: list[str], seed: int
) -> dict[str, float]:
    """The judge's mean score of the scorable sampled responses, and the fraction that is scorable."""
    samples = sample_responses(model, tokenizer, prompts, 1, MAX_NEW_TOKENS, 1.0, seed)
    scores = [judge_score(p, t) for p, t in zip(samples.prompts, samples.texts, strict=True)]
    valid = [s for s in scores if s is not None]
    return {
        "judge_score": float(np.mean(valid)) if valid else float("nan"),
        "scorable_fraction": len(valid) / len(scores),
    }


def task_metrics(
    task: Task, model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, count: int, seed: int
) -> dict[str, float]:
    """The task's held-out figures for one model."""
    prompts = held_out_prompts(task, count, seed)
    if task == "arithmetic":
        return arithmetic_metrics(model, tokenizer, prompts, seed)
    return preference_metrics(model, tokenizer, prompts, seed)


def win_rate(prompts: list[str], responses: list[str], baseline_responses: list[str]) -> float:
    """Mean judge probability that a response beats the baseline's to the same prompt (an unscorable one loses)."""
    wins = []
    for prompt, mine, theirs in zip(prompts, responses, baseline_responses, strict=True):
        parsed = PreferencePrompt.parse(prompt)
        mine_ok, theirs_ok = judge_score(prompt, mine) is not None, judge_score(prompt, theirs) is not None
        if mine_ok and theirs_ok:
            wins.append(preference_probability(parsed, mine, theirs))
        else:
            wins.append(0.5 if mine_ok == theirs_ok else float(mine_ok))
    return float(np.mean(wins))


__all__ = ["held_out_prompts", "judge_score", "task_metrics", "win_rate"]

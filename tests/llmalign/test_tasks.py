"""The two generated tasks: the hidden judge's structure (an intransitive cycle included) and the verifier."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from llmalign.arithmetic_task import (
    ArithmeticProblem,
    final_answer,
    is_correct,
    sample_problem,
    solution,
    step_correctness,
)
from llmalign.preference_task import (
    PreferencePrompt,
    ResponseError,
    all_prompts,
    base_response,
    preference_probability,
    sample_preference,
    score,
    score_components,
    split_prompts,
    style,
)

OCEAN_CHILD = PreferencePrompt("ocean", "child", "reef")


def test_the_judge_scores_each_criterion_as_documented() -> None:
    # 2 own words + the keyword bonus, one foreign word; 5 words for a child (ideal 4); "reef" twice
    parts = score_components(OCEAN_CHILD, "reef wave reef sand the")
    assert parts == {"relevance": 2 + 1.5 - 0.5, "length": -0.5, "repetition": -1.0}
    assert score(OCEAN_CHILD, "reef wave tide shell") == pytest.approx(4 + 1.5)


def test_preferences_are_complementary_and_follow_the_score() -> None:
    good, poor = "reef wave tide shell", "sand sand the a very"
    p = preference_probability(OCEAN_CHILD, good, poor)
    assert p > 0.99
    assert p + preference_probability(OCEAN_CHILD, poor, good) == pytest.approx(1.0)
    assert preference_probability(OCEAN_CHILD, good, good) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    labels = [sample_preference(OCEAN_CHILD, "reef wave the a", "reef the a near", rng) for _ in range(4000)]
    expected = preference_probability(OCEAN_CHILD, "reef wave the a", "reef the a near")
    assert np.mean(labels) == pytest.approx(expected, abs=0.03)


def test_the_style_part_is_a_cycle_no_scalar_reward_can_represent() -> None:
    # equal on every transitive criterion, one style each
    plain, vivid, formal = "reef wave simply the", "reef wave bright the", "reef wave thus the"
    assert {style(plain), style(vivid), style(formal)} == {"plain", "vivid", "formal"}
    assert score(OCEAN_CHILD, plain) == score(OCEAN_CHILD, vivid) == score(OCEAN_CHILD, formal)
    cycle = [(plain, vivid), (vivid, formal), (formal, plain)]
    for first, second in cycle:
        assert preference_probability(OCEAN_CHILD, first, second) == pytest.approx(1 / (1 + math.exp(-1.5)))
    # Bradley-Terry would need r(plain) > r(vivid) > r(formal) > r(plain): no ordering of three rewards fits
    for order in itertools.permutations([plain, vivid, formal]):
        rank = {response: i for i, response in enumerate(order)}
        assert not all(rank[a] < rank[b] for a, b in cycle)
    assert style("simply bright") is None  # a tie has no style
    assert style("reef wave") is None


def test_prompts_split_into_disjoint_train_and_held_out_sets_and_parse_back() -> None:
    train, held_out = split_prompts()
    assert len(all_prompts()) == 90
    assert (len(train), len(held_out)) == (72, 18)
    assert not {p.text for p in train} & {p.text for p in held_out}
    for prompt in all_prompts():
        assert PreferencePrompt.parse(prompt.text) == prompt
    with pytest.raises(ValueError, match="keyword"):
        PreferencePrompt.parse("describe ocean for child with sand")
    with pytest.raises(ValueError, match="not a prompt"):
        PreferencePrompt.parse("")


def test_the_judge_refuses_responses_outside_its_vocabulary() -> None:
    with pytest.raises(ResponseError, match="outside the vocabulary"):
        score(OCEAN_CHILD, "reef banana")
    with pytest.raises(ResponseError, match="empty"):
        score(OCEAN_CHILD, "   ")
    with pytest.raises(ResponseError, match="at most"):
        score(OCEAN_CHILD, " ".join(["the"] * 13))
    rng = np.random.default_rng(1)
    for prompt in all_prompts():
        score(prompt, base_response(prompt, rng))  # the SFT distribution only writes what the judge reads


def test_the_worked_solution_passes_the_verifier_and_every_step_check() -> None:
    rng = np.random.default_rng(0)
    for held_out in (False, True):
        for _ in range(200):
            problem = sample_problem(rng, held_out)
            assert problem.held_out == held_out
            assert min(problem.partial_values()) >= 0
            text = solution(problem)
            assert is_correct(problem, text)
            assert all(step_correctness(problem, text))


def test_the_verifier_reads_the_last_answer_and_the_step_check_finds_the_wrong_step() -> None:
    problem = ArithmeticProblem((17, 25, 8), ("+", "-"))
    assert problem.text == "17 + 25 - 8 ="
    assert solution(problem) == "17 + 25 = 42 ; 42 - 8 = 34 ; answer 34"
    assert final_answer("answer 12 ; answer 34") == 34
    assert final_answer("17 + 25 = 42") is None
    assert not is_correct(problem, "17 + 25 = 42 ; 42 - 8 = 34 ; answer 35")
    assert is_correct(problem, "answer 34")  # outcome only: the verifier does not read the steps
    assert step_correctness(problem, "17 + 25 = 43 ; 43 - 8 = 35 ; answer 35") == [False, False]
    assert step_correctness(problem, "17 + 25 = 42 ; 42 - 8 = 33 ; answer 33") == [True, False]
    assert step_correctness(problem, "answer 34") == [False, False]
    with pytest.raises(ValueError, match="at least two operands"):
        ArithmeticProblem((1,), ())
    with pytest.raises(ValueError, match="operators are"):
        ArithmeticProblem((1, 2), ("*",))

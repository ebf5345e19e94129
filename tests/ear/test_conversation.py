"""The user simulator, the conversation state, the baselines, episodes and evaluation (fast; untrained FMs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ear.configs import ConversationConfig
from ear.conversation import (
    HISTORY_LENGTH,
    AlwaysRecommend,
    Context,
    ContradictoryAnswersError,
    Conversation,
    MaxEntropy,
    Policy,
    Rewards,
    Simulator,
    crm_state,
    ear_state,
    evaluate,
    length_one_hot,
    run_episode,
    state_size,
)
from ear.data import Dataset, load_dataset
from ear.fm import AttributeFM


@pytest.fixture(scope="module", params=["binary", "enumerated"])
def setting(request: pytest.FixtureRequest) -> tuple[Dataset, AttributeFM]:
    dataset = load_dataset(request.param)
    torch.manual_seed(0)
    fm = AttributeFM(dataset.n_users, dataset.n_items, dataset.scenario.n_attributes, dim=8)
    fm.eval()
    return dataset, fm


def _random_pairs(dataset: Dataset, n: int, seed: int) -> np.ndarray:
    test = dataset.interactions.test
    return test[np.random.default_rng(seed).choice(len(test), size=n, replace=False)]


def test_simulator_never_lies(setting: tuple[Dataset, AttributeFM]) -> None:
    dataset, _ = setting
    scenario = dataset.scenario
    rng = np.random.default_rng(1)
    for target in rng.choice(dataset.n_items, size=300, replace=False):
        truth = set(scenario.item_attributes[target].tolist())
        simulator = Simulator(dataset, 0, int(target), rng)
        question, opened = simulator.opening()
        assert len(opened) >= 1
        assert set(opened.tolist()) <= truth
        assert all(scenario.question_of[a] == question for a in opened)
        for q in range(scenario.n_questions):
            expected = truth & set(scenario.attributes_of_question(q).tolist())
            assert set(simulator.answer(q).tolist()) == expected
        if scenario.name == "binary":
            assert len(opened) == 1
        else:
            assert set(opened.tolist()) == truth & set(scenario.attributes_of_question(question).tolist())
        others = np.setdiff1d(np.arange(20), [target])
        assert simulator.accepts(np.append(others[:5], target))
        assert not simulator.accepts(others)


def test_candidates_keep_the_target_and_every_known_attribute(setting: tuple[Dataset, AttributeFM]) -> None:
    dataset, fm = setting
    context = Context(dataset, fm)
    matrix = context.matrix
    config = ConversationConfig(reflection=False)
    rng = np.random.default_rng(2)
    for user, target in _random_pairs(dataset, 60, 3):
        simulator = Simulator(dataset, int(user), int(target), rng)
        conv = Conversation(context, int(user), fm, config, rng)
        conv.opening(*simulator.opening())
        for question in rng.permutation(dataset.scenario.n_questions):
            if conv.asked[question]:
                continue
            conv.ask(int(question), simulator.answer(int(question)))
            assert target in conv.candidates
            assert matrix[np.ix_(conv.candidates, np.asarray(conv.known, dtype=np.int64))].all()
            assert np.all(conv.entropy()[conv.asked] == 0.0)
            if rng.random() < 0.5:
                wrong = conv.candidates[conv.candidates != target][:10]
                conv.reject(wrong, context.positives(int(user), int(target)))
                assert target in conv.candidates
                assert not np.isin(wrong, conv.candidates).any()
        assert set(conv.known) == set(dataset.scenario.item_attributes[target].tolist())


def test_answers_that_contradict_every_item_are_refused() -> None:
    dataset = load_dataset("binary")
    fm = AttributeFM(dataset.n_users, dataset.n_items, dataset.scenario.n_attributes, dim=4)
    conv = Conversation(Context(dataset, fm), 0, fm, ConversationConfig(reflection=False), np.random.default_rng(0))
    conv.opening(0, np.array([0]))
    attributes = set(dataset.scenario.item_attributes[int(conv.candidates[0])].tolist())
    matrix = Context(dataset, fm).matrix
    lone = next(q for q in range(1, dataset.scenario.n_questions) if not matrix[conv.candidates, q].any())
    assert lone not in attributes
    with pytest.raises(ContradictoryAnswersError):
        conv.ask(lone, np.array([lone]))


def test_state_vectors(setting: tuple[Dataset, AttributeFM]) -> None:
    dataset, fm = setting
    context = Context(dataset, fm)
    n_q = dataset.scenario.n_questions
    rng = np.random.default_rng(4)
    user, target = _random_pairs(dataset, 1, 5)[0]
    simulator = Simulator(dataset, int(user), int(target), rng)
    conv = Conversation(context, int(user), fm, ConversationConfig(reflection=False), rng)
    conv.opening(*simulator.opening())
    for _ in range(3):
        q = int(np.flatnonzero(~conv.asked)[0])
        conv.ask(q, simulator.answer(q))
    conv.reject(conv.candidates[conv.candidates != target][:10], np.array([1, 2]))
    state = ear_state(conv)
    assert state.shape == (state_size(dataset, "ear"),) == (2 * n_q + HISTORY_LENGTH + 8,)
    ent, sim = state[:n_q], state[n_q : 2 * n_q]
    his, length = state[2 * n_q : 2 * n_q + HISTORY_LENGTH], state[2 * n_q + HISTORY_LENGTH :]
    assert np.all(ent[conv.asked] == 0.0)
    assert np.all(ent >= 0.0)
    share = context.matrix[conv.candidates].mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_attribute = np.nan_to_num(-(share * np.log2(share) + (1 - share) * np.log2(1 - share)))
    for q in np.flatnonzero(~conv.asked).tolist():
        assert ent[q] == pytest.approx(per_attribute[dataset.scenario.attributes_of_question(int(q))].sum(), abs=1e-5)
    assert np.all(sim[conv.asked] == -1.0)
    assert length.sum() == 1.0
    assert length[int(np.argmax(length))] == length_one_hot(len(conv.candidates)).max()
    assert list(his[: len(conv.history)]) == conv.history
    assert np.all(his[len(conv.history) :] == 0)
    assert conv.history[-1] == -1
    assert set(conv.history[:3]) <= {0, 1}
    crm = crm_state(conv)
    assert crm.shape == (state_size(dataset, "crm"),) == (dataset.scenario.n_attributes,)
    assert set(np.flatnonzero(crm).tolist()) == set(conv.known)


def test_length_buckets() -> None:
    for count, bucket in [
        (0, 0),
        (10, 0),
        (11, 1),
        (50, 1),
        (100, 2),
        (200, 3),
        (300, 4),
        (500, 5),
        (1000, 6),
        (1001, 7),
    ]:
        vector = length_one_hot(count)
        assert vector.sum() == 1.0
        assert vector[bucket] == 1.0


def test_rewards_are_the_authors() -> None:
    binary = Rewards.for_scenario("binary")
    assert (binary.rec_success, binary.ask_success, binary.ask_fail, binary.rec_fail, binary.quit) == (
        0.99,
        0.09,
        -0.01,
        -0.01,
        -0.3,
    )
    assert Rewards.for_scenario("enumerated").rec_fail == -0.1


@pytest.mark.parametrize("policy", [AlwaysRecommend(), MaxEntropy()], ids=["always-recommend", "max-entropy"])
def test_baseline_conversations_end_by_max_turns(setting: tuple[Dataset, AttributeFM], policy: Policy) -> None:
    dataset, fm = setting
    context = Context(dataset, fm)
    config = ConversationConfig(reflection=False, max_turns=15)
    table = Rewards.for_scenario(dataset.scenario.name)
    outcomes = set()
    for i, (user, target) in enumerate(_random_pairs(dataset, 40, 6)):
        episode = run_episode(
            dataset,
            fm,
            policy,
            int(user),
            int(target),
            config,
            np.random.default_rng(i),
            context=context,
        )
        assert 2 <= episode.turns <= 15
        assert len(episode.actions) == len(episode.rewards) <= 14
        assert episode.turns == len(episode.actions) + 1
        if episode.success:
            assert episode.rewards[-1] == table.rec_success
            assert episode.actions[-1] == dataset.scenario.n_questions
        else:
            assert episode.turns == 15
            assert episode.rewards[-1] == table.quit
        asked = [a for a in episode.actions if a < dataset.scenario.n_questions]
        assert len(asked) == len(set(asked))
        outcomes.add(episode.success)
    if isinstance(policy, AlwaysRecommend):
        assert all(a == dataset.scenario.n_questions for a in episode.actions)


def test_evaluate_curve_and_determinism(setting: tuple[Dataset, AttributeFM]) -> None:
    dataset, fm = setting
    pairs = _random_pairs(dataset, 50, 7)
    config = ConversationConfig(reflection=False)
    first = evaluate(dataset, fm, MaxEntropy(), pairs, config, seed=3)
    again = evaluate(dataset, fm, MaxEntropy(), pairs, config, seed=3)
    assert first.success_by_turn == again.success_by_turn
    assert first.average_turns == again.average_turns
    curve = np.array(first.success_by_turn)
    assert len(curve) == 15
    assert curve[0] == 0.0
    assert np.all(np.diff(curve) >= 0)
    assert first.success_rate == curve[-1]
    assert 2 <= first.average_turns <= 15
    assert first.conversations == 50


def test_reflection_updates_only_the_conversation_copy() -> None:
    dataset = load_dataset("binary")
    torch.manual_seed(0)
    fm = AttributeFM(dataset.n_users, dataset.n_items, dataset.scenario.n_attributes, dim=8)
    fm.eval()
    before = {k: v.clone() for k, v in fm.state_dict().items()}
    context = Context(dataset, fm)
    user, target = dataset.interactions.test[0]
    conv = Conversation(context, int(user), fm, ConversationConfig(reflection=True), np.random.default_rng(0))
    conv.opening(*Simulator(dataset, int(user), int(target), np.random.default_rng(0)).opening())
    first = conv.recommend()
    copy_before = {k: v.clone() for k, v in conv.fm.state_dict().items()}
    conv.reject(first[first != target], context.positives(int(user), int(target)))
    assert conv.fm is not fm
    assert all(torch.equal(before[k], v) for k, v in fm.state_dict().items())
    assert any(not torch.equal(copy_before[k], v) for k, v in conv.fm.state_dict().items())

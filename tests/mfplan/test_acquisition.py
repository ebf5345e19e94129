"""The cost-aware boundary acquisition: exact against BoTorch's fantasy models, and choosing the
fidelity a user would choose.

Synthetic problem: the target score is x0 - 0.5 (feasible for x0 <= 0.5); MuJoCo and the analytic
check are optimistic by 0.1 and 0.2 and wrong by a wave in x0 + x1 besides, so that cheap data alone
cannot settle the target's sign near the boundary.
"""

from __future__ import annotations

import math
import time

import pytest
import torch
from botorch.sampling import SobolQMCNormalSampler
from torch import Tensor

from mfplan.acquisition import (
    boundary_knowledge_gradient,
    choose_evaluations,
    classified_fraction,
    cost_model,
    plan_evaluations,
)
from mfplan.estimator import EstimatorConfig, FeasibilityEstimator
from mfplan.fidelities import FIDELITY_NAMES, FIDELITY_VALUES, FidelityCosts, fidelity_name

D = 2
OFFSET = {"analytic": -0.7, "mujoco": -0.6, "rotorpy": -0.5}
WAVE = {"analytic": 0.1, "mujoco": 0.05, "rotorpy": 0.0}


def uniform(n: int, seed: int, low: float = 0.0, high: float = 1.0, d: int = D) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, d, dtype=torch.double, generator=generator)


def observe(features: Tensor, fidelity: str) -> tuple[Tensor, Tensor]:
    column = torch.full((len(features), 1), FIDELITY_VALUES[fidelity], dtype=torch.double)
    wave = WAVE[fidelity] * torch.sin(2.0 * math.pi * (features[:, :1] + features[:, 1:2]))
    return torch.cat([features, column], dim=-1), features[:, :1] + OFFSET[fidelity] + wave


def fitted(*parts: tuple[Tensor, Tensor], d: int = D) -> FeasibilityEstimator:
    estimator = FeasibilityEstimator(num_features=d)
    estimator.fit(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    return estimator


def near_boundary(m: int, seed: int) -> Tensor:
    """Candidates with x0 within 0.005 of the boundary (where even a well-informed model is unsure)."""
    features = uniform(m, seed)
    features[:, 0] = 0.495 + 0.01 * features[:, 0]
    return features


@pytest.fixture(scope="module")
def sparse() -> FeasibilityEstimator:
    """Knows little: a few evaluations at each fidelity."""
    return fitted(
        observe(uniform(4, 1), "rotorpy"), observe(uniform(4, 31), "mujoco"), observe(uniform(8, 32), "analytic")
    )


@pytest.fixture(scope="module")
def boundary_candidates() -> Tensor:
    return near_boundary(16, 2)


@pytest.fixture(scope="module")
def cheap_data_everywhere(boundary_candidates: Tensor) -> FeasibilityEstimator:
    """Plenty of analytic and MuJoCo data (also at the candidates); target data only far from the boundary."""
    spread = uniform(200, 3)
    target = uniform(12, 4)
    target[:, 0] = torch.where(target[:, 0] < 0.5, 0.4 * target[:, 0], 0.6 + 0.4 * target[:, 0])
    return fitted(
        observe(spread, "analytic"),
        observe(spread[:100], "mujoco"),
        observe(boundary_candidates, "analytic"),
        observe(boundary_candidates, "mujoco"),
        observe(target, "rotorpy"),
    )


def with_fidelity(features: Tensor, value: float) -> Tensor:
    return torch.cat([features, torch.full((len(features), 1), value, dtype=torch.double)], dim=-1)


def test_gain_matches_closed_form_for_a_noise_free_look_at_the_candidate_itself() -> None:
    # One candidate, N(0.3, 1): observing it exactly settles its sign, so the gain is 1 - max(p, 1 - p).
    gain = boundary_knowledge_gradient(
        target_mean=torch.tensor([0.3], dtype=torch.double),
        target_variance=torch.tensor([1.0], dtype=torch.double),
        cross_covariance=torch.tensor([[1.0]], dtype=torch.double),
        pair_variance=torch.tensor([1.0], dtype=torch.double),
        pair_noise=torch.tensor([0.0], dtype=torch.double),
    )
    p = 0.5 * math.erfc(0.3 / math.sqrt(2.0))
    assert float(gain) == pytest.approx(1.0 - max(p, 1.0 - p), abs=2e-3)


def test_gain_is_zero_for_an_observation_uncorrelated_with_the_candidates() -> None:
    gain = boundary_knowledge_gradient(
        target_mean=torch.tensor([0.1, -0.2], dtype=torch.double),
        target_variance=torch.tensor([0.5, 0.5], dtype=torch.double),
        cross_covariance=torch.zeros(2, 1, dtype=torch.double),
        pair_variance=torch.tensor([1.0], dtype=torch.double),
        pair_noise=torch.tensor([0.01], dtype=torch.double),
    )
    assert float(gain) == pytest.approx(0.0, abs=1e-12)


def test_closed_form_gain_equals_botorch_fantasy_models(sparse: FeasibilityEstimator) -> None:
    pool = uniform(200, 5)
    candidates = pool[(sparse.prob_feasible(pool) - 0.5).abs().argsort()[:6]]  # the least certain ones
    target = with_fidelity(candidates, 1.0)
    pairs = torch.cat([with_fidelity(candidates[:2], v) for v in (0.0, 0.5, 1.0)])
    mean, covariance, noise = sparse.joint_posterior(torch.cat([target, pairs]))
    m = len(candidates)
    variance = covariance.diagonal()
    closed = boundary_knowledge_gradient(mean[:m], variance[:m], covariance[:m, m:], variance[m:], noise[m:])

    with torch.no_grad():
        posterior = sparse.model.posterior(target)
        current = classified_fraction(posterior.mean.squeeze(-1), posterior.variance.squeeze(-1).sqrt())
        for k, pair in enumerate(pairs):
            sampler = SobolQMCNormalSampler(torch.Size([1024]), seed=k)
            fantasy = sparse.model.fantasize(pair.unsqueeze(0), sampler).posterior(target)
            expected = classified_fraction(fantasy.mean.squeeze(-1), fantasy.variance.squeeze(-1).sqrt()).mean()
            assert float(closed[k]) == pytest.approx(float(expected - current), rel=0.03, abs=5e-4), k
    assert float(closed.max()) > 0.05  # a comparison of substantial gains, not of zeros


def test_cheap_fidelity_is_chosen_where_the_model_knows_little(sparse: FeasibilityEstimator) -> None:
    candidates = uniform(16, 6)
    choices = plan_evaluations(sparse, candidates, FidelityCosts(), budget_s=1.0, max_count=50)
    assert choices
    assert choices[0].fidelity == "analytic"
    assert sum(c.fidelity == "analytic" for c in choices) >= len(choices) / 2


def test_when_the_count_binds_not_the_budget_cheapness_is_no_reason_to_choose(
    sparse: FeasibilityEstimator,
) -> None:
    candidates = uniform(16, 6)
    loose = plan_evaluations(sparse, candidates, FidelityCosts(), budget_s=100.0, max_count=3)
    tight = plan_evaluations(sparse, candidates, FidelityCosts(), budget_s=1.0, max_count=3)
    assert loose[0].fidelity == "rotorpy"
    assert loose[0].gain > max(c.gain for c in tight)


def test_expensive_fidelity_is_chosen_near_the_boundary_once_cheap_data_is_plentiful(
    cheap_data_everywhere: FeasibilityEstimator, boundary_candidates: Tensor
) -> None:
    choices = plan_evaluations(cheap_data_everywhere, boundary_candidates, FidelityCosts(), budget_s=5.0, max_count=6)
    assert choices
    assert choices[0].fidelity == "rotorpy"
    assert all(c.fidelity != "analytic" for c in choices)


def test_only_candidates_with_an_uncertain_verdict_are_chosen(
    cheap_data_everywhere: FeasibilityEstimator, boundary_candidates: Tensor
) -> None:
    sure = uniform(16, 7)
    sure[:, 0] = torch.where(sure[:, 0] < 0.5, 0.1, 0.9)
    candidates = torch.cat([sure, boundary_candidates])
    p = cheap_data_everywhere.prob_feasible(candidates)
    assert ((p[:16] < 1e-3) | (p[:16] > 1 - 1e-3)).all()
    choices = choose_evaluations(cheap_data_everywhere, candidates, FidelityCosts(), budget_s=10.0, max_count=8)
    assert choices
    assert all(index >= 16 for index, _ in choices)


def test_budget_count_and_no_repeated_pair(sparse: FeasibilityEstimator) -> None:
    costs = FidelityCosts()
    candidates = uniform(8, 8)
    for budget_s, max_count in [(0.5, 50), (10.0, 7), (0.002, 5)]:
        choices = plan_evaluations(sparse, candidates, costs, budget_s=budget_s, max_count=max_count)
        assert sum(c.cost_s for c in choices) <= budget_s + 1e-9
        assert len(choices) <= max_count
        pairs = [(c.candidate_index, c.fidelity) for c in choices]
        assert len(set(pairs)) == len(pairs)
    assert not plan_evaluations(sparse, candidates, costs, budget_s=0.002, max_count=5)  # cheaper than anything


def test_only_offered_fidelities_are_chosen(sparse: FeasibilityEstimator) -> None:
    choices = choose_evaluations(
        sparse, uniform(8, 9), FidelityCosts(), budget_s=20.0, max_count=10, fidelities=["mujoco", "rotorpy"]
    )
    assert choices
    assert {f for _, f in choices} <= {"mujoco", "rotorpy"}


def test_unfitted_estimator_gets_the_cheapest_fidelity_in_order() -> None:
    choices = choose_evaluations(
        FeasibilityEstimator(num_features=D), uniform(10, 10), FidelityCosts(), budget_s=0.0095, max_count=8
    )
    assert choices == [(0, "analytic"), (1, "analytic"), (2, "analytic")]


def test_costs_take_the_running_median_of_measured_wall_times() -> None:
    costs = FidelityCosts(window=3)
    assert [costs.cost_s(n) for n in FIDELITY_NAMES] == [0.003, 0.15, 1.6]
    costs.record_many("rotorpy", [2.0, 9.0, 2.2])
    assert costs.cost_s("rotorpy") == 2.2
    costs.record_many("rotorpy", [2.4, 2.6, float("nan"), -1.0])  # the window keeps the last three valid times
    assert costs.cost_s("rotorpy") == 2.4
    assert FidelityCosts.from_dict(costs.to_dict()) == costs
    assert fidelity_name(0.5) == "mujoco"


def test_cost_model_interpolates_the_measured_costs_over_the_fidelity_column() -> None:
    costs = FidelityCosts(seconds={"analytic": 0.01, "mujoco": 0.2, "rotorpy": 2.0})
    X = with_fidelity(torch.zeros(5, D, dtype=torch.double), 0.0)
    X[:, -1] = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.double)
    seconds = cost_model(costs).posterior(X.unsqueeze(-2)).mean.reshape(-1)
    assert seconds.tolist() == pytest.approx([0.01, 0.105, 0.2, 1.1, 2.0])
    priced = cost_model(costs, slot_price_s=0.5).posterior(X.unsqueeze(-2)).mean.reshape(-1)
    assert priced.tolist() == pytest.approx([0.5, 0.5, 0.5, 1.1, 2.0])


@pytest.mark.slow
def test_one_call_on_64_candidates_and_three_fidelities_is_fast() -> None:
    d = 9
    data = uniform(400, 11, d=d)
    fidelity = torch.tensor([0.0, 0.5, 1.0], dtype=torch.double)[torch.arange(400) % 3]
    X = torch.cat([data, fidelity.unsqueeze(-1)], dim=-1)
    Y = data[:, :1] + data[:, 1:2] - 1.0 - 0.2 * (1.0 - fidelity.unsqueeze(-1))
    estimator = FeasibilityEstimator(num_features=d, config=EstimatorConfig(max_fit_iterations=30))
    estimator.fit(X, Y)
    candidates = uniform(64, 12, d=d)
    start = time.perf_counter()
    choices = choose_evaluations(estimator, candidates, FidelityCosts(), budget_s=10.0, max_count=16)
    assert time.perf_counter() - start < 10.0
    assert choices

"""Which of the planner's proposals to evaluate next, at which fidelity: a cost-aware knowledge gradient
on the feasibility boundary.

The policy needs to know which proposals are feasible at the target fidelity, not which has the
largest score, so the value of the estimator's state is how well it classifies the candidate set:

    V = (1/m) sum_j max(p_j, 1 - p_j),   p_j = P(score(x_j, target) <= 0) = Phi(-mu_j / sigma_j),

the expected fraction of candidates whose feasibility it gets right. The acquisition of one evaluation
of candidate k at fidelity s is its knowledge gradient on V, per second of cost:

    a(k, s) = (E[V after observing y(x_k, s)] - V) / cost(s).

Only candidates with an uncertain sign contribute (max(p, 1 - p) ~ 1 elsewhere), and a cheap fidelity
wins while it still says something about the target (its correlation with the target is high and the
target is unknown); once cheap data pins down the low-fidelity score near the boundary, only a
higher fidelity can resolve the remaining bias, and it wins despite its cost.

For one observation the expectation is exact in closed form (Frazier et al., correlated-beliefs KG):
after observing y at x* the target posterior of candidate j is N(mu_j + c_j Z, sigma_j^2 - c_j^2), with
c_j = Cov(f(x_j, target), f(x*)) / sqrt(Var f(x*) + noise) and Z ~ N(0, 1); the expectation over Z is
taken by Gauss-Hermite quadrature. This needs one joint posterior over the (candidate, fidelity)
pairs and nothing else, so all pairs are scored in one batch in milliseconds.

Why not BoTorch's `qMultiFidelityKnowledgeGradient` or `qMultiFidelityMaxValueEntropy` directly: both
value information about the maximum of the score (the most infeasible trajectory), which is not our
question, and qMFKG's one-shot inner maximisation runs over a continuous box, where our decisions are
a discrete set of feature vectors (the features of realisable trajectories, not a free box). Taking
the discrete KG by fantasy models is exact but builds one (n + 1)-point model per pair and fantasy
(gigabytes at n = 1000); the closed form gives the same numbers (a test checks it against BoTorch's
`fantasize`). BoTorch still supplies the model, `project_to_target_fidelity` and the cost-aware
utility (`InverseCostWeightedUtility` over a `GenericDeterministicModel` of the measured costs).

A call has two limits, `budget_s` seconds and `max_count` evaluations, and an evaluation uses one of
the `max_count` slots as well as its seconds: it is priced at max(cost, budget_s / max_count). Then the
ratio ranks right at both ends: when the budget binds it is gain per second, and when the count binds
(40 s for 16 evaluations affords 16 RotorPy flights) a cheap evaluation is no bargain for being cheap,
and the largest gains win.

A batch is chosen greedily: take the best affordable pair, condition the joint covariance on it (the
variance update does not depend on the value observed; the mean is kept: "kriging believer"), rescore,
repeat until the budget or the count is spent or nothing is worth its cost. A pair is never chosen
twice in one call; a candidate is chosen at a second fidelity only if that is still worth its cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from botorch.acquisition.cost_aware import InverseCostWeightedUtility
from botorch.acquisition.utils import project_to_target_fidelity
from botorch.models.deterministic import GenericDeterministicModel
from torch import Tensor

from mfplan.estimator import FeasibilityEstimator
from mfplan.fidelities import FIDELITY_NAMES, TARGET_FIDELITY_VALUE, FidelityCosts, fidelity_value

QUADRATURE_POINTS = 64
"""Gauss-Hermite nodes for the expectation over the observed value."""
QUADRATURE_ELEMENTS = 4_000_000
"""Largest (candidates x pairs x nodes) block evaluated at once (32 MB of doubles)."""
MIN_GAIN = 1e-6
"""A pair whose expected gain in classified fraction is below this is not worth any cost."""


@dataclass(frozen=True)
class EvaluationChoice:
    """One chosen evaluation and why."""

    candidate_index: int
    fidelity: str
    gain: float
    """Expected increase in the fraction of candidates classified right at the target fidelity."""
    cost_s: float


def cost_model(costs: FidelityCosts, slot_price_s: float = 0.0) -> GenericDeterministicModel:
    """A BoTorch model of the price of one evaluation from the fidelity column (the last input column):
    its measured seconds, but at least `slot_price_s`."""
    return GenericDeterministicModel(
        lambda X: costs.costs_at(X[..., -1]).clamp_min(slot_price_s).unsqueeze(-1), num_outputs=1
    )


def classified_fraction(mean: Tensor, std: Tensor, threshold: float = 0.0) -> Tensor:
    """Expected fraction of candidates whose sign is classified right: mean of max(p, 1 - p).

    Args:
        mean, std: `batch_shape x m`-dim tensors of the target score's posterior.

    Returns:
        A `batch_shape`-dim tensor.
    """
    p = torch.special.ndtr((threshold - mean) / std.clamp_min(1e-12))
    return torch.maximum(p, 1.0 - p).mean(dim=-1)


def boundary_knowledge_gradient(
    target_mean: Tensor,
    target_variance: Tensor,
    cross_covariance: Tensor,
    pair_variance: Tensor,
    pair_noise: Tensor,
    threshold: float = 0.0,
    quadrature_points: int = QUADRATURE_POINTS,
) -> Tensor:
    """Expected gain in `classified_fraction` from one observation at each pair (exact up to quadrature).

    Args:
        target_mean: `m`: posterior mean of the score at the candidates, target fidelity.
        target_variance: `m`: its latent posterior variance.
        cross_covariance: `m x k`: Cov(f(candidate j, target), f(pair i)).
        pair_variance: `k`: latent posterior variance at each pair.
        pair_noise: `k`: observation noise variance at each pair.

    Returns:
        A `k`-dim tensor of non-negative gains.
    """
    nodes_np, weights_np = np.polynomial.hermite_e.hermegauss(quadrature_points)
    nodes = torch.as_tensor(nodes_np, dtype=target_mean.dtype)
    weights = torch.as_tensor(weights_np / math.sqrt(2.0 * math.pi), dtype=target_mean.dtype)
    spread = cross_covariance / (pair_variance + pair_noise).clamp_min(1e-12).sqrt()  # m x k
    std_after = (target_variance.unsqueeze(-1) - spread.square()).clamp_min(1e-12).sqrt()  # m x k
    m = target_mean.shape[0]
    chunk = max(1, QUADRATURE_ELEMENTS // max(1, m * quadrature_points))
    expected = []
    for columns in torch.arange(spread.shape[-1]).split(chunk):  # bounded memory for large candidate sets
        mean_after = target_mean[:, None, None] + spread[:, columns, None] * nodes  # m x c x Q
        p = torch.special.ndtr((threshold - mean_after) / std_after[:, columns, None])
        expected.append((torch.maximum(p, 1.0 - p) * weights).sum(dim=-1).mean(dim=0))  # c
    current = classified_fraction(target_mean, target_variance.clamp_min(1e-12).sqrt(), threshold)
    return (torch.cat(expected) - current).clamp_min(0.0)


def plan_evaluations(
    estimator: FeasibilityEstimator,
    candidates: Tensor,
    costs: FidelityCosts,
    budget_s: float,
    max_count: int,
    fidelities: Sequence[str] = FIDELITY_NAMES,
    threshold: float = 0.0,
) -> list[EvaluationChoice]:
    """Greedy cost-aware choice of (candidate, fidelity) evaluations; see the module docstring.

    Args:
        estimator: the reward estimator (unfitted: the cheapest offered fidelity, candidates in order).
        candidates: an `m x d`-dim tensor of the planner's proposals' features.
        costs: seconds per evaluation at each fidelity.
        budget_s: the most expected seconds the chosen evaluations may cost together.
        max_count: the most evaluations chosen.
        fidelities: the fidelities that may be chosen.
        threshold: the score at the feasibility boundary.

    Returns:
        The choices in the order chosen.
    """
    candidates = torch.as_tensor(candidates, dtype=torch.double)
    if candidates.ndim != 2 or candidates.shape[-1] != estimator.num_features:
        raise ValueError(f"candidates must be m x {estimator.num_features} features, got {tuple(candidates.shape)}")
    m = candidates.shape[0]
    offered = sorted(set(fidelities), key=fidelity_value)
    if m == 0 or max_count <= 0 or budget_s <= 0.0 or not offered:
        return []
    if not estimator.is_fitted:
        return _cold_start(m, costs, budget_s, max_count, offered[0])
    pairs = torch.cat([_with_fidelity(candidates, fidelity_value(name)) for name in offered])  # (S m) x (d+1)
    target = project_to_target_fidelity(
        _with_fidelity(candidates, 0.0), {candidates.shape[-1]: TARGET_FIDELITY_VALUE}, d=candidates.shape[-1] + 1
    )
    mean, covariance, noise = estimator.joint_posterior(torch.cat([target, pairs]))
    utility = InverseCostWeightedUtility(cost_model(costs, slot_price_s=budget_s / max_count))
    pair_costs = torch.cat([torch.full((m,), costs.cost_s(name), dtype=torch.double) for name in offered])
    pair_noise = noise[m:]
    chosen: list[EvaluationChoice] = []
    available = torch.ones(len(pairs), dtype=torch.bool)
    left_s = budget_s
    while len(chosen) < max_count:
        variance = covariance.diagonal()
        gains = boundary_knowledge_gradient(
            mean[:m], variance[:m], covariance[:m, m:], variance[m:], pair_noise, threshold
        )
        with torch.no_grad():
            per_second = utility(X=pairs.unsqueeze(-2), deltas=gains.unsqueeze(0)).squeeze(0)
        usable = available & (pair_costs <= left_s + 1e-12) & (gains > MIN_GAIN)
        if not usable.any():
            break
        best = int(torch.where(usable, per_second, torch.full_like(per_second, -math.inf)).argmax())
        name = offered[best // m]
        chosen.append(EvaluationChoice(best % m, name, float(gains[best]), float(pair_costs[best])))
        left_s -= float(pair_costs[best])
        available[best] = False
        column = covariance[:, m + best]
        covariance = covariance - torch.outer(column, column) / (column[m + best] + pair_noise[best]).clamp_min(1e-12)
    return chosen


def choose_evaluations(
    estimator: FeasibilityEstimator,
    candidates: Tensor,
    costs: FidelityCosts,
    budget_s: float,
    max_count: int,
    fidelities: Sequence[str] = FIDELITY_NAMES,
) -> list[tuple[int, str]]:
    """(candidate index, fidelity name) pairs to evaluate, costing at most `budget_s` together."""
    return [
        (c.candidate_index, c.fidelity)
        for c in plan_evaluations(estimator, candidates, costs, budget_s, max_count, fidelities)
    ]


def _with_fidelity(candidates: Tensor, value: float) -> Tensor:
    """`m x d` features -> `m x (d + 1)` with a constant fidelity column."""
    return torch.cat([candidates, torch.full((candidates.shape[0], 1), value, dtype=candidates.dtype)], dim=-1)


def _cold_start(m: int, costs: FidelityCosts, budget_s: float, max_count: int, name: str) -> list[EvaluationChoice]:
    """Before any fit: candidates in order at the cheapest offered fidelity, within the budget."""
    cost_s = costs.cost_s(name)
    count = min(m, max_count, int((budget_s + 1e-12) // cost_s))
    return [EvaluationChoice(i, name, 0.0, cost_s) for i in range(count)]

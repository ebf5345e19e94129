"""The reward estimator on a synthetic problem whose feasibility boundary is known.

At the target fidelity the score is x0 - 0.5 (feasible for x0 <= 0.5); MuJoCo is biased to x0 - 0.6
and the analytic check to x0 - 0.7 (both optimistic, as cheap models of a vehicle tend to be).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from mfplan.estimator import (
    EstimatorConfig,
    EstimatorNotFittedError,
    FeasibilityEstimator,
    FeatureEncoding,
    feature_bounds,
    training_rows,
)
from mfplan.fidelities import FIDELITY_VALUES

D = 2
OFFSET = {"analytic": -0.7, "mujoco": -0.6, "rotorpy": -0.5}


def uniform(n: int, seed: int, low: float = 0.0, high: float = 1.0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, D, dtype=torch.double, generator=generator)


def observe(features: Tensor, fidelity: str) -> tuple[Tensor, Tensor]:
    """Training rows (features + fidelity column) and their scores."""
    column = torch.full((len(features), 1), FIDELITY_VALUES[fidelity], dtype=torch.double)
    return torch.cat([features, column], dim=-1), features[:, :1] + OFFSET[fidelity]


def stack(*parts: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def fitted(*parts: tuple[Tensor, Tensor], config: EstimatorConfig | None = None) -> FeasibilityEstimator:
    estimator = FeasibilityEstimator(num_features=D, config=config)
    estimator.fit(*stack(*parts))
    return estimator


@pytest.fixture(scope="module")
def three_fidelities() -> FeasibilityEstimator:
    return fitted(
        observe(uniform(150, 1), "analytic"), observe(uniform(60, 2), "mujoco"), observe(uniform(30, 3), "rotorpy")
    )


def test_predicted_sign_is_right_away_from_the_boundary(three_fidelities: FeasibilityEstimator) -> None:
    features = uniform(500, 10)
    away = (features[:, 0] - 0.5).abs() > 0.1
    mean, _ = three_fidelities.predict(features[away])
    truth = features[away, 0] - 0.5
    assert ((mean <= 0) == (truth <= 0)).double().mean() > 0.95


def test_probability_of_feasibility_is_even_at_the_boundary_and_sure_away(
    three_fidelities: FeasibilityEstimator,
) -> None:
    features = uniform(50, 11)
    for x0, low, high in [(0.5, 0.2, 0.8), (0.3, 0.95, 1.0), (0.7, 0.0, 0.05)]:
        features[:, 0] = x0
        p = three_fidelities.prob_feasible(features)
        assert low <= float(p.mean()) <= high, (x0, p)
    assert ((p >= 0) & (p <= 1)).all()


def test_std_is_lower_where_there_is_data() -> None:
    near = uniform(120, 4, high=0.5)
    estimator = fitted(observe(near, "analytic"), observe(near[:40], "rotorpy"))
    _, std_near = estimator.predict(uniform(100, 12, high=0.5))
    far = uniform(100, 13)
    far[:, 1] += 1.0  # x1 in [1, 2]: no data there
    _, std_far = estimator.predict(far)
    assert std_far.median() > 3.0 * std_near.median()
    _, std_noisy = estimator.predict(far, observation_noise=True)
    assert (std_noisy >= std_far).all()


def test_low_fidelity_data_alone_moves_the_target_prediction_the_right_way() -> None:
    estimator = fitted(observe(uniform(100, 5), "analytic"))
    features = uniform(200, 14)
    mean, _ = estimator.predict(features)
    correlation = torch.corrcoef(torch.stack([mean, features[:, 0]]))[0, 1]
    assert correlation > 0.9
    features[:, 0] = 0.1
    p_easy = estimator.prob_feasible(features)
    features[:, 0] = 0.9
    p_hard = estimator.prob_feasible(features)
    assert p_easy.mean() > p_hard.mean() + 0.25


def test_cheap_data_improves_the_target_prediction_of_a_few_expensive_points() -> None:
    expensive = observe(uniform(4, 6), "rotorpy")
    alone = fitted(expensive)
    shared = fitted(expensive, observe(uniform(150, 7), "analytic"))
    features = uniform(300, 15)
    truth = features[:, 0] - 0.5
    errors = {}
    for name, estimator in [("alone", alone), ("shared", shared)]:
        mean, _ = estimator.predict(features)
        errors[name] = float((mean - truth).square().mean().sqrt())
    assert errors["shared"] < 0.5 * errors["alone"], errors


def test_state_round_trip_gives_identical_predictions(three_fidelities: FeasibilityEstimator) -> None:
    restored = FeasibilityEstimator(num_features=D)
    restored.load_state_dict(three_fidelities.state_dict())
    features = uniform(64, 16)
    for a, b in zip(three_fidelities.predict(features), restored.predict(features), strict=True):
        assert torch.equal(a, b)
    assert restored.encoding is not None
    assert three_fidelities.encoding is not None
    assert all(
        torch.equal(a, b)
        for a, b in zip(restored.encoding.to_dict().values(), three_fidelities.encoding.to_dict().values(), strict=True)
    )
    assert restored.config == three_fidelities.config


def test_unfitted_state_round_trips() -> None:
    restored = FeasibilityEstimator(num_features=D)
    restored.load_state_dict(FeasibilityEstimator(num_features=D).state_dict())
    assert not restored.is_fitted


@pytest.mark.parametrize("count", [1, 2, 3])
def test_fit_survives_very_few_points(count: int) -> None:
    estimator = fitted(observe(uniform(count, 8), "analytic"))
    mean, std = estimator.predict(uniform(10, 17))
    assert torch.isfinite(mean).all()
    assert (std > 0).all()


def test_fit_survives_duplicate_inputs_with_different_scores() -> None:
    X, Y = observe(uniform(1, 9).repeat(30, 1), "rotorpy")
    Y = Y + torch.linspace(-0.05, 0.05, 30, dtype=torch.double).unsqueeze(-1)
    X2, Y2 = observe(uniform(20, 18), "analytic")
    estimator = FeasibilityEstimator(num_features=D)
    estimator.fit(torch.cat([X, X2, X2]), torch.cat([Y, Y2, Y2]))
    mean, std = estimator.predict(X[:1, :D])
    assert torch.isfinite(mean).all()
    assert (std > 0).all()
    assert float(mean) == pytest.approx(float(Y.mean()), abs=0.02)


def test_refit_warm_starts_keeps_the_first_encoding_and_caps_the_training_set() -> None:
    config = EstimatorConfig(max_train_points=40, max_fit_points=25)
    estimator = FeasibilityEstimator(num_features=D, config=config)
    first = estimator.fit(*stack(observe(uniform(20, 19), "analytic"), observe(uniform(10, 20), "rotorpy")))
    assert not first.warm_started
    assert first.num_used == 30
    assert first.num_fitted == 25
    encoding = estimator.encoding
    assert encoding is not None
    encoded = encoding.encode(uniform(20, 19))
    assert float(encoded.min()) > 0.0
    assert float(encoded.max()) < 1.0

    X, Y = stack(
        observe(uniform(20, 19), "analytic"),
        observe(uniform(10, 20), "rotorpy"),
        observe(uniform(40, 21, high=3.0), "analytic"),  # partly outside the first range
    )
    second = estimator.fit(X, Y)
    assert second.warm_started
    assert second.num_points == 70
    assert second.num_used == 40
    assert second.num_fitted == 25
    assert estimator.encoding is encoding
    kept = estimator.state_dict()["train_X"]
    assert int((kept[:, -1] == 1.0).sum()) == 10  # every target-fidelity point is kept


def test_training_rows_keep_higher_fidelity_first_then_the_newest() -> None:
    fidelity = torch.tensor([0.0, 1.0, 0.5, 0.0, 0.5, 0.0, 1.0, 0.0])
    assert training_rows(fidelity, 10).tolist() == list(range(8))
    assert training_rows(fidelity, 2).tolist() == [1, 6]
    assert training_rows(fidelity, 5).tolist() == [1, 2, 4, 6, 7]


def test_feature_bounds_pad_the_range_and_give_a_constant_feature_a_unit_box() -> None:
    features = torch.tensor([[0.0, 3.0], [10.0, 3.0]], dtype=torch.double)
    assert feature_bounds(features, 0.1).tolist() == [[-1.0, 2.5], [11.0, 3.5]]


def test_encoding_is_linear_in_the_bulk_and_compresses_outliers() -> None:
    bulk = torch.linspace(1.0, 2.0, 99, dtype=torch.double)
    features = torch.stack([torch.cat([bulk, bulk.new_tensor([500.0])]), torch.full((100,), 7.0)], dim=-1)
    encoding = FeatureEncoding.from_features(features, margin=0.1)
    encoded = encoding.encode(features)
    assert (encoded >= 0).all()
    assert (encoded <= 1).all()
    assert float(encoded[98, 0] - encoded[0, 0]) > 0.15  # min-max bounds would leave the bulk 0.002
    steps = encoded[1:99, 0].diff()
    assert float(steps.max() / steps.min()) < 2.0  # and is spread without a strong squeeze
    assert torch.allclose(
        encoding.input_transform().untransform(
            encoding.input_transform()(torch.cat([features, torch.ones(100, 1, dtype=torch.double)], dim=-1))
        )[:, :D],
        features,
    )
    assert encoded[:, 1].tolist() == [0.5] * 100  # a constant feature sits in the middle


def test_misuse_raises_typed_errors_that_say_what_was_wrong() -> None:
    estimator = FeasibilityEstimator(num_features=D)
    with pytest.raises(EstimatorNotFittedError, match="fit"):
        estimator.predict(uniform(3, 0))
    with pytest.raises(ValueError, match="n x 3"):
        estimator.fit(torch.zeros(4, D, dtype=torch.double), torch.zeros(4, 1, dtype=torch.double))
    with pytest.raises(ValueError, match="at least one"):
        estimator.fit(torch.zeros(0, D + 1, dtype=torch.double), torch.zeros(0, 1, dtype=torch.double))
    X, Y = observe(uniform(3, 0), "analytic")
    X[0, -1] = 2.0
    with pytest.raises(ValueError, match="fidelity column"):
        estimator.fit(X, Y)

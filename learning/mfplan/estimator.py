"""The reward estimator: a multi-fidelity GP of the feasibility score, predicted at the target fidelity.

Inputs are a trajectory's `d` features plus the fidelity column (`mfplan.fidelities`); the output is
the feasibility score (<= 0 exactly when feasible). BoTorch's `SingleTaskMultiFidelityGP` with the
linear-truncated fidelity kernel shares what the fidelities have in common (`k_0`) and learns a bias
that vanishes at the target fidelity, so cheap analytic and MuJoCo data move the target prediction.

Choices, each a line of `EstimatorConfig`:

- Features reach the kernel through a `FeatureEncoding` fixed at the first fit and kept for every
  later fit (so hyper-parameters stay comparable from fit to fit and a warm start means something):
  a robust z-score (median, interquartile range), an asinh squash (linear in the bulk, logarithmic in
  the tails: a wild early proposal needs a rotor at 500x its limit, and min-max bounds would crush
  every sensible trajectory into a corner of the cube), then the squashed range padded by
  `bounds_margin` on each side to the unit cube. The fidelity column is already in [0, 1].
- Scores are standardised (BoTorch's `Standardize`); one noise variance serves every fidelity (the
  analytic check is deterministic, RotorPy's wind is not: a per-fidelity noise would be the next
  refinement), with a floor (`min_noise_variance`, standardised units) that keeps duplicate inputs
  well-posed.
- Two caps keep a fit's time bounded while the data grow. The posterior conditions on at most
  `max_train_points` evaluations (one Cholesky factorisation, a fraction of a second at 1500), and the
  hyper-parameters are fitted on at most `max_fit_points` of them (every L-BFGS-B step factorises the
  kernel matrix again: a cold fit on 1000 points of real features took 60 s on 2 busy cores, on 500
  about 13 s). Both choose by the same rule: higher fidelity first (each evaluation there cost more and
  says more about the target), and within a fidelity the newest first (the policy's recent proposals
  are where its decisions are made).
- A refit starts from the previous fit's hyper-parameters (warm start) and runs at most
  `max_fit_iterations` L-BFGS-B iterations within `fit_timeout_s`.
- Torch runs the fit and predictions on `num_threads` intra-op threads (1 by default): on 2 cores
  with simulator workers busy, two OpenMP threads contend and a 200-point fit took 62 s instead of
  3-6 s.
- `predict` returns the latent function's mean and standard deviation at the target fidelity (no
  observation noise unless asked): the epistemic uncertainty that more evaluations remove.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import gpytorch
import torch
from botorch.exceptions.errors import ModelFittingError
from botorch.exceptions.warnings import OptimizationWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskMultiFidelityGP
from botorch.models.transforms.input import ChainedInputTransform, InputTransform, Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.posteriors import GPyTorchPosterior
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.means import LinearMean
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior
from torch import Tensor

from mfplan.analysis import NUM_FEATURES
from mfplan.fidelities import TARGET_FIDELITY_VALUE
from runkit import get_logger

log = get_logger("mfplan.estimator")


PREDICT_CHUNK = 1024
"""Predictions are made this many points at a time (joint posteriors, variance from the diagonal)."""
CHOLESKY_LIMIT = 20_000
"""Below this many training points GPyTorch uses Cholesky, not CG/Lanczos (which is slower and noisier here)."""


class EstimatorNotFittedError(RuntimeError):
    """The estimator was asked to predict before it was fitted."""


@dataclass(frozen=True)
class EstimatorConfig:
    """How the reward estimator is fitted."""

    max_train_points: int = 1500
    """Most evaluations the posterior conditions on (higher fidelities first, newest first within one)."""
    max_fit_points: int = 500
    """Most evaluations the hyper-parameters are fitted on (chosen by the same rule among the above)."""
    bounds_margin: float = 0.1
    """Padding of the fixed (squashed) feature bounds on each side, as a fraction of the first data's range."""
    min_noise_variance: float = 1e-4
    """Floor of the noise variance (standardised units): keeps duplicate inputs well-posed."""
    max_fit_iterations: int = 200
    """L-BFGS-B iterations per fit at most."""
    fit_timeout_s: float = 60.0
    """Wall-time limit of one fit's optimisation."""
    warm_start: bool = True
    """Start a refit from the previous fit's hyper-parameters."""
    nu: float = 2.5
    """Smoothness of the Matern kernels (0.5, 1.5 or 2.5)."""
    num_threads: int | None = 1
    """Torch intra-op threads while fitting and predicting (None: leave torch's setting alone)."""
    prior_mean: str = "constant"
    """The GP's prior mean: "constant", or "linear" in the encoded inputs (a trend that carries past the
    data, e.g. a score that keeps falling as a trajectory slows down, instead of reverting to a constant)."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_fit_points <= self.max_train_points:
            raise ValueError(
                f"need 1 <= max_fit_points <= max_train_points, got {self.max_fit_points}, {self.max_train_points}"
            )
        if self.bounds_margin < 0.0:
            raise ValueError(f"bounds_margin must be >= 0, got {self.bounds_margin}")
        if not self.min_noise_variance > 0.0:
            raise ValueError(f"min_noise_variance must be > 0, got {self.min_noise_variance}")
        if self.prior_mean not in ("constant", "linear"):
            raise ValueError(f"prior_mean must be 'constant' or 'linear', got {self.prior_mean!r}")


@dataclass(frozen=True)
class FitReport:
    """What one fit did."""

    num_points: int
    """Evaluations offered."""
    num_used: int
    """Evaluations the posterior conditions on (`max_train_points` cap)."""
    num_fitted: int
    """Evaluations the hyper-parameters were fitted on (`max_fit_points` cap)."""
    seconds: float
    warm_started: bool
    converged: bool
    """False when the optimiser failed and the starting hyper-parameters were kept."""


def feature_bounds(features: Tensor, margin: float) -> Tensor:
    """Bounds (`2 x d`) of `features` (`n x d`) padded by `margin` times the range on each side.

    A feature without spread gets a unit-wide box around its value.
    """
    low, high = features.min(dim=0).values, features.max(dim=0).values
    span = high - low
    pad = torch.where(span > 1e-9, margin * span, torch.full_like(span, 0.5))
    return torch.stack([low - pad, high + pad])


class AsinhSquash(InputTransform):
    """BoTorch input transform: `asinh((x - center) / scale)` on some columns, the others untouched."""

    center: Tensor
    scale: Tensor

    def __init__(self, center: Tensor, scale: Tensor, indices: list[int]) -> None:
        super().__init__()
        self.transform_on_train = True
        self.transform_on_eval = True
        self.transform_on_fantasize = True
        self.indices = list(indices)
        self.register_buffer("center", center.clone())
        self.register_buffer("scale", scale.clone())

    def transform(self, X: Tensor) -> Tensor:
        """`batch_shape x n x D` -> same shape, the chosen columns squashed."""
        out = X.clone()
        out[..., self.indices] = torch.asinh((X[..., self.indices] - self.center) / self.scale)
        return out

    def untransform(self, X: Tensor) -> Tensor:
        """The inverse of `transform`."""
        out = X.clone()
        out[..., self.indices] = self.center + self.scale * torch.sinh(X[..., self.indices])
        return out


@dataclass(frozen=True)
class FeatureEncoding:
    """How raw features reach the kernel, fixed at the first fit: z = asinh((x - center) / scale), then
    (z - low) / (high - low). All four are `d`-dim tensors."""

    center: Tensor
    scale: Tensor
    low: Tensor
    high: Tensor

    @classmethod
    def from_features(cls, features: Tensor, margin: float) -> FeatureEncoding:
        """Median and interquartile scale of `features` (`n x d`), and the squashed range padded by `margin`."""
        features = features.to(torch.double)
        center = features.median(dim=0).values
        quartiles = torch.quantile(features, torch.tensor([0.25, 0.75], dtype=torch.double), dim=0)
        scale = (quartiles[1] - quartiles[0]) / 1.349  # a normal's standard deviation from its IQR
        spread = features.std(dim=0, correction=0) if len(features) > 1 else torch.zeros_like(center)
        scale = torch.where(scale > 1e-9, scale, spread)
        scale = torch.where(scale > 1e-9, scale, torch.ones_like(scale))
        bounds = feature_bounds(torch.asinh((features - center) / scale), margin)
        return cls(center=center, scale=scale, low=bounds[0], high=bounds[1])

    def encode(self, features: Tensor) -> Tensor:
        """Features `... x d` as the kernel sees them (the first fit's data lie in [0, 1])."""
        return (torch.asinh((features - self.center) / self.scale) - self.low) / (self.high - self.low)

    def input_transform(self) -> ChainedInputTransform:
        """The encoding as a BoTorch input transform on `d` features + the fidelity column (left alone)."""
        d = self.center.shape[-1]
        indices = list(range(d))
        return ChainedInputTransform(
            squash=AsinhSquash(self.center, self.scale, indices),
            normalize=Normalize(d=d + 1, indices=indices, bounds=torch.stack([self.low, self.high])),
        )

    def to_dict(self) -> dict[str, Tensor]:
        """Tensors for a checkpoint."""
        return {"center": self.center, "scale": self.scale, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Tensor]) -> FeatureEncoding:
        """Rebuild from `to_dict`'s output."""
        return cls(
            **{k: torch.as_tensor(payload[k], dtype=torch.double).clone() for k in ("center", "scale", "low", "high")}
        )


def training_rows(fidelity_column: Tensor, cap: int) -> Tensor:
    """Indices (ascending) of the rows kept under `cap`: highest fidelity first, newest first within one.

    Args:
        fidelity_column: an `n`-dim tensor; rows are oldest first.
        cap: the most rows kept.

    Returns:
        A `min(n, cap)`-dim long tensor of row indices, in ascending order.
    """
    n = fidelity_column.shape[0]
    if n <= cap:
        return torch.arange(n)
    priority = fidelity_column.double() * (n + 1) + torch.arange(n, dtype=torch.double)
    return priority.topk(cap).indices.sort().values


class FeasibilityEstimator:
    """A multi-fidelity GP of the feasibility score (`SingleTaskMultiFidelityGP`, fidelity = last column)."""

    def __init__(
        self,
        num_features: int = NUM_FEATURES,
        config: EstimatorConfig | None = None,
        encoding: FeatureEncoding | None = None,
    ) -> None:
        self.num_features = num_features
        self.config = config or EstimatorConfig()
        self._encoding = None if encoding is None else self._check_encoding(encoding)
        self._model: SingleTaskMultiFidelityGP | None = None
        self._train_X = torch.empty(0, num_features + 1, dtype=torch.double)
        self._train_Y = torch.empty(0, 1, dtype=torch.double)

    @property
    def is_fitted(self) -> bool:
        """True once `fit` (or `load_state_dict`) has given it a model."""
        return self._model is not None

    @property
    def encoding(self) -> FeatureEncoding | None:
        """The fixed feature encoding, or None before the first fit."""
        return self._encoding

    @property
    def model(self) -> SingleTaskMultiFidelityGP:
        """The fitted BoTorch model (inputs: `d` raw features + the fidelity column)."""
        if self._model is None:
            raise EstimatorNotFittedError("the estimator has no model yet: call fit(X, Y) first")
        return self._model

    @property
    def num_train(self) -> int:
        """Evaluations in the current model's training set."""
        return 0 if self._model is None else int(self._model.train_targets.shape[-1])

    def fit(self, X: Tensor, Y: Tensor) -> FitReport:
        """Fit on all evaluations so far (the cap chooses which ones the model keeps).

        Args:
            X: an `n x (d + 1)`-dim tensor: features, then the fidelity column in [0, 1].
            Y: an `n x 1`-dim tensor of scores.
        """
        start = time.perf_counter()
        X, Y = self._check_data(X, Y)
        if self._encoding is None:
            self._encoding = FeatureEncoding.from_features(X[:, : self.num_features], self.config.bounds_margin)
        rows = training_rows(X[:, -1], self.config.max_train_points)
        train_X, train_Y = X[rows], Y[rows]
        fit_rows = training_rows(train_X[:, -1], self.config.max_fit_points)
        with self._threads():
            model = self._build(train_X[fit_rows], train_Y[fit_rows])
            previous = self._model
            warm = self.config.warm_start and previous is not None
            if warm and previous is not None:
                model.load_state_dict(_hyperparameters(previous.state_dict()), strict=False)
            converged = self._optimise(model)
            # Condition on the whole training set, built as load_state_dict builds it (bit-identical restores).
            self._install(train_X, train_Y, model.state_dict())
        report = FitReport(len(X), len(rows), len(fit_rows), time.perf_counter() - start, warm, converged)
        log.debug("fit %s", report)
        return report

    def predict(self, features: Tensor, observation_noise: bool = False) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of the score at the target fidelity.

        Args:
            features: an `n x d`-dim tensor of trajectory features.
            observation_noise: add the fitted noise variance (the spread of a new observation).

        Returns:
            mean, std: two `n`-dim double tensors.
        """
        X = self.at_target(features)
        means, stds = [], []
        with torch.no_grad(), _exact_linear_algebra(), self._threads():
            for chunk in X.split(PREDICT_CHUNK):
                posterior = self.model.posterior(chunk, observation_noise=observation_noise)
                means.append(posterior.mean.reshape(-1))
                stds.append(posterior.variance.clamp_min(1e-12).sqrt().reshape(-1))
        return torch.cat(means), torch.cat(stds)

    def prob_feasible(self, features: Tensor) -> Tensor:
        """P(score <= 0 at the target fidelity) for features `n x d`: Phi(-mean / std), an `n`-dim tensor."""
        mean, std = self.predict(features)
        return torch.special.ndtr(-mean / std)

    def joint_posterior(self, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Joint latent posterior at inputs with fidelity column, and each point's noise variance.

        Args:
            X: an `n x (d + 1)`-dim tensor.

        Returns:
            mean: `n`; covariance: `n x n` (latent, no noise); noise_variance: `n` (original units).
        """
        X = X.to(torch.double)
        with torch.no_grad(), _exact_linear_algebra(), self._threads():
            posterior = self.model.posterior(X)
            if not isinstance(posterior, GPyTorchPosterior):
                raise TypeError(f"expected a GPyTorchPosterior, got {type(posterior).__name__}")
            mean = posterior.mean.reshape(-1)
            covariance = posterior.distribution.covariance_matrix
            noisy = self.model.posterior(X, observation_noise=True).variance.reshape(-1)
        return mean, covariance, (noisy - covariance.diagonal()).clamp_min(0.0)

    def at_target(self, features: Tensor) -> Tensor:
        """Features `n x d` with the target fidelity column appended: `n x (d + 1)`, double."""
        features = torch.as_tensor(features, dtype=torch.double)
        if features.ndim != 2 or features.shape[-1] != self.num_features:
            raise ValueError(f"features must be n x {self.num_features}, got shape {tuple(features.shape)}")
        column = torch.full((features.shape[0], 1), TARGET_FIDELITY_VALUE, dtype=torch.double)
        return torch.cat([features, column], dim=-1)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the estimator exactly: config, bounds, training data, model state."""
        model = self._model
        return {
            "version": 1,
            "num_features": self.num_features,
            "config": asdict(self.config),
            "encoding": None if self._encoding is None else self._encoding.to_dict(),
            "train_X": None if model is None else self._train_X.clone(),
            "train_Y": None if model is None else self._train_Y.clone(),
            "model": None if model is None else {k: v.clone() for k, v in model.state_dict().items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from `state_dict()`'s output (predictions are identical afterwards)."""
        if state.get("version") != 1:
            raise ValueError(f"unknown estimator state version {state.get('version')!r}; expected 1")
        self.num_features = int(state["num_features"])
        self.config = EstimatorConfig(**state["config"])
        encoding = state["encoding"]
        self._encoding = None if encoding is None else self._check_encoding(FeatureEncoding.from_dict(encoding))
        if state["model"] is None:
            self._model = None
            return
        train_X = torch.as_tensor(state["train_X"], dtype=torch.double).clone()
        train_Y = torch.as_tensor(state["train_Y"], dtype=torch.double).clone()
        self._install(train_X, train_Y, state["model"])

    def _install(self, train_X: Tensor, train_Y: Tensor, model_state: Mapping[str, Tensor]) -> None:
        """Make a model on this training set with these hyper-parameters the current one.

        The transforms' buffers are not loaded: the encoding is the estimator's, and the outcome
        standardisation is recomputed from `train_Y` (the same numbers when restoring a checkpoint).
        """
        model = self._build(train_X, train_Y)
        state = {k: v.detach().clone() for k, v in _hyperparameters(model_state).items()}
        expected = set(_hyperparameters(model.state_dict()))
        if set(state) != expected:
            raise ValueError(f"model state does not fit the model: keys differ by {sorted(set(state) ^ expected)}")
        model.load_state_dict(state, strict=False)
        model.eval()
        self._model, self._train_X, self._train_Y = model, train_X, train_Y

    def _build(self, X: Tensor, Y: Tensor) -> SingleTaskMultiFidelityGP:
        assert self._encoding is not None
        d = self.num_features
        noise_prior = LogNormalPrior(loc=-4.0, scale=1.0)
        likelihood = GaussianLikelihood(
            noise_prior=noise_prior,
            noise_constraint=GreaterThan(
                self.config.min_noise_variance,
                transform=None,
                initial_value=max(float(noise_prior.mode), self.config.min_noise_variance * 2),
            ),
        )
        model = SingleTaskMultiFidelityGP(
            X,
            Y,
            data_fidelities=[d],
            nu=self.config.nu,
            likelihood=likelihood,
            outcome_transform=Standardize(m=1),
            input_transform=self._encoding.input_transform(),
        )
        if self.config.prior_mean == "linear":
            model.mean_module = LinearMean(input_size=d + 1).to(X)
        return model

    def _optimise(self, model: SingleTaskMultiFidelityGP) -> bool:
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        options = {"maxiter": self.config.max_fit_iterations}
        try:
            with warnings.catch_warnings(), _exact_linear_algebra():
                warnings.simplefilter("ignore", OptimizationWarning)
                fit_gpytorch_mll(
                    mll,
                    optimizer_kwargs={"options": options, "timeout_sec": self.config.fit_timeout_s},
                    max_attempts=2,
                )
        except ModelFittingError as error:
            log.warning("estimator fit failed, keeping the starting hyper-parameters: %s", error)
            return False
        return True

    def _check_data(self, X: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
        X = torch.as_tensor(X, dtype=torch.double)
        Y = torch.as_tensor(Y, dtype=torch.double)
        d = self.num_features
        if X.ndim != 2 or X.shape[-1] != d + 1:
            raise ValueError(f"X must be n x {d + 1} (features + fidelity column), got shape {tuple(X.shape)}")
        if Y.shape != (X.shape[0], 1):
            raise ValueError(f"Y must be {X.shape[0]} x 1, got shape {tuple(Y.shape)}")
        if X.shape[0] == 0:
            raise ValueError("cannot fit on no evaluations: need at least one")
        if not (torch.isfinite(X).all() and torch.isfinite(Y).all()):
            raise ValueError("X and Y must be finite")
        fidelity = X[:, -1]
        if (fidelity < 0).any() or (fidelity > 1).any():
            raise ValueError("the fidelity column (last) must lie in [0, 1]")
        return X, Y

    def _check_encoding(self, encoding: FeatureEncoding) -> FeatureEncoding:
        shapes = {tuple(t.shape) for t in encoding.to_dict().values()}
        if shapes != {(self.num_features,)} or not (encoding.high > encoding.low).all() or (encoding.scale <= 0).any():
            raise ValueError(
                f"encoding must hold {self.num_features}-vectors with scale > 0 and high > low: {encoding}"
            )
        return encoding

    def _threads(self) -> AbstractContextManager[None]:
        return _torch_threads(self.config.num_threads)


def _hyperparameters(model_state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A model's state without its transforms' data-dependent buffers."""
    return {k: v for k, v in model_state.items() if not k.startswith(("outcome_transform.", "input_transform."))}


def _exact_linear_algebra() -> gpytorch.settings.max_cholesky_size:
    """Exact (Cholesky) solves for every training set size the estimator uses."""
    return gpytorch.settings.max_cholesky_size(CHOLESKY_LIMIT)


@contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Run the block on `count` torch intra-op threads (None: as set), then restore the setting."""
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)

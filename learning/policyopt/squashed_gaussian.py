"""SAC's tanh-squashed Gaussian actor and the ReLU MLP it is built of.

Kept apart from `sac.py` (the training loop) so that `checkpoint.py` can rebuild a deployed SAC or
off-policy MDPO actor without importing the trainer that imports it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional

LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0


def mlp(in_dim: int, hidden_sizes: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """A ReLU MLP `in_dim -> hidden_sizes -> out_dim` with a linear output."""
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, pre_tanh: torch.Tensor) -> torch.Tensor:
    """Log-density `batch` of pre-squash samples `batch x d` under a diagonal Gaussian (summed over d)."""
    z = (pre_tanh - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2.0 * math.pi)).sum(-1)


def tanh_log_det(pre_tanh: torch.Tensor, action_scale: torch.Tensor) -> torch.Tensor:
    """``sum log |d a / d u|`` `batch` of the squash ``a = scale * tanh(u) + bias`` (numerically stable form)."""
    # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))
    log_one_minus_tanh2 = 2.0 * (math.log(2.0) - pre_tanh - functional.softplus(-2.0 * pre_tanh))
    return (log_one_minus_tanh2 + torch.log(action_scale)).sum(-1)


class SquashedGaussianActor(nn.Module):
    """pi(a|s): ``a = scale * tanh(u) + bias`` with ``u ~ N(mean(s), std(s))``; the log-std is bounded by a tanh.

    `scale` and `bias` map (-1, 1) onto the action space's bounds, so actions always lie inside them.
    """

    action_scale: torch.Tensor
    action_bias: torch.Tensor

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: tuple[int, ...],
        action_low: np.ndarray,
        action_high: np.ndarray,
    ) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, hidden_sizes[:-1], hidden_sizes[-1])
        self.mean_head = nn.Linear(hidden_sizes[-1], action_dim)
        self.log_std_head = nn.Linear(hidden_sizes[-1], action_dim)
        low = torch.as_tensor(action_low, dtype=torch.float32)
        high = torch.as_tensor(action_high, dtype=torch.float32)
        self.register_buffer("action_scale", (high - low) / 2.0)
        self.register_buffer("action_bias", (high + low) / 2.0)

    def forward(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std `batch x action_dim` of the Gaussian before the squash."""
        features = functional.relu(self.trunk(observations))
        log_std = torch.tanh(self.log_std_head(features))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1.0)
        return self.mean_head(features), log_std

    def sample(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterised actions `batch x action_dim`, their log-probabilities `batch` and pre-squash samples."""
        mean, log_std = self(observations)
        pre_tanh = mean + torch.exp(log_std) * torch.randn_like(mean)
        log_prob = gaussian_log_prob(mean, log_std, pre_tanh) - tanh_log_det(pre_tanh, self.action_scale)
        return self.squash(pre_tanh), log_prob, pre_tanh

    def squash(self, pre_tanh: torch.Tensor) -> torch.Tensor:
        """Actions in the action space's bounds from pre-squash values."""
        return torch.tanh(pre_tanh) * self.action_scale + self.action_bias

    def log_prob_of(self, observations: torch.Tensor, pre_tanh: torch.Tensor) -> torch.Tensor:
        """Log-probability `batch` of the actions ``squash(pre_tanh)`` under this policy."""
        mean, log_std = self(observations)
        return gaussian_log_prob(mean, log_std, pre_tanh) - tanh_log_det(pre_tanh, self.action_scale)

    def deterministic(self, observations: torch.Tensor) -> torch.Tensor:
        """The mean action ``scale * tanh(mean) + bias`` (for evaluation and deployment)."""
        mean, _ = self(observations)
        return self.squash(mean)


__all__ = ["LOG_STD_MAX", "LOG_STD_MIN", "SquashedGaussianActor", "gaussian_log_prob", "mlp", "tanh_log_det"]

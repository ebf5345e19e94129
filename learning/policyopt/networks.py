"""Actor and critic MLPs of the PPO family, initialised as CleanRL does (orthogonal, scaled gains).

Continuous actions: a diagonal Gaussian whose mean is an MLP of the observation and whose log
standard deviation is a state-independent parameter. Discrete actions: a categorical over the MLP's
logits. `Actor.distribution(obs)` returns a torch distribution whose `log_prob` and `entropy` are
per sample (summed over action dimensions), so the algorithms never branch on the action type.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal


def layer_init(layer: nn.Linear, std: float = math.sqrt(2.0), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights with gain `std`, constant bias."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden_sizes: tuple[int, ...], out_dim: int, out_std: float) -> nn.Sequential:
    """tanh MLP; hidden layers get gain sqrt(2), the output layer `out_std`."""
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in hidden_sizes:
        layers += [layer_init(nn.Linear(width, hidden)), nn.Tanh()]
        width = hidden
    layers.append(layer_init(nn.Linear(width, out_dim), std=out_std))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class PolicySpec:
    """What it takes to rebuild an actor: sizes and the action type (stored in checkpoints)."""

    obs_dim: int
    """Flat observation size."""
    action_dim: int
    """Action size (continuous) or number of actions (discrete)."""
    discrete: bool
    """Categorical policy over `action_dim` actions when True, else a diagonal Gaussian."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths."""
    action_low: tuple[float, ...] = ()
    """Lower action bounds (continuous; actions are clipped to them by the environment and at deployment)."""
    action_high: tuple[float, ...] = ()
    """Upper action bounds."""
    initial_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian."""
    actor_kind: str = "gaussian"
    """The network: "gaussian" (`Actor`, on-policy) or "squashed_gaussian" (`sac.SquashedGaussianActor`)."""

    @classmethod
    def from_spaces(
        cls, observation_space: gym.Space[Any], action_space: gym.Space[Any], hidden_sizes: tuple[int, ...] = (64, 64)
    ) -> PolicySpec:
        """Spec for a single environment's spaces (Box observations; Box or Discrete actions)."""
        obs_shape = observation_space.shape
        if obs_shape is None:
            raise TypeError(f"observation space {observation_space} has no shape")
        obs_dim = int(np.prod(obs_shape))
        if isinstance(action_space, gym.spaces.Discrete):
            return cls(obs_dim, int(action_space.n), True, tuple(hidden_sizes))
        if isinstance(action_space, gym.spaces.Box):
            return cls(
                obs_dim,
                int(np.prod(action_space.shape)),
                False,
                tuple(hidden_sizes),
                tuple(float(v) for v in action_space.low.ravel()),
                tuple(float(v) for v in action_space.high.ravel()),
            )
        raise TypeError(f"unsupported action space {action_space} (Box or Discrete)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicySpec:
        """Inverse of `to_dict`."""
        return cls(
            obs_dim=int(data["obs_dim"]),
            action_dim=int(data["action_dim"]),
            discrete=bool(data["discrete"]),
            hidden_sizes=tuple(int(v) for v in data["hidden_sizes"]),
            action_low=tuple(float(v) for v in data.get("action_low", ())),
            action_high=tuple(float(v) for v in data.get("action_high", ())),
            actor_kind=str(data.get("actor_kind", "gaussian")),
            initial_log_std=float(data.get("initial_log_std", 0.0)),
        )


class Actor(nn.Module):
    """Policy network: `distribution(obs)` for obs of shape `batch x obs_dim`."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        self.spec = spec
        self.net = mlp(spec.obs_dim, spec.hidden_sizes, spec.action_dim, out_std=0.01)
        self.log_std = nn.Parameter(
            torch.full((1, spec.action_dim), spec.initial_log_std), requires_grad=not spec.discrete
        )

    def distribution(self, obs: torch.Tensor) -> Distribution:
        """Action distribution; `log_prob(actions)` and `entropy()` have shape `batch`."""
        out = self.net(obs)
        # No argument validation: the parameters come from this network (validation costs ~10 % of a rollout).
        if self.spec.discrete:
            return Categorical(logits=out, validate_args=False)
        return Independent(Normal(out, self.log_std.expand_as(out).exp(), validate_args=False), 1, validate_args=False)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action: the Gaussian's mean, or the most probable discrete action."""
        out = self.net(obs)
        return out.argmax(dim=-1) if self.spec.discrete else out

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Same as `mode` (so that the module can be traced or exported)."""
        return self.mode(obs)


class Critic(nn.Module):
    """State-value network: `forward(obs)` has shape `batch`."""

    def __init__(self, obs_dim: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, 1, out_std=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs)."""
        return self.net(obs).squeeze(-1)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs (no shared trunk), as in CleanRL's continuous PPO."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        self.spec = spec
        self.actor = Actor(spec)
        self.critic = Critic(spec.obs_dim, spec.hidden_sizes)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs), shape `batch`."""
        return self.critic(obs)

    def distribution(self, obs: torch.Tensor) -> Distribution:
        """pi(.|obs)."""
        return self.actor.distribution(obs)


def kl_divergence(p: Distribution, q: Distribution) -> torch.Tensor:
    """KL(p || q) per sample (closed form; shape `batch`)."""
    return torch.distributions.kl_divergence(p, q)


__all__ = ["Actor", "ActorCritic", "Critic", "PolicySpec", "kl_divergence", "layer_init", "mlp"]

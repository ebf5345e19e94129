"""Rollout storage and generalised advantage estimation for NEXT_STEP-autoreset vector environments.

Storage is time-major (`T x num_envs`). Row t holds the observation the agent acted on, the action,
its log-probability under the sampling policy, V(obs), and what `step` returned: reward,
`terminated`, `ended` (terminated or truncated) and `valid`. A row is invalid when the
sub-environment ended at the previous step: that step was the autoreset (reset observation,
reward 0, action ignored) and is no transition. Because the final observation of an episode is
the observation stored in the next row, a truncated episode bootstraps from V(final observation)
without any lookup into `info`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    terminated: torch.Tensor,
    ended: torch.Tensor,
    valid: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns (both `T x num_envs`; zero in invalid rows).

    rewards, values, terminated, ended, valid: `T x num_envs`; next_value: `num_envs`, V of the
    observation after the last row. Terminated steps do not bootstrap; truncated ones bootstrap
    from V(final observation) = values[t + 1] (or next_value); the advantage recursion stops at
    every episode end.
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        following = next_value if t == steps - 1 else values[t + 1]
        delta = rewards[t] + gamma * following * (1.0 - terminated[t]) - values[t]
        running = delta + gamma * gae_lambda * (1.0 - ended[t]) * running
        running = running * valid[t]
        advantages[t] = running
    returns = (advantages + values) * valid
    return advantages, returns


@dataclass
class RolloutStorage:
    """Time-major tensors of `steps x num_envs` transitions (`obs` and `actions` add their own dims)."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    ended: torch.Tensor
    valid: torch.Tensor

    @classmethod
    def empty(
        cls, steps: int, num_envs: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...], discrete: bool
    ) -> RolloutStorage:
        """Zeroed storage (float32; int64 actions when discrete)."""

        def zeros() -> torch.Tensor:
            return torch.zeros(steps, num_envs)

        return cls(
            obs=torch.zeros((steps, num_envs, *obs_shape)),
            actions=torch.zeros((steps, num_envs, *action_shape), dtype=torch.int64 if discrete else torch.float32),
            logprobs=zeros(),
            values=zeros(),
            rewards=zeros(),
            terminated=zeros(),
            ended=zeros(),
            valid=zeros(),
        )

    def roll(self, shift: int) -> None:
        """Move every row `shift` rows towards the start (the oldest rows fall off): a FIFO of batches."""
        for name in self.__dataclass_fields__:
            tensor = getattr(self, name)
            tensor.copy_(torch.roll(tensor, -shift, dims=0))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors by name (for checkpoints)."""
        return {name: getattr(self, name).clone() for name in self.__dataclass_fields__}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of `state_dict`."""
        for name in self.__dataclass_fields__:
            getattr(self, name).copy_(state[name])


__all__ = ["RolloutStorage", "compute_gae"]

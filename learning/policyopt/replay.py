"""Replay buffer for off-policy learning from Gymnasium 1.x vector environments (SAC, off-policy MDPO).

Gymnasium 1.x vector environments reset a finished sub-environment on the *next* step by default
(`AutoresetMode.NEXT_STEP`): the step that ends an episode returns the episode's last observation with
`terminated` or `truncated` set, and the following step ignores that sub-environment's action and returns
the first observation of a new episode with reward 0 and both flags false. That following step is not a
transition of the environment and must never be learnt from (its "next observation" belongs to another
episode). `ReplayBuffer.add` takes every step of the vector environment as it comes and drops those
reset steps itself, remembering which sub-environments ended on the previous call.

Only `terminated` is stored as the bootstrap mask: a time-limit truncation is not a terminal state of
the MDP, so the target still bootstraps from the value of the next observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class ReplayBatch:
    """A minibatch of transitions as float32 tensors.

    observations, next_observations: `batch x obs_dim`; actions: `batch x act_dim`;
    rewards, terminated: `batch` (terminated is 1.0 where the next observation is terminal).
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminated: torch.Tensor


class ReplayBuffer:
    """A ring buffer of (s, a, r, s', terminated) transitions from `num_envs` sub-environments.

    Args:
        capacity: transitions kept (the oldest are overwritten first).
        obs_shape: shape of one observation.
        action_shape: shape of one action.
        num_envs: sub-environments of the vector environment that `add` is called with.
        seed: seed of minibatch sampling (independent of torch's and the environment's generators).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        num_envs: int,
        seed: int = 0,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.capacity = capacity
        self.num_envs = num_envs
        self.obs_shape = tuple(obs_shape)
        self.action_shape = tuple(action_shape)
        self.observations = np.zeros((capacity, *self.obs_shape), dtype=np.float32)
        self.next_observations = np.zeros((capacity, *self.obs_shape), dtype=np.float32)
        self.actions = np.zeros((capacity, *self.action_shape), dtype=np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.position = 0
        self.size = 0
        self.rng = np.random.default_rng(seed)
        self.resetting = np.zeros(num_envs, dtype=bool)
        """Sub-environments whose episode ended on the previous `add`: their next step is a reset step."""

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_observations: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> int:
        """Store one vector-environment step (arrays lead with `num_envs`); return how many transitions were kept.

        Reset steps (the step after a sub-environment's `terminated` or `truncated`) are dropped.
        """
        terminated = np.asarray(terminated, dtype=bool).reshape(self.num_envs)
        truncated = np.asarray(truncated, dtype=bool).reshape(self.num_envs)
        keep = ~self.resetting
        self.resetting = terminated | truncated
        indices = np.flatnonzero(keep)
        for env_index in indices:
            slot = self.position
            self.observations[slot] = observations[env_index]
            self.actions[slot] = actions[env_index]
            self.rewards[slot] = rewards[env_index]
            self.next_observations[slot] = next_observations[env_index]
            self.terminated[slot] = float(terminated[env_index])
            self.position = (self.position + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)
        return int(indices.size)

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> ReplayBatch:
        """Draw `batch_size` stored transitions uniformly, with replacement, from the buffer's own generator."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self.size, size=batch_size)

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(array[idx], device=device)

        return ReplayBatch(
            observations=tensor(self.observations),
            actions=tensor(self.actions),
            rewards=tensor(self.rewards),
            next_observations=tensor(self.next_observations),
            terminated=tensor(self.terminated),
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue sampling exactly where this buffer is (for checkpoints)."""
        n = self.size
        return {
            "capacity": self.capacity,
            "num_envs": self.num_envs,
            "obs_shape": self.obs_shape,
            "action_shape": self.action_shape,
            "observations": self.observations[:n].copy(),
            "actions": self.actions[:n].copy(),
            "rewards": self.rewards[:n].copy(),
            "next_observations": self.next_observations[:n].copy(),
            "terminated": self.terminated[:n].copy(),
            "position": self.position,
            "size": self.size,
            "rng_state": self.rng.bit_generator.state,
            "resetting": self.resetting.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict` taken from a buffer of the same capacity, shapes and number of environments."""
        expected = (self.capacity, self.num_envs, self.obs_shape, self.action_shape)
        found = (state["capacity"], state["num_envs"], tuple(state["obs_shape"]), tuple(state["action_shape"]))
        if found != expected:
            raise ValueError(
                f"replay buffer state is for (capacity, num_envs, obs_shape, action_shape) = {found}, "
                f"this buffer is {expected}"
            )
        n = int(state["size"])
        for name in ("observations", "actions", "rewards", "next_observations", "terminated"):
            getattr(self, name)[:n] = state[name]
        self.size = n
        self.position = int(state["position"])
        self.rng.bit_generator.state = state["rng_state"]
        self.resetting = np.asarray(state["resetting"], dtype=bool).copy()

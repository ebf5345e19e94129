"""The configuration of a ReLIC training run (PPO with partial updates), extending runkit's `RunConfig`.

Defaults are the authors' where a CPU can afford them (`aielawady/relic`, `configs/baseline/relic_base.yaml`
and `custom_task/darkroom_relic.yaml`): PPO clip 0.2, 4 epochs, 8 minibatches of environments with
gradients accumulated over 4, value coefficient 0.5, entropy 0.01, Adam at 2e-4 with a linear warm-up
from 1e-3 of it and a cosine decay to 1e-5, gradient norm 0.2, gamma 0.99, GAE lambda 0.95, advantages
not normalised, 16 updates per rollout with the last one full, the tiny transformer (2 layers, width 64,
8 heads, MLP 256) with Sink-KV (trained key, value fixed at zero). Their base optimiser is Adam (their
`optimizer_name: adam`; the AdamW weight decay in the file applies only when AdamW is chosen).

What a 2-core laptop cannot afford is scaled, and the GPU configuration (`gpu_config()`) restores it:
rollouts (= trials) of 1,024 steps per environment instead of 4,096, and 8 environments.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from runkit.config import RunConfig, require_config

EnvName = Literal["darkroom", "darkroom-6x6", "cuebandit", "objectnav3d"]


@dataclass
class RelicConfig(RunConfig):
    """Train a ReLIC policy: a Sink-KV transformer over whole trials, PPO with partial updates."""

    env: EnvName = "darkroom"
    """Trial environment (relicnav): darkroom (the authors' 10x10 task), darkroom-6x6 (it scaled to a laptop:
    6x6, 20-step episodes), cuebandit (a tiny memory task),
    objectnav3d (3-D first-person multi-object navigation, miniworld)."""
    total_steps: int = 2_000_000
    """Environment steps to train for (all environments together)."""
    num_envs: int = 8
    """Environments stepped together; each runs one trial per rollout."""
    rollout_steps: int = 1024
    """Steps per environment in one rollout; a rollout is one trial (the authors: 4,096, or 65,536 for 64k)."""
    updates_per_rollout: int = 16
    """PPO updates within a rollout, evenly spaced; the last is full (1: no partial updates, the ablation)."""
    ppo_epochs: int = 4
    """Epochs per update."""
    num_minibatches: int = 8
    """Minibatches per epoch; each holds whole environments (their full sequences)."""
    grad_accum_minibatches: int = 4
    """Minibatches whose gradients are summed before one optimiser step."""
    learning_rate: float = 2e-4
    """Adam's learning rate after warm-up."""
    min_learning_rate: float = 1e-5
    """End of the cosine decay (reached at total_steps)."""
    warmup_steps: int = 10_000
    """Environment steps of the linear warm-up from 1e-3 x learning_rate (the authors' Darkroom value)."""
    adam_eps: float = 1e-5
    """Adam's epsilon."""
    clip_coef: float = 0.2
    """PPO clip range."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.2
    """Gradient norm clip."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    architecture: Literal["transformer", "lstm"] = "transformer"
    """transformer (ReLIC), or lstm (the RL^2-style baseline)."""
    sink_kv: bool = True
    """Sink-KV in every attention layer (False: the no-sink ablation)."""
    d_model: int = 64
    """Token width."""
    n_layers: int = 2
    """Layers."""
    n_heads: int = 8
    """Attention heads."""
    d_mlp: int = 256
    """MLP width."""
    tensorboard: bool = True
    """Write TensorBoard events beside scalars.jsonl."""
    checkpoint_every_rollouts: int = 1
    """Write the checkpoint after every this many rollouts (and at the end)."""
    eval_trials: int = 16
    """Held-out trials of the evaluation at the end of training."""
    eval_episodes: int = 8
    """Episodes per held-out trial at the end of training."""

    def __post_init__(self) -> None:
        super().__post_init__()
        positive = ("total_steps", "num_envs", "rollout_steps", "updates_per_rollout", "ppo_epochs", "num_minibatches")
        for name in positive:
            require_config(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        require_config(
            self.rollout_steps % self.updates_per_rollout == 0,
            "updates_per_rollout",
            self.updates_per_rollout,
            f"a divisor of rollout_steps ({self.rollout_steps})",
        )
        require_config(
            self.num_envs % self.num_minibatches == 0,
            "num_minibatches",
            self.num_minibatches,
            f"a divisor of num_envs ({self.num_envs})",
        )
        require_config(
            self.grad_accum_minibatches >= 1 and self.num_minibatches % self.grad_accum_minibatches == 0,
            "grad_accum_minibatches",
            self.grad_accum_minibatches,
            f"a divisor of num_minibatches ({self.num_minibatches})",
        )
        require_config(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        require_config(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        require_config(self.d_model % self.n_heads == 0, "d_model", self.d_model, "a multiple of n_heads")

    def smoke_sizes(self) -> dict[str, Any]:
        """A run of seconds: two environments, short trials, two rollouts."""
        return {
            "total_steps": 256,
            "num_envs": 2,
            "rollout_steps": 64,
            "updates_per_rollout": 4,
            "num_minibatches": 2,
            "grad_accum_minibatches": 1,
            "ppo_epochs": 1,
            "warmup_steps": 16,
            "eval_trials": 2,
            "eval_episodes": 2,
        }

    def default_run_dir(self) -> Path:
        """runs/relic/<env>/<variant>/seed<seed>."""
        return Path("runs") / "relic" / self.env / self.variant / f"seed{self.seed}"

    @property
    def variant(self) -> str:
        """The method's name in reports: relic, relic-no-sink, relic-no-partial, rl2-lstm."""
        if self.architecture == "lstm":
            return "rl2-lstm"
        parts = ["relic"]
        if not self.sink_kv:
            parts.append("no-sink")
        if self.updates_per_rollout == 1:
            parts.append("no-partial")
        return "-".join(parts)

    @property
    def rollouts(self) -> int:
        """Rollouts the run makes (total_steps rounded up to whole rollouts)."""
        per_rollout = self.num_envs * self.rollout_steps
        return max(1, -(-self.total_steps // per_rollout))


def gpu_config(config: RelicConfig) -> RelicConfig:
    """The authors' sizes for a GPU machine: 4,096-step trials, 20 environments, the small transformer."""
    return replace(
        config,
        rollout_steps=4096,
        num_envs=20,
        num_minibatches=20,
        grad_accum_minibatches=10,
        d_model=256,
        n_layers=4,
        d_mlp=1024,
        torch_threads=0,
    )


__all__ = ["EnvName", "RelicConfig", "gpu_config"]

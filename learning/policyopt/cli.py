"""The `policyopt` command, the one entry point of the package: train an agent, or export a trained policy.

policyopt ppo   --env-id Hopper-v5 --seed 1 [--smoke] [--resume] [--run-dir DIR]
policyopt props --env-id Hopper-v5 --seed 1
policyopt mdpo  --env-id Hopper-v5 --seed 1
policyopt sac   --env-id Hopper-v5 --seed 1
policyopt mdpo-offpolicy --env-id Hopper-v5 --seed 1
policyopt export --checkpoint runs/.../checkpoint.pt --out policy.pt [--action-bounds-from ENV_ID]

Seed, run folder, resume and smoke follow runkit's conventions: the default run folder is
runs/policyopt/<algo>/<env>__<seed>; a fresh run in a folder that holds an earlier one, and --resume
without a checkpoint, are refused; --smoke (or SMOKE_TEST=1) shrinks every size left at its default.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policyopt.configs import MDPOConfig, MDPOOffPolicyConfig, PPOConfig, PropsConfig, RunConfig, SACConfig
from runkit import UserError, run_cli, to_jsonable


@dataclass
class ExportConfig:
    """Write the deployable part of a training checkpoint (actor, observation statistics, config, metadata)."""

    checkpoint: Path
    """Training checkpoint (run_dir/checkpoint.pt), or a policy file to re-export."""
    out: Path
    """Policy file to write (read by `policyopt.checkpoint.load_policy`)."""
    command: str = ""
    """The command that trained it, stored in the metadata."""
    action_bounds_from: str | None = None
    """An environment id whose own action bounds the policy clips to instead of the stored ones (which are
    the training environment's). Named here, never read from the file."""


ALGORITHMS: dict[str, tuple[str, type[RunConfig]]] = {
    config.algo: (module, config)
    for module, config in (
        ("policyopt.ppo", PPOConfig),
        ("policyopt.props", PropsConfig),
        ("policyopt.mdpo", MDPOConfig),
        ("policyopt.sac", SACConfig),
        ("policyopt.mdpo_offpolicy", MDPOOffPolicyConfig),
    )
}
"""Subcommand -> (the algorithm's module, imported only to run it; its config)."""


_PARAGRAPHS = (__doc__ or "").split("\n\n")
DESCRIPTION = f"{_PARAGRAPHS[0]} {_PARAGRAPHS[-1]}"
"""`policyopt --help`'s text: the module docstring's first and last paragraphs (tyro would reflow the commands)."""


class UnknownEnvironmentError(UserError):
    """--env-id names no environment that gymnasium knows."""


def subcommands() -> dict[str, Callable[..., Any]]:
    """The subcommands and their configs (all light: parsing imports neither torch nor gymnasium)."""
    commands: dict[str, Callable[..., Any]] = {name: config for name, (_, config) in ALGORITHMS.items()}
    commands["export"] = ExportConfig
    return commands


def check_env_id(env_id: str) -> None:
    """Raise `UnknownEnvironmentError` when gymnasium knows no `env_id` ("Name-vN", or "module:Name-vN").

    `env_id` is what the user typed: a "module:" prefix is imported, as `gymnasium.make` would.
    """
    import gymnasium

    module_name, _, name = env_id.rpartition(":")
    if module_name:
        try:
            importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (module_name == exc.name or module_name.startswith(f"{exc.name}.")):
                raise  # the module exists but one of its own imports is missing: not the user's typo
            raise UnknownEnvironmentError(f"unknown environment id {env_id!r}: no module {module_name!r}") from None
    try:
        gymnasium.spec(name)
    except (gymnasium.error.UnregisteredEnv, gymnasium.error.DeprecatedEnv) as exc:
        raise UnknownEnvironmentError(f"unknown environment id {env_id!r}: {exc}") from None
    except gymnasium.error.Error:
        pass  # e.g. an id without a version, which gymnasium.make resolves to the newest


def export_command(config: ExportConfig) -> int:
    """Write the deployable part of a checkpoint; print the policy file's path as JSON."""
    from policyopt.checkpoint import export_policy

    if config.action_bounds_from is not None:
        check_env_id(config.action_bounds_from)
    metadata = {"command": config.command} if config.command else None
    path = export_policy(config.checkpoint, config.out, metadata, action_bounds_from=config.action_bounds_from)
    print(json.dumps({"policy": str(path)}))
    return 0


def train_command(config: RunConfig) -> int:
    """Train the algorithm whose config was parsed; print its summary as JSON."""
    check_env_id(config.env_id)
    module_name, _ = ALGORITHMS[config.algo]
    module = importlib.import_module(module_name)  # torch and gymnasium: only now
    print(json.dumps(to_jsonable(module.train(config)), indent=2))
    return 0


def run_command(config: ExportConfig | RunConfig) -> int:
    """Run one parsed subcommand; return the exit status."""
    if isinstance(config, ExportConfig):
        return export_command(config)
    return train_command(config)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (`policyopt`). SIGTERM unwinds like Ctrl-C; user errors end in one line, exit 2.

    User errors are runkit's: a refused run folder (`RunDirectoryError`), an unreadable or foreign
    checkpoint (`CheckpointError`), an unknown environment id.
    """
    args = sys.argv[1:] if argv is None else argv
    raise SystemExit(run_cli(subcommands(), run_command, argv=args, description=DESCRIPTION))


if __name__ == "__main__":
    main()

"""The `policyopt` command: train an on-policy or off-policy agent, or export a trained policy.

policyopt ppo   --env-id Hopper-v5 --seed 1 [--smoke] [--resume]
policyopt props --env-id Hopper-v5 --seed 1
policyopt mdpo  --env-id Hopper-v5 --seed 1
policyopt sac   ...                 (policyopt.sac, when installed)
policyopt mdpo-offpolicy ...        (policyopt.mdpo_offpolicy, when installed)
policyopt export --checkpoint runs/.../checkpoint.pt --out policy.pt [--bounds-from-env]
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightkit import UserError, run_cli, to_jsonable
from policyopt.configs import MDPOConfig, PPOConfig, PropsConfig, RunConfig


@dataclass
class ExportConfig:
    """Write the deployment part of a training checkpoint (actor, observation statistics, metadata)."""

    checkpoint: Path
    """Training checkpoint (run_dir/checkpoint.pt), or a policy file to re-export."""
    out: Path
    """Policy file to write (read by `policyopt.checkpoint.load_policy`)."""
    command: str = ""
    """The command that trained it, stored in the metadata."""
    bounds_from_env: bool = False
    """Store the training environment's action bounds in the policy (the deployed policy clips to them)."""


_ON_POLICY: dict[str, tuple[str, type[RunConfig]]] = {
    "ppo": ("policyopt.ppo", PPOConfig),
    "props": ("policyopt.props", PropsConfig),
    "mdpo": ("policyopt.mdpo", MDPOConfig),
}
_OFF_POLICY = {
    "sac": ("policyopt.sac", "SACConfig"),
    "mdpo-offpolicy": ("policyopt.mdpo_offpolicy", "MDPOOffPolicyConfig"),
}
"""The off-policy configs live in their algorithm's module, which imports torch and gymnasium."""

USER_ERRORS = ("policyopt.checkpoint:CheckpointError",)  # a missing or unreadable --checkpoint, or --resume
"""Errors that are the user's to fix (one line, exit status 2), besides `UserError`."""


class UnknownEnvironmentError(UserError):
    """--env-id names no environment that gymnasium knows."""


def subcommands(argv: Sequence[str]) -> dict[str, Callable[..., Any]]:
    """The subcommands and their configs; the off-policy configs are loaded only when `argv` may need them.

    `policyopt ppo ...` (or props, mdpo, export) starts without torch and gymnasium; `policyopt sac ...`,
    `policyopt --help` and a misspelt command load the off-policy modules too (to parse, or to list them).
    """
    commands: dict[str, Callable[..., Any]] = {name: config for name, (_, config) in _ON_POLICY.items()}
    named = next((arg for arg in argv if not arg.startswith("-")), None)
    light = named in commands or named == "export"
    for name, (module_name, config_name) in _OFF_POLICY.items():
        if light:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:  # not installed (torch or gymnasium missing)
            continue
        config = getattr(module, config_name, None)
        if config is not None:
            commands[name] = config
    commands["export"] = ExportConfig
    return commands


def check_env_id(env_id: str) -> None:
    """Raise `UnknownEnvironmentError` when gymnasium knows no `env_id` ("Name-vN", or "module:Name-vN")."""
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
    """Write the deployment part of a checkpoint; print the policy file's path as JSON."""
    from policyopt.checkpoint import export_policy

    metadata = {"command": config.command} if config.command else None
    path = export_policy(config.checkpoint, config.out, metadata, bounds_from_env=config.bounds_from_env)
    print(json.dumps({"policy": str(path)}))
    return 0


def train_command(config: RunConfig) -> int:
    """Train the algorithm whose config was parsed; print its summary as JSON."""
    check_env_id(config.env_id)
    module_name = next((m for m, c in _ON_POLICY.values() if type(config) is c), type(config).__module__)
    module = importlib.import_module(module_name)  # torch and gymnasium: only now
    if hasattr(module, "train"):
        print(json.dumps(to_jsonable(module.train(config)), indent=2))
    else:  # an algorithm whose main(config) runs and reports
        module.main(config)
    return 0


def run_command(config: ExportConfig | RunConfig) -> int:
    """Run one parsed subcommand; return the exit status."""
    if isinstance(config, ExportConfig):
        return export_command(config)
    return train_command(config)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (`policyopt`). SIGTERM unwinds like Ctrl-C; user errors end in one line."""
    args = sys.argv[1:] if argv is None else argv
    commands = subcommands(args)
    raise SystemExit(run_cli(commands, run_command, argv=args, description=__doc__, user_errors=USER_ERRORS))


if __name__ == "__main__":
    main()

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
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tyro

from flightkit import to_jsonable
from policyopt.configs import MDPOConfig, PPOConfig, PropsConfig


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


_ON_POLICY = {
    "ppo": ("policyopt.ppo", PPOConfig),
    "props": ("policyopt.props", PropsConfig),
    "mdpo": ("policyopt.mdpo", MDPOConfig),
}
_OFF_POLICY = {
    "sac": ("policyopt.sac", "SACConfig"),
    "mdpo-offpolicy": ("policyopt.mdpo_offpolicy", "MDPOOffPolicyConfig"),
}


def _subcommands() -> dict[str, Any]:
    commands: dict[str, Any] = {name: config for name, (_, config) in _ON_POLICY.items()}
    for name, (module_name, config_name) in _OFF_POLICY.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        config = getattr(module, config_name, None)
        if config is not None:
            commands[name] = config
    commands["export"] = ExportConfig
    return commands


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point (`policyopt`)."""
    signal.signal(signal.SIGTERM, _interrupt)
    commands = _subcommands()
    config = tyro.extras.subcommand_cli_from_dict(commands, args=argv, description=__doc__)
    try:
        if isinstance(config, ExportConfig):
            from policyopt.checkpoint import export_policy

            path = export_policy(
                config.checkpoint,
                config.out,
                {"command": config.command} if config.command else None,
                bounds_from_env=config.bounds_from_env,
            )
            print(json.dumps({"policy": str(path)}))
            raise SystemExit(0)
        name = next(n for n, c in commands.items() if type(config) is c)
        module_name = {**_ON_POLICY, **_OFF_POLICY}[name][0]
        module = importlib.import_module(module_name)
        if hasattr(module, "train"):
            print(json.dumps(to_jsonable(module.train(config)), indent=2))
        else:  # an algorithm whose main(config) runs and reports
            module.main(config)
        status = 0
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 2
    raise SystemExit(status)


if __name__ == "__main__":
    main()

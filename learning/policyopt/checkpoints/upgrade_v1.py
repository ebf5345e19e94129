"""Re-export trusted policyopt files of the old format /1 as policy files of the current format.

    .venv/bin/python learning/policyopt/checkpoints/upgrade_v1.py learning/policyopt/checkpoints/*_tracking.pt
    .venv/bin/python learning/policyopt/checkpoints/upgrade_v1.py runs/x/checkpoint.pt --out runs/x/policy.pt

Format /1 stored numpy arrays (the observation statistics, the random generators) and pickled
environments, so reading it takes full unpickling (`torch.load` without `weights_only`), which runs any
code a crafted file carries. That is why `policyopt.checkpoint` no longer reads it, and why this
command is only for files you made or trust (the shipped `*_tracking.pt` were made by this project).

A /1 policy file becomes a policy file (in place without `--out`); a /1 training checkpoint becomes a
policy file of its deployment part, with the metadata `policyopt export` writes (the run itself cannot
be resumed by this version). Before anything is written, the new file's content is read back with the
safe loader and compared with the old one: every actor tensor and every normaliser statistic must be
bit-identical, and so must the deterministic actions on 256 random observations.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flightkit import write_bytes_atomic
from policyopt.checkpoint import (
    LEGACY_FORMATS,
    CheckpointError,
    DeployedPolicy,
    load_policy,
    policy_file_bytes,
)
from policyopt.envs import ObservationNormalizer
from policyopt.networks import PolicySpec


def _trusted_legacy_payload(path: Path) -> dict[str, Any]:
    """The payload of a /1 file, fully unpickled: call only for files you trust."""
    payload = torch.load(path, map_location="cpu", weights_only=False)  # trusted /1 files only (module docstring)
    if not isinstance(payload, dict) or payload.get("format") not in LEGACY_FORMATS:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a policyopt file of format /1 (format {found!r})")
    return payload


def upgraded_policy(payload: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The current format's policy entry (tensors, plain values) and metadata of a /1 payload."""
    old = payload["policy"]
    normalizer = old["obs_normalizer"]
    policy = {
        "spec": PolicySpec.from_dict(old["spec"]).to_dict(),
        "actor": {name: tensor.detach().clone() for name, tensor in old["actor"].items()},
        "obs_normalizer": ObservationNormalizer.from_state_dict(dict(normalizer)).state_dict() if normalizer else None,
    }
    if payload["format"] == "policyopt.policy/1":
        return policy, dict(payload.get("metadata", {}))
    config = payload["config"]
    metadata = {
        "algo": payload["algo"],
        "env_id": config.get("env_id"),
        "seed": config.get("seed"),
        "global_step": payload["global_step"],
        "config": config,
    }
    return policy, metadata


def _check_identical(old: Mapping[str, Any], new: DeployedPolicy, source: Path) -> None:
    """AssertionError unless `new` has the old file's exact weights, statistics and actions."""
    old_policy = old["policy"]
    new_actor = new.actor.state_dict()
    assert old_policy["actor"].keys() == new_actor.keys(), f"{source}: actor tensors differ in names"
    for name, tensor in old_policy["actor"].items():
        assert torch.equal(tensor, new_actor[name]), f"{source}: actor tensor {name} differs"
    old_normalizer = old_policy["obs_normalizer"]
    if old_normalizer:
        assert new.normalizer is not None, f"{source}: the normaliser was lost"
        np.testing.assert_array_equal(new.normalizer.rms.mean, old_normalizer["mean"], strict=True)
        np.testing.assert_array_equal(new.normalizer.rms.var, old_normalizer["var"], strict=True)
        same = (new.normalizer.rms.count, new.normalizer.epsilon, new.normalizer.clip)
        assert same == (old_normalizer["count"], old_normalizer["epsilon"], old_normalizer["clip"]), source
    reference = DeployedPolicy(
        PolicySpec.from_dict(old_policy["spec"]), old_policy["actor"], old_normalizer, old.get("metadata")
    )
    observations = np.random.default_rng(0).normal(scale=2.0, size=(256, new.spec.obs_dim))
    np.testing.assert_array_equal(new.act(observations), reference.act(observations), strict=True)


def upgrade(source: Path, out: Path) -> Path:
    """Re-export the trusted /1 file `source` as a current policy file at `out` (checked before writing)."""
    old = _trusted_legacy_payload(source)
    policy, metadata = upgraded_policy(old)
    content = policy_file_bytes(policy, metadata)
    staged = torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    staged_policy = DeployedPolicy(
        PolicySpec.from_dict(staged["policy"]["spec"]),
        staged["policy"]["actor"],
        staged["policy"]["obs_normalizer"],
        staged["metadata"],
    )
    _check_identical(old, staged_policy, source)
    write_bytes_atomic(out, content)
    _check_identical(old, load_policy(out), source)  # and once more through the public loader
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: upgrade the given files (in place, or to `--out` for one file)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="trusted policyopt files of format /1")
    parser.add_argument("--out", type=Path, default=None, help="where to write (one file only; default: in place)")
    args = parser.parse_args(argv)
    if args.out is not None and len(args.files) != 1:
        parser.error("--out takes exactly one input file")
    for source in args.files:
        written = upgrade(source, args.out or source)
        print(f"{source} -> {written}: weights, statistics and actions identical")


if __name__ == "__main__":
    main()

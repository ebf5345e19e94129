"""ReLIC's files, in runkit's one envelope: a training checkpoint (resumable) and a policy file (deployable).

Both are read with `weights_only=True` through `runkit.checkpoint.load_envelope`: nothing in them is
unpickled, and a file of another kind or a damaged one is refused with one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from relicrl.model import ContextPolicy, ModelSpec, build_policy
from runkit.checkpoint import CheckpointError, Envelope, load_envelope, require, save_envelope

TRAINING_FORMAT = "relicrl.training/1"
POLICY_FORMAT = "relicrl.policy/1"


def spec_dict(spec: ModelSpec) -> dict[str, Any]:
    """A spec as plain values."""
    data = asdict(spec)
    data["image_shape"] = list(spec.image_shape) if spec.image_shape is not None else None
    return data


def spec_from_dict(data: Mapping[str, Any], envelope: Envelope) -> ModelSpec:
    """A spec from a file's plain values (CheckpointError naming the file when they do not make one)."""
    known = {f.name for f in fields(ModelSpec)}
    require(isinstance(data, Mapping) and set(data) <= known, envelope, f"unknown model fields in {sorted(data)}")
    values = dict(data)
    if values.get("image_shape") is not None:
        values["image_shape"] = tuple(int(v) for v in values["image_shape"])
    try:
        return ModelSpec(**values)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{envelope.path}: bad model spec ({exc})") from None


def save_policy(path: str | Path, policy: ContextPolicy, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a deployable policy file (spec and weights) atomically."""
    state = {"spec": spec_dict(policy.spec), "model": policy.state_dict()}
    return save_envelope(path, POLICY_FORMAT, state, metadata=metadata)


def load_policy(path: str | Path) -> tuple[ContextPolicy, dict[str, Any]]:
    """A policy (in eval mode) and its metadata from a policy file or a training checkpoint.

    Raises:
        CheckpointError: the file is missing, damaged, of another kind, or its weights do not fit its spec.
    """
    envelope = load_envelope(path, (POLICY_FORMAT, TRAINING_FORMAT), "ReLIC policy")
    state = envelope.state
    require("spec" in state and "model" in state, envelope, "lacks the model's spec or weights")
    spec = spec_from_dict(state["spec"], envelope)
    policy = build_policy(spec)
    try:
        policy.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{envelope.path}: weights do not fit the spec ({str(exc).splitlines()[0]})") from None
    policy.eval()
    return policy, dict(envelope.metadata)


def load_training(path: str | Path) -> Envelope:
    """A training checkpoint (for --resume)."""
    return load_envelope(path, (TRAINING_FORMAT,), "ReLIC training checkpoint")


__all__ = [
    "POLICY_FORMAT",
    "TRAINING_FORMAT",
    "load_policy",
    "load_training",
    "save_policy",
    "spec_dict",
    "spec_from_dict",
]

"""policyopt's training checkpoints and policy files (runkit envelopes), and the deployed policy that reads them.

Both kinds are `runkit.checkpoint` envelopes, written atomically and read with `weights_only=True`
(nothing in a file is unpickled into an object, so a crafted file cannot run code):

- a training checkpoint (`run_dir/checkpoint.pt`, format `policyopt.checkpoint/3`): `state` holds the
  algorithm's name, the global step and update count, the deployable policy (spec, actor weights,
  observation normaliser), every network and optimiser, the vector environment's numeric state where it
  can be saved (`envs.capture_env_state`) and the algorithm's `extra` state; `config` the run's
  configuration; `rng` python's, numpy's and torch's generators (`runkit.seeding.capture_rng`).
  `resume` continues from it, bit for bit where the environment can be restored;
- a policy file (`export_policy`, format `policyopt.policy/3`): `state` holds only the policy, `config`
  the training run's configuration, `metadata` what made it (algorithm, env id, seed, step, command).

`load_policy` reads either and returns a `DeployedPolicy`: numpy in, deterministic action out, with the
observations normalised exactly as in training. Loading never builds an environment or imports a
module named by a file: the observation and action sizes and the action bounds come from the stored
`PolicySpec`.

Anything else raises runkit's `CheckpointError` (a user's error: one line naming the file): another
format, a truncated or foreign file, a crafted pickle, or a retired format. Formats /1 (numpy arrays
inside) and /2 (the layout before the envelope) are refused with the command that re-exports them
(`UPGRADE_COMMAND`, checkpoints/README.md), which reads them with the weights-only loader too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import nn

from policyopt.envs import ObservationNormalizer, capture_env_state, observation_normalizer, restore_env_state
from policyopt.networks import Actor, PolicySpec
from policyopt.squashed_gaussian import SquashedGaussianActor
from runkit import to_jsonable
from runkit.atomic import write_bytes_atomic
from runkit.checkpoint import (
    CheckpointError,
    Envelope,
    MissingCheckpointError,
    envelope_bytes,
    load_envelope,
    require,
    save_envelope,
)
from runkit.cli import typed_one_line
from runkit.seeding import capture_rng, restore_rng

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = "policyopt.checkpoint/3"
POLICY_FORMAT = "policyopt.policy/3"
PICKLED_FORMATS = ("policyopt.checkpoint/1", "policyopt.policy/1")
"""Formats that stored numpy arrays (and, in some training checkpoints, pickled environments)."""
SAFE_OLD_FORMATS = ("policyopt.checkpoint/2", "policyopt.policy/2")
"""The weights-only layout before the runkit envelope."""
RETIRED_FORMATS = PICKLED_FORMATS + SAFE_OLD_FORMATS
"""Formats that are refused with the command that re-exports them (`UPGRADE_COMMAND`)."""
UPGRADE_COMMAND = "python learning/policyopt/checkpoints/upgrade.py"
"""Re-exports a policyopt file of a retired format in the current one (see checkpoints/README.md)."""

_STATE_KEYS = ("algo", "global_step", "update", "policy", "modules", "optimizers", "env", "extra")
_POLICY_KEYS = ("spec", "actor", "obs_normalizer")

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "PICKLED_FORMATS",
    "POLICY_FORMAT",
    "RETIRED_FORMATS",
    "SAFE_OLD_FORMATS",
    "UPGRADE_COMMAND",
    "CheckpointError",
    "DeployedPolicy",
    "MissingCheckpointError",
    "PolicyInputError",
    "check_checkpoint",
    "check_policy_entry",
    "export_policy",
    "load_checkpoint",
    "load_policy",
    "policy_file_bytes",
    "restore_training",
    "retired_formats",
    "save_checkpoint",
    "save_policy_file",
]


class PolicyInputError(ValueError):
    """An observation given to a deployed policy has the wrong shape or non-finite values."""


def retired_formats(path: Path) -> dict[str, str]:
    """What to do about the file `path` in each retired format (the advice `load_envelope` gives)."""
    command = f"{UPGRADE_COMMAND} {path}"
    return {
        "policyopt.policy/1": f"re-export it with `{command}`",
        "policyopt.checkpoint/1": f"re-export its policy with `{command} --out policy.pt` (the run itself cannot be "
        "resumed)",
        "policyopt.policy/2": f"re-export it with `{command}`",
        "policyopt.checkpoint/2": f"re-export it with `{command}` (the run then resumes from it)",
    }


def _policy_entry(spec: PolicySpec, actor: nn.Module, normalizer: ObservationNormalizer | None) -> dict[str, Any]:
    return {
        "spec": spec.to_dict(),
        "actor": {k: v.detach().clone() for k, v in actor.state_dict().items()},
        "obs_normalizer": normalizer.state_dict() if normalizer is not None else None,
    }


def save_checkpoint(
    path: Path,
    *,
    algo: str,
    config: Any,
    global_step: int,
    update: int,
    spec: PolicySpec,
    actor: nn.Module,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    envs: VectorEnv | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a training checkpoint atomically; return its path.

    `actor`: the network a deployment runs (its weights are stored with `spec` and the observation
    normaliser of `envs`); `modules`/`optimizers`: everything the run trains, by name; `extra`:
    algorithm state that is not a module (e.g. PROPS's buffer, the rollout's carried observation).

    Raises:
        TypeError: `extra` holds something a file cannot (an object other than arrays, tensors, plain values).
    """
    normalizer = observation_normalizer(envs) if envs is not None else None
    env_state: dict[str, Any] | None = None
    if envs is not None:
        try:
            env_state = capture_env_state(envs)
        except Exception as exc:  # not a SyncVectorEnv, for one: resume resets the environments instead
            env_state = {"error": repr(exc)}
    state = {
        "algo": algo,
        "global_step": int(global_step),
        "update": int(update),
        "policy": _policy_entry(spec, actor, normalizer),
        "modules": {name: module.state_dict() for name, module in modules.items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "env": env_state,
        "extra": dict(extra or {}),
    }
    return save_envelope(path, CHECKPOINT_FORMAT, state, config=config, rng=capture_rng())


def check_policy_entry(envelope: Envelope) -> None:
    """CheckpointError unless the envelope's `state["policy"]` has the entries a deployed policy needs."""
    policy = envelope.state.get("policy")
    require(
        isinstance(policy, dict) and all(key in policy for key in _POLICY_KEYS),
        envelope,
        "'policy' must be a dict with 'spec', 'actor' and 'obs_normalizer'",
    )


def check_checkpoint(envelope: Envelope) -> None:
    """CheckpointError unless a training checkpoint's state has every entry `restore_training` uses."""
    missing = [key for key in _STATE_KEYS if key not in envelope.state]
    require(not missing, envelope, f"lacks the entries {missing} of a {CHECKPOINT_FORMAT} checkpoint")
    for key in ("modules", "optimizers", "extra"):
        value = envelope.state[key]
        require(isinstance(value, dict), envelope, f"{key!r} must be a dict, got {type(value).__name__}")
    require(isinstance(envelope.rng, dict), envelope, "a training checkpoint must hold the random generators")
    check_policy_entry(envelope)


def load_checkpoint(path: Path) -> Envelope:
    """Read a training checkpoint (any algorithm) safely; its `state` holds what `save_checkpoint` stored.

    Raises:
        MissingCheckpointError: no file at `path`.
        CheckpointError: anything else that is not a current training checkpoint.
    """
    envelope = load_envelope(
        path, (CHECKPOINT_FORMAT,), "policyopt training checkpoint", retired=retired_formats(Path(path))
    )
    check_checkpoint(envelope)
    return envelope


def restore_training(
    checkpoint: Envelope,
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    envs: VectorEnv | None = None,
) -> bool:
    """Load networks, optimisers and random generators from `checkpoint`, and the environment where saved.

    Returns True when the environment's state was restored (then the rollout continues exactly),
    False when it was not saved (then the caller resets the environments).

    Raises:
        CheckpointError: the checkpoint does not fit this run (other networks, sizes or environments).
    """
    state = checkpoint.state
    missing = (set(modules) - set(state["modules"])) | (set(optimizers) - set(state["optimizers"]))
    require(not missing, checkpoint, f"has no state for {sorted(missing)} (algo {state.get('algo')!r})")
    try:
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        assert checkpoint.rng is not None  # check_checkpoint
        restore_rng(checkpoint.rng)
        env_state = state.get("env")
        if envs is not None and isinstance(env_state, dict) and "error" not in env_state:
            restore_env_state(envs, env_state)
            return True
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{checkpoint.path} does not fit this run: {typed_one_line(exc)}") from None
    return False


def _deployed_actor(spec: PolicySpec) -> nn.Module:
    """The actor network a spec describes (on-policy Gaussian/categorical, or SAC's squashed Gaussian)."""
    if spec.actor_kind == "squashed_gaussian":
        return SquashedGaussianActor(
            spec.obs_dim, spec.action_dim, spec.hidden_sizes, np.asarray(spec.action_low), np.asarray(spec.action_high)
        )
    if spec.actor_kind != "gaussian":
        raise CheckpointError(f"unknown actor kind {spec.actor_kind!r} in the checkpoint")
    return Actor(spec)


class DeployedPolicy:
    """A trained policy for deployment: `act(obs)` gives the deterministic action for raw observations.

    `metadata`: what made it (algorithm, env id, seed, step, command); `config`: the training run's settings.
    """

    def __init__(
        self,
        spec: PolicySpec,
        actor_state: Mapping[str, torch.Tensor],
        obs_normalizer: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.actor: nn.Module = _deployed_actor(spec)
        self.actor.load_state_dict(dict(actor_state))
        self.actor.eval()
        self.normalizer = ObservationNormalizer.from_state_dict(dict(obs_normalizer)) if obs_normalizer else None
        self.metadata = dict(metadata or {})
        self.config = dict(config or {})
        self._low = np.asarray(spec.action_low, dtype=np.float64) if spec.action_low else None
        self._high = np.asarray(spec.action_high, dtype=np.float64) if spec.action_high else None

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action for one observation (`obs_dim`) or a batch (`n x obs_dim`), as float64 (int64 if discrete).

        The observation is normalised with the training statistics; continuous actions are clipped to
        the action bounds. Raises PolicyInputError for a wrong shape or a non-finite value.
        """
        array = np.asarray(obs, dtype=np.float64)
        single = array.ndim == 1
        batch = array[None, :] if single else array
        if batch.ndim != 2 or batch.shape[1] != self.spec.obs_dim:
            raise PolicyInputError(f"expected observations of size {self.spec.obs_dim}, got shape {array.shape}")
        if not np.all(np.isfinite(batch)):
            raise PolicyInputError("observation has non-finite values (NaN or inf)")
        normalized = self.normalizer(batch) if self.normalizer is not None else batch.astype(np.float32)
        with torch.no_grad():
            inputs = torch.as_tensor(normalized, dtype=torch.float32)
            if self.spec.actor_kind == "squashed_gaussian":
                action = self.actor.deterministic(inputs).numpy()  # type: ignore[operator]
            else:
                action = self.actor.mode(inputs).numpy()  # type: ignore[operator]
        if self.spec.discrete:
            result = action.astype(np.int64)
        else:
            result = action.astype(np.float64)
            if self._low is not None and self._high is not None:
                result = np.clip(result, self._low, self._high)
        return result[0] if single else result

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Same as `act`."""
        return self.act(obs)


def _read_policy_source(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(policy entry, metadata, config) of a training checkpoint or a policy file, read safely."""
    envelope = load_envelope(
        path,
        (CHECKPOINT_FORMAT, POLICY_FORMAT),
        "policyopt checkpoint or policy file",
        retired=retired_formats(Path(path)),
    )
    if envelope.format == CHECKPOINT_FORMAT:
        check_checkpoint(envelope)
        state, config = envelope.state, envelope.config
        metadata = {
            "algo": state["algo"],
            "env_id": config.get("env_id"),
            "seed": config.get("seed"),
            "global_step": state["global_step"],
        }
    else:
        check_policy_entry(envelope)
        metadata = dict(envelope.metadata)
    return dict(envelope.state["policy"]), metadata, dict(envelope.config)


def export_policy(
    checkpoint_path: Path,
    out_path: Path,
    metadata: Mapping[str, Any] | None = None,
    *,
    action_bounds_from: str | None = None,
) -> Path:
    """Write the deployable part of a checkpoint (policy, training config, metadata) as a policy file.

    `checkpoint_path` is a training checkpoint, or a policy file to re-export (its metadata is kept and
    `metadata` is merged over it). The spec's action bounds are the ones stored at training (the
    environment's own). `action_bounds_from`: an environment id *the caller* names, whose own (unwrapped)
    Box action space replaces them (`gymnasium.make(action_bounds_from)`); nothing read from the file is
    ever built or imported.
    """
    policy, meta, config = _read_policy_source(Path(checkpoint_path))
    meta.update(metadata or {})
    if action_bounds_from is not None:
        try:
            spec = PolicySpec.from_dict(policy["spec"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{checkpoint_path} holds no usable spec ({typed_one_line(exc)})") from None
        policy["spec"] = _spec_with_env_bounds(spec, action_bounds_from).to_dict()
        meta["action_bounds_from"] = action_bounds_from
    return save_policy_file(out_path, policy, meta, config=config)


def policy_file_bytes(
    policy: Mapping[str, Any], metadata: Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> bytes:
    """A policy file's content: `policy` (spec dict, actor tensors, normaliser state or None), metadata, config."""
    return envelope_bytes(POLICY_FORMAT, {"policy": dict(policy)}, config=config, metadata=to_jsonable(dict(metadata)))


def save_policy_file(
    path: Path, policy: Mapping[str, Any], metadata: Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> Path:
    """Write a policy file (`policy_file_bytes`) atomically; return its path."""
    return write_bytes_atomic(path, policy_file_bytes(policy, metadata, config))


def _spec_with_env_bounds(spec: PolicySpec, env_id: str) -> PolicySpec:
    """`spec` with the action bounds of `env_id`'s own (unwrapped) Box action space (`env_id`: the caller's)."""
    env = gym.make(env_id)
    try:
        space = env.unwrapped.action_space
    finally:
        env.close()
    if not isinstance(space, gym.spaces.Box) or int(np.prod(space.shape)) != spec.action_dim:
        raise CheckpointError(f"{env_id}'s action space {space} does not match the policy ({spec.action_dim} actions)")
    low, high = space.low.ravel(), space.high.ravel()
    return replace(spec, action_low=tuple(float(v) for v in low), action_high=tuple(float(v) for v in high))


def load_policy(path: Path) -> DeployedPolicy:
    """A `DeployedPolicy` from a training checkpoint or an exported policy file, read safely.

    Raises:
        MissingCheckpointError: no file at `path`.
        CheckpointError: (one line, naming the file) anything else: a file of another format, a retired
            format, a truncated, foreign or crafted file, or a policy that does not fit its spec.
    """
    policy, metadata, config = _read_policy_source(Path(path))
    try:
        spec = PolicySpec.from_dict(policy["spec"])
        return DeployedPolicy(spec, policy["actor"], policy["obs_normalizer"], metadata, config)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not hold a usable policy ({typed_one_line(exc)})") from None

"""One checkpoint format for every policyopt algorithm, and the deployed policy that reads it.

A training checkpoint (`run_dir/checkpoint.pt`, written atomically) holds the networks, the
optimisers, the observation normaliser's statistics, the random generators (python, numpy, torch),
the vector environment's state where it can be saved (see `envs.capture_env_state`), the global
step, the update count and the configuration: `resume` continues from it, bit for bit where the
environment can be restored. A policy file (`export_policy`) keeps only what deployment needs.
`load_policy` reads either and returns a `DeployedPolicy`: numpy in, deterministic action out, with
the observations normalised exactly as in training.
"""

from __future__ import annotations

import io
import random
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import nn

from flightkit import to_jsonable, write_bytes_atomic
from policyopt.envs import ObservationNormalizer, capture_env_state, observation_normalizer, restore_env_state
from policyopt.networks import Actor, PolicySpec

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = "policyopt.checkpoint/1"
POLICY_FORMAT = "policyopt.policy/1"


class CheckpointError(ValueError):
    """A file is not a policyopt checkpoint or does not match the run it is loaded into."""


class PolicyInputError(ValueError):
    """An observation given to a deployed policy has the wrong shape or non-finite values."""


def capture_rng() -> dict[str, Any]:
    """States of python's, numpy's global and torch's CPU random generators."""
    numpy_state = np.random.get_state()  # noqa: NPY002 (the global generator that libraries draw from)
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of `capture_rng`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])


def seed_everything(seed: int, torch_deterministic: bool = True) -> None:
    """Seed python, numpy and torch; ask torch for deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(torch_deterministic, warn_only=True)


def _config_dict(config: Any) -> dict[str, Any]:
    data = asdict(config) if is_dataclass(config) and not isinstance(config, type) else dict(config)
    return dict(to_jsonable(data))


def _policy_payload(spec: PolicySpec, actor: nn.Module, normalizer: ObservationNormalizer | None) -> dict[str, Any]:
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
    """
    normalizer = observation_normalizer(envs) if envs is not None else None
    env_state: dict[str, Any] | None = None
    if envs is not None:
        try:
            env_state = capture_env_state(envs)
        except Exception as exc:  # an environment that cannot be pickled: resume resets it instead
            env_state = {"error": repr(exc)}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "algo": algo,
        "config": _config_dict(config),
        "global_step": int(global_step),
        "update": int(update),
        "policy": _policy_payload(spec, actor, normalizer),
        "modules": {name: module.state_dict() for name, module in modules.items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "rng": capture_rng(),
        "env": env_state,
        "extra": dict(extra or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint (any algorithm); raises CheckpointError for other files."""
    state = torch.load(Path(path), map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a policyopt training checkpoint (format {found!r})")
    return state


def restore_training(
    state: Mapping[str, Any],
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    envs: VectorEnv | None = None,
) -> bool:
    """Load networks, optimisers and random generators from `state`, and the environment where saved.

    Returns True when the environment's state was restored (then the rollout continues exactly),
    False when it was not saved (then the caller resets the environments).
    """
    missing = set(modules) - set(state["modules"])
    if missing:
        raise CheckpointError(f"checkpoint has no state for {sorted(missing)} (algo {state.get('algo')!r})")
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    restore_rng(state["rng"])
    env_state = state.get("env")
    if envs is not None and env_state is not None and "error" not in env_state:
        restore_env_state(envs, env_state)
        return True
    return False


def _deployed_actor(spec: PolicySpec) -> nn.Module:
    """The actor network a spec describes (on-policy Gaussian/categorical, or SAC's squashed Gaussian)."""
    if spec.actor_kind == "squashed_gaussian":
        from policyopt.sac import SquashedGaussianActor  # the off-policy module imports this one

        return SquashedGaussianActor(
            spec.obs_dim, spec.action_dim, spec.hidden_sizes, np.asarray(spec.action_low), np.asarray(spec.action_high)
        )
    if spec.actor_kind != "gaussian":
        raise CheckpointError(f"unknown actor kind {spec.actor_kind!r} in the checkpoint")
    return Actor(spec)


class DeployedPolicy:
    """A trained policy for deployment: `act(obs)` gives the deterministic action for raw observations."""

    def __init__(
        self,
        spec: PolicySpec,
        actor_state: Mapping[str, torch.Tensor],
        obs_normalizer: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.actor: nn.Module = _deployed_actor(spec)
        self.actor.load_state_dict(dict(actor_state))
        self.actor.eval()
        self.normalizer = ObservationNormalizer.from_state_dict(dict(obs_normalizer)) if obs_normalizer else None
        self.metadata = dict(metadata or {})
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


def export_policy(
    checkpoint_path: Path,
    out_path: Path,
    metadata: Mapping[str, Any] | None = None,
    *,
    bounds_from_env: bool = False,
) -> Path:
    """Write the deployment part of a checkpoint (actor, spec, normaliser, metadata) atomically.

    `checkpoint_path` is a training checkpoint, or a policy file to re-export (its metadata is kept and
    `metadata` is merged over it). `bounds_from_env` writes the action bounds of the environment the
    policy was trained on (`gymnasium.make(env_id).action_space`) into the spec, so that the deployed
    policy clips to them.
    """
    state = torch.load(Path(checkpoint_path), map_location="cpu", weights_only=False)
    if isinstance(state, dict) and state.get("format") == POLICY_FORMAT:
        policy, meta = dict(state["policy"]), dict(state.get("metadata", {}))
    else:
        state = load_checkpoint(checkpoint_path)
        policy = dict(state["policy"])
        meta = {
            "algo": state["algo"],
            "env_id": state["config"].get("env_id"),
            "seed": state["config"].get("seed"),
            "global_step": state["global_step"],
            "config": state["config"],
        }
    meta.update(metadata or {})
    if bounds_from_env:
        policy["spec"] = _spec_with_env_bounds(PolicySpec.from_dict(policy["spec"]), str(meta.get("env_id"))).to_dict()
        meta["action_bounds_from"] = meta.get("env_id")
    payload = {"format": POLICY_FORMAT, "policy": policy, "metadata": to_jsonable(meta)}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_bytes_atomic(out_path, buffer.getvalue())


def _spec_with_env_bounds(spec: PolicySpec, env_id: str) -> PolicySpec:
    """`spec` with the action bounds of `env_id`'s own (unwrapped) Box action space."""
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
    """A `DeployedPolicy` from a training checkpoint or an exported policy file."""
    state = torch.load(Path(path), map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") not in (CHECKPOINT_FORMAT, POLICY_FORMAT):
        raise CheckpointError(f"{path} is not a policyopt checkpoint or policy file")
    policy = state["policy"]
    if state["format"] == POLICY_FORMAT:
        metadata = state.get("metadata", {})
    else:
        metadata = {"algo": state["algo"], "global_step": state["global_step"], "config": state["config"]}
    return DeployedPolicy(PolicySpec.from_dict(policy["spec"]), policy["actor"], policy["obs_normalizer"], metadata)


__all__ = [
    "CHECKPOINT_FILE",
    "CheckpointError",
    "DeployedPolicy",
    "PolicyInputError",
    "capture_rng",
    "export_policy",
    "load_checkpoint",
    "load_policy",
    "restore_rng",
    "restore_training",
    "save_checkpoint",
    "seed_everything",
]

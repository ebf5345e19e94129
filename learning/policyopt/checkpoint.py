"""One checkpoint format for every policyopt algorithm, and the deployed policy that reads it.

A training checkpoint (`run_dir/checkpoint.pt`, written atomically) holds the networks, the
optimisers, the observation normaliser's statistics, the random generators (python, numpy, torch),
the vector environment's state where it can be saved (see `envs.capture_env_state`), the global
step, the update count and the configuration: `resume` continues from it, bit for bit where the
environment can be restored. A policy file (`export_policy`) keeps only what deployment needs.
`load_policy` reads either and returns a `DeployedPolicy`: numpy in, deterministic action out, with
the observations normalised exactly as in training.

Files hold tensors and plain values only (dicts, lists, tuples, str, int, float, bool, None) and are
read with `torch.load(weights_only=True)`: nothing in a file is unpickled into an object, so a crafted
file cannot run code. numpy arrays in `extra` are stored as tagged tensors and come back as arrays;
random generators and the environment as numbers (`capture_rng`, `envs.capture_env_state`). Anything
that is not a file of the expected kind (another format, the old pickled format /1, a truncated or
foreign file) raises `CheckpointError` with a one-line message naming the file.
"""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import nn

from flightkit import to_jsonable, write_bytes_atomic
from flightkit.cli import typed_one_line
from policyopt.envs import ObservationNormalizer, capture_env_state, observation_normalizer, restore_env_state
from policyopt.networks import Actor, PolicySpec
from policyopt.squashed_gaussian import SquashedGaussianActor

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = "policyopt.checkpoint/2"
POLICY_FORMAT = "policyopt.policy/2"
LEGACY_FORMATS = ("policyopt.checkpoint/1", "policyopt.policy/1")
"""Formats that needed unpickling (numpy arrays, pickled environments): refused, see `UPGRADE_COMMAND`."""
UPGRADE_COMMAND = "python learning/policyopt/checkpoints/upgrade_v1.py"
"""Re-exports a trusted policy file of format /1 into the current format (see checkpoints/README.md)."""
_CHECKPOINT_KEYS = ("algo", "config", "global_step", "update", "policy", "modules", "optimizers", "rng", "env", "extra")
_NUMPY_TAG = "__numpy__"


class CheckpointError(ValueError):
    """A file is not a policyopt checkpoint or does not match the run it is loaded into."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """No file at the checkpoint's path."""


class PolicyInputError(ValueError):
    """An observation given to a deployed policy has the wrong shape or non-finite values."""


def capture_rng() -> dict[str, Any]:
    """States of python's, numpy's global and torch's CPU random generators, as plain numbers and tensors."""
    version, internal, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=True)  # noqa: NPY002 (the global generator that libraries draw from)
    assert isinstance(numpy_state, tuple)  # legacy=True: ("MT19937", keys, position, has_gauss, cached_gaussian)
    kind, keys, position, has_gauss, cached_gaussian = numpy_state
    return {
        "python": {"version": int(version), "internal": [int(v) for v in internal], "gauss_next": gauss_next},
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of `capture_rng`: the three generators continue with the same streams."""
    python, numpy_state = state["python"], state["numpy"]
    gauss_next = python["gauss_next"]
    random.setstate((int(python["version"]), tuple(int(v) for v in python["internal"]), gauss_next))
    keys = np.asarray(torch.as_tensor(numpy_state["keys"]).numpy(), dtype=np.uint32)
    np.random.set_state(  # noqa: NPY002
        (
            str(numpy_state["kind"]),
            keys,
            int(numpy_state["position"]),
            int(numpy_state["has_gauss"]),
            float(numpy_state["cached_gaussian"]),
        )
    )
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))


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


def _storable(value: Any) -> Any:
    """`value` with numpy arrays and scalars as tagged tensors; raises TypeError for what a file cannot hold."""
    if isinstance(value, np.ndarray | np.generic):  # before float: np.float64 is a float
        return {_NUMPY_TAG: torch.from_numpy(np.array(value, copy=True)), "scalar": isinstance(value, np.generic)}
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return value
    if isinstance(value, Mapping):
        return {key: _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_storable(item) for item in value)
    raise TypeError(f"a checkpoint cannot hold a {type(value).__name__}: store tensors, arrays and plain values")


def _from_storable(value: Any) -> Any:
    """Inverse of `_storable` (tagged tensors back to numpy arrays and scalars)."""
    if isinstance(value, dict):
        if value.keys() == {_NUMPY_TAG, "scalar"} and isinstance(value[_NUMPY_TAG], torch.Tensor):
            array = value[_NUMPY_TAG].numpy().copy()
            return array[()] if value["scalar"] else array
        return {key: _from_storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_storable(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_from_storable(item) for item in value)
    return value


def _legacy_format(path: Path) -> str | None:
    """The old (/1) format tag in a torch zip file's pickle, found by reading bytes (never unpickling)."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")), None)
            if name is None:
                return None
            with archive.open(name) as pickled:
                head = pickled.read(1 << 20)  # the format is the payload's first key
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return None
    return next((tag for tag in LEGACY_FORMATS if tag.encode() in head), None)


def _read(path: Path, formats: Sequence[str], kind: str) -> dict[str, Any]:
    """The payload of a torch file of one of `formats`, loaded with weights_only=True; else CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise MissingCheckpointError(f"no policyopt {kind} at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for pickles, truncated, corrupt or foreign files
        legacy = _legacy_format(path)
        if legacy is not None:
            raise CheckpointError(
                f"{path} is in the old format {legacy!r}, which needs unpickling and is no longer read: "
                f"re-export it with `{UPGRADE_COMMAND} {path}` (only for a file you trust)"
            ) from None
        raise CheckpointError(f"{path} is not a readable policyopt {kind} ({typed_one_line(exc)})") from None
    found = state.get("format") if isinstance(state, dict) else type(state).__name__
    if found in LEGACY_FORMATS:
        raise CheckpointError(f"{path} is in the old format {found!r}: re-export it with `{UPGRADE_COMMAND} {path}`")
    if not isinstance(state, dict) or found not in formats:
        raise CheckpointError(f"{path} is not a policyopt {kind} (format {found!r}, expected {' or '.join(formats)})")
    return state


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
        except Exception as exc:  # not a SyncVectorEnv, for one: resume resets the environments instead
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
        "extra": _storable(dict(extra or {})),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def _check_policy_file(state: Mapping[str, Any], path: Path) -> None:
    """CheckpointError unless a policy file's entries have the types `load_policy` and `export_policy` use."""
    policy, metadata = state.get("policy"), state.get("metadata", {})
    if not isinstance(policy, dict) or not {"spec", "actor", "obs_normalizer"} <= policy.keys():
        raise CheckpointError(f"{path}: 'policy' must be a dict with 'spec', 'actor' and 'obs_normalizer'")
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: 'metadata' must be a dict, got {type(metadata).__name__}")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint (any algorithm) safely; raises CheckpointError for any other file.

    `extra` comes back as saved (numpy arrays as arrays).
    """
    state = _read(path, (CHECKPOINT_FORMAT,), "training checkpoint")
    missing = [key for key in _CHECKPOINT_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} lacks the entries {missing} of a {CHECKPOINT_FORMAT} checkpoint")
    for key in ("config", "policy", "modules", "optimizers", "rng", "extra"):
        if not isinstance(state[key], dict):
            raise CheckpointError(f"{path}: {key!r} must be a dict, got {type(state[key]).__name__}")
    state["extra"] = _from_storable(state["extra"])
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
    missing = (set(modules) - set(state["modules"])) | (set(optimizers) - set(state["optimizers"]))
    if missing:
        raise CheckpointError(f"checkpoint has no state for {sorted(missing)} (algo {state.get('algo')!r})")
    try:
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        restore_rng(state["rng"])
        env_state = state.get("env")
        if envs is not None and isinstance(env_state, dict) and "error" not in env_state:
            restore_env_state(envs, env_state)
            return True
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint does not fit this run: {typed_one_line(exc)}") from None
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
    state = _read(checkpoint_path, (CHECKPOINT_FORMAT, POLICY_FORMAT), "checkpoint or policy file")
    if state["format"] == POLICY_FORMAT:
        _check_policy_file(state, checkpoint_path)
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
    return save_policy_file(out_path, policy, meta)


def policy_file_bytes(policy: Mapping[str, Any], metadata: Mapping[str, Any]) -> bytes:
    """A policy file's content: `policy` (spec dict, actor tensors, normaliser state or None) and metadata."""
    payload = {"format": POLICY_FORMAT, "policy": dict(policy), "metadata": to_jsonable(dict(metadata))}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_policy_file(path: Path, policy: Mapping[str, Any], metadata: Mapping[str, Any]) -> Path:
    """Write a policy file (`policy_file_bytes`) atomically; return its path."""
    return write_bytes_atomic(path, policy_file_bytes(policy, metadata))


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
    """A `DeployedPolicy` from a training checkpoint or an exported policy file, read safely.

    Raises CheckpointError (one line, naming the file) for anything else: a file of another format, the
    old pickled format, a truncated or foreign file, or a policy that does not fit its spec.
    """
    state = _read(path, (CHECKPOINT_FORMAT, POLICY_FORMAT), "checkpoint or policy file")
    _check_policy_file(state, path)
    try:
        policy = state["policy"]
        if state["format"] == POLICY_FORMAT:
            metadata = state.get("metadata", {})
        else:
            metadata = {"algo": state["algo"], "global_step": state["global_step"], "config": state["config"]}
        spec = PolicySpec.from_dict(policy["spec"])
        return DeployedPolicy(spec, policy["actor"], policy["obs_normalizer"], metadata)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not hold a usable policy ({typed_one_line(exc)})") from None


__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "LEGACY_FORMATS",
    "POLICY_FORMAT",
    "UPGRADE_COMMAND",
    "CheckpointError",
    "DeployedPolicy",
    "MissingCheckpointError",
    "PolicyInputError",
    "capture_rng",
    "export_policy",
    "load_checkpoint",
    "load_policy",
    "policy_file_bytes",
    "restore_rng",
    "restore_training",
    "save_checkpoint",
    "save_policy_file",
    "seed_everything",
]

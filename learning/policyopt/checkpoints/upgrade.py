"""Re-export policyopt files of a retired format (/1 or /2) in the current format (/3, runkit's envelope).

    python learning/policyopt/checkpoints/upgrade.py learning/policyopt/checkpoints/*_tracking.pt
    python learning/policyopt/checkpoints/upgrade.py runs/x/checkpoint.pt           # a /2 run: it resumes after
    python learning/policyopt/checkpoints/upgrade.py old_checkpoint.pt --out policy.pt   # a /1 run's policy

What becomes what (in place without --out):

- a policy file, /1 or /2, becomes a /3 policy file: the same spec, actor tensors, observation statistics
  (as float64 tensors) and metadata; the training configuration, which /1 and /2 kept in the metadata,
  moves to the envelope's `config`;
- a /2 training checkpoint becomes a /3 training checkpoint holding everything it held (networks,
  optimisers, generators, environment state, the algorithm's extra state): the run resumes from it exactly;
- a /1 training checkpoint becomes a /3 policy file of its deployable part (--out required): the run
  itself cannot be resumed.

Every file is read with torch's weights-only loader; nothing is unpickled into an arbitrary object, so a
crafted file runs no code. Format /1 stored numpy arrays: those (arrays, scalars and their dtypes, and
nothing else) are allowed to the loader for /1 files. A /1 training checkpoint that holds pickled
environment objects cannot be read that way and is refused: re-train, or export its policy with the
project's code of that time (before the runkit envelope).

Before anything is written, the new content is read back with the safe loader and compared with the old
file: every tensor, statistic, metadata entry, configuration value (and for a checkpoint every module,
optimiser, generator, environment and extra entry) must be identical, and a policy's deterministic
actions on 256 random observations too. The file is then written atomically and read once more through
the public loader (`load_policy` / `load_checkpoint`).
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policyopt.checkpoint import (
    CHECKPOINT_FORMAT,
    POLICY_FORMAT,
    RETIRED_FORMATS,
    DeployedPolicy,
    load_checkpoint,
    load_policy,
    policy_file_bytes,
)
from policyopt.envs import ObservationNormalizer
from policyopt.networks import PolicySpec
from runkit import UserError, to_jsonable, write_bytes_atomic
from runkit.checkpoint import envelope_bytes, from_storable, payload_difference
from runkit.cli import run_guarded, typed_one_line

OLD_POLICY_FORMATS = ("policyopt.policy/1", "policyopt.policy/2")


class UpgradeError(UserError):
    """A file this script cannot re-export (not a retired policyopt format, or not readable without unpickling)."""


class UpgradeMismatchError(AssertionError):
    """The re-exported content differs from the old file's (a bug of this script: nothing was written)."""


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise UpgradeMismatchError(problem)


def _numpy_globals() -> list[Any]:
    """What torch's weights-only loader needs to rebuild numpy arrays and scalars (and nothing else)."""
    from numpy._core.multiarray import _reconstruct, scalar

    dtypes = [type(np.dtype(code)) for code in ("?", "b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "e", "f", "d")]
    return [np.ndarray, np.dtype, _reconstruct, scalar, *dtypes]


def read_retired(path: Path) -> dict[str, Any]:
    """The payload of a /1 or /2 file, read with the weights-only loader (numpy arrays allowed for /1)."""
    if not path.is_file():
        raise UpgradeError(f"no file at {path}")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickled object of any other kind: never unpickled here
        raise UpgradeError(
            f"{path} cannot be read without unpickling ({typed_one_line(exc)}); nothing in this project unpickles "
            "a file (it would run any code a crafted file carries): a /1 training checkpoint with pickled "
            "environments cannot be re-exported, re-train instead"
        ) from None
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if found not in RETIRED_FORMATS:
        raise UpgradeError(f"{path} is not a policyopt file of a retired format (format {found!r})")
    return dict(payload)


def current_policy(old: Mapping[str, Any]) -> dict[str, Any]:
    """A /1 or /2 policy entry in the current form (spec dict, actor tensors, float64 tensor statistics)."""
    normalizer = old["obs_normalizer"]
    return {
        "spec": PolicySpec.from_dict(dict(old["spec"])).to_dict(),
        "actor": {name: tensor.detach().clone() for name, tensor in old["actor"].items()},
        "obs_normalizer": ObservationNormalizer.from_state_dict(dict(normalizer)).state_dict() if normalizer else None,
    }


def upgraded(payload: Mapping[str, Any]) -> tuple[bytes, str]:
    """The /3 content of a retired payload, and its format."""
    found = payload["format"]
    if found in OLD_POLICY_FORMATS:
        metadata = dict(payload.get("metadata") or {})
        config = dict(metadata.pop("config", None) or {})
        return policy_file_bytes(current_policy(payload["policy"]), metadata, config), POLICY_FORMAT
    config = dict(payload["config"])
    if found == "policyopt.checkpoint/2":
        state = {key: payload[key] for key in ("algo", "global_step", "update", "modules", "optimizers", "env")}
        state["policy"] = current_policy(payload["policy"])
        state["extra"] = from_storable(payload["extra"])
        content = envelope_bytes(CHECKPOINT_FORMAT, state, config=config, rng=payload["rng"])
        return content, CHECKPOINT_FORMAT
    metadata = {
        "algo": payload["algo"],
        "env_id": config.get("env_id"),
        "seed": config.get("seed"),
        "global_step": payload["global_step"],
    }
    return policy_file_bytes(current_policy(payload["policy"]), metadata, config), POLICY_FORMAT


def assert_same(old: Any, new: Any, where: str) -> None:
    """UpgradeMismatchError unless `new` holds exactly what `old` held (runkit's payload_difference)."""
    problem = payload_difference(old, new, where)
    _expect(problem is None, problem or "")


def _same_actions(old_policy: Mapping[str, Any], new: DeployedPolicy, where: str) -> None:
    reference = DeployedPolicy(
        PolicySpec.from_dict(dict(old_policy["spec"])), old_policy["actor"], old_policy["obs_normalizer"]
    )
    observations = np.random.default_rng(0).normal(scale=2.0, size=(256, new.spec.obs_dim))
    np.testing.assert_array_equal(new.act(observations), reference.act(observations), err_msg=where, strict=True)


def check_upgrade(old: Mapping[str, Any], state: Mapping[str, Any], rest: Mapping[str, Any], where: str) -> None:
    """AssertionError unless the new file's `state` and envelope entries (`rest`) hold exactly the old payload."""
    old_policy = old["policy"]
    new_policy = state["policy"]
    for name, tensor in old_policy["actor"].items():
        assert_same(tensor, new_policy["actor"][name], f"{where}: actor tensor {name}")
    _expect(set(old_policy["actor"]) == set(new_policy["actor"]), f"{where}: actor tensors differ in names")
    assert_same(PolicySpec.from_dict(dict(old_policy["spec"])).to_dict(), new_policy["spec"], f"{where}: spec")
    old_normalizer, new_normalizer = old_policy["obs_normalizer"], new_policy["obs_normalizer"]
    _expect((old_normalizer is None) == (new_normalizer is None), f"{where}: the normaliser was lost or added")
    if old_normalizer:
        for key in ("mean", "var"):
            old_values = np.asarray(torch.as_tensor(old_normalizer[key]).numpy(), dtype=np.float64)
            np.testing.assert_array_equal(new_normalizer[key].numpy(), old_values, err_msg=f"{where}: {key}")
        for key in ("count", "epsilon", "clip"):
            _expect(float(new_normalizer[key]) == float(old_normalizer[key]), f"{where}: normaliser {key}")
    if old["format"] in OLD_POLICY_FORMATS:
        old_metadata = dict(old.get("metadata") or {})
        old_config = old_metadata.pop("config", None) or {}
        assert_same(to_jsonable(old_metadata), rest["metadata"], f"{where}: metadata")
        assert_same(to_jsonable(old_config), rest["config"], f"{where}: config")
        return
    assert_same(to_jsonable(old["config"]), rest["config"], f"{where}: config")
    if old["format"] == "policyopt.checkpoint/2":
        for key in ("algo", "global_step", "update", "modules", "optimizers", "env"):
            assert_same(old[key], state[key], f"{where}: {key}")
        assert_same(from_storable(old["extra"]), state["extra"], f"{where}: extra")
        assert_same(old["rng"], rest["rng"], f"{where}: rng")
    else:
        expected = {"algo": old["algo"], "global_step": old["global_step"]}
        _expect({k: rest["metadata"][k] for k in expected} == expected, f"{where}: metadata")


def upgrade(source: Path, out: Path) -> tuple[Path, str]:
    """Re-export the retired file `source` at `out` (checked before and after writing); return it and its format."""
    old = read_retired(source)
    if old["format"] == "policyopt.checkpoint/1" and out == source:
        raise UpgradeError(f"{source} is a /1 training checkpoint: it becomes a policy file, so pass --out")
    content, new_format = upgraded(old)
    staged = torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    state = from_storable(staged["state"])
    rest = {"config": staged["config"], "rng": staged["rng"], "metadata": from_storable(staged["metadata"])}
    check_upgrade(old, state, rest, str(source))
    write_bytes_atomic(out, content)
    if new_format == POLICY_FORMAT:
        loaded = load_policy(out)  # once more, through the public loader
        _same_actions(old["policy"], loaded, str(out))
        policy = {
            "spec": loaded.spec.to_dict(),
            "actor": loaded.actor.state_dict(),
            "obs_normalizer": loaded.normalizer.state_dict() if loaded.normalizer is not None else None,
        }
        check_upgrade(old, {"policy": policy}, {"config": loaded.config, "metadata": loaded.metadata}, str(out))
    else:
        checkpoint = load_checkpoint(out)
        rest = {"config": checkpoint.config, "rng": checkpoint.rng, "metadata": checkpoint.metadata}
        check_upgrade(old, checkpoint.state, rest, str(out))
    return out, new_format


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: upgrade the given files (in place, or to `--out` for one file)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="policyopt files of format /1 or /2")
    parser.add_argument("--out", type=Path, default=None, help="where to write (one file only; default: in place)")
    args = parser.parse_args(argv)
    if args.out is not None and len(args.files) != 1:
        parser.error("--out takes exactly one input file")

    def run() -> None:
        for source in args.files:
            written, new_format = upgrade(source, args.out or source)
            print(f"{source} -> {written} ({new_format}): contents identical")

    raise SystemExit(run_guarded(run))


if __name__ == "__main__":
    main()

__all__ = [
    "UpgradeError",
    "UpgradeMismatchError",
    "assert_same",
    "check_upgrade",
    "read_retired",
    "upgrade",
    "upgraded",
]

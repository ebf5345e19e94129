"""Re-export `mfplan.policy/1` files in the current format (`mfplan.policy/2`, runkit's envelope).

    python learning/mfplan/checkpoints/upgrade.py learning/mfplan/checkpoints/mfrl_policy.pt
    python learning/mfplan/checkpoints/upgrade.py runs/mfrl_v2/policy.pt --out policy_v2.pt

What becomes what (in place without --out): the /1 file's weights, model configuration and feature names
become the envelope's `state` (`model`, `policy_config`, `features`); the training configuration, which /1
kept in the metadata (`train_config`), moves to the envelope's `config`, as it was recorded (the /1
trainer's field names, e.g. `out_dir`); every other metadata entry (the command, the evaluation counts,
the calibration) stays in `metadata`, unchanged.

/1 policy files hold tensors and plain values only, so they are read with the safe loader
(`weights_only=True`): nothing is unpickled, and a crafted file is refused. `mfplan.trainer/1` run
checkpoints are not re-exported (this version cannot resume such a run); re-export the run's `policy.pt`.

Before anything is written, the new content is read back with the safe loader and compared with the old
file: every tensor bitwise (names, dtypes, shapes), the model configuration, the feature names, the
metadata and the configuration. The file is then written atomically, read once more through the public
loader (`mfplan.policy.read_policy`), and the policy's segment times on 32 random courses, from rest and
from a moving start, must equal those of the old weights exactly.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mfplan.configs import PolicyConfig
from mfplan.courses import random_course
from mfplan.policy import (
    CHECKPOINT_FORMAT,
    TimeAllocationPolicy,
    encode_course,
    feature_names,
    policy_file_bytes,
    read_policy,
)
from runkit import UserError, to_jsonable, write_bytes_atomic
from runkit.checkpoint import from_storable, payload_difference
from runkit.cli import run_guarded, typed_one_line

OLD_FORMAT = "mfplan.policy/1"
_OLD_KEYS = ("format", "config", "features", "state_dict", "metadata")


class UpgradeError(UserError):
    """A file this script cannot re-export (missing, unreadable by the safe loader, or not an mfplan.policy/1 file)."""


class UpgradeMismatchError(AssertionError):
    """The re-exported content differs from the old file's (a bug of this script: nothing was written)."""


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise UpgradeMismatchError(problem)


def read_old(path: Path) -> dict[str, Any]:
    """The payload of an `mfplan.policy/1` file, read with the safe loader (never unpickled)."""
    if not path.is_file():
        raise UpgradeError(f"no file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for pickles, truncated, corrupt or foreign files
        raise UpgradeError(f"{path} is not readable by the safe loader ({typed_one_line(exc)})") from None
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if found == CHECKPOINT_FORMAT:
        raise UpgradeError(f"{path} is already in the current format {CHECKPOINT_FORMAT!r}: nothing to do")
    if found != OLD_FORMAT:
        raise UpgradeError(f"{path} is not an {OLD_FORMAT} file (format {found!r})")
    missing = [key for key in _OLD_KEYS if key not in payload]
    if missing:
        raise UpgradeError(f"{path} lacks the entries {missing} of an {OLD_FORMAT} file")
    if payload["features"] != feature_names():
        raise UpgradeError(
            f"{path} was trained on features {payload['features']}, but this version computes {feature_names()}: "
            "re-exporting it would not make it usable; retrain with `mfrl train`"
        )
    return dict(payload)


def _old_policy(old: Mapping[str, Any]) -> TimeAllocationPolicy:
    """The /1 file's policy, built from its own entries (the reference the new file is compared with)."""
    policy = TimeAllocationPolicy(PolicyConfig(**old["config"]))
    policy.load_state_dict(old["state_dict"])
    return policy.eval()


def upgraded(old: Mapping[str, Any]) -> bytes:
    """The /2 content of a /1 payload."""
    metadata = dict(old["metadata"])
    config = dict(metadata.pop("train_config", None) or {})
    return policy_file_bytes(_old_policy(old), metadata, config)


def assert_same(old: Any, new: Any, where: str) -> None:
    """UpgradeMismatchError unless `new` holds exactly what `old` held (runkit's payload_difference)."""
    problem = payload_difference(old, new, where)
    _expect(problem is None, problem or "")


def check_upgrade(old: Mapping[str, Any], state: Mapping[str, Any], config: Any, metadata: Any, where: str) -> None:
    """UpgradeMismatchError unless the new file's state, config and metadata hold exactly the old payload."""
    assert_same(old["state_dict"], state["model"], f"{where}: weights")
    assert_same(old["config"], state["policy_config"], f"{where}: policy config")
    assert_same(old["features"], state["features"], f"{where}: feature names")
    old_metadata = dict(old["metadata"])
    old_config = old_metadata.pop("train_config", None) or {}
    assert_same(to_jsonable(old_metadata), metadata, f"{where}: metadata")
    assert_same(to_jsonable(old_config), config, f"{where}: config")


def check_same_times(old: Mapping[str, Any], new: TimeAllocationPolicy, where: str, courses: int = 32) -> None:
    """UpgradeMismatchError unless `new` gives exactly the old weights' segment times on random courses."""
    reference = _old_policy(old)
    rng = np.random.default_rng(0)
    for index in range(courses):
        waypoints = random_course(rng)
        moving = index % 2 == 1
        velocity = rng.normal(scale=1.0, size=3) if moving else np.zeros(3)
        acceleration = rng.normal(scale=1.0, size=3) if moving else np.zeros(3)
        encoding = encode_course(waypoints, velocity, acceleration)
        _expect(np.array_equal(new.act(encoding), reference.act(encoding)), f"{where}: segment times differ")


def upgrade(source: Path, out: Path) -> Path:
    """Re-export the /1 file `source` at `out` (checked before and after writing); return `out`."""
    old = read_old(source)
    content = upgraded(old)
    staged = torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    _expect(staged["format"] == CHECKPOINT_FORMAT, f"{source}: staged format {staged['format']!r}")
    check_upgrade(old, from_storable(staged["state"]), staged["config"], from_storable(staged["metadata"]), str(source))
    write_bytes_atomic(out, content)
    loaded = read_policy(out)  # once more, through the public loader
    state = {
        "model": loaded.policy.state_dict(),
        "policy_config": to_jsonable(loaded.policy.config),
        "features": feature_names(),
    }
    check_upgrade(old, state, loaded.config, loaded.metadata, str(out))
    check_same_times(old, loaded.policy, str(out))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: upgrade the given files (in place, or to `--out` for one file)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help=f"{OLD_FORMAT} files")
    parser.add_argument("--out", type=Path, default=None, help="where to write (one file only; default: in place)")
    args = parser.parse_args(argv)
    if args.out is not None and len(args.files) != 1:
        parser.error("--out takes exactly one input file")

    def run() -> None:
        for source in args.files:
            written = upgrade(source, args.out or source)
            print(f"{source} -> {written} ({CHECKPOINT_FORMAT}): contents identical")

    raise SystemExit(run_guarded(run))


if __name__ == "__main__":
    main()

__all__ = [
    "OLD_FORMAT",
    "UpgradeError",
    "UpgradeMismatchError",
    "assert_same",
    "check_same_times",
    "check_upgrade",
    "read_old",
    "upgrade",
    "upgraded",
]

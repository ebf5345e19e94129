"""learning/mfplan/checkpoints/upgrade.py: an `mfplan.policy/1` file becomes an `mfplan.policy/2` file with identical
contents (weights, model config, metadata; the training config moved to the envelope's `config`); nothing is
unpickled; anything else is refused with one line."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mfplan.configs import DEFAULT_CHECKPOINT, PolicyConfig
from mfplan.courses import course_set
from mfplan.policy import (
    CHECKPOINT_FORMAT,
    PolicyCheckpointError,
    TimeAllocationPolicy,
    encode_course,
    feature_names,
    load_policy,
    read_policy,
    save_policy,
)

SCRIPT = Path(__file__).resolve().parents[2] / "learning" / "mfplan" / "checkpoints" / "upgrade.py"


def _upgrade(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False
    )


def _v1_payload(policy: TimeAllocationPolicy, metadata: dict[str, Any]) -> dict[str, Any]:
    """What `save_policy` wrote in format /1."""
    return {
        "format": "mfplan.policy/1",
        "config": dataclasses.asdict(policy.config),
        "features": feature_names(),
        "state_dict": {name: tensor.detach().clone() for name, tensor in policy.state_dict().items()},
        "metadata": metadata,
    }


def _random_policy(seed: int) -> TimeAllocationPolicy:
    torch.manual_seed(seed)
    policy = TimeAllocationPolicy(PolicyConfig(d_model=32, num_heads=2, num_layers=1, ff_hidden=48))
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.normal_(0.0, 0.3)
    return policy.eval()


def test_a_v1_file_is_re_exported_in_place_with_identical_contents(tmp_path: Path) -> None:
    policy = _random_policy(4)
    train_config = {"out_dir": "runs/old", "seed": 2, "iterations": 9, "initial_scales": [1.0, 1.5]}
    metadata = {"iteration": 9, "command": "mfrl train --out-dir runs/old", "calibration": {"safety_margin": 1.3}}
    path = tmp_path / "policy.pt"
    torch.save(_v1_payload(policy, {**metadata, "train_config": train_config}), path)
    with pytest.raises(PolicyCheckpointError, match=f"upgrade.py {path}"):
        load_policy(path)

    result = _upgrade(str(path))
    assert result.returncode == 0, result.stderr
    assert "contents identical" in result.stdout
    assert torch.load(path, weights_only=True)["format"] == CHECKPOINT_FORMAT
    upgraded = read_policy(path)
    assert upgraded.metadata == metadata
    assert upgraded.config == train_config
    assert upgraded.policy.config == policy.config
    for name, tensor in policy.state_dict().items():
        assert torch.equal(upgraded.policy.state_dict()[name], tensor), name
    for course in course_set(4, seed=11):
        encoding = encode_course(course)
        np.testing.assert_array_equal(upgraded.policy.act(encoding), policy.act(encoding))

    again = _upgrade(str(path))
    assert again.returncode == 2
    assert "already in the current format" in again.stderr


def test_the_shipped_checkpoint_is_its_v1_file_re_exported(tmp_path: Path) -> None:
    """A /1 file rebuilt from the shipped one re-exports to the same contents (what the README's command did)."""
    shipped = read_policy(DEFAULT_CHECKPOINT)
    old = tmp_path / "mfrl_policy_v1.pt"
    torch.save(_v1_payload(shipped.policy, {**shipped.metadata, "train_config": shipped.config}), old)
    result = _upgrade(str(old), "--out", str(tmp_path / "new.pt"))
    assert result.returncode == 0, result.stderr
    new = read_policy(tmp_path / "new.pt")
    assert new.metadata == shipped.metadata
    assert new.config == shipped.config
    for name, tensor in shipped.policy.state_dict().items():
        assert torch.equal(new.policy.state_dict()[name], tensor), name


class _OpensAFile:
    """Unpickling this object would call `open(marker, "w")`: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_anything_else_is_refused_with_one_line_and_nothing_is_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    crafted = tmp_path / "crafted.pt"
    torch.save({"format": "mfplan.policy/1", "state_dict": _OpensAFile(marker)}, crafted)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "mfplan.trainer/1", "iteration": 3}, foreign)
    current = save_policy(tmp_path / "current.pt", TimeAllocationPolicy(), {})
    cases = {
        crafted: "not readable by the safe loader",
        foreign: "is not an mfplan.policy/1 file",
        current: "already in the current format",
        tmp_path / "absent.pt": "no file at",
    }
    for path, message in cases.items():
        result = _upgrade(str(path))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert message in lines[0]
    assert not marker.exists(), "the upgrade ran the code in a crafted file"
    assert torch.load(current, weights_only=True)["format"] == CHECKPOINT_FORMAT  # left as it was

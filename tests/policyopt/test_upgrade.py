"""learning/policyopt/checkpoints/upgrade.py: /1 and /2 files become /3 files with identical contents.

Every file is read with the weights-only loader (numpy arrays allowed for /1): a crafted pickle is refused
and runs nothing; a /2 policy becomes a /3 policy and a /2 training checkpoint a /3 checkpoint holding
everything it held.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from policyopt.checkpoint import CHECKPOINT_FORMAT, POLICY_FORMAT, DeployedPolicy, load_checkpoint, load_policy
from policyopt.configs import PPOConfig
from policyopt.envs import ObservationNormalizer
from policyopt.networks import Actor, PolicySpec
from policyopt.ppo import PPOTrainer
from runkit.checkpoint import storable

SCRIPT = Path(__file__).resolve().parents[2] / "learning" / "policyopt" / "checkpoints" / "upgrade.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("policyopt_upgrade", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _OpensAFile:
    """Unpickling this object would call `open(marker, "w")`: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _old_policy(numpy_statistics: bool) -> dict[str, Any]:
    """A policy entry as /1 (numpy statistics) or /2 (tensors) stored it."""
    torch.manual_seed(0)
    spec = PolicySpec(obs_dim=3, action_dim=2, discrete=False, action_low=(-1.0, -2.0), action_high=(1.0, 2.0))
    normalizer = ObservationNormalizer((3,))
    normalizer.update(np.random.default_rng(0).normal(size=(50, 3)) * 4.0 + 1.0)
    statistics: dict[str, Any] = normalizer.state_dict()
    if numpy_statistics:
        statistics = {**statistics, "mean": normalizer.rms.mean.copy(), "var": normalizer.rms.var.copy()}
    return {"spec": spec.to_dict(), "actor": Actor(spec).state_dict(), "obs_normalizer": statistics}


METADATA = {"algo": "mdpo", "env_id": "Pendulum-v1", "seed": 1, "global_step": 512, "command": "policyopt mdpo"}
CONFIG = {"env_id": "Pendulum-v1", "seed": 1, "hidden_sizes": [64, 64]}


def _same_actions(old_policy: dict[str, Any], new: DeployedPolicy) -> None:
    reference = DeployedPolicy(
        PolicySpec.from_dict(old_policy["spec"]), old_policy["actor"], old_policy["obs_normalizer"]
    )
    observations = np.random.default_rng(1).normal(scale=3.0, size=(64, 3))
    np.testing.assert_array_equal(new.act(observations), reference.act(observations), strict=True)


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_policy_file_becomes_a_current_one_with_the_same_network_statistics_and_metadata(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "policy.pt"
    old_policy = _old_policy(numpy_statistics=version == 1)
    torch.save(
        {"format": f"policyopt.policy/{version}", "policy": old_policy, "metadata": {**METADATA, "config": CONFIG}},
        path,
    )
    _script().upgrade(path, path)
    assert torch.load(path, weights_only=True)["format"] == POLICY_FORMAT
    policy = load_policy(path)
    assert policy.metadata == METADATA
    assert policy.config == CONFIG
    assert policy.normalizer is not None
    np.testing.assert_array_equal(policy.normalizer.rms.mean, np.asarray(old_policy["obs_normalizer"]["mean"]))
    _same_actions(old_policy, policy)


def test_a_crafted_pickle_is_refused_and_runs_nothing_while_numpy_arrays_are_read(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    crafted = tmp_path / "crafted.pt"
    torch.save({"format": "policyopt.policy/1", "policy": _OpensAFile(marker)}, crafted)
    before = crafted.read_bytes()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(crafted)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {crafted} cannot be read without unpickling")
    assert not marker.exists()
    assert crafted.read_bytes() == before
    assert "--unpickle" not in SCRIPT.read_text()  # there is no way to ask for unpickling
    assert "weights_only=False" not in SCRIPT.read_text()

    legacy = tmp_path / "legacy.pt"
    torch.save({"format": "policyopt.policy/1", "policy": _old_policy(True), "metadata": METADATA}, legacy)
    upgraded = subprocess.run(
        [sys.executable, str(SCRIPT), str(legacy)], capture_output=True, text=True, timeout=120, check=False
    )
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]
    assert load_policy(legacy).metadata == METADATA


def test_a_safe_old_training_checkpoint_becomes_a_current_one_holding_everything(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = PPOConfig(
        env_id="CartPole-v1", num_envs=2, num_steps=32, total_timesteps=64, num_minibatches=2, update_epochs=1,
        run_dir=run_dir, tensorboard=False, progress=False,
    )  # fmt: skip
    PPOTrainer(config).train()
    current = load_checkpoint(run_dir / "checkpoint.pt")
    old = tmp_path / "old.pt"  # the same content in format /2's layout
    state = dict(current.state)
    torch.save(
        {
            "format": "policyopt.checkpoint/2",
            **{key: value for key, value in state.items() if key != "extra"},
            "extra": storable(state["extra"]),
            "config": current.config,
            "rng": current.rng,
        },
        old,
    )
    out = tmp_path / "upgraded.pt"
    script = _script()
    assert script.upgrade(old, out) == (out, CHECKPOINT_FORMAT)
    upgraded = load_checkpoint(out)
    script.assert_same(current.state, upgraded.state, "state")
    script.assert_same(current.config, upgraded.config, "config")
    script.assert_same(current.rng, upgraded.rng, "rng")


def test_a_pickled_training_checkpoint_becomes_a_policy_file_only_next_to_it(tmp_path: Path) -> None:
    old_policy = _old_policy(numpy_statistics=True)
    legacy = tmp_path / "checkpoint.pt"
    payload = {"format": "policyopt.checkpoint/1", "algo": "ppo", "global_step": 64, "config": CONFIG}
    torch.save({**payload, "policy": old_policy, "envs": np.zeros(2)}, legacy)
    script = _script()
    with pytest.raises(script.UpgradeError, match="pass --out"):
        script.upgrade(legacy, legacy)
    out = tmp_path / "policy.pt"
    assert script.upgrade(legacy, out) == (out, POLICY_FORMAT)
    policy = load_policy(out)
    assert policy.metadata == {"algo": "ppo", "env_id": "Pendulum-v1", "seed": 1, "global_step": 64}
    assert policy.config == CONFIG
    _same_actions(old_policy, policy)

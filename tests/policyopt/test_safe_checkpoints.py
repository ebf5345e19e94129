"""policyopt files are read without unpickling: crafted, truncated, foreign and old files raise CheckpointError.

Also: what a checkpoint stores (environment state, numpy extras, networks, optimisers) round-trips through
`torch.load(weights_only=True)` exactly, and the shipped controllers are in the current format.
"""

from __future__ import annotations

import io
import pickle
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import runkit.checkpoint
from mfplan.policy import TimeAllocationPolicy, save_policy
from policyopt.checkpoint import (
    CHECKPOINT_FORMAT,
    POLICY_FORMAT,
    CheckpointError,
    MissingCheckpointError,
    export_policy,
    load_checkpoint,
    load_policy,
    restore_training,
    save_checkpoint,
    save_policy_file,
)
from policyopt.envs import capture_env_state, make_vector_env, observation_normalizer, restore_env_state
from policyopt.networks import Actor, ActorCritic, PolicySpec

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "learning" / "policyopt" / "checkpoints").glob("*.pt"))


class _OpensAFile:
    """Unpickling this object would call `open(marker, "w")`: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


class _TouchesAFile:
    """Unpickling this object would call `Path.touch(marker)`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _weights_only_round_trip(value: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _crafted_files(tmp_path: Path) -> tuple[dict[str, Path], Path]:
    """Files that would create `marker` if they were unpickled, in torch's zip format and as a plain pickle."""
    marker = tmp_path / "marker"
    files = {
        "torch.save(open)": tmp_path / "open.pt",
        "torch.save(Path.touch)": tmp_path / "touch.pt",
        "pickle.dump(open)": tmp_path / "plain.pkl",
        "disguised as a policy": tmp_path / "disguised.pt",
    }
    torch.save(_OpensAFile(marker), files["torch.save(open)"])
    torch.save(_TouchesAFile(marker), files["torch.save(Path.touch)"])
    files["pickle.dump(open)"].write_bytes(
        pickle.dumps({"format": POLICY_FORMAT, "policy": _OpensAFile(marker)}, protocol=2)
    )
    torch.save(
        {"format": POLICY_FORMAT, "config": {}, "state": {"policy": _OpensAFile(marker)}, "rng": None, "metadata": {}},
        files["disguised as a policy"],
    )
    return files, marker


def test_the_crafted_payload_would_run_if_unpickled(tmp_path: Path) -> None:
    """The test's payload is real: plain `pickle.loads` creates the marker (the loaders below must not)."""
    marker = tmp_path / "proof"
    pickle.loads(pickle.dumps(_OpensAFile(marker))).close()
    assert marker.exists()
    pickle.loads(pickle.dumps(_TouchesAFile(tmp_path / "proof2")))
    assert (tmp_path / "proof2").exists()


LOADERS = {
    "load_checkpoint": load_checkpoint,
    "load_policy": load_policy,
    "export_policy": lambda path: export_policy(path, path.with_suffix(".exported")),
}


@pytest.mark.parametrize("loader", list(LOADERS))
def test_crafted_pickles_raise_checkpoint_error_and_run_nothing(tmp_path: Path, loader: str) -> None:
    files, marker = _crafted_files(tmp_path)
    for name, path in files.items():
        with pytest.raises(CheckpointError) as error:
            LOADERS[loader](path)
        message = str(error.value)
        assert str(path) in message, name
        assert "\n" not in message, name
        assert not marker.exists(), f"{loader} ran the code in {name}"
        assert not path.with_suffix(".exported").exists()


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    spec = PolicySpec(obs_dim=3, action_dim=1, discrete=False)
    good = save_policy_file(
        tmp_path / "good.pt", {"spec": spec.to_dict(), "actor": Actor(spec).state_dict(), "obs_normalizer": None}, {}
    )
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint\nat all\n")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    mfplan_policy = save_policy(tmp_path / "mfplan.pt", TimeAllocationPolicy(), {})
    legacy = tmp_path / "legacy.pt"  # format /1 kept numpy arrays: weights_only cannot read it
    torch.save({"format": "policyopt.policy/1", "policy": {"obs_normalizer": {"mean": np.zeros(3)}}}, legacy)
    plain_legacy = tmp_path / "plain_legacy.pt"  # a /1 file that happens to hold no numpy array
    torch.save({"format": "policyopt.checkpoint/1"}, plain_legacy)
    safe_old = tmp_path / "safe_old.pt"  # format /2: weights-only, the layout before the envelope
    torch.save({"format": "policyopt.policy/2", "policy": {}, "metadata": {}}, safe_old)
    safe_old_checkpoint = tmp_path / "safe_old_checkpoint.pt"
    torch.save({"format": "policyopt.checkpoint/2", "algo": "ppo"}, safe_old_checkpoint)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    return {
        "truncated": (truncated, "not a readable policyopt"),
        "text": (text, "not a readable policyopt"),
        "empty": (empty, "not a readable policyopt"),
        "mfplan policy": (mfplan_policy, r"mfplan\.policy/"),
        "legacy /1 with numpy": (legacy, rf"re-export it with .*upgrade\.py {legacy}"),
        "legacy /1": (plain_legacy, rf"re-export its policy with .*upgrade\.py {plain_legacy} --out"),
        "old /2 policy": (
            safe_old,
            rf"retired format 'policyopt\.policy/2': re-export it with .*upgrade\.py {safe_old}",
        ),
        "old /2 checkpoint": (safe_old_checkpoint, r"retired format 'policyopt\.checkpoint/2'.*resumes"),
        "a bare tensor": (tensor, "Tensor"),
    }


@pytest.mark.parametrize("loader", list(LOADERS))
def test_truncated_text_foreign_and_old_files_raise_one_line_checkpoint_errors(tmp_path: Path, loader: str) -> None:
    for name, (path, expected) in _bad_files(tmp_path).items():
        with pytest.raises(CheckpointError, match=expected) as error:
            LOADERS[loader](path)
        assert str(path) in str(error.value), name
        assert "\n" not in str(error.value), name


def test_a_policy_file_with_wrong_contents_is_a_checkpoint_error(tmp_path: Path) -> None:
    spec = PolicySpec(obs_dim=3, action_dim=2, discrete=False)
    wrong_actor = save_policy_file(
        tmp_path / "wrong_actor.pt", {"spec": spec.to_dict(), "actor": {}, "obs_normalizer": None}, {}
    )
    no_spec = tmp_path / "no_spec.pt"
    torch.save({"format": POLICY_FORMAT, "policy": {"actor": {}}, "metadata": {}}, no_spec)
    no_spec_envelope = runkit.checkpoint.save_envelope(tmp_path / "no_spec_envelope.pt", POLICY_FORMAT, {"policy": {}})
    for path in (wrong_actor, no_spec, no_spec_envelope):
        with pytest.raises(CheckpointError) as error:
            load_policy(path)
        assert str(path) in str(error.value)
        assert "\n" not in str(error.value)


def test_a_missing_file_is_a_typed_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(MissingCheckpointError, match="no policyopt"):
        load_policy(tmp_path / "nothing.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nothing.pt")


# ------------------------------------------------------------------------------------------------ contents


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "Hopper-v5"])
def test_environment_state_restores_exactly_into_environments_reset_with_another_seed(env_id: str) -> None:
    def build(seed: int) -> Any:
        envs = make_vector_env(env_id, 2, seed, normalize_observation=True, normalize_reward=True)
        envs.reset(seed=seed)
        return envs

    actions = np.random.default_rng(0)
    space = build(0).single_action_space

    def act() -> np.ndarray:
        if env_id == "CartPole-v1":
            return actions.integers(0, 2, size=2)
        return actions.uniform(-1.0, 1.0, size=(2, *space.shape))

    original = build(0)
    for _ in range(120):
        original.step(act())
    state = _weights_only_round_trip(capture_env_state(original))
    restored = build(5)
    restore_env_state(restored, state)
    for _ in range(300):  # several episodes end and autoreset on the way
        action = act()
        for a, b in zip(original.step(action)[:4], restored.step(action)[:4], strict=True):
            np.testing.assert_array_equal(a, b)
    normalizers = observation_normalizer(original), observation_normalizer(restored)
    assert normalizers[0] is not None
    assert normalizers[1] is not None
    np.testing.assert_array_equal(normalizers[0].rms.mean, normalizers[1].rms.mean)


def test_environment_state_of_another_environment_is_refused() -> None:
    cartpole = make_vector_env("CartPole-v1", 2, 0)
    cartpole.reset(seed=0)
    pendulum = make_vector_env("Pendulum-v1", 2, 0)
    pendulum.reset(seed=0)
    with pytest.raises(ValueError, match="has"):
        restore_env_state(pendulum, capture_env_state(cartpole))
    with pytest.raises(ValueError, match="sub-environments"):
        restore_env_state(make_vector_env("CartPole-v1", 3, 0), capture_env_state(cartpole))


def _small_run(seed: int) -> tuple[Any, PolicySpec, ActorCritic, torch.optim.Optimizer]:
    envs = make_vector_env("CartPole-v1", 2, seed, normalize_observation=True)
    envs.reset(seed=seed)
    spec = PolicySpec.from_spaces(envs.single_observation_space, envs.single_action_space, (8, 8))
    torch.manual_seed(seed)
    agent = ActorCritic(spec)
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-3)
    return envs, spec, agent, optimizer


def test_a_training_checkpoint_is_weights_only_and_restores_everything(tmp_path: Path) -> None:
    envs, spec, agent, optimizer = _small_run(0)
    for _ in range(30):
        envs.step(np.array([0, 1]))
    agent.value(torch.ones(4, spec.obs_dim)).sum().backward()
    optimizer.step()  # Adam has moments to save
    extra = {
        "obs": np.arange(6, dtype=np.float32).reshape(2, 3),
        "flags": np.array([True, False]),
        "scalar": np.float32(0.25),
        "rng": np.random.default_rng(3).bit_generator.state,
        "shape": (2, 3),
        "count": 7,
    }
    path = save_checkpoint(
        tmp_path / "checkpoint.pt",
        algo="ppo",
        config={"env_id": "CartPole-v1", "seed": 0},
        global_step=60,
        update=1,
        spec=spec,
        actor=agent.actor,
        modules={"agent": agent},
        optimizers={"agent": optimizer},
        envs=envs,
        extra=extra,
    )
    draws_after_save = (random.random(), float(np.random.rand()), torch.rand(3))  # noqa: NPY002
    saved_normalizer = observation_normalizer(envs)
    assert saved_normalizer is not None
    saved_mean = saved_normalizer.rms.mean.copy()
    raw = torch.load(path, weights_only=True)  # the whole file, with torch's safe loader
    assert raw["format"] == CHECKPOINT_FORMAT
    assert sorted(raw) == ["config", "format", "metadata", "rng", "state"]
    checkpoint = load_checkpoint(path)
    assert checkpoint.config == {"env_id": "CartPole-v1", "seed": 0}
    state = checkpoint.state
    assert (state["algo"], state["global_step"], state["update"]) == ("ppo", 60, 1)
    for key in ("obs", "flags"):
        np.testing.assert_array_equal(state["extra"][key], extra[key], strict=True)
    assert state["extra"]["scalar"] == extra["scalar"]
    assert state["extra"]["scalar"].dtype == np.float32
    assert state["extra"]["rng"] == extra["rng"]
    assert state["extra"]["shape"] == (2, 3)
    assert state["extra"]["count"] == 7

    fresh_envs, _, fresh_agent, fresh_optimizer = _small_run(1)
    assert restore_training(
        checkpoint, modules={"agent": fresh_agent}, optimizers={"agent": fresh_optimizer}, envs=fresh_envs
    )
    draws_after_restore = (random.random(), float(np.random.rand()), torch.rand(3))  # noqa: NPY002
    assert draws_after_restore[:2] == draws_after_save[:2]
    assert torch.equal(draws_after_restore[2], draws_after_save[2])
    for a, b in zip(agent.state_dict().values(), fresh_agent.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    moments = [optimizer.state_dict()["state"], fresh_optimizer.state_dict()["state"]]
    for name in ("exp_avg", "exp_avg_sq"):
        assert all(torch.equal(moments[0][i][name], moments[1][i][name]) for i in moments[0])
    for action in ([1, 1], [0, 0], [1, 0]):
        for a, b in zip(envs.step(np.array(action))[:4], fresh_envs.step(np.array(action))[:4], strict=True):
            np.testing.assert_array_equal(a, b)
    deployed = load_policy(path)
    assert deployed.normalizer is not None
    np.testing.assert_array_equal(deployed.normalizer.rms.mean, saved_mean, strict=True)


def test_checkpoints_refuse_what_they_cannot_store(tmp_path: Path) -> None:
    envs, spec, agent, optimizer = _small_run(0)
    with pytest.raises(TypeError, match="cannot hold"):
        save_checkpoint(
            tmp_path / "checkpoint.pt",
            algo="ppo",
            config={},
            global_step=0,
            update=0,
            spec=spec,
            actor=agent.actor,
            modules={"agent": agent},
            optimizers={"agent": optimizer},
            envs=envs,
            extra={"an object": object()},
        )


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_controllers_are_current_weights_only_policy_files(path: Path) -> None:
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == POLICY_FORMAT
    policy = load_policy(path)
    assert policy.spec.obs_dim == 29
    assert policy.act(np.zeros(29)).shape == (4,)
    assert "command" in policy.metadata
    assert "config" not in policy.metadata  # /3: the training configuration is the envelope's own entry
    assert policy.config["env_id"] == policy.metadata["env_id"] == "quadsim.tracking_env:QuadrotorTracking-v0"


def test_loading_a_shipped_controller_imports_no_environment_it_names() -> None:
    code = (
        "import sys; from policyopt.checkpoint import load_policy; "
        f"load_policy({str(SHIPPED[0])!r}).act([0.0] * 29); "
        "assert 'quadsim.tracking_env' not in sys.modules, 'loading imported the env module the file names'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_checkpoint_and_sac_import_without_a_cycle() -> None:
    code = (
        "import sys; import policyopt.checkpoint; "
        "assert 'policyopt.sac' not in sys.modules, 'checkpoint imports the SAC trainer'; "
        "import policyopt.sac"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]

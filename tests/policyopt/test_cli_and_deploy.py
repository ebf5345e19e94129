"""`--smoke` runs of every command finish; a trained policy deploys with training's normalisation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from policyopt.checkpoint import PolicyInputError, load_checkpoint, load_policy
from policyopt.cli import main
from policyopt.envs import ObservationNormalizer


@pytest.mark.parametrize(
    ("command", "env_id"), [("ppo", "CartPole-v1"), ("props", "Pendulum-v1"), ("mdpo", "Pendulum-v1")]
)
def test_smoke_run_of_each_command(
    tmp_path: Path, command: str, env_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / command
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--env-id", env_id, "--smoke", "--run-dir", str(run_dir), "--no-progress", "--no-tensorboard"])
    assert exit_info.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["global_step"] == 512
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["algo"] == command
    assert state["global_step"] == 512

    out = tmp_path / "policy.pt"
    with pytest.raises(SystemExit):
        main(["export", "--checkpoint", str(run_dir / "checkpoint.pt"), "--out", str(out), "--command", "test"])
    policy = load_policy(out)
    assert policy.metadata["command"] == "test"
    obs_dim = policy.spec.obs_dim
    action = policy.act(np.zeros(obs_dim))
    if policy.spec.discrete:
        assert action.shape == ()
        assert 0 <= int(action) < policy.spec.action_dim
    else:
        assert action.shape == (policy.spec.action_dim,)
        assert policy.spec.action_low == (-2.0,)  # Pendulum's own bounds (not ClipAction's unbounded space)
        assert np.all(action >= np.array(policy.spec.action_low))
        assert np.all(action <= np.array(policy.spec.action_high))
    # the deployed policy normalises exactly as training did
    assert policy.normalizer is not None
    raw = np.linspace(-1.0, 1.0, obs_dim)
    expected = ObservationNormalizer.from_state_dict(state["policy"]["obs_normalizer"])(raw)
    np.testing.assert_array_equal(policy.normalizer(raw), expected)
    with pytest.raises(PolicyInputError):
        policy.act(np.full(obs_dim, np.nan))
    with pytest.raises(PolicyInputError):
        policy.act(np.zeros(obs_dim + 1))


@pytest.mark.parametrize("command", ["sac", "mdpo-offpolicy"])
def test_off_policy_checkpoints_deploy_their_squashed_mean_action(tmp_path: Path, command: str) -> None:
    import torch

    from policyopt.sac import SquashedGaussianActor

    run_dir = tmp_path / command
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--env-id", "Pendulum-v1", "--smoke", "--run-dir", str(run_dir), "--no-progress"])
    assert exit_info.value.code == 0
    policy = load_policy(run_dir / "checkpoint.pt")
    assert policy.spec.actor_kind == "squashed_gaussian"
    state = load_checkpoint(run_dir / "checkpoint.pt")
    spec = policy.spec
    actor = SquashedGaussianActor(
        spec.obs_dim, spec.action_dim, spec.hidden_sizes, np.array(spec.action_low), np.array(spec.action_high)
    )
    actor.load_state_dict(state["policy"]["actor"])
    obs = np.array([0.3, -0.2, 0.5])
    with torch.no_grad():
        expected = actor.deterministic(torch.as_tensor(obs[None, :], dtype=torch.float32)).numpy()[0]
    np.testing.assert_allclose(policy.act(obs), expected, rtol=1e-6)
    assert -2.0 <= float(policy.act(obs)[0]) <= 2.0


SHIPPED = sorted((Path(__file__).resolve().parents[2] / "learning/policyopt/checkpoints").glob("*_tracking.pt"))


def test_the_shipped_controllers_clip_to_the_tracking_envs_action_bounds() -> None:
    assert [path.name for path in SHIPPED] == ["mdpo_tracking.pt", "props_tracking.pt"]
    for path in SHIPPED:
        policy = load_policy(path)
        assert policy.spec.action_low == (-1.0,) * 4
        assert policy.spec.action_high == (1.0,) * 4
        assert np.all(np.abs(policy.act(np.full(policy.spec.obs_dim, 50.0))) <= 1.0)


def test_a_policy_file_re_exported_with_the_envs_bounds_keeps_its_network_and_metadata(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit):
        main(["mdpo", "--env-id", "Pendulum-v1", "--smoke", "--run-dir", str(run_dir), "--no-progress"])
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    with pytest.raises(SystemExit):
        main(["export", "--checkpoint", str(run_dir / "checkpoint.pt"), "--out", str(first), "--command", "train"])
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--checkpoint", str(first), "--out", str(second), "--bounds-from-env"])
    assert exit_info.value.code == 0
    before, after = load_policy(first), load_policy(second)
    assert after.metadata["command"] == "train"
    assert after.metadata["action_bounds_from"] == "Pendulum-v1"
    assert after.spec.action_high == (2.0,)
    obs = np.array([0.1, 0.9, -0.4])
    np.testing.assert_array_equal(before.act(obs), after.act(obs))

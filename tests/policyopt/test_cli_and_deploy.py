"""`--smoke` runs of every command finish; a trained policy deploys with the training run's normalisation."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest

from policyopt.checkpoint import (
    POLICY_FORMAT,
    PolicyInputError,
    export_policy,
    load_checkpoint,
    load_policy,
    save_policy_file,
)
from policyopt.cli import main
from policyopt.envs import ObservationNormalizer, observation_normalizer
from policyopt.onpolicy import OnPolicyTrainer
from runkit.checkpoint import load_envelope


def _keep_trainers(monkeypatch: pytest.MonkeyPatch) -> list[OnPolicyTrainer]:
    """The trainers the command runs, kept for the test (their environments hold the live statistics)."""
    trainers: list[OnPolicyTrainer] = []
    train = OnPolicyTrainer.train

    def train_and_keep(self: OnPolicyTrainer) -> dict[str, Any]:
        trainers.append(self)
        return train(self)

    monkeypatch.setattr(OnPolicyTrainer, "train", train_and_keep)
    return trainers


@pytest.mark.parametrize(
    ("command", "env_id"), [("ppo", "CartPole-v1"), ("props", "Pendulum-v1"), ("mdpo", "Pendulum-v1")]
)
def test_smoke_run_of_each_command_deploys_with_the_training_runs_normaliser(
    tmp_path: Path, command: str, env_id: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    trainers = _keep_trainers(monkeypatch)
    run_dir = tmp_path / command
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--env-id", env_id, "--smoke", "--run-dir", str(run_dir), "--no-progress", "--no-tensorboard"])
    assert exit_info.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["global_step"] == 512
    checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    assert checkpoint.state["algo"] == command
    assert checkpoint.state["global_step"] == 512
    assert checkpoint.config["env_id"] == env_id

    out = tmp_path / "policy.pt"
    with pytest.raises(SystemExit):
        main(["export", "--checkpoint", str(run_dir / "checkpoint.pt"), "--out", str(out), "--command", "test"])
    policy = load_policy(out)
    assert policy.metadata["command"] == "test"
    assert policy.metadata["algo"] == command
    assert policy.config["env_id"] == env_id
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

    # The deployed policy normalises exactly as the training run's environments did when it ended.
    (trainer,) = trainers
    live = observation_normalizer(trainer.envs)
    assert live is not None
    assert live.rms.count > 100  # statistics of the whole run: a stale or fresh normaliser cannot match them
    assert policy.normalizer is not None
    np.testing.assert_array_equal(policy.normalizer.rms.mean, live.rms.mean, strict=True)
    np.testing.assert_array_equal(policy.normalizer.rms.var, live.rms.var, strict=True)
    assert policy.normalizer.rms.count == live.rms.count
    raw = np.random.default_rng(0).normal(scale=2.0, size=(16, obs_dim))
    np.testing.assert_array_equal(policy.normalizer(raw), live(raw))
    fresh = ObservationNormalizer(live.rms.mean.shape)
    assert not np.array_equal(policy.normalizer(raw), fresh(raw))  # the comparison can tell them apart
    with pytest.raises(PolicyInputError):
        policy.act(np.full(obs_dim, np.nan))
    with pytest.raises(PolicyInputError):
        policy.act(np.zeros(obs_dim + 1))


def test_the_runs_evaluation_is_the_exported_policys_return_on_fresh_episodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The evaluation figure the benchmark reports is what a user who deploys the checkpoint gets."""
    from policyopt.evaluation import EVAL_SEED_OFFSET, evaluate_policy
    from runkit.metrics import read_scalars

    run_dir = tmp_path / "props"
    argv = ["props", "--env-id", "Pendulum-v1", "--smoke", "--run-dir", str(run_dir), "--no-progress"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--eval-episodes", "2", "--eval-every-steps", "256", "--seed", "3"])
    assert exit_info.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    evaluations = read_scalars(run_dir)["rollout/eval_mean_return"]
    assert [step for step, _ in evaluations] == [256, 512]  # every 256 steps, the last one at the run's end
    assert summary["eval_mean_return"] == pytest.approx(evaluations[-1][1])
    assert len(summary["eval_returns"]) == 2

    deployed = load_policy(run_dir / "checkpoint.pt")
    again = evaluate_policy(deployed.act, "Pendulum-v1", 2, seed=3 + EVAL_SEED_OFFSET)
    assert again == pytest.approx(summary["eval_returns"], rel=1e-9)
    # Pendulum's returns depend on the initial state: other seeds give other returns (the check can fail).
    assert evaluate_policy(deployed.act, "Pendulum-v1", 2, seed=3) != pytest.approx(again, rel=1e-9)


def test_evaluating_during_a_run_does_not_change_its_training(tmp_path: Path) -> None:
    from runkit.metrics import read_scalars

    training = {}
    for every in ("0", "128"):
        run_dir = tmp_path / f"every{every}"
        argv = ["props", "--env-id", "Hopper-v5", "--smoke", "--run-dir", str(run_dir), "--no-progress"]
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--eval-episodes", "2", "--eval-every-steps", every])
        assert exit_info.value.code == 0
        scalars = read_scalars(run_dir)
        training[every] = {k: v for k, v in scalars.items() if k.startswith(("losses/", "charts/episodic"))}
        assert len(scalars["rollout/eval_mean_return"]) == (1 if every == "0" else 4)
    assert training["0"] == training["128"]


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
    state = load_checkpoint(run_dir / "checkpoint.pt").state
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


def test_a_policy_file_re_exported_with_named_bounds_keeps_its_network_and_metadata(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit):
        main(["mdpo", "--env-id", "Pendulum-v1", "--smoke", "--run-dir", str(run_dir), "--no-progress"])
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    with pytest.raises(SystemExit):
        main(["export", "--checkpoint", str(run_dir / "checkpoint.pt"), "--out", str(first), "--command", "train"])
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "export",
                "--checkpoint",
                str(first),
                "--out",
                str(second),
                "--action-bounds-from",
                "MountainCarContinuous-v0",
            ]
        )
    assert exit_info.value.code == 0
    before, after = load_policy(first), load_policy(second)
    assert before.spec.action_high == (2.0,)  # Pendulum's, stored at training
    assert after.metadata["command"] == "train"
    assert after.metadata["action_bounds_from"] == "MountainCarContinuous-v0"
    assert after.spec.action_high == (1.0,)  # the environment the caller named
    assert after.config == before.config
    obs = np.array([0.1, 0.9, -0.4])
    np.testing.assert_array_equal(np.clip(before.act(obs), -1.0, 1.0), after.act(obs))


def test_exporting_never_builds_or_imports_what_a_file_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy file whose config and metadata name a module-qualified env id is exported and loaded as it is."""
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit):
        main(["ppo", "--env-id", "CartPole-v1", "--smoke", "--run-dir", str(run_dir), "--no-progress"])
    planted = tmp_path / "planted.pt"
    export_policy(run_dir / "checkpoint.pt", planted)
    envelope = load_envelope(planted, (POLICY_FORMAT,), "policy")
    evil = "no_such_module_planted:Evil-v0"
    metadata = {**envelope.metadata, "env_id": evil, "action_bounds_from": evil}
    save_policy_file(planted, envelope.state["policy"], metadata, {**envelope.config, "env_id": evil})

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an environment was built while loading or exporting a file")

    monkeypatch.setattr(gymnasium, "make", refuse)
    export_policy(planted, tmp_path / "again.pt")
    again = load_policy(tmp_path / "again.pt")
    assert again.metadata["env_id"] == evil
    assert again.config["env_id"] == evil
    assert "no_such_module_planted" not in sys.modules

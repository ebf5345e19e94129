"""PPO with partial updates: GAE, the schedule, updates within a rollout, resume equals an uninterrupted run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from relicrl.configs import RelicConfig
from relicrl.trainer import Trainer, gae, learning_rate, ppo_update
from runkit.config import ConfigValueError, RunDirectoryError
from runkit.metrics import read_scalars
from runkit.testing import assert_resume_matches, assert_same_seed_same_result

SMALL: dict[str, Any] = {
    "env": "cuebandit",
    "num_envs": 2,
    "rollout_steps": 16,
    "updates_per_rollout": 4,
    "num_minibatches": 2,
    "grad_accum_minibatches": 1,
    "ppo_epochs": 1,
    "total_steps": 64,
    "warmup_steps": 8,
    "progress": False,
    "tensorboard": False,
}


def _config(run_dir: Path, **changes: Any) -> RelicConfig:
    return RelicConfig(run_dir=run_dir, **{**SMALL, **changes})


def test_gae_matches_the_closed_form_and_cuts_at_episode_ends() -> None:
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 0.2, 0.1, 3.0]])
    over = torch.tensor([[False, True, False]])
    gamma, lam = 0.9, 0.8
    advantages, returns = gae(rewards, values, over, gamma, lam)
    d2 = 2.0 + gamma * 3.0 - 0.1
    d1 = 0.0 - 0.2  # the episode ended at step 1: no bootstrap from step 2
    d0 = 1.0 + gamma * 0.2 - 0.5
    expected = torch.tensor([[d0 + gamma * lam * d1, d1, d2]])
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, expected + values[:, :3])


def test_learning_rate_warms_up_from_a_thousandth_then_decays_to_the_floor() -> None:
    config = RelicConfig(total_steps=1000, warmup_steps=100, learning_rate=2e-4, min_learning_rate=1e-5)
    assert learning_rate(config, 0) == pytest.approx(2e-7)
    assert learning_rate(config, 100) == pytest.approx(2e-4)
    assert learning_rate(config, 1000) == pytest.approx(1e-5)
    assert learning_rate(config, 550) < learning_rate(config, 300)


def test_a_partial_update_changes_the_policy_within_the_rollout_and_the_context_follows(tmp_path: Path) -> None:
    """Updates happen mid-trial (not only at the end), and acting afterwards uses the rebuilt context."""
    trainer = Trainer(_config(tmp_path / "run", total_steps=32))
    snapshots: list[list[torch.Tensor]] = []
    losses_at: list[tuple[int, int]] = []
    real_update = ppo_update

    def recording_update(policy: Any, optimizer: Any, rollout: Any, steps: int, loss_from: int, *rest: Any) -> Any:
        losses_at.append((loss_from, steps))
        result = real_update(policy, optimizer, rollout, steps, loss_from, *rest)
        snapshots.append([p.detach().clone() for p in policy.parameters()])
        return result

    import relicrl.trainer as module

    original = module.ppo_update
    module.ppo_update = recording_update
    try:
        trainer.run()
    finally:
        module.ppo_update = original
    # rollout of 16 steps, 4 updates: losses on the new steps only, the last one on the whole trial
    assert losses_at[:4] == [(0, 4), (4, 8), (8, 12), (0, 16)]
    first, second = snapshots[0], snapshots[1]
    assert any(not torch.equal(a, b) for a, b in zip(first, second, strict=True)), "a partial update changed nothing"


def test_without_partial_updates_there_is_one_full_update_per_rollout(tmp_path: Path) -> None:
    trainer = Trainer(_config(tmp_path / "run", updates_per_rollout=1, total_steps=32))
    calls: list[tuple[int, int]] = []
    import relicrl.trainer as module

    original = module.ppo_update

    def recording(policy: Any, optimizer: Any, rollout: Any, steps: int, loss_from: int, *rest: Any) -> Any:
        calls.append((loss_from, steps))
        return original(policy, optimizer, rollout, steps, loss_from, *rest)

    module.ppo_update = recording
    try:
        trainer.run()
    finally:
        module.ppo_update = original
    assert calls == [(0, 16)]


def _final(run_dir: Path) -> dict[str, Any]:
    trainer = Trainer(_config(run_dir, resume=True))
    scalars = {k: v for k, v in read_scalars(run_dir).items() if k != "charts/SPS"}
    return {"params": [p.detach() for p in trainer.policy.parameters()], "scalars": scalars}


def test_same_seed_same_run(tmp_path: Path) -> None:
    counter = iter(range(100))

    def run(seed: int) -> Any:
        run_dir = tmp_path / f"run{next(counter)}"
        Trainer(_config(run_dir, seed=seed)).run()
        return _final(run_dir)["params"]

    assert_same_seed_same_result(run, seed=0, other_seed=1)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole_dir, split_dir = tmp_path / "whole", tmp_path / "split"

    def uninterrupted() -> Any:
        Trainer(_config(whole_dir)).run()
        return _final(whole_dir)

    def interrupted_then_resumed() -> Any:
        save = Trainer.save

        def save_then_interrupt(self: Trainer) -> None:
            save(self)
            raise KeyboardInterrupt  # Ctrl-C right after the first rollout's checkpoint

        with monkeypatch.context() as patch:
            patch.setattr(Trainer, "save", save_then_interrupt)
            with pytest.raises(KeyboardInterrupt):
                Trainer(_config(split_dir)).run()
        Trainer(_config(split_dir, resume=True)).run()
        return _final(split_dir)

    assert_resume_matches(uninterrupted, interrupted_then_resumed)


def test_run_folder_rules_and_bad_values_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match="nothing to resume"):
        Trainer(_config(tmp_path / "empty", resume=True))
    Trainer(_config(tmp_path / "used", total_steps=32)).run()
    with pytest.raises(RunDirectoryError, match="earlier run"):
        Trainer(_config(tmp_path / "used"))
    with pytest.raises(ConfigValueError, match="updates_per_rollout"):
        _config(tmp_path / "x", rollout_steps=16, updates_per_rollout=5)
    with pytest.raises(ConfigValueError, match="num_minibatches"):
        _config(tmp_path / "x", num_envs=3, num_minibatches=2)

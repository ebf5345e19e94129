"""PPO's clipped surrogate, MDPO's loss, its KL-weight schedule and its update, against hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from policyopt.configs import MDPOConfig, PPOConfig
from policyopt.mdpo import MDPOTrainer, mdpo_loss
from policyopt.onpolicy import OnPolicyTrainer
from policyopt.ppo import PPOTrainer, clipped_surrogate_loss

QUIET = {"tensorboard": False, "progress": False, "checkpoint_every_steps": 0}


def test_clipped_surrogate_hand_computed() -> None:
    new_logprob = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.7])).requires_grad_(True)
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss, clipfrac = clipped_surrogate_loss(new_logprob, torch.zeros(4), advantages, 0.2)
    # max(-A r, -A clip(r, 0.8, 1.2)): -1.2, -0.5, 1.1, 0.8
    assert loss.item() == pytest.approx(0.05)
    assert clipfrac.item() == pytest.approx(0.75)
    loss.backward()
    assert new_logprob.grad is not None
    # clipped samples (0 and 3) get no gradient; the others -A r / n
    assert new_logprob.grad.tolist() == pytest.approx([0.0, -0.125, 0.275, 0.0])


def test_mdpo_loss_hand_computed() -> None:
    new_logprob = torch.log(torch.tensor([2.0, 0.5]))
    loss = mdpo_loss(new_logprob, torch.zeros(2), torch.tensor([1.0, -2.0]), torch.tensor([0.1, 0.3]), 2.0)
    # -(mean(2 * 1, 0.5 * -2)) + 2 * mean(0.1, 0.3); never clipped, however far the ratio
    assert loss.item() == pytest.approx(-0.1)
    far = mdpo_loss(torch.tensor([math.log(10.0)]), torch.zeros(1), torch.ones(1), torch.zeros(1), 1.0)
    assert far.item() == pytest.approx(-10.0)


def test_mdpo_kl_weight_hand_computed() -> None:
    config = MDPOConfig(num_steps=100, total_timesteps=100_000, kl_anneal_timesteps=1000)
    assert config.kl_weight(1) == pytest.approx(1.0)
    assert config.kl_weight(6) == pytest.approx(2.0)  # t = 1 - 500 / 1000
    assert config.kl_weight(11) == pytest.approx(1.0 / config.min_step_size)
    assert MDPOConfig(kl_step_schedule="constant", kl_coef_constant=0.7).kl_weight(300) == pytest.approx(0.7)


def test_mdpo_kl_weight_does_not_depend_on_the_run_length() -> None:
    short, long = MDPOConfig(total_timesteps=200_000), MDPOConfig(total_timesteps=10_000_000)
    updates_in_1m = 1_000_000 // short.batch_size
    for update in range(1, updates_in_1m + 1):
        assert short.kl_weight(update) == long.kl_weight(update)
    # the authors' learn(10e6): 1/t_k stays at or below 1.11 over the first 1M steps
    assert 1.0 <= long.kl_weight(updates_in_1m) <= 1.111
    assert long.kl_weight(updates_in_1m) == pytest.approx(1.0 / (1.0 - (updates_in_1m - 1) * 2048 / 1e7))


def _trainer(cls: type[OnPolicyTrainer], config: Any) -> Any:
    trainer = cls(config)
    trainer.collect(trainer.next_rows())
    return trainer


def _count_steps(trainer: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, bool]]:
    """Record, for every optimiser step, whether the actor and the critic had gradients."""
    steps: list[tuple[bool, bool]] = []
    step = trainer.optimizer.step

    def counting_step(*args: Any, **kwargs: Any) -> Any:
        actor = any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in trainer.agent.actor.parameters())
        critic = any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in trainer.agent.critic.parameters())
        steps.append((actor, critic))
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "step", counting_step)
    return steps


def test_mdpo_takes_m_full_batch_policy_steps_then_critic_minibatch_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = MDPOConfig(
        env_id="Pendulum-v1", num_steps=64, total_timesteps=64, sgd_steps=3, update_epochs=2, num_minibatches=4,
        run_dir=tmp_path, **QUIET,  # type: ignore[arg-type]
    )  # fmt: skip
    trainer = _trainer(MDPOTrainer, config)
    assert trainer.learning_rate() == config.learning_rate == 3e-4  # constant: the authors' Adam step
    trainer.update = 50
    assert trainer.learning_rate() == 3e-4
    batch = trainer.training_batch()
    sizes: list[int] = []
    policy_loss = trainer.policy_loss

    def recording_policy_loss(dist: Any, mb: Any) -> Any:
        sizes.append(int(mb["obs"].shape[0]))
        return policy_loss(dist, mb)

    monkeypatch.setattr(trainer, "policy_loss", recording_policy_loss)
    steps = _count_steps(trainer, monkeypatch)
    figures = trainer.update_networks(batch)
    assert sizes == [batch["obs"].shape[0]] * 3  # m = 3 steps, each on the whole batch
    assert steps == [(True, False)] * 3 + [(False, True)] * 8  # then 2 epochs x 4 minibatches of the critic
    assert figures["losses/kl_weight"] == pytest.approx(config.kl_weight(50))


@pytest.mark.parametrize(("per_minibatch", "expected_steps"), [(True, 1), (False, 4)])
def test_ppo_target_kl_stops_per_minibatch_or_per_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_minibatch: bool, expected_steps: int
) -> None:
    config = PPOConfig(
        env_id="Pendulum-v1", num_steps=64, total_timesteps=64, num_minibatches=4, update_epochs=3,
        target_kl=1e-12, target_kl_per_minibatch=per_minibatch, run_dir=tmp_path, **QUIET,  # type: ignore[arg-type]
    )  # fmt: skip
    trainer = _trainer(PPOTrainer, config)
    batch = trainer.training_batch()
    steps = _count_steps(trainer, monkeypatch)
    trainer.update_networks(batch)
    # per minibatch: the first step (KL 0) is taken, the second minibatch's KL is beyond the target;
    # per epoch (CleanRL's): the whole first epoch, then the check
    assert len(steps) == expected_steps


def test_mdpo_regularises_kl_of_the_new_policy_to_the_old(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import policyopt.mdpo as mdpo_module

    config = MDPOConfig(env_id="Pendulum-v1", num_steps=64, total_timesteps=64, sgd_steps=1, run_dir=tmp_path, **QUIET)  # type: ignore[arg-type]
    trainer = _trainer(MDPOTrainer, config)
    calls: list[tuple[Any, Any]] = []
    kl = mdpo_module.kl_divergence

    def recording_kl(p: Any, q: Any) -> torch.Tensor:
        calls.append((p, q))
        return kl(p, q)

    monkeypatch.setattr(mdpo_module, "kl_divergence", recording_kl)
    trainer.update_networks(trainer.training_batch())
    new, old = calls[0]
    assert new.base_dist.loc.requires_grad
    assert not old.base_dist.loc.requires_grad

"""PROPS's behaviour update stays finite and near pi_theta when pi_theta has grown narrow.

Late in a 1M-step Hopper run pi_theta's standard deviation is small and the buffer holds actions from
older, wider policies: their ratios pi_phi / pi_theta overflowed float32, the gradient went NaN, and the
behaviour policy could no longer sample (all three seeds crashed between 450k and 580k steps). An
update that ends beyond `props_max_kl` is undone.
"""

from __future__ import annotations

from pathlib import Path

import torch

from policyopt.configs import PropsConfig
from policyopt.networks import kl_divergence
from policyopt.props import PropsTrainer, props_behaviour_loss

QUIET = {"tensorboard": False, "progress": False, "checkpoint_every_steps": 0}


def test_the_loss_and_its_gradient_stay_finite_for_an_action_pi_theta_calls_impossible() -> None:
    behaviour_logprob = torch.tensor([0.0, -1.0, -2.0], requires_grad=True)
    target_logprob = torch.tensor([-1e4, -1.0, -2.5])  # the first action is ~e^-10000 likely under pi_theta
    loss, _ = props_behaviour_loss(behaviour_logprob, target_logprob, torch.zeros(3), 0.3, 0.1)
    loss.backward()
    assert torch.isfinite(loss)
    assert behaviour_logprob.grad is not None
    assert torch.isfinite(behaviour_logprob.grad).all()


def test_a_behaviour_update_against_a_narrow_target_keeps_phi_finite_and_close(tmp_path: Path) -> None:
    config = PropsConfig(
        env_id="Pendulum-v1", seed=0, num_envs=1, num_steps=64, total_timesteps=64, props_update_every=16,
        run_dir=tmp_path, **QUIET,  # type: ignore[arg-type]
    )  # fmt: skip
    trainer = PropsTrainer(config)
    trainer.collect(trainer.next_rows())  # the buffer's actions come from a wide policy (std 1)
    with torch.no_grad():
        trainer.agent.actor.log_std.fill_(-12.0)  # pi_theta narrows by orders of magnitude
    trainer.reset_behaviour()
    figures = trainer.update_behaviour(config.num_steps)
    assert all(torch.isfinite(p).all() for p in trainer.behaviour.parameters())
    obs = trainer.storage.obs[: config.num_steps].reshape(-1, *trainer.storage.obs.shape[2:])
    assert torch.isfinite(trainer.behaviour.distribution(obs).sample()).all()
    kl = float(kl_divergence(trainer.agent.distribution(obs), trainer.behaviour.distribution(obs)).mean())
    assert figures["losses/kl_target_behaviour"] == kl
    assert kl <= config.props_max_kl  # not KL 10+ with the data far off-policy: the update was undone
    assert figures["charts/behaviour_resets"] == 1.0

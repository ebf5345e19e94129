"""SAC and off-policy MDPO losses and the squashed Gaussian, against hand-computed values and torch's own."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal

from policyopt.mdpo_offpolicy import MDPOOffPolicyConfig, mdpo_actor_loss
from policyopt.sac import (
    SoftQNetwork,
    SquashedGaussianActor,
    critic_loss,
    polyak_update,
    sac_actor_loss,
    soft_td_target,
    temperature_loss,
)


def test_soft_td_target_bootstraps_except_on_termination() -> None:
    rewards = torch.tensor([1.0, -2.0])
    terminated = torch.tensor([0.0, 1.0])
    next_q_min = torch.tensor([10.0, 10.0])
    next_log_prob = torch.tensor([-1.0, -1.0])
    target = soft_td_target(rewards, terminated, next_q_min, next_log_prob, alpha=0.5, gamma=0.9)
    # 1 + 0.9 * (10 + 0.5) = 10.45; a terminal transition keeps its reward only.
    torch.testing.assert_close(target, torch.tensor([10.45, -2.0]))


def test_critic_loss_is_sum_of_mses_and_does_not_train_the_target() -> None:
    q1 = torch.tensor([1.0, 2.0], requires_grad=True)
    q2 = torch.tensor([0.0, 4.0], requires_grad=True)
    target = torch.tensor([1.0, 1.0], requires_grad=True)
    loss = critic_loss(q1, q2, target)
    # q1: (0 + 1) / 2 = 0.5; q2: (1 + 9) / 2 = 5
    assert loss.item() == pytest.approx(5.5)
    loss.backward()
    assert target.grad is None
    torch.testing.assert_close(q1.grad, torch.tensor([0.0, 1.0]))


def test_sac_actor_and_temperature_losses() -> None:
    log_prob = torch.tensor([-1.0, 0.5])
    q_min = torch.tensor([3.0, 1.0])
    # mean(0.2 * -1 - 3, 0.2 * 0.5 - 1) = mean(-3.2, -0.9) = -2.05
    assert sac_actor_loss(log_prob, q_min, 0.2).item() == pytest.approx(-2.05)
    log_alpha = torch.tensor(math.log(0.5), requires_grad=True)
    loss = temperature_loss(log_alpha, log_prob, target_entropy=-1.0)
    # mean(-0.5 * (-1 - 1), -0.5 * (0.5 - 1)) = mean(1, 0.25) = 0.625
    assert loss.item() == pytest.approx(0.625)
    loss.backward()
    # entropy -mean(log pi) = 0.25 is above the target -1: the gradient step lowers alpha (positive gradient).
    assert log_alpha.grad is not None
    assert log_alpha.grad.item() > 0


def test_mdpo_actor_loss_hand_computed_and_reduces_to_sac_without_kl() -> None:
    log_prob = torch.tensor([-1.0, 0.5])
    old_log_prob = torch.tensor([-2.0, 1.0])
    q_min = torch.tensor([3.0, 1.0])
    # (2 + 0.2) * logp - 2 * old - q: (-2.2 + 4 - 3, 1.1 - 2 - 1) = (-1.2, -1.9); mean -1.55
    assert mdpo_actor_loss(log_prob, old_log_prob, q_min, 2.0, 0.2).item() == pytest.approx(-1.55)
    assert mdpo_actor_loss(log_prob, old_log_prob, q_min, 0.0, 0.2).item() == pytest.approx(
        sac_actor_loss(log_prob, q_min, 0.2).item()
    )
    # Identical policies: the KL estimate vanishes and the loss is SAC's whatever the weight.
    assert mdpo_actor_loss(log_prob, log_prob, q_min, 7.0, 0.2).item() == pytest.approx(
        sac_actor_loss(log_prob, q_min, 0.2).item()
    )


def test_mdpo_step_size_schedules() -> None:
    config = MDPOOffPolicyConfig(
        total_timesteps=11_000, learning_starts=1_000, sgd_steps=1_000, kl_step_schedule="anneal"
    )
    assert config.num_mirror_iterations == 10
    assert config.kl_weight(1) == pytest.approx(1.0)
    assert config.kl_weight(6) == pytest.approx(2.0)  # t_6 = 1 - 5/10
    assert config.kl_weight(11) == pytest.approx(1.0 / config.min_step_size)
    constant = MDPOOffPolicyConfig()  # the authors' released setting: 1/t_k = klconst - lambda = 1.0 - 0.2
    assert constant.kl_weight(1) == constant.kl_weight(500) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="kl_step_schedule"):
        MDPOOffPolicyConfig(kl_step_schedule="cosine")


@pytest.mark.parametrize("action_dim", [1, 3])
def test_squashed_gaussian_log_prob_is_the_change_of_variables(action_dim: int) -> None:
    torch.manual_seed(0)
    low = -2.0 * np.ones(action_dim, dtype=np.float32)
    high = np.linspace(1.0, 3.0, action_dim).astype(np.float32)
    actor = SquashedGaussianActor(4, action_dim, (16, 16), low, high)
    obs = torch.randn(64, 4)
    actions, log_prob, pre_tanh = actor.sample(obs)
    mean, log_std = actor(obs)
    # Change of variables written out naively in double precision: log N(u) - sum log(scale * (1 - tanh(u)^2)).
    u = pre_tanh.double()
    naive = Normal(mean.double(), log_std.double().exp()).log_prob(u).sum(-1)
    naive = naive - torch.log(actor.action_scale.double() * (1.0 - torch.tanh(u) ** 2)).sum(-1)
    torch.testing.assert_close(log_prob.double(), naive, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(actor.log_prob_of(obs, pre_tanh), log_prob)
    assert torch.all(actions >= torch.as_tensor(low))
    assert torch.all(actions <= torch.as_tensor(high))
    assert torch.all(log_std >= -5.0)
    assert torch.all(log_std <= 2.0)


def test_polyak_update_moves_targets_by_tau() -> None:
    source, target = SoftQNetwork(2, 1, (4,)), SoftQNetwork(2, 1, (4,))
    before = [p.detach().clone() for p in target.parameters()]
    polyak_update(source, target, tau=0.25)
    for new, old, src in zip(target.parameters(), before, source.parameters(), strict=True):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * src.detach())

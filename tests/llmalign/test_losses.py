"""Each loss of SPPO, P3O and PRIME against values computed by hand on tiny batches."""

from __future__ import annotations

import math

import pytest
import torch

from llmalign.losses import (
    dpo_loss,
    implicit_prm_loss,
    implicit_process_rewards,
    ipo_loss,
    leave_one_out,
    masked_whiten,
    normalise_by_largest_return,
    p3o_loss,
    ppo_clip_token_loss,
    prime_advantages,
    reward_to_go,
    sequence_logprob,
    sppo_loss,
    token_logprobs,
    win_rates,
)


def test_token_logprobs_score_each_next_token() -> None:
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 2] = math.log(3.0)  # position 0 predicts token 1: p(2) = 3 / 6
    ids = torch.tensor([[0, 2, 1]])
    logps = token_logprobs(logits, ids)
    assert logps.shape == (1, 2)
    assert logps[0, 0].item() == pytest.approx(math.log(0.5))
    assert logps[0, 1].item() == pytest.approx(math.log(0.25))
    assert sequence_logprob(logps, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(math.log(0.25))


def test_win_rates_average_the_row_with_a_half_on_the_diagonal() -> None:
    preference = torch.tensor([[[0.9, 0.8, 0.6], [0.2, 0.1, 0.3], [0.4, 0.7, 0.0]]])
    expected = torch.tensor([[(0.5 + 0.8 + 0.6) / 3, (0.2 + 0.5 + 0.3) / 3, (0.4 + 0.7 + 0.5) / 3]])
    torch.testing.assert_close(win_rates(preference), expected)


def test_sppo_regresses_each_log_ratio_onto_its_scaled_win_rate() -> None:
    h_w, h_l = torch.tensor([0.2], requires_grad=True), torch.tensor([-0.1], requires_grad=True)
    loss = sppo_loss(h_w, h_l, torch.tensor([0.7]), torch.tensor([0.4]), beta=0.5)
    # targets (0.7 - 0.5) / 0.5 = 0.4 and (0.4 - 0.5) / 0.5 = -0.2
    assert loss.item() == pytest.approx(0.5 * ((0.2 - 0.4) ** 2 + (-0.1 + 0.2) ** 2))
    loss.sum().backward()
    assert h_w.grad is not None
    assert h_l.grad is not None
    assert h_w.grad.item() == pytest.approx(0.2 - 0.4)  # pushes the chosen log-ratio up, towards 0.4
    assert h_l.grad.item() == pytest.approx(-0.1 + 0.2)  # and the rejected one down, towards -0.2
    # at its targets the loss is zero; a win rate of 1/2 asks for no change at all
    assert (
        sppo_loss(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.5]), torch.tensor([0.5]), 0.1).item() == 0
    )


def test_sppo_with_hard_win_rates_is_half_trls_sppo_hard_loss() -> None:
    h_w, h_l, beta = torch.tensor([0.3]), torch.tensor([-0.4]), 0.25
    trl_sppo_hard = (h_w - 0.5 / beta) ** 2 + (h_l + 0.5 / beta) ** 2  # TRL 1.16's definition
    torch.testing.assert_close(sppo_loss(h_w, h_l, torch.ones(1), torch.zeros(1), beta), 0.5 * trl_sppo_hard)


def test_dpo_and_ipo_match_hand_values() -> None:
    h_w, h_l = torch.tensor([1.0]), torch.tensor([-1.0])
    # DPO: -log sigmoid(0.5 * 2) = log(1 + e^-1)
    assert dpo_loss(h_w, h_l, beta=0.5).item() == pytest.approx(math.log(1 + math.exp(-1.0)))
    # IPO with per-token averages: 1/2 - (-1/4) = 0.75; target 1 / (2 * 0.5) = 1 -> (0.75 - 1)^2
    loss = ipo_loss(h_w, h_l, torch.tensor([2.0]), torch.tensor([4.0]), beta=0.5)
    assert loss.item() == pytest.approx(0.0625)


def _p3o_grads(joint: bool, logp_first: float, reward_first: float, reward_second: float) -> tuple[float, float]:
    first = torch.tensor([logp_first], requires_grad=True)
    second = torch.tensor([0.0], requires_grad=True)
    loss = p3o_loss(
        first, second, torch.zeros(1), torch.zeros(1), torch.tensor([reward_first]), torch.tensor([reward_second]),
        clip_eps=0.2, joint=joint,
    )  # fmt: skip
    loss.sum().backward()
    assert first.grad is not None
    assert second.grad is not None
    return first.grad.item(), second.grad.item()


@pytest.mark.parametrize("joint", [False, True])
def test_p3o_on_policy_is_the_pairwise_policy_gradient_and_ignores_a_reward_shift(joint: bool) -> None:
    # ratios 1: the gradient is -(r1 - r2) / 2 on log pi(y1) and +(r1 - r2) / 2 on log pi(y2)
    assert _p3o_grads(joint, 0.0, 3.0, 1.0) == pytest.approx((-1.0, 1.0))
    assert _p3o_grads(joint, 0.0, 103.0, 101.0) == pytest.approx((-1.0, 1.0))  # shift by 100: the same step
    logp = torch.tensor([0.1, -0.3])
    args = (logp, -logp, torch.zeros(2), torch.zeros(2))
    shifted = p3o_loss(*args, torch.tensor([5.0, 2.0]) + 7.0, torch.tensor([1.0, 4.0]) + 7.0, 0.2, joint)
    torch.testing.assert_close(shifted, p3o_loss(*args, torch.tensor([5.0, 2.0]), torch.tensor([1.0, 4.0]), 0.2, joint))


def test_p3o_joint_clipping_stops_the_pair_and_separate_clipping_each_response() -> None:
    # y1 already 1.65x likelier than when sampled (past 1 + eps), positive advantage
    assert _p3o_grads(True, 0.5, 3.0, 1.0) == pytest.approx((0.0, 0.0))  # the pair's ratio 1.65 is clipped
    grad_first, grad_second = _p3o_grads(False, 0.5, 3.0, 1.0)
    assert grad_first == pytest.approx(0.0)  # y1's own ratio is clipped
    assert grad_second == pytest.approx(1.0)  # y2's is not: it is still pushed down
    # joint, hand value: ratio e^0.1 inside the clip range, A = 1 -> loss = -e^0.1
    loss = p3o_loss(
        torch.tensor([0.1]), torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.tensor([3.0]), torch.tensor([1.0]),
        clip_eps=0.2, joint=True,
    )  # fmt: skip
    assert loss.item() == pytest.approx(-math.exp(0.1))


def test_ppo_clip_token_loss_matches_hand_values() -> None:
    logps = torch.tensor([[math.log(1.5), math.log(0.5), 0.0]])
    advantages = torch.tensor([[1.0, 1.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    # token 1: min(1.5, 1.2) * 1 -> -1.2; token 2: min(0.5, 0.8) * 1 -> -0.5; token 3 masked
    loss = ppo_clip_token_loss(logps, torch.zeros(1, 3), advantages, mask, clip_eps=0.2)
    assert loss.item() == pytest.approx((-1.2 - 0.5) / 2)


def test_the_implicit_prm_is_a_log_ratio_trained_by_cross_entropy_on_the_outcome() -> None:
    prm = torch.tensor([[-1.0, -0.5, -2.0], [-0.2, -0.1, -3.0]])
    ref = torch.tensor([[-2.0, -1.0, -1.0], [-0.2, -0.6, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    q = implicit_process_rewards(prm, ref, mask)
    torch.testing.assert_close(q, torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.5, -2.0]]))
    # sums 1.5 and -1.5; beta 2: logits 3 and -3; outcomes 1 and 1
    loss = implicit_prm_loss(q, mask, torch.tensor([1, 1]), beta=2.0)
    expected = 0.5 * (-math.log(1 / (1 + math.exp(-3.0))) - math.log(1 / (1 + math.exp(3.0))))
    assert loss.item() == pytest.approx(expected)


def test_reward_to_go_and_whitening() -> None:
    torch.testing.assert_close(reward_to_go(torch.tensor([[1.0, 2.0, 3.0]])), torch.tensor([[6.0, 5.0, 3.0]]))
    torch.testing.assert_close(
        reward_to_go(torch.tensor([[1.0, 2.0, 3.0]]), gamma=0.5), torch.tensor([[2.75, 3.5, 3.0]])
    )
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    white = masked_whiten(values, mask)
    kept = white[mask > 0]
    assert kept.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert kept.std().item() == pytest.approx(1.0, abs=1e-4)
    assert white[:, 2].abs().max().item() == 0.0


def test_leave_one_out_subtracts_the_other_samples_mean() -> None:
    outcome = torch.tensor([[1.0], [0.0], [0.0], [1.0], [1.0], [1.0]])
    one = torch.ones(6, 1)
    torch.testing.assert_close(
        leave_one_out(outcome, one, k=3), torch.tensor([[1.0], [-0.5], [-0.5], [0.0], [0.0], [0.0]])
    )
    with pytest.raises(ValueError, match="K >= 2"):
        leave_one_out(outcome, one, k=1)
    with pytest.raises(ValueError, match="groups of K"):
        leave_one_out(outcome, one, k=4)


def test_prime_advantages_from_the_outcome_alone_are_rloo_spread_over_the_response() -> None:
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    outcome = torch.tensor([1.0, 0.0, 1.0, 1.0])
    advantages = prime_advantages(outcome, torch.zeros(4, 3), mask, k=2)
    # RLOO with K = 2: +1, -1 for the first prompt, 0, 0 for the second; spread over each response's tokens
    raw = torch.tensor([[1.0, 1.0, 0.0], [-1.0, -1.0, -1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(advantages, masked_whiten(raw, mask))
    # a correct answer's tokens gain, a wrong one's lose; a prompt all right (or all wrong) teaches nothing
    assert advantages[0, 0] > advantages[2, 0] > advantages[1, 0]
    torch.testing.assert_close(prime_advantages(outcome + 3.0, torch.zeros(4, 3), mask, k=2), advantages)


def test_prime_process_rewards_credit_the_tokens_before_them() -> None:
    mask = torch.ones(2, 3)
    q = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 0.0]])  # sample 0's last token judged good by the PRM
    normalised = normalise_by_largest_return(q, mask)
    assert normalised.abs().max().item() == pytest.approx(1.0, abs=1e-5)
    advantages = prime_advantages(torch.zeros(2), q, mask, k=2)
    # reward-to-go: every token of sample 0 leads to the good step, so each is credited; sample 1 the mirror
    assert torch.all(advantages[0] > 0)
    assert torch.all(advantages[1] < 0)


@pytest.mark.parametrize("joint", [True, False])
def test_a_far_off_policy_pair_gives_a_finite_loss_and_gradient(joint: bool) -> None:
    """A sequence ratio of e^300 (one step of a 135M model can do that) must not turn the weights into NaN."""
    logp = torch.tensor([0.0, -300.0], requires_grad=True)
    old = torch.tensor([-300.0, 0.0])
    loss = p3o_loss(logp[:1], logp[1:], old[:1], old[1:], torch.tensor([0.0]), torch.tensor([1.0]), 0.2, joint)
    loss.sum().backward()
    assert torch.isfinite(loss).all()
    assert logp.grad is not None
    assert torch.isfinite(logp.grad).all()
    tokens = torch.tensor([[400.0, 0.0]], requires_grad=True)
    token_loss = ppo_clip_token_loss(tokens, torch.zeros(1, 2), -torch.ones(1, 2), torch.ones(1, 2), 0.2)
    token_loss.backward()
    assert torch.isfinite(token_loss)
    assert tokens.grad is not None
    assert torch.isfinite(tokens.grad).all()

"""The losses of SPPO, P3O and PRIME, and the pieces they share, as pure functions of tensors.

Shapes: B sequences (responses), T token positions, K samples per prompt (B = prompts x K, a prompt's K
samples adjacent). `mask` is 1 on response tokens (the response and its end token) and 0 on the prompt and
padding. Sequence log-probabilities are sums over response tokens, as the authors' code computes them.

Sources (read, not copied): SPPO's `sppo/trainer.py` and `scripts/compute_prob.py` (uclaml/SPPO); PRIME's
`core_algos.py` and `dp_prime.py` (PRIME-RL/PRIME, under training/verl); P3O from its paper's description
(Wu et al., 2023; no code was published), see the package README.
"""

from __future__ import annotations

import torch
from torch.nn import functional

# ------------------------------------------------------------------------------------------------ shared


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log pi(token_t | tokens_<t) of each token after the first.

    logits: `B x T x V` (position t predicts token t + 1); input_ids: `B x T`. Returns `B x T-1`, aligned
    with input_ids[:, 1:] (so a response mask is sliced the same way: mask[:, 1:]).
    """
    logps = functional.log_softmax(logits[:, :-1].float(), dim=-1)
    return torch.gather(logps, 2, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def sequence_logprob(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of the masked token log-probs: `B x T` -> `B`."""
    return (token_logps * mask).sum(dim=-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over the positions where `mask` is 1 (all of them together)."""
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(values - mean) / std over the masked positions (unbiased variance); zero outside the mask."""
    mean = masked_mean(values, mask)
    count = mask.sum()
    variance = (((values - mean) ** 2) * mask).sum() / (count - 1.0).clamp_min(1.0)
    return (values - mean) * torch.rsqrt(variance + eps) * mask


def reward_to_go(rewards: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """G_t = r_t + gamma * G_{t+1} along the last axis: `B x T` -> `B x T`."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns


MAX_LOG_RATIO = 20.0
"""Log importance ratios are clamped to +-this before exp: a sequence ratio of a 135M model after one step can
overflow to inf (seen with SmolLM2: inf x A, then NaN weights). A clamped ratio has no gradient, so a sample that
far off-policy stops contributing; ratios inside the bound are untouched."""


def _ratio(log_ratio: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.clamp(log_ratio, -MAX_LOG_RATIO, MAX_LOG_RATIO))


def ppo_clip_token_loss(
    logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip_eps: float
) -> torch.Tensor:
    """PPO's clipped surrogate per token, averaged over every masked token of the batch (PRIME's policy loss).

    All `B x T`. Returns a scalar to minimise: mean of max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps)).
    """
    ratio = _ratio(logps - old_logps)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return masked_mean(torch.maximum(unclipped, clipped), mask)


# -------------------------------------------------------------------------------------------------- SPPO


def win_rates(preference: torch.Tensor) -> torch.Tensor:
    """Each response's estimated P(y_k beats pi_t | x): the mean of its row of the K x K preference matrix.

    preference: `P x K x K`, preference[p, i, j] = P(y_i beats y_j | x_p). The diagonal is set to 1/2 and
    averaged in, as the authors' `compute_prob.py` does (K samples of pi_t, the response itself among them).
    Returns `P x K`.
    """
    k = preference.shape[-1]
    eye = torch.eye(k, dtype=torch.bool, device=preference.device)
    return torch.where(eye, torch.full_like(preference, 0.5), preference).mean(dim=-1)


def sppo_loss(
    log_ratio_chosen: torch.Tensor,
    log_ratio_rejected: torch.Tensor,
    win_rate_chosen: torch.Tensor,
    win_rate_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """SPPO's square loss per pair: 1/2 [(h_w - (P_w - 1/2) / beta)^2 + (h_l - (P_l - 1/2) / beta)^2].

    log_ratio_*: `B`, h = log pi_theta(y | x) - log pi_t(y | x) (pi_t: the previous iterate, the reference);
    win_rate_*: `B`, P(y beats pi_t | x). The authors' eta is 1 / beta. Returns `B` (mean it over the batch).
    """
    target_chosen = (win_rate_chosen - 0.5) / beta
    target_rejected = (win_rate_rejected - 0.5) / beta
    return 0.5 * ((log_ratio_chosen - target_chosen) ** 2 + (log_ratio_rejected - target_rejected) ** 2)


def dpo_loss(log_ratio_chosen: torch.Tensor, log_ratio_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's loss per pair: -log sigmoid(beta (h_w - h_l)) (TRL's `sigmoid` loss type). `B` -> `B`."""
    return -functional.logsigmoid(beta * (log_ratio_chosen - log_ratio_rejected))


def ipo_loss(
    log_ratio_chosen: torch.Tensor,
    log_ratio_rejected: torch.Tensor,
    tokens_chosen: torch.Tensor,
    tokens_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """IPO's loss per pair: (h_w / n_w - h_l / n_l - 1 / (2 beta))^2, the log-ratios averaged per token as TRL does.

    tokens_*: `B`, the number of response tokens each log-ratio sums over. Returns `B`.
    """
    margin = log_ratio_chosen / tokens_chosen.clamp_min(1.0) - log_ratio_rejected / tokens_rejected.clamp_min(1.0)
    return (margin - 1.0 / (2.0 * beta)) ** 2


# --------------------------------------------------------------------------------------------------- P3O


def kl_penalised_reward(
    reward: torch.Tensor, logp_policy: torch.Tensor, logp_reference: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """r(x, y) - kl_coef * (log pi(y | x) - log pi_ref(y | x)), per sequence (`B`)."""
    return reward - kl_coef * (logp_policy - logp_reference)


def p3o_loss(
    logp_first: torch.Tensor,
    logp_second: torch.Tensor,
    old_logp_first: torch.Tensor,
    old_logp_second: torch.Tensor,
    reward_first: torch.Tensor,
    reward_second: torch.Tensor,
    clip_eps: float,
    joint: bool,
) -> torch.Tensor:
    """P3O's clipped pairwise surrogate per pair of responses to the same prompt (`B` pairs -> `B`, to minimise).

    The pair's advantage is A = (r_1 - r_2) / 2 (a per-prompt shift of the reward cancels). Separate clipping
    (V1): PPO's clip on each response's sequence ratio rho_i = pi / pi_old, with +A for the first and -A for
    the second. Joint clipping (V2): PPO's clip on the pair's ratio rho_1 / rho_2 with advantage A.
    """
    advantage = 0.5 * (reward_first - reward_second)
    log_rho_first = logp_first - old_logp_first
    log_rho_second = logp_second - old_logp_second
    if joint:
        ratio = _ratio(log_rho_first - log_rho_second)
        clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
        return -torch.minimum(ratio * advantage, clipped * advantage)

    def clipped_surrogate(log_rho: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        rho = _ratio(log_rho)
        return torch.minimum(rho * adv, torch.clamp(rho, 1.0 - clip_eps, 1.0 + clip_eps) * adv)

    return -(clipped_surrogate(log_rho_first, advantage) + clipped_surrogate(log_rho_second, -advantage))


# ------------------------------------------------------------------------------------------------- PRIME


def implicit_process_rewards(
    prm_token_logps: torch.Tensor, ref_token_logps: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The implicit PRM's token rewards q_t = log pi_prm(y_t | ...) - log pi_ref(y_t | ...) (`B x T`, 0 off the mask).

    The authors' code returns q without beta (beta enters the PRM's loss only).
    """
    return (prm_token_logps - ref_token_logps) * mask


def implicit_prm_loss(
    process_rewards: torch.Tensor, mask: torch.Tensor, outcome: torch.Tensor, beta: float
) -> torch.Tensor:
    """The PRM's cross-entropy on the outcome label: BCE(sigmoid(beta * sum_t q_t), correct), mean over `B`.

    process_rewards: `B x T` (q from `implicit_process_rewards`, differentiable through pi_prm); outcome: `B`
    in {0, 1} (the verifier's result).
    """
    logits = beta * (process_rewards * mask).sum(dim=-1)
    return functional.binary_cross_entropy_with_logits(logits, outcome.float())


def normalise_by_largest_return(process_rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token rewards divided by the batch's largest |reward-to-go| (PRIME's `batch_norm`): that return becomes 1."""
    largest = reward_to_go(process_rewards * mask).abs().max()
    return process_rewards * mask / (largest + 1e-6)


def leave_one_out(rewards: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """PRIME's RLOO baseline on token rewards: r_{i,t} K/(K-1) - (sum_j m_j)/(K-1) on masked tokens.

    rewards, mask: `B x T` with B = prompts x K (a prompt's samples adjacent); m_j is sample j's mean over its
    masked tokens. For a reward on one token per sample (the outcome) this is r_i - mean_{j != i} r_j.
    """
    if k < 2:
        raise ValueError(f"a leave-one-out baseline needs K >= 2 samples per prompt, got {k}")
    b, _t = rewards.shape
    if b % k:
        raise ValueError(f"{b} samples do not split into groups of K = {k}")
    per_sample_mean = (rewards * mask).sum(dim=-1) / mask.sum(dim=-1).clamp_min(1.0)
    group_total = per_sample_mean.view(b // k, k).sum(dim=-1).repeat_interleave(k)
    return (rewards * k / (k - 1) - group_total.unsqueeze(-1) / (k - 1)) * mask


def prime_advantages(
    outcome: torch.Tensor, process_rewards: torch.Tensor, mask: torch.Tensor, k: int, gamma: float = 1.0
) -> torch.Tensor:
    """PRIME's token advantages from the verifier's outcome and the implicit PRM's token rewards.

    outcome: `B` (placed on each response's last token); process_rewards: `B x T` (q); mask: `B x T`. The
    process rewards are normalised by the largest |return| in the batch, each source gets its leave-one-out
    baseline, each is turned into a reward-to-go, the two are added 1:1, and the sum is whitened over the
    batch's tokens (the authors' snapshot; its rm_coef and reward_coef are not used on this path). Pass
    process_rewards = 0 for outcome-only RLOO.
    """
    last = _last_token_mask(mask)
    outcome_tokens = outcome.float().unsqueeze(-1) * last
    outcome_returns = reward_to_go(leave_one_out(outcome_tokens, last, k), gamma)
    process = normalise_by_largest_return(process_rewards, mask)
    process_returns = reward_to_go(leave_one_out(process, mask, k), gamma)
    return masked_whiten((outcome_returns + process_returns) * mask, mask)


def _last_token_mask(mask: torch.Tensor) -> torch.Tensor:
    """1 at each row's last masked position (`B x T`)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last_index = torch.where(mask > 0, positions, torch.full_like(positions, -1)).max(dim=-1).values
    return (positions == last_index.unsqueeze(-1)).to(mask.dtype) * (last_index >= 0).unsqueeze(-1).to(mask.dtype)


__all__ = [
    "MAX_LOG_RATIO",
    "dpo_loss",
    "implicit_prm_loss",
    "implicit_process_rewards",
    "ipo_loss",
    "kl_penalised_reward",
    "leave_one_out",
    "masked_mean",
    "masked_whiten",
    "normalise_by_largest_return",
    "p3o_loss",
    "ppo_clip_token_loss",
    "prime_advantages",
    "reward_to_go",
    "sequence_logprob",
    "sppo_loss",
    "token_logprobs",
    "win_rates",
]

"""On-policy MDPO: mirror-descent policy optimisation (Tomar, Shani, Efroni and Ghavamzadeh, ICLR 2022).

    policyopt mdpo --env-id Hopper-v5 --seed 1
    policyopt mdpo --env-id Pendulum-v1 --smoke

Each iteration k approximately solves the mirror-descent step

    theta_{k+1} = argmax_theta E_{s,a ~ pi_k}[r_theta A^{pi_k}(s, a)] - (1 / t_k) E_{s ~ pi_k}[KL(pi_theta || pi_k)(s)],
    r_theta = pi_theta(a|s) / pi_k(a|s),

by `update_epochs` (the paper's m) passes of minibatch SGD, without clipping, starting from
theta_k. The KL is the closed form for the Gaussian (or categorical) policy at the batch's states,
taken against a frozen copy of pi_k. The step size follows the paper's annealing t_k = 1 - k/K (k counted from 0)
(K updates in the run), so the proximity weight 1/t_k grows as training goes on. Everything else
(rollouts, GAE, normalisation, value loss) is the shared on-policy loop, as for PPO; MDPO's own
`clip_coef` (0.2, the authors' `cliprange_vf`) clips only the value loss, never the policy objective.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.distributions import Distribution

from policyopt.configs import MDPOConfig
from policyopt.networks import kl_divergence
from policyopt.onpolicy import Batch, OnPolicyTrainer


def mdpo_loss(
    new_logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    advantages: torch.Tensor,
    kl_to_old: torch.Tensor,
    kl_weight: float,
) -> torch.Tensor:
    """-(E[r A] - kl_weight * E[KL(pi_theta || pi_k)]) on a minibatch; all inputs of shape `n`."""
    ratio = (new_logprob - old_logprob).exp()
    return -(ratio * advantages).mean() + kl_weight * kl_to_old.mean()


class MDPOTrainer(OnPolicyTrainer):
    """On-policy MDPO: the shared on-policy loop with the KL-regularised, unclipped surrogate."""

    algo = "mdpo"
    config: MDPOConfig

    def policy_loss(self, dist: Distribution, mb: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MDPO's objective on the minibatch; pi_k is `old_actor`, frozen at the start of the update."""
        with torch.no_grad():
            old_dist = self.old_actor.distribution(mb["obs"])
        kl = kl_divergence(dist, old_dist)
        weight = self.config.kl_weight(self.update)
        loss = mdpo_loss(dist.log_prob(mb["actions"]), mb["logprobs"], mb["advantages"], kl, weight)
        return loss, {"kl_to_old": kl.mean().detach(), "kl_weight": torch.tensor(weight)}

    def value_clip_coef(self) -> float:
        """MDPO's `clip_coef`: it clips the value loss only (the policy objective is unclipped)."""
        return self.config.clip_coef


def train(config: MDPOConfig) -> dict[str, Any]:
    """Train (or resume) on-policy MDPO; return the run summary."""
    return MDPOTrainer(config).train()

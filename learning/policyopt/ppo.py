"""PPO with the clipped surrogate objective (Schulman et al., 2017), CleanRL-equivalent.

    policyopt ppo --env-id Hopper-v5 --seed 1
    policyopt ppo --env-id CartPole-v1 --smoke

Per update: `num_steps` steps of `num_envs` environments with the current policy; GAE(lambda)
advantages (NEXT_STEP autoreset rows excluded, truncated episodes bootstrapped); `update_epochs`
passes of `num_minibatches` minibatches minimising

    L = E[max(-A r, -A clip(r, 1 - eps, 1 + eps))] + vf_coef L_V - ent_coef H,  r = pi_theta(a|s) / pi_old(a|s),

with per-minibatch advantage normalisation, optional value clipping, gradient-norm clipping,
linear learning-rate annealing and optional early stop at `target_kl`. Observations and rewards
are normalised by running statistics (saved in the checkpoint). The sampling error of each batch
is logged (`rollout/sampling_error`) to compare with PROPS.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.distributions import Distribution

from policyopt.configs import PPOConfig
from policyopt.onpolicy import Batch, OnPolicyTrainer


def clipped_surrogate_loss(
    new_logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor, clip_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped loss (to minimise) and the fraction of samples whose ratio was clipped; inputs of shape `n`."""
    ratio = (new_logprob - old_logprob).exp()
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    return torch.max(unclipped, clipped).mean(), clipfrac


class PPOTrainer(OnPolicyTrainer):
    """PPO: the shared on-policy loop with the clipped surrogate."""

    algo = "ppo"
    config: PPOConfig

    def policy_loss(self, dist: Distribution, mb: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Clipped surrogate of the minibatch."""
        loss, clipfrac = clipped_surrogate_loss(
            dist.log_prob(mb["actions"]), mb["logprobs"], mb["advantages"], self.config.clip_coef
        )
        return loss, {"clipfrac": clipfrac}

    def value_clip_coef(self) -> float:
        """`clip_coef` clips the value loss too (with clip_vloss), as in PPO's reference implementation."""
        return self.config.clip_coef


def train(config: PPOConfig) -> dict[str, Any]:
    """Train (or resume) PPO; return the run summary."""
    return PPOTrainer(config).train()

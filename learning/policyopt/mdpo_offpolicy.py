"""Off-policy Mirror Descent Policy Optimization (Tomar, Shani, Efroni and Ghavamzadeh, ICLR 2022).

Mirror descent on the policy: iteration k approximately solves, with `m` SGD steps from theta_k,

    theta_{k+1} <- argmin_theta  E_{s~D}[ E_{a~pi_theta}[ lambda log pi_theta(a|s) - Q(s, a) ]
                                          + (1 / t_k) KL(pi_theta(.|s) || pi_theta_k(.|s)) ],

a linearisation of the soft RL objective around pi_theta_k (through the soft Q-function, learnt from the
replay buffer D as in SAC) plus a Bregman proximity term (the KL to the frozen previous policy) with
step size t_k. With the reparameterisation a = f_theta(eps, s) the actor's loss, per state, is

    L(theta) = E_eps[ (1/t_k + lambda) log pi_theta(a|s) - (1/t_k) log pi_theta_k(a|s) - min_j Q_j(s, a) ]
             = E_eps[ lambda log pi_theta(a|s) - Q(s, a) ] + (1/t_k) KL-estimate,          (`mdpo_actor_loss`)

where the gradient also flows through `a` into the frozen policy's log-density. The anchor pi_theta_k is
replaced by the current actor every `sgd_steps` actor steps (the paper's m; the authors run m = 1000, one
actor step per environment step). Everything else is SAC (`sac.py`): twin soft Q-networks with Polyak
targets, the soft target ``r + gamma (1 - terminated)(min Q'(s', a') - lambda log pi(a'|s'))``, uniform
warm-up actions. Without the KL term (1/t_k = 0) the loss is SAC's: off-policy MDPO is SAC that also
stays close to its own policy of m steps ago.

Step size. The authors' released off-policy script feeds a constant coefficient (its `klconst` =
1/t_k + lambda = 1.0 with lambda = 0.2, i.e. 1/t_k = 0.8): that is the default here
(`kl_step_schedule="constant"`, `kl_coef_constant=0.8`). The paper's annealed schedule t_k = 1 - k/K (k from 0) over
the run's K iterations (the KL weight 1/t_k grows from 1, bounded by 1 / `min_step_size`), which on-policy
MDPO uses, is `kl_step_schedule="anneal"`; on Pendulum-v1 at 6k steps it learnt markedly slower (the last
iterations barely move the policy). lambda is fixed (0.2, the authors' value) unless `autotune` is set.

Differences from the authors' TensorFlow code, kept on purpose: the soft value comes from the twin
target Q-networks (SAC v2, as `sac.py`) instead of a separate V-network, the actor uses min(Q_1, Q_2)
instead of Q_1, and there is no 1e-3 penalty on the Gaussian's mean and log-std.

    policyopt mdpo-offpolicy --env-id Pendulum-v1 --total-timesteps 15000 --learning-starts 1000
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from policyopt import sac
from policyopt.configs import MDPOOffPolicyConfig
from policyopt.sac import SoftActorCritic


def mdpo_actor_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    q_min: torch.Tensor,
    kl_weight: float,
    entropy_coef: float | torch.Tensor,
) -> torch.Tensor:
    """Off-policy MDPO's actor loss ``mean((1/t_k + lambda) log pi - (1/t_k) log pi_k - min Q)``.

    Args:
        log_prob: log pi_theta(a|s) of reparameterised actions a ~ pi_theta, `batch`.
        old_log_prob: log pi_theta_k(a|s) of the same actions under the frozen previous policy, `batch`.
        q_min: min(Q_1, Q_2)(s, a), `batch`.
        kl_weight: 1 / t_k, the weight of the KL proximity term.
        entropy_coef: lambda, the entropy regularisation (SAC's alpha).
    """
    return ((kl_weight + entropy_coef) * log_prob - kl_weight * old_log_prob - q_min).mean()


class OffPolicyMDPO(SoftActorCritic):
    """SAC's agent with the MDPO actor objective and a frozen anchor policy refreshed every `sgd_steps` steps."""

    algo = "mdpo-offpolicy"
    config: MDPOOffPolicyConfig

    def __init__(
        self, config: MDPOOffPolicyConfig, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray
    ) -> None:
        super().__init__(config, obs_dim, action_low, action_high)
        self.old_actor = copy.deepcopy(self.actor)
        self.old_actor.requires_grad_(False)
        self.actor_steps = 0
        """Actor SGD steps so far."""
        self.iteration = 1
        """k: the current mirror-descent iteration (1-based)."""

    def actor_objective(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """MDPO's loss; the gradient flows through the sampled action into the frozen anchor's log-density."""
        actions, log_prob, pre_tanh = self.actor.sample(observations)
        old_log_prob = self.old_actor.log_prob_of(observations, pre_tanh)
        kl_weight = self.config.kl_weight(self.iteration)
        loss = mdpo_actor_loss(log_prob, old_log_prob, self.q_min(observations, actions), kl_weight, self.alpha)
        extra = {
            "losses/kl_to_anchor": float((log_prob - old_log_prob).mean().item()),
            "charts/kl_weight": kl_weight,
            "charts/mirror_iteration": float(self.iteration),
        }
        return loss, log_prob, extra

    def after_actor_step(self) -> dict[str, float]:
        """Count the step; at the end of an iteration the anchor becomes the current actor."""
        self.actor_steps += 1
        if self.actor_steps % self.config.sgd_steps == 0:
            self.old_actor.load_state_dict(self.actor.state_dict())
            self.iteration += 1
        return {}

    def modules(self) -> dict[str, torch.nn.Module]:
        """SAC's networks plus the anchor policy."""
        return {**super().modules(), "old_actor": self.old_actor}

    def extra_state(self) -> dict[str, Any]:
        """SAC's extra state plus the iteration counters."""
        return {**super().extra_state(), "actor_steps": self.actor_steps, "iteration": self.iteration}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore `extra_state`."""
        super().load_extra_state(state)
        self.actor_steps = int(state["actor_steps"])
        self.iteration = int(state["iteration"])


def train(config: MDPOOffPolicyConfig) -> dict[str, Any]:
    """Run off-policy MDPO as `config` says (SAC's loop with `OffPolicyMDPO`); return the run's summary."""
    return sac.train(config, OffPolicyMDPO)


__all__ = ["MDPOOffPolicyConfig", "OffPolicyMDPO", "mdpo_actor_loss", "train"]

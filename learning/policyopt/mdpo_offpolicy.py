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

    python -m policyopt.mdpo_offpolicy --env-id Pendulum-v1 --total-timesteps 15000 --learning-starts 1000
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import tyro

from flightkit import to_jsonable
from policyopt import sac
from policyopt.sac import SACConfig, SoftActorCritic


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


@dataclass
class MDPOOffPolicyConfig(SACConfig):
    """Off-policy MDPO: SAC's critics, an actor that takes `sgd_steps` mirror-descent steps per iteration."""

    alpha: float = 0.2
    """Entropy regularisation lambda of the soft objective (the authors' 0.2; the initial value with `autotune`)."""
    autotune: bool = False
    """Tune lambda towards `target_entropy` as SAC does (the paper keeps it fixed)."""
    policy_frequency: int = 1
    """Critic steps between actor steps (the authors: one actor step per critic step, no delay)."""
    sgd_steps: int = 1000
    """Actor SGD steps per mirror-descent iteration (the paper's m): the anchor pi_theta_k is refreshed this often."""
    kl_step_schedule: str = "constant"
    """Step size t_k: "constant" (1/t_k = `kl_coef_constant`, the authors' released setting) or "anneal"
    (t_k = 1 - k/K, k from 0, over the run's K iterations, the schedule of the paper's on-policy MDPO)."""
    kl_coef_constant: float = 0.8
    """KL weight 1/t_k when kl_step_schedule is "constant" (0.8: the authors' released off-policy setting)."""
    min_step_size: float = 1e-3
    """Lower bound on t_k when annealing (the KL weight is at most 1 / min_step_size)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kl_step_schedule not in ("anneal", "constant"):
            raise ValueError(f"kl_step_schedule must be 'anneal' or 'constant', got {self.kl_step_schedule!r}")
        if self.sgd_steps < 1:
            raise ValueError(f"sgd_steps must be at least 1, got {self.sgd_steps}")
        if not 0.0 < self.min_step_size <= 1.0:
            raise ValueError(f"min_step_size must be in (0, 1], got {self.min_step_size}")
        if self.kl_coef_constant < 0.0:
            raise ValueError(f"kl_coef_constant must be non-negative, got {self.kl_coef_constant}")

    def smoke_sizes(self) -> dict[str, Any]:
        """SAC's smoke sizes, with an anchor refresh every 50 actor steps."""
        return {**super().smoke_sizes(), "sgd_steps": 50}

    @property
    def num_mirror_iterations(self) -> int:
        """K: mirror-descent iterations in the run (actor steps / m, at least 1)."""
        learning_iterations = self.total_timesteps // self.num_envs - self.learning_starts // self.num_envs
        actor_steps = max(learning_iterations, 0) * self.gradient_steps
        return max(math.ceil(actor_steps / self.sgd_steps), 1)

    def kl_weight(self, iteration: int) -> float:
        """1 / t_k at mirror-descent iteration `iteration` (1-based): t_k = max(1 - (k - 1) / K, min_step_size)."""
        if self.kl_step_schedule == "constant":
            return self.kl_coef_constant
        step_size = max(1.0 - (iteration - 1.0) / self.num_mirror_iterations, self.min_step_size)
        return 1.0 / step_size


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


def main(config: MDPOOffPolicyConfig | None = None) -> dict[str, Any]:
    """Train off-policy MDPO (`python -m policyopt.mdpo_offpolicy --help`); the summary is printed and returned."""
    cfg = tyro.cli(MDPOOffPolicyConfig) if config is None else config
    summary = train(cfg)
    print(json.dumps(to_jsonable(summary), indent=2))
    return summary


if __name__ == "__main__":
    main()

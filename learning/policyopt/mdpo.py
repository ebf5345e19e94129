"""On-policy MDPO: mirror-descent policy optimisation (Tomar, Shani, Efroni and Ghavamzadeh, ICLR 2022).

    policyopt mdpo --env-id Hopper-v5 --seed 1
    policyopt mdpo --env-id Pendulum-v1 --smoke

Each iteration k approximately solves the mirror-descent step

    theta_{k+1} = argmax_theta E_{s,a ~ pi_k}[r_theta A^{pi_k}(s, a)] - (1 / t_k) E_{s ~ pi_k}[KL(pi_theta || pi_k)(s)],
    r_theta = pi_theta(a|s) / pi_k(a|s),

as the authors' code (`mdpo_on/`) does: `sgd_steps` (the paper's m) full-batch Adam steps of the policy
from theta_k, without clipping (advantages standardised over the batch, gradient norm clipped to
`max_grad_norm`), then `update_epochs` passes of minibatch Adam steps of the critic on the clipped value
loss (its own gradient unclipped). The KL is the closed form for the Gaussian (or categorical) policy at
the batch's states, taken against a frozen copy of pi_k. Adam's learning rate stays constant and the
step size t_k = 1 - (steps before iteration k) / `kl_anneal_timesteps` (10M, the authors' `learn(10e6)`)
shrinks with the environment steps taken, whatever the run's length: the KL weight 1/t_k is 1 at the
start and 1.11 after 1M steps. Rollouts, GAE and normalisation are the shared on-policy loop's; MDPO's own
`clip_coef` (0.2, the authors' `cliprange_vf`) clips only the value loss, never the policy objective.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributions import Distribution

from policyopt.configs import MDPOConfig
from policyopt.networks import kl_divergence
from policyopt.onpolicy import Batch, OnPolicyTrainer, explained_variance


def mdpo_loss(
    new_logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    advantages: torch.Tensor,
    kl_to_old: torch.Tensor,
    kl_weight: float,
) -> torch.Tensor:
    """-(E[r A] - kl_weight * E[KL(pi_theta || pi_k)]) on a batch; all inputs of shape `n`."""
    ratio = (new_logprob - old_logprob).exp()
    return -(ratio * advantages).mean() + kl_weight * kl_to_old.mean()


class MDPOTrainer(OnPolicyTrainer):
    """On-policy MDPO: the shared rollouts, m full-batch policy steps, then minibatch critic epochs."""

    algo = "mdpo"
    config: MDPOConfig

    def policy_loss(self, dist: Distribution, mb: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MDPO's objective on `mb`; pi_k is `old_actor`, frozen at the start of the update."""
        with torch.no_grad():
            old_dist = self.old_actor.distribution(mb["obs"])
        kl = kl_divergence(dist, old_dist)
        weight = self.config.kl_weight(self.update)
        loss = mdpo_loss(dist.log_prob(mb["actions"]), mb["logprobs"], mb["advantages"], kl, weight)
        return loss, {"kl_to_old": kl.mean().detach(), "kl_weight": torch.tensor(weight)}

    def value_clip_coef(self) -> float:
        """MDPO's `clip_coef`: it clips the value loss only (the policy objective is unclipped)."""
        return self.config.clip_coef

    def update_networks(self, batch: Batch) -> dict[str, float]:
        """`sgd_steps` full-batch steps of the policy, then `update_epochs` x `num_minibatches` steps of the critic.

        One Adam holds both networks: a step of one leaves the other's parameters (and their Adam state) alone.
        """
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        self.old_actor.load_state_dict(self.agent.actor.state_dict())
        full = dict(batch)
        if cfg.norm_adv:
            adv = batch["advantages"]
            full["advantages"] = (adv - adv.mean()) / (adv.std() + 1e-8)
        figures: dict[str, float] = {}
        for _step in range(cfg.sgd_steps):
            dist = self.agent.actor.distribution(full["obs"])
            pg_loss, stats = self.policy_loss(dist, full)
            entropy = dist.entropy().mean()
            self.optimizer.zero_grad()
            (pg_loss - cfg.ent_coef * entropy).backward()
            nn.utils.clip_grad_norm_(self.agent.actor.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            figures = {"policy_loss": float(pg_loss.detach()), "entropy": float(entropy.detach())}
            figures.update({k: float(v) for k, v in stats.items()})
        with torch.no_grad():
            logratio = self.agent.actor.distribution(full["obs"]).log_prob(full["actions"]) - full["logprobs"]
            figures["approx_kl"] = float(((logratio.exp() - 1.0) - logratio).mean())
        n = int(batch["obs"].shape[0])
        value_losses: list[float] = []
        for _epoch in range(cfg.update_epochs):
            for index in torch.tensor_split(torch.randperm(n), cfg.num_minibatches):
                if index.numel() < 2:
                    continue
                mb = {k: v[index] for k, v in batch.items()}
                v_loss = self.value_loss(self.agent.value(mb["obs"]), mb)
                self.optimizer.zero_grad()
                v_loss.backward()
                self.optimizer.step()
                value_losses.append(float(v_loss.detach()))
        figures["value_loss"] = sum(value_losses) / max(len(value_losses), 1)
        out = {f"losses/{k}": v for k, v in figures.items()}
        out["losses/explained_variance"] = explained_variance(batch["values"], batch["returns"])
        out["charts/learning_rate"] = self.optimizer.param_groups[0]["lr"]
        return out


def train(config: MDPOConfig) -> dict[str, Any]:
    """Train (or resume) on-policy MDPO; return the run summary."""
    return MDPOTrainer(config).train()

"""PROPS: Proximal Robust On-Policy Sampling (Corrado and Hanna, "On-Policy Policy Gradient
Reinforcement Learning Without On-Policy Sampling").

    policyopt props --env-id Hopper-v5 --seed 1
    policyopt props --env-id CartPole-v1 --smoke

On-policy learning needs on-policy *data*, not on-policy *sampling*. PROPS keeps a buffer D of the
last b batches and collects with a behaviour policy pi_phi that raises the probability of the
actions D has under-sampled with respect to the target policy pi_theta, so that D as a whole
matches pi_theta more closely than i.i.d. sampling would (lower sampling error). Per update:

1. phi <- theta; for each of the `num_steps` steps, act with pi_phi and append to D (the oldest
   batch falls off once D holds b batches);
2. every `props_update_every` steps, update phi on D by minibatch SGD on

       L(phi) = E_D[ max(r_phi, clip(r_phi, 1 - eps, 1 + eps)) ] + lambda E_D[ KL(pi_theta || pi_phi)(s) ],
       r_phi = pi_phi(a|s) / pi_theta(a|s),

   which lowers the probability of the actions already in D (the gradient of r_phi at (s, a)
   points away from a, so probability moves to the actions D lacks); the clip stops the push on a
   sample once r_phi < 1 - eps, and the epochs stop once KL(pi_theta || pi_phi) over D exceeds delta
   (`props_target_kl`); an update that ends beyond `props_max_kl`, or takes a step that is not
   finite, is undone (phi <- theta);
3. update theta with PPO on all of D, treated as on-policy data for pi_theta: log-probabilities
   and values are recomputed under the current pi_theta and critic, and GAE runs over the whole,
   time-contiguous buffer (no importance weights: the point of PROPS is that D is on-policy).

`props_enabled=False` keeps pi_phi = pi_theta: the paper's PPO-BUFFER ablation (same reuse, i.i.d.
sampling). `rollout/sampling_error` is KL(pi_D || pi_theta) over D before each target update; the
rollout's last behaviour update logs `losses/behaviour_loss`, `losses/behaviour_clipfrac`,
`losses/kl_target_behaviour` (KL(pi_theta || pi_phi) over D), `charts/behaviour_minibatch_steps` and
`charts/behaviour_resets` (updates undone so far).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.distributions import Distribution

from policyopt.configs import PropsConfig
from policyopt.networks import kl_divergence
from policyopt.onpolicy import Batch, OnPolicyTrainer
from policyopt.ppo import clipped_surrogate_loss

MAX_LOG_RATIO = 20.0
"""log(pi_phi / pi_theta) is clamped to this in the behaviour loss (the ratio stays finite in float32)."""


def props_behaviour_loss(
    behaviour_logprob: torch.Tensor,
    target_logprob: torch.Tensor,
    kl_target_behaviour: torch.Tensor,
    clip_coef: float,
    kl_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PROPS's behaviour loss (to minimise) and its clip fraction; inputs of shape `n`.

    max(r, clip(r, 1 - c, 1 + c)) is PPO's clipped surrogate with advantage -1 (sign flipped): it
    decreases r = pi_phi / pi_theta at the data's actions until r < 1 - c.
    """
    # Clamped before exp: an old action that pi_theta has since made very unlikely would overflow the
    # ratio to inf (and the gradient to NaN); beyond e^20 such a sample no longer pushes.
    ratio = (behaviour_logprob - target_logprob).clamp(max=MAX_LOG_RATIO).exp()
    clipped = torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    return torch.max(ratio, clipped).mean() + kl_coef * kl_target_behaviour.mean(), clipfrac


class PropsTrainer(OnPolicyTrainer):
    """PROPS: the shared on-policy loop with a behaviour policy and a buffer of `buffer_batches` batches."""

    algo = "props"
    config: PropsConfig

    def __init__(self, config: PropsConfig) -> None:
        self.buffer_batches = config.resolved().buffer_batches
        super().__init__(config)
        cfg = self.config
        if cfg.num_steps % cfg.props_update_every != 0:
            raise ValueError(f"props_update_every ({cfg.props_update_every}) must divide num_steps ({cfg.num_steps})")
        self.behaviour = copy.deepcopy(self.agent.actor)
        self.behaviour_optimizer = torch.optim.Adam(self.behaviour.parameters(), lr=cfg.props_learning_rate, eps=1e-5)
        self.first_row = 0
        self.behaviour_resets = 0  # behaviour updates undone (beyond props_max_kl or not finite)

    def modules(self) -> dict[str, nn.Module]:
        """Target actor-critic and behaviour policy."""
        return {"agent": self.agent, "behaviour": self.behaviour}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Their optimisers."""
        return {"agent": self.optimizer, "behaviour": self.behaviour_optimizer}

    def sampling_distribution(self, obs: torch.Tensor) -> Distribution:
        """pi_phi collects the data."""
        return self.behaviour.distribution(obs)

    def next_rows(self) -> int:
        """Make room for a batch (FIFO of `buffer_batches` batches) and reset phi to theta."""
        steps = self.config.num_steps
        capacity = steps * self.buffer_batches
        if self.filled_rows + steps <= capacity:
            self.first_row = self.filled_rows
            self.filled_rows += steps
        else:
            self.storage.roll(steps)
            self.first_row = capacity - steps
        self.reset_behaviour()
        return self.first_row

    def reset_behaviour(self) -> None:
        """phi <- theta, with a fresh optimiser state."""
        self.behaviour.load_state_dict(self.agent.actor.state_dict())
        self.behaviour_optimizer.state.clear()

    def after_env_step(self, row: int) -> dict[str, float]:
        """Every `props_update_every` steps (but after the last one), update phi on D so far."""
        cfg = self.config
        done_steps = row - self.first_row + 1
        if not cfg.props_enabled or done_steps % cfg.props_update_every != 0 or done_steps == cfg.num_steps:
            return {}
        return self.update_behaviour(row + 1)

    def update_behaviour(self, rows: int) -> dict[str, float]:
        """Minibatch SGD of phi on PROPS's loss over the valid transitions in storage rows [0, rows)."""
        cfg = self.config
        s = self.storage
        mask = s.valid[:rows].reshape(-1) > 0.5
        obs = s.obs[:rows].reshape(-1, *s.obs.shape[2:])[mask]
        actions = s.actions[:rows].reshape(-1, *s.actions.shape[2:])[mask]
        with torch.no_grad():
            target_dist = self.agent.distribution(obs)
            target_logprob = target_dist.log_prob(actions)
        n = int(obs.shape[0])
        losses: list[float] = []
        clipfracs: list[float] = []
        kl, finite = 0.0, True
        for _epoch in range(cfg.props_update_epochs):
            for index in torch.tensor_split(torch.randperm(n), cfg.props_num_minibatches):
                if index.numel() < 2:
                    continue
                dist = self.behaviour.distribution(obs[index])
                with torch.no_grad():
                    target_mb = self.agent.distribution(obs[index])
                kl_tb = kl_divergence(target_mb, dist)
                loss, clipfrac = props_behaviour_loss(
                    dist.log_prob(actions[index]), target_logprob[index], kl_tb, cfg.props_clip_coef, cfg.props_lambda
                )
                self.behaviour_optimizer.zero_grad()
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(self.behaviour.parameters(), cfg.max_grad_norm)
                if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
                    finite = False  # a non-finite step would poison phi: undone below
                    break
                self.behaviour_optimizer.step()
                losses.append(float(loss.detach()))
                clipfracs.append(float(clipfrac))
            if not finite:
                break
            with torch.no_grad():
                kl = float(kl_divergence(target_dist, self.behaviour.distribution(obs)).mean())
            if cfg.props_target_kl is not None and kl > cfg.props_target_kl:
                break
        if not finite or not kl <= cfg.props_max_kl:  # also NaN
            # Late in training pi_theta is narrow, and one epoch took KL from 0 to 10 (the data far
            # off-policy, then NaN): such an update is undone (the next one starts again from pi_theta).
            self.reset_behaviour()
            self.behaviour_resets += 1
            kl = 0.0
        count = max(len(losses), 1)
        return {
            "losses/behaviour_loss": sum(losses) / count,
            "losses/behaviour_clipfrac": sum(clipfracs) / count,
            "losses/kl_target_behaviour": kl,
            "charts/behaviour_minibatch_steps": float(len(losses)),
            "charts/behaviour_resets": float(self.behaviour_resets),
        }

    def training_batch(self) -> Batch:
        """All of D, with log-probabilities and values recomputed under the current pi_theta and critic."""
        s = self.storage
        rows = slice(0, self.filled_rows)
        with torch.no_grad():
            flat_obs = s.obs[rows].reshape(-1, *s.obs.shape[2:])
            flat_actions = s.actions[rows].reshape(-1, *s.actions.shape[2:])
            shape = s.values[rows].shape
            s.values[rows] = self.agent.value(flat_obs).reshape(shape)
            s.logprobs[rows] = self.agent.distribution(flat_obs).log_prob(flat_actions).reshape(shape)
        return self._flatten_valid(s, rows)

    def policy_loss(self, dist: Distribution, mb: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """PPO's clipped surrogate on D."""
        loss, clipfrac = clipped_surrogate_loss(
            dist.log_prob(mb["actions"]), mb["logprobs"], mb["advantages"], self.config.clip_coef
        )
        return loss, {"clipfrac": clipfrac}

    def value_clip_coef(self) -> float:
        """`clip_coef` clips the value loss too (with clip_vloss), as in PPO's reference implementation."""
        return self.config.clip_coef


def train(config: PropsConfig) -> dict[str, Any]:
    """Train (or resume) PROPS; return the run summary."""
    return PropsTrainer(config).train()

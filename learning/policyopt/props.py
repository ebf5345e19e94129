"""PROPS: Proximal Robust On-Policy Sampling (Corrado and Hanna, "On-Policy Policy Gradient
Reinforcement Learning Without On-Policy Sampling").

    policyopt props --env-id Hopper-v5 --seed 1
    policyopt props --env-id CartPole-v1 --smoke

On-policy learning needs on-policy *data*, not on-policy *sampling*. PROPS keeps a buffer D of the
last b batches and collects with a behaviour policy pi_phi that raises the probability of the
actions D has under-sampled with respect to the target policy pi_theta, so that D as a whole
matches pi_theta more closely than i.i.d. sampling would (lower sampling error). As in the authors'
code (PPOROS, `PROPS/ppo_props_continuous.py`):

1. each rollout step acts with pi_phi and appends to D (the oldest batch falls off once D holds b
   batches); the observations and rewards are kept raw too, and the whole of D is re-normalised with
   the current running statistics before every update (behaviour and target);
2. a behaviour update runs right after each target update (on the batches D keeps) and every
   `props_update_every` steps; each one starts from phi <- theta and takes minibatch Adam steps on

       L(phi) = E_D[ max(r_phi, clip(r_phi, 1 - eps, 1 + eps)) ] + lambda E_D[ KL(pi_phi || pi_theta)(s) ],
       r_phi = pi_phi(a|s) / pi_theta(a|s),

   with pi_theta's log-probabilities computed at that moment, the KL per action dimension averaged
   (`behaviour_kl`). The loss lowers the probability of the actions already in D (probability moves to
   the actions D lacks); the clip stops the push on a sample once r_phi < 1 - eps. Before every step the
   approximate KL of the minibatch, mean((r - 1) - log r), is checked, and the update stops at the
   first that exceeds delta (`props_target_kl`). The behaviour optimiser is created once and its Adam
   state is never cleared. An update that takes a step that is not finite, or ends with the approximate
   KL over D beyond `props_max_kl`, is undone (phi <- theta), a safeguard the authors' code lacks;
3. update theta with PPO on all of D, treated as on-policy data for pi_theta: log-probabilities
   and values are recomputed under the current pi_theta and critic, and GAE runs over the whole,
   time-contiguous buffer (no importance weights: the point of PROPS is that D is on-policy).

`props_enabled=False` keeps pi_phi = pi_theta: the paper's PPO-BUFFER ablation (same reuse, i.i.d.
sampling). `rollout/sampling_error` is KL(pi_D || pi_theta) over D before each target update; the
rollout's last behaviour update logs `losses/behaviour_loss`, `losses/behaviour_clipfrac`,
`losses/behaviour_approx_kl` (the stopping estimator over D), `losses/kl_behaviour_target`
(KL(pi_phi || pi_theta) over D, averaged per action dimension), `charts/behaviour_minibatch_steps` and
`charts/behaviour_resets` (updates undone so far).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorWrapper
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from policyopt.configs import PropsConfig
from policyopt.envs import NormalizeRewardVector, ObservationNormalizer, observation_normalizer
from policyopt.networks import kl_divergence
from policyopt.onpolicy import Batch, OnPolicyTrainer
from policyopt.ppo import clipped_surrogate_loss

MAX_LOG_RATIO = 20.0
"""log(pi_phi / pi_theta) is clamped to this in the behaviour loss (the ratio stays finite in float32)."""


def behaviour_kl(behaviour: Distribution, target: Distribution) -> torch.Tensor:
    """KL(pi_phi || pi_theta) per state (shape `n`), averaged over the action dimensions of a Gaussian.

    The direction and the average are the authors' regulariser's (a categorical policy has one KL per state).
    """
    if isinstance(behaviour, Independent) and isinstance(target, Independent):
        return kl_divergence(behaviour.base_dist, target.base_dist).mean(-1)
    return kl_divergence(behaviour, target)


def approx_kl(behaviour_logprob: torch.Tensor, target_logprob: torch.Tensor) -> float:
    """mean((r - 1) - log r), r = pi_phi / pi_theta at D's actions: the authors' stopping estimator."""
    log_ratio = (behaviour_logprob - target_logprob).clamp(max=MAX_LOG_RATIO)
    return float(((log_ratio.exp() - 1.0) - log_ratio).mean())


def props_behaviour_loss(
    behaviour_logprob: torch.Tensor,
    target_logprob: torch.Tensor,
    kl_behaviour_target: torch.Tensor,
    clip_coef: float,
    kl_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PROPS's behaviour loss (to minimise) and its clip fraction; inputs of shape `n`.

    max(r, clip(r, 1 - c, 1 + c)) + kl_coef * KL is PPO's clipped surrogate with advantage -1 (sign
    flipped) plus the regulariser: it decreases r = pi_phi / pi_theta at the data's actions until r < 1 - c.
    `kl_behaviour_target` is KL(pi_phi || pi_theta) per state (`behaviour_kl`).
    """
    # Clamped before exp: an old action that pi_theta has since made very unlikely would overflow the
    # ratio to inf (and the gradient to NaN); beyond e^20 such a sample no longer pushes.
    ratio = (behaviour_logprob - target_logprob).clamp(max=MAX_LOG_RATIO).exp()
    clipped = torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    return torch.max(ratio, clipped).mean() + kl_coef * kl_behaviour_target.mean(), clipfrac


def _rows(dist: Distribution, index: torch.Tensor) -> Distribution:
    """The distributions of `dist` (a policy's, over a batch of states) at rows `index`."""
    if isinstance(dist, Independent) and isinstance(dist.base_dist, Normal):
        base = dist.base_dist
        return Independent(Normal(base.loc[index], base.scale[index], validate_args=False), 1, validate_args=False)
    if isinstance(dist, Categorical):
        return Categorical(logits=dist.logits[index], validate_args=False)
    raise TypeError(f"PROPS supports Gaussian and categorical policies, not {type(dist).__name__}")


def _reward_normalizer(envs: Any) -> NormalizeRewardVector | None:
    layer = envs
    while isinstance(layer, VectorWrapper):
        if isinstance(layer, NormalizeRewardVector):
            return layer
        layer = layer.env
    return None


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
        # Created once; its Adam state carries over from one behaviour update to the next (as the authors').
        self.behaviour_optimizer = torch.optim.Adam(self.behaviour.parameters(), lr=cfg.props_learning_rate, eps=1e-5)
        self.first_row = 0
        self.behaviour_resets = 0  # behaviour updates undone (beyond props_max_kl or not finite)
        self.obs_normalizer: ObservationNormalizer | None = observation_normalizer(self.envs)
        self.reward_normalizer = _reward_normalizer(self.envs)
        self.raw_obs = torch.zeros_like(self.storage.obs)
        """D's observations before normalisation (re-normalised with the current statistics before each update)."""
        self.raw_rewards = torch.zeros_like(self.storage.rewards)
        """D's rewards before scaling."""
        self.raw_next_obs = self._raw_obs(self.next_obs)
        self.pending_figures: dict[str, float] = {}
        """Figures of the behaviour update right after the target update, logged with the next rollout's."""

    def modules(self) -> dict[str, nn.Module]:
        """Target actor-critic and behaviour policy."""
        return {"agent": self.agent, "behaviour": self.behaviour}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Their optimisers."""
        return {"agent": self.optimizer, "behaviour": self.behaviour_optimizer}

    def sampling_distribution(self, obs: torch.Tensor) -> Distribution:
        """pi_phi collects the data."""
        return self.behaviour.distribution(obs)

    # ------------------------------------------------------------------------------------------
    # Raw data and re-normalisation

    def _raw_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """Undo the observation normalisation with the current statistics (exact unless it clipped at +-10)."""
        norm = self.obs_normalizer
        if norm is None:
            return obs.clone()
        raw = obs.double().numpy() * np.sqrt(norm.rms.var + norm.epsilon) + norm.rms.mean
        return torch.from_numpy(raw).float()

    def _reward_scale(self) -> float:
        layer = self.reward_normalizer
        return 1.0 if layer is None else float(np.sqrt(layer.return_rms.var + layer.epsilon))

    def after_env_step(self, row: int) -> dict[str, float]:
        """Keep the step's raw data; every `props_update_every` steps (but after the last one), update phi on D."""
        cfg = self.config
        self.raw_obs[row] = self.raw_next_obs
        self.raw_rewards[row] = self.storage.rewards[row] * self._reward_scale()
        self.raw_next_obs = self._raw_obs(self.next_obs)  # normalised with the statistics of this step
        done_steps = row - self.first_row + 1
        if not cfg.props_enabled or done_steps % cfg.props_update_every != 0 or done_steps == cfg.num_steps:
            return {}
        return self.update_behaviour(row + 1)

    def renormalize(self, rows: int) -> None:
        """Normalise storage rows [0, rows) afresh from the raw data with the current statistics."""
        s = self.storage
        if self.obs_normalizer is not None:
            s.obs[:rows] = torch.from_numpy(self.obs_normalizer(self.raw_obs[:rows].numpy()))
        layer = self.reward_normalizer
        if layer is not None:
            s.rewards[:rows] = (self.raw_rewards[:rows] / self._reward_scale()).clamp(-layer.clip, layer.clip)

    # ------------------------------------------------------------------------------------------
    # Behaviour updates

    def next_rows(self) -> int:
        """Make room for a batch (FIFO of `buffer_batches` batches); update phi on the batches D keeps."""
        steps = self.config.num_steps
        capacity = steps * self.buffer_batches
        if self.filled_rows + steps <= capacity:
            self.first_row = self.filled_rows
            self.filled_rows += steps
        else:
            for tensor in (self.raw_obs, self.raw_rewards):
                tensor.copy_(torch.roll(tensor, -steps, dims=0))
            self.storage.roll(steps)
            self.first_row = capacity - steps
        if self.config.props_enabled and self.first_row > 0:
            self.pending_figures = self.update_behaviour(self.first_row)
        else:
            self.reset_behaviour()
        return self.first_row

    def collect(self, first_row: int) -> dict[str, float]:
        """The shared rollout; it logs the figures of the behaviour update made before it unless a later one logs."""
        figures, self.pending_figures = self.pending_figures, {}
        return {**figures, **super().collect(first_row)}

    def reset_behaviour(self) -> None:
        """phi <- theta (the optimiser's state is kept)."""
        self.behaviour.load_state_dict(self.agent.actor.state_dict())

    def update_behaviour(self, rows: int) -> dict[str, float]:
        """phi <- theta, then minibatch Adam steps on PROPS's loss over the valid transitions of rows [0, rows)."""
        cfg = self.config
        self.reset_behaviour()
        self.renormalize(rows)
        s = self.storage
        mask = s.valid[:rows].reshape(-1) > 0.5
        obs = s.obs[:rows].reshape(-1, *s.obs.shape[2:])[mask]
        actions = s.actions[:rows].reshape(-1, *s.actions.shape[2:])[mask]
        with torch.no_grad():
            target_dist = self.agent.actor.distribution(obs)
            target_logprob = target_dist.log_prob(actions)  # pi_theta now, never stale
        n = int(obs.shape[0])
        losses: list[float] = []
        clipfracs: list[float] = []
        finite, stop = True, False
        for _epoch in range(cfg.props_update_epochs):
            for index in torch.tensor_split(torch.randperm(n), cfg.props_num_minibatches):
                if index.numel() < 2:
                    continue
                dist = self.behaviour.distribution(obs[index])
                logprob = dist.log_prob(actions[index])
                delta = cfg.props_target_kl
                if delta is not None and approx_kl(logprob.detach(), target_logprob[index]) > delta:
                    stop = True  # checked before every step: the first minibatch beyond delta ends the update
                    break
                kl_mb = behaviour_kl(dist, _rows(target_dist, index))
                loss, clipfrac = props_behaviour_loss(
                    logprob, target_logprob[index], kl_mb, cfg.props_clip_coef, cfg.props_lambda
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
            if stop or not finite:
                break
        with torch.no_grad():
            behaviour_dist = self.behaviour.distribution(obs)
            kl_estimate = approx_kl(behaviour_dist.log_prob(actions), target_logprob) if n else 0.0
        if not finite or not kl_estimate <= cfg.props_max_kl:  # also NaN
            # pi_theta narrow and D from older, wider policies: one step can take phi far off (KL 10+, then
            # NaN). Such an update is undone; the next one starts again from pi_theta.
            self.reset_behaviour()
            self.behaviour_resets += 1
            kl_estimate = 0.0
        with torch.no_grad():
            kl_per_state = behaviour_kl(self.behaviour.distribution(obs), target_dist)
            kl = float(kl_per_state.mean()) if n else 0.0
        count = max(len(losses), 1)
        return {
            "losses/behaviour_loss": sum(losses) / count,
            "losses/behaviour_clipfrac": sum(clipfracs) / count,
            "losses/behaviour_approx_kl": kl_estimate,
            "losses/kl_behaviour_target": kl,
            "charts/behaviour_minibatch_steps": float(len(losses)),
            "charts/behaviour_resets": float(self.behaviour_resets),
        }

    # ------------------------------------------------------------------------------------------
    # Target update

    def training_batch(self) -> Batch:
        """All of D, re-normalised, log-probabilities and values recomputed under the current pi_theta and critic."""
        s = self.storage
        rows = slice(0, self.filled_rows)
        self.renormalize(self.filled_rows)
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

    # ------------------------------------------------------------------------------------------
    # Checkpoints

    def extra_state(self) -> dict[str, Any]:
        """The shared loop's state plus D's raw data and the count of undone behaviour updates."""
        return {
            **super().extra_state(),
            "raw_obs": self.raw_obs.clone(),
            "raw_rewards": self.raw_rewards.clone(),
            "raw_next_obs": self.raw_next_obs.clone(),
            "behaviour_resets": self.behaviour_resets,
        }

    def load_extra_state(self, extra: dict[str, Any], env_restored: bool) -> None:
        """Inverse of `extra_state` (a checkpoint without raw data gets it from its normalised data)."""
        super().load_extra_state(extra, env_restored)
        self.behaviour_resets = int(extra.get("behaviour_resets", 0))
        if "raw_obs" in extra:
            self.raw_obs.copy_(extra["raw_obs"])
            self.raw_rewards.copy_(extra["raw_rewards"])
        else:
            self.raw_obs.copy_(self._raw_obs(self.storage.obs))
            self.raw_rewards.copy_(self.storage.rewards * self._reward_scale())
        if env_restored and "raw_next_obs" in extra:
            self.raw_next_obs = extra["raw_next_obs"].clone()
        else:
            self.raw_next_obs = self._raw_obs(self.next_obs)


def train(config: PropsConfig) -> dict[str, Any]:
    """Train (or resume) PROPS; return the run summary."""
    return PropsTrainer(config).train()

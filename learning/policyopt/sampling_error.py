"""Sampling error: how far the empirical action distribution of a batch is from the policy's.

Definition (PROPS, Corrado & Hanna; after ROS, Zhong et al. 2022): with D = {(s_i, a_i)} the data
an update trains on and pi_theta the policy it updates, the sampling error is

    KL(pi_D || pi_theta) = E_{s in D} [ sum_a pi_D(a|s) log(pi_D(a|s) / pi_theta(a|s)) ],

where pi_D is the empirical policy of D: the maximum-likelihood policy given D.

- `tabular_sampling_error`: exact, for discrete actions in states that repeat (bandits, small
  grids): pi_D(a|s) is the fraction of a among D's visits to s.
- `mle_sampling_error`: the papers' estimator for continuous states (and any action type): pi_D is
  fitted by maximum likelihood on D, starting from a copy of pi_theta with the hidden layers frozen
  (only the output layer and the Gaussian's log-std are fitted, as in the PROPS code), and the KL is
  estimated on D itself as mean_i [log pi_D(a_i|s_i) - log pi_theta(a_i|s_i)].
Both are >= 0 up to the fit's error and fall as 1/|D| under on-policy sampling.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from policyopt.networks import Actor


def tabular_sampling_error(obs: np.ndarray, actions: np.ndarray, probs: np.ndarray) -> float:
    """Exact KL(pi_D || pi) for discrete actions, grouping samples by identical observation rows.

    obs: `n x obs_dim`; actions: `n` integers in [0, K); probs: `n x K`, pi(.|s_i). States are
    weighted by their visit frequency in D.
    """
    obs2 = np.asarray(obs).reshape(len(actions), -1)
    actions = np.asarray(actions, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n, k = probs.shape
    _, group = np.unique(obs2, axis=0, return_inverse=True)
    group = group.ravel()
    counts = np.zeros((int(group.max()) + 1, k))
    np.add.at(counts, (group, actions), 1.0)
    visits = counts.sum(axis=1)
    policy = np.zeros_like(counts)
    np.add.at(policy, group, probs)
    policy /= visits[:, None]
    empirical = counts / visits[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(empirical > 0, empirical * np.log(empirical / np.maximum(policy, 1e-300)), 0.0)
    return float(np.sum(visits / n * terms.sum(axis=1)))


def mle_sampling_error(
    actor: Actor, obs: torch.Tensor, actions: torch.Tensor, *, epochs: int = 200, learning_rate: float = 1e-2
) -> float:
    """Estimated KL(pi_D || pi_theta): fit pi_D by maximum likelihood from a copy of `actor`.

    obs: `n x obs_dim` (normalised as the actor sees them); actions: `n` (discrete) or `n x action_dim`.
    Full-batch Adam for `epochs` steps on the output layer (and the log-std), learning rate decayed
    linearly to zero; the random generators are left untouched.
    """
    empirical = copy.deepcopy(actor)
    for parameter in empirical.parameters():
        parameter.requires_grad_(False)
    output_layer = empirical.net[-1]
    trainable = list(output_layer.parameters())
    if not actor.spec.discrete:
        trainable.append(empirical.log_std)
    for parameter in trainable:
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(trainable, lr=learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: max(1.0 - i / max(epochs, 1), 0.0))
    with torch.no_grad():
        features = empirical.net[:-1](obs)  # frozen hidden layers: compute once
    for _ in range(epochs):
        loss = -_log_prob(empirical, output_layer(features), actions).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        log_empirical = _log_prob(empirical, output_layer(features), actions)
        log_policy = actor.distribution(obs).log_prob(actions)
    return float((log_empirical - log_policy).mean())


def _log_prob(actor: Actor, out: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    if actor.spec.discrete:
        return torch.distributions.Categorical(logits=out).log_prob(actions)
    normal = torch.distributions.Normal(out, actor.log_std.expand_as(out).exp())
    return normal.log_prob(actions).sum(-1)


def sampling_error(actor: Actor, obs: torch.Tensor, actions: torch.Tensor, *, mle_epochs: int = 200) -> float:
    """The sampling error of (obs, actions) under `actor`: exact when discrete states repeat, else the MLE estimate.

    "Repeat" means D has at most n/4 distinct observations, so each state's empirical distribution
    rests on several visits; otherwise the fitted estimator is used.
    """
    n = int(obs.shape[0])
    if actor.spec.discrete:
        obs_np = obs.detach().cpu().numpy().reshape(n, -1)
        distinct = len(np.unique(obs_np, axis=0))
        if distinct * 4 <= n:
            with torch.no_grad():
                probs = actor.distribution(obs).probs.cpu().numpy()  # type: ignore[attr-defined]
            return tabular_sampling_error(obs_np, actions.cpu().numpy(), probs)
    return mle_sampling_error(actor, obs, actions, epochs=mle_epochs)


__all__ = ["mle_sampling_error", "sampling_error", "tabular_sampling_error"]

"""Soft Actor-Critic for continuous actions (Haarnoja et al., 2018; CleanRL's `sac_continuous_action.py` design).

Twin soft Q-networks with Polyak-averaged targets, a tanh-squashed Gaussian actor, and automatic tuning
of the entropy temperature alpha towards a target entropy of -dim(A). Per vector-environment step, after
`learning_starts` uniformly random steps:

    critic:  y = r + gamma (1 - terminated) (min_j Q'_j(s', a') - alpha log pi(a'|s')),  a' ~ pi(.|s')
             L_Q = mse(Q_1(s, a), y) + mse(Q_2(s, a), y)
    actor:   L_pi = E_{s~D, a~pi}[alpha log pi(a|s) - min_j Q_j(s, a)]   (every `policy_frequency` steps,
             `policy_frequency` times, as in CleanRL)
    alpha:   L_alpha = E[-alpha (log pi(a|s) + target_entropy)]
    targets: theta' <- tau theta + (1 - tau) theta'  (every `target_network_frequency` steps)

Only `terminated` stops the bootstrap; a time-limit truncation bootstraps (see `replay.py`, which also
drops Gymnasium 1.x's autoreset steps). The losses are pure functions (`soft_td_target`, `critic_loss`,
`sac_actor_loss`, `temperature_loss`) tested against hand-computed values. `SoftActorCritic` holds the
networks and the update; off-policy MDPO (`mdpo_offpolicy.py`) is the same agent with another actor
objective, so it subclasses it and reuses `train`.

    policyopt sac --env-id Pendulum-v1 --total-timesteps 15000 --learning-starts 1000
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import nn
from torch.nn import functional

from policyopt.checkpoint import CHECKPOINT_FILE, load_checkpoint, restore_training, save_checkpoint
from policyopt.configs import SACConfig
from policyopt.envs import episode_returns, make_vector_env
from policyopt.evaluation import EVAL_SEED_OFFSET, evaluate_policy
from policyopt.networks import PolicySpec
from policyopt.replay import ReplayBatch, ReplayBuffer
from policyopt.squashed_gaussian import SquashedGaussianActor, mlp
from runkit import prepare_run_dir, write_summary
from runkit.checkpoint import CheckpointError
from runkit.metrics import RunLogger
from runkit.seeding import seed_everything

# ----------------------------------------------------------------------------------------------- losses


def soft_td_target(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    next_q_min: torch.Tensor,
    next_log_prob: torch.Tensor,
    alpha: float | torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Soft Bellman target ``r + gamma (1 - terminated) (min Q'(s', a') - alpha log pi(a'|s'))``; all `batch`."""
    return rewards + gamma * (1.0 - terminated) * (next_q_min - alpha * next_log_prob)


def critic_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum of both Q-networks' mean squared errors to the (detached) target; all inputs `batch`."""
    target = target.detach()
    return functional.mse_loss(q1, target) + functional.mse_loss(q2, target)


def sac_actor_loss(log_prob: torch.Tensor, q_min: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """SAC's actor loss ``mean(alpha log pi(a|s) - min Q(s, a))`` for reparameterised `a ~ pi`; inputs `batch`."""
    return (alpha * log_prob - q_min).mean()


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """Loss of the entropy temperature ``mean(-alpha (log pi + target_entropy))``, log pi detached.

    Its gradient raises alpha when the policy's entropy (-log pi) is below `target_entropy`.
    """
    return (-log_alpha.exp() * (log_prob.detach() + target_entropy)).mean()


# ---------------------------------------------------------------------------------------------- networks
# The actor, `SquashedGaussianActor`, lives in squashed_gaussian.py (checkpoint.py rebuilds it from there).


class SoftQNetwork(nn.Module):
    """Q(s, a): an MLP on the concatenated observation and action."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim + action_dim, hidden_sizes, 1)

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q-values `batch` of observations `batch x obs_dim` and actions `batch x action_dim`."""
        return self.net(torch.cat([observations, actions], dim=-1)).squeeze(-1)


# ------------------------------------------------------------------------------------------------ agent


def polyak_update(source: nn.Module, target: nn.Module, tau: float) -> None:
    """``target <- tau * source + (1 - tau) * target``, parameter by parameter."""
    with torch.no_grad():
        for param, target_param in zip(source.parameters(), target.parameters(), strict=True):
            target_param.mul_(1.0 - tau).add_(param, alpha=tau)


class SoftActorCritic:
    """SAC's networks, optimisers and update (`update`); subclasses change the actor's objective.

    Args:
        config: the run's settings (network sizes, learning rates, discount, temperature).
        obs_dim: length of a flat observation.
        action_low, action_high: bounds of the (box) action space, `action_dim` each.
    """

    algo = "sac"

    def __init__(self, config: SACConfig, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray) -> None:
        self.config = config
        action_dim = int(np.prod(action_low.shape))
        hidden = tuple(config.hidden_sizes)
        self.actor = SquashedGaussianActor(obs_dim, action_dim, hidden, action_low, action_high)
        self.qf1 = SoftQNetwork(obs_dim, action_dim, hidden)
        self.qf2 = SoftQNetwork(obs_dim, action_dim, hidden)
        self.qf1_target = SoftQNetwork(obs_dim, action_dim, hidden)
        self.qf2_target = SoftQNetwork(obs_dim, action_dim, hidden)
        self.qf1_target.load_state_dict(self.qf1.state_dict())
        self.qf2_target.load_state_dict(self.qf2.state_dict())
        self.q_optimizer = torch.optim.Adam([*self.qf1.parameters(), *self.qf2.parameters()], lr=config.q_lr)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.policy_lr)
        self.target_entropy = -float(action_dim) if config.target_entropy is None else config.target_entropy
        self.log_alpha = torch.tensor(math.log(config.alpha), requires_grad=True)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=config.q_lr)
        self.updates = 0
        """Calls of `update` so far (the critic's gradient steps)."""

    @property
    def alpha(self) -> float:
        """The entropy temperature now."""
        return float(self.log_alpha.exp().item())

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        """Sampled actions `num_envs x action_dim` for observations `num_envs x obs_dim` (exploration)."""
        actions, _, _ = self.actor.sample(torch.as_tensor(observations, dtype=torch.float32))
        return actions.numpy()

    def update(self, batch: ReplayBatch) -> dict[str, float]:
        """One critic step, then (every `policy_frequency` updates) actor and temperature steps, then targets."""
        cfg = self.config
        with torch.no_grad():
            next_actions, next_log_prob, _ = self.actor.sample(batch.next_observations)
            next_q_min = torch.min(
                self.qf1_target(batch.next_observations, next_actions),
                self.qf2_target(batch.next_observations, next_actions),
            )
            target = soft_td_target(batch.rewards, batch.terminated, next_q_min, next_log_prob, self.alpha, cfg.gamma)
        q1 = self.qf1(batch.observations, batch.actions)
        q2 = self.qf2(batch.observations, batch.actions)
        q_loss = critic_loss(q1, q2, target)
        self.q_optimizer.zero_grad()
        q_loss.backward()
        self.q_optimizer.step()
        stats = {
            "losses/qf_loss": float(q_loss.item()) / 2.0,
            "losses/qf1_values": float(q1.mean().item()),
            "losses/qf2_values": float(q2.mean().item()),
        }

        if self.updates % cfg.policy_frequency == 0:
            # As CleanRL (after TD3): delayed, but as many actor steps as critic steps on average.
            for _ in range(cfg.policy_frequency):
                stats.update(self.actor_step(batch.observations))

        if self.updates % cfg.target_network_frequency == 0:
            polyak_update(self.qf1, self.qf1_target, cfg.tau)
            polyak_update(self.qf2, self.qf2_target, cfg.tau)
        self.updates += 1
        return stats

    def q_min(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``min(Q_1, Q_2)`` `batch` of the online critics."""
        return torch.min(self.qf1(observations, actions), self.qf2(observations, actions))

    def actor_objective(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """The actor's loss, the log-probabilities of its sampled actions (`batch`) and extra scalars."""
        actions, log_prob, _ = self.actor.sample(observations)
        return sac_actor_loss(log_prob, self.q_min(observations, actions), self.alpha), log_prob, {}

    def after_actor_step(self) -> dict[str, float]:
        """Hook after each actor step (off-policy MDPO refreshes its anchor policy here)."""
        return {}

    def actor_step(self, observations: torch.Tensor) -> dict[str, float]:
        """One step of the actor and (with `autotune`) of the temperature."""
        loss, log_prob, extra = self.actor_objective(observations)
        self.actor_optimizer.zero_grad()
        loss.backward()
        self.actor_optimizer.step()
        stats = {"losses/actor_loss": float(loss.item()), "losses/entropy": float(-log_prob.mean().item()), **extra}
        if self.config.autotune:
            alpha_loss = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
            self.alpha_optimizer.zero_grad()
            alpha_loss.backward()
            self.alpha_optimizer.step()
            stats["losses/alpha_loss"] = float(alpha_loss.item())
        stats["losses/alpha"] = self.alpha
        stats.update(self.after_actor_step())
        return stats

    def modules(self) -> dict[str, nn.Module]:
        """The networks, by name (what a checkpoint stores and restores)."""
        return {
            "actor": self.actor,
            "qf1": self.qf1,
            "qf2": self.qf2,
            "qf1_target": self.qf1_target,
            "qf2_target": self.qf2_target,
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers, by name."""
        return {"q": self.q_optimizer, "actor": self.actor_optimizer, "alpha": self.alpha_optimizer}

    def extra_state(self) -> dict[str, Any]:
        """State that is neither a network nor an optimiser: the temperature and the counters."""
        return {"log_alpha": self.log_alpha.detach().clone(), "updates": self.updates}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore `extra_state`."""
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.updates = int(state["updates"])


# ------------------------------------------------------------------------------------------------- loop


@torch.no_grad()
def evaluate(actor: SquashedGaussianActor, env_id: str, episodes: int, seed: int) -> list[float]:
    """Returns of `episodes` episodes of the deterministic (mean-action) policy, seeds seed, seed + 1, ..."""

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return actor.deterministic(torch.as_tensor(obs, dtype=torch.float32).reshape(1, -1)).numpy()[0]

    return evaluate_policy(act, env_id, episodes, seed)


def train(config: SACConfig, agent_type: type[SoftActorCritic] = SoftActorCritic) -> dict[str, Any]:
    """Run SAC (or a subclass's algorithm) as `config` says; return the run's summary (also written to the run folder).

    Resumes from the run folder's checkpoint with `config.resume` (the environments' state included, so
    the continuation is the one an uninterrupted run would have taken). The run folder follows runkit's
    rules: a fresh run in a folder that holds an earlier one, and `resume` without a checkpoint, are
    refused (`RunDirectoryError`) before anything is built.
    """
    cfg = config.resolved()  # runkit's smoke rule; the default run folder filled in
    run_dir = cfg.run_path
    checkpoint_path = run_dir / CHECKPOINT_FILE
    resumed = prepare_run_dir(run_dir, cfg.resume, checkpoint_path)
    seed_everything(cfg.seed, cfg.torch_deterministic, cfg.torch_threads)
    # The squashed actor's and the warm-up's actions lie inside the bounds already: no ClipAction.
    envs = make_vector_env(cfg.env_id, cfg.num_envs, cfg.seed, clip_action=False)
    action_space = envs.single_action_space
    if not isinstance(action_space, gym.spaces.Box) or not np.all(np.isfinite([action_space.low, action_space.high])):
        envs.close()
        raise ValueError(f"{agent_type.algo} needs a bounded Box action space; {cfg.env_id} has {action_space}")
    obs_shape = envs.single_observation_space.shape
    assert obs_shape is not None
    obs_dim = int(np.prod(obs_shape))
    low = np.asarray(action_space.low, dtype=np.float32)
    high = np.asarray(action_space.high, dtype=np.float32)
    agent = agent_type(cfg, obs_dim, low, high)
    buffer = ReplayBuffer(cfg.buffer_size, (obs_dim,), action_space.shape, cfg.num_envs, seed=cfg.seed)
    warmup_rng = np.random.default_rng(cfg.seed + 1)
    """Uniform actions before `learning_starts` (its own generator: saved and restored on resume)."""
    num_iterations = cfg.total_timesteps // cfg.num_envs
    iteration = 0
    obs, _ = envs.reset(seed=cfg.seed)

    if resumed:
        try:
            checkpoint = load_checkpoint(checkpoint_path)
            found = checkpoint.state["algo"]
            if found != agent_type.algo:
                raise CheckpointError(f"{checkpoint_path} is a {found} checkpoint, not {agent_type.algo}")
            env_restored = restore_training(
                checkpoint, modules=agent.modules(), optimizers=agent.optimizers(), envs=envs
            )
        except BaseException:
            envs.close()
            raise
        extra = checkpoint.state["extra"]
        agent.load_extra_state(extra["agent"])
        buffer.load_state_dict(extra["buffer"])
        warmup_rng.bit_generator.state = extra["warmup_rng"]
        iteration = int(extra["iteration"])
        obs = extra["obs"]
        if not env_restored:  # fresh episodes: the continuation is valid but not bit-identical
            obs, _ = envs.reset(seed=cfg.seed + iteration)
            buffer.resetting[:] = False

    resume_step = iteration * cfg.num_envs if resumed else None
    logger = RunLogger(
        run_dir,
        num_iterations * cfg.num_envs,
        desc=agent_type.algo,
        tensorboard=cfg.tensorboard,
        progress=cfg.progress,
        resume_step=resume_step,
    )
    logger.text("config", repr(cfg))
    start_time, start_step = time.perf_counter(), iteration * cfg.num_envs
    next_checkpoint = _next_checkpoint(iteration * cfg.num_envs, cfg.checkpoint_every_steps)
    try:
        while iteration < num_iterations:
            global_step = iteration * cfg.num_envs
            if global_step < cfg.learning_starts:
                actions = warmup_rng.uniform(low, high, size=(cfg.num_envs, *low.shape)).astype(np.float32)
            else:
                actions = agent.act(obs)
            next_obs, rewards, terminated, truncated, info = envs.step(actions)
            buffer.add(obs, actions, rewards, next_obs, terminated, truncated)
            obs = next_obs
            iteration += 1
            global_step = iteration * cfg.num_envs
            for episode_return, episode_length in episode_returns(info):
                logger.scalar("charts/episodic_return", episode_return, global_step)
                logger.scalar("charts/episodic_length", episode_length, global_step)

            if global_step > cfg.learning_starts:
                for _ in range(cfg.gradient_steps):
                    stats = agent.update(buffer.sample(cfg.batch_size))
                    if agent.updates % cfg.log_every_updates == 0:
                        logger.scalars(stats, global_step)
                        sps = (global_step - start_step) / max(time.perf_counter() - start_time, 1e-9)
                        logger.scalar("charts/SPS", sps, global_step)
            logger.advance(cfg.num_envs)

            if next_checkpoint is not None and global_step >= next_checkpoint and iteration < num_iterations:
                _checkpoint(run_dir, cfg, agent, buffer, warmup_rng, envs, obs, iteration)
                logger.flush()
                next_checkpoint = _next_checkpoint(global_step, cfg.checkpoint_every_steps)

        _checkpoint(run_dir, cfg, agent, buffer, warmup_rng, envs, obs, iteration)
        eval_returns = evaluate(agent.actor, cfg.env_id, cfg.eval_episodes, seed=cfg.seed + EVAL_SEED_OFFSET)
        mean_return = float(np.mean(eval_returns)) if eval_returns else float("nan")
        logger.scalar("rollout/eval_mean_return", mean_return, iteration * cfg.num_envs)
    finally:
        logger.close()
        envs.close()
    summary = {
        "algo": agent_type.algo,
        "env_id": cfg.env_id,
        "seed": cfg.seed,
        "total_timesteps": iteration * cfg.num_envs,
        "eval_returns": eval_returns,
        "eval_mean_return": mean_return,
        "run_dir": str(run_dir),
    }
    write_summary(run_dir, summary)
    return summary


def _next_checkpoint(global_step: int, every: int) -> int | None:
    return None if every <= 0 else (global_step // every + 1) * every


def _checkpoint(
    run_dir: Path,
    config: SACConfig,
    agent: SoftActorCritic,
    buffer: ReplayBuffer,
    warmup_rng: np.random.Generator,
    envs: VectorEnv,
    obs: np.ndarray,
    iteration: int,
) -> Path:
    """Write everything a bit-identical resume needs (the shared checkpoint format), atomically."""
    spec = PolicySpec.from_spaces(envs.single_observation_space, envs.single_action_space, tuple(config.hidden_sizes))
    spec = dataclasses.replace(spec, actor_kind="squashed_gaussian")  # load_policy rebuilds SquashedGaussianActor
    return save_checkpoint(
        Path(run_dir) / CHECKPOINT_FILE,
        algo=agent.algo,
        config=config,
        global_step=iteration * config.num_envs,
        update=agent.updates,
        spec=spec,
        actor=agent.actor,
        modules=agent.modules(),
        optimizers=agent.optimizers(),
        envs=envs,
        extra={
            "actor_kind": "squashed_gaussian",
            "agent": agent.extra_state(),
            "buffer": buffer.state_dict(),
            "warmup_rng": warmup_rng.bit_generator.state,
            "obs": np.array(obs, copy=True),
            "iteration": iteration,
        },
    )


__all__ = [
    "EVAL_SEED_OFFSET",
    "SACConfig",
    "SoftActorCritic",
    "SoftQNetwork",
    "critic_loss",
    "evaluate",
    "polyak_update",
    "sac_actor_loss",
    "soft_td_target",
    "temperature_loss",
    "train",
]

"""The loop every PPO-family algorithm shares: collect, estimate advantages, update, log, checkpoint.

`OnPolicyTrainer.train()` runs (or resumes) a run. An algorithm (ppo.py, props.py, mdpo.py)
subclasses it and writes what makes it itself: `policy_loss` (the surrogate objective), and for
PROPS the sampling policy, the buffer of previous batches and the behaviour update. Metric names:
`charts/SPS`, `charts/episodic_return`, `charts/episodic_length`, `charts/learning_rate`,
`losses/policy_loss`, `losses/value_loss`, `losses/entropy`, `losses/approx_kl`,
`losses/clipfrac`, `losses/explained_variance`, `rollout/sampling_error`, `rollout/eval_mean_return` (the
deterministic policy, as `policyopt export` would ship it, over `eval_episodes` evaluation episodes).
"""

from __future__ import annotations

import abc
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Distribution

from policyopt.checkpoint import (
    CHECKPOINT_FILE,
    DeployedPolicy,
    load_checkpoint,
    restore_training,
    save_checkpoint,
)
from policyopt.configs import OnPolicyConfig
from policyopt.envs import episode_returns, make_vector_env, observation_normalizer
from policyopt.evaluation import EVAL_SEED_OFFSET, evaluate_policy
from policyopt.networks import Actor, ActorCritic, PolicySpec
from policyopt.rollout import RolloutStorage, compute_gae
from policyopt.sampling_error import sampling_error
from runkit import get_logger, prepare_run_dir, write_summary
from runkit.checkpoint import CheckpointError
from runkit.metrics import RunLogger
from runkit.seeding import seed_everything

log = get_logger("policyopt.onpolicy")

Batch = dict[str, torch.Tensor]


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 - Var[returns - values] / Var[returns] (NaN when the returns do not vary)."""
    variance = float(returns.var()) if returns.numel() > 1 else 0.0
    return float("nan") if variance == 0.0 else 1.0 - float((returns - values).var()) / variance


class OnPolicyTrainer(abc.ABC):
    """A run of an on-policy actor-critic algorithm; subclasses define `policy_loss`."""

    algo = "onpolicy"
    buffer_batches = 1
    """Batches the storage keeps (PROPS keeps several; PPO and MDPO one)."""

    def __init__(self, config: OnPolicyConfig) -> None:
        self.config = cfg = config.resolved()  # runkit's smoke rule; the default run folder filled in
        seed_everything(cfg.seed, cfg.torch_deterministic, cfg.torch_threads)
        self.run_dir = cfg.run_path
        self.envs = make_vector_env(
            cfg.env_id,
            cfg.num_envs,
            cfg.seed,
            normalize_observation=cfg.normalize_observation,
            normalize_reward=cfg.normalize_reward,
            gamma=cfg.gamma,
        )
        # The environment's own action bounds (ClipAction reports an unbounded space): a deployed policy clips to them.
        self.spec = PolicySpec.from_spaces(
            self.envs.single_observation_space, self.envs.unwrapped.single_action_space, cfg.hidden_sizes
        )
        self.agent = ActorCritic(self.spec)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=cfg.learning_rate, eps=1e-5)
        obs_shape = tuple(self.envs.single_observation_space.shape or ())
        action_shape = () if self.spec.discrete else (self.spec.action_dim,)
        self.storage = RolloutStorage.empty(
            cfg.num_steps * self.buffer_batches, cfg.num_envs, obs_shape, action_shape, self.spec.discrete
        )
        self.filled_rows = 0
        """Rows of the storage that hold data (grows to the buffer's size, then stays)."""
        self.global_step = 0
        self.update = 0
        obs, _ = self.envs.reset(seed=cfg.seed)
        self.next_obs = torch.as_tensor(obs, dtype=torch.float32)
        self.done_prev = torch.zeros(cfg.num_envs)
        self.old_actor: Actor = copy.deepcopy(self.agent.actor)
        self.logger: RunLogger | None = None

    # ------------------------------------------------------------------------------------------
    # What algorithms override

    @abc.abstractmethod
    def policy_loss(self, dist: Distribution, mb: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The policy's loss on a minibatch (to be minimised) and figures to log; `dist` is pi_theta(.|mb obs).

        Each algorithm (PPO, PROPS, MDPO) defines its own; the shared loop has none.
        """

    @abc.abstractmethod
    def value_clip_coef(self) -> float:
        """How far a new value prediction may move from the rollout's in the clipped value loss (`clip_vloss`).

        Each algorithm's config names it (`clip_coef`): the shared loop has no default of its own.
        """

    def sampling_distribution(self, obs: torch.Tensor) -> Distribution:
        """The policy that collects data (the target policy itself, except in PROPS)."""
        return self.agent.distribution(obs)

    def after_env_step(self, row: int) -> dict[str, float]:
        """Hook after each vector step (PROPS updates its behaviour policy here); returns figures to log."""
        return {}

    def modules(self) -> dict[str, nn.Module]:
        """Trained networks, by name (checkpointed)."""
        return {"agent": self.agent}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers, by name (checkpointed)."""
        return {"agent": self.optimizer}

    def training_batch(self) -> Batch:
        """The valid transitions an update trains on, with advantages (flattened over time and envs)."""
        return self._flatten_valid(self.storage, slice(0, self.filled_rows))

    # ------------------------------------------------------------------------------------------
    # Rollout

    def collect(self, first_row: int) -> dict[str, float]:
        """Step the environments `num_steps` times, writing rows first_row... of the storage."""
        cfg = self.config
        s = self.storage
        figures: dict[str, float] = {}
        # numpy views of the storage rows the environment fills (no per-step tensor conversions)
        obs_rows, reward_rows = s.obs.numpy(), s.rewards.numpy()
        terminated_rows, ended_rows, valid_rows = s.terminated.numpy(), s.ended.numpy(), s.valid.numpy()
        for t in range(cfg.num_steps):
            row = first_row + t
            with torch.no_grad():
                dist = self.sampling_distribution(self.next_obs)
                action = dist.sample()
                s.logprobs[row] = dist.log_prob(action)
                s.values[row] = self.agent.value(self.next_obs)
            obs_rows[row] = self.next_obs.numpy()
            s.actions[row] = action
            valid_rows[row] = 1.0 - self.done_prev.numpy()
            obs, reward, terminated, truncated, info = self.envs.step(action.numpy())
            reward_rows[row] = reward
            terminated_rows[row] = terminated
            ended_rows[row] = np.logical_or(terminated, truncated)
            self.done_prev = torch.from_numpy(ended_rows[row].copy())
            self.next_obs = torch.from_numpy(np.array(obs, dtype=np.float32))  # a copy: envs may reuse buffers
            self.global_step += cfg.num_envs
            if self.logger is not None:
                for episodic_return, length in episode_returns(info):
                    self.logger.scalar("charts/episodic_return", episodic_return, self.global_step)
                    self.logger.scalar("charts/episodic_length", length, self.global_step)
            figures.update(self.after_env_step(row))
        return figures

    def advantages(self, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE over storage rows `rows` (the newest row must be the last one collected)."""
        s = self.storage
        with torch.no_grad():
            next_value = self.agent.value(self.next_obs)
        return compute_gae(
            s.rewards[rows],
            s.values[rows],
            s.terminated[rows],
            s.ended[rows],
            s.valid[rows],
            next_value,
            self.config.gamma,
            self.config.gae_lambda,
        )

    def _flatten_valid(self, s: RolloutStorage, rows: slice) -> Batch:
        advantages, returns = self.advantages(rows)
        mask = s.valid[rows].reshape(-1) > 0.5
        batch = {
            "obs": s.obs[rows].reshape(-1, *s.obs.shape[2:]),
            "actions": s.actions[rows].reshape(-1, *s.actions.shape[2:]),
            "logprobs": s.logprobs[rows].reshape(-1),
            "values": s.values[rows].reshape(-1),
            "advantages": advantages.reshape(-1),
            "returns": returns.reshape(-1),
        }
        return {k: v[mask] for k, v in batch.items()}

    # ------------------------------------------------------------------------------------------
    # Update

    def learning_rate(self) -> float:
        """Learning rate of the current update (linear annealing to zero when `anneal_lr`)."""
        cfg = self.config
        if not cfg.anneal_lr:
            return cfg.learning_rate
        return cfg.learning_rate * (1.0 - (self.update - 1.0) / cfg.num_updates)

    def update_networks(self, batch: Batch) -> dict[str, float]:
        """Epochs of minibatch SGD on the policy loss, the value loss and the entropy bonus."""
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        self.old_actor.load_state_dict(self.agent.actor.state_dict())
        n = int(batch["obs"].shape[0])
        sums: dict[str, float] = {}
        count = 0
        approx_kl = 0.0
        stop = False
        for _epoch in range(cfg.update_epochs):
            order = torch.randperm(n)
            for index in torch.tensor_split(order, cfg.num_minibatches):
                if index.numel() < 2:
                    continue
                mb = {k: v[index] for k, v in batch.items()}
                if cfg.norm_adv:
                    adv = mb["advantages"]
                    mb["advantages"] = (adv - adv.mean()) / (adv.std() + 1e-8)
                dist = self.agent.distribution(mb["obs"])
                if cfg.target_kl is not None and cfg.target_kl_per_minibatch:
                    with torch.no_grad():
                        logratio = dist.log_prob(mb["actions"]) - mb["logprobs"]
                        if float(((logratio.exp() - 1.0) - logratio).mean()) > cfg.target_kl:
                            stop = True  # checked before the step: the first minibatch beyond target_kl ends the update
                            break
                pg_loss, stats = self.policy_loss(dist, mb)
                entropy = dist.entropy().mean()
                v_loss = self.value_loss(self.agent.value(mb["obs"]), mb)
                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.agent.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    logratio = dist.log_prob(mb["actions"]) - mb["logprobs"]
                    approx_kl = float(((logratio.exp() - 1.0) - logratio).mean())
                figures = {"policy_loss": pg_loss, "value_loss": v_loss, "entropy": entropy, **stats}
                for key, value in figures.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach())
                sums["approx_kl"] = sums.get("approx_kl", 0.0) + approx_kl
                count += 1
            if stop or (cfg.target_kl is not None and not cfg.target_kl_per_minibatch and approx_kl > cfg.target_kl):
                break
        out = {f"losses/{k}": v / max(count, 1) for k, v in sums.items()}
        out["losses/explained_variance"] = explained_variance(batch["values"], batch["returns"])
        out["charts/learning_rate"] = self.optimizer.param_groups[0]["lr"]
        return out

    def value_loss(self, new_values: torch.Tensor, mb: Batch) -> torch.Tensor:
        """0.5 * squared error to the returns, clipped around the old values when `clip_vloss`."""
        cfg = self.config
        unclipped = (new_values - mb["returns"]) ** 2
        if not cfg.clip_vloss:
            return 0.5 * unclipped.mean()
        coef = self.value_clip_coef()
        clipped_values = mb["values"] + torch.clamp(new_values - mb["values"], -coef, coef)
        clipped = (clipped_values - mb["returns"]) ** 2
        return 0.5 * torch.max(unclipped, clipped).mean()

    def measure_sampling_error(self, batch: Batch) -> float:
        """Sampling error of the batch's actions under the target policy before the update."""
        return sampling_error(
            self.agent.actor, batch["obs"], batch["actions"], mle_epochs=self.config.sampling_error_epochs
        )

    # ------------------------------------------------------------------------------------------
    # Checkpoints

    def extra_state(self) -> dict[str, Any]:
        """Loop state that is not a network: the carried observation, the storage."""
        return {
            "next_obs": self.next_obs.clone(),
            "done_prev": self.done_prev.clone(),
            "storage": self.storage.state_dict(),
            "filled_rows": self.filled_rows,
        }

    def load_extra_state(self, extra: dict[str, Any], env_restored: bool) -> None:
        """Inverse of `extra_state`; when the environments could not be restored they are reset instead."""
        self.storage.load_state_dict(extra["storage"])
        self.filled_rows = int(extra["filled_rows"])
        if env_restored:
            self.next_obs = extra["next_obs"].clone()
            self.done_prev = extra["done_prev"].clone()
        else:
            obs, _ = self.envs.reset(seed=self.config.seed + 7919 * self.update)
            self.next_obs = torch.as_tensor(obs, dtype=torch.float32)
            self.done_prev = torch.zeros(self.config.num_envs)

    @property
    def checkpoint_path(self) -> Path:
        """The run's checkpoint file."""
        return self.run_dir / CHECKPOINT_FILE

    def save(self) -> Path:
        """Write the checkpoint."""
        return save_checkpoint(
            self.checkpoint_path,
            algo=self.algo,
            config=self.config,
            global_step=self.global_step,
            update=self.update,
            spec=self.spec,
            actor=self.agent.actor,
            modules=self.modules(),
            optimizers=self.optimizers(),
            envs=self.envs,
            extra=self.extra_state(),
        )

    def resume(self) -> None:
        """Continue from the run's checkpoint (CheckpointError when it is another algorithm's or does not fit)."""
        checkpoint = load_checkpoint(self.checkpoint_path)
        state = checkpoint.state
        if state["algo"] != self.algo:
            raise CheckpointError(f"{self.checkpoint_path} was written by {state['algo']!r}, not {self.algo!r}")
        env_restored = restore_training(
            checkpoint, modules=self.modules(), optimizers=self.optimizers(), envs=self.envs
        )
        self.global_step = int(state["global_step"])
        self.update = int(state["update"])
        self.load_extra_state(state["extra"], env_restored)
        log.info(
            "resumed %s at step %d (update %d, environments restored: %s)",
            self.algo,
            self.global_step,
            self.update,
            env_restored,
        )

    # ------------------------------------------------------------------------------------------
    # Evaluation

    def deployed_policy(self) -> DeployedPolicy:
        """The policy as `policyopt export` would ship it now: mean action, frozen observation statistics, clipped."""
        normalizer = observation_normalizer(self.envs)
        state = normalizer.state_dict() if normalizer is not None else None
        return DeployedPolicy(self.spec, self.agent.actor.state_dict(), state)

    def evaluate(self) -> list[float]:
        """Returns of `eval_episodes` deterministic-policy episodes (the same seeds at every evaluation).

        The training's random streams are left as they were (building the deployed policy draws initial
        weights): a run evaluated often trains exactly as one evaluated only at the end.
        """
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            return evaluate_policy(
                self.deployed_policy().act, cfg.env_id, cfg.eval_episodes, seed=cfg.seed + EVAL_SEED_OFFSET
            )

    def evaluation_due(self) -> bool:
        """True after the last update and after each update that crosses a multiple of `eval_every_steps`."""
        cfg = self.config
        if cfg.eval_episodes == 0:
            return False
        every = cfg.eval_every_steps
        crossed = every > 0 and self.global_step // every > (self.global_step - cfg.batch_size) // every
        return crossed or self.update == cfg.num_updates

    # ------------------------------------------------------------------------------------------
    # The run

    def next_rows(self) -> int:
        """First storage row of the next rollout (PROPS shifts its FIFO of batches here)."""
        self.filled_rows = self.config.num_steps
        return 0

    def train(self) -> dict[str, Any]:
        """Run the remaining updates; return a summary (also written to run_dir/summary.json).

        The run folder follows runkit's rules (`prepare_run_dir`): a fresh run in a folder that holds an
        earlier one, and `resume` without a checkpoint, are refused (`RunDirectoryError`).
        """
        cfg = self.config
        resumed = prepare_run_dir(self.run_dir, cfg.resume, self.checkpoint_path)
        if resumed:
            self.resume()
        logger = self.logger = RunLogger(
            self.run_dir,
            cfg.num_updates * cfg.batch_size,
            desc=f"{self.algo} {cfg.env_id}",
            tensorboard=cfg.tensorboard,
            progress=cfg.progress,
            resume_step=self.global_step if resumed else None,
        )
        start_step, start_time = self.global_step, time.perf_counter()
        returns: list[float] = []
        eval_returns: list[float] | None = None
        try:
            while self.update < cfg.num_updates:
                self.update += 1
                first = self.next_rows()
                figures = self.collect(first)
                batch = self.training_batch()
                if cfg.sampling_error_every and self.update % cfg.sampling_error_every == 0:
                    figures["rollout/sampling_error"] = self.measure_sampling_error(batch)
                figures.update(self.update_networks(batch))
                elapsed = max(time.perf_counter() - start_time, 1e-9)
                figures["charts/SPS"] = (self.global_step - start_step) / elapsed
                figures["rollout/valid_fraction"] = float(batch["obs"].shape[0]) / max(
                    self.filled_rows * cfg.num_envs, 1
                )
                logger.scalars(figures, self.global_step)
                recent = logger.last.get("charts/episodic_return")
                if recent is not None:
                    returns.append(recent)
                if self.evaluation_due():
                    eval_returns = self.evaluate()
                    logger.scalar("rollout/eval_mean_return", float(np.mean(eval_returns)), self.global_step)
                logger.advance(cfg.batch_size, ret=recent or float("nan"), sps=figures["charts/SPS"])
                every = cfg.checkpoint_every_steps
                crossed = every > 0 and self.global_step // every > (self.global_step - cfg.batch_size) // every
                if crossed or self.update == cfg.num_updates:
                    logger.flush()
                    self.save()
        finally:
            logger.close()
            self.logger = None
        summary = {
            "algo": self.algo,
            "env_id": cfg.env_id,
            "seed": cfg.seed,
            "global_step": self.global_step,
            "updates": self.update,
            "resumed": resumed,
            "last_episodic_return": returns[-1] if returns else None,
            "eval_returns": eval_returns,
            "eval_mean_return": float(np.mean(eval_returns)) if eval_returns else None,
            "sps": (self.global_step - start_step) / max(time.perf_counter() - start_time, 1e-9),
            "checkpoint": str(self.checkpoint_path),
        }
        write_summary(self.run_dir, summary)
        self.envs.close()
        return summary


__all__ = ["Batch", "OnPolicyTrainer", "explained_variance"]

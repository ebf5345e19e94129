"""PPO with partial updates over whole trials (ReLIC), top to bottom.

A rollout is one trial per environment: `rollout_steps` steps in the same layout, many episodes, the
policy attending over everything the trial has shown it so far. As the authors' trainer does it:

- every `rollout_steps / updates_per_rollout` steps the policy is updated ("partial update"): the loss
  covers only the steps collected since the previous update, while the forward pass attends over the
  whole trial so far (gradients flow through the old steps too, their `ignore_old_obs_grad: False`);
- the last update of a rollout is a full one: the loss covers the whole trial;
- after each update the cached keys and values are recomputed with the new parameters (their
  `update_stale_kv`), and so are the value estimates that returns are computed from (their
  `update_stale_values`; here the values are recomputed just before each update, which gives the same
  numbers); the behaviour log-probabilities of old steps stay those the actions were sampled with
  (their `update_stale_action_probs: False`);
- PPO minibatches hold whole environments (their full sequences), gradients are summed over
  `grad_accum_minibatches` minibatches per optimiser step, and advantages are not normalised.
- Not done here: their relic_base.yaml turns on `shuffle_old_episodes` (after a partial update the
  context's finished episodes are put in a random order); here a trial's episodes stay in the order
  they happened.

A checkpoint is written at rollout boundaries; `--resume` continues from the last one and the run is
the same as an uninterrupted one (tests check it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Categorical

from relicnav import TrialEnv, make_trial_env, trial_seeds
from relicrl.checkpoint import TRAINING_FORMAT, load_training, save_policy, spec_dict
from relicrl.configs import RelicConfig
from relicrl.model import ContextPolicy, ModelSpec, StepInputs, build_policy
from relicrl.tokens import EpisodeTracker, observation_arrays
from runkit import write_summary
from runkit.checkpoint import require, save_envelope
from runkit.config import prepare_run_dir
from runkit.metrics import RunLogger
from runkit.seeding import capture_rng, restore_rng, seed_everything

CHECKPOINT_FILE = "checkpoint.pt"
POLICY_FILE = "policy.pt"


def model_spec(env: TrialEnv, config: RelicConfig) -> ModelSpec:
    """The policy's architecture for an environment's spaces and the run's sizes."""
    spaces = env.observation_space.spaces
    vector_shape = spaces["vector"].shape or (1,)
    image = spaces.get("image")
    image_shape = None
    if image is not None and image.shape is not None:
        height, width, channels = (int(v) for v in image.shape)
        image_shape = (height, width, channels)
    return ModelSpec(
        vector_dim=int(np.prod(vector_shape)),
        num_actions=int(env.action_space.n),
        image_shape=image_shape,
        d_model=config.d_model,
        n_layers=config.n_layers,
        n_heads=config.n_heads,
        d_mlp=config.d_mlp,
        max_episode_steps=max(8, int(env.max_episode_steps)),
        sink_kv=config.sink_kv,
        architecture=config.architecture,
    )


@dataclass
class Rollout:
    """One trial per environment: inputs of `T + 1` steps (the last is the next observation), actions etc."""

    inputs: StepInputs
    actions: Tensor  # B x T long
    log_probs: Tensor  # B x T
    rewards: Tensor  # B x T
    episode_over: Tensor  # B x T bool: the episode ended at this step (terminated or truncated)

    @classmethod
    def empty(cls, batch: int, steps: int, spec: ModelSpec) -> Rollout:
        """Zeroed storage for `steps` steps of `batch` environments."""
        n = steps + 1
        image = None
        if spec.image_shape is not None:
            image = torch.zeros(batch, n, *spec.image_shape, dtype=torch.uint8)
        inputs = StepInputs(
            vector=torch.zeros(batch, n, spec.vector_dim),
            prev_action=torch.zeros(batch, n, dtype=torch.long),
            prev_reward=torch.zeros(batch, n),
            first=torch.zeros(batch, n, dtype=torch.bool),
            episode_step=torch.zeros(batch, n, dtype=torch.long),
            image=image,
        )
        return cls(
            inputs=inputs,
            actions=torch.zeros(batch, steps, dtype=torch.long),
            log_probs=torch.zeros(batch, steps),
            rewards=torch.zeros(batch, steps),
            episode_over=torch.zeros(batch, steps, dtype=torch.bool),
        )

    def write_inputs(self, t: int, step: StepInputs) -> None:
        """Store the inputs of step `t` (a T = 1 `StepInputs`)."""
        self.inputs.vector[:, t] = step.vector[:, 0]
        self.inputs.prev_action[:, t] = step.prev_action[:, 0]
        self.inputs.prev_reward[:, t] = step.prev_reward[:, 0]
        self.inputs.first[:, t] = step.first[:, 0]
        self.inputs.episode_step[:, t] = step.episode_step[:, 0]
        if self.inputs.image is not None and step.image is not None:
            self.inputs.image[:, t] = step.image[:, 0]


def gae(rewards: Tensor, values: Tensor, episode_over: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Advantages and returns (`B x n`) from rewards (`B x n`), values (`B x (n + 1)`) and episode ends.

    An episode's end (terminated or truncated) cuts the bootstrap, as the authors' habitat storage does.
    """
    n = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0])
    for t in reversed(range(n)):
        keep = (~episode_over[:, t]).float()
        delta = rewards[:, t] + gamma * values[:, t + 1] * keep - values[:, t]
        running = delta + gamma * lam * keep * running
        advantages[:, t] = running
    return advantages, advantages + values[:, :n]


def ppo_update(
    policy: ContextPolicy,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    steps: int,
    loss_from: int,
    config: RelicConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """One PPO update on the first `steps` steps, the loss on steps `loss_from .. steps - 1`; returns losses."""
    batch = rollout.actions.shape[0]
    with torch.no_grad():
        _, values = policy(rollout.inputs.slice(slice(None), slice(0, steps + 1)))
    advantages, returns = gae(
        rollout.rewards[:, :steps], values, rollout.episode_over[:, :steps], config.gamma, config.gae_lambda
    )
    window = slice(loss_from, steps)
    per_minibatch = batch // config.num_minibatches
    sums: dict[str, float] = {}
    count = 0
    policy.train()
    for _ in range(config.ppo_epochs):
        order = torch.randperm(batch, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        for j in range(config.num_minibatches):
            envs = order[j * per_minibatch : (j + 1) * per_minibatch]
            logits, new_values = policy(rollout.inputs.slice(envs, slice(0, steps)))
            dist = Categorical(logits=logits[:, window])
            log_probs = dist.log_prob(rollout.actions[envs, window])
            log_ratio = log_probs - rollout.log_probs[envs, window]
            ratio = log_ratio.exp()
            advantage = advantages[envs, window]
            clipped = ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
            policy_loss = -torch.min(advantage * ratio, advantage * clipped).mean()
            value_loss = 0.5 * (new_values[:, window] - returns[envs, window]).pow(2).mean()
            entropy = dist.entropy().mean()
            loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
            (loss / config.grad_accum_minibatches).backward()
            if (j + 1) % config.grad_accum_minibatches == 0:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                figures = {
                    "losses/policy_loss": policy_loss.item(),
                    "losses/value_loss": value_loss.item(),
                    "losses/entropy": entropy.item(),
                    "losses/approx_kl": ((ratio - 1) - log_ratio).mean().item(),
                    "losses/clipfrac": ((ratio - 1).abs() > config.clip_coef).float().mean().item(),
                }
            for name, value in figures.items():
                sums[name] = sums.get(name, 0.0) + value
            count += 1
    policy.eval()
    return {name: value / count for name, value in sums.items()}


def learning_rate(config: RelicConfig, steps_done: int) -> float:
    """Linear warm-up from 1e-3 x lr, then cosine decay to `min_learning_rate` at `total_steps` (the authors')."""
    if steps_done < config.warmup_steps:
        start = 1e-3 * config.learning_rate
        return start + (config.learning_rate - start) * steps_done / config.warmup_steps
    progress = min(1.0, (steps_done - config.warmup_steps) / max(1, config.total_steps - config.warmup_steps))
    low = config.min_learning_rate
    return low + 0.5 * (config.learning_rate - low) * (1 + math.cos(math.pi * progress))


class Trainer:
    """A ReLIC training run: environments, policy, optimiser, counters; `run()` trains to `total_steps`."""

    def __init__(self, config: RelicConfig) -> None:
        self.config = config.resolved()
        self.run_dir = self.config.run_path
        self.checkpoint_path = self.run_dir / CHECKPOINT_FILE
        resumed = prepare_run_dir(self.run_dir, self.config.resume, self.checkpoint_path)
        seed_everything(self.config.seed, self.config.torch_deterministic, self.config.torch_threads)
        self.envs = [make_trial_env(self.config.env) for _ in range(self.config.num_envs)]
        self.spec = model_spec(self.envs[0], self.config)
        self.policy = build_policy(self.spec)
        self.policy.eval()
        self.optimizer = torch.optim.Adam(
            self.policy.parameters(), lr=self.config.learning_rate, eps=self.config.adam_eps
        )
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.rollouts_done = 0
        self.steps_done = 0
        if resumed:
            self._restore()

    def _restore(self) -> None:
        envelope = load_training(self.checkpoint_path)
        state = envelope.state
        require(state.get("spec") == spec_dict(self.spec), envelope, "its model does not match this run's config")
        self.policy.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.rollouts_done = int(state["rollouts_done"])
        self.steps_done = int(state["steps_done"])
        if envelope.rng is not None:
            restore_rng(envelope.rng)

    def save(self) -> None:
        """Write the training checkpoint (atomically)."""
        state = {
            "spec": spec_dict(self.spec),
            "model": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "rollouts_done": self.rollouts_done,
            "steps_done": self.steps_done,
        }
        metadata = {"variant": self.config.variant, "env": self.config.env}
        save_envelope(
            self.checkpoint_path, TRAINING_FORMAT, state, config=self.config, rng=capture_rng(), metadata=metadata
        )

    def _trial_seeds(self) -> list[int]:
        """This rollout's layout seed per environment (held-out layouts are never drawn)."""
        count = self.config.num_envs
        return trial_seeds(self.config.env, "train", count, start=self.rollouts_done * count)

    def collect_and_update(self, logger: RunLogger) -> dict[str, float]:
        """One rollout (a trial per environment) with its partial updates and the final full update."""
        config, policy = self.config, self.policy
        batch, steps = config.num_envs, config.rollout_steps
        every = steps // config.updates_per_rollout
        for env, seed in zip(self.envs, self._trial_seeds(), strict=True):
            env.new_trial(seed)
        observations = [env.reset() for env in self.envs]
        tracker = EpisodeTracker(batch)
        rollout = Rollout.empty(batch, steps, self.spec)
        context = policy.new_context(batch, steps)
        successes: list[tuple[int, bool]] = []  # (episode index in trial, success)
        episode_index = np.zeros(batch, dtype=np.int64)
        returns = np.zeros(batch)
        finished_returns: list[float] = []
        episode_success = np.zeros(batch, dtype=bool)
        last_update = 0
        losses: dict[str, float] = {}
        started = time.perf_counter()
        for t in range(steps):
            step_inputs = tracker.inputs(*observation_arrays(observations, self.spec))
            rollout.write_inputs(t, step_inputs)
            logits, _ = policy.step(step_inputs, context)
            dist = Categorical(logits=logits)
            actions = dist.sample()
            rollout.actions[:, t] = actions
            rollout.log_probs[:, t] = dist.log_prob(actions)
            rewards = np.zeros(batch, dtype=np.float32)
            over = np.zeros(batch, dtype=bool)
            for i, env in enumerate(self.envs):
                obs, reward, terminated, truncated, info = env.step(int(actions[i]))
                rewards[i] = reward
                returns[i] += reward
                episode_success[i] |= bool(info.get("success", False))
                if terminated or truncated:
                    over[i] = True
                    successes.append((int(episode_index[i]), bool(episode_success[i])))
                    finished_returns.append(float(returns[i]))
                    episode_index[i] += 1
                    returns[i] = 0.0
                    episode_success[i] = False
                    obs = env.reset()
                observations[i] = obs
            rollout.rewards[:, t] = torch.from_numpy(rewards)
            rollout.episode_over[:, t] = torch.from_numpy(over)
            tracker.advance(actions.numpy(), rewards, over)
            collected = t + 1
            if collected % every == 0:
                rollout.write_inputs(collected, tracker.inputs(*observation_arrays(observations, self.spec)))
                full = collected == steps
                self._set_learning_rate(self.steps_done + collected * batch)
                losses = ppo_update(
                    policy, self.optimizer, rollout, collected, 0 if full else last_update, config, self.generator
                )
                last_update = collected
                if not full:  # the stale keys and values of the context, recomputed with the new parameters
                    context = policy.rebuild_context(rollout.inputs.slice(slice(None), slice(0, collected)), steps)
        elapsed = time.perf_counter() - started
        self.steps_done += batch * steps
        self.rollouts_done += 1
        figures = dict(losses)
        figures["charts/SPS"] = batch * steps / max(elapsed, 1e-9)
        figures["charts/learning_rate"] = self.optimizer.param_groups[0]["lr"]
        figures.update(_episode_figures(successes, finished_returns))
        logger.scalars(figures, self.steps_done)
        return figures

    def _set_learning_rate(self, steps_done: int) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, steps_done)

    def run(self) -> dict[str, Any]:
        """Train to `total_steps` (from the checkpoint when resuming); write the policy and summary."""
        config = self.config
        resume_step = self.steps_done if config.resume else None
        figures: dict[str, float] = {}
        with RunLogger(
            self.run_dir,
            config.rollouts * config.num_envs * config.rollout_steps,
            desc=f"relic {config.variant} {config.env}",
            progress=config.progress,
            tensorboard=config.tensorboard,
            resume_step=resume_step,
        ) as logger:
            while self.rollouts_done < config.rollouts:
                figures = self.collect_and_update(logger)
                logger.advance(config.num_envs * config.rollout_steps, success=figures.get("rollout/success", 0.0))
                if self.rollouts_done % config.checkpoint_every_rollouts == 0 or self.rollouts_done == config.rollouts:
                    self.save()
                    logger.flush()
        save_policy(self.run_dir / POLICY_FILE, self.policy, metadata={"variant": config.variant, "env": config.env})
        summary = {"variant": config.variant, "env": config.env, "steps": self.steps_done, "last": figures}
        write_summary(self.run_dir, summary)
        return summary


def _episode_figures(successes: list[tuple[int, bool]], returns: list[float]) -> dict[str, float]:
    """Success overall, in a trial's first episode and in its later ones; mean episode return."""
    figures: dict[str, float] = {}
    if successes:
        figures["rollout/success"] = float(np.mean([s for _, s in successes]))
        first = [s for i, s in successes if i == 0]
        later = [s for i, s in successes if i > 0]
        if first:
            figures["rollout/success_first_episode"] = float(np.mean(first))
        if later:
            figures["rollout/success_later_episodes"] = float(np.mean(later))
        figures["rollout/episodes_per_trial"] = float(max(i for i, _ in successes) + 1)
    if returns:
        figures["charts/episodic_return"] = float(np.mean(returns))
    return figures


def train(config: RelicConfig) -> dict[str, Any]:
    """Run (or resume) a training run; return its summary."""
    trainer = Trainer(config)
    try:
        return trainer.run()
    finally:
        for env in trainer.envs:
            env.close()


__all__ = ["CHECKPOINT_FILE", "POLICY_FILE", "Rollout", "Trainer", "gae", "learning_rate", "model_spec", "train"]

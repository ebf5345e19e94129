"""Throughput of policyopt's PPO against a CleanRL-style single-file PPO loop, measured in the same run.

Both train PPO on the same task with the same sizes (environments, rollout length, minibatches, epochs, 64-64
tanh networks with a state-independent log-std, observation and reward normalisation, one torch thread), and
neither logs to TensorBoard; policyopt's per-update sampling-error measurement is off, as it is by default
(`sampling_error_every=0`; the CleanRL loop has nothing like it): the figure is what a user gets. The
evaluation episodes policyopt plays once at the end of a run (10 by default, a fixed cost of a few seconds
whatever the run's length) are turned off: they are not training. The two are
run alternately, `--rounds` times each, after one untimed warm-up of each, so that drift in the machine's load
falls on both. Steps per second = environment steps / wall time of training (policyopt: `PPOTrainer.train()`,
which includes writing its scalars and its final checkpoint; CleanRL-style: the loop after the environments
and the networks are built).

The baseline (`cleanrl_style_ppo`) is this file's own rendering of the classic loop (CleanRL's
`ppo_continuous_action.py` design): a `SyncVectorEnv` of individually wrapped environments
(RecordEpisodeStatistics, ClipAction, NormalizeObservation + clip, NormalizeReward + clip), a combined
`get_action_and_value`, GAE over `next_done`, and the clipped update with value clipping.

Prints one JSON object: `sps_ours`, `sps_cleanrl_style`, `sps_ratio` (target >= 1.0; wall clock), the same
by the process's CPU time (`sps_ratio_cpu_time`: steadier where other jobs share the cores), every round, the
settings. `--profile` adds the top functions of one extra policyopt run (cProfile, cumulative time).

    python bench/rl_sps.py                        # Hopper-v5, ~20 s per measurement, 3 rounds
    python bench/rl_sps.py --env-id HalfCheetah-v5 --updates 8 --rounds 2 --profile
    python bench/rl_sps.py --smoke                # seconds
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bench_prelude  # noqa: F401  (first: one BLAS thread, and this folder off sys.path)
import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Normal

from runkit.config import SMOKE_ENV, smoke_requested

TARGET_SPS_RATIO = 1.0


@dataclass(frozen=True)
class SpsSettings:
    """What both implementations run with (CleanRL's MuJoCo defaults except the budget)."""

    env_id: str = "Hopper-v5"
    num_envs: int = 1
    num_steps: int = 2048
    num_minibatches: int = 32
    update_epochs: int = 10
    hidden: int = 64
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    updates: int = 10
    """Updates per measurement (steps = updates * num_envs * num_steps)."""
    seed: int = 1

    @property
    def total_timesteps(self) -> int:
        """Environment steps of one measurement."""
        return self.updates * self.num_envs * self.num_steps


def log(message: str) -> None:
    """Progress to stderr, keeping stdout for the JSON result."""
    print(f"[bench/rl_sps] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ ours


@dataclass(frozen=True)
class Throughput:
    """Environment steps per second of one measurement, by wall clock and by the process's CPU time."""

    wall: float
    cpu: float


def run_ours(settings: SpsSettings, run_dir: Path) -> Throughput:
    """Train policyopt's PPO with `settings`; return its environment steps per second during `train()`."""
    from policyopt.configs import PPOConfig
    from policyopt.ppo import PPOTrainer

    config = PPOConfig(
        env_id=settings.env_id,
        seed=settings.seed,
        total_timesteps=settings.total_timesteps,
        num_envs=settings.num_envs,
        num_steps=settings.num_steps,
        num_minibatches=settings.num_minibatches,
        update_epochs=settings.update_epochs,
        hidden_sizes=(settings.hidden, settings.hidden),
        learning_rate=settings.learning_rate,
        gamma=settings.gamma,
        gae_lambda=settings.gae_lambda,
        clip_coef=settings.clip_coef,
        ent_coef=settings.ent_coef,
        vf_coef=settings.vf_coef,
        max_grad_norm=settings.max_grad_norm,
        run_dir=run_dir,
        checkpoint_every_steps=0,
        tensorboard=False,
        progress=False,
        sampling_error_every=0,
        eval_episodes=0,  # the end-of-run evaluation episodes are not training (the CleanRL loop has none)
    )
    trainer = PPOTrainer(config)
    start, cpu_start = time.perf_counter(), time.process_time()
    summary = trainer.train()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return Throughput(float(summary["global_step"]) / wall, float(summary["global_step"]) / cpu)


# ------------------------------------------------------------------------------- CleanRL-style loop


def _orthogonal(layer: nn.Linear, gain: float = float(np.sqrt(2.0))) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ClassicAgent(nn.Module):
    """The classic continuous-action PPO agent: separate tanh MLPs and a state-independent log-std."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: int) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            _orthogonal(nn.Linear(obs_dim, hidden)),
            nn.Tanh(),
            _orthogonal(nn.Linear(hidden, hidden)),
            nn.Tanh(),
            _orthogonal(nn.Linear(hidden, 1), 1.0),
        )
        self.actor_mean = nn.Sequential(
            _orthogonal(nn.Linear(obs_dim, hidden)),
            nn.Tanh(),
            _orthogonal(nn.Linear(hidden, hidden)),
            nn.Tanh(),
            _orthogonal(nn.Linear(hidden, action_dim), 0.01),
        )
        self.actor_logstd = nn.Parameter(torch.zeros(1, action_dim))

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        """V(x), shape `batch x 1`."""
        return self.critic(x)

    def get_action_and_value(
        self, x: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sampled (or given) action, its log-probability, the entropy and V(x)."""
        mean = self.actor_mean(x)
        dist = Normal(mean, self.actor_logstd.expand_as(mean).exp())
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action).sum(1), dist.entropy().sum(1), self.critic(x)


def _classic_env(env_id: str, gamma: float) -> gym.Env:
    env = gym.make(env_id)
    env = gym.wrappers.FlattenObservation(env)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env = gym.wrappers.ClipAction(env)
    env = gym.wrappers.NormalizeObservation(env)
    env = gym.wrappers.TransformObservation(env, lambda obs: np.clip(obs, -10, 10), env.observation_space)
    env = gym.wrappers.NormalizeReward(env, gamma=gamma)
    return gym.wrappers.TransformReward(env, lambda reward: min(max(float(reward), -10.0), 10.0))


def cleanrl_style_ppo(settings: SpsSettings) -> Throughput:
    """The classic single-file PPO loop; return its environment steps per second (the loop, after setup)."""
    s = settings
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    envs = gym.vector.SyncVectorEnv([lambda: _classic_env(s.env_id, s.gamma) for _ in range(s.num_envs)])
    obs_dim = int(np.prod(envs.single_observation_space.shape or ()))
    action_dim = int(np.prod(envs.single_action_space.shape or ()))
    agent = ClassicAgent(obs_dim, action_dim, s.hidden)
    optimizer = torch.optim.Adam(agent.parameters(), lr=s.learning_rate, eps=1e-5)
    batch_size = s.num_envs * s.num_steps
    minibatch_size = batch_size // s.num_minibatches
    obs = torch.zeros((s.num_steps, s.num_envs, obs_dim))
    actions = torch.zeros((s.num_steps, s.num_envs, action_dim))
    logprobs = torch.zeros((s.num_steps, s.num_envs))
    rewards = torch.zeros((s.num_steps, s.num_envs))
    dones = torch.zeros((s.num_steps, s.num_envs))
    values = torch.zeros((s.num_steps, s.num_envs))

    global_step = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    next_obs_np, _ = envs.reset(seed=s.seed)
    next_obs = torch.Tensor(next_obs_np)
    next_done = torch.zeros(s.num_envs)
    for iteration in range(1, s.updates + 1):
        optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / s.updates) * s.learning_rate
        for step in range(s.num_steps):
            global_step += s.num_envs
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob
            next_obs_np, reward, terminations, truncations, _ = envs.step(action.numpy())
            rewards[step] = torch.tensor(reward).view(-1)
            next_obs = torch.Tensor(next_obs_np)
            next_done = torch.Tensor(np.logical_or(terminations, truncations).astype(np.float32))

        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = torch.zeros(s.num_envs)
            for t in reversed(range(s.num_steps)):
                if t == s.num_steps - 1:
                    nextnonterminal, nextvalues = 1.0 - next_done, next_value
                else:
                    nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
                delta = rewards[t] + s.gamma * nextvalues * nextnonterminal - values[t]
                lastgaelam = delta + s.gamma * s.gae_lambda * nextnonterminal * lastgaelam
                advantages[t] = lastgaelam
            returns = advantages + values

        b_obs = obs.reshape((-1, obs_dim))
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape((-1, action_dim))
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)
        b_inds = np.arange(batch_size)
        for _epoch in range(s.update_epochs):
            rng.shuffle(b_inds)
            for begin in range(0, batch_size, minibatch_size):
                mb_inds = b_inds[begin : begin + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb_inds], b_actions[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    _approx_kl = ((ratio - 1) - logratio).mean()
                    _clipfrac = ((ratio - 1.0).abs() > s.clip_coef).float().mean().item()
                mb_adv = b_advantages[mb_inds]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * torch.clamp(ratio, 1 - s.clip_coef, 1 + s.clip_coef))
                newvalue = newvalue.view(-1)
                v_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                v_clipped = b_values[mb_inds] + torch.clamp(newvalue - b_values[mb_inds], -s.clip_coef, s.clip_coef)
                v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - b_returns[mb_inds]) ** 2).mean()
                loss = pg_loss.mean() - s.ent_coef * entropy.mean() + v_loss * s.vf_coef
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), s.max_grad_norm)
                optimizer.step()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    envs.close()
    return Throughput(global_step / wall, global_step / cpu)


# ------------------------------------------------------------------------------------------------ run


def profile_ours(settings: SpsSettings, run_dir: Path, top: int = 25) -> list[str]:
    """The `top` functions of one policyopt run by cumulative time (cProfile)."""
    profiler = cProfile.Profile()
    profiler.enable()
    run_ours(settings, run_dir)
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(top)
    return [line for line in stream.getvalue().splitlines() if line.strip()]


def overall(rates: list[float]) -> float:
    """Steps per second over equal-sized measurements: total steps / total time (the harmonic mean)."""
    return len(rates) / sum(1.0 / rate for rate in rates)


def measure(settings: SpsSettings, rounds: int, warmup: SpsSettings, profile: bool) -> dict[str, Any]:
    """Warm both up, then alternate them `rounds` times (the order flips every round)."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="rl_sps_") as tmp:
        log("warm-up")
        run_ours(warmup, Path(tmp) / "warmup")
        cleanrl_style_ppo(warmup)
        ours: list[Throughput] = []
        theirs: list[Throughput] = []
        for index in range(rounds):
            order = ("ours", "cleanrl") if index % 2 == 0 else ("cleanrl", "ours")
            for which in order:
                if which == "ours":
                    ours.append(run_ours(settings, Path(tmp) / f"ours{index}"))
                else:
                    theirs.append(cleanrl_style_ppo(settings))
            log(f"round {index + 1}/{rounds}: ours {ours[-1].wall:.0f} SPS, CleanRL-style {theirs[-1].wall:.0f} SPS")
        profile_lines = profile_ours(settings, Path(tmp) / "profile") if profile else None
    sps_ours = overall([t.wall for t in ours])
    sps_theirs = overall([t.wall for t in theirs])
    cpu_ours = overall([t.cpu for t in ours])
    cpu_theirs = overall([t.cpu for t in theirs])
    result: dict[str, Any] = {
        "sps_ours": sps_ours,
        "sps_cleanrl_style": sps_theirs,
        "sps_ratio": sps_ours / sps_theirs,
        "sps_cpu_time_ours": cpu_ours,
        "sps_cpu_time_cleanrl_style": cpu_theirs,
        "sps_ratio_cpu_time": cpu_ours / cpu_theirs,
        "rounds": [
            {"ours": a.wall, "cleanrl_style": b.wall, "ratio": a.wall / b.wall, "ratio_cpu_time": a.cpu / b.cpu}
            for a, b in zip(ours, theirs, strict=True)
        ],
    }
    if profile_lines is not None:
        result["profile_ours_top_cumulative"] = profile_lines
    return result


def main() -> None:
    """Parse the command line, measure, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-id", default="Hopper-v5")
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument("--num-steps", type=int, default=2048)
    parser.add_argument("--updates", type=int, default=10, help="updates per measurement (~20-30 s on Hopper-v5)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each implementation")
    parser.add_argument("--profile", action="store_true", help="add a cProfile of one more policyopt run")
    parser.add_argument("--smoke", action="store_true", help="a few seconds (also SMOKE_TEST=1)")
    args = parser.parse_args()
    smoke = smoke_requested(args.smoke)
    # The sizes are this script's own, the same for both sides: SMOKE_TEST must not shrink policyopt's alone
    # (its smoke rule shrinks every size left at policyopt's default, e.g. one environment into two).
    os.environ.pop(SMOKE_ENV, None)
    settings = SpsSettings(env_id=args.env_id, num_envs=args.num_envs, num_steps=args.num_steps, updates=args.updates)
    rounds = args.rounds
    if smoke:
        settings = SpsSettings(env_id=args.env_id, num_steps=256, num_minibatches=4, update_epochs=2, updates=2)
        rounds = 1
    warmup = SpsSettings(**{**asdict(settings), "updates": 1})
    started = time.perf_counter()
    figures = measure(settings, rounds, warmup, args.profile)
    result = {
        "benchmark": "rl_sps",
        "smoke": smoke,
        **figures,
        "target_sps_ratio_min": TARGET_SPS_RATIO,
        "pass": figures["sps_ratio"] >= TARGET_SPS_RATIO,
        "settings": {**asdict(settings), "total_timesteps": settings.total_timesteps, "rounds": rounds},
        "notes": "same run, alternating; neither logs to TensorBoard; "
        "policyopt's sampling-error measurement off (its default); "
        "ours includes writing scalars.jsonl and the final checkpoint. sps_* are by wall clock; sps_cpu_time_* "
        "divide by the process's CPU time over the same span (steadier on a shared machine: other processes' "
        "load does not enter it)",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average": list(os.getloadavg()),
            "threads": "torch and BLAS/OpenMP limited to 1 thread",
            "torch": torch.__version__,
            "gymnasium": gym.__version__,
        },
        "wall_time_s": time.perf_counter() - started,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

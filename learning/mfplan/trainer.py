"""Co-training of the time-allocation policy and the multi-fidelity reward estimator.

Each iteration samples allocations for a batch of training courses from the policy, solves their
minimum-snap trajectories, and rewards them with the estimator's view of the highest fidelity:

    reward = -total_time / reference_time - penalty * max(0, z_min - z)
             - certification_penalty * log(certified_time / proposed_time)

where z = -mean / std of the predicted feasibility score of a new flight at the target fidelity
(P(feasible) = Phi(z); the std counts the estimator's uncertainty and the fitted spread between flights,
which the wind causes: every RotorPy evaluation flies in a fresh realisation of it) and
z_min = Phi^-1(`feasibility_probability`). The last term charges the time scale the certificate had to add
to the proposal: without it every proposal faster than the boundary earns the same reward (the search slows
it down to the same plan), so the proposals drift ever faster and the policy's own times mean nothing.
The policy is updated by PPO (clipped ratio, epochs stopped early past `target_kl`) with a
per-course baseline: the mean reward of that course's samples (each course is a one-step episode).
Exploration follows a schedule, not a learned parameter: the actions' standard deviation falls
log-linearly over the run, so the mean action (what the planner flies) ends up tuned where it acts.
Every `refit_every` iterations a cost-aware multi-fidelity acquisition picks which of the current
proposals to evaluate at which fidelity, the evaluations are appended to the data set (append-only,
on disk), and the estimator is refitted on it: it improves where the policy proposes.

The run folder follows runkit's rules (`runkit.config.prepare_run_dir`): a fresh run in a folder that
holds an earlier one is refused, and so is `--resume` where there is no checkpoint. It holds
`trainer_state.pt` (`mfplan.trainer/2`, a runkit envelope: policy, optimiser, estimator, costs, the
trainer's own generators; the run's config; python's, numpy's and torch's generators), `policy.pt`
(`mfplan.policy/2`), `evaluations.jsonl`, `scalars.jsonl` and TensorBoard events (`runkit.metrics.RunLogger`:
`charts/`, `losses/`, `rollout/`), and at the end `summary.json`.

    mfrl train --run-dir runs/mfrl            # a full run (about an hour on 2 cores)
    mfrl train --smoke                        # a couple of minutes (runs/mfrl/seed0)
    mfrl train --run-dir runs/mfrl --resume   # continue after an interruption
    mfrl train --run-dir runs/mfrl_ft --init-checkpoint runs/mfrl_distill/seed0/policy.pt   # RL fine-tuning
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import norm

from mfplan.analysis import analyse
from mfplan.configs import TRAIN_WIND_SEED_STRIDE, PolicyConfig, TrainConfig, changed_flags
from mfplan.courses import course_set
from mfplan.dataset import EvaluationDataset, EvaluationRecord
from mfplan.dispatch import EvaluationDispatcher, EvaluatorSpec
from mfplan.estimator import FeasibilityEstimator
from mfplan.fidelities import FIDELITY_NAMES, FidelityCosts
from mfplan.planner import CertifiedPlanner
from mfplan.policy import (
    CourseBatch,
    CourseEncoding,
    PolicyCheckpointError,
    TimeAllocationPolicy,
    collate,
    encode_course,
    load_policy,
    retired_formats,
    save_policy,
    segment_times_from_log_factors,
)
from minsnap import EndpointState, Trajectory, solve_min_snap
from minsnap.allocation import scale_to_feasibility_boundary, trapezoidal_times
from quadsim.analytic import AnalyticEvaluator
from runkit import get_logger, prepare_run_dir, write_summary
from runkit.checkpoint import CheckpointError, load_envelope, require, save_envelope
from runkit.cli import typed_one_line
from runkit.metrics import RunLogger
from runkit.seeding import capture_rng, restore_rng, seed_everything

log = get_logger("mfplan.trainer")

TRAINER_CHECKPOINT = "trainer_state.pt"
TRAINER_FORMAT = "mfplan.trainer/2"
"""A runkit envelope (tensors and plain values only: read with `torch.load(weights_only=True)`)."""
TRAINER_KIND = "mfplan trainer checkpoint"
_TRAINER_KEYS = ("iteration", "policy", "optimizer", "estimator", "costs", "numpy_generator", "torch_generator")
POLICY_CHECKPOINT = "policy.pt"
DATASET_FILE = "evaluations.jsonl"
TRAIN_COURSE_SEED_OFFSET = 1_000
UNCERTIFIABLE_TIME_RATIO = 3.0
"""An allocation the planner cannot certify is charged this multiple of the course's reference time."""


class TrainerCheckpointError(CheckpointError):
    """A trainer checkpoint (`trainer_state.pt`) is unreadable, of another format, or does not fit the run."""


@dataclass(frozen=True)
class TrainingCourse:
    """A training course with its start state and reference time (heuristic ratios at the analytic boundary)."""

    course_id: str
    waypoints: np.ndarray
    start: EndpointState
    encoding: CourseEncoding
    reference_time_s: float


@dataclass
class Sample:
    """One sampled allocation of one course, certified as the planner would (time scale searched upwards)."""

    course: TrainingCourse
    action: np.ndarray
    proposed_times_s: np.ndarray
    segment_times_s: np.ndarray
    """The certified segment times (the proposal times the certification scale)."""
    trajectory: Trajectory
    features: np.ndarray
    certified: bool
    reward: float = 0.0

    @property
    def time_ratio(self) -> float:
        """Certified total time over the course's reference time (uncertifiable: the largest scale tried)."""
        return float(self.segment_times_s.sum() / self.course.reference_time_s)


def reference_time_s(waypoints: np.ndarray, start: EndpointState, analytic: AnalyticEvaluator) -> float:
    """Total time of trapezoidal ratios scaled to the analytic feasibility boundary (the reward's unit)."""
    times = trapezoidal_times(waypoints, max_speed_m_s=3.0, max_accel_m_s2=3.0)
    scale, feasible, _ = scale_to_feasibility_boundary(waypoints, times, analytic.is_feasible, start=start)
    return float(scale * times.sum()) if feasible else float(64.0 * times.sum())


def make_training_courses(config: TrainConfig, analytic: AnalyticEvaluator) -> list[TrainingCourse]:
    """The pool of training courses (seeded), some starting from a moving vehicle."""
    rng = np.random.default_rng(config.seed + TRAIN_COURSE_SEED_OFFSET)
    courses = []
    for i, waypoints in enumerate(course_set(config.train_courses, config.seed + TRAIN_COURSE_SEED_OFFSET)):
        start = EndpointState()
        if rng.random() < config.moving_start_fraction:
            first = waypoints[1, :3] - waypoints[0, :3]
            if rng.random() < config.near_waypoint_fraction:  # a replan just before the next waypoint
                waypoints = waypoints.copy()
                waypoints[0, :3] = waypoints[1, :3] - rng.uniform(0.3, 1.0) * first / np.linalg.norm(first)
                first = waypoints[1, :3] - waypoints[0, :3]
            direction = first / np.linalg.norm(first) + 0.5 * rng.normal(size=3)
            start = EndpointState(
                velocity=rng.uniform(0.5, 3.0) * direction / np.linalg.norm(direction),
                acceleration=rng.normal(scale=1.0, size=3),
            )
        encoding = encode_course(waypoints, start.velocity, start.acceleration)
        courses.append(
            TrainingCourse(f"train-{i}", waypoints, start, encoding, reference_time_s(waypoints, start, analytic))
        )
    return courses


def initial_weights(path: Path, network: PolicyConfig) -> dict[str, torch.Tensor]:
    """The weights of the policy checkpoint at `path` (`TrainConfig.init_checkpoint`), read the safe way
    (`mfplan.policy.load_policy`).

    Raises:
        PolicyCheckpointError: no readable policy checkpoint there, or its network is not `network` (one line).
    """
    policy, _ = load_policy(path)
    theirs, ours = asdict(policy.config), asdict(network)
    differ = [f"{name} {theirs[name]} (this run: {ours[name]})" for name in ours if theirs.get(name) != ours[name]]
    if differ:
        raise PolicyCheckpointError(f"{path}: its policy network differs: {', '.join(differ)}; set --policy.* to match")
    return policy.state_dict()


class Trainer:
    """Runs (or resumes) one co-training run in `config.run_dir`.

    The run folder is checked first (`runkit.config.prepare_run_dir`): a fresh run in a folder that holds an
    earlier one, and `resume` without a checkpoint there, raise `runkit.RunDirectoryError` before anything
    in the folder is read or written.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config.resolved()  # runkit's smoke rule; the default run folder filled in
        cfg = self.config
        self.run_dir = cfg.run_path
        self.resumed = prepare_run_dir(self.run_dir, cfg.resume, self.run_dir / TRAINER_CHECKPOINT)
        seed_everything(cfg.seed, cfg.torch_deterministic, cfg.torch_threads)
        self.rng = np.random.default_rng(cfg.seed)
        self.torch_generator = torch.Generator().manual_seed(cfg.seed)
        self.spec = EvaluatorSpec(rotorpy_seed=cfg.rotorpy_seed)
        self.analytic = AnalyticEvaluator(self.spec.vehicle, self.spec.criteria)
        self.policy = TimeAllocationPolicy(cfg.policy)
        if cfg.init_checkpoint is not None:
            self.policy.load_state_dict(initial_weights(cfg.init_checkpoint, cfg.policy))
        self.certifier = CertifiedPlanner(self.policy, self.spec.vehicle, self.spec.criteria, tighten=cfg.tighten)
        self.policy.log_std.requires_grad_(False)  # exploration follows `TrainConfig.action_std`'s schedule
        self.optimizer = torch.optim.Adam(
            [p for p in self.policy.parameters() if p.requires_grad], lr=cfg.learning_rate
        )
        self.estimator = FeasibilityEstimator()
        self.costs = FidelityCosts()
        self.dataset = EvaluationDataset(self.run_dir / DATASET_FILE)
        self.iteration = 0
        self.z_min = float(norm.ppf(cfg.feasibility_probability))
        log.info("preparing %d training courses", cfg.train_courses)
        self.courses = make_training_courses(cfg, self.analytic)
        self.logger: RunLogger | None = None

    # ----------------------------------------------------------------------------------------
    # Checkpoints

    def save_checkpoint(self) -> Path:
        """Write the trainer state (`TRAINER_FORMAT`) and the policy (`policy.pt`) atomically."""
        state = {
            "iteration": self.iteration,
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "estimator": self.estimator.state_dict() if self.estimator.is_fitted else None,
            "costs": self.costs.to_dict(),
            "numpy_generator": self.rng.bit_generator.state,
            "torch_generator": self.torch_generator.get_state(),
        }
        path = save_envelope(
            self.run_dir / TRAINER_CHECKPOINT, TRAINER_FORMAT, state, config=self.config, rng=capture_rng()
        )
        save_policy(self.run_dir / POLICY_CHECKPOINT, self.policy, self.policy_metadata(), config=self.config)
        return path

    def load_checkpoint(self) -> bool:
        """Restore the last checkpoint of the run folder; False if there is none.

        The file is read with `torch.load(weights_only=True)` (nothing in it is unpickled into an object);
        anything but a trainer checkpoint that fits this run raises TrainerCheckpointError (one line).
        """
        path = self.run_dir / TRAINER_CHECKPOINT
        if not path.exists():
            return False
        try:
            retired = {
                tag: advice for tag, advice in retired_formats(path).items() if tag.startswith("mfplan.trainer/")
            }
            envelope = load_envelope(path, (TRAINER_FORMAT,), TRAINER_KIND, retired=retired)
            missing = [key for key in _TRAINER_KEYS if key not in envelope.state]
            require(not missing, envelope, f"lacks the entries {missing} of a {TRAINER_FORMAT} checkpoint")
            require(envelope.rng is not None, envelope, "a trainer checkpoint must hold the random generators")
        except CheckpointError as exc:
            raise TrainerCheckpointError(str(exc)) from None
        state = envelope.state
        try:
            self.iteration = int(state["iteration"])
            self.policy.load_state_dict(state["policy"])
            self.optimizer.load_state_dict(state["optimizer"])
            if state["estimator"] is not None:
                self.estimator.load_state_dict(state["estimator"])
            self.costs = FidelityCosts.from_dict(state["costs"])
            self.rng.bit_generator.state = state["numpy_generator"]
            self.torch_generator.set_state(state["torch_generator"])
            assert envelope.rng is not None
            restore_rng(envelope.rng)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            raise TrainerCheckpointError(f"{path} does not fit this run: {typed_one_line(exc)}") from None
        log.info("resumed from %s at iteration %d (%d evaluations on disk)", path, self.iteration, len(self.dataset))
        return True

    def policy_metadata(self) -> dict[str, Any]:
        """What the policy checkpoint says about how it was made."""
        return {
            "iteration": self.iteration,
            "evaluations": self.dataset.counts(),
            "command": reproduce_command(self.config),
            "init_checkpoint": None if self.config.init_checkpoint is None else str(self.config.init_checkpoint),
        }

    # ----------------------------------------------------------------------------------------
    # Evaluations

    def evaluate_and_record(
        self, dispatcher: EvaluationDispatcher, requests: list[tuple[Sample, str]]
    ) -> list[EvaluationRecord]:
        """Evaluate (sample, fidelity) pairs and append them to the data set."""
        seeds = self.wind_seeds([fidelity for _, fidelity in requests])
        results = dispatcher.evaluate([(sample.trajectory, fidelity) for sample, fidelity in requests], seeds)
        records = []
        for (sample, _), result, seed in zip(requests, results, seeds, strict=True):
            self.costs.record(result.fidelity, result.wall_time_s)
            records.append(
                EvaluationRecord.from_result(
                    sample.features,
                    result,
                    sample.segment_times_s,
                    course_id=sample.course.course_id,
                    wind_seed=seed,
                )
            )
        return self.dataset.append(records)

    def wind_seeds(self, fidelities: list[str]) -> list[int | None]:
        """RotorPy wind seeds for a batch of evaluations: the next unused ones of this run (`vary_wind`).

        Numbered by the RotorPy evaluations already in the data set, so a resumed run goes on where the
        killed one stopped instead of flying the same wind again.
        """
        cfg = self.config
        if not cfg.vary_wind:
            return [None] * len(fidelities)
        done = self.dataset.counts().get("rotorpy", 0)
        seeds: list[int | None] = []
        for fidelity in fidelities:
            if fidelity == "rotorpy":
                if done >= TRAIN_WIND_SEED_STRIDE:
                    raise RuntimeError(f"more than {TRAIN_WIND_SEED_STRIDE} RotorPy evaluations in one run")
                seeds.append(cfg.rotorpy_seed * TRAIN_WIND_SEED_STRIDE + done)
                done += 1
            else:
                seeds.append(None)
        return seeds

    def initial_design(self, dispatcher: EvaluationDispatcher) -> None:
        """Heuristic ratios at several time scales on some courses: every one analytically, some simulated."""
        cfg = self.config
        picks = self.rng.choice(
            len(self.courses), size=min(cfg.initial_design_courses, len(self.courses)), replace=False
        )
        samples = []
        for index in picks:
            course = self.courses[int(index)]
            ratios = trapezoidal_times(course.waypoints, max_speed_m_s=3.0, max_accel_m_s2=3.0)
            ratios *= course.reference_time_s / ratios.sum()
            for scale in cfg.initial_scales:
                samples.append(self.make_sample(course, np.log(scale * ratios / self._base_times(course))))
        requests: list[tuple[Sample, str]] = [(s, "analytic") for s in samples]
        for fidelity, count in cfg.initial_simulated.items():
            for index in self.rng.choice(len(samples), size=min(count, len(samples)), replace=False):
                requests.append((samples[int(index)], fidelity))
        log.info("initial design: %d evaluations (%s)", len(requests), dict(cfg.initial_simulated))
        self.evaluate_and_record(dispatcher, requests)

    def refit(self) -> None:
        """Fit the estimator on the whole data set."""
        X, Y = self.dataset.as_tensors()
        report = self.estimator.fit(X, Y)
        self._scalar("charts/estimator_fit_seconds", report.seconds)
        self._scalar("charts/estimator_points_used", report.num_used)
        for fidelity, count in self.dataset.counts().items():
            self._scalar(f"rollout/evaluations_{fidelity}", count)

    def acquire(self, dispatcher: EvaluationDispatcher, samples: list[Sample]) -> None:
        """Let the cost-aware acquisition pick evaluations among this iteration's samples; evaluate; refit."""
        from mfplan.acquisition import choose_evaluations

        cfg = self.config
        candidates = torch.tensor(np.stack([s.features for s in samples]), dtype=torch.float64)
        picks = choose_evaluations(
            self.estimator,
            candidates,
            self.costs,
            budget_s=cfg.acquisition_budget_s,
            max_count=cfg.acquisition_max_count,
        )
        requests = [(samples[index], fidelity) for index, fidelity in picks]
        if requests:
            chosen = {f: sum(1 for _, g in requests if g == f) for f in FIDELITY_NAMES}
            log.debug("acquisition picked %s", chosen)
            for fidelity, count in chosen.items():
                self._scalar(f"rollout/acquired_{fidelity}", count)
            self.evaluate_and_record(dispatcher, requests)
        self.refit()

    # ----------------------------------------------------------------------------------------
    # Policy

    def _base_times(self, course: TrainingCourse) -> np.ndarray:
        config = self.policy.config
        return course.encoding.segment_lengths_m / config.reference_speed_m_s

    def make_sample(self, course: TrainingCourse, action: np.ndarray) -> Sample:
        """Certify the allocation of one action (per-segment log-time factors) and analyse its trajectory."""
        times = segment_times_from_log_factors(course.encoding.segment_lengths_m, action, self.policy.config)
        plan = self.certifier.certify(course.waypoints, times, course.start)
        if plan.feasible and plan.trajectory is not None:
            trajectory, certified_times = plan.trajectory, plan.segment_times_s
        else:  # cannot be certified (e.g. the path dips below the floor): charge a fixed multiple of the reference
            certified_times = times * (UNCERTIFIABLE_TIME_RATIO * course.reference_time_s / times.sum())
            trajectory = solve_min_snap(course.waypoints, certified_times, start=course.start)
        analysis = analyse(trajectory, self.analytic, plan.analytic if plan.feasible else None)
        return Sample(course, action, times, certified_times, trajectory, analysis.features, plan.feasible)

    def rewards(self, samples: list[Sample]) -> dict[str, float]:
        """Fill each sample's reward; return batch statistics.

        reward = -certified time / reference time - penalty * max(0, z_min - z)
        - certification_penalty * log(certified time / proposed time), with z the estimator's standardised
        margin of feasibility at the highest fidelity (no such term with the analytic reward).
        """
        cfg = self.config
        time_ratio = np.array([s.time_ratio for s in samples])
        if cfg.reward_source == "analytic":
            z = np.full(len(samples), np.inf)
        else:
            features = torch.tensor(np.stack([s.features for s in samples]), dtype=torch.float64)
            mean, std = self.estimator.predict(features, observation_noise=cfg.count_wind_spread)
            z = (-mean / std).numpy()
        shortfall = np.maximum(0.0, self.z_min - z)
        added_scale = np.array(
            [max(0.0, math.log(s.segment_times_s.sum() / s.proposed_times_s.sum())) for s in samples]
        )
        rewards = -time_ratio - cfg.feasibility_penalty * shortfall - cfg.certification_penalty * added_scale
        for sample, reward in zip(samples, rewards, strict=True):
            sample.reward = float(reward)
        return {
            "rollout/reward_mean": float(rewards.mean()),
            "rollout/time_ratio_mean": float(time_ratio.mean()),
            "rollout/prob_feasible_mean": float(norm.cdf(z).mean()),
            "rollout/confident_fraction": float((z >= self.z_min).mean()),
            "rollout/proposal_certified_as_is": float(
                np.mean([np.allclose(s.proposed_times_s, s.segment_times_s) for s in samples])
            ),
            "rollout/certifiable_fraction": float(np.mean([s.certified for s in samples])),
            "rollout/certification_log_scale_mean": float(added_scale.mean()),
        }

    def rollout(self) -> tuple[CourseBatch, torch.Tensor, torch.Tensor, list[Sample]]:
        """Sample allocations for a batch of courses."""
        cfg = self.config
        picks = self.rng.choice(
            len(self.courses), size=min(cfg.courses_per_iteration, len(self.courses)), replace=False
        )
        courses = [self.courses[int(i)] for i in picks for _ in range(cfg.samples_per_course)]
        batch = collate([c.encoding for c in courses])
        with torch.no_grad():
            dist = self.policy.distribution(batch)
            noise = torch.randn(dist.mean.shape, generator=self.torch_generator)
            actions = torch.where(batch.mask, dist.mean + dist.stddev * noise, 0.0)
            old_log_prob = self.policy.log_prob(batch, actions)
        samples = [
            self.make_sample(course, actions[b, : course.encoding.num_segments].numpy().astype(np.float64))
            for b, course in enumerate(courses)
        ]
        return batch, actions, old_log_prob, samples

    def update(
        self, batch: CourseBatch, actions: torch.Tensor, old_log_prob: torch.Tensor, samples: list[Sample]
    ) -> dict[str, float]:
        """PPO update with per-course mean-reward baselines."""
        cfg = self.config
        rewards = torch.tensor([s.reward for s in samples], dtype=torch.float32).view(-1, cfg.samples_per_course)
        advantages = rewards - rewards.mean(dim=1, keepdim=True)
        advantages = (advantages / (advantages.std() + 1e-8)).view(-1)
        stats: dict[str, float] = {}
        for epoch in range(cfg.ppo_epochs):
            log_prob = self.policy.log_prob(batch, actions)
            ratio = torch.exp(log_prob - old_log_prob)
            clipped = torch.clamp(ratio, 1.0 - cfg.clip_ratio, 1.0 + cfg.clip_ratio)
            loss = -torch.min(ratio * advantages, clipped * advantages).mean()
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            with torch.no_grad():
                log_ratio = log_prob - old_log_prob
                stats = {
                    "losses/policy_loss": float(loss),
                    "losses/approx_kl": float(((ratio - 1.0) - log_ratio).mean()),
                    "losses/clipfrac": float(((ratio - 1.0).abs() > cfg.clip_ratio).float().mean()),
                    "losses/epochs": float(epoch + 1),
                }
            if cfg.target_kl is not None and stats["losses/approx_kl"] > cfg.target_kl:
                break
        stats["charts/action_std"] = float(self.policy.action_std.detach())
        return stats

    # ----------------------------------------------------------------------------------------
    # The loop

    def _scalar(self, name: str, value: float) -> None:
        if self.logger is not None:
            self.logger.scalar(name, value, self.iteration)

    def train(self) -> dict[str, Any]:
        """Run the remaining iterations; return a summary (also written to the run folder's summary.json)."""
        cfg = self.config
        resumed = self.resumed and self.load_checkpoint()
        started = time.perf_counter()
        start_iteration, samples_done = self.iteration, 0
        use_estimator = cfg.reward_source == "estimator"
        stats: dict[str, float] = {}
        with (
            RunLogger(
                self.run_dir,
                cfg.iterations,
                desc="mfrl train",
                unit="it",
                progress=cfg.progress,
                resume_step=self.iteration if resumed else None,
            ) as logger,
            EvaluationDispatcher(self.spec, cfg.num_workers, cfg.ray_address) as dispatcher,
        ):
            self.logger = logger
            logger.text("command", reproduce_command(cfg))
            try:
                if use_estimator and len(self.dataset) == 0:
                    self.initial_design(dispatcher)
                if use_estimator and not self.estimator.is_fitted:
                    self.refit()
                loop_started = time.perf_counter()
                while self.iteration < cfg.iterations:
                    self.iteration += 1
                    with torch.no_grad():
                        self.policy.log_std.fill_(math.log(cfg.action_std(self.iteration)))
                    batch, actions, old_log_prob, samples = self.rollout()
                    stats = self.rewards(samples)
                    stats.update(self.update(batch, actions, old_log_prob, samples))
                    samples_done += len(samples)
                    # sampled allocations (each certified and rewarded) per second since this session's first iteration
                    stats["charts/SPS"] = samples_done / max(time.perf_counter() - loop_started, 1e-9)
                    logger.scalars(stats, self.iteration)
                    logger.advance(
                        1,
                        time=stats["rollout/time_ratio_mean"],
                        as_is=stats["rollout/proposal_certified_as_is"],
                        p_ok=stats["rollout/prob_feasible_mean"],
                        n=len(self.dataset),
                    )
                    if use_estimator and self.iteration % cfg.refit_every == 0:
                        self.acquire(dispatcher, samples)
                    if self.iteration % cfg.checkpoint_every == 0 or self.iteration == cfg.iterations:
                        logger.flush()
                        self.save_checkpoint()
            finally:
                self.logger = None
        summary = {
            "iterations": self.iteration,
            "iterations_this_session": self.iteration - start_iteration,
            "resumed": resumed,
            "wall_time_s": time.perf_counter() - started,
            "evaluations": self.dataset.counts(),
            "final_stats": stats,
            "policy": str(self.run_dir / POLICY_CHECKPOINT),
            "command": reproduce_command(cfg),
        }
        write_summary(self.run_dir, summary)
        return summary


_NOT_IN_COMMAND = ("run_dir", "policy", "resume", "smoke", "progress")
"""Fields `reproduce_command` does not spell out (the run folder comes first; smoke sizes appear as values; progress
bars change nothing in the run)."""


def reproduce_command(config: TrainConfig) -> str:
    """The `mfrl train` command line that makes this (resolved) configuration: the run folder, then a flag for
    every field that differs from its default."""
    defaults = TrainConfig()
    flags = [f"--run-dir {config.run_path}", *changed_flags(config, _NOT_IN_COMMAND)]
    if config.policy != defaults.policy:
        flags.append("# with a non-default PolicyConfig (see the file's config)")
    return "mfrl train " + " ".join(flags)


def train(config: TrainConfig) -> dict[str, Any]:
    """Train (or resume) and return the run summary."""
    return Trainer(config).train()


__all__ = ["TRAINER_FORMAT", "TrainConfig", "Trainer", "TrainerCheckpointError", "train"]

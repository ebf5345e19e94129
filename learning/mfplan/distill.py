"""Warm start of the time-allocation policy: regression on the reference optimiser's segment times.

The planner flies the policy's split of a course at the certificate's boundary (tightened plans from rest)
or the policy's own times (replans in motion). Trained by MFRL alone, the shipped policy's split was 4-5 %
longer than the snap-optimal split at the same certificate, and a run with the tightened reward did not close
that (learning/mfplan/checkpoints/README.md). `mfplan.evaluation.reference_plan` finds a much better split
(the shortest certified times, searched from the snap-optimal ratios), but takes a few hundred milliseconds a
course. This module fits the policy to it:

1. references: courses of the training distribution (`DistillConfig.moving_fraction` of them replans from a
   moving vehicle, `mfplan.courses.moving_replan`, the rest from rest), each planned by `reference_plan` under
   the planner's certificate, in worker processes. They are written to `references.npz` (flat arrays, read
   with `allow_pickle=False`) every `REFERENCE_CHUNK` courses, so an interrupted run keeps what it computed.
2. regression: the policy's mean log-time factors against ``log(T_ref / T_base)`` (the inverse of
   `mfplan.policy.segment_times_from_log_factors`), mean squared error over real segments, Adam; a few percent
   of the courses are held back and the epoch with the lowest validation error is written as `policy.pt`.
   With `moving_teacher="initial"` the replans from a moving vehicle are fitted to the starting policy's own
   times instead, so that only the plans from rest learn the reference's split (see `DistillConfig`).

This is not the paper's method: MFRL trains the policy by RL alone against its multi-fidelity reward. Here the
slow analytic optimiser is the teacher and the highest fidelity is checked afterwards, by calibrating the
result like any policy (`mfrl calibrate --checkpoint RUN/policy.pt --tighten`: RotorPy flights at the
certificate's boundary) and evaluating it (`mfrl eval`). The run folder follows runkit's rules (a fresh run
refuses a used folder; `--resume` continues the references and the fit from their last save).

    mfrl distill --run-dir runs/mfrl_distill        # ~20 min on 2 cores (references ~17 min, fit ~3 min)
    mfrl distill --smoke                            # seconds
"""

from __future__ import annotations

import io
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from mfplan.configs import DistillConfig, changed_flags
from mfplan.courses import course_set, moving_replan
from mfplan.evaluation import reference_plan
from mfplan.planner import planner_certificate
from mfplan.policy import (
    CourseEncoding,
    TimeAllocationPolicy,
    collate,
    encode_course,
    load_policy,
    save_policy,
)
from minsnap import EndpointState
from runkit import get_logger, prepare_run_dir, write_bytes_atomic, write_summary
from runkit.checkpoint import CheckpointError, load_envelope, require, save_envelope
from runkit.cli import UserError
from runkit.metrics import RunLogger, progress_bar
from runkit.seeding import capture_rng, restore_rng, seed_everything

log = get_logger(__name__)

DISTILL_FORMAT = "mfplan.distill/1"
DISTILL_KIND = "mfrl distill fit"
FIT_CHECKPOINT = "distill_state.pt"
REFERENCES_FILE = "references.npz"
POLICY_CHECKPOINT = "policy.pt"
DISTILL_COURSE_SEED_OFFSET = 2_000
"""Courses come from seed + offset (the training pool uses + 1,000; the held-out set its own fixed seed)."""
REFERENCE_CHUNK = 256
"""References computed between two saves of `references.npz`."""
MOVING_DISPLACEMENTS_M = (0.0, 1.0, 2.0, 3.0)


class DistillError(UserError):
    """A run folder whose references or fit checkpoint do not fit this run (one line, exit status 2)."""


@dataclass(frozen=True)
class Course:
    """One course to plan: waypoints `N x 4` and the start state (at rest unless moving)."""

    waypoints: NDArray[np.float64]
    start: EndpointState


def distillation_courses(config: DistillConfig) -> list[Course]:
    """The run's courses (seeded): `moving_fraction` of them replans from a moving vehicle."""
    rng = np.random.default_rng(config.seed + DISTILL_COURSE_SEED_OFFSET)
    courses = []
    for index, nominal in enumerate(course_set(config.courses, config.seed + DISTILL_COURSE_SEED_OFFSET)):
        if rng.random() < config.moving_fraction:
            displacement = float(rng.choice(MOVING_DISPLACEMENTS_M))
            replan = moving_replan(nominal, displacement, rng, index)
            courses.append(Course(replan.waypoints, replan.start))
        else:
            courses.append(Course(nominal, EndpointState()))
    return courses


_WORKER_CERTIFICATE: Any = None


def reference_times(course: Course) -> NDArray[np.float64] | None:
    """Segment times of `reference_plan` under the planner's default certificate (None: none certifiable)."""
    global _WORKER_CERTIFICATE
    if _WORKER_CERTIFICATE is None:
        _WORKER_CERTIFICATE = planner_certificate()
    certificate = _WORKER_CERTIFICATE
    trajectory = reference_plan(course.waypoints, course.start, lambda t: bool(certificate.check(t).passed))
    return None if trajectory is None else np.asarray(trajectory.segment_times_s, dtype=np.float64)


@dataclass
class References:
    """Reference times of the first `len(found)` courses (`times` concatenated over the certified ones)."""

    found: NDArray[np.bool_]
    times: NDArray[np.float64]
    seconds: float
    """Worker time spent on them: wall seconds of each chunk times the workers."""

    def save(self, path: Path, config: DistillConfig) -> None:
        """Write atomically (numpy arrays only), with the seed and course count they belong to."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            found=self.found,
            times=self.times,
            seconds=np.float64(self.seconds),
            identity=np.array([config.seed, config.courses, round(config.moving_fraction * 1e6)], dtype=np.int64),
        )
        write_bytes_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path, config: DistillConfig) -> References:
        """The references saved in `path` for this run (empty when there is no file)."""
        if not path.is_file():
            return cls(np.zeros(0, dtype=bool), np.zeros(0), 0.0)
        try:
            with np.load(path, allow_pickle=False) as data:
                identity = data["identity"].tolist()
                references = cls(data["found"].astype(bool), data["times"].astype(np.float64), float(data["seconds"]))
        except (OSError, KeyError, ValueError) as exc:
            raise DistillError(f"{path} is not a references file of `mfrl distill`: {exc}") from None
        expected = [config.seed, config.courses, round(config.moving_fraction * 1e6)]
        if identity != expected:
            raise DistillError(
                f"{path} holds references of another run (seed, courses, moving fraction x 1e6 = {identity}, this "
                f"run {expected}): resume with the same options, or choose another run folder"
            )
        return references


def compute_references(
    courses: list[Course], path: Path, config: DistillConfig
) -> tuple[list[NDArray[np.float64] | None], float]:
    """Reference times of every course (None where none is certifiable), continuing from `path`'s saved ones."""
    saved = References.load(path, config)
    times: list[NDArray[np.float64] | None] = []
    offset = 0
    for course, found in zip(courses, saved.found, strict=False):
        if found:
            count = course.waypoints.shape[0] - 1
            times.append(saved.times[offset : offset + count])
            offset += count
        else:
            times.append(None)
    seconds = saved.seconds
    remaining = courses[len(times) :]
    if remaining:
        context = multiprocessing.get_context("spawn")  # no fork after torch's threads exist
        with (
            ProcessPoolExecutor(max_workers=config.num_workers, mp_context=context) as pool,
            progress_bar(len(courses), "references", config.progress, unit="course", initial=len(times)) as bar,
        ):
            for first in range(0, len(remaining), REFERENCE_CHUNK):
                chunk = remaining[first : first + REFERENCE_CHUNK]
                began = time.perf_counter()
                times.extend(pool.map(reference_times, chunk, chunksize=4))
                seconds += (time.perf_counter() - began) * config.num_workers
                bar.update(len(chunk))
                _save_references(path, times, seconds, config)
    return times, seconds


def _save_references(
    path: Path, times: list[NDArray[np.float64] | None], seconds: float, config: DistillConfig
) -> None:
    found = np.array([t is not None for t in times], dtype=bool)
    flat = [t for t in times if t is not None]
    References(found, np.concatenate(flat) if flat else np.zeros(0), seconds).save(path, config)


def log_factor_targets(
    encoding: CourseEncoding, times_s: NDArray[np.float64], policy: TimeAllocationPolicy
) -> NDArray[np.float64]:
    """The log-time factors whose times (`segment_times_from_log_factors`) are `times_s`, clipped to the policy's
    action range."""
    config = policy.config
    capped = np.minimum(encoding.segment_lengths_m, config.max_segment_time_s * config.reference_speed_m_s)
    factors = np.log(times_s / (capped / config.reference_speed_m_s))
    limit = config.mean_log_factor_limit
    return np.clip(factors, -0.999 * limit, 0.999 * limit)


def regression_loss(
    policy: TimeAllocationPolicy, encodings: list[CourseEncoding], targets: list[NDArray[np.float64]]
) -> torch.Tensor:
    """Mean squared error of the policy's mean log-time factors over the courses' real segments."""
    batch = collate(encodings)
    mean, _ = policy(batch)
    target = torch.zeros_like(mean)
    for row, values in enumerate(targets):
        target[row, : values.shape[0]] = torch.as_tensor(values, dtype=mean.dtype)
    error = torch.where(batch.mask, mean - target, 0.0)
    return error.square().sum() / batch.mask.sum()


def initial_policy(config: DistillConfig) -> TimeAllocationPolicy:
    """The weights the fit starts from: `init_checkpoint`'s, or fresh ones (seeded)."""
    if config.init_checkpoint is None:
        return TimeAllocationPolicy()
    policy, _ = load_policy(config.init_checkpoint)
    return policy


_NOT_IN_COMMAND = ("run_dir", "resume", "smoke", "progress")


def reproduce_command(config: DistillConfig) -> str:
    """The `mfrl distill` command line of this (resolved) configuration."""
    return " ".join(["mfrl distill", f"--run-dir {config.run_path}", *changed_flags(config, _NOT_IN_COMMAND)])


class Distiller:
    """One distillation run in `config.run_dir` (see the module docstring)."""

    def __init__(self, config: DistillConfig) -> None:
        self.config = config.resolved()
        cfg = self.config
        self.run_dir = cfg.run_path
        self.resumed = prepare_run_dir(self.run_dir, cfg.resume, self.run_dir / REFERENCES_FILE)
        seed_everything(cfg.seed, cfg.torch_deterministic, cfg.torch_threads)
        self.policy = initial_policy(cfg)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.learning_rate)
        self.rng = np.random.default_rng(cfg.seed)
        self.epoch = 0
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] = {k: v.clone() for k, v in self.policy.state_dict().items()}

    def save_checkpoint(self) -> None:
        """The fit's state after an epoch (atomic), and the best policy so far as `policy.pt`."""
        state = {
            "epoch": self.epoch,
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "best_policy": self.best_state,
            "numpy_generator": self.rng.bit_generator.state,
        }
        save_envelope(self.run_dir / FIT_CHECKPOINT, DISTILL_FORMAT, state, config=self.config, rng=capture_rng())

    def load_checkpoint(self) -> None:
        """Continue the fit from its last epoch (nothing to do before the first one)."""
        path = self.run_dir / FIT_CHECKPOINT
        if not path.is_file():
            return
        try:
            envelope = load_envelope(path, (DISTILL_FORMAT,), DISTILL_KIND)
            require(envelope.rng is not None, envelope, "a fit checkpoint must hold the random generators")
            state = envelope.state
            self.policy.load_state_dict(state["policy"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.epoch, self.best_epoch = int(state["epoch"]), int(state["best_epoch"])
            self.best_loss = float(state["best_loss"])
            self.best_state = dict(state["best_policy"])
            self.rng.bit_generator.state = state["numpy_generator"]
            assert envelope.rng is not None
            restore_rng(envelope.rng)
        except CheckpointError as exc:
            raise DistillError(str(exc)) from None
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise DistillError(f"{path} does not fit this run: {type(exc).__name__}: {exc}") from None
        log.info("resumed the fit from %s after epoch %d", path, self.epoch)

    def run(self) -> dict[str, Any]:
        """Compute (or continue) the references, fit, write `policy.pt` and summary.json; return the summary."""
        cfg = self.config
        started = time.perf_counter()
        courses = distillation_courses(cfg)
        times, reference_seconds = compute_references(courses, self.run_dir / REFERENCES_FILE, cfg)
        usable = [i for i, t in enumerate(times) if t is not None]
        encodings = {i: encode_course(courses[i].waypoints, courses[i].start.velocity, courses[i].start.acceleration)
                     for i in usable}  # fmt: skip
        targets = {i: log_factor_targets(encodings[i], times[i], self.policy) for i in usable}  # type: ignore[arg-type]
        moving = [i for i in usable if np.any(courses[i].start.velocity)]
        if cfg.moving_teacher == "initial":  # the starting weights (not a resumed fit's) keep their replans in motion
            teacher = initial_policy(cfg)
            for i in moving:
                targets[i] = teacher.mean_log_factors(encodings[i]).astype(np.float64)
        split = np.random.default_rng(cfg.seed + 1).permutation(usable)
        held = max(1, round(cfg.validation_fraction * len(usable)))
        validation, training = sorted(split[:held].tolist()), split[held:].tolist()
        if self.resumed:
            self.load_checkpoint()

        def loss_on(indices: list[int]) -> float:
            with torch.no_grad():
                return float(
                    regression_loss(self.policy, [encodings[i] for i in indices], [targets[i] for i in indices])
                )

        if self.epoch == 0:
            self.best_loss = loss_on(validation)  # the starting weights compete too
        initial_validation = self.best_loss if self.epoch == 0 else math.nan
        with RunLogger(
            self.run_dir, cfg.epochs, desc="mfrl distill", unit="epoch", progress=cfg.progress,
            resume_step=self.epoch if self.resumed else None,
        ) as logger:  # fmt: skip
            logger.text("command", reproduce_command(cfg))
            while self.epoch < cfg.epochs:
                self.epoch += 1
                self.policy.train()
                order = self.rng.permutation(training)
                for first in range(0, len(order), cfg.batch_size):
                    chosen = order[first : first + cfg.batch_size].tolist()
                    loss = regression_loss(self.policy, [encodings[i] for i in chosen], [targets[i] for i in chosen])
                    self.optimizer.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.policy.parameters(), 1.0)
                    self.optimizer.step()
                self.policy.eval()
                train_loss, validation_loss = loss_on(training), loss_on(validation)
                if validation_loss < self.best_loss:
                    self.best_loss, self.best_epoch = validation_loss, self.epoch
                    self.best_state = {k: v.clone() for k, v in self.policy.state_dict().items()}
                logger.scalars({"losses/train_mse": train_loss, "losses/validation_mse": validation_loss}, self.epoch)
                logger.advance(1, train=train_loss, val=validation_loss)
                self.save_checkpoint()
        best = TimeAllocationPolicy(self.policy.config)
        best.load_state_dict(self.best_state)
        distillation: dict[str, Any] = {
            "teacher": "mfplan.evaluation.reference_plan under the planner's default certificate",
            "init_checkpoint": None if cfg.init_checkpoint is None else str(cfg.init_checkpoint),
            "courses": len(courses),
            "certified_references": len(usable),
            "moving_references": len(moving),
            "moving_teacher": cfg.moving_teacher,
            "training_courses": len(training),
            "validation_courses": len(validation),
            "epoch": self.best_epoch,
            "validation_mse": self.best_loss,
        }
        metadata = {"command": reproduce_command(cfg), "distillation": distillation}
        save_policy(self.run_dir / POLICY_CHECKPOINT, best.eval(), metadata, config=cfg)
        summary = {
            **distillation,
            "initial_validation_mse": initial_validation,
            "reference_worker_seconds": reference_seconds,
            "wall_time_s": time.perf_counter() - started,
            "policy": str(self.run_dir / POLICY_CHECKPOINT),
            "command": reproduce_command(cfg),
            "next": f"mfrl calibrate --checkpoint {self.run_dir / POLICY_CHECKPOINT} --tighten",
        }
        write_summary(self.run_dir, summary)
        return summary


def distill(config: DistillConfig) -> dict[str, Any]:
    """Run (or resume) a distillation and return its summary."""
    return Distiller(config).run()


__all__ = ["DistillConfig", "DistillError", "Distiller", "distill", "reference_times"]

"""Typed configurations of the `mfrl` commands (train, distill, calibrate, eval, plan): the CLI is a view of these.

Kept apart from the code they configure, and importing neither torch nor BoTorch nor matplotlib, so that
the command line starts light. `TrainConfig` is a `runkit.config.RunConfig` (seed, run folder, resume,
smoke, threads, determinism, progress); every command follows runkit's one smoke rule: `--smoke` or
`SMOKE_TEST=1` shrinks the sizes left at their defaults and never a value the user set
(`mfrl eval --courses 10 --smoke` evaluates 10 courses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from runkit.config import RunConfig, require_config, shrink_defaults, smoke_requested

C = TypeVar("C", "EvalConfig", "CalibrateConfig")

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "mfrl_policy.pt"
"""The package's trained policy (shipped; `mfrl plan`, `mfrl eval` and the ROS replanner load it by default)."""

DISPLACEMENTS_M = (0.0, 1.0, 2.0, 3.0)
TRAIN_WIND_SEED_STRIDE = 100_000
"""Training runs draw RotorPy wind seeds from [seed * stride, (seed + 1) * stride)."""
CALIBRATION_WIND_OFFSET = 90_000
"""Calibration flights use the top of the training run's range: seeds `seed * stride + offset + i`."""
EVAL_WIND_SEEDS = (900_001, 900_002)
"""RotorPy wind realisations of the evaluation: outside every training run's range (seeds < 9)."""

MASS_ERROR_FIDELITIES: dict[str, float] = {"rotorpy_mass+15": 0.15, "rotorpy_mass-15": -0.15}
"""RotorPy flights of a vehicle 15 % heavier or lighter than the controller is told (evaluation only)."""


@dataclass(frozen=True)
class PolicyConfig:
    """Hyper-parameters of the policy (saved in every checkpoint; `mfplan.policy` re-exports it)."""

    d_model: int = 64
    """Width of every token."""
    num_heads: int = 4
    """Attention heads per block (must divide `d_model`)."""
    num_layers: int = 2
    """Transformer blocks."""
    ff_hidden: int = 128
    """Hidden width of each block's feed-forward layer."""
    reference_speed_m_s: float = 3.0
    """A log-time factor of 0 flies a segment's straight-line length at this speed."""
    min_segment_time_s: float = 0.05
    """Floor on every segment time."""
    max_segment_time_s: float = 1.0e6
    """Ceiling on every segment time (keeps absurd courses finite)."""
    mean_log_factor_limit: float = 3.0
    """The mean log-time factor is soft-clamped (scaled tanh) into (-limit, limit)."""
    action_log_factor_limit: float = 4.0
    """Any action (sampled ones too) is clipped to [-limit, limit] before it becomes a time."""
    init_log_std: float = math.log(0.3)
    """Initial log standard deviation of the actions."""
    head_init_std: float = 0.01
    """Initial weight scale of the action heads: a new policy flies every segment near `reference_speed_m_s`."""

    def __post_init__(self) -> None:
        problems = []
        if self.d_model <= 0 or self.num_heads <= 0 or self.d_model % self.num_heads:
            problems.append(f"d_model ({self.d_model}) must be a positive multiple of num_heads ({self.num_heads})")
        if self.num_layers < 0 or self.ff_hidden <= 0:
            problems.append(f"need num_layers >= 0 and ff_hidden > 0, got {self.num_layers}, {self.ff_hidden}")
        if not 0 < self.min_segment_time_s < self.max_segment_time_s < math.inf:
            problems.append(
                f"need 0 < min_segment_time_s < max_segment_time_s < inf, "
                f"got {self.min_segment_time_s}, {self.max_segment_time_s}"
            )
        if not (self.reference_speed_m_s > 0 and math.isfinite(self.reference_speed_m_s)):
            problems.append(f"reference_speed_m_s must be finite and > 0, got {self.reference_speed_m_s}")
        if not 0 < self.mean_log_factor_limit <= self.action_log_factor_limit < 50:
            problems.append(
                "need 0 < mean_log_factor_limit <= action_log_factor_limit < 50, "
                f"got {self.mean_log_factor_limit}, {self.action_log_factor_limit}"
            )
        if problems:
            raise ValueError("invalid PolicyConfig: " + "; ".join(problems))


@dataclass
class TrainConfig(RunConfig):
    """Co-training of the MFRL planning policy and its multi-fidelity reward estimator.

    The run folder (`--run-dir`, default runs/mfrl/seed<seed>) holds the checkpoints, the evaluation data
    set, scalars.jsonl and TensorBoard events, the final policy and summary.json. A fresh run in a folder
    that holds an earlier one is refused (pass `--resume` or another folder).
    """

    iterations: int = 300
    """Policy updates."""
    train_courses: int = 400
    """Size of the pool of training courses (drawn once from the seed; never the held-out test set)."""
    courses_per_iteration: int = 32
    """Courses in one policy update."""
    samples_per_course: int = 8
    """Sampled allocations per course (their mean reward is the course's baseline)."""
    moving_start_fraction: float = 0.3
    """Fraction of courses that start from a moving vehicle (a replan in the air)."""
    near_waypoint_fraction: float = 0.5
    """Of the moving starts, the fraction that start close to the next waypoint (0.3-1.0 m before it, flying
    toward it): a replan there must not brake the vehicle to a near stop."""
    ppo_epochs: int = 4
    """Gradient passes over each batch."""
    clip_ratio: float = 0.2
    """PPO's clipping of the probability ratio."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    target_kl: float | None = 0.05
    """Stop an update's epochs early once the approximate KL to the rollout policy passes this (None: never).
    The exploration noise shrinks to `final_action_std`, where a fixed Adam step moves the mean by many
    standard deviations."""
    reward_source: str = "estimator"
    """"estimator": the multi-fidelity reward estimator (MFRL); "analytic": the analytic check alone
    (single-fidelity ablation: no estimator, no simulated evaluations)."""
    feasibility_probability: float = 0.9
    """The estimator's probability of feasibility at the highest fidelity that the policy must reach."""
    feasibility_penalty: float = 0.5
    """Reward lost per unit of standardised margin short of that probability (and per unit of analytic score)."""
    certification_penalty: float = 1.0
    """Reward lost per unit of log time scale the certificate adds to a proposal (log(certified / proposed)).
    Without it the reward is flat below the boundary (the search slows every too-fast proposal down to the same
    plan), the proposals drift ever faster, and the policy's own times, which calibration measures and the
    planner starts from, stop meaning anything: the planner then pays a search on every plan."""
    tighten: bool = False
    """Reward plans from rest at the certificate's boundary of the policy's split (`CertifiedPlanner(tighten=True)`,
    as a checkpoint calibrated with `mfrl calibrate --tighten` plans): the reward is then the time of the split,
    not of the proposal's own scale. Replans from a moving start are rewarded as proposed either way."""
    initial_design_courses: int = 40
    """Training courses evaluated before the first fit, with heuristic ratios at several time scales."""
    initial_scales: tuple[float, ...] = (1.0, 1.1, 1.25, 1.4, 1.6, 1.8, 2.0)
    """Time scales of the initial design, relative to the analytic feasibility boundary."""
    initial_simulated: dict[str, int] = field(default_factory=lambda: {"mujoco": 60, "rotorpy": 40})
    """Evaluations of the initial design at the simulated fidelities (the analytic one evaluates all)."""
    refit_every: int = 10
    """Iterations between acquisition rounds (evaluate, append, refit)."""
    acquisition_budget_s: float = 40.0
    """Expected evaluation seconds spent per acquisition round."""
    acquisition_max_count: int = 16
    """Evaluations per acquisition round at most."""
    checkpoint_every: int = 10
    """Iterations between checkpoints (a kill -9 loses at most this many iterations)."""
    num_workers: int = 2
    """Local worker processes for simulated evaluations."""
    ray_address: str | None = None
    """Dispatch simulated evaluations as Ray tasks on this cluster (e.g. "auto") instead of local workers."""
    rotorpy_seed: int = 0
    """Seed of the high-fidelity simulator's wind and noise: with `vary_wind`, the n-th high-fidelity
    evaluation of the run flies in realisation `rotorpy_seed * TRAIN_WIND_SEED_STRIDE + n`."""
    vary_wind: bool = True
    """Fly every high-fidelity evaluation in a fresh realisation of wind and sensor noise, so the
    estimator learns the spread the wind causes (False: one realisation for the whole run)."""
    count_wind_spread: bool = True
    """Judge P(feasible) on the predicted score of a new flight (the estimator's uncertainty plus the
    fitted spread between flights), not on the mean score alone."""
    initial_action_std: float = 0.3
    """Exploration: standard deviation of the per-segment log-time actions at the first iteration."""
    final_action_std: float = 0.05
    """...and at the last: it falls log-linearly in between, so that the mean action the planner uses is
    tuned to its own neighbourhood rather than kept back from the feasibility boundary by exploration noise."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """The policy network."""
    init_checkpoint: Path | None = None
    """Start from this policy checkpoint's weights (say, a `mfrl distill` result) instead of fresh ones: RL
    fine-tuning. Its network must be `policy`'s; a resumed run goes on from its own checkpoint."""

    def __post_init__(self) -> None:
        super().__post_init__()
        source = self.reward_source
        require_config(source in ("estimator", "analytic"), "reward_source", source, "'estimator' or 'analytic'")
        probability = self.feasibility_probability
        require_config(0.5 <= probability < 1.0, "feasibility_probability", probability, "in [0.5, 1)")
        require_config(self.certification_penalty >= 0.0, "certification_penalty", self.certification_penalty, ">= 0")
        require_config(self.target_kl is None or self.target_kl > 0.0, "target_kl", self.target_kl, "> 0 or None")
        require_config(
            0.0 < self.final_action_std <= self.initial_action_std,
            "final_action_std",
            self.final_action_std,
            f"in (0, initial_action_std = {self.initial_action_std}]",
        )

    def smoke_sizes(self) -> dict[str, Any]:
        """Sizes of a smoke run (about two minutes), where the user left the defaults."""
        return {
            "iterations": 6,
            "train_courses": 16,
            "courses_per_iteration": 8,
            "samples_per_course": 4,
            "initial_design_courses": 6,
            "initial_scales": (1.0, 1.3, 1.7),
            "initial_simulated": {"mujoco": 4, "rotorpy": 2},
            "refit_every": 3,
            "acquisition_budget_s": 4.0,
            "acquisition_max_count": 3,
            "checkpoint_every": 2,
        }

    def default_run_dir(self) -> Path:
        """runs/mfrl/seed<seed>."""
        return Path("runs") / "mfrl" / f"seed{self.seed}"

    def action_std(self, iteration: int) -> float:
        """Exploration standard deviation at `iteration` (1-based): log-linear from initial to final."""
        fraction = min(max((iteration - 1) / max(self.iterations - 1, 1), 0.0), 1.0)
        return float(self.initial_action_std * (self.final_action_std / self.initial_action_std) ** fraction)


@dataclass
class DistillConfig(RunConfig):
    """Warm-start the allocation policy by regression on the reference optimiser's segment times (`mfrl distill`).

    Not the paper's method (MFRL trains the policy by RL alone): see `mfplan.distill`. The run folder (default
    runs/mfrl_distill/seed<seed>) holds the references (`references.npz`, extended as they are computed), the
    fit's checkpoint, scalars.jsonl, the policy (`policy.pt`, the epoch with the lowest validation loss) and
    summary.json; calibrate the policy with `mfrl calibrate --checkpoint .../policy.pt --tighten` before use.
    """

    init_checkpoint: Path | None = DEFAULT_CHECKPOINT
    """Start from these weights (default: the shipped policy); None: a freshly initialised policy."""
    courses: int = 7200
    """Courses of the training distribution whose reference times are computed (some are held back for validation;
    those the reference cannot certify at any scale are dropped)."""
    moving_fraction: float = 0.5
    """Fraction of the courses that are replans from a moving vehicle (`mfplan.courses.moving_replan`, the
    remaining waypoints displaced by 0-3 m); the others start at rest."""
    moving_teacher: str = "reference"
    """Whose times the replans from a moving vehicle are fitted to: "reference", the reference optimiser's, or
    "initial", the starting policy's own (they stay as they were). Measured in learning/mfplan/checkpoints/README.md:
    neither is better on every figure."""
    validation_fraction: float = 0.05
    """Fraction of the courses held back to pick the epoch (lowest mean squared log-time error)."""
    epochs: int = 12
    """Passes over the training courses."""
    batch_size: int = 64
    """Courses per gradient step."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    num_workers: int = 2
    """Worker processes computing references (each a few hundred milliseconds)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.courses >= 4, "courses", self.courses, ">= 4")
        require_config(0.0 <= self.moving_fraction <= 1.0, "moving_fraction", self.moving_fraction, "in [0, 1]")
        require_config(
            0.0 < self.validation_fraction < 0.5, "validation_fraction", self.validation_fraction, "in (0, 0.5)"
        )
        require_config(
            self.moving_teacher in ("initial", "reference"),
            "moving_teacher",
            self.moving_teacher,
            '"initial" or "reference"',
        )
        require_config(self.epochs >= 1, "epochs", self.epochs, ">= 1")
        require_config(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        require_config(
            0.0 < self.learning_rate < 1.0 and math.isfinite(self.learning_rate),
            "learning_rate",
            self.learning_rate,
            "in (0, 1)",
        )
        require_config(self.num_workers >= 1, "num_workers", self.num_workers, ">= 1")

    def smoke_sizes(self) -> dict[str, Any]:
        """Seconds: a dozen courses, two epochs."""
        return {"courses": 12, "epochs": 2, "validation_fraction": 0.25, "batch_size": 4}

    def default_run_dir(self) -> Path:
        """runs/mfrl_distill/seed<seed>."""
        return Path("runs") / "mfrl_distill" / f"seed{self.seed}"


@dataclass
class EvalConfig:
    """Compare MFRL with the heuristic and the baseline on held-out courses, in held-out wind."""

    checkpoint: Path = DEFAULT_CHECKPOINT
    """Policy checkpoint (default: the one shipped with the package)."""
    out_dir: Path = Path("runs/mfrl_eval")
    """Where report.md, report.json and report.png are written."""
    courses: int = 20
    """Held-out courses per set."""
    displacements_m: tuple[float, ...] = DISPLACEMENTS_M
    """Replanning sets: waypoints displaced by these distances (0 = the nominal courses)."""
    moving_displacements_m: tuple[float, ...] = (0.0, 2.0)
    """Moving-replan sets ("moving d=..."): each course interrupted part-way, the vehicle in motion, its remaining
    waypoints displaced by these distances (`mfplan.courses.moving_replan`; empty: none)."""
    fidelities: tuple[str, ...] = ("mujoco", "rotorpy")
    """Simulated fidelities every plan is flown at (the last one is the highest)."""
    model_error_fidelities: tuple[str, ...] = ("rotorpy_mass+15", "rotorpy_mass-15")
    """RotorPy with a vehicle 15 % heavier / lighter than the controller is told: MFRL's plans are also flown
    there, in every held-out wind (`MASS_ERROR_FIDELITIES`; empty: skip)."""
    wind_seeds: tuple[int, ...] = EVAL_WIND_SEEDS
    """RotorPy realisations of wind and sensor noise every plan is flown in (none of them seen in training)."""
    hifi_baseline_courses: int = 8
    """Nominal courses on which the baseline's time scale is also searched with RotorPy flights in the
    training wind (`rotorpy_seed`), then flown in the held-out wind like every plan (0: skip)."""
    max_margin: float = 2.5
    """Largest slow-down of the baseline searched when matching MFRL's feasibility."""
    margin_tolerance: float = 0.02
    """Relative tolerance of every searched time scale."""
    num_workers: int = 2
    """Worker processes for flights."""
    ray_address: str | None = None
    """Fly on a Ray cluster instead of local workers."""
    rotorpy_seed: int = 0
    """The training wind (the seed `mfrl train` used): the wind the `baseline-rotorpy` search flies in."""
    smoke: bool = False
    """Three courses, two sets, one wind, no RotorPy-searched baseline, coarse searches, for what the user left
    at its default (also SMOKE_TEST=1): for tests."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if not self.wind_seeds:
            raise ValueError("wind_seeds must name at least one RotorPy wind realisation")
        unknown = [f for f in self.model_error_fidelities if f not in MASS_ERROR_FIDELITIES]
        if unknown:
            raise ValueError(
                f"unknown model_error_fidelities {unknown}; expected some of {list(MASS_ERROR_FIDELITIES)}"
            )
        if not (self.max_margin > 1.0 and 0.0 < self.margin_tolerance < 0.5):
            raise ValueError(
                f"need max_margin > 1 and 0 < margin_tolerance < 0.5, got {self.max_margin}, {self.margin_tolerance}"
            )

    def smoke_sizes(self) -> dict[str, Any]:
        """Sizes of a smoke run (seconds), where the user left the defaults."""
        return {
            "courses": 3,
            "displacements_m": (0.0, 2.0),
            "moving_displacements_m": (1.0,),
            "wind_seeds": EVAL_WIND_SEEDS[:1],
            "hifi_baseline_courses": 0,
            "margin_tolerance": 0.1,
            "model_error_fidelities": ("rotorpy_mass+15",),
        }

    def resolved(self) -> EvalConfig:
        """The configuration actually run: runkit's smoke rule applied (`--smoke` or SMOKE_TEST=1)."""
        return _smoke_resolved(self, self.smoke, self.smoke_sizes())


@dataclass
class CalibrateConfig:
    """Calibrate a policy's safety margin at the highest fidelity (split conformal) and store it in the checkpoint."""

    checkpoint: Path
    """Policy checkpoint to calibrate: its metadata gains `calibration` (rewritten atomically)."""
    courses: int = 50
    """Calibration courses: random courses of the training distribution, neither training nor held-out ones."""
    winds: int = 2
    """Wind realisations per course (from the training run's range, never the evaluation's)."""
    miss_rate: float = 0.01
    """Fraction of flights allowed to fail at the highest fidelity: the margin is the conformal
    (1 - miss_rate) quantile, which needs at least (1 - miss_rate) / miss_rate flights."""
    seed: int = 0
    """The training run's seed: picks the wind range and the calibration courses."""
    max_margin: float = 2.5
    """Largest slow-down searched."""
    tighten: bool = False
    """Calibrate tightened plans from rest (`CertifiedPlanner(tighten=True)`): the policy's split at the
    certificate's boundary, so that the margin measures how far that boundary is from the highest fidelity's.
    The checkpoint then plans tightened by default. False: the margin slows the policy's own times."""
    tighten_moving: bool = False
    """Calibrate tightened replans in motion too (`CertifiedPlanner(tighten_moving=True)`: the split at the
    certificate's boundary, re-solved with the start state kept); the checkpoint then tightens them by default.
    Off by default: replans from a vehicle that flies a tightened replan are refused more often (4 of 180 chained
    moves against 0 of 180, `bench/replan_chain.py`, 2026-12-07) and take a little longer to plan (p50 2.8 against
    2.2 ms); see learning/mfplan/checkpoints/README.md."""
    tolerance: float = 0.02
    """Relative tolerance of each flight's searched boundary."""
    num_workers: int = 2
    """Worker processes for flights."""
    ray_address: str | None = None
    """Fly on a Ray cluster instead of local workers."""
    smoke: bool = False
    """Four courses, one wind, miss rate 0.2, coarse searches, for what the user left at its default (also
    SMOKE_TEST=1): seconds, for tests."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if not 0.0 < self.miss_rate < 0.5:
            raise ValueError(f"miss_rate must be in (0, 0.5), got {self.miss_rate}")
        if self.courses < 1 or self.winds < 1:
            raise ValueError(f"need at least one course and one wind, got {self.courses}, {self.winds}")

    def smoke_sizes(self) -> dict[str, Any]:
        """Sizes of a smoke run (seconds), where the user left the defaults."""
        return {"courses": 4, "winds": 1, "miss_rate": 0.2, "tolerance": 0.1}

    def resolved(self) -> CalibrateConfig:
        """The configuration actually run: runkit's smoke rule applied (`--smoke` or SMOKE_TEST=1)."""
        return _smoke_resolved(self, self.smoke, self.smoke_sizes())


@dataclass
class PlanConfig:
    """Plan a certified minimum-snap trajectory through a waypoint file with the MFRL policy."""

    waypoints: Path
    """CSV with a header row x,y,z (optional yaw), or YAML."""
    checkpoint: Path = DEFAULT_CHECKPOINT
    """Policy checkpoint (default: the one shipped with the package)."""
    start_velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Velocity (m/s, ENU) of the vehicle at the first waypoint: a replan from a moving vehicle."""
    start_acceleration: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Acceleration (m/s^2, ENU) at the first waypoint."""
    out: Path | None = None
    """Write the JSON here (atomically) instead of to stdout."""


def changed_flags(config: Any, skip: tuple[str, ...]) -> list[str]:
    """The command-line flags of every field of `config` (a dataclass whose class builds with its defaults) that
    differs from its default, except those named in `skip`: how a run's command line is written down."""
    defaults = type(config)()
    flags = []
    for name in (f.name for f in fields(config) if f.name not in skip):
        value = getattr(config, name)
        if value == getattr(defaults, name):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif isinstance(value, tuple):
            flags.append(flag + " " + " ".join(str(v) for v in value))
        elif isinstance(value, dict):
            flags.append(flag + " " + " ".join(f"{k} {v}" for k, v in value.items()))
        else:
            flags.append(f"{flag} {value}")  # None is spelled None, as the parser reads it
    return flags


def _smoke_resolved(config: C, smoke: bool, sizes: dict[str, Any]) -> C:
    """runkit's smoke rule for a command that is not a run (no run folder, nothing to resume)."""
    if not smoke_requested(smoke):
        return config
    return shrink_defaults(replace(config, smoke=True), sizes)

"""Typed configurations of the `mfrl` commands (train, eval, plan): the CLI is a view of these.

Kept apart from the code they configure so that the command line starts without importing BoTorch
or matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mfplan.planner import DEFAULT_CHECKPOINT
from mfplan.policy import PolicyConfig

DISPLACEMENTS_M = (0.0, 1.0, 2.0, 3.0)


@dataclass
class TrainConfig:
    """Co-training of the MFRL planning policy and its multi-fidelity reward estimator."""

    out_dir: Path = Path("runs/mfrl")
    """Run folder: checkpoints, the evaluation data set, TensorBoard logs, the final policy."""
    seed: int = 0
    """Seed of courses, sampling and network initialisation."""
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
    ppo_epochs: int = 4
    """Gradient passes over each batch."""
    clip_ratio: float = 0.2
    """PPO's clipping of the probability ratio."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    reward_source: str = "estimator"
    """"estimator": the multi-fidelity reward estimator (MFRL); "analytic": the analytic check alone
    (single-fidelity ablation: no estimator, no simulated evaluations)."""
    feasibility_probability: float = 0.9
    """The estimator's probability of feasibility at the highest fidelity that the policy must reach."""
    feasibility_penalty: float = 0.5
    """Reward lost per unit of standardised margin short of that probability (and per unit of analytic score)."""
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
    resume: bool = False
    """Continue from `out_dir`'s last checkpoint (the data set is append-only and kept in any case)."""
    smoke: bool = False
    """Shrink every size left at its default so the run finishes in about two minutes (for tests)."""
    num_workers: int = 2
    """Local worker processes for simulated evaluations."""
    ray_address: str | None = None
    """Dispatch simulated evaluations as Ray tasks on this cluster (e.g. "auto") instead of local workers."""
    rotorpy_seed: int = 0
    """Seed of the high-fidelity simulator's wind and noise."""
    torch_threads: int = 1
    """Threads of the trainer's own torch work (small networks: more threads only add contention)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """The policy network."""

    def __post_init__(self) -> None:
        if self.reward_source not in ("estimator", "analytic"):
            raise ValueError(f"reward_source must be 'estimator' or 'analytic', got {self.reward_source!r}")
        if not 0.5 <= self.feasibility_probability < 1.0:
            raise ValueError(f"feasibility_probability must be in [0.5, 1), got {self.feasibility_probability}")

    def resolved(self) -> TrainConfig:
        """The configuration actually run: `smoke` shrinks every size left at its default."""
        if not self.smoke:
            return self
        defaults = TrainConfig()
        shrunk: dict[str, Any] = {
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
        return replace(self, **{k: v for k, v in shrunk.items() if getattr(self, k) == getattr(defaults, k)})


@dataclass
class EvalConfig:
    """Compare MFRL with the heuristic and the baseline on held-out courses."""

    checkpoint: Path = DEFAULT_CHECKPOINT
    """Policy checkpoint (default: the one shipped with the package)."""
    out_dir: Path = Path("runs/mfrl_eval")
    """Where report.md, report.json and report.png are written."""
    courses: int = 20
    """Held-out courses per set."""
    displacements_m: tuple[float, ...] = DISPLACEMENTS_M
    """Replanning sets: waypoints displaced by these distances (0 = the nominal courses)."""
    fidelities: tuple[str, ...] = ("mujoco", "rotorpy")
    """Simulated fidelities every plan is flown at."""
    hifi_baseline_courses: int = 10
    """Nominal courses on which the baseline's time scale is also searched with RotorPy flights (0: skip)."""
    num_workers: int = 2
    """Worker processes for flights."""
    ray_address: str | None = None
    """Fly on a Ray cluster instead of local workers."""
    rotorpy_seed: int = 0
    """Seed of RotorPy's wind and noise (the same for every method)."""
    smoke: bool = False
    """Three courses, two sets, no RotorPy baseline search: seconds, for tests."""

    def resolved(self) -> EvalConfig:
        """The configuration actually run."""
        if not self.smoke:
            return self
        return EvalConfig(
            checkpoint=self.checkpoint,
            out_dir=self.out_dir,
            courses=3,
            displacements_m=(0.0, 2.0),
            fidelities=self.fidelities,
            hifi_baseline_courses=0,
            num_workers=self.num_workers,
            ray_address=self.ray_address,
            rotorpy_seed=self.rotorpy_seed,
            smoke=True,
        )


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

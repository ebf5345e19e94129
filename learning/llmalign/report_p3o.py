"""`llmalign report-p3o`: P3O's KL-reward frontier against PPO's over seeds, produced by one command.

The claim (Wu et al. 2023, Pairwise Proximal Policy Optimization, the reward-KL figure): P3O's frontier of
reward under the hidden judge against KL to the reference (SFT) policy lies above the PPO baseline's at matched
KL. Stages: one Bradley-Terry reward model (trained once, seed 0); per seed an SFT model of the preference task;
per variant (p3o: joint clipping, p3o-separate: separate clipping, ppo), kl_coef and seed a `train_p3o` run from
that SFT model. Every stage is a run folder under `<out_dir>`; a finished stage is reused and an interrupted one
resumes, so the command can be stopped and started again.

The frontier of a variant and seed is the upper envelope of its evaluation points, those of every kl_coef and of
every evaluation along training (update 0, the SFT model itself, included): f(x) = the best reward among the
points with kl_to_sft <= x. It is read on one grid for every variant and seed: `grid_points` (12) evenly spaced KLs
over (0, K], K the largest KL every variant and seed reaches (the smallest over them of their largest
kl_to_sft); 0 is left out, as there every frontier is the SFT model's. Per grid point: each variant's mean and
95 % t-interval over seeds, and the seed-paired difference of each P3O variant minus PPO. Writes
`<out_dir>/p3o_report.json` and `p3o_frontier.png`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from llmalign.configs import JudgeConfig, P3OConfig, SFTConfig
from llmalign.judge import JUDGE_DIR, run_judge
from llmalign.p3o import train_p3o
from llmalign.report import resume_or_clean, stage_finished, stage_summary, t_interval
from llmalign.sft import MODEL_DIR, train_sft
from runkit import get_logger
from runkit.atomic import save_figure, write_json_atomic
from runkit.config import require_config

log = get_logger("llmalign.report_p3o")
VARIANTS: dict[str, tuple[str, str]] = {
    "p3o": ("p3o", "joint"),
    "p3o-separate": ("p3o", "separate"),
    "ppo": ("ppo", "joint"),
}
"""Variant name -> (method, clip) of `P3OConfig` (the names of the trainer's default run folders)."""
BASELINE = "ppo"
METRICS = ("win_rate_vs_sft", "judge_score")
"""The rewards of the frontier: the primary first."""
GRID_POINTS = 12
REPORT_FILE = "p3o_report.json"
PLOT_FILE = "p3o_frontier.png"
_DEFAULTS = P3OConfig()


@dataclass
class P3OReportConfig:
    """P3O's KL-reward frontier against PPO's, over seeds and KL coefficients (each stage resumes or is reused)."""

    out_dir: Path = Path("runs/llmalign/report_p3o")
    """Folder of every stage's run folder and of the report."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds: each has its own SFT model and its own runs of every variant and kl_coef."""
    kl_coefs: tuple[float, ...] = (0.02, 0.1, 0.5)
    """KL penalty weights swept to trace each variant's frontier."""
    variants: tuple[str, ...] = ("p3o", "p3o-separate", "ppo")
    """p3o (joint clipping, V2), p3o-separate (V1) and ppo (the baseline)."""
    updates: int = _DEFAULTS.updates
    """Updates of each run (smoke: the trainer's smoke size)."""
    eval_every: int = _DEFAULTS.eval_every
    """Updates between evaluations: the points along training each run adds to its frontier."""
    grid_points: int = GRID_POINTS
    """KLs the frontiers are read at, evenly spaced over (0, K]."""
    smoke: bool = False
    """Every stage at its smoke sizes (seconds)."""
    progress: bool = False
    """Progress bars of the stages."""
    judge: JudgeConfig = field(default_factory=lambda: JudgeConfig(kind="reward"))
    """The reward model's settings (its run folder is set by the report)."""

    def __post_init__(self) -> None:
        require_config(self.grid_points >= 1, "grid_points", self.grid_points, ">= 1")
        require_config(len(self.seeds) >= 1, "seeds", self.seeds, "at least one seed")
        require_config(len(self.kl_coefs) >= 1, "kl_coefs", self.kl_coefs, "at least one KL coefficient")
        require_config(all(k >= 0 for k in self.kl_coefs), "kl_coefs", self.kl_coefs, ">= 0")
        ok = len(self.variants) >= 1 and all(v in VARIANTS for v in self.variants)
        require_config(ok, "variants", self.variants, f"some of {tuple(VARIANTS)}")
        require_config(self.judge.kind == "reward", "judge.kind", self.judge.kind, "reward (P3O and PPO need one)")


def run_key(variant: str, kl_coef: float, seed: int) -> str:
    """A run's key in the stages and its folder under out_dir: <variant>/kl<kl_coef>/seed<seed>."""
    return f"{variant}/kl{kl_coef:g}/seed{seed}"


def run_stages(config: P3OReportConfig) -> dict[str, Any]:
    """Run (or reuse) every stage; returns the reward model's summary and each run's summary."""
    out = config.out_dir
    judge_dir = out / "judge"
    if not stage_finished(judge_dir):
        log.info("reward model")
        resume_or_clean(judge_dir)  # the judge trains in one go and has no checkpoint
        run_judge(replace(config.judge, run_dir=judge_dir, smoke=config.smoke, progress=config.progress, seed=0))
    runs: dict[str, dict[str, Any]] = {}
    for seed in config.seeds:
        sft_dir = out / "sft" / f"seed{seed}"
        if not stage_finished(sft_dir):
            log.info("sft seed %d", seed)
            resume = resume_or_clean(sft_dir)
            train_sft(SFTConfig(task="preference", seed=seed, run_dir=sft_dir, smoke=config.smoke,
                                progress=config.progress, resume=resume))  # fmt: skip
        for variant in config.variants:
            method, clip = VARIANTS[variant]
            for kl_coef in config.kl_coefs:
                key = run_key(variant, kl_coef, seed)
                run_dir = out / key
                if not stage_finished(run_dir):
                    log.info("%s kl%g seed %d", variant, kl_coef, seed)
                    resume = resume_or_clean(run_dir)
                    run = P3OConfig(method=method, clip=clip, kl_coef=kl_coef, seed=seed, sft_model=sft_dir / MODEL_DIR,
                                    reward_model=judge_dir / JUDGE_DIR)  # fmt: skip
                    train_p3o(replace(run, updates=config.updates, eval_every=config.eval_every, run_dir=run_dir,
                                      smoke=config.smoke, progress=config.progress, resume=resume))  # fmt: skip
                runs[key] = stage_summary(run_dir)
    return {"judge": stage_summary(judge_dir), "runs": runs}


# ------------------------------------------------------------------------------------------- the frontier


def _number(value: Any) -> float:
    """A figure of a summary as a float (a non-finite one was written as null: NaN)."""
    return float("nan") if value is None else float(value)


def envelope_indices(kls: Sequence[float], rewards: Sequence[float], grid: Iterable[float]) -> list[int | None]:
    """Per grid KL x, the index of the best reward among the points with kl <= x (None where there is none).

    Points with a non-finite KL or reward are left out; of equal rewards, the first point is taken.
    """
    kl, reward = np.asarray(kls, dtype=float), np.asarray(rewards, dtype=float)
    usable = np.isfinite(kl) & np.isfinite(reward)
    chosen: list[int | None] = []
    for x in grid:
        eligible = np.flatnonzero(usable & (kl <= x))
        chosen.append(int(eligible[np.argmax(reward[eligible])]) if eligible.size else None)
    return chosen


def envelope(kls: Sequence[float], rewards: Sequence[float], grid: Iterable[float]) -> np.ndarray:
    """The upper envelope f(x) = max{reward : kl <= x} at each grid KL (NaN where no point lies at or below x)."""
    reward = np.asarray(rewards, dtype=float)
    return np.array([math.nan if i is None else reward[i] for i in envelope_indices(kls, rewards, grid)])


def kl_grid(curves: Sequence[Sequence[float]], points: int = GRID_POINTS) -> np.ndarray:
    """`points` KLs evenly spaced over (0, K], K the smallest over the curves of their largest (finite) KL.

    K is taken as 0 when some curve never leaves KL 0 (every grid point is then 0).
    """
    tops = []
    for kls in curves:
        kl = np.asarray(kls, dtype=float)
        kl = kl[np.isfinite(kl)]
        tops.append(float(kl.max()) if kl.size else 0.0)
    top = max(min(tops, default=0.0), 0.0)
    return np.linspace(0.0, top, points + 1)[1:]  # the last point is K exactly


def _interval_of(values: Sequence[float]) -> dict[str, Any]:
    """Mean and 95 % t-interval over the finite values (mean None where there are none)."""
    finite = [float(v) for v in values if math.isfinite(v)]
    return t_interval(finite) if finite else {"mean": None, "ci95": None, "n": 0}


def run_points(history: Sequence[dict[str, Any]]) -> list[dict[str, float]]:
    """A run's evaluation points: update, KL to the SFT model and the figures of each (null ones as NaN)."""
    names = ("update", "kl_to_sft", *METRICS, "scorable_fraction", "rm_score")
    return [{name: _number(row.get(name)) for name in names} for row in history]


def _label(variant: str) -> str:
    return variant.replace("-", "_")


def check_claims(
    frontier: dict[str, list[dict[str, Any]]], differences: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Per P3O variant: its mean frontier above PPO's at every grid KL, and at how many grid KLs the paired
    difference's 95 % interval excludes 0 (and lies above it); no interval (one seed) excludes nothing."""
    claims: dict[str, Any] = {}
    for variant, rows in differences.items():
        name = _label(variant)
        ours = [r["mean"] for r in frontier[variant]]
        theirs = [r["mean"] for r in frontier[BASELINE]]
        above = all(a is not None and b is not None and a > b for a, b in zip(ours, theirs, strict=True))
        claims[f"{name}_above_{BASELINE}_at_every_kl"] = bool(above)
        low = [r["ci95"][0] if r["ci95"] else None for r in rows]
        high = [r["ci95"][1] if r["ci95"] else None for r in rows]
        above_zero = sum(lo is not None and lo > 0 for lo in low)
        below_zero = sum(hi is not None and hi < 0 for hi in high)
        claims[f"{name}_minus_{BASELINE}_interval_excludes_zero_at"] = above_zero + below_zero
        claims[f"{name}_minus_{BASELINE}_interval_above_zero_at"] = above_zero
    return claims


def summarise(stages: dict[str, Any], config: P3OReportConfig) -> dict[str, Any]:
    """Every run's points; per variant the frontier on the common KL grid over seeds; the differences; the claims."""
    points = {
        (v, s): [
            {"kl_coef": k, **point}
            for k in config.kl_coefs
            for point in run_points(stages["runs"][run_key(v, k, s)]["history"])
        ]
        for v in config.variants
        for s in config.seeds
    }
    grid = kl_grid([[p["kl_to_sft"] for p in pts] for pts in points.values()], config.grid_points)
    frontier: dict[str, dict[str, list[dict[str, Any]]]] = {}
    differences: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for metric in METRICS:
        curves: dict[tuple[str, int], np.ndarray] = {}
        scorable: dict[tuple[str, int], list[float]] = {}
        for key, pts in points.items():
            kls, rewards = [p["kl_to_sft"] for p in pts], [p[metric] for p in pts]
            chosen = envelope_indices(kls, rewards, grid)
            curves[key] = np.array([math.nan if i is None else rewards[i] for i in chosen])
            scorable[key] = [math.nan if i is None else pts[i]["scorable_fraction"] for i in chosen]
        table: dict[str, list[dict[str, Any]]] = {}
        for v in config.variants:
            rows = []
            for g, x in enumerate(grid):
                per_seed = [float(curves[v, s][g]) for s in config.seeds]
                row = {"kl": float(x), **_interval_of(per_seed), "per_seed": per_seed}
                if metric == "judge_score":  # the scorable fraction of the points the frontier takes
                    row["scorable_fraction"] = _interval_of([scorable[v, s][g] for s in config.seeds])["mean"]
                rows.append(row)
            table[v] = rows
        frontier[metric] = table
        if BASELINE in config.variants:
            differences[metric] = {}
            for v in config.variants:
                if v == BASELINE:
                    continue
                paired = [curves[v, s] - curves[BASELINE, s] for s in config.seeds]  # per seed, along the grid
                differences[metric][v] = [
                    {"kl": float(x), **_interval_of([d[g] for d in paired]), "per_seed": [float(d[g]) for d in paired]}
                    for g, x in enumerate(grid)
                ]
    judge = stages["judge"]
    return {
        "report": "p3o",
        "seeds": list(config.seeds),
        "kl_coefs": list(config.kl_coefs),
        "variants": list(config.variants),
        "updates_per_run": {key: run.get("updates") for key, run in stages["runs"].items()},
        "smoke": config.smoke,
        "metric": "win_rate_vs_sft (primary): the hidden judge's mean P(policy's response beats the SFT model's) on "
        "the held-out prompts, an unscorable response losing; judge_score (secondary): the hidden judge's mean score "
        "over the scorable responses, with the scorable fraction of the points the frontier takes",
        "frontier_definition": "per variant and seed, the upper envelope f(x) = max reward over the evaluation points "
        "(every kl_coef, every evaluation along training, update 0 included) with kl_to_sft <= x, read at "
        f"{len(grid)} KLs evenly spaced over (0, K], K = the smallest over variants and seeds of their largest "
        "kl_to_sft; mean and 95 % t-interval over seeds; differences paired by seed (same SFT model and prompts)",
        "kl_grid": [float(x) for x in grid],
        "judge": {k: judge[k] for k in ("accuracy", "mean_abs_error", "pairs") if k in judge},
        "frontier": frontier,
        f"difference_vs_{BASELINE}": differences,
        "claims": check_claims(frontier["win_rate_vs_sft"], differences.get("win_rate_vs_sft", {})),
        "claims_judge_score": check_claims(frontier["judge_score"], differences.get("judge_score", {})),
        "points": {v: [{"seed": s, **p} for s in config.seeds for p in points[v, s]] for v in config.variants},
        "wall_s_per_run": {k: v.get("wall_s") for k, v in stages["runs"].items()},
    }


PLOT_MIN_KL = -1.0
"""Evaluation points whose KL estimate is below this are counted, not drawn: log pi - log pi_SFT on the
policy's samples is a KL estimate only while the sampler follows pi, and the sampler suppresses the special
tokens, so a policy that puts its mass on them scores far below zero (seen: -30, with low rewards)."""


def plot(report: dict[str, Any], path: Path) -> Path:
    """Reward against KL: each variant's mean frontier with its 95 % band, and every evaluation point, faint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"win_rate_vs_sft": "win rate vs the SFT model (hidden judge)", "judge_score": "hidden judge's score"}
    figure, axes = plt.subplots(1, len(METRICS), figsize=(5.5 * len(METRICS), 4))
    for axis, metric in zip(np.atleast_1d(axes), METRICS, strict=True):
        hidden = 0
        for variant, rows in report["frontier"][metric].items():
            shown = [r for r in rows if r["mean"] is not None]
            x = [r["kl"] for r in shown]
            mean = [r["mean"] for r in shown]
            low = [(r["ci95"] or [r["mean"]] * 2)[0] for r in shown]
            high = [(r["ci95"] or [r["mean"]] * 2)[1] for r in shown]
            (line,) = axis.plot(x, mean, marker="o", ms=3, label=variant)
            axis.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
            raw = [(p["kl_to_sft"], p[metric]) for p in report["points"][variant]]
            raw = [(k, r) for k, r in raw if math.isfinite(k) and math.isfinite(r)]
            hidden += sum(k < PLOT_MIN_KL for k, _ in raw)
            raw = [(k, r) for k, r in raw if k >= PLOT_MIN_KL]
            if raw:
                axis.scatter(*zip(*raw, strict=True), s=8, color=line.get_color(), alpha=0.25, linewidths=0)
        if metric == "win_rate_vs_sft":
            axis.axhline(0.5, color="grey", lw=0.8, ls="--")
        note = f"; {hidden} points with KL < {PLOT_MIN_KL:g} not drawn" if hidden else ""
        axis.set_xlabel(f"KL to the SFT model (per sequence){note}")
        axis.set_ylabel(titles[metric])
        axis.set_title(f"frontier, {len(report['seeds'])} seeds, 95 % t-intervals")
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)


def p3o_report(config: P3OReportConfig) -> dict[str, Any]:
    """Run every stage, write the report and the plot; returns the report."""
    report = summarise(run_stages(config), config)
    report["plot"] = str(plot(report, config.out_dir / PLOT_FILE))
    write_json_atomic(config.out_dir / REPORT_FILE, report)
    return report


__all__ = ["P3OReportConfig", "check_claims", "envelope", "envelope_indices", "kl_grid", "p3o_report", "summarise"]

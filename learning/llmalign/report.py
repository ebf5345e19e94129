"""`llmalign report-sppo`: SPPO against iterative DPO and IPO over seeds, produced by one command.

For each seed: an SFT model of the preference task (the starting policy), then SPPO, iterative DPO and
iterative IPO from it, all judged during training by one pairwise judge (trained once, seed 0, as the
authors use one fixed PairRM) and measured by the hidden judge. Every stage is a run folder under
`<out_dir>` (`<loss>/beta<beta>/seed<seed>`); a finished stage is reused and an interrupted one resumes, so
the command can be stopped and started again.

Each loss runs at its own beta (`--sppo-beta`, `--dpo-beta`, `--ipo-beta`), or, with `--tune-betas`, at the
beta of that list whose mean win rate after the last iteration is highest on the tuning seeds
(`--tune-seeds`, disjoint from `--seeds`): every method gets the same search, on seeds the report does not
use. The claims are checked on the means and on seed-paired 95 % t-intervals (SPPO minus each baseline
at every iteration; SPPO's gain from each iteration to the next, iteration 0 being the SFT model).

Writes `<out_dir>/sppo_report.json` (per loss and iteration: mean win rate against the SFT model over
seeds, 95 % t-interval, per-seed values; the paired differences; the tuning table; the judge's agreement
and cycle figures; the best-of-K headroom of each seed's SFT samples under the learned and the hidden judge;
the claims) and `sppo_win_rate.png`.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from llmalign.checkpoint import has_checkpoint
from llmalign.configs import JudgeConfig, SFTConfig, SPPOConfig
from llmalign.judge import JUDGE_DIR, run_judge
from llmalign.sft import MODEL_DIR, train_sft
from llmalign.sppo import best_of_k_win_rates, train_sppo
from runkit import get_logger
from runkit.atomic import save_figure, write_json_atomic
from runkit.config import require_config
from runkit.reports import mean_t_interval

log = get_logger("llmalign.report")
LOSSES = ("sppo", "dpo", "ipo")
REPORT_FILE = "sppo_report.json"
PLOT_FILE = "sppo_win_rate.png"
DEFAULT_BETA = SPPOConfig.beta


@dataclass
class SPPOReportConfig:
    """SPPO against iterative DPO and IPO, over seeds (each stage resumes or is reused)."""

    out_dir: Path = Path("runs/llmalign/report")
    """Folder of every stage's run folder and of the report."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds: each has its own SFT model and its own three alignment runs."""
    iterations: int = 3
    """Self-play iterations of each run."""
    sppo_beta: float = DEFAULT_BETA
    """SPPO's beta (eta = 1 / beta), unless --tune-betas picks it."""
    dpo_beta: float = DEFAULT_BETA
    """Iterative DPO's beta, unless --tune-betas picks it."""
    ipo_beta: float = DEFAULT_BETA
    """Iterative IPO's beta (its margin is 1 / (2 beta)), unless --tune-betas picks it."""
    tune_betas: tuple[float, ...] = ()
    """Betas searched for every loss on the tuning seeds (empty: no search, the betas above are used)."""
    tune_seeds: tuple[int, ...] = (100, 101, 102)
    """Seeds of the beta search (each its own SFT model); none of them may be among `seeds`."""
    smoke: bool = False
    """Every stage at its smoke sizes (seconds)."""
    progress: bool = False
    """Progress bars of the stages."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    """The judge's settings (its run folder is set by the report)."""

    def __post_init__(self) -> None:
        require_config(len(self.seeds) >= 1, "seeds", self.seeds, "at least one seed")
        require_config(self.iterations >= 1, "iterations", self.iterations, ">= 1")
        for name in ("sppo_beta", "dpo_beta", "ipo_beta"):
            require_config(math.isfinite(getattr(self, name)) and getattr(self, name) > 0, name, getattr(self, name),
                           "finite and > 0")  # fmt: skip
        finite = all(math.isfinite(b) and b > 0 for b in self.tune_betas)
        require_config(finite, "tune_betas", self.tune_betas, "finite and > 0 each")
        if self.tune_betas:
            require_config(len(self.tune_seeds) >= 1, "tune_seeds", self.tune_seeds, "at least one seed")
            overlap = sorted(set(self.tune_seeds) & set(self.seeds))
            require_config(not overlap, "tune_seeds", self.tune_seeds, f"disjoint from --seeds (both hold {overlap})")

    def beta(self, loss: str) -> float:
        """The beta given for `loss` (the tuning, when asked for, replaces it)."""
        return float(getattr(self, f"{loss}_beta"))


def stage_finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").is_file()


def stage_summary(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "summary.json").read_text()))


def resume_or_clean(run_dir: Path) -> bool:
    """True when an unfinished stage holds a checkpoint to resume from; a folder without one is removed."""
    if has_checkpoint(run_dir):
        return True
    if run_dir.exists():
        shutil.rmtree(run_dir)  # stopped before its first checkpoint: nothing to resume, start again
    return False


def run_key(loss: str, beta: float, seed: int) -> str:
    """A run's key in the stages and its folder under out_dir: <loss>/beta<beta>/seed<seed>."""
    return f"{loss}/beta{beta:g}/seed{seed}"


def run_judge_stage(config: SPPOReportConfig) -> dict[str, Any]:
    """Train (or reuse) the one pairwise judge; returns its summary."""
    judge_dir = config.out_dir / "judge"
    if not stage_finished(judge_dir):
        resume_or_clean(judge_dir)  # the judge trains in one go and has no checkpoint
        run_judge(replace(config.judge, run_dir=judge_dir, smoke=config.smoke, progress=config.progress, seed=0))
    return stage_summary(judge_dir)


def run_seed_stages(
    config: SPPOReportConfig, seeds: Sequence[int], betas: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """Run (or reuse) the SFT model of each seed and each loss's run at its beta; returns the runs' summaries."""
    out = config.out_dir
    runs: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        sft_dir = out / "sft" / f"seed{seed}"
        if not stage_finished(sft_dir):
            resume = resume_or_clean(sft_dir)
            train_sft(SFTConfig(task="preference", seed=seed, run_dir=sft_dir, smoke=config.smoke,
                                progress=config.progress, resume=resume))  # fmt: skip
        for loss, beta in betas.items():
            key = run_key(loss, beta, seed)
            run_dir = out / key
            if not stage_finished(run_dir):
                log.info("%s beta %g seed %d", loss, beta, seed)
                resume = resume_or_clean(run_dir)
                run = SPPOConfig(loss=loss, beta=beta, seed=seed, sft_model=sft_dir / MODEL_DIR,
                                 judge=out / "judge" / JUDGE_DIR)  # fmt: skip
                train_sppo(replace(run, iterations=config.iterations, run_dir=run_dir, smoke=config.smoke,
                                   progress=config.progress, resume=resume))  # fmt: skip
            runs[key] = stage_summary(run_dir)
    return runs


def final_win_rate(run: dict[str, Any]) -> float:
    """A run's win rate against the SFT model after its last iteration."""
    return float(run["history"][-1]["win_rate_vs_sft"])


def tune(config: SPPOReportConfig) -> dict[str, Any]:
    """Per loss, every beta of `tune_betas` on the tuning seeds; the chosen beta is the one with the highest mean
    final win rate (ties: the first listed). Returns the table and the choice."""
    table: dict[str, list[dict[str, Any]]] = {}
    chosen: dict[str, float] = {}
    for loss in LOSSES:
        rows: list[dict[str, Any]] = []
        for beta in config.tune_betas:
            runs = run_seed_stages(config, config.tune_seeds, {loss: beta})
            finals = [final_win_rate(runs[run_key(loss, beta, s)]) for s in config.tune_seeds]
            rows.append({"beta": beta, "final_win_rate_vs_sft": t_interval(finals), "per_seed": finals})
        table[loss] = rows
        chosen[loss] = float(max(rows, key=lambda r: r["final_win_rate_vs_sft"]["mean"])["beta"])  # first on ties
    return {
        "seeds": list(config.tune_seeds),
        "betas": list(config.tune_betas),
        "rule": "per loss, the beta with the highest mean win rate against the SFT model after the last iteration "
        "on the tuning seeds (disjoint from the report's seeds)",
        "final_win_rate_vs_sft": table,
        "chosen": chosen,
    }


def headroom(config: SPPOReportConfig) -> dict[str, dict[str, float]]:
    """Per seed, the best-of-K win rates of its SFT model's samples (`sppo.best_of_k_win_rates`): what re-ranking
    by the hidden judge and by the learned judge reaches. Each seed's figures are a file of their own, reused."""
    figures = {}
    for seed in config.seeds:
        path = config.out_dir / "headroom" / f"seed{seed}.json"
        if not path.is_file():
            sft_model = config.out_dir / "sft" / f"seed{seed}" / MODEL_DIR
            run = SPPOConfig(seed=seed, sft_model=sft_model, judge=config.out_dir / "judge" / JUDGE_DIR)
            write_json_atomic(path, best_of_k_win_rates(replace(run, smoke=config.smoke)))
        figures[f"seed{seed}"] = dict(json.loads(path.read_text()))
    return figures


def run_stages(config: SPPOReportConfig) -> dict[str, Any]:
    """Run (or reuse) every stage; returns the judge's summary, the tuning (or None), each run's summary and the
    best-of-K headroom per seed."""
    judge = run_judge_stage(config)
    tuning = tune(config) if config.tune_betas else None
    betas = dict(tuning["chosen"]) if tuning else {loss: config.beta(loss) for loss in LOSSES}
    runs = run_seed_stages(config, config.seeds, betas)
    return {"judge": judge, "tuning": tuning, "betas": betas, "runs": runs, "headroom": headroom(config)}


def t_interval(values: list[float]) -> dict[str, Any]:
    """Mean, 95 % t-interval (None for one value) and count, as the reports store them."""
    mean, half = mean_t_interval(values)
    return {"mean": mean, "ci95": [mean - half, mean + half] if len(values) > 1 else None, "n": len(values)}


def _above_zero(row: dict[str, Any]) -> bool:
    """The 95 % interval lies above 0 (one seed, no interval: not shown)."""
    return bool(row["ci95"] is not None and row["ci95"][0] > 0)


def win_rates_by_iteration(
    runs: dict[str, dict[str, Any]], loss: str, beta: float, seeds: Sequence[int], iterations: int
) -> NDArray[np.float64]:
    """`(T + 1) x seeds`: each seed's win rate against the SFT model after iterations 0 (the SFT model) to T."""
    return np.array(
        [
            [float(runs[run_key(loss, beta, s)]["history"][i]["win_rate_vs_sft"]) for s in seeds]
            for i in range(iterations + 1)
        ],
        dtype=np.float64,
    )


def summarise_headroom(per_seed: dict[str, dict[str, float]] | None) -> dict[str, Any] | None:
    """Mean and t-interval over seeds of each best-of-K win rate (None when the stages have none)."""
    if not per_seed:
        return None
    keys = ("hidden_judge_best_of_k", "learned_judge_best_of_k")
    return {
        "k": next(iter(per_seed.values()))["k"],
        **{key: t_interval([float(f[key]) for f in per_seed.values()]) for key in keys},
        "note": "win rate against the SFT model of the best of K SFT samples per held-out prompt, chosen by the "
        "hidden judge's score (an oracle) or by the learned judge (what SPPO's data calls chosen)",
    }


def summarise(stages: dict[str, Any], config: SPPOReportConfig) -> dict[str, Any]:
    """Per loss and iteration, the win rate against the SFT model over seeds; paired differences; the claims."""
    runs, betas = stages["runs"], stages["betas"]
    iterations = min(len(run["history"]) for run in runs.values()) - 1  # smoke runs shrink it
    rates = {loss: win_rates_by_iteration(runs, loss, betas[loss], config.seeds, iterations) for loss in LOSSES}
    table = {
        loss: [
            {"iteration": i, "win_rate_vs_sft": t_interval(list(rates[loss][i])), "per_seed": list(rates[loss][i])}
            for i in range(1, iterations + 1)
        ]
        for loss in LOSSES
    }
    differences = {
        f"sppo_minus_{other}": [
            {"iteration": i, **t_interval(list(rates["sppo"][i] - rates[other][i]))} for i in range(1, iterations + 1)
        ]
        for other in ("dpo", "ipo")
    }
    differences["sppo_gain"] = [
        {"iteration": i, **t_interval(list(rates["sppo"][i] - rates["sppo"][i - 1]))} for i in range(1, iterations + 1)
    ]
    means = {loss: rates[loss][1:].mean(axis=1) for loss in LOSSES}
    claims = {
        "sppo_win_rate_rises_every_iteration": bool(all(np.diff(means["sppo"]) > 0)),
        "sppo_above_dpo_at_every_iteration": bool(all(np.greater(means["sppo"], means["dpo"]))),
        "sppo_above_ipo_at_every_iteration": bool(all(np.greater(means["sppo"], means["ipo"]))),
        "sppo_rises_every_iteration_significant": all(_above_zero(r) for r in differences["sppo_gain"]),
        "sppo_above_dpo_significant_at_every_iteration": all(_above_zero(r) for r in differences["sppo_minus_dpo"]),
        "sppo_above_ipo_significant_at_every_iteration": all(_above_zero(r) for r in differences["sppo_minus_ipo"]),
    }
    judge = stages["judge"]
    return {
        "report": "sppo",
        "seeds": list(config.seeds),
        "iterations": iterations,
        "smoke": config.smoke,
        "metric": "win_rate_vs_sft: the hidden judge's mean P(policy's response beats the SFT model's) on the "
        "held-out prompts (the SFT model of the same seed, the same sampling seed); mean and 95 % t-interval over "
        "seeds; differences paired by seed (same SFT model, judge and prompts)",
        "betas": betas,
        "tuning": stages.get("tuning"),
        "judge": {k: judge[k] for k in ("accuracy", "mean_abs_error", "cycle_agreement", "pairs") if k in judge},
        "win_rate_vs_sft": table,
        "differences": differences,
        "best_of_k_headroom": summarise_headroom(stages.get("headroom")),
        "claims": claims,
        "wall_s_per_run": {k: v.get("wall_s") for k, v in runs.items()},
    }


def plot(report: dict[str, Any], path: Path) -> Path:
    """Win rate against the SFT model per iteration, mean and 95 % interval over seeds, one line per loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4.5))
    for loss, rows in report["win_rate_vs_sft"].items():
        x = [0] + [r["iteration"] for r in rows]
        mean = [0.5] + [r["win_rate_vs_sft"]["mean"] for r in rows]
        low = [0.5] + [(r["win_rate_vs_sft"]["ci95"] or [r["win_rate_vs_sft"]["mean"]] * 2)[0] for r in rows]
        high = [0.5] + [(r["win_rate_vs_sft"]["ci95"] or [r["win_rate_vs_sft"]["mean"]] * 2)[1] for r in rows]
        (line,) = axis.plot(x, mean, marker="o", label=f"{loss} (beta {report['betas'][loss]:g})")
        axis.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
    axis.axhline(0.5, color="grey", lw=0.8, ls="--")
    headroom = report.get("best_of_k_headroom")
    if headroom:
        k = int(headroom["k"])
        for key, label, style in (
            ("learned_judge_best_of_k", f"best of {k} SFT samples by the learned judge", ":"),
            ("hidden_judge_best_of_k", f"best of {k} by the hidden judge (oracle)", "-."),
        ):
            axis.axhline(headroom[key]["mean"], color="black", lw=1.0, ls=style, label=label)
    axis.set_xticks(range(report["iterations"] + 1))
    axis.set_xlabel("iteration")
    axis.set_ylabel("win rate vs the SFT model (hidden judge)")
    axis.set_title(f"{len(report['seeds'])} seeds, 95 % t-intervals")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    return save_figure(figure, path)


def sppo_report(config: SPPOReportConfig) -> dict[str, Any]:
    """Run every stage, write the report and the plot; returns the report."""
    report = summarise(run_stages(config), config)
    report["plot"] = str(plot(report, config.out_dir / PLOT_FILE))
    write_json_atomic(config.out_dir / REPORT_FILE, report)
    return report


__all__ = ["SPPOReportConfig", "sppo_report"]

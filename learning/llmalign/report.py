"""`llmalign report sppo`: SPPO against iterative DPO and IPO over seeds, produced by one command.

For each seed: an SFT model of the preference task (the starting policy), then SPPO, iterative DPO and
iterative IPO from it, all judged during training by one pairwise judge (trained once, seed 0, as the
authors use one fixed PairRM) and measured by the hidden judge. Every stage is a run folder under
`<out_dir>`; a finished stage is reused and an interrupted one resumes, so the command can be stopped and
started again. Writes `<out_dir>/sppo_report.json` (per loss and iteration: mean win rate against the SFT
model over seeds, 95 % t-interval, per-seed values; the judge's agreement and cycle figures; the claims
checked) and `sppo_win_rate.png`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from llmalign.checkpoint import has_checkpoint
from llmalign.configs import JudgeConfig, SFTConfig, SPPOConfig
from llmalign.judge import JUDGE_DIR, run_judge
from llmalign.sft import MODEL_DIR, train_sft
from llmalign.sppo import train_sppo
from runkit import get_logger
from runkit.atomic import save_figure, write_json_atomic
from runkit.reports import mean_t_interval

log = get_logger("llmalign.report")
LOSSES = ("sppo", "dpo", "ipo")
REPORT_FILE = "sppo_report.json"
PLOT_FILE = "sppo_win_rate.png"


@dataclass
class SPPOReportConfig:
    """SPPO against iterative DPO and IPO, over seeds (each stage resumes or is reused)."""

    out_dir: Path = Path("runs/llmalign/report")
    """Folder of every stage's run folder and of the report."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds: each has its own SFT model and its own three alignment runs."""
    iterations: int = 3
    """Self-play iterations of each run."""
    smoke: bool = False
    """Every stage at its smoke sizes (seconds)."""
    progress: bool = False
    """Progress bars of the stages."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    """The judge's settings (its run folder is set by the report)."""


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


def run_stages(config: SPPOReportConfig) -> dict[str, Any]:
    """Run (or reuse) every stage; returns the judge's summary and each run's summary."""
    out = config.out_dir
    judge_dir = out / "judge"
    if not stage_finished(judge_dir):
        resume_or_clean(judge_dir)  # the judge trains in one go and has no checkpoint
        run_judge(replace(config.judge, run_dir=judge_dir, smoke=config.smoke, progress=config.progress, seed=0))
    runs: dict[str, dict[str, Any]] = {}
    for seed in config.seeds:
        sft_dir = out / "sft" / f"seed{seed}"
        if not stage_finished(sft_dir):
            resume = resume_or_clean(sft_dir)
            train_sft(SFTConfig(task="preference", seed=seed, run_dir=sft_dir, smoke=config.smoke,
                                progress=config.progress, resume=resume))  # fmt: skip
        for loss in LOSSES:
            run_dir = out / loss / f"seed{seed}"
            if not stage_finished(run_dir):
                log.info("%s seed %d", loss, seed)
                resume = resume_or_clean(run_dir)
                run = SPPOConfig(loss=loss, seed=seed, sft_model=sft_dir / MODEL_DIR, judge=judge_dir / JUDGE_DIR)
                train_sppo(replace(run, iterations=config.iterations, run_dir=run_dir, smoke=config.smoke,
                                   progress=config.progress, resume=resume))  # fmt: skip
            runs[f"{loss}/seed{seed}"] = stage_summary(run_dir)
    return {"judge": stage_summary(judge_dir), "runs": runs}


def t_interval(values: list[float]) -> dict[str, Any]:
    """Mean, 95 % t-interval (None for one value) and count, as the reports store them."""
    mean, half = mean_t_interval(values)
    return {"mean": mean, "ci95": [mean - half, mean + half] if len(values) > 1 else None, "n": len(values)}


def summarise(stages: dict[str, Any], config: SPPOReportConfig) -> dict[str, Any]:
    """Per loss and iteration, the win rate against the SFT model over seeds; the claims, checked."""
    table: dict[str, list[dict[str, Any]]] = {}
    iterations = min(len(run["history"]) for run in stages["runs"].values()) - 1  # smoke runs shrink it
    for loss in LOSSES:
        rows = []
        for iteration in range(1, iterations + 1):
            values = [
                float(stages["runs"][f"{loss}/seed{s}"]["history"][iteration]["win_rate_vs_sft"]) for s in config.seeds
            ]
            rows.append({"iteration": iteration, "win_rate_vs_sft": t_interval(values), "per_seed": values})
        table[loss] = rows
    means = {loss: [r["win_rate_vs_sft"]["mean"] for r in rows] for loss, rows in table.items()}
    claims = {
        "sppo_win_rate_rises_every_iteration": bool(all(np.diff(means["sppo"]) > 0)),
        "sppo_above_dpo_at_every_iteration": bool(all(np.greater(means["sppo"], means["dpo"]))),
        "sppo_above_ipo_at_every_iteration": bool(all(np.greater(means["sppo"], means["ipo"]))),
    }
    judge = stages["judge"]
    return {
        "report": "sppo",
        "seeds": list(config.seeds),
        "iterations": iterations,
        "smoke": config.smoke,
        "metric": "win_rate_vs_sft: the hidden judge's mean P(policy's response beats the SFT model's) on the "
        "held-out prompts (the SFT model of the same seed, the same sampling seed); mean and 95 % t-interval over "
        "seeds",
        "judge": {k: judge[k] for k in ("accuracy", "mean_abs_error", "cycle_agreement", "pairs") if k in judge},
        "win_rate_vs_sft": table,
        "claims": claims,
        "wall_s_per_run": {k: v.get("wall_s") for k, v in stages["runs"].items()},
    }


def plot(report: dict[str, Any], path: Path) -> Path:
    """Win rate against the SFT model per iteration, mean and 95 % interval over seeds, one line per loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 4))
    for loss, rows in report["win_rate_vs_sft"].items():
        x = [0] + [r["iteration"] for r in rows]
        mean = [0.5] + [r["win_rate_vs_sft"]["mean"] for r in rows]
        low = [0.5] + [(r["win_rate_vs_sft"]["ci95"] or [r["win_rate_vs_sft"]["mean"]] * 2)[0] for r in rows]
        high = [0.5] + [(r["win_rate_vs_sft"]["ci95"] or [r["win_rate_vs_sft"]["mean"]] * 2)[1] for r in rows]
        (line,) = axis.plot(x, mean, marker="o", label=loss)
        axis.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
    axis.axhline(0.5, color="grey", lw=0.8, ls="--")
    axis.set_xticks(range(report["iterations"] + 1))
    axis.set_xlabel("iteration")
    axis.set_ylabel("win rate vs the SFT model (hidden judge)")
    axis.set_title(f"{len(report['seeds'])} seeds, 95 % t-intervals")
    axis.legend()
    axis.grid(alpha=0.3)
    return save_figure(figure, path)


def sppo_report(config: SPPOReportConfig) -> dict[str, Any]:
    """Run every stage, write the report and the plot; returns the report."""
    report = summarise(run_stages(config), config)
    report["plot"] = str(plot(report, config.out_dir / PLOT_FILE))
    write_json_atomic(config.out_dir / REPORT_FILE, report)
    return report


__all__ = ["SPPOReportConfig", "sppo_report"]

"""`llmalign report-prime`: PRIME against its SFT model and outcome-only RLOO over seeds, produced by one command.

The claim (Cui et al. 2025, Process Reinforcement through Implicit Rewards, on math: +15 % over the SFT
model): PRIME's final-answer accuracy on held-out problems lies above the SFT model's, and above outcome-only
RLOO's at the same number of samples. Here the task is the arithmetic task and its verifier.

Stages, per seed (every stage a run folder under `<out_dir>`; a finished stage is reused and an interrupted
one resumes, so the command can be stopped and started again):

1. the SFT model, as a chain of `llmalign sft --task arithmetic` runs `sft_a/seed<s>`, `sft_b/seed<s>`,
   `sft_c/seed<s>`, each starting (`init_model`) from the previous one's model. The defaults are the chain that
   gave 45-56 % held-out greedy accuracy (128 wide, 4 layers, intermediate 384; 6,000 examples x 3 epochs at lr
   2e-3, then 10,000 x 1 at 1e-3, then 20,000 x 1 at 1e-3), the room PRIME needs to show a gain. No single
   SFT configuration has been measured in that range (6,000 x 3 epochs alone: 7 %; 20,000 x 4: 93.5 %); one
   between them likely exists but would have to be searched for, so the report reproduces the measured
   chain (each stage with its own warm-up and cosine decay). Stage i of seed s draws its examples with seed
   `s + 100 i`
   (`sft_seed_stride`), so each stage sees fresh problems, as the original chain did (seeds 0, 1, 2). A smoke
   run keeps the chain but leaves every SFT size at its default, which the smoke rule shrinks;
2. `prime/seed<s>` (`llmalign prime --method prime`) and `rloo/seed<s>` (`--method rloo`) from the final SFT
   model, with the same steps, prompts per step and K, so the same number of trained-on rollouts: the
   report checks that the runs' `samples.trained_rollouts` match per seed and records every count.

Both runs of a seed evaluate on the same held-out problems with the same sampling seed (`PRIMEConfig.seed`);
their step-0 evaluation is the SFT model's figure. Per method and evaluation step: mean and 95 % t-interval
over seeds of the held-out greedy accuracy (primary) and sampled accuracy; the seed-paired differences
PRIME - SFT and PRIME - RLOO (and RLOO - SFT) at the final step with their intervals; the claims. Writes
`<out_dir>/prime_report.json` and `prime_accuracy.png`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmalign.configs import PRIME_UPDATES, PRIMEConfig, SFTConfig
from llmalign.model import TinyLMConfig
from llmalign.prime import train_prime
from llmalign.report import resume_or_clean, stage_finished, stage_summary, t_interval
from llmalign.sft import MODEL_DIR, train_sft
from runkit import get_logger
from runkit.atomic import save_figure, write_json_atomic
from runkit.config import require_config

log = get_logger("llmalign.report_prime")
METHODS = ("prime", "rloo")
METRICS = ("heldout_accuracy", "heldout_accuracy_sampled")
"""Held-out accuracy, greedy (the primary) and sampled."""
REPORT_FILE = "prime_report.json"
PLOT_FILE = "prime_accuracy.png"
_DEFAULTS = PRIMEConfig()


def _sft_size() -> TinyLMConfig:
    return TinyLMConfig(hidden_size=128, layers=4, heads=4, intermediate_size=384)


@dataclass
class PRIMEReportConfig:
    """PRIME against its SFT model and outcome-only RLOO, over seeds (each stage resumes or is reused)."""

    out_dir: Path = Path("runs/llmalign/report_prime")
    """Folder of every stage's run folder and of the report."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds: each has its own SFT chain and its own PRIME and RLOO runs."""
    steps: int = _DEFAULTS.steps
    """Steps of each PRIME and RLOO run (smoke: the trainer's smoke size)."""
    eval_every_steps: int = _DEFAULTS.eval_every_steps
    """Steps between held-out evaluations of each run."""
    prm_update: str = "after"
    """PRIME's PRM update order: after (the default) or before (see `PRIMEConfig.prm_update`)."""
    smoke: bool = False
    """Every stage at its smoke sizes (seconds)."""
    progress: bool = False
    """Progress bars of the stages."""
    sft_model: TinyLMConfig = field(default_factory=_sft_size)
    """Size of the SFT model the chain's first stage builds."""
    sft_examples: tuple[int, ...] = (6000, 10000, 20000)
    """Generated examples of each SFT stage (one stage per entry; each starts from the previous one's model)."""
    sft_epochs: tuple[int, ...] = (3, 1, 1)
    """Epochs of each SFT stage."""
    sft_learning_rates: tuple[float, ...] = (2e-3, 1e-3, 1e-3)
    """Peak learning rate of each SFT stage."""
    sft_seed_stride: int = 100
    """SFT stage i of seed s runs with seed s + stride * i (fresh examples per stage)."""

    def __post_init__(self) -> None:
        require_config(len(self.seeds) >= 1, "seeds", self.seeds, "at least one seed")
        require_config(self.steps >= 1, "steps", self.steps, ">= 1")
        require_config(self.eval_every_steps >= 0, "eval_every_steps", self.eval_every_steps, ">= 0")
        require_config(self.prm_update in PRIME_UPDATES, "prm_update", self.prm_update, f"one of {PRIME_UPDATES}")
        stages = len(self.sft_examples)
        require_config(1 <= stages <= 26, "sft_examples", self.sft_examples, "1 to 26 stages")
        lengths = (len(self.sft_epochs), len(self.sft_learning_rates))
        require_config(lengths == (stages, stages), "sft_epochs, sft_learning_rates", lengths,
                       f"one entry per SFT stage ({stages})")  # fmt: skip
        require_config(min(self.sft_examples) >= 1, "sft_examples", self.sft_examples, ">= 1 each")
        require_config(min(self.sft_epochs) >= 1, "sft_epochs", self.sft_epochs, ">= 1 each")
        require_config(min(self.sft_learning_rates) > 0, "sft_learning_rates", self.sft_learning_rates, "> 0 each")
        spread = self.sft_seed_stride > max(self.seeds) - min(self.seeds) or stages == 1
        require_config(spread, "sft_seed_stride", self.sft_seed_stride, "> the spread of the seeds")


def sft_stage_names(config: PRIMEReportConfig) -> list[str]:
    """sft_a, sft_b, ...: one per SFT stage."""
    return [f"sft_{chr(ord('a') + i)}" for i in range(len(config.sft_examples))]


def sft_stage_config(config: PRIMEReportConfig, stage: int, seed: int, init_model: Path | None) -> SFTConfig:
    """SFT stage `stage` (0-based) of `seed`, from `init_model` (None: the first stage builds its model).

    A smoke report leaves every size at its default, so that the smoke rule shrinks it.
    """
    run_dir = config.out_dir / sft_stage_names(config)[stage] / f"seed{seed}"
    sizes: dict[str, Any] = {}
    if not config.smoke:
        sizes = {"examples": config.sft_examples[stage], "epochs": config.sft_epochs[stage],
                 "learning_rate": config.sft_learning_rates[stage], "model": config.sft_model}  # fmt: skip
    return SFTConfig(task="arithmetic", seed=seed + config.sft_seed_stride * stage, init_model=init_model,
                     run_dir=run_dir, smoke=config.smoke, progress=config.progress, **sizes)  # fmt: skip


def run_stages(config: PRIMEReportConfig) -> dict[str, Any]:
    """Run (or reuse) every stage; returns each SFT stage's summary and each PRIME and RLOO run's summary."""
    sft: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict[str, Any]] = {}
    for seed in config.seeds:
        model: Path | None = None
        for stage, name in enumerate(sft_stage_names(config)):
            stage_config = sft_stage_config(config, stage, seed, model)
            run_dir = Path(stage_config.run_path)
            if not stage_finished(run_dir):
                log.info("%s seed %d", name, seed)
                resume = resume_or_clean(run_dir)
                train_sft(replace(stage_config, resume=resume))
            sft[f"{name}/seed{seed}"] = stage_summary(run_dir)
            model = run_dir / MODEL_DIR
        for method in METHODS:
            run_dir = config.out_dir / method / f"seed{seed}"
            if not stage_finished(run_dir):
                log.info("%s seed %d", method, seed)
                resume = resume_or_clean(run_dir)
                train_prime(PRIMEConfig(method=method, seed=seed, sft_model=model, steps=config.steps,
                                        eval_every_steps=config.eval_every_steps, prm_update=config.prm_update,
                                        run_dir=run_dir, smoke=config.smoke, progress=config.progress,
                                        resume=resume))  # fmt: skip
            runs[f"{method}/seed{seed}"] = stage_summary(run_dir)
    return {"sft": sft, "runs": runs}


# --------------------------------------------------------------------------------------------- the summary


def _number(value: Any) -> float:
    """A figure of a summary as a float (a non-finite one was written as null: NaN)."""
    return float("nan") if value is None else float(value)


def _interval_of(values: Sequence[float]) -> dict[str, Any]:
    """Mean and 95 % t-interval over the finite values (mean None where there are none)."""
    finite = [float(v) for v in values if math.isfinite(v)]
    return t_interval(finite) if finite else {"mean": None, "ci95": None, "n": 0}


def _by_step(history: Sequence[dict[str, Any]]) -> dict[float, dict[str, Any]]:
    return {float(row["step"]): row for row in history}


def common_steps(runs: dict[str, dict[str, Any]]) -> list[float]:
    """The evaluation steps every run has, in order (step 0, the SFT model, first)."""
    sets = [set(_by_step(run["history"])) for run in runs.values()]
    return sorted(set.intersection(*sets)) if sets else []


def _excludes_zero(row: dict[str, Any]) -> tuple[bool, bool]:
    """(the 95 % interval excludes 0, it lies above 0); no interval (one seed) excludes nothing."""
    ci = row.get("ci95")
    if not ci:
        return False, False
    return bool(ci[0] > 0 or ci[1] < 0), bool(ci[0] > 0)


def check_claims(sft: dict[str, Any], final: dict[str, dict[str, Any]], differences: dict[str, Any]) -> dict[str, Any]:
    """PRIME's mean final accuracy above the SFT model's and above RLOO's; whether the paired intervals exclude 0."""

    def above(a: Any, b: Any) -> bool:
        return a is not None and b is not None and a > b

    claims: dict[str, Any] = {
        "prime_above_sft": above(final["prime"]["mean"], sft["mean"]),
        "prime_above_rloo": above(final["prime"]["mean"], final["rloo"]["mean"]),
        "rloo_above_sft": above(final["rloo"]["mean"], sft["mean"]),
    }
    for name in ("prime_minus_sft", "prime_minus_rloo", "rloo_minus_sft"):
        excludes, above_zero = _excludes_zero(differences[name])
        claims[f"{name}_interval_excludes_zero"] = excludes
        claims[f"{name}_interval_above_zero"] = above_zero
    return claims


def samples_table(runs: dict[str, dict[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
    """Per run its steps and sample counts; whether PRIME and RLOO of each seed trained on as many rollouts."""
    per_run = {
        key: {
            "steps": run.get("steps"),
            **(run.get("samples") or {"sampled_responses": None, "trained_rollouts": None}),
        }
        for key, run in runs.items()
    }
    matched = {}
    for seed in seeds:
        prime, rloo = per_run[f"prime/seed{seed}"], per_run[f"rloo/seed{seed}"]
        matched[f"seed{seed}"] = bool(
            prime["trained_rollouts"] is not None
            and prime["steps"] == rloo["steps"]
            and prime["trained_rollouts"] == rloo["trained_rollouts"]
        )
    return {"per_run": per_run, "matched_per_seed": matched, "matched": all(matched.values())}


def summarise(stages: dict[str, Any], config: PRIMEReportConfig) -> dict[str, Any]:
    """Per method and evaluation step the accuracies over seeds; the SFT model's; the final differences; claims."""
    runs = stages["runs"]
    steps = common_steps(runs)
    if not steps:
        raise ValueError("the runs share no evaluation step")
    last = steps[-1]
    rows = {key: _by_step(run["history"]) for key, run in runs.items()}

    def value(method: str, seed: int, step: float, metric: str) -> float:
        return _number(rows[f"{method}/seed{seed}"][step].get(metric))

    accuracy: dict[str, dict[str, list[dict[str, Any]]]] = {}
    sft_level: dict[str, dict[str, Any]] = {}
    differences: dict[str, dict[str, dict[str, Any]]] = {}
    claims: dict[str, dict[str, Any]] = {}
    relative: dict[str, float | None] = {}
    step0_agrees = True
    for metric in METRICS:
        accuracy[metric] = {}
        for method in METHODS:
            table = []
            for step in steps:
                per_seed = [value(method, s, step, metric) for s in config.seeds]
                table.append({"step": step, **_interval_of(per_seed), "per_seed": per_seed})
            accuracy[metric][method] = table
        sft_per_seed = [value("prime", s, steps[0], metric) for s in config.seeds]
        rloo_start = [value("rloo", s, steps[0], metric) for s in config.seeds]
        step0_agrees = step0_agrees and steps[0] == 0.0 and sft_per_seed == rloo_start
        sft_level[metric] = {**_interval_of(sft_per_seed), "per_seed": sft_per_seed}
        final = {m: {**_interval_of(p := [value(m, s, last, metric) for s in config.seeds]), "per_seed": p}
                 for m in METHODS}  # fmt: skip
        pairs = {
            "prime_minus_sft": [a - b for a, b in zip(final["prime"]["per_seed"], sft_per_seed, strict=True)],
            "prime_minus_rloo": [
                a - b for a, b in zip(final["prime"]["per_seed"], final["rloo"]["per_seed"], strict=True)
            ],
            "rloo_minus_sft": [a - b for a, b in zip(final["rloo"]["per_seed"], sft_per_seed, strict=True)],
        }
        differences[metric] = {name: {**_interval_of(d), "per_seed": d} for name, d in pairs.items()}
        sft_mean, gain = sft_level[metric]["mean"], differences[metric]["prime_minus_sft"]["mean"]
        relative[metric] = gain / sft_mean if sft_mean and gain is not None else None
        claims[metric] = check_claims(sft_level[metric], final, differences[metric])
    sft_stages = stages.get("sft", {})
    return {
        "report": "prime",
        "seeds": list(config.seeds),
        "steps": steps,
        "final_step": last,
        "prm_update": config.prm_update,
        "smoke": config.smoke,
        "metric": "heldout_accuracy (primary): greedy final-answer accuracy of the policy on held-out arithmetic "
        "problems (PRIMEConfig.eval_problems of them, drawn from the seed; PRIME and RLOO of a seed see the same "
        "problems); heldout_accuracy_sampled: the same at temperature 1. Step 0 is the SFT model; mean and 95 % "
        "t-interval over seeds; differences paired by seed (same SFT model and problems) at the final step",
        "accuracy": accuracy,
        "sft": sft_level,
        "sft_is_the_step0_of_both_methods": bool(step0_agrees),
        "difference_at_final_step": differences,
        "prime_relative_gain_over_sft": relative,
        "claims": claims["heldout_accuracy"],
        "claims_sampled": claims["heldout_accuracy_sampled"],
        "samples": samples_table(runs, config.seeds),
        "sft_stages": {
            key: {k: run.get(k) for k in ("seed", "examples", "steps", "accuracy_greedy", "accuracy_sampled", "wall_s")}
            for key, run in sft_stages.items()
        },
        "wall_s_per_run": {k: v.get("wall_s") for k, v in runs.items()},
    }


def plot(report: dict[str, Any], path: Path) -> Path:
    """Held-out accuracy against step: each method's mean with its 95 % band, the SFT model's level dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"heldout_accuracy": "held-out accuracy (greedy)", "heldout_accuracy_sampled": "held-out accuracy (T=1)"}
    figure, axes = plt.subplots(1, len(METRICS), figsize=(5.5 * len(METRICS), 4))
    for axis, metric in zip(axes, METRICS, strict=True):
        for method, rows in report["accuracy"][metric].items():
            shown = [r for r in rows if r["mean"] is not None]
            x = [r["step"] for r in shown]
            mean = [r["mean"] for r in shown]
            low = [(r["ci95"] or [r["mean"]] * 2)[0] for r in shown]
            high = [(r["ci95"] or [r["mean"]] * 2)[1] for r in shown]
            (line,) = axis.plot(x, mean, marker="o", ms=3, label=method)
            axis.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
        sft = report["sft"][metric]
        if sft["mean"] is not None:
            axis.axhline(sft["mean"], color="grey", lw=1.0, ls="--", label="SFT model")
            if sft["ci95"]:
                axis.axhspan(*sft["ci95"], color="grey", alpha=0.1)
        axis.set_xlabel("step")
        axis.set_ylabel(titles[metric])
        axis.set_title(f"{len(report['seeds'])} seeds, 95 % t-intervals")
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)


def prime_report(config: PRIMEReportConfig) -> dict[str, Any]:
    """Run every stage, write the report and the plot; returns the report."""
    report = summarise(run_stages(config), config)
    report["plot"] = str(plot(report, config.out_dir / PLOT_FILE))
    write_json_atomic(config.out_dir / REPORT_FILE, report)
    return report


__all__ = ["PRIMEReportConfig", "check_claims", "common_steps", "prime_report", "samples_table", "summarise"]

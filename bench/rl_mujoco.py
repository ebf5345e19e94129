"""Sweep of policyopt's algorithms on MuJoCo v5 tasks at a step budget, and the report of the finished runs.

Each (algorithm, environment, seed) is one process of the project's `policyopt` command (`python -m
policyopt.cli <algo> ...`), started under `nice`, `--workers` at a time, in a folder of its own

    <out-dir>/<algo>/<env>__s<seed>__<steps>/   (stdout.log, stderr.log, result.json)
        run/                                    (policyopt's run folder: checkpoint.pt, scalars.jsonl, summary.json)

`result.json` is written once the process has finished cleanly: a sweep that is started again skips those
runs and resumes the others from their checkpoints (`--resume`), so an interrupted sweep continues where it
stopped; a run stopped before its first checkpoint starts again from scratch (its partial run folder is
removed first: policyopt refuses a fresh run in a folder that holds an earlier one). With `--archive DIR`
(a committed folder, the same layout), each finished run's figures are also copied there (its scalars gzipped,
summary.json, result.json; no checkpoint), runs found there count as finished, and the report reads them too:
so a sweep longer than one session goes on in the next even where `runs/` is not kept. The report (JSON on
stdout and in `<report-dir>/rl_mujoco.json`, and three PNGs) reads every finished run under `<out-dir>`:

* per (algo, env, budget): the final return (mean of the last 10 % of the logged training episodes'
  returns, per seed), its mean over seeds and 95 % t-interval, the area under the learning curve (the
  mean return over the budget: episodic returns averaged in 20 equal step bins, then over the bins), SPS;
* PROPS (and PPO-BUFFER, `ppo-buffer`: PROPS with the behaviour update off) against PPO: the sampling error
  KL(pi_D || pi_theta) of the data of each update, per update, averaged over seeds;
* per (algo, env, budget), as the PROPS and MDPO papers and rliable evaluate: the deterministic policy (as
  exported) over 10 evaluation episodes, 30 times over the budget; the IQM over seeds of the last evaluation
  and of the mean over evaluations, with 95 % percentile-bootstrap intervals, and the IQM evaluation curve;
* MDPO against PPO, off-policy MDPO against SAC: the difference of the final returns, and for the evaluation
  returns rliable's probability of improvement and IQM difference with bootstrap intervals;
* CleanRL's published PPO figures (v4 tasks, 1M steps) for reference, with this sweep's budget next to them.

    python bench/rl_mujoco.py --algos ppo props mdpo --envs Hopper-v5 Walker2d-v5 HalfCheetah-v5 \\
        --seeds 0 1 2 --steps 40960 --workers 2
    python bench/rl_mujoco.py --algos sac mdpo-offpolicy --envs Hopper-v5 --steps 15000 \\
        --extra-args="--learning-starts 2000"
    python bench/rl_mujoco.py --report-only --report-dir learning/policyopt/results
    python bench/rl_mujoco.py --smoke          # two runs of a few hundred steps, then the report (seconds)
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_prelude  # noqa: F401  (first: one BLAS thread, and this folder off sys.path)
import numpy as np

from runkit import write_json_atomic
from runkit.atomic import write_bytes_atomic
from runkit.config import smoke_requested
from runkit.metrics import SCALARS_FILE
from runkit.metrics import read_scalars as read_run_scalars

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.json"
TRAINING_DIR = "run"
"""policyopt's run folder inside each run's folder (older sweeps wrote its files into the run's folder itself)."""
REPORT_FILE = "rl_mujoco.json"
CURVES_PNG = "learning_curves.png"
SAMPLING_ERROR_PNG = "sampling_error.png"
EVAL_CURVES_PNG = "eval_curves.png"
CURVE_BINS = 20
EVALUATIONS = 30
"""On-policy runs evaluate the deterministic policy this many times over the budget (every budget / 30 steps)."""
EVAL_EPISODES = 10
"""Deterministic-policy episodes per evaluation (the same seeds at every evaluation of a run)."""
BOOTSTRAP_REPS = 5000
FINAL_FRACTION = 0.1
"""The final return is the mean of this fraction of the last logged episodes (at least one)."""

ALGOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ppo": ("ppo", ()),
    "props": ("props", ()),
    "ppo-buffer": ("props", ("--no-props-enabled",)),
    "mdpo": ("mdpo", ()),
    "sac": ("sac", ()),
    "mdpo-offpolicy": ("mdpo-offpolicy", ()),
}
"""Sweep name -> (policyopt subcommand, extra arguments). `ppo-buffer` is the PROPS paper's PPO-BUFFER ablation."""
OFF_POLICY = {"sac", "mdpo-offpolicy"}

CLEANRL_PPO_1M = {
    "Hopper-v5": 2383.0,
    "Walker2d-v5": 2288.0,
    "HalfCheetah-v5": 1443.0,
}
"""CleanRL's published ppo_continuous_action returns on the v4 tasks after 1M steps (the targets' reference)."""

COMPARISONS = [("props", "ppo"), ("ppo-buffer", "ppo"), ("props", "ppo-buffer"), ("mdpo", "ppo"),
               ("mdpo-offpolicy", "sac")]  # fmt: skip


def log(message: str) -> None:
    """Progress to stderr, keeping stdout for the JSON result."""
    print(f"[bench/rl_mujoco] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ sweep


@dataclass(frozen=True)
class RunSpec:
    """One training run of the sweep."""

    algo: str
    env_id: str
    seed: int
    steps: int
    extra_args: tuple[str, ...] = ()
    """More policyopt arguments for this run (e.g. ("--learning-starts", "2000"))."""

    def run_dir(self, out_dir: Path) -> Path:
        """The run's folder: <out-dir>/<algo>/<env>__s<seed>__<steps> (the process's logs and result.json)."""
        return out_dir / self.algo / f"{self.env_id}__s{self.seed}__{self.steps}"

    def training_dir(self, out_dir: Path) -> Path:
        """policyopt's run folder (checkpoint.pt, scalars.jsonl), inside the run's folder."""
        return self.run_dir(out_dir) / TRAINING_DIR

    def command(self, run_dir: Path, resume: bool, smoke: bool) -> list[str]:
        """The policyopt command line of this run (without `nice`)."""
        subcommand, extra = ALGOS[self.algo]
        argv = [sys.executable, "-m", "policyopt.cli", subcommand, "--env-id", self.env_id]
        argv += ["--seed", str(self.seed), "--total-timesteps", str(self.steps), "--run-dir", str(run_dir)]
        argv += ["--checkpoint-every-steps", str(max(self.steps // 4, 1)), "--no-progress", "--no-tensorboard"]
        if self.algo in OFF_POLICY:
            argv += ["--buffer-size", str(max(self.steps, 1000)), "--eval-episodes", "5"]
        else:  # the sampling-error curves compare PROPS with PPO: measured at every update (off by default)
            argv += ["--sampling-error-every", "1", "--eval-episodes", str(EVAL_EPISODES)]
            argv += ["--eval-every-steps", str(max(self.steps // EVALUATIONS, 1))]
        argv += [*extra, *self.extra_args]
        if smoke:
            argv.append("--smoke")
        if resume:
            argv.append("--resume")
        return argv


def is_finished(spec: RunSpec, out_dir: Path, archive: Path | None = None) -> bool:
    """True when the run's result.json (under `out_dir`, or in the `archive`) says it ended cleanly."""
    for folder in (out_dir, archive):
        path = None if folder is None else spec.run_dir(folder) / RESULT_FILE
        if path is not None and path.is_file() and json.loads(path.read_text()).get("returncode") == 0:
            return True
    return False


def archive_run(run_dir: Path, archived: Path) -> None:
    """Copy what the report reads of a finished run (its scalars gzipped, summary.json, then result.json, which
    marks it finished; no checkpoint) to `archived`, each file written atomically. A committed archive carries
    finished runs across sessions whose `runs/` folder is not kept: a later sweep skips them."""
    training, target = run_dir / TRAINING_DIR, archived / TRAINING_DIR
    scalars = training / SCALARS_FILE
    write_bytes_atomic(target / f"{SCALARS_FILE}.gz", gzip.compress(scalars.read_bytes(), mtime=0))
    if (training / SUMMARY_FILE).is_file():
        write_bytes_atomic(target / SUMMARY_FILE, (training / SUMMARY_FILE).read_bytes())
    write_bytes_atomic(archived / RESULT_FILE, (run_dir / RESULT_FILE).read_bytes())


def archive_finished(out_dir: Path, archive: Path) -> list[Path]:
    """Archive every finished run under `out_dir` that the archive does not hold yet; the archived folders."""
    done = []
    for result in sorted(out_dir.glob(f"*/*/{RESULT_FILE}")):
        run_dir = result.parent
        archived = archive / run_dir.relative_to(out_dir)
        if json.loads(result.read_text()).get("returncode") == 0 and not (archived / RESULT_FILE).is_file():
            archive_run(run_dir, archived)
            done.append(archived)
    return done


def execute(spec: RunSpec, out_dir: Path, niceness: int, smoke: bool, archive: Path | None = None) -> dict[str, Any]:
    """Run (or resume) one training process; write result.json when it finishes cleanly (and archive the run
    when an `archive` is given)."""
    run_dir = spec.run_dir(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    training_dir = spec.training_dir(out_dir)
    resume = (training_dir / "checkpoint.pt").is_file()
    if not resume and training_dir.exists():
        shutil.rmtree(training_dir)  # stopped before its first checkpoint: nothing to resume, start again
    argv = spec.command(training_dir, resume, smoke)
    if niceness:
        argv = ["nice", "-n", str(niceness), *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    log(f"start {spec.algo} {spec.env_id} seed {spec.seed} ({'resume' if resume else 'fresh'})")
    started = time.perf_counter()
    with (run_dir / "stdout.log").open("a") as out, (run_dir / "stderr.log").open("a") as err:
        completed = subprocess.run(argv, stdout=out, stderr=err, cwd=REPO_ROOT, env=env, check=False)
    wall_s = time.perf_counter() - started
    result = {
        "algo": spec.algo,
        "env_id": spec.env_id,
        "seed": spec.seed,
        "steps": spec.steps,
        "returncode": completed.returncode,
        "wall_s": wall_s,
        "resumed": resume,
        "command": " ".join(argv),
    }
    if completed.returncode == 0:
        write_json_atomic(run_dir / RESULT_FILE, result)
        if archive is not None:
            archive_run(run_dir, spec.run_dir(archive))
    log(f"end {spec.algo} {spec.env_id} seed {spec.seed}: rc {completed.returncode}, {wall_s:.0f} s")
    return result


def sweep(
    specs: list[RunSpec], out_dir: Path, workers: int, niceness: int, smoke: bool, archive: Path | None = None
) -> list[dict[str, Any]]:
    """Run the unfinished runs of `specs` (finished: under `out_dir` or in the `archive`), `workers` processes at
    a time."""
    todo = [spec for spec in specs if not is_finished(spec, out_dir, archive)]
    log(f"{len(specs)} runs, {len(specs) - len(todo)} already finished, {len(todo)} to run with {workers} workers")
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        return list(pool.map(lambda spec: execute(spec, out_dir, niceness, smoke, archive), todo))


# ----------------------------------------------------------------------------------------------- report


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """A run's scalars (runkit's reader), from its training folder (or the run's folder, in older sweeps)."""
    training_dir = run_dir / TRAINING_DIR
    return read_run_scalars(training_dir if training_dir.is_dir() else run_dir)


def final_return(returns: list[float]) -> float:
    """Mean of the last `FINAL_FRACTION` of the episodic returns (at least one episode)."""
    count = max(1, math.ceil(FINAL_FRACTION * len(returns)))
    return float(np.mean(returns[-count:]))


def binned_curve(episodes: list[tuple[int, float]], steps: int, bins: int = CURVE_BINS) -> np.ndarray:
    """Mean episodic return in `bins` equal step bins over [0, steps]; empty bins carry the previous value.

    episodes: (step at the episode's end, return). Bins before the first episode are NaN.
    """
    edges = np.linspace(0.0, float(steps), bins + 1)
    curve = np.full(bins, np.nan)
    if not episodes:
        return curve
    at = np.asarray([s for s, _ in episodes], dtype=float)
    values = np.asarray([r for _, r in episodes], dtype=float)
    index = np.clip(np.searchsorted(edges, at, side="left") - 1, 0, bins - 1)
    for b in range(bins):
        chosen = values[index == b]
        if chosen.size:
            curve[b] = chosen.mean()
        elif b > 0:
            curve[b] = curve[b - 1]
    return curve


def t_interval(values: list[float]) -> dict[str, Any]:
    """Mean, sample std and the 95 % t-interval of the mean (None with fewer than two values)."""
    from scipy import stats

    array = np.asarray(values, dtype=float)
    n = int(array.size)
    mean = float(array.mean()) if n else float("nan")
    if n < 2:
        return {"mean": mean, "std": None, "ci95": None, "n": n}
    std = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n}


def summarise_run(run_dir: Path) -> dict[str, Any] | None:
    """Figures of one finished run (None when it has not finished)."""
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    meta = json.loads(path.read_text())
    scalars = read_scalars(run_dir)
    episodes = scalars.get("charts/episodic_return", [])
    returns = [value for _, value in episodes]
    curve = binned_curve(episodes, int(meta["steps"]))
    sps = scalars.get("charts/SPS", [])
    errors = scalars.get("rollout/sampling_error", [])
    evaluation = scalars.get("rollout/eval_mean_return", scalars.get("eval/mean_return", []))  # older runs: eval/
    eval_values = [value for _, value in evaluation]
    return {
        **meta,
        "episodes": len(returns),
        "final_return": final_return(returns) if returns else None,
        "auc_return": float(np.nanmean(curve)) if np.isfinite(curve).any() else None,
        "curve": [None if math.isnan(v) else float(v) for v in curve],
        "sps_last": sps[-1][1] if sps else None,
        "sampling_error": [[int(s), float(v)] for s, v in errors],
        "eval_mean_return": eval_values[-1] if eval_values else None,
        "eval_auc": float(np.mean(eval_values)) if eval_values else None,
        "eval_curve": [[int(step), float(value)] for step, value in evaluation],
    }


def collect_runs(out_dir: Path, archive: Path | None = None) -> list[dict[str, Any]]:
    """Every finished run under `out_dir`, and those of the `archive` that `out_dir` does not hold."""
    folders = {result.parent.relative_to(out_dir): result.parent for result in out_dir.glob(f"*/*/{RESULT_FILE}")}
    if archive is not None:
        for result in archive.glob(f"*/*/{RESULT_FILE}"):
            folders.setdefault(result.parent.relative_to(archive), result.parent)
    runs = []
    for key in sorted(folders):
        summary = summarise_run(folders[key])
        if summary is not None:
            runs.append(summary)
    return runs


def group_key(run: dict[str, Any]) -> str:
    """ "algo|env|steps": runs of one configuration, over seeds."""
    return f"{run['algo']}|{run['env_id']}|{run['steps']}"


def summarise_group(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (algo, env, budget): final return and AUC over seeds, SPS, sampling error per update."""
    finals = [r["final_return"] for r in runs if r["final_return"] is not None]
    aucs = [r["auc_return"] for r in runs if r["auc_return"] is not None]
    curves = np.asarray([[np.nan if v is None else v for v in r["curve"]] for r in runs], dtype=float)
    group: dict[str, Any] = {
        "algo": runs[0]["algo"],
        "env_id": runs[0]["env_id"],
        "steps": runs[0]["steps"],
        "seeds": sorted(r["seed"] for r in runs),
        "final_return": t_interval(finals),
        "final_return_per_seed": {str(r["seed"]): r["final_return"] for r in runs},
        "auc_return": t_interval(aucs),
        "curve_steps": [float(x) for x in np.linspace(0, runs[0]["steps"], CURVE_BINS + 1)[1:]],
        "curve_mean": _nanlist(_nanmean_columns(curves)),
        "curve_ci95_half": _nanlist(_ci_half(curves)),
        "sps_mean": _mean_or_none([r["sps_last"] for r in runs]),
        "wall_s_mean": _mean_or_none([r["wall_s"] for r in runs]),
    }
    evaluations = [r["eval_mean_return"] for r in runs if r["eval_mean_return"] is not None]
    if evaluations:
        group["eval_mean_return"] = t_interval(evaluations)
        group["eval_final_iqm"] = iqm_interval(evaluations)
        group["eval_final_per_seed"] = {str(r["seed"]): r["eval_mean_return"] for r in runs}
        group["eval_auc_iqm"] = iqm_interval([r["eval_auc"] for r in runs if r["eval_auc"] is not None])
        group["eval_auc_per_seed"] = {str(r["seed"]): r["eval_auc"] for r in runs}
        group["eval_curve"] = eval_curve([r["eval_curve"] for r in runs if r["eval_curve"]])
    error_runs = [r["sampling_error"] for r in runs if r["sampling_error"]]
    if error_runs:
        length = min(len(e) for e in error_runs)
        matrix = np.asarray([[v for _, v in e[:length]] for e in error_runs])
        group["sampling_error"] = {
            "steps": [s for s, _ in error_runs[0][:length]],
            "mean_per_update": [float(v) for v in matrix.mean(axis=0)],
            "mean_over_run": float(matrix.mean()),
        }
    return group


def iqm(values: np.ndarray) -> np.ndarray:
    """Interquartile mean along the last axis (rliable's IQM: the mean of the middle 50 %, 25 % trimmed each side)."""
    from scipy import stats

    return np.asarray(stats.trim_mean(values, 0.25, axis=-1))


def iqm_interval(values: list[float], reps: int = BOOTSTRAP_REPS, seed: int = 0) -> dict[str, Any]:
    """IQM over seeds and its 95 % percentile-bootstrap interval (seeds resampled with replacement, as rliable)."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return {"iqm": None, "ci95": None, "n": 0}
    samples = array[np.random.default_rng(seed).integers(0, array.size, size=(reps, array.size))]
    low, high = np.percentile(iqm(samples), [2.5, 97.5])
    return {"iqm": float(iqm(array)), "ci95": [float(low), float(high)], "n": int(array.size)}


def eval_curve(curves: list[list[list[float]]]) -> dict[str, Any]:
    """IQM over seeds of the evaluation return at each evaluation step the runs share, with bootstrap intervals."""
    steps = sorted(set.intersection(*({int(s) for s, _ in curve} for curve in curves))) if curves else []
    by_step = [{int(s): v for s, v in curve} for curve in curves]
    points = [iqm_interval([run[step] for run in by_step]) for step in steps]
    return {
        "steps": steps,
        "iqm": [p["iqm"] for p in points],
        "ci95_low": [p["ci95"][0] for p in points],
        "ci95_high": [p["ci95"][1] for p in points],
    }


def improvement(ours: list[float], theirs: list[float], reps: int = BOOTSTRAP_REPS, seed: int = 0) -> dict[str, Any]:
    """rliable's comparison of two algorithms on one task, from per-seed scores.

    `probability_of_improvement`: P(X > Y) + P(X = Y) / 2 for a random run X of ours and Y of theirs (the
    Mann-Whitney statistic); `iqm_diff`: IQM(ours) - IQM(theirs); both with 95 % percentile-bootstrap intervals
    (each algorithm's seeds resampled independently).
    """
    x, y = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    if x.size == 0 or y.size == 0:
        return {"probability_of_improvement": None, "iqm_diff": None}
    rng = np.random.default_rng(seed)
    xs = x[rng.integers(0, x.size, size=(reps, x.size))]
    ys = y[rng.integers(0, y.size, size=(reps, y.size))]

    def prob(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        greater = (a[..., :, None] > b[..., None, :]).mean(axis=(-2, -1))
        ties = (a[..., :, None] == b[..., None, :]).mean(axis=(-2, -1))
        return np.asarray(greater + 0.5 * ties)

    poi = prob(xs, ys)
    diff = iqm(xs) - iqm(ys)
    return {
        "probability_of_improvement": float(prob(x, y)),
        "probability_of_improvement_ci95": [float(v) for v in np.percentile(poi, [2.5, 97.5])],
        "iqm_diff": float(iqm(x) - iqm(y)),
        "iqm_diff_ci95": [float(v) for v in np.percentile(diff, [2.5, 97.5])],
    }


def _nanmean_columns(curves: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN (all-NaN columns give NaN, silently)."""
    if curves.ndim != 2 or curves.shape[0] == 0:
        return np.full(curves.shape[-1] if curves.ndim == 2 else 0, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(curves, axis=0)


def _nanlist(array: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(float(v)) else float(v) for v in array]


def _ci_half(curves: np.ndarray) -> np.ndarray:
    from scipy import stats

    if curves.ndim != 2 or curves.shape[0] < 2:
        return np.full(curves.shape[-1] if curves.ndim == 2 else 0, np.nan)
    n = np.sum(np.isfinite(curves), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(curves, axis=0, ddof=1)
        return np.where(n >= 2, stats.t.ppf(0.975, np.maximum(n - 1, 1)) * std / np.sqrt(n), np.nan)


def _mean_or_none(values: list[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def compare(groups: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Algorithm A against B on the same env and budget: final return and AUC difference, sampling errors."""
    out = []
    for ours, theirs in COMPARISONS:
        for group in groups.values():
            if group["algo"] != ours:
                continue
            other = groups.get(f"{theirs}|{group['env_id']}|{group['steps']}")
            if other is None:
                continue
            a, b = group["final_return"], other["final_return"]
            row: dict[str, Any] = {
                "algo": ours,
                "baseline": theirs,
                "env_id": group["env_id"],
                "steps": group["steps"],
                "final_return": [a["mean"], b["mean"]],
                "final_return_diff": a["mean"] - b["mean"],
                "final_return_ratio": a["mean"] / b["mean"] if b["mean"] else None,
                "auc_diff": group["auc_return"]["mean"] - other["auc_return"]["mean"],
                "cis_overlap": _overlap(a["ci95"], b["ci95"]),
                "welch_p": _welch(
                    list(group["final_return_per_seed"].values()), list(other["final_return_per_seed"].values())
                ),
            }
            if "eval_final_per_seed" in group and "eval_final_per_seed" in other:
                for name in ("eval_final", "eval_auc"):
                    mine_seeds = [v for v in group[f"{name}_per_seed"].values() if v is not None]
                    base_seeds = [v for v in other[f"{name}_per_seed"].values() if v is not None]
                    row[name] = improvement(mine_seeds, base_seeds)
            if "sampling_error" in group and "sampling_error" in other:
                mine = group["sampling_error"]["mean_per_update"]
                base = other["sampling_error"]["mean_per_update"]
                length = min(len(mine), len(base))
                row["sampling_error_mean"] = [float(np.mean(mine[:length])), float(np.mean(base[:length]))]
                row["sampling_error_lower_fraction"] = float(np.mean(np.less(mine[:length], base[:length])))
                row["sampling_error_lower_at_every_update"] = bool(np.all(np.less(mine[:length], base[:length])))
            out.append(row)
    return out


def _overlap(a: list[float] | None, b: list[float] | None) -> bool | None:
    if a is None or b is None:
        return None
    return bool(a[0] <= b[1] and b[0] <= a[1])


def _welch(a: list[float | None], b: list[float | None]) -> float | None:
    from scipy import stats

    x = [v for v in a if v is not None]
    y = [v for v in b if v is not None]
    if len(x) < 2 or len(y) < 2:
        return None
    return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def plot(groups: dict[str, dict[str, Any]], report_dir: Path) -> list[str]:
    """Learning curves (mean and 95 % band per algo, one panel per env) and sampling error per update."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    thousands = FuncFormatter(lambda x, _pos: f"{x / 1000:g}k")
    envs = sorted({g["env_id"] for g in groups.values()})
    written = []
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        for group in sorted((g for g in groups.values() if g["env_id"] == env), key=lambda g: g["algo"]):
            x = np.asarray(group["curve_steps"])
            mean = np.asarray([np.nan if v is None else v for v in group["curve_mean"]])
            half = np.asarray([np.nan if v is None else v for v in group["curve_ci95_half"]])
            label = f"{group['algo']} ({len(group['seeds'])} seeds, {group['steps'] // 1000}k)"
            (line,) = ax.plot(x, mean, label=label)
            ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.2)
        ax.set_title(env)
        ax.set_xlabel("environment steps")
        ax.xaxis.set_major_formatter(thousands)
        ax.set_ylabel("episodic return (training)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(report_dir / CURVES_PNG, dpi=110)
    plt.close(fig)
    written.append(str(report_dir / CURVES_PNG))

    evaluated = [g for g in groups.values() if g.get("eval_curve", {}).get("steps")]
    eval_envs = sorted({g["env_id"] for g in evaluated})
    if eval_envs:
        fig, axes = plt.subplots(1, len(eval_envs), figsize=(5 * len(eval_envs), 4), squeeze=False)
        for ax, env in zip(axes[0], eval_envs, strict=True):
            for group in sorted((g for g in evaluated if g["env_id"] == env), key=lambda g: g["algo"]):
                curve = group["eval_curve"]
                label = f"{group['algo']} ({len(group['seeds'])} seeds)"
                (line,) = ax.plot(curve["steps"], curve["iqm"], label=label)
                band = (curve["ci95_low"], curve["ci95_high"])
                ax.fill_between(curve["steps"], *band, color=line.get_color(), alpha=0.2)
            ax.set_title(env)
            ax.set_xlabel("environment steps")
            ax.xaxis.set_major_formatter(thousands)
            ax.set_ylabel(f"evaluation return (IQM, {EVAL_EPISODES} det. episodes)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(report_dir / EVAL_CURVES_PNG, dpi=110)
        plt.close(fig)
        written.append(str(report_dir / EVAL_CURVES_PNG))

    with_errors = [g for g in groups.values() if "sampling_error" in g]
    error_envs = sorted({g["env_id"] for g in with_errors})
    if error_envs:
        fig, axes = plt.subplots(1, len(error_envs), figsize=(5 * len(error_envs), 4), squeeze=False)
        for ax, env in zip(axes[0], error_envs, strict=True):
            for group in sorted((g for g in with_errors if g["env_id"] == env), key=lambda g: g["algo"]):
                error = group["sampling_error"]
                ax.plot(error["steps"], error["mean_per_update"], marker=".", label=group["algo"])
            ax.set_yscale("log")
            ax.set_title(env)
            ax.set_xlabel("environment steps")
            ax.xaxis.set_major_formatter(thousands)
            ax.set_ylabel("sampling error KL(pi_D || pi_theta)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(report_dir / SAMPLING_ERROR_PNG, dpi=110)
        plt.close(fig)
        written.append(str(report_dir / SAMPLING_ERROR_PNG))
    return written


def build_report(
    out_dir: Path, report_dir: Path, make_plots: bool = True, archive: Path | None = None
) -> dict[str, Any]:
    """The report of every finished run under `out_dir` (and in the `archive`); JSON and PNGs written to
    `report_dir`."""
    runs = collect_runs(out_dir, archive)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_key.setdefault(group_key(run), []).append(run)
    groups = {key: summarise_group(members) for key, members in sorted(by_key.items())}
    reference = {
        env: {
            "cleanrl_ppo_v4_return_at_1M_steps": value,
            "budget_here_steps": sorted({g["steps"] for g in groups.values() if g["env_id"] == env}),
            "ppo_final_return_here": [
                g["final_return"]["mean"] for g in groups.values() if g["env_id"] == env and g["algo"] == "ppo"
            ],
        }
        for env, value in CLEANRL_PPO_1M.items()
        if any(g["env_id"] == env for g in groups.values())
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "rl_mujoco",
        "metric": {
            "final_return": f"per seed, mean return of the last {FINAL_FRACTION:.0%} of the logged training episodes; "
            "then mean and 95 % t-interval over seeds",
            "auc_return": f"per seed, mean over {CURVE_BINS} equal step bins of the bin's mean episodic return "
            "(area under the learning curve divided by the budget)",
            "sampling_error": "KL(pi_D || pi_theta) of the data each update trains on (MLE-fitted pi_D), "
            "mean over seeds per update",
            "eval_final_iqm": f"per seed, the mean return of {EVAL_EPISODES} deterministic-policy episodes (the "
            "policy as exported: mean action, frozen observation statistics) at the end of the run; then the IQM "
            f"over seeds with a 95 % percentile-bootstrap interval ({BOOTSTRAP_REPS} resamples of the seeds), "
            "as rliable",
            "eval_auc_iqm": f"per seed, the mean of the {EVALUATIONS} evaluations over the run; IQM and bootstrap "
            "interval over seeds",
            "comparisons.eval_final / eval_auc": "rliable's probability of improvement P(X > Y) and the IQM "
            "difference, each with a 95 % bootstrap interval (each algorithm's seeds resampled independently)",
        },
        "groups": groups,
        "comparisons": compare(groups),
        "cleanrl_reference": reference,
        "runs": [{k: v for k, v in r.items() if k not in ("curve", "sampling_error")} for r in runs],
    }
    report["plots"] = plot(groups, report_dir) if make_plots and groups else []
    write_json_atomic(report_dir / REPORT_FILE, report)
    return report


# ------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, sweep, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", nargs="+", default=["ppo", "props", "mdpo"], choices=sorted(ALGOS))
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "Walker2d-v5", "HalfCheetah-v5"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1_000_000, help="environment steps per run")
    parser.add_argument("--workers", type=int, default=2, help="training processes at a time")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the training processes (0: none)")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "runs" / "bench_rl_mujoco", help="run folders")
    parser.add_argument("--report-dir", type=Path, default=None, help="report JSON and PNGs (default: --out-dir)")
    parser.add_argument(
        "--extra-args",
        default="",
        help='more policyopt arguments for every run, e.g. --extra-args="--learning-starts 2000"',
    )
    parser.add_argument(
        "--archive",
        type=Path,
        default=None,
        help="a folder (committed) that keeps each finished run's figures (no checkpoint): its runs count as "
        "finished and are reported; finished runs under --out-dir are copied there",
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report from finished runs")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    parser.add_argument("--smoke", action="store_true", help="two runs of a few hundred steps (also SMOKE_TEST=1)")
    args = parser.parse_args(argv)
    smoke = smoke_requested(args.smoke)
    if smoke:
        args.algos, args.envs, args.seeds, args.steps = ["ppo", "props"], ["Hopper-v5"], [0], 384
    report_dir = args.report_dir or args.out_dir
    started = time.perf_counter()
    failed: list[dict[str, Any]] = []
    if args.archive is not None and args.out_dir.is_dir():
        for archived in archive_finished(args.out_dir, args.archive):
            log(f"archived {archived}")
    if not args.report_only:
        extra = tuple(shlex.split(args.extra_args))
        specs = [RunSpec(a, e, s, args.steps, extra) for s in args.seeds for e in args.envs for a in args.algos]
        runs = sweep(specs, args.out_dir, args.workers, args.nice, smoke, args.archive)
        failed = [r for r in runs if r["returncode"] != 0]
    report = build_report(args.out_dir, report_dir, make_plots=not args.no_plots, archive=args.archive)
    report["smoke"] = smoke
    report["failed_runs"] = failed
    report["wall_time_s"] = time.perf_counter() - started
    write_json_atomic(report_dir / REPORT_FILE, report)
    print(json.dumps(report, indent=2))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

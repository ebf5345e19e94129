"""`bench/rl_mujoco.py`: the sweep runs the real CLI, caches finished runs, and reports returns with t-intervals.

The report's statistics are checked against closed forms; the smoke sweep (two runs of a few hundred steps)
must produce the report, the PNGs, and a second invocation must reuse the finished runs instead of training.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from .script_loader import load_bench_script

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "rl_mujoco.py"


def _load_script() -> ModuleType:
    return load_bench_script(SCRIPT, "bench_rl_mujoco")


def _run(*args: str) -> tuple[dict[str, Any], str]:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
        cwd=REPO_ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout)
    return result, completed.stderr


def test_t_interval_matches_the_closed_form() -> None:
    bench = _load_script()
    figures = bench.t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3.0)  # t_{0.975, 2} * s / sqrt(n), s = 1
    assert figures["mean"] == pytest.approx(2.0)
    assert figures["std"] == pytest.approx(1.0)
    assert figures["ci95"] == pytest.approx([2.0 - half, 2.0 + half])
    assert bench.t_interval([5.0])["ci95"] is None


def test_iqm_and_rliables_comparison_match_hand_computed_values() -> None:
    bench = _load_script()
    # 8 values, 25 % trimmed each side: the mean of the middle four, whatever the outliers
    assert float(bench.iqm(np.array([100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -50.0]))) == pytest.approx(3.5)
    interval = bench.iqm_interval([10.0, 12.0, 11.0, 30.0, 9.0])
    assert interval["iqm"] == pytest.approx(11.0)  # trim_mean of 5 trims one each side: mean(10, 11, 12)
    assert interval["ci95"][0] <= interval["iqm"] <= interval["ci95"][1]
    assert interval["ci95"][0] >= 9.0
    assert interval["ci95"][1] <= 30.0
    assert bench.iqm_interval([4.0, 4.0, 4.0])["ci95"] == [4.0, 4.0]
    better = bench.improvement([5.0, 6.0, 7.0], [1.0, 2.0, 3.0])
    assert better["probability_of_improvement"] == 1.0
    assert better["probability_of_improvement_ci95"] == [1.0, 1.0]
    assert better["iqm_diff"] == pytest.approx(4.0)
    # [1, 3] against [2, 2]: one pair in two wins, ties count half
    assert bench.improvement([1.0, 3.0], [2.0, 2.0])["probability_of_improvement"] == pytest.approx(0.5)
    assert bench.improvement([2.0], [2.0])["probability_of_improvement"] == pytest.approx(0.5)
    assert bench.improvement([1.0, 2.0], [3.0])["probability_of_improvement"] == 0.0


def test_final_return_is_the_mean_of_the_last_tenth_of_episodes() -> None:
    bench = _load_script()
    returns = [float(i) for i in range(20)]
    assert bench.final_return(returns) == pytest.approx((18.0 + 19.0) / 2.0)
    assert bench.final_return([7.0]) == pytest.approx(7.0)


def test_binned_curve_averages_per_bin_and_carries_empty_bins_forward() -> None:
    bench = _load_script()
    episodes = [(150, 2.0), (180, 4.0), (950, 10.0)]
    curve = bench.binned_curve(episodes, steps=1000, bins=10)
    assert np.isnan(curve[0])
    assert curve[1] == pytest.approx(3.0)
    assert curve[2:9].tolist() == pytest.approx([3.0] * 7)
    assert curve[9] == pytest.approx(10.0)


def test_each_run_calls_the_project_cli_with_its_own_folder_and_budget(tmp_path: Path) -> None:
    bench = _load_script()
    spec = bench.RunSpec("ppo-buffer", "Hopper-v5", 2, 4096, ("--learning-rate", "1e-4"))
    run_dir = spec.run_dir(tmp_path)
    argv = spec.command(run_dir, resume=True, smoke=False)
    assert argv[1:4] == ["-m", "policyopt.cli", "props"]
    assert "--no-props-enabled" in argv
    assert argv[argv.index("--total-timesteps") + 1] == "4096"
    assert argv[argv.index("--seed") + 1] == "2"
    assert argv[argv.index("--run-dir") + 1] == str(run_dir)
    assert argv[argv.index("--learning-rate") + 1] == "1e-4"
    assert argv[-1] == "--resume"
    assert spec.training_dir(tmp_path) == run_dir / "run"  # policyopt's run folder, apart from the logs


@pytest.mark.parametrize("checkpointed", [False, True])
def test_a_stopped_run_resumes_from_its_checkpoint_or_starts_again_in_a_clean_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checkpointed: bool
) -> None:
    """policyopt refuses a fresh run in a used folder: the sweep clears a run folder that has nothing to resume."""
    bench = _load_script()
    spec = bench.RunSpec("ppo", "Hopper-v5", 0, 384)
    training_dir = spec.training_dir(tmp_path)
    training_dir.mkdir(parents=True)
    (training_dir / "scalars.jsonl").write_text("")
    if checkpointed:
        (training_dir / "checkpoint.pt").write_bytes(b"checkpoint")
    calls: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    result = bench.execute(spec, tmp_path, niceness=0, smoke=True)
    (argv,) = calls
    assert argv[argv.index("--run-dir") + 1] == str(training_dir)
    assert result["resumed"] is checkpointed
    assert ("--resume" in argv) is checkpointed
    assert (training_dir / "scalars.jsonl").exists() is checkpointed  # a fresh start finds an empty place
    assert json.loads((spec.run_dir(tmp_path) / "result.json").read_text())["returncode"] == 0


@pytest.mark.bench
@pytest.mark.slow
def test_smoke_sweep_reports_and_a_second_sweep_reuses_the_finished_runs(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    report, _ = _run("--smoke", "--out-dir", str(out), "--nice", "0")
    assert report["smoke"] is True
    assert report["failed_runs"] == []
    assert set(report["groups"]) == {"ppo|Hopper-v5|384", "props|Hopper-v5|384"}
    for group in report["groups"].values():
        assert math.isfinite(group["final_return"]["mean"])
        assert math.isfinite(group["auc_return"]["mean"])
        assert len(group["sampling_error"]["mean_per_update"]) >= 2
        assert all(value > 0 for value in group["sampling_error"]["mean_per_update"])
        # the deterministic policy evaluated after each update (budget / 30 steps apart), IQM over seeds
        assert group["eval_curve"]["steps"] == [128, 256, 384]
        assert math.isfinite(group["eval_final_iqm"]["iqm"])
        assert group["eval_final_iqm"]["iqm"] == pytest.approx(group["eval_curve"]["iqm"][-1])
    (comparison,) = [c for c in report["comparisons"] if (c["algo"], c["baseline"]) == ("props", "ppo")]
    assert len(comparison["sampling_error_mean"]) == 2
    assert comparison["eval_final"]["probability_of_improvement"] in (0.0, 0.5, 1.0)  # one seed each
    assert report["cleanrl_reference"]["Hopper-v5"]["cleanrl_ppo_v4_return_at_1M_steps"] == 2383.0
    assert report["cleanrl_reference"]["Hopper-v5"]["budget_here_steps"] == [384]
    for png in report["plots"]:
        assert Path(png).stat().st_size > 1000
    assert json.loads((out / "rl_mujoco.json").read_text())["groups"] == report["groups"]

    again, stderr = _run("--smoke", "--out-dir", str(out), "--nice", "0")
    assert "2 already finished, 0 to run" in stderr
    assert again["groups"] == report["groups"]

    rebuilt, _ = _run("--report-only", "--out-dir", str(out), "--report-dir", str(tmp_path / "report"), "--no-plots")
    assert rebuilt["groups"] == report["groups"]
    assert (tmp_path / "report" / "rl_mujoco.json").is_file()


def test_an_archived_run_counts_as_finished_and_reports_as_it_did_in_the_sweep(tmp_path: Path) -> None:
    """A committed archive carries finished runs (no checkpoint, scalars gzipped) to a later session."""
    bench = _load_script()
    out, archive, fresh = tmp_path / "runs", tmp_path / "archive", tmp_path / "next_session"
    spec = bench.RunSpec("ppo", "Hopper-v5", 0, 384)
    training = spec.training_dir(out)
    training.mkdir(parents=True)
    rows = [{"step": 128 * i, "name": "charts/episodic_return", "value": 10.0 * i} for i in range(1, 4)]
    rows += [{"step": 128 * i, "name": "rollout/eval_mean_return", "value": 5.0 * i} for i in range(1, 4)]
    (training / "scalars.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (training / "checkpoint.pt").write_bytes(b"x" * 1000)
    unfinished = bench.RunSpec("props", "Hopper-v5", 0, 384)
    unfinished.training_dir(out).mkdir(parents=True)  # still running: no result.json
    (spec.run_dir(out) / "result.json").write_text(json.dumps({**dataclasses.asdict(spec), "returncode": 0}))
    archived = bench.archive_finished(out, archive)
    assert archived == [spec.run_dir(archive)]
    assert not (spec.training_dir(archive) / "checkpoint.pt").exists()
    assert (spec.training_dir(archive) / "scalars.jsonl.gz").is_file()
    assert bench.archive_finished(out, archive) == []  # already there
    fresh.mkdir()
    assert bench.is_finished(spec, fresh, archive)
    assert not bench.is_finished(spec, fresh)
    assert not bench.is_finished(unfinished, fresh, archive)
    (from_archive,) = bench.collect_runs(fresh, archive)
    (from_sweep,) = bench.collect_runs(out)
    assert from_archive == from_sweep
    assert from_archive["eval_mean_return"] == 15.0

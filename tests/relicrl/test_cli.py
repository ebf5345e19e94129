"""The `relic` command as a user runs it: smoke training, resume, evaluation, and one-line user errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from runkit.testing import run_console_script


@pytest.mark.slow
def test_train_resume_and_eval_through_the_command(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = run_console_script("relic", ["train", "--env", "darkroom", "--run-dir", str(run_dir), "--no-progress"])
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["variant"] == "relic"
    assert (run_dir / "policy.pt").is_file()
    assert (run_dir / "checkpoint.pt").is_file()
    again = run_console_script("relic", ["train", "--env", "darkroom", "--run-dir", str(run_dir)])
    assert again.returncode == 2
    assert again.stderr.strip().startswith("error:")
    assert "--resume" in again.stderr
    assert "Traceback" not in again.stderr
    resumed = run_console_script(
        "relic", ["train", "--env", "darkroom", "--run-dir", str(run_dir), "--resume", "--total-steps", "512"]
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == 512
    evaluated = run_console_script(
        "relic",
        ["eval", "--policy", str(run_dir / "policy.pt"), "--env", "darkroom", "--trials", "2", "--episodes", "2"],
    )
    assert evaluated.returncode == 0, evaluated.stderr
    figures = json.loads(evaluated.stdout)
    assert len(figures["success_by_episode"]) == 2
    assert all(layout >= 1 << 30 for layout in figures["layouts"]), "evaluation must use held-out layouts"


def test_user_errors_are_one_line_with_status_2(tmp_path: Path) -> None:
    missing = run_console_script("relic", ["train", "--run-dir", str(tmp_path / "none"), "--resume"])
    assert missing.returncode == 2
    assert "nothing to resume" in missing.stderr
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "relicrl.policy/1", "path": Path("/")}))
    refused = run_console_script("relic", ["eval", "--policy", str(evil)])
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    bad = run_console_script("relic", ["train", "--rollout-steps", "100", "--updates-per-rollout", "16"])
    assert bad.returncode == 2
    assert "updates_per_rollout" in bad.stderr

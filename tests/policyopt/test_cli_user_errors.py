"""`policyopt`: a user's mistake ends in one line and exit status 2; the command starts without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from policyopt.cli import main
from runkit.testing import run_console_script


class _OpensAFile:
    """Unpickling this object would call `open(marker, "w")`: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _user_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `policyopt argv`; return its one stderr line after checking exit status 2 and no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", ["ppo", "sac"])
def test_an_unknown_environment_id_is_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    line = _user_error([command, "--env-id", "NoSuchEnv-v0", "--smoke", "--run-dir", str(run_dir)], capsys)
    assert line.startswith("error: unknown environment id 'NoSuchEnv-v0'")
    assert "NoSuchEnv" in line
    assert not run_dir.exists()  # refused before the run started


def test_an_unknown_version_lists_the_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _user_error(["ppo", "--env-id", "CartPole-v9", "--smoke", "--run-dir", str(tmp_path)], capsys)
    assert "unknown environment id 'CartPole-v9'" in line
    assert "v1" in line


def test_an_environment_module_that_does_not_exist_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _user_error(["mdpo", "--env-id", "no_such_module:Task-v0", "--smoke", "--run-dir", str(tmp_path)], capsys)
    assert line == "error: unknown environment id 'no_such_module:Task-v0': no module 'no_such_module'"


def test_exporting_a_corrupt_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = tmp_path / "checkpoint.pt"
    corrupt.write_bytes(b"\x00garbage")
    line = _user_error(["export", "--checkpoint", str(corrupt), "--out", str(tmp_path / "policy.pt")], capsys)
    assert line.startswith(f"error: {corrupt} is not a readable policyopt")


def test_a_crafted_pickle_given_as_checkpoint_is_refused_in_one_line_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "marker"
    crafted = tmp_path / "checkpoint.pt"
    torch.save({"format": "policyopt.policy/3", "state": _OpensAFile(marker)}, crafted)
    out = tmp_path / "policy.pt"
    line = _user_error(["export", "--checkpoint", str(crafted), "--out", str(out)], capsys)
    assert line.startswith(f"error: {crafted} is not a readable policyopt checkpoint or policy file")
    assert "refused by the safe loader" in line
    assert not marker.exists()
    assert not out.exists()


def test_resume_on_an_empty_folder_exits_2_with_one_line(tmp_path: Path) -> None:
    """The installed `policyopt` command, as a user (or CI, SMOKE_TEST=1) runs it."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_console_script("policyopt", ["ppo", "--resume", "--run-dir", str(empty), "--no-progress"])
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.splitlines()
    expected = (
        f"nothing to resume in {empty}: there is no checkpoint.pt (run without --resume to start a new run there)"
    )
    assert line == f"error: {expected}"
    assert result.stdout == ""
    assert list(empty.iterdir()) == []


def test_a_fresh_run_in_a_used_folder_exits_2_and_leaves_the_earlier_run(tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "checkpoint.pt").write_bytes(b"an earlier run's")
    result = run_console_script("policyopt", ["sac", "--env-id", "Pendulum-v1", "--run-dir", str(used)])
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {used} holds an earlier run (checkpoint.pt): pass --resume")
    assert (used / "checkpoint.pt").read_bytes() == b"an earlier run's"
    assert sorted(p.name for p in used.iterdir()) == ["checkpoint.pt"]


@pytest.mark.parametrize("argv", [["--help"], ["ppo", "--help"], ["sac", "--help"], ["export", "--help"]])
def test_the_policyopt_command_starts_without_torch_or_gymnasium(argv: list[str]) -> None:
    """The real entry point parses its configs (all of them) without importing the learning stack."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "policyopt.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")
    }
    assert "policyopt.configs" in imported
    assert not {"torch", "gymnasium"} & imported


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["ppo", "--num-envs", "0"], "num_envs must be >= 1, got 0"),
        (["ppo", "--learning-rate", "-1"], "learning_rate must be > 0, got -1.0"),
        (["mdpo", "--num-minibatches", "100000"], "num_minibatches must be in [1, num_envs * num_steps"),
        (["props", "--props-clip-coef", "2"], "props_clip_coef must be in (0, 1), got 2.0"),
        (["sac", "--tau", "0"], "tau must be in (0, 1], got 0.0"),
        (["mdpo-offpolicy", "--sgd-steps", "0"], "sgd_steps must be >= 1, got 0"),
        (["mdpo", "--sgd-steps", "0"], "sgd_steps must be >= 1, got 0"),
        (["mdpo", "--target-kl", "0.1"], "target_kl must be None for MDPO, got 0.1"),
    ],
)
def test_a_value_out_of_range_is_named_before_anything_runs(
    argv: list[str], field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `--num-envs 0` or `--learning-rate -1` ended in a traceback from gymnasium or Adam mid-setup."""
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--run-dir", str(run_dir)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    assert field in err
    assert not run_dir.exists()

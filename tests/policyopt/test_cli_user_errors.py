"""`policyopt`: a user's mistake ends in one line and exit status 2; the on-policy commands start without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from policyopt.cli import main


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


def test_the_policyopt_command_starts_without_torch_or_gymnasium() -> None:
    """`policyopt ppo --help` (the real entry point) parses its config without importing the learning stack."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "policyopt.cli", "ppo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")
    }
    assert "policyopt.configs" in imported
    assert not {"torch", "gymnasium"} & imported

"""The CLI runner: a user's mistake is one line and exit status 2, a bug keeps its traceback, SIGTERM is Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from runkit.cli import (
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    UserError,
    as_user_error,
    is_user_error,
    one_line,
    run_cli,
)

# A console script built on the runner, run in its own process as a user runs one.
SCRIPT = textwrap.dedent(
    '''
    """A tiny command line on runkit's runner."""
    import sys
    import time
    from dataclasses import dataclass

    from runkit.cli import UserError, run_cli


    class BadSetting(ValueError):
        """Registered as a user error by name."""


    @dataclass
    class Fail:
        kind: str = "user"


    @dataclass
    class Wait:
        seconds: float = 30.0


    def handle(config):
        if isinstance(config, Wait):
            try:
                print("ready", flush=True)
                time.sleep(config.seconds)
            finally:
                print("cleaned up", flush=True)
            return 0
        if config.kind == "user":
            raise UserError("the course file c.csv has no x column\\n(it has a, b)")
        if config.kind == "registered":
            raise BadSetting("--speed must be > 0, got -1")
        raise RuntimeError("a bug deep inside")


    if __name__ == "__main__":
        raise SystemExit(
            run_cli({"fail": Fail, "wait": Wait}, handle, user_errors=("__main__:BadSetting",), description=__doc__)
        )
    '''
)


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "tool.py"
    path.write_text(SCRIPT)
    return path


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("user", "error: the course file c.csv has no x column (it has a, b)"),
        ("registered", "error: --speed must be > 0, got -1"),
    ],
)
def test_a_user_error_is_one_line_on_stderr_and_exit_status_2(script: Path, kind: str, message: str) -> None:
    result = _run(script, "fail", "--kind", kind)
    assert result.returncode == EXIT_USER_ERROR
    assert result.stderr.splitlines() == [message]
    assert "Traceback" not in result.stderr


def test_any_other_exception_keeps_its_traceback(script: Path) -> None:
    result = _run(script, "fail", "--kind", "bug")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: a bug deep inside" in result.stderr


def test_a_bad_argument_is_tyros_own_message_with_status_2(script: Path) -> None:
    result = _run(script, "fail", "--no-such-flag")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_sigterm_during_a_command_unwinds_like_ctrl_c(script: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(script), "wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == EXIT_INTERRUPTED
    assert "cleaned up" in stdout  # finally blocks ran: the command unwound
    assert stderr.splitlines() == ["interrupted"]


def test_importing_the_runner_imports_no_heavy_package() -> None:
    heavy = "{'torch', 'gymnasium', 'mujoco', 'tyro'}"
    code = f"import sys, runkit, runkit.cli; print(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


@dataclass
class Speed:
    """One setting."""

    speed_m_s: float = 1.0


def test_run_cli_returns_the_handlers_status_and_restores_sigterm(capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert run_cli(Speed, lambda config: 3 if config.speed_m_s == 2.0 else 0, argv=["--speed-m-s", "2"]) == 3
    assert run_cli({"go": Speed, "stop": Speed}, lambda config: None, argv=["stop"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before
    assert capsys.readouterr().err == ""


def test_keyboard_interrupt_is_status_130_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(config: Speed) -> int:
        raise KeyboardInterrupt

    assert run_cli(Speed, interrupted, argv=[]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted\n"


def test_other_exceptions_propagate_in_process() -> None:
    def broken(config: Speed) -> int:
        raise ValueError("not the user's")

    with pytest.raises(ValueError, match="not the user's"):
        run_cli(Speed, broken, argv=[])


class _LocalError(Exception):
    pass


def test_a_type_named_by_string_is_looked_up_only_in_imported_modules() -> None:
    error = _LocalError("x")
    assert is_user_error(error, [f"{__name__}:_LocalError"])
    assert not is_user_error(error, ["no_such_module_for_runkit:_LocalError"])
    assert "no_such_module_for_runkit" not in sys.modules
    assert not is_user_error(error, [f"{__name__}:NoSuchName", KeyError])
    assert is_user_error(UserError("y"))


def test_as_user_error_converts_only_the_named_types() -> None:
    with (
        pytest.raises(UserError, match=r"^--course: no built-in course 'x'$") as caught,
        as_user_error(FileNotFoundError, prefix="--course: "),
    ):
        raise FileNotFoundError("no built-in course 'x'")
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    with pytest.raises(KeyError), as_user_error(FileNotFoundError):
        raise KeyError("other")


def test_one_line_joins_lines_and_names_an_empty_error() -> None:
    assert one_line(ValueError("line one\n  line two\n")) == "line one line two"
    assert one_line(ValueError()) == "ValueError"

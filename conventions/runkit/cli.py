"""The one command-line runner of the project: parse (tyro), run, and end the way a user expects.

    def main(argv: list[str] | None = None) -> None:
        raise SystemExit(run_cli({"plan": PlanConfig, "eval": EvalConfig}, run_command, argv=argv))

What the runner guarantees for every console script:

- a user's mistake (a `UserError`, or one of the error types the script registers) prints
  `error: <message>` on one line to stderr and exits with status 2, without a traceback;
- Ctrl-C and SIGTERM unwind the same way (KeyboardInterrupt, so `finally` blocks and context managers
  shut worker processes down), print `interrupted` and exit with status 130;
- every other exception is a bug or a failure worth reading in full: it keeps its traceback.

Registered error types may be named "module:QualifiedName" so that a script does not import a heavy
module (torch) to name its error: an exception of that type can only exist once its module has been
imported, so the name is looked up in `sys.modules` when something was raised, never imported.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

EXIT_USER_ERROR = 2
"""Exit status of a command that stopped on a user's mistake (as argparse uses for bad arguments)."""
EXIT_INTERRUPTED = 130
"""Exit status of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT, the shell's convention for Ctrl-C)."""

ErrorType = type[BaseException] | str
"""An exception type, or its "module:QualifiedName" (looked up only in modules already imported)."""


class UserError(Exception):
    """A mistake in what the user gave (arguments, files): the message says what was wrong, on one line."""


@contextmanager
def as_user_error(*error_types: type[BaseException], prefix: str = "") -> Iterator[None]:
    """Re-raise `error_types` raised inside the block as a `UserError` (message: `prefix` + the original's)."""
    try:
        yield
    except UserError:
        raise
    except error_types as exc:
        raise UserError(f"{prefix}{one_line(exc)}") from exc


def one_line(error: BaseException) -> str:
    """The message of `error` on one line (its lines joined with spaces; the type name when it has none)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__


def typed_one_line(error: BaseException, limit: int = 300) -> str:
    """`Type: message` of an error on one line, at most about `limit` characters, for a file's refusal.

    For torch's refusal of a pickled object (weights_only) only the refused global is kept, not torch's
    advice to load the file without `weights_only` (which would run what it holds).
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # torch's message carries terminal escapes
    refusal = "WeightsUnpickler error:"
    if refusal in text:
        detail = text.split(refusal, 1)[1].strip().split(". ", 1)[0]
        text = f"refused by the safe loader (tensors and plain values only): {detail}"
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_cli(
    commands: Mapping[str, Callable[..., Any]] | Callable[..., Any],
    handler: Callable[[Any], int | None],
    *,
    argv: Sequence[str] | None = None,
    description: str | None = None,
    user_errors: Iterable[ErrorType] = (),
) -> int:
    """Parse the command line into a config, run `handler(config)`, and return the exit status.

    Args:
        commands: subcommand name -> config class (or constructor), as tyro's `subcommand_cli_from_dict`
            takes them; or one config class for a command without subcommands.
        handler: runs the parsed config; returns the exit status (None: 0).
        argv: the arguments (default: `sys.argv[1:]`).
        description: the help text's description (default: tyro's, from the config's docstring).
        user_errors: error types reported like a `UserError`, besides `UserError` itself.

    A bad argument ends in tyro's own message and status 2 (SystemExit, raised, not returned).
    """

    def parse_and_run() -> int | None:
        import tyro  # here, so that importing runkit stays light

        if isinstance(commands, Mapping):
            config = tyro.extras.subcommand_cli_from_dict(dict(commands), args=argv, description=description)
        else:
            config = tyro.cli(commands, args=argv, description=description)
        return handler(config)

    return run_guarded(parse_and_run, user_errors=user_errors)


def run_guarded(body: Callable[[], int | None], *, user_errors: Iterable[ErrorType] = ()) -> int:
    """Run `body` as `run_cli` runs a command (SIGTERM as Ctrl-C, user errors on one line); return the status."""
    registered = tuple(user_errors)
    with _sigterm_as_interrupt():
        try:
            status = body()
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:
            if not is_user_error(exc, registered):
                raise
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return EXIT_USER_ERROR
    return 0 if status is None else status


def is_user_error(error: BaseException, registered: Iterable[ErrorType] = ()) -> bool:
    """Whether `error` is a `UserError` or an instance of one of the `registered` types."""
    if isinstance(error, UserError):
        return True
    return any(isinstance(error, error_type) for error_type in _resolved(registered))


def _resolved(registered: Iterable[ErrorType]) -> Iterator[type[BaseException]]:
    """The registered types; a "module:QualifiedName" is skipped while its module has not been imported."""
    for entry in registered:
        if not isinstance(entry, str):
            yield entry
            continue
        module_name, _, qualified_name = entry.partition(":")
        found: Any = sys.modules.get(module_name)
        for attribute in qualified_name.split(".") if found is not None else ():
            found = getattr(found, attribute, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            yield found


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside the block (main thread only; the old handler comes back after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_USER_ERROR",
    "ErrorType",
    "UserError",
    "as_user_error",
    "is_user_error",
    "one_line",
    "run_cli",
    "run_guarded",
]

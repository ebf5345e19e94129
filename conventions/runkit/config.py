"""The configuration every run extends, its one smoke rule, and the rules of a run folder.

`RunConfig` holds what every trainer has: seed, run folder, resume, smoke, threads, determinism,
progress. A package's config extends it (a dataclass) and names its defaults for smoke runs in
`smoke_sizes()`; `resolved()` gives the configuration actually run.

The smoke rule, the same for every command and bench script: `--smoke`, or `SMOKE_TEST=1` in the
environment, shrinks every size the user left at its default and never a value the user set
(`--courses 10 --smoke` runs 10 courses).

A run folder holds one run: a fresh run in a folder that holds an earlier one is refused (pass
`--resume` or another folder), and `--resume` where there is no checkpoint is refused too (it never
silently starts from scratch). Both are `RunDirectoryError`s: one line, exit status 2.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from runkit.cli import UserError

SMOKE_ENV = "SMOKE_TEST"
"""Environment variable that means `--smoke` (any value but empty, "0", "false" or "no")."""

C = TypeVar("C", bound="RunConfig")
D = TypeVar("D")


class RunDirectoryError(UserError):
    """A run folder that does not fit the request: an earlier run where a fresh one starts, or nothing to resume."""


class ConfigValueError(UserError, ValueError):
    """A configuration value out of its range (one line naming the field, the value and the rule; exit status 2)."""


def require_config(ok: bool, name: str, value: Any, rule: str) -> None:
    """`ConfigValueError` naming the field unless `ok`: the one way a config checks its values."""
    if not ok:
        raise ConfigValueError(f"{name} must be {rule}, got {value!r}")


def smoke_from_environment() -> bool:
    """Whether `SMOKE_TEST` in the environment asks for a smoke run."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def smoke_requested(flag: bool = False) -> bool:
    """`--smoke` given, or `SMOKE_TEST` set: the one test of "is this a smoke run" (bench scripts use it too)."""
    return bool(flag) or smoke_from_environment()


def shrink_defaults(config: D, sizes: Mapping[str, Any]) -> D:
    """`config` (a dataclass) with each field of `sizes` replaced, where the user left it at its default.

    Raises:
        ValueError: `sizes` names a field the config does not have (a typo in a package's smoke sizes).
    """
    declared = {f.name: f for f in fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(sizes) - set(declared))
    if unknown:
        raise ValueError(f"smoke sizes name fields that {type(config).__name__} does not have: {unknown}")
    shrunk = {k: v for k, v in sizes.items() if _is_default(getattr(config, k), declared[k])}
    return replace(config, **shrunk)  # type: ignore[type-var]


def _is_default(value: Any, declared: Field[Any]) -> bool:
    """Whether `value` is the field's declared default (a field without one, which the user always sets, is not).

    Read from the field, not from `type(config)()`: a config with a required field (a checkpoint to
    calibrate, say) cannot be built without arguments.
    """
    if declared.default is not MISSING:
        return bool(value == declared.default)
    if declared.default_factory is not MISSING:
        return bool(value == declared.default_factory())
    return False


@dataclass
class RunConfig:
    """What every run has: seed, run folder, resume, smoke, threads, determinism, progress."""

    seed: int = 0
    """Seed of every random generator of the run (the same seed gives the same run)."""
    run_dir: Path | None = None
    """Run folder (checkpoints, metrics, figures, summary.json); default: the package's runs/<...>/seed<seed>."""
    resume: bool = False
    """Continue from the run folder's last checkpoint; an error where there is none."""
    smoke: bool = False
    """Shrink every size left at its default so the run takes seconds (also SMOKE_TEST=1)."""
    torch_threads: int = 1
    """Threads of torch's CPU work (0: torch's default; small networks gain nothing from more)."""
    torch_deterministic: bool = True
    """Ask torch for deterministic algorithms (the same seed gives the same numbers)."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        """Check the values (each package's config extends this and calls it first)."""
        require_config(self.torch_threads >= 0, "torch_threads", self.torch_threads, ">= 0 (0: torch's default)")

    def smoke_sizes(self) -> dict[str, Any]:
        """Field values a smoke run uses where the user left the default (each package extends this)."""
        return {}

    def default_run_dir(self) -> Path:
        """The run folder when none is given (each package names its own; it includes the seed)."""
        return Path("runs") / type(self).__name__.lower() / f"seed{self.seed}"

    def resolved(self: C) -> C:
        """The configuration actually run: the smoke rule applied and the run folder filled in."""
        config = self
        if smoke_requested(self.smoke):
            config = shrink_defaults(replace(config, smoke=True), config.smoke_sizes())
        if config.run_dir is None:
            config = replace(config, run_dir=config.default_run_dir())
        return config

    @property
    def run_path(self) -> Path:
        """The run folder (the default one when `run_dir` is None)."""
        return Path(self.run_dir) if self.run_dir is not None else self.default_run_dir()


def prepare_run_dir(run_dir: Path, resume: bool, checkpoint: Path, ignore: Iterable[str] = ()) -> bool:
    """Check a run folder against the request and create it; return whether the run resumes.

    Args:
        run_dir: the run folder.
        resume: whether the user asked to continue an earlier run.
        checkpoint: the file a resumed run continues from (inside `run_dir`).
        ignore: names in the folder that do not make it an earlier run (e.g. a file the user put there).

    Raises:
        RunDirectoryError: `resume` without `checkpoint`; or a fresh run where an earlier one left files.
    """
    run_dir = Path(run_dir)
    if resume:
        if not Path(checkpoint).is_file():
            raise RunDirectoryError(
                f"nothing to resume in {run_dir}: there is no {Path(checkpoint).name} "
                "(run without --resume to start a new run there)"
            )
        return True
    skipped = set(ignore)
    earlier = sorted(p.name for p in run_dir.iterdir() if p.name not in skipped) if run_dir.is_dir() else []
    if earlier:
        shown = ", ".join(earlier[:4]) + (", ..." if len(earlier) > 4 else "")
        raise RunDirectoryError(
            f"{run_dir} holds an earlier run ({shown}): pass --resume to continue it, or choose another run folder"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return False


__all__ = [
    "SMOKE_ENV",
    "ConfigValueError",
    "RunConfig",
    "RunDirectoryError",
    "prepare_run_dir",
    "require_config",
    "shrink_defaults",
    "smoke_from_environment",
    "smoke_requested",
]

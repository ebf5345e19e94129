"""Test helpers every package's tests use for the run conventions (plain asserts: no pytest import).

- `run_console_script`: a smoke run of a real console script, as a user runs it (a subprocess, SMOKE_TEST=1);
- `assert_same_seed_same_result`: two runs with one seed agree, a run with another seed does not;
- `assert_resume_matches`: a run interrupted and resumed ends where an uninterrupted one does;
- `assert_every_parameter_changes`: one training step moves every trainable parameter of a module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from runkit.config import SMOKE_ENV

T = TypeVar("T")


def run_console_script(
    name: str,
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    smoke: bool = True,
    timeout_s: float = 600.0,
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script `name` (next to this interpreter) with `args`; capture its output.

    With `smoke`, SMOKE_TEST=1 is set, as a CI run sets it. The script's exit status is not checked.
    """
    script = Path(sys.executable).with_name(name)
    command = [str(script)] if script.exists() else [shutil.which(name) or name]
    environment = {**os.environ, **(env or {})}
    if smoke:
        environment[SMOKE_ENV] = "1"
    return subprocess.run(
        [*command, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def _flat(value: Any) -> np.ndarray:
    """Numbers of a result (arrays, tensors, nested dicts and lists of numbers) as one float64 vector."""
    if isinstance(value, Mapping):
        parts = [_flat(value[k]) for k in sorted(value)]
        return np.concatenate(parts) if parts else np.zeros(0)
    if isinstance(value, list | tuple):
        parts = [_flat(v) for v in value]
        return np.concatenate(parts) if parts else np.zeros(0)
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64).reshape(-1)


def assert_same_seed_same_result(run: Callable[[int], Any], seed: int = 0, other_seed: int = 1) -> None:
    """`run(seed)` twice gives identical numbers; `run(other_seed)` gives different ones."""
    first, again, other = _flat(run(seed)), _flat(run(seed)), _flat(run(other_seed))
    assert first.shape == again.shape, f"the same seed gave results of shapes {first.shape} and {again.shape}"
    assert np.array_equal(first, again, equal_nan=True), "the same seed gave different results"
    assert first.shape != other.shape or not np.array_equal(first, other, equal_nan=True), (
        f"seeds {seed} and {other_seed} gave identical results: is the seed used?"
    )


def assert_resume_matches(
    uninterrupted: Callable[[], Any], interrupted_then_resumed: Callable[[], Any], atol: float = 0.0
) -> None:
    """A run interrupted and resumed from its checkpoint ends with the numbers of an uninterrupted run."""
    whole, resumed = _flat(uninterrupted()), _flat(interrupted_then_resumed())
    assert whole.shape == resumed.shape, f"result shapes differ: {whole.shape} vs {resumed.shape}"
    worst = float(np.max(np.abs(whole - resumed))) if whole.size else 0.0
    assert worst <= atol, f"resumed run differs from the uninterrupted one by up to {worst:.3g} (allowed {atol})"


def assert_every_parameter_changes(module: Any, step: Callable[[], None]) -> None:
    """After `step()` (one optimiser step), every trainable parameter of the torch `module` has changed."""
    before = {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}
    assert before, "the module has no trainable parameters"
    step()
    after = dict(module.named_parameters())
    unchanged = [name for name, value in before.items() if bool((after[name].detach() == value).all())]
    assert not unchanged, f"parameters unchanged by a training step: {unchanged}"


__all__ = [
    "assert_every_parameter_changes",
    "assert_resume_matches",
    "assert_same_seed_same_result",
    "run_console_script",
]

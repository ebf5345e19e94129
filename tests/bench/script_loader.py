"""Helpers for benchmark scripts: import one as a module, or run one as a user would and read its JSON.

`load_bench_script` imports a script (its folder is on sys.path only while it loads); `run_bench_script` runs
it as a subprocess and returns the one JSON object it printed to stdout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_bench_script(script: Path, module_name: str) -> ModuleType:
    """Import `script` as `module_name`; bench/ leaves sys.path again, or bench/minsnap.py would shadow minsnap."""
    folder = script.parent.resolve()
    sys.path.insert(0, str(folder))  # for `import bench_prelude`
    spec = importlib.util.spec_from_file_location(module_name, script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != folder]
    return module


def run_bench_script(
    script: Path, *args: str, env: dict[str, str] | None = None, timeout_s: float = 300
) -> dict[str, Any]:
    """Run a benchmark script as a user would and return the one JSON object it printed to stdout.

    The script runs under this interpreter with `args`, the repository root as working directory and the
    environment plus `env`; it must exit with status 0 (the assertion shows the last 3000 characters of its
    stderr) within `timeout_s` seconds, and its stdout must hold exactly one JSON object.
    """
    completed = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **(env or {})},
        cwd=REPO_ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout)  # stdout holds exactly one JSON object
    return result

"""Import a benchmark script as a module (its folder is on sys.path only while it loads)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


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

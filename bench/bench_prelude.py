"""Imported first by every benchmark script: one core, and no shadowing of the project's packages.

* BLAS and OpenMP are limited to one thread (the targets are stated per core); this must happen
  before numpy loads BLAS, hence a module imported before anything else.
* Run as `python bench/minsnap.py`, a script's folder heads `sys.path`, where `minsnap.py` would
  shadow the `minsnap` package: the folder is taken off `sys.path` (this module is loaded by then).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

"""Smoke run of `bench/minsnap.py`: one JSON object with every figure, and the solvers agree.

Timings are reported, never asserted: the machines are noisy.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "minsnap.py"


def _run_smoke(args: list[str], extra_env: dict[str, str]) -> dict[str, Any]:
    env = {**os.environ, **extra_env}
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)  # stdout holds exactly one JSON object


@pytest.mark.bench
@pytest.mark.parametrize(("args", "extra_env"), [(["--smoke"], {}), ([], {"SMOKE_TEST": "1"})], ids=["flag", "env"])
def test_smoke_run_reports_every_figure_and_the_answers_agree(args: list[str], extra_env: dict[str, str]) -> None:
    """Same trajectory from us, OSQP and RotorPy; scaling figures present; targets and pass flags named."""
    result = _run_smoke(args, extra_env)
    assert result["smoke"] is True

    for key in ("speedup_vs_osqp", "time_ratio_rotorpy_over_ours", "scaling_slope"):
        assert 0 < result[key] < math.inf, key
    for key in ("median_ms", "p99_ms"):
        assert result["solve_10_waypoints_ms"][key] > 0
    assert result["vs_osqp"]["osqp"]["status"] == "solved"

    assert result["max_abs_diff_vs_osqp_m"] <= 1e-6
    assert result["vs_osqp"]["osqp_reached_tolerance"] is True
    assert result["max_abs_diff_vs_rotorpy_m"] <= 1e-6
    assert result["vs_rotorpy"]["max_abs_yaw_diff_vs_rotorpy_rad"] <= 1e-6
    assert result["vs_rotorpy"]["velocity_bound_inactive"] is True
    assert result["vs_rotorpy"]["differences_between_the_problems"]

    scaling = result["scaling"]
    assert scaling["segments"] == sorted(scaling["segments"])
    assert len(scaling["median_ms"]) == len(scaling["segments"]) >= 3
    assert all(math.isfinite(value) and value > 0 for value in scaling["median_ms"])

    assert set(result["pass"]) == {
        "speedup_vs_osqp",
        "max_abs_diff_vs_osqp_m",
        "scaling_slope",
        "max_abs_diff_vs_rotorpy_m",
    }
    assert all(isinstance(flag, bool) for flag in result["pass"].values())
    assert result["targets"]["speedup_vs_osqp_min"] == 20.0
    assert result["targets"]["max_abs_diff_vs_osqp_m_max"] == 1e-6

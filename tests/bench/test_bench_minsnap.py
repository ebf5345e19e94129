"""Smoke run of `bench/minsnap.py`: one JSON object with every figure, and the solvers agree.

Timings are reported, never asserted: the machines are noisy.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from .script_loader import run_bench_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "minsnap.py"


@pytest.mark.bench
@pytest.mark.parametrize(("args", "extra_env"), [(["--smoke"], {}), ([], {"SMOKE_TEST": "1"})], ids=["flag", "env"])
def test_smoke_run_reports_every_figure_and_the_answers_agree(args: list[str], extra_env: dict[str, str]) -> None:
    """Same trajectory from us, OSQP and RotorPy; scaling figures present; targets and pass flags named."""
    result = run_bench_script(SCRIPT, *args, env=extra_env)
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

    # The ratios are computed from the two timings measured in this run, not written down.
    vs_osqp, vs_rotorpy = result["vs_osqp"], result["vs_rotorpy"]
    expected = vs_osqp["osqp"]["end_to_end"]["median_ms"] / vs_osqp["ours"]["median_ms"]
    assert result["speedup_vs_osqp"] == pytest.approx(expected, rel=1e-12)
    expected = vs_rotorpy["rotorpy"]["median_ms"] / vs_rotorpy["ours"]["median_ms"]
    assert result["time_ratio_rotorpy_over_ours"] == pytest.approx(expected, rel=1e-12)
    # Each pass flag is its figure held against its target (a flag written True regardless fails here).
    targets, passed = result["targets"], result["pass"]
    assert passed["speedup_vs_osqp"] == (result["speedup_vs_osqp"] >= targets["speedup_vs_osqp_min"])
    assert passed["max_abs_diff_vs_osqp_m"] == (
        result["max_abs_diff_vs_osqp_m"] <= targets["max_abs_diff_vs_osqp_m_max"]
    )
    rotorpy_ok = result["max_abs_diff_vs_rotorpy_m"] <= targets["max_abs_diff_vs_rotorpy_m_max"]
    assert passed["max_abs_diff_vs_rotorpy_m"] == rotorpy_ok
    slopes = [v for v in (scaling["scaling_slope"], scaling["scaling_slope_100_segments_and_up"]) if v is not None]
    assert passed["scaling_slope"] == all(v <= targets["scaling_slope_max"] for v in slopes)

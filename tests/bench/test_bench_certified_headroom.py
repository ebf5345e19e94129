"""Smoke run of `bench/certified_headroom.py`: what the safety certificate costs against the analytic boundary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from minsnap import solve_min_snap
from quadsim.vehicle import VehicleParams

from .script_loader import load_bench_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "certified_headroom.py"


@pytest.mark.bench
def test_tilt_limit_is_what_keeps_certified_plans_off_the_analytic_boundary() -> None:
    bench = load_bench_script(SCRIPT, "bench_certified_headroom")
    result = bench.run(3, smoke=True)
    assert set(result["sets"]) == {"from_rest", "moving_d0"}
    rest = result["sets"]["from_rest"]
    assert rest["courses_compared"] == 3
    shipped, rotor_only = rest["certificates"]["tilt_45"], rest["certificates"][bench.ROTOR_ONLY]
    for row in (shipped, rotor_only):
        assert row["reference_planned"] == row["mfrl_planned"] == 3
    # With the rotor limits alone the yardstick reaches the analytic boundary (its own check, bounded instead of
    # sampled), so it measures the boundary rather than its own weakness.
    assert rotor_only["reference_over_analytic"]["mean"] <= 1.02
    # The analytic boundary's plans tilt past the certificate's 45 deg, and the 45 deg yardstick is slower.
    assert rest["analytic_boundary_max_tilt_deg"]["min"] > 45.0
    assert shipped["reference_over_analytic"]["mean"] > rotor_only["reference_over_analytic"]["mean"] + 0.1
    # MFRL plans under the same certificate as the yardstick, never far from it.
    assert 0.9 < shipped["mfrl_over_reference"]["mean"] < 1.5
    assert result["sets"]["moving_d0"]["certificates"]["tilt_45"]["mfrl_planned"] >= 2


@pytest.mark.bench
@pytest.mark.sim
def test_flights_count_feasible_and_failed_plans() -> None:
    bench = load_bench_script(SCRIPT, "bench_certified_headroom")
    gentle = solve_min_snap(np.array([[0.0, 0.0, 1.0, 0.0], [2.0, 0.0, 1.5, 0.0]]), np.array([4.0]))
    violent = gentle.time_scaled(0.1)  # 0.4 s for 2 m: beyond the rotors
    out = bench.fly([gentle, violent], VehicleParams(), [(900_001, 0.0), (900_002, 0.15)])
    assert set(out) == {"wind_900001_mass_+0%", "wind_900002_mass_+15%"}
    for row in out.values():
        assert (row["flights"], row["feasible"]) == (2, 1)
        assert len(row["failures"]) == 1
        assert row["failures"][0]  # the reason the flight failed
    summary = bench._flight_summary(out, nominal_mass=False)
    assert summary == {"flights": 2, "feasible": 1, "feasible_fraction": 0.5}

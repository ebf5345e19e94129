"""bench/fidelity.py in smoke mode: one JSON object on stdout with sane costs, agreement and targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .script_loader import run_bench_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "fidelity.py"
FIDELITIES = ("analytic", "mujoco", "rotorpy")
BASELINE_CONTROLLER = ("mujoco_pd", "rotorpy_pd")  # the simulators flown by the controller before Step 10


@pytest.fixture(scope="module")
def smoke_result() -> dict[str, Any]:
    return run_bench_script(SCRIPT, "--smoke", env={"SMOKE_TEST": "1"}, timeout_s=400)


@pytest.mark.bench
def test_reports_every_figure(smoke_result: dict[str, Any]) -> None:
    expected = {
        "cost_per_evaluation_s",
        "realtime_factor",
        "agreement_rate",
        "courses",
        "feasible_fraction_by_scale",
        "disagreements",
        "targets",
    }
    assert expected <= smoke_result.keys()
    assert smoke_result["smoke"] is True
    assert set(smoke_result["cost_per_evaluation_s"]) == set(FIDELITIES + BASELINE_CONTROLLER)
    assert set(smoke_result["realtime_factor"]) == {
        "mujoco",
        "rotorpy",
        "mujoco_physics_only",
        "mujoco_flight_over_physics_only",
    }
    target = smoke_result["targets"]["mujoco_realtime_factor"]
    assert target["value"] == smoke_result["realtime_factor"]["mujoco"]
    threshold = float(target["target"].removeprefix(">="))
    assert target["pass"] == (target["value"] >= threshold)  # the flag is the measured figure against the target
    closer = smoke_result["targets"]["rotorpy_boundary_closer_to_analytic_than_baseline"]
    ratios = smoke_result["boundary_scale_ratio_to_analytic_median"]
    assert closer["value"] == {"rotorpy": ratios["rotorpy"], "rotorpy_pd": ratios["rotorpy_pd"]}
    assert closer["pass"] == (ratios["rotorpy"] < ratios["rotorpy_pd"])


@pytest.mark.bench
def test_higher_fidelity_costs_more(smoke_result: dict[str, Any]) -> None:
    costs = [smoke_result["cost_per_evaluation_s"][name]["median_wall_s_all"] for name in FIDELITIES]
    assert 0 < costs[0] < costs[1] < costs[2], costs
    realtime = smoke_result["realtime_factor"]
    assert realtime["mujoco"] > realtime["rotorpy"] > 0
    # The model stepped alone is the ceiling of a flight's real-time factor, measured in the same run.
    assert realtime["mujoco_physics_only"] > realtime["mujoco"]
    assert realtime["mujoco_flight_over_physics_only"] == pytest.approx(
        realtime["mujoco"] / realtime["mujoco_physics_only"]
    )


@pytest.mark.bench
def test_agreement_and_boundaries_are_consistent(smoke_result: dict[str, Any]) -> None:
    num_scales = len(smoke_result["config"]["time_scales"])
    assert smoke_result["num_pairs"] == smoke_result["config"]["num_courses"] * num_scales
    assert set(smoke_result["agreement_rate"]) == {"analytic-mujoco", "analytic-rotorpy", "mujoco-rotorpy"}
    for rate in smoke_result["agreement_rate"].values():
        assert 0.0 <= rate <= 1.0
    for fractions in smoke_result["feasible_fraction_by_scale"].values():
        assert len(fractions) == num_scales
        assert all(0.0 <= f <= 1.0 for f in fractions)
    for course in smoke_result["courses"]:
        assert 5 <= course["num_waypoints"] <= 8
        for name in FIDELITIES + BASELINE_CONTROLLER:
            boundary = course["boundary"][name]
            if boundary["min_feasible_scale"] is not None:
                assert boundary["min_feasible_scale"] in smoke_result["config"]["time_scales"]
                assert boundary["fastest_feasible_avg_speed_m_s"] > 0
    # The fastest scale of the smoke grid is beyond every fidelity's reach.
    assert all(fractions[-1] == 0.0 for fractions in smoke_result["feasible_fraction_by_scale"].values())

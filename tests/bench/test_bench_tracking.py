"""bench/tracking.py in smoke mode: one JSON object with every controller's RMSE at both fidelities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .script_loader import run_bench_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "tracking.py"


@pytest.fixture(scope="module")
def smoke_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("tracking") / "tracking.json"
    result = run_bench_script(SCRIPT, "--smoke", "--out", str(out), env={"SMOKE_TEST": "1"}, timeout_s=180)
    assert json.loads(out.read_text()) == result
    return result


@pytest.mark.bench
@pytest.mark.slow
def test_every_controller_has_figures_at_both_fidelities(smoke_result: dict[str, Any]) -> None:
    assert smoke_result["smoke"] is True
    results = smoke_result["results"]
    assert set(results) == {"mujoco", "rotorpy"}
    shipped = {Path(p).stem for p in smoke_result["config"]["checkpoints"]}
    for summaries in results.values():
        assert {"geometric_se3", "geometric_ctbr"} | shipped == set(summaries)
        for summary in summaries.values():
            assert len(summary["rmse_m_per_trajectory"]) == smoke_result["config"]["trajectories"]
            assert 0.0 < summary["rmse_m_mean"] <= summary["max_error_m"]
            assert 0.0 <= summary["completed_fraction"] <= 1.0
        assert summaries["geometric_se3"]["rmse_ratio_to_geometric_se3"] == pytest.approx(1.0)
    for fidelity, common in smoke_result["references_completed_by_all"].items():
        for summary in results[fidelity].values():
            assert all(summary["completed_per_trajectory"][i] for i in common)


@pytest.mark.bench
@pytest.mark.slow
def test_baselines_track_and_rotorpy_is_the_harder_fidelity(smoke_result: dict[str, Any]) -> None:
    results = smoke_result["results"]
    for name in ("geometric_se3", "geometric_ctbr"):
        assert results["mujoco"][name]["completed_fraction"] == 1.0
        assert results["mujoco"][name]["rmse_m_mean"] < 0.2
        assert results["rotorpy"][name]["rmse_m_mean"] < 0.3
    # Rotor drag, wind and noise that MuJoCo lacks cost the full-feed-forward controller accuracy.
    assert results["rotorpy"]["geometric_se3"]["rmse_m_mean"] > results["mujoco"]["geometric_se3"]["rmse_m_mean"]

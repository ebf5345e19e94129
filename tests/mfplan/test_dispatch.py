"""Fidelity evaluations give the same results inline, in local workers and as Ray tasks."""

from __future__ import annotations

import numpy as np
import pytest

from mfplan.dispatch import EvaluationDispatcher, EvaluatorSpec
from minsnap import solve_min_snap
from quadsim.analytic import AnalyticEvaluator
from quadsim.mujoco_flight import MujocoEvaluator

pytestmark = pytest.mark.sim

COURSE = np.array([[0, 0, 1, 0], [2, 1, 1.5, 0.3], [4, -1, 2, 0.6], [5, 2, 1.2, 0.2]])


def _trajectories() -> list:
    return [solve_min_snap(COURSE, np.array([2.0, 2.0, 2.0]) * scale) for scale in (1.0, 0.4)]


def _comparable(result) -> tuple:
    return (result.fidelity, result.feasible, round(result.max_position_error_m, 9), result.reason)


def test_local_workers_match_direct_evaluation() -> None:
    trajectories = _trajectories()
    requests = [(t, f) for t in trajectories for f in ("analytic", "mujoco")]
    with EvaluationDispatcher(EvaluatorSpec(), num_workers=2) as dispatcher:
        results = dispatcher.evaluate(requests)
    direct = [AnalyticEvaluator() if f == "analytic" else MujocoEvaluator() for _, f in requests]
    expected = [e.evaluate_one(t) for e, (t, _) in zip(direct, requests, strict=True)]
    assert [_comparable(r) for r in results] == [_comparable(r) for r in expected]


def test_unknown_fidelity_is_refused() -> None:
    with EvaluationDispatcher(num_workers=1) as dispatcher, pytest.raises(ValueError, match="unknown fidelity"):
        dispatcher.evaluate([(_trajectories()[0], "wind-tunnel")])


@pytest.mark.slow
def test_ray_tasks_match_local_workers() -> None:
    import ray  # the `ray` extra: scripts/install.sh installs it

    trajectories = _trajectories()
    requests = [(t, "mujoco") for t in trajectories]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with EvaluationDispatcher(EvaluatorSpec(), ray_address="auto") as dispatcher:
            remote = dispatcher.evaluate(requests)
    finally:
        ray.shutdown()
    with EvaluationDispatcher(EvaluatorSpec(), num_workers=1) as dispatcher:
        local = dispatcher.evaluate(requests)
    assert [_comparable(r) for r in remote] == [_comparable(r) for r in local]


def test_a_wind_seed_picks_the_rotorpy_realisation_of_one_flight() -> None:
    from quadsim.rotorpy_flight import RotorPyEvaluator

    short = solve_min_snap(COURSE[:2], np.array([1.5]))
    with EvaluationDispatcher(EvaluatorSpec(rotorpy_seed=0), num_workers=2) as dispatcher:
        results = dispatcher.evaluate([(short, "rotorpy")] * 3 + [(short, "mujoco")], [None, 5, 6, 5])
    default, five, six, mujoco = (round(r.max_position_error_m, 9) for r in results)
    assert default == round(RotorPyEvaluator(seed=0).evaluate_one(short).max_position_error_m, 9)
    assert five == round(RotorPyEvaluator(seed=5).evaluate_one(short).max_position_error_m, 9)
    assert len({default, five, six}) == 3  # three realisations of the wind, three different flights
    assert mujoco == round(MujocoEvaluator().evaluate_one(short).max_position_error_m, 9)  # no wind there


def test_wind_seeds_must_match_the_requests() -> None:
    with EvaluationDispatcher(num_workers=1) as dispatcher, pytest.raises(ValueError, match="wind seeds"):
        dispatcher.evaluate([(_trajectories()[0], "analytic")], [1, 2])

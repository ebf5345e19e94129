"""Evaluator batches (serial and parallel give the same results, failures stay contained) and judge_flight."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from minsnap import Trajectory, solve_min_snap
from quadsim.analytic import AnalyticEvaluator
from quadsim.evaluation import EvaluationResult, FeasibilityCriteria, judge_flight
from quadsim.flight_log import FlightLog
from quadsim.mujoco_flight import MujocoEvaluator
from quadsim.vehicle import VehicleParams

WAYPOINTS = np.array([[0.0, 0.0, 1.0, 0.0], [1.0, 0.5, 1.3, 0.5], [2.0, -0.5, 1.5, 0.0], [3.0, 0.0, 1.2, -0.4]])


def batch(scales: tuple[float, ...] = (1.0, 0.25, 0.6, 0.35)) -> list[Trajectory]:
    """The same course at several speeds, feasible and infeasible ones mixed."""
    return [solve_min_snap(WAYPOINTS, np.full(3, 1.5 * s)) for s in scales]


def comparable(result: EvaluationResult) -> dict[str, object]:
    fields = dataclasses.asdict(result)
    del fields["wall_time_s"]
    return fields


def assert_same_results(first: list[EvaluationResult], second: list[EvaluationResult]) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_equal(comparable(a), comparable(b))  # NaN == NaN here


class FlakyEvaluator(AnalyticEvaluator):
    """Raises for trajectories shorter than 2 s, otherwise the analytic check."""

    name = "flaky"

    def evaluate_one(self, trajectory: Trajectory) -> EvaluationResult:
        if trajectory.duration_s < 2.0:
            raise RuntimeError(f"simulator crashed on a {trajectory.duration_s:.2f} s trajectory")
        return super().evaluate_one(trajectory)


@pytest.mark.parametrize("evaluator_type", [AnalyticEvaluator, pytest.param(MujocoEvaluator, marks=pytest.mark.sim)])
def test_parallel_batch_equals_serial(evaluator_type: type[AnalyticEvaluator | MujocoEvaluator]) -> None:
    trajectories = batch()
    evaluator = evaluator_type()
    serial = evaluator.evaluate(trajectories, num_workers=1)
    parallel = evaluator.evaluate(trajectories, num_workers=2)
    assert_same_results(serial, parallel)
    # Results come back in the order of the trajectories, each judged on its own.
    assert [r.duration_s for r in parallel] == pytest.approx([t.duration_s for t in trajectories])
    assert [r.feasible for r in serial] == [True, False, True, False]
    assert all(r.fidelity == evaluator.name for r in parallel)


@pytest.mark.sim
def test_mujoco_evaluation_is_deterministic() -> None:
    trajectory = batch((0.5,))[0]
    evaluator = MujocoEvaluator()
    assert_same_results([evaluator.evaluate_one(trajectory)], [MujocoEvaluator().evaluate_one(trajectory)])


@pytest.mark.parametrize("num_workers", [1, 2])
def test_a_raising_evaluation_is_an_infeasible_result(num_workers: int) -> None:
    trajectories = batch((1.0, 0.25, 0.6))  # durations 4.5 s, 1.125 s, 2.7 s: the second one raises
    results = FlakyEvaluator().evaluate(trajectories, num_workers=num_workers)
    assert len(results) == 3
    failed = results[1]
    assert not failed.feasible
    assert "RuntimeError" in failed.reason
    assert "simulator crashed" in failed.reason
    assert failed.fidelity == "flaky"
    assert failed.duration_s == pytest.approx(trajectories[1].duration_s)
    assert failed.max_position_error_m == math.inf
    assert math.isnan(failed.max_rotor_speed_rad_s)
    assert failed.wall_time_s >= 0.0
    # The rest of the batch was evaluated normally.
    expected = [AnalyticEvaluator().evaluate_one(t) for t in (trajectories[0], trajectories[2])]
    for result, reference in zip((results[0], results[2]), expected, strict=True):
        assert result.feasible
        assert result.max_rotor_speed_rad_s == pytest.approx(reference.max_rotor_speed_rad_s)


def test_empty_batch() -> None:
    assert AnalyticEvaluator().evaluate([], num_workers=2) == []


def flight_log(position_error_m: float, yaw_error_rad: float, failure: str = "") -> FlightLog:
    times = np.linspace(0.0, 1.0, 11)
    ref = np.column_stack([times, np.zeros(11), np.ones(11)])
    flown = ref.copy()
    flown[5, 1] += position_error_m
    ref_yaw = np.full(11, 3.1)
    yaws = ref_yaw.copy()
    yaws[7] += yaw_error_rad
    speeds = np.full((11, 4), 500.0)
    speeds[3, 2] = 950.0
    speeds[4, 1] = 120.0
    return FlightLog(times, flown, yaws, ref, ref_yaw, speeds, failure)


def judge(flight: FlightLog) -> EvaluationResult:
    return judge_flight("test", VehicleParams(), FeasibilityCriteria(), flight, 0.5, 1.0)


def test_judge_flight_passes_a_good_flight() -> None:
    result = judge(flight_log(0.05, math.radians(5.0)))
    assert result.feasible
    assert result.reason == ""
    assert result.max_position_error_m == pytest.approx(0.05)
    assert result.max_yaw_error_rad == pytest.approx(math.radians(5.0))
    assert result.max_rotor_speed_rad_s == 950.0
    assert result.min_rotor_speed_rad_s == 120.0
    assert result.max_rotor_speed_ratio == pytest.approx(950.0 / 900.0)
    assert (result.wall_time_s, result.duration_s, result.fidelity) == (0.5, 1.0, "test")


def test_judge_flight_names_each_violated_criterion() -> None:
    position_only = judge(flight_log(0.3, 0.0))
    assert not position_only.feasible
    assert "position error 0.300 m > 0.2 m" in position_only.reason
    assert "yaw" not in position_only.reason

    yaw_only = judge(flight_log(0.0, math.radians(20.0)))
    assert not yaw_only.feasible
    assert "yaw error 20.0 deg > 15.0 deg" in yaw_only.reason
    assert "position" not in yaw_only.reason

    everything = judge(flight_log(0.3, math.radians(20.0), failure="hit the ground at t=0.50 s"))
    assert not everything.feasible
    reasons = everything.reason.split("; ")
    assert reasons[0] == "hit the ground at t=0.50 s"  # the failure that stopped the flight comes first
    assert any(r.startswith("position error") for r in reasons)
    assert any(r.startswith("yaw error") for r in reasons)


def test_judge_flight_wraps_yaw_error() -> None:
    # 3.1 rad and 3.1 + 6.2 rad are 0.08 rad apart once wrapped, well within the limit.
    assert judge(flight_log(0.0, 2.0 * math.pi - 0.08)).feasible


def test_judge_flight_stopped_before_the_first_sample_is_infeasible() -> None:
    empty = FlightLog(
        np.zeros(0),
        np.zeros((0, 3)),
        np.zeros(0),
        np.zeros((0, 3)),
        np.zeros(0),
        np.zeros((0, 4)),
        "simulation state became NaN",
    )
    result = judge(empty)
    assert not result.feasible
    assert "NaN" in result.reason
    assert result.max_position_error_m == math.inf
    assert math.isnan(result.max_rotor_speed_rad_s)


def test_criteria_are_configurable() -> None:
    lenient = FeasibilityCriteria(max_position_error_m=0.5, max_yaw_error_rad=math.radians(30.0))
    result = judge_flight("test", VehicleParams(), lenient, flight_log(0.3, math.radians(20.0)), 0.0, 1.0)
    assert result.feasible

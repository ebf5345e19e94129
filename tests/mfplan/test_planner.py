"""The certified planner: nothing uncertified is ever called feasible; a too-fast policy is slowed down."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfplan.courses import course_set, random_course
from mfplan.planner import DEFAULT_CHECKPOINT, CertifiedPlanner
from mfplan.policy import MissingCheckpointError, TimeAllocationPolicy, encode_course, save_policy
from minsnap import EndpointState, Trajectory, TrajectoryInputError, solve_min_snap
from quadsim.analytic import AnalyticEvaluator
from quadsim.certificate import SafetyLimits, TrajectoryCertificate
from quadsim.vehicle import VehicleParams

COURSES = course_set(4, seed=11)
WIDE = SafetyLimits(max_excursion_m=10.0)
"""Limits that leave only the rotor limits and the ground binding on these courses (course 1 swings 2.7 m out of
its waypoints' box at the policy's times, beyond the default 2 m excursion bound)."""


def _policy(global_bias: float = 0.0, seed: int = 0) -> TimeAllocationPolicy:
    """A fresh policy whose global log-time head is biased: -3 flies every segment about 10x too fast."""
    torch.manual_seed(seed)
    policy = TimeAllocationPolicy()
    with torch.no_grad():
        policy.global_head.bias.fill_(global_bias)
    return policy


def _assert_certified(planner: CertifiedPlanner, waypoints: np.ndarray, start: EndpointState | None = None) -> None:
    """A feasible result's trajectory passes an independent analytic check and the certificate, and goes through
    the waypoints (a repair may add waypoints between them)."""
    result = planner.plan(waypoints, start)
    if not result.feasible:
        assert result.trajectory is None
        assert result.certified_by == "none"
        assert result.reason
        assert result.constraint in result.reason
        return
    assert result.trajectory is not None
    assert result.certified_by in ("policy", "time-scale search", "repair")
    assert AnalyticEvaluator(planner.vehicle).evaluate_one(result.trajectory).feasible
    assert TrajectoryCertificate(planner.vehicle, planner.limits).check(result.trajectory, waypoints).passed
    knots = result.trajectory.position(result.trajectory.knot_times_s)
    for point in waypoints[:, :3]:
        assert np.linalg.norm(knots - point, axis=1).min() < 1e-6
    np.testing.assert_allclose(result.trajectory.segment_times_s, result.segment_times_s)
    assert result.total_time_s == pytest.approx(result.segment_times_s.sum())


def test_nominal_courses_are_certified_by_the_policy_alone() -> None:
    """A policy that flies at about 1.8 m/s (bias 0.5) needs no search on the nominal courses."""
    planner = CertifiedPlanner(_policy(global_bias=0.5), limits=WIDE)
    for waypoints in COURSES:
        result = planner.plan(waypoints)
        assert result.feasible, result.reason
        assert result.certified_by == "policy"
        assert result.time_scale == 1.0
        assert result.feasibility_checks == 1
        assert result.reason == ""
        assert 0 < result.policy_time_ms < result.planning_time_ms
        _assert_certified(planner, waypoints)


def test_a_too_fast_policy_is_slowed_down_to_the_feasibility_boundary() -> None:
    """Bias -3: the search must kick in; its answer passes, and 1 % less time scale would not."""
    policy = _policy(global_bias=-3.0)
    planner = CertifiedPlanner(policy, limits=WIDE)
    certificate = TrajectoryCertificate(planner.vehicle, WIDE)
    for waypoints in COURSES:
        result = planner.plan(waypoints)
        assert result.feasible, result.reason
        assert result.certified_by == "time-scale search"
        assert result.time_scale > 1.0
        assert result.feasibility_checks <= planner.max_checks
        proposal = policy.act(encode_course(waypoints))
        np.testing.assert_allclose(result.segment_times_s, result.time_scale * proposal, rtol=1e-12)
        assert result.trajectory is not None
        assert certificate.check(result.trajectory).passed
        faster = solve_min_snap(waypoints, result.segment_times_s / (1.0 + 2.0 * planner.scale_tolerance))
        assert not certificate.check(faster).passed  # the answer is at the boundary, not far above it


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    global_bias=st.sampled_from([-3.0, -1.0, 0.0, 1.0]),
    num_waypoints=st.sampled_from([2, 5, 10, 14]),
    speed=st.sampled_from([0.0, 1.0, 4.0]),
)
def test_feasible_always_means_the_analytic_check_passes(
    seed: int, global_bias: float, num_waypoints: int, speed: float
) -> None:
    rng = np.random.default_rng(seed)
    waypoints = random_course(rng, num_waypoints=num_waypoints)
    start = EndpointState(velocity=speed * rng.normal(size=3) / math.sqrt(3.0))
    _assert_certified(CertifiedPlanner(_policy(global_bias)), waypoints, start)


def test_a_course_below_the_ground_is_infeasible_with_a_reason() -> None:
    planner = CertifiedPlanner(_policy())
    underground = COURSES[0] - np.array([0.0, 0.0, 10.0, 0.0])
    result = planner.plan(underground)
    assert not result.feasible
    assert result.trajectory is None
    assert result.certified_by == "none"
    assert result.feasibility_checks == 0  # a waypoint below the clearance: refused before anything is solved
    assert "ground clearance" in result.reason
    assert result.constraint == "ground clearance"
    moving = planner.plan(underground, EndpointState(velocity=np.array([1.0, 0.0, 0.0])))
    assert not moving.feasible
    assert moving.trajectory is None
    assert moving.constraint == "ground clearance"
    assert moving.feasibility_checks <= planner.max_total_checks


def test_a_vehicle_too_weak_for_the_course_is_infeasible_with_a_reason() -> None:
    """A vehicle whose rotors barely lift it cannot fly the course within twice the policy's times."""
    weak = VehicleParams(rotor_speed_min_rad_s=465.0, rotor_speed_max_rad_s=475.0)  # hover is about 469 rad/s
    planner = CertifiedPlanner(_policy(), vehicle=weak, max_time_scale=2.0)
    result = planner.plan(COURSES[1])
    assert not result.feasible
    assert result.trajectory is None
    assert result.certified_by == "none"
    assert result.constraint.startswith("rotor speed")
    assert "rotor speed" in result.reason


@pytest.mark.parametrize(
    ("waypoints", "match"),
    [
        (np.zeros((1, 3)), "at least 2 waypoints"),
        (np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), "same position"),
        (np.array([[0.0, 0.0, 1.0], [np.inf, 0.0, 1.0]]), "non-finite"),
        (np.zeros((3, 5)), "N x 3"),
    ],
)
def test_bad_waypoints_raise_trajectory_input_error(waypoints: np.ndarray, match: str) -> None:
    with pytest.raises(TrajectoryInputError, match=match):
        CertifiedPlanner(_policy()).plan(waypoints)


def test_bad_start_state_raises_trajectory_input_error() -> None:
    with pytest.raises(TrajectoryInputError, match="start velocity"):
        CertifiedPlanner(_policy()).plan(COURSES[0], EndpointState(velocity=np.array([np.nan, 0.0, 0.0])))


def test_to_dict_is_json_and_holds_the_trajectory() -> None:
    result = CertifiedPlanner(_policy(global_bias=-1.0), limits=WIDE).plan(COURSES[2])
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert payload["feasible"] is True
    assert payload["certified_by"] == "time-scale search"
    assert payload["certified_bounds"]["max_speed_m_s"] <= 10.0
    trajectory = Trajectory.from_dict(payload["trajectory"])
    np.testing.assert_array_equal(trajectory.coefficients, result.trajectory.coefficients)  # type: ignore[union-attr]
    assert payload["total_time_s"] == pytest.approx(sum(payload["segment_times_s"]))
    infeasible = CertifiedPlanner(_policy()).plan(COURSES[0] - np.array([0.0, 0.0, 10.0, 0.0]))
    payload = json.loads(json.dumps(infeasible.to_dict(), allow_nan=False))
    assert payload["trajectory"] is None
    assert payload["reason"]
    assert payload["constraint"] == "ground clearance"


def test_from_checkpoint_builds_the_same_planner(tmp_path: Path) -> None:
    policy = _policy(global_bias=-0.5, seed=3)
    path = save_policy(tmp_path / "policy.pt", policy, {"note": "test"})
    planner = CertifiedPlanner.from_checkpoint(path)
    expected = CertifiedPlanner(policy).plan(COURSES[3])
    result = planner.plan(COURSES[3])
    np.testing.assert_array_equal(result.segment_times_s, expected.segment_times_s)
    assert result.certified_by == expected.certified_by


def test_missing_checkpoint_says_to_train(tmp_path: Path) -> None:
    with pytest.raises(MissingCheckpointError, match="mfrl train"):
        CertifiedPlanner.from_checkpoint(tmp_path / "absent.pt")
    assert DEFAULT_CHECKPOINT.name == "mfrl_policy.pt"
    assert DEFAULT_CHECKPOINT.parent.name == "checkpoints"


def test_a_calibrated_margin_slows_the_policy_down_and_stays_certified(tmp_path: Path) -> None:
    policy = _policy(global_bias=0.5)
    plain = CertifiedPlanner(policy, limits=WIDE).plan(COURSES[0])
    assert plain.certified_by == "policy"
    path = save_policy(tmp_path / "policy.pt", policy, {"calibration": {"safety_margin": 1.25}})
    planner = CertifiedPlanner.from_checkpoint(path, limits=WIDE)
    assert planner.safety_margin == 1.25
    result = planner.plan(COURSES[0])
    np.testing.assert_allclose(result.segment_times_s, 1.25 * plain.segment_times_s)
    _assert_certified(planner, COURSES[0])
    assert CertifiedPlanner.from_checkpoint(path, safety_margin=1.0, limits=WIDE).plan(
        COURSES[0]
    ).total_time_s == pytest.approx(plain.total_time_s)


@pytest.mark.parametrize("name", ["safety_margin", "moving_safety_margin"])
@pytest.mark.parametrize("margin", [0.9, math.inf, math.nan])
def test_a_margin_that_would_speed_up_or_is_not_a_number_is_refused(name: str, margin: float) -> None:
    with pytest.raises(ValueError, match=name):
        CertifiedPlanner(_policy(), **{name: margin})


def test_moving_replans_get_their_own_calibrated_margin(tmp_path: Path) -> None:
    """A replan from a moving vehicle is slowed by the margin calibrated on moving-start flights, not by the one
    from rest; a checkpoint calibrated before moving starts were (no `moving_safety_margin`) leaves them as is."""
    policy = _policy(global_bias=0.5)
    moving = EndpointState(velocity=np.array([1.0, 0.5, 0.0]), acceleration=np.zeros(3))
    plain = CertifiedPlanner(policy, limits=WIDE).plan(COURSES[1], moving)
    assert plain.certified_by == "policy"
    only_rest = save_policy(tmp_path / "rest.pt", policy, {"calibration": {"safety_margin": 1.25}})
    calibrated = CertifiedPlanner.from_checkpoint(only_rest, limits=WIDE).plan(COURSES[1], moving)
    np.testing.assert_allclose(calibrated.segment_times_s, plain.segment_times_s)
    both = save_policy(
        tmp_path / "both.pt", policy, {"calibration": {"safety_margin": 1.25, "moving_safety_margin": 1.1}}
    )
    planner = CertifiedPlanner.from_checkpoint(both, limits=WIDE)
    assert (planner.safety_margin, planner.moving_safety_margin) == (1.25, 1.1)
    replan = planner.plan(COURSES[1], moving)
    assert replan.certified_by == "policy"
    np.testing.assert_allclose(replan.segment_times_s, 1.1 * plain.segment_times_s)
    np.testing.assert_allclose(replan.trajectory.derivatives([0.0], 1)[1, 0, :3], moving.velocity, atol=1e-9)

"""Tightened plans from rest: the policy's split flown at the certificate's boundary, then the calibrated margin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfplan.courses import course_set, random_course
from mfplan.planner import CertifiedPlanner, PlanResult
from mfplan.policy import TimeAllocationPolicy, encode_course, save_policy
from minsnap import EndpointState, Trajectory, solve_min_snap
from quadsim.analytic import AnalyticEvaluator
from quadsim.certificate import SafetyLimits, TrajectoryCertificate
from quadsim.courses import load_course

COURSES = course_set(4, seed=11)
WIDE = SafetyLimits(max_excursion_m=10.0)
"""Limits that leave the speed, acceleration, tilt and rotor limits binding (no excursion repair on these)."""


def _policy(global_bias: float) -> TimeAllocationPolicy:
    """A fresh policy: bias 0.5 proposes times with some slack on these courses, -3 about 10x too fast."""
    torch.manual_seed(0)
    policy = TimeAllocationPolicy()
    with torch.no_grad():
        policy.global_head.bias.fill_(global_bias)
    return policy


@pytest.mark.parametrize("global_bias", [0.5, -3.0])
def test_the_policys_split_is_flown_at_the_certificates_boundary(global_bias: float) -> None:
    """Too slow or too fast, the proposal ends at the boundary: it passes, and 2 % faster does not; the split
    (each segment's share of the time) is the policy's; a slow proposal is sped up, in about one check."""
    policy = _policy(global_bias)
    plain = CertifiedPlanner(policy, limits=WIDE)
    tight = CertifiedPlanner(policy, limits=WIDE, tighten=True)
    certificate = TrajectoryCertificate(tight.vehicle, WIDE)
    checks = []
    for waypoints in COURSES:
        result = tight.plan(waypoints)
        assert result.feasible, result.reason
        assert result.trajectory is not None
        assert certificate.check(result.trajectory).passed
        assert AnalyticEvaluator(tight.vehicle).evaluate_one(result.trajectory).feasible
        proposal = policy.act(encode_course(waypoints))
        np.testing.assert_allclose(result.segment_times_s, result.time_scale * proposal, rtol=1e-12)
        faster = solve_min_snap(waypoints, result.segment_times_s / (1.0 + 2.0 * tight.scale_tolerance))
        assert not certificate.check(faster).passed, "the tightened plan is not at the boundary"
        untightened = plain.plan(waypoints)
        assert result.total_time_s <= untightened.total_time_s * (1.0 + tight.scale_tolerance)  # both searched to it
        if global_bias > 0:
            assert result.time_scale < 0.98, "a proposal with slack must be sped up"
        checks.append(result.feasibility_checks)
    assert np.mean(checks) <= 2.0, f"the boundary estimate should need about one check, took {checks}"


def test_the_margin_slows_the_boundary_down_and_stays_certified() -> None:
    policy = _policy(0.5)
    boundary = CertifiedPlanner(policy, limits=WIDE, tighten=True).plan(COURSES[0])
    slowed = CertifiedPlanner(policy, limits=WIDE, tighten=True, safety_margin=1.25).plan(COURSES[0])
    assert slowed.feasible, slowed.reason
    np.testing.assert_allclose(slowed.segment_times_s, 1.25 * boundary.segment_times_s, rtol=1e-12)
    assert slowed.feasibility_checks == boundary.feasibility_checks + 1  # the slowed plan is certified too
    assert slowed.trajectory is not None
    assert TrajectoryCertificate(limits=WIDE).check(slowed.trajectory).passed


MOVING = EndpointState(velocity=np.array([1.0, 0.5, 0.0]), acceleration=np.zeros(3))


def test_moving_replans_are_not_tightened_unless_asked() -> None:
    """`tighten` alone leaves a replan in the air at the policy's times (times its margin)."""
    policy = _policy(0.5)
    plain = CertifiedPlanner(policy, limits=WIDE, moving_safety_margin=1.1).plan(COURSES[1], MOVING)
    tight = CertifiedPlanner(policy, limits=WIDE, moving_safety_margin=1.1, tighten=True).plan(COURSES[1], MOVING)
    assert tight.feasible, tight.reason
    np.testing.assert_array_equal(tight.segment_times_s, plain.segment_times_s)


@pytest.mark.parametrize("global_bias", [0.5, -3.0])
def test_a_tightened_replan_in_motion_is_flown_at_the_certificates_boundary(global_bias: float) -> None:
    """Re-solved with the start state kept, the policy's split ends at the boundary: it passes, starts exactly in
    the vehicle's state, keeps the split, and 3 % faster fails on most courses (the estimate is of a path that
    changes with the scale); a slow proposal is sped up, a fast one slowed down, in about one or two checks."""
    policy = _policy(global_bias)
    tight = CertifiedPlanner(policy, limits=WIDE, tighten_moving=True)
    plain = CertifiedPlanner(policy, limits=WIDE)
    certificate = TrajectoryCertificate(tight.vehicle, WIDE)
    at_boundary, checks = 0, []
    for waypoints in COURSES:
        result = tight.plan(waypoints, MOVING)
        assert result.feasible, result.reason
        assert result.trajectory is not None
        assert certificate.check(result.trajectory).passed
        np.testing.assert_allclose(result.trajectory.derivatives([0.0], max_order=1)[1, 0, :3], MOVING.velocity)
        proposal = policy.act(encode_course(waypoints, MOVING.velocity, MOVING.acceleration))
        np.testing.assert_allclose(result.segment_times_s, result.time_scale * proposal, rtol=1e-12)
        faster = solve_min_snap(waypoints, result.segment_times_s / (1.0 + 3.0 * tight.scale_tolerance), MOVING)
        at_boundary += not certificate.check(faster).passed
        untightened = plain.plan(waypoints, MOVING)
        if global_bias > 0:
            assert result.total_time_s < untightened.total_time_s, "a proposal with slack must be sped up"
        checks.append(result.feasibility_checks)
    assert at_boundary >= len(COURSES) - 1, f"only {at_boundary} of {len(COURSES)} replans are at the boundary"
    assert np.mean(checks) <= 2.5, f"the boundary estimate should need about one check, took {checks}"


def test_the_moving_margin_slows_a_tightened_replan_down_and_stays_certified() -> None:
    policy = _policy(0.5)
    boundary = CertifiedPlanner(policy, limits=WIDE, tighten_moving=True).plan(COURSES[0], MOVING)
    slowed = CertifiedPlanner(policy, limits=WIDE, tighten_moving=True, moving_safety_margin=1.2).plan(
        COURSES[0], MOVING
    )
    assert slowed.feasible, slowed.reason
    np.testing.assert_allclose(slowed.segment_times_s, 1.2 * boundary.segment_times_s, rtol=1e-12)
    assert slowed.feasibility_checks == boundary.feasibility_checks + 1
    assert slowed.trajectory is not None
    assert TrajectoryCertificate(limits=WIDE).check(slowed.trajectory).passed


def test_a_checkpoint_calibrated_tightened_plans_tightened(tmp_path: Path) -> None:
    policy = _policy(0.5)
    calibrated = save_policy(tmp_path / "tight.pt", policy, {"calibration": {"safety_margin": 1.1, "tighten": True}})
    planner = CertifiedPlanner.from_checkpoint(calibrated, limits=WIDE)
    assert planner.tighten
    expected = CertifiedPlanner(policy, limits=WIDE, tighten=True, safety_margin=1.1).plan(COURSES[2])
    np.testing.assert_array_equal(planner.plan(COURSES[2]).segment_times_s, expected.segment_times_s)
    assert not planner.tighten_moving  # calibrated before replans in motion were tightened
    old = save_policy(tmp_path / "old.pt", policy, {"calibration": {"safety_margin": 1.1}})
    assert not CertifiedPlanner.from_checkpoint(old).tighten  # calibrated on the policy's own times
    assert not CertifiedPlanner.from_checkpoint(calibrated, tighten=False).tighten
    both = {"safety_margin": 1.1, "moving_safety_margin": 1.2, "tighten": True, "tighten_moving": True}
    moving = CertifiedPlanner.from_checkpoint(save_policy(tmp_path / "both.pt", policy, {"calibration": both}))
    assert moving.tighten_moving
    assert moving.moving_safety_margin == 1.2


def _certified_if_feasible(planner: CertifiedPlanner, result: PlanResult, waypoints: np.ndarray) -> Trajectory | None:
    """A refusal has no trajectory and says why; a feasible plan passes an independent certificate (returned)."""
    if not result.feasible:
        assert result.trajectory is None
        assert result.reason
        return None
    assert result.trajectory is not None
    assert TrajectoryCertificate(planner.vehicle, planner.limits).check(result.trajectory, waypoints).passed
    return result.trajectory


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    global_bias=st.sampled_from([-3.0, -1.0, 0.0, 1.0, 2.0]),
    num_waypoints=st.sampled_from([2, 5, 10, 14]),
)
def test_a_tightened_plan_called_feasible_passes_an_independent_check(
    seed: int, global_bias: float, num_waypoints: int
) -> None:
    """With the default limits (repairs included), on random courses: feasible always means certified."""
    rng = np.random.default_rng(seed)
    waypoints = random_course(rng, num_waypoints=num_waypoints)
    planner = CertifiedPlanner(_policy(global_bias), tighten=True)
    trajectory = _certified_if_feasible(planner, planner.plan(waypoints), waypoints)
    if trajectory is not None:
        assert AnalyticEvaluator(planner.vehicle).evaluate_one(trajectory).feasible


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    global_bias=st.sampled_from([-3.0, -1.0, 0.0, 1.0, 2.0]),
    num_waypoints=st.sampled_from([2, 5, 10]),
    speed=st.floats(0.0, 3.0),
)
def test_a_tightened_replan_called_feasible_passes_an_independent_check(
    seed: int, global_bias: float, num_waypoints: int, speed: float
) -> None:
    """In motion, with the default limits (repairs included): feasible always means certified, from the start."""
    rng = np.random.default_rng(seed)
    waypoints = random_course(rng, num_waypoints=num_waypoints)
    direction = rng.normal(size=3)
    start = EndpointState(velocity=speed * direction / np.linalg.norm(direction), acceleration=rng.normal(size=3))
    planner = CertifiedPlanner(_policy(global_bias), tighten=True, tighten_moving=True)
    trajectory = _certified_if_feasible(planner, planner.plan(waypoints, start), waypoints)
    if trajectory is not None:
        np.testing.assert_allclose(trajectory.derivatives([0.0], max_order=1)[1, 0, :3], start.velocity, atol=1e-9)


@pytest.mark.slow
def test_tightened_replans_like_the_demos_are_served_as_often_and_are_shorter() -> None:
    """The demo's replans, every 0.25 s along the shipped planner's first plan of its course: the start a lead
    ahead on that plan (at the certificate's boundary), the waypoints beyond the next one moved 1 m. Tightened in
    motion, as many are served as untightened (an estimate that diverges, as before a waypoint just ahead, falls
    back to the policy's own times) and they are shorter on average."""
    tight = CertifiedPlanner.from_checkpoint(tighten_moving=True)
    plain = CertifiedPlanner.from_checkpoint(tighten_moving=False)
    course = np.asarray(load_course("warehouse_loop"))[:, :3]
    first = tight.plan(course)
    assert first.trajectory is not None
    trajectory, rng = first.trajectory, np.random.default_rng(0)
    served = {"tight": 0, "plain": 0}
    ratios = []
    for now in np.arange(0.5, trajectory.duration_s - 1.0, 0.25):
        d = trajectory.derivatives([now + 0.12], max_order=2)[:, 0]
        approached = int(np.searchsorted(trajectory.knot_times_s, now, side="right"))
        if approached >= course.shape[0] - 1:
            continue
        moved = course.copy()
        angles = rng.uniform(0.0, 2.0 * np.pi, course.shape[0] - 2 - approached)
        moved[approached + 1 : -1] += np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], axis=1)
        points = np.vstack([d[0, :3], moved[approached:]])
        start = EndpointState(velocity=d[1, :3], acceleration=d[2, :3])
        a, b = tight.plan(points, start), plain.plan(points, start)
        served["tight"] += a.feasible
        served["plain"] += b.feasible
        if a.feasible and b.feasible:
            ratios.append(a.total_time_s / b.total_time_s)
    assert served["tight"] >= served["plain"], served
    assert np.mean(ratios) < 1.0, f"tightened replans should be shorter: mean ratio {np.mean(ratios):.3f}"
    assert max(ratios) < 1.5, f"a tightened replan took {max(ratios):.2f}x the untightened one"

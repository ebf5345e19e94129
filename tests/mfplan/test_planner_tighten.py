"""Tightened plans from rest: the policy's split flown at the certificate's boundary, then the calibrated margin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfplan.courses import course_set, random_course
from mfplan.planner import CertifiedPlanner
from mfplan.policy import TimeAllocationPolicy, encode_course, save_policy
from minsnap import EndpointState, solve_min_snap
from quadsim.analytic import AnalyticEvaluator
from quadsim.certificate import SafetyLimits, TrajectoryCertificate

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


def test_moving_replans_are_not_tightened() -> None:
    """In the air the path changes with the time scale: a replan keeps the policy's times (times its margin)."""
    policy = _policy(0.5)
    moving = EndpointState(velocity=np.array([1.0, 0.5, 0.0]), acceleration=np.zeros(3))
    plain = CertifiedPlanner(policy, limits=WIDE, moving_safety_margin=1.1).plan(COURSES[1], moving)
    tight = CertifiedPlanner(policy, limits=WIDE, moving_safety_margin=1.1, tighten=True).plan(COURSES[1], moving)
    assert tight.feasible, tight.reason
    np.testing.assert_array_equal(tight.segment_times_s, plain.segment_times_s)


def test_a_checkpoint_calibrated_tightened_plans_tightened(tmp_path: Path) -> None:
    policy = _policy(0.5)
    calibrated = save_policy(tmp_path / "tight.pt", policy, {"calibration": {"safety_margin": 1.1, "tighten": True}})
    planner = CertifiedPlanner.from_checkpoint(calibrated, limits=WIDE)
    assert planner.tighten
    expected = CertifiedPlanner(policy, limits=WIDE, tighten=True, safety_margin=1.1).plan(COURSES[2])
    np.testing.assert_array_equal(planner.plan(COURSES[2]).segment_times_s, expected.segment_times_s)
    old = save_policy(tmp_path / "old.pt", policy, {"calibration": {"safety_margin": 1.1}})
    assert not CertifiedPlanner.from_checkpoint(old).tighten  # calibrated on the policy's own times
    assert not CertifiedPlanner.from_checkpoint(calibrated, tighten=False).tighten


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
    result = planner.plan(waypoints)
    if not result.feasible:
        assert result.trajectory is None
        assert result.reason
        return
    assert result.trajectory is not None
    assert TrajectoryCertificate(planner.vehicle, planner.limits).check(result.trajectory, waypoints).passed
    assert AnalyticEvaluator(planner.vehicle).evaluate_one(result.trajectory).feasible

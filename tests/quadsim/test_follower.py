"""The follower: a plan that arrives early takes over at its start; a late one is blended in without a jump
(up to jerk, so the body-rate feed-forward does not jump); stale plans are refused; the end is held."""

from __future__ import annotations

import numpy as np

from minsnap import EndpointState, solve_min_snap
from quadsim.follower import FollowerConfig, TrajectoryFollower
from quadsim.sampled_trajectory import SampledTrajectory
from quadsim.vehicle import VehicleParams


def _plan(waypoints: list[list[float]], times: list[float], start: EndpointState | None = None) -> SampledTrajectory:
    trajectory = solve_min_snap(np.asarray(waypoints, float), np.asarray(times, float), start)
    return SampledTrajectory.from_trajectory(trajectory, samples_per_segment=8)


def test_switch_keeps_position_to_jerk_continuous() -> None:
    follower = TrajectoryFollower(VehicleParams(), FollowerConfig(switch_blend_s=0.5))
    follower.hold_at(np.array([0.0, 0.0, 1.0]), 0.0)
    assert follower.accept(_plan([[0, 0, 1], [3, 0, 1], [6, 2, 1.5]], [1.5, 1.5]), start_s=0.0, now_s=0.0) == ""
    switch_s = 1.0
    before = follower.flat_outputs(switch_s)
    # The new plan starts 0.3 m off the old reference, at rest: the blend must hide both differences.
    offset_start = [float(before[0, 0]), 0.3, 1.0]
    new_plan = _plan([offset_start, [5, 3, 2]], [2.0])
    assert follower.accept(new_plan, start_s=switch_s, now_s=switch_s) == ""
    after = follower.flat_outputs(switch_s)
    np.testing.assert_allclose(after[:4], before[:4], atol=1e-9)
    reference = follower.reference(switch_s)
    assert np.isfinite(reference.body_rates_rad_s).all()
    np.testing.assert_allclose(follower.flat_outputs(switch_s + 0.6), new_plan.derivatives(0.6))  # blend over


def test_a_plan_that_arrives_early_takes_over_at_its_start_without_a_blend() -> None:
    """The replanner's way: plan from the reference predicted at a later start, send it before that start."""
    follower = TrajectoryFollower(VehicleParams(), FollowerConfig(switch_blend_s=0.5))
    follower.hold_at(np.array([0.0, 0.0, 1.0]), 0.0)
    first = solve_min_snap(np.array([[0, 0, 1], [3, 0, 1], [6, 2, 1.5]], float), np.array([1.5, 1.5]))
    assert follower.accept(SampledTrajectory.from_trajectory(first, 8), start_s=0.0, now_s=0.0) == ""
    switch_s = 1.3
    p, v, a, j = first.derivatives(np.array([switch_s]), max_order=3)[:, 0, :3]
    second = _plan([list(p), [4, 3, 2]], [2.0], EndpointState(velocity=v, acceleration=a, jerk=j))
    assert follower.accept(second, start_s=switch_s, now_s=1.0) == ""  # sent 0.3 s ahead of its start
    assert follower.queued_starts_s == [switch_s]
    np.testing.assert_allclose(follower.flat_outputs(1.2)[:3], first.derivatives(np.array([1.2]), 2)[:, 0], atol=1e-3)
    assert follower.plan_start_s == 0.0  # still the first plan
    follower.flat_outputs(switch_s)
    assert follower.plan_start_s == switch_s
    assert follower.queued_starts_s == []
    # No blend was needed: right after the switch the reference is the second plan's own.
    np.testing.assert_allclose(follower.flat_outputs(switch_s + 0.05)[:3], second.derivatives(0.05)[:3], atol=1e-2)


def test_a_newer_plan_replaces_waiting_plans_that_start_later() -> None:
    follower = TrajectoryFollower(VehicleParams())
    follower.hold_at(np.array([0.0, 0.0, 1.0]), 0.0)
    plan = _plan([[0, 0, 1], [2, 0, 1]], [2.0])
    assert follower.accept(plan, start_s=0.5, now_s=0.0) == ""
    assert follower.accept(plan, start_s=0.3, now_s=0.1) == ""
    assert follower.queued_starts_s == [0.3]  # the one starting at 0.5 would have come after it
    assert follower.accept(plan, start_s=0.4, now_s=0.2) == ""
    assert follower.queued_starts_s == [0.3, 0.4]
    assert follower.accept(plan, start_s=0.1, now_s=0.25) == ""  # already started: it replaces them all
    assert follower.queued_starts_s == []
    assert follower.plan_start_s == 0.1


def test_a_plan_starting_too_far_ahead_is_refused() -> None:
    follower = TrajectoryFollower(VehicleParams(), FollowerConfig(max_plan_lead_s=1.0))
    follower.hold_at(np.array([1.0, 2.0, 1.0]), 0.0)
    reason = follower.accept(_plan([[1, 2, 1], [4, 2, 1]], [2.0]), start_s=3601.0, now_s=1.0)
    assert "max_plan_lead_s" in reason
    assert follower.queued_starts_s == []
    assert follower.mode(3602.0) == "hold"


def test_stale_plan_is_refused_and_the_vehicle_holds() -> None:
    follower = TrajectoryFollower(VehicleParams(), FollowerConfig(max_plan_delay_s=0.5))
    follower.hold_at(np.array([1.0, 2.0, 1.0]), 0.0)
    reason = follower.accept(_plan([[1, 2, 1], [4, 2, 1]], [2.0]), start_s=0.0, now_s=2.0)
    assert "stale" in reason
    assert follower.mode(2.0) == "hold"
    np.testing.assert_allclose(follower.reference(2.0).position, [1.0, 2.0, 1.0])


def test_end_of_plan_is_held() -> None:
    follower = TrajectoryFollower(VehicleParams())
    follower.hold_at(np.zeros(3), 0.0)
    follower.accept(_plan([[0, 0, 1], [2, 0, 1]], [1.0]), start_s=0.0, now_s=0.0)
    assert follower.mode(0.5) == "tracking"
    assert follower.mode(5.0) == "hold"
    ref = follower.reference(5.0)
    np.testing.assert_allclose(ref.position, [2.0, 0.0, 1.0], atol=1e-9)
    assert not ref.velocity.any()


def test_a_preview_past_a_waiting_plan_does_not_take_it() -> None:
    """Looking ahead (the learned controller's observation) shows a waiting plan from its start and leaves it be."""
    follower = TrajectoryFollower(VehicleParams(), FollowerConfig(switch_blend_s=0.5))
    follower.hold_at(np.array([0.0, 0.0, 1.0]), 0.0)
    plan = _plan([[0, 0, 1], [2, 1, 1.5]], [2.0])
    assert follower.accept(plan, start_s=0.5, now_s=0.1) == ""
    ahead = follower.preview(np.array([0.2, 0.6, 0.9]))
    np.testing.assert_allclose(ahead[0, 0], [0.0, 0.0, 1.0, 0.0])  # still holding at 0.2 s
    np.testing.assert_allclose(ahead[1:, :3], [plan.derivatives(0.1)[:3], plan.derivatives(0.4)[:3]], atol=5e-3)
    assert follower.queued_starts_s == [0.5]  # nothing was taken
    assert follower.plan_start_s is None
    np.testing.assert_allclose(follower.flat_outputs(0.9), ahead[2])  # and the follower gives what was previewed
    assert follower.plan_start_s == 0.5


def test_a_preview_inside_a_blend_does_not_end_it() -> None:
    follower = TrajectoryFollower(VehicleParams(), FollowerConfig(switch_blend_s=0.5))
    follower.hold_at(np.array([0.0, 0.0, 1.0]), 0.0)
    plan = _plan([[0.3, 0, 1], [2, 1, 1.5]], [2.0])
    assert follower.accept(plan, start_s=0.0, now_s=0.0) == ""  # 0.3 m off the hold: blended in
    blended = follower.flat_outputs(0.2)
    follower.preview(np.array([0.4, 0.8]))  # past the blend's end
    np.testing.assert_allclose(follower.flat_outputs(0.2), blended)
    assert not np.allclose(blended, plan.derivatives(0.2))

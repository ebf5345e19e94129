"""The follower: a new plan is blended in without a jump; stale plans are refused; the end is held."""

from __future__ import annotations

import numpy as np

from minsnap import EndpointState, solve_min_snap
from quadsim.follower import FollowerConfig, TrajectoryFollower
from quadsim.sampled_trajectory import SampledTrajectory
from quadsim.vehicle import VehicleParams


def _plan(waypoints: list[list[float]], times: list[float], start: EndpointState | None = None) -> SampledTrajectory:
    trajectory = solve_min_snap(np.asarray(waypoints, float), np.asarray(times, float), start)
    return SampledTrajectory.from_trajectory(trajectory, samples_per_segment=8)


def test_switch_keeps_position_velocity_and_acceleration_continuous() -> None:
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
    np.testing.assert_allclose(after[:3], before[:3], atol=1e-9)
    np.testing.assert_allclose(follower.flat_outputs(switch_s + 0.6), new_plan.derivatives(0.6))  # blend over


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

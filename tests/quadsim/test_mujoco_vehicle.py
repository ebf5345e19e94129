"""The steppable MuJoCo quadrotor: hover holds, the SE(3) controller flies a sampled plan closely."""

from __future__ import annotations

import numpy as np
import pytest

from minsnap import solve_min_snap
from quadsim.controller import SE3Controller
from quadsim.follower import TrajectoryFollower
from quadsim.mujoco_vehicle import MujocoQuadrotor
from quadsim.sampled_trajectory import SampledTrajectory


def test_hover_thrust_holds_the_vehicle() -> None:
    vehicle = MujocoQuadrotor()
    vehicle.reset(np.array([0.0, 0.0, 2.0]))
    vehicle.step(1.0)
    state = vehicle.state()
    assert state.time_s == pytest.approx(1.0)
    np.testing.assert_allclose(state.position_m, [0.0, 0.0, 2.0], atol=1e-3)


@pytest.mark.sim
def test_controller_tracks_a_sampled_plan_stepped_from_outside() -> None:
    vehicle = MujocoQuadrotor()
    vehicle.reset(np.array([0.0, 0.0, 1.0]))
    waypoints = np.array([[0, 0, 1], [2, 1, 1.5], [4, -1, 2], [5, 1, 1]], float)
    plan = SampledTrajectory.from_trajectory(solve_min_snap(waypoints, np.array([1.5, 1.5, 1.5])), 4)
    follower = TrajectoryFollower(vehicle.vehicle)
    follower.hold_at(waypoints[0], 0.0)
    follower.accept(plan, 0.0, 0.0)
    controller = SE3Controller(vehicle.vehicle)
    worst = 0.0
    for _ in range(int(6.0 / 0.004)):
        state = vehicle.state()
        ref = follower.reference(state.time_s)
        worst = max(worst, float(np.linalg.norm(state.position_m - ref.position)))
        thrusts = controller.rotor_thrusts(
            state.position_m, state.velocity_m_s, state.rotation, state.body_rates_rad_s, ref
        )
        vehicle.set_rotor_thrusts(thrusts)
        vehicle.step(0.004)
    assert worst < 0.05
    np.testing.assert_allclose(vehicle.state().position_m, waypoints[-1], atol=0.02)

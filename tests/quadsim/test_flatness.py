"""Differential flatness: hover, rates and accelerations against finite differences, thrust direction, wrench."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minsnap import Trajectory, solve_min_snap
from quadsim.flatness import FlatState, flat_state
from quadsim.frames import wrap_angle, yaw_of
from quadsim.rotations import vee
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

VEHICLE = VehicleParams()
GRAVITY = np.array([0.0, 0.0, GRAVITY_M_S2])
STEP_S = 1e-4


def random_trajectory(seed: int) -> Trajectory:
    """A random 5-waypoint minimum-snap trajectory with yaw, gentle enough to stay far from free fall."""
    rng = np.random.default_rng(seed)
    waypoints = np.column_stack([rng.uniform(-2.0, 2.0, (5, 2)), rng.uniform(0.5, 2.5, 5), rng.uniform(-3, 3, 5)])
    return solve_min_snap(waypoints, rng.uniform(1.2, 2.0, 4))


def state_at(trajectory: Trajectory, times: np.ndarray) -> FlatState:
    return flat_state(trajectory.derivatives(times, max_order=4), VEHICLE)


def hover_derivatives(position: tuple[float, float, float], yaw: float) -> np.ndarray:
    derivatives = np.zeros((5, 1, 4))
    derivatives[0, 0] = [*position, yaw]
    return derivatives


@pytest.mark.parametrize("yaw", [0.0, 0.7, -2.5, math.pi])
def test_hover_needs_weight_level_attitude_and_hover_speed(yaw: float) -> None:
    state = flat_state(hover_derivatives((1.0, -2.0, 1.5), yaw), VEHICLE)
    weight = VEHICLE.mass_kg * GRAVITY_M_S2
    assert state.thrust_n[0] == pytest.approx(weight)
    c, s = math.cos(yaw), math.sin(yaw)
    np.testing.assert_allclose(state.rotation[0], [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], atol=1e-12)
    np.testing.assert_array_equal(state.body_rates_rad_s, 0.0)
    np.testing.assert_array_equal(state.body_angular_accel_rad_s2, 0.0)
    np.testing.assert_allclose(state.torque_nm, 0.0, atol=1e-15)
    np.testing.assert_allclose(state.rotor_thrusts_n[0], weight / 4.0, rtol=1e-12)
    np.testing.assert_allclose(state.rotor_speeds_rad_s[0], VEHICLE.hover_rotor_speed_rad_s, rtol=1e-12)
    assert not state.singular.any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rotation_is_proper_and_thrust_follows_acceleration(seed: int) -> None:
    trajectory = random_trajectory(seed)
    times = np.linspace(0.0, trajectory.duration_s, 400)
    derivatives = trajectory.derivatives(times, max_order=4)
    state = flat_state(derivatives, VEHICLE)
    r = state.rotation
    np.testing.assert_allclose(np.einsum("kji,kjl->kil", r, r), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    required = derivatives[2, :, :3] + GRAVITY
    np.testing.assert_allclose(state.thrust_n, VEHICLE.mass_kg * np.linalg.norm(required, axis=1), rtol=1e-12)
    np.testing.assert_allclose(r[:, :, 2], required / np.linalg.norm(required, axis=1, keepdims=True), atol=1e-12)
    # The heading of the frame is the trajectory's yaw.
    headings = np.array([yaw_of(m) for m in r])
    np.testing.assert_allclose(wrap_angle(headings - derivatives[0, :, 3]), 0.0, atol=1e-9)
    assert not state.singular.any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_body_rates_are_the_derivative_of_the_attitude(seed: int) -> None:
    trajectory = random_trajectory(seed)
    times = np.linspace(0.01, trajectory.duration_s - 0.01, 300)
    state = state_at(trajectory, times)
    ahead, behind = state_at(trajectory, times + STEP_S), state_at(trajectory, times - STEP_S)
    r_dot = (ahead.rotation - behind.rotation) / (2.0 * STEP_S)
    omega_fd = np.array([vee(m.T @ m_dot) for m, m_dot in zip(state.rotation, r_dot, strict=True)])
    scale = max(1.0, float(np.abs(state.body_rates_rad_s).max()))
    np.testing.assert_allclose(state.body_rates_rad_s, omega_fd, atol=1e-6 * scale)
    assert np.abs(state.body_rates_rad_s).max() > 0.1  # the check is not vacuous


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_angular_acceleration_is_the_derivative_of_the_rates(seed: int) -> None:
    trajectory = random_trajectory(seed)
    times = np.linspace(0.01, trajectory.duration_s - 0.01, 300)
    state = state_at(trajectory, times)
    ahead, behind = state_at(trajectory, times + STEP_S), state_at(trajectory, times - STEP_S)
    accel_fd = (ahead.body_rates_rad_s - behind.body_rates_rad_s) / (2.0 * STEP_S)
    scale = max(1.0, float(np.abs(state.body_angular_accel_rad_s2).max()))
    np.testing.assert_allclose(state.body_angular_accel_rad_s2, accel_fd, atol=1e-5 * scale)
    assert np.abs(state.body_angular_accel_rad_s2).max() > 0.1


def test_pure_yaw_rotation_has_only_yaw_rate() -> None:
    derivatives = hover_derivatives((0.0, 0.0, 1.0), 0.3)
    derivatives[1, 0, 3] = 1.5
    derivatives[2, 0, 3] = -0.4
    state = flat_state(derivatives, VEHICLE)
    np.testing.assert_allclose(state.body_rates_rad_s[0], [0.0, 0.0, 1.5], atol=1e-12)
    np.testing.assert_allclose(state.body_angular_accel_rad_s2[0], [0.0, 0.0, -0.4], atol=1e-12)
    izz = VEHICLE.inertia_kg_m2[2]
    np.testing.assert_allclose(state.torque_nm[0], [0.0, 0.0, -0.4 * izz], atol=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
def test_torques_and_rotor_thrusts_reproduce_the_wrench(seed: int) -> None:
    trajectory = random_trajectory(seed)
    state = state_at(trajectory, np.linspace(0.0, trajectory.duration_s, 200))
    inertia = VEHICLE.inertia_matrix
    for omega, alpha, torque in zip(
        state.body_rates_rad_s, state.body_angular_accel_rad_s2, state.torque_nm, strict=True
    ):
        np.testing.assert_allclose(torque, inertia @ alpha + np.cross(omega, inertia @ omega), atol=1e-12)
    wrench = state.rotor_thrusts_n @ VEHICLE.allocation_matrix.T
    np.testing.assert_allclose(wrench[:, 0], state.thrust_n, rtol=1e-12)
    np.testing.assert_allclose(wrench[:, 1:], state.torque_nm, atol=1e-12)
    k = VEHICLE.thrust_coeff_n_per_rad2_s2
    speeds = state.rotor_speeds_rad_s
    np.testing.assert_allclose(k * speeds * np.abs(speeds), state.rotor_thrusts_n, rtol=1e-12)


def test_free_fall_is_singular() -> None:
    derivatives = hover_derivatives((0.0, 0.0, 1.0), 0.4)
    derivatives = np.concatenate([derivatives, derivatives], axis=1)
    derivatives[2, 1, :3] = -GRAVITY
    state = flat_state(derivatives, VEHICLE)
    np.testing.assert_array_equal(state.singular, [False, True])
    assert state.thrust_n[1] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.isfinite(state.rotor_speeds_rad_s))


def test_thrust_along_heading_is_singular() -> None:
    # Thrust along +x while the heading is +x: the body y axis is undefined (90 deg pitch).
    derivatives = hover_derivatives((0.0, 0.0, 1.0), 0.0)
    derivatives[2, 0, :3] = [5.0, 0.0, -GRAVITY_M_S2]
    state = flat_state(derivatives, VEHICLE)
    assert state.singular[0]
    # The same thrust with the heading along +y is regular.
    derivatives[0, 0, 3] = math.pi / 2
    assert not flat_state(derivatives, VEHICLE).singular[0]


def test_faster_trajectory_needs_larger_rotor_speed_spread() -> None:
    trajectory = random_trajectory(0)
    scaled = solve_min_snap(trajectory.waypoints, 0.6 * trajectory.segment_times_s)
    spread = []
    for traj in (trajectory, scaled):
        speeds = state_at(traj, np.linspace(0.0, traj.duration_s, 500)).rotor_speeds_rad_s
        spread.append(speeds.max() - speeds.min())
    assert spread[1] > spread[0]

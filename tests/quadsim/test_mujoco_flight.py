"""Fidelity 1: the MuJoCo model (mass, inertia, rotor actuators, motor lag) and flights with the SE(3) controller."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

import quadsim.mujoco_flight
from minsnap import Trajectory, solve_min_snap
from quadsim.controller import Reference, SE3Controller
from quadsim.mujoco_flight import MujocoEvaluator
from quadsim.mujoco_model import build_model
from quadsim.rotations import quat_wxyz_to_matrix
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

VEHICLE = VehicleParams()
GENTLE_WAYPOINTS = np.array(
    [[0.0, 0.0, 1.0, 0.0], [1.0, 0.5, 1.3, 0.6], [2.0, -0.5, 1.6, 1.2], [3.0, 0.0, 1.2, 0.4], [2.0, 1.0, 1.0, 0.0]]
)
GENTLE_TIMES_S = np.array([1.5, 1.5, 1.5, 1.5])


def constant_trajectory(point: tuple[float, float, float, float], duration_s: float) -> Trajectory:
    """A trajectory that stays at one point (x, y, z, yaw) for `duration_s`."""
    coefficients = np.zeros((1, 4, 8))
    coefficients[0, :, 0] = point
    return Trajectory(np.array([duration_s]), coefficients, np.array([point, point], dtype=np.float64))


def wrench_in_body(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """Collective force along body z and body torques applied by the actuators to the free joint."""
    rotation = data.xmat[model.body("quadrotor").id].reshape(3, 3)
    force_body = rotation.T @ data.qfrc_actuator[:3]
    np.testing.assert_allclose(force_body[:2], 0.0, atol=1e-12)
    return np.concatenate([[force_body[2]], data.qfrc_actuator[3:6]])


# The model


def test_body_has_vehicle_mass_and_inertia() -> None:
    vehicle = VehicleParams(mass_kg=0.8, inertia_kg_m2=(5e-3, 6e-3, 9e-3), rotor_speed_max_rad_s=1000.0)
    model = build_model(vehicle)
    body = model.body("quadrotor").id
    assert model.body_mass[body] == pytest.approx(vehicle.mass_kg)
    assert sum(model.body_mass) == pytest.approx(vehicle.mass_kg)  # the frame geoms add no mass
    np.testing.assert_allclose(model.body_inertia[body], vehicle.inertia_kg_m2)
    np.testing.assert_allclose(model.body_ipos[body], 0.0)
    np.testing.assert_allclose(model.opt.gravity, [0.0, 0.0, -GRAVITY_M_S2])


def test_actuator_range_is_the_rotor_thrust_range() -> None:
    model = build_model(VEHICLE)
    assert model.nu == 4
    expected = np.tile([VEHICLE.rotor_thrust_min_n, VEHICLE.rotor_thrust_max_n], (4, 1))
    np.testing.assert_allclose(model.actuator_ctrlrange, expected, rtol=1e-6)
    assert np.all(model.actuator_ctrllimited)


def test_actuators_apply_the_allocation_wrench() -> None:
    model = build_model(VEHICLE)
    data = mujoco.MjData(model)
    data.qpos[3:7] = [math.cos(0.3), math.sin(0.3) * 0.6, 0.0, math.sin(0.3) * 0.8]  # tilted and yawed
    thrusts = np.array([0.9, 1.4, 2.1, 0.6])
    data.act[:] = thrusts
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(data.actuator_force, thrusts)
    np.testing.assert_allclose(wrench_in_body(model, data), VEHICLE.allocation_matrix @ thrusts, rtol=1e-5)


def test_hover_thrust_balances_gravity() -> None:
    model = build_model(VEHICLE)
    data = mujoco.MjData(model)
    hover = VEHICLE.mass_kg * GRAVITY_M_S2 / 4.0
    data.act[:] = hover
    data.ctrl[:] = hover
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(data.qacc, 0.0, atol=1e-9)


def test_motor_lag_is_first_order_with_the_time_constant() -> None:
    tau = VEHICLE.motor_time_constant_s
    model = build_model(VEHICLE, timestep_s=tau / 20.0)
    data = mujoco.MjData(model)
    low, high = 1.0, 3.0
    data.act[:] = low
    data.ctrl[:] = high
    mujoco.mj_step(model, data, nstep=20)
    np.testing.assert_allclose((data.act - low) / (high - low), 1.0 - math.exp(-1.0), rtol=1e-6)
    mujoco.mj_step(model, data, nstep=80)
    np.testing.assert_allclose((data.act - low) / (high - low), 1.0 - math.exp(-5.0), rtol=1e-6)


def test_commands_outside_the_range_are_clamped() -> None:
    model = build_model(VEHICLE)
    data = mujoco.MjData(model)
    data.act[:] = VEHICLE.rotor_thrust_max_n
    data.ctrl[:] = 100.0
    mujoco.mj_step(model, data, nstep=50)
    np.testing.assert_allclose(data.act, VEHICLE.rotor_thrust_max_n, rtol=1e-6)


# Flights


@pytest.mark.sim
def test_hover_holds_position_within_a_centimetre() -> None:
    point = (0.5, -0.3, 1.2, 0.7)
    flight = MujocoEvaluator().fly(constant_trajectory(point, 5.0))
    assert flight.failure == ""
    assert flight.times_s[-1] >= 5.0
    assert flight.position_error_m.max() < 0.01
    assert flight.yaw_error_rad.max() < math.radians(0.5)
    np.testing.assert_allclose(flight.rotor_speed_cmd_rad_s, VEHICLE.hover_rotor_speed_rad_s, rtol=0.01)


@pytest.mark.sim
def test_gentle_trajectory_is_tracked_and_feasible() -> None:
    trajectory = solve_min_snap(GENTLE_WAYPOINTS, GENTLE_TIMES_S)
    evaluator = MujocoEvaluator()
    result = evaluator.evaluate_one(trajectory)
    assert result.feasible, result.reason
    assert result.reason == ""
    assert result.max_position_error_m < 0.05
    assert result.max_yaw_error_rad < math.radians(2.0)
    assert result.max_rotor_speed_rad_s < VEHICLE.rotor_speed_max_rad_s
    assert result.min_rotor_speed_rad_s > VEHICLE.rotor_speed_min_rad_s
    assert result.duration_s == pytest.approx(GENTLE_TIMES_S.sum())
    assert result.wall_time_s > 0.0
    flight = evaluator.fly(trajectory)
    assert flight.times_s[-1] == pytest.approx(trajectory.duration_s + evaluator.criteria.settle_time_s, abs=0.01)
    # The flight ends on the last waypoint.
    np.testing.assert_allclose(flight.positions_m[-1], GENTLE_WAYPOINTS[-1, :3], atol=0.02)


@pytest.mark.sim
def test_aggressive_trajectory_is_infeasible_with_a_reason() -> None:
    trajectory = solve_min_snap(GENTLE_WAYPOINTS, 0.25 * GENTLE_TIMES_S)
    result = MujocoEvaluator().evaluate_one(trajectory)
    assert not result.feasible
    assert result.reason
    assert "position error" in result.reason or "diverged" in result.reason
    assert result.max_rotor_speed_ratio > 1.0


@pytest.mark.sim
@pytest.mark.parametrize("lowest_z", [0.0, -0.1, -0.5])
def test_trajectory_into_the_ground_is_infeasible(lowest_z: float) -> None:
    # Starts 30 cm up and dips to (or below) the ground: the vehicle cannot follow it down.
    trajectory = solve_min_snap([[0.0, 0.0, 0.3], [0.5, 0.0, lowest_z], [1.0, 0.0, 0.4]], [1.5, 1.5])
    evaluator = MujocoEvaluator()
    result = evaluator.evaluate_one(trajectory)
    assert not result.feasible
    assert "ground" in result.reason
    flight = evaluator.fly(trajectory)
    assert flight.failure.startswith("hit the ground")
    # Every recorded sample, including the one that stopped the flight, has a real rotor command.
    assert np.all(np.abs(flight.rotor_speed_cmd_rad_s) > VEHICLE.rotor_speed_min_rad_s)
    assert result.min_rotor_speed_rad_s > VEHICLE.rotor_speed_min_rad_s


@pytest.mark.sim
def test_low_pass_above_the_clearance_is_feasible() -> None:
    trajectory = solve_min_snap([[0.0, 0.0, 0.3], [0.5, 0.0, 0.08], [1.0, 0.0, 0.4]], [1.5, 1.5])
    result = MujocoEvaluator().evaluate_one(trajectory)
    assert result.feasible, result.reason


@pytest.mark.sim
def test_controller_sees_the_current_simulator_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attitude handed to the controller is the one at the same instant as the position and rates."""
    created: list[mujoco.MjData] = []
    mismatches: list[float] = []
    make_data = mujoco.MjData

    def recording_data(model: mujoco.MjModel) -> mujoco.MjData:
        data = make_data(model)
        created.append(data)
        return data

    class CheckingController(SE3Controller):
        def rotor_thrusts(
            self,
            position: np.ndarray,
            velocity: np.ndarray,
            rotation: np.ndarray,
            body_rates: np.ndarray,
            ref: Reference,
            dt_s: float = 0.0,
        ) -> np.ndarray:
            data = created[-1]
            np.testing.assert_array_equal(position, data.qpos[:3])
            np.testing.assert_array_equal(body_rates, data.qvel[3:6])
            mismatches.append(float(np.abs(rotation - quat_wxyz_to_matrix(data.qpos[3:7])).max()))
            return super().rotor_thrusts(position, velocity, rotation, body_rates, ref, dt_s)

    monkeypatch.setattr(quadsim.mujoco_flight.mujoco, "MjData", recording_data)
    monkeypatch.setattr(quadsim.mujoco_flight, "SE3Controller", CheckingController)
    # Spinning in yaw at about 2 rad/s: an attitude one physics step old would be 4 mrad off.
    trajectory = solve_min_snap([[0.0, 0.0, 1.0, 0.0], [0.2, 0.0, 1.0, 3.0], [0.4, 0.0, 1.0, 6.0]], [2.0, 2.0])
    flight = MujocoEvaluator().fly(trajectory)
    assert flight.failure == ""
    assert len(mismatches) > 100
    assert max(mismatches) < 1e-9

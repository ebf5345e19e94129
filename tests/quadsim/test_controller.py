"""SE(3) controller: exact feed-forward on the reference, the sign of each correction, saturation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minsnap import solve_min_snap
from quadsim.controller import Reference, SE3Controller, SE3Gains, desaturate, limit_thrust_vector
from quadsim.flatness import flat_state
from quadsim.mujoco_vehicle import MujocoQuadrotor
from quadsim.reference import ReferenceTrack
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

VEHICLE = VehicleParams()
WEIGHT_N = VEHICLE.mass_kg * GRAVITY_M_S2


def hover_reference(position: tuple[float, float, float] = (0.0, 0.0, 1.0), yaw: float = 0.0) -> Reference:
    zero = np.zeros(3)
    return Reference(np.array(position), zero, zero, yaw, zero, zero)


def rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def wrench_of(thrusts: np.ndarray) -> np.ndarray:
    return VEHICLE.allocation_matrix @ thrusts


@pytest.mark.parametrize("yaw", [0.0, 1.2, -2.8])
def test_hover_on_reference_gives_weight_and_no_torque(yaw: float) -> None:
    controller = SE3Controller(VEHICLE)
    thrusts = controller.rotor_thrusts(
        np.array([0.0, 0.0, 1.0]), np.zeros(3), rot_z(yaw), np.zeros(3), hover_reference(yaw=yaw)
    )
    np.testing.assert_allclose(thrusts, WEIGHT_N / 4.0, rtol=1e-12)


def test_feed_forward_is_exact_on_the_reference() -> None:
    """On the reference state (drag-free model) the controller asks for exactly the flatness rotor thrusts."""
    waypoints = [[0.0, 0.0, 1.0, 0.0], [1.5, 1.0, 1.6, 1.0], [3.0, -0.5, 1.2, -0.5], [4.0, 0.5, 1.0, 0.3]]
    trajectory = solve_min_snap(waypoints, [1.2, 1.2, 1.2])
    track = ReferenceTrack.build(trajectory, VEHICLE, dt_s=0.01, hold_s=0.0)
    expected = flat_state(track.derivatives, VEHICLE).rotor_thrusts_n
    assert np.ptp(expected) > 0.5  # an aggressive enough reference for the check to mean something
    controller = SE3Controller(VEHICLE, SE3Gains(aero_feedforward=False))
    for k in range(len(track)):
        ref = track.at(k)
        controller.rotor_thrusts(ref.position, ref.velocity, track.rotation[k], ref.body_rates_rad_s, ref)
        np.testing.assert_allclose(controller.last_unclipped_thrusts_n, expected[k], rtol=1e-9, atol=1e-9)


def test_vehicle_below_reference_gets_more_thrust() -> None:
    thrusts = SE3Controller(VEHICLE).rotor_thrusts(
        np.array([0.0, 0.0, 0.9]), np.zeros(3), np.eye(3), np.zeros(3), hover_reference()
    )
    wrench = wrench_of(thrusts)
    assert wrench[0] > WEIGHT_N
    np.testing.assert_allclose(wrench[1:], 0.0, atol=1e-12)


def test_vehicle_behind_reference_pitches_forward() -> None:
    # Reference 10 cm ahead (+x): tilt the thrust towards +x, a positive torque about +y.
    thrusts = SE3Controller(VEHICLE).rotor_thrusts(
        np.array([-0.1, 0.0, 1.0]), np.zeros(3), np.eye(3), np.zeros(3), hover_reference()
    )
    wrench = wrench_of(thrusts)
    assert wrench[2] > 0
    assert wrench[1] == pytest.approx(0.0, abs=1e-12)
    assert thrusts[2] > thrusts[0]  # rear rotors push harder


def test_vehicle_right_of_reference_rolls_left() -> None:
    # Reference 10 cm to the left (+y): tilt the thrust towards +y, a negative torque about +x.
    thrusts = SE3Controller(VEHICLE).rotor_thrusts(
        np.array([0.0, -0.1, 1.0]), np.zeros(3), np.eye(3), np.zeros(3), hover_reference()
    )
    wrench = wrench_of(thrusts)
    assert wrench[1] < 0
    assert thrusts[1] > thrusts[0]  # right rotors (-y) push harder


def test_yaw_behind_reference_turns_positively() -> None:
    thrusts = SE3Controller(VEHICLE).rotor_thrusts(
        np.array([0.0, 0.0, 1.0]), np.zeros(3), rot_z(-0.2), np.zeros(3), hover_reference()
    )
    wrench = wrench_of(thrusts)
    assert wrench[3] > 0
    np.testing.assert_allclose(wrench[1:3], 0.0, atol=1e-12)


def test_rates_are_damped() -> None:
    thrusts = SE3Controller(VEHICLE).rotor_thrusts(
        np.array([0.0, 0.0, 1.0]), np.zeros(3), np.eye(3), np.array([0.5, -0.3, 0.2]), hover_reference()
    )
    torque = wrench_of(thrusts)[1:]
    assert np.all(np.sign(torque) == -np.sign([0.5, -0.3, 0.2]))


def test_saturated_yaw_gives_way_and_thrust_roll_and_pitch_are_kept() -> None:
    controller = SE3Controller(VEHICLE)
    thrusts = controller.rotor_thrusts(
        np.array([0.0, 0.0, 1.0]), np.zeros(3), np.eye(3), np.array([0.0, 0.0, 30.0]), hover_reference()
    )
    assert np.all(thrusts >= VEHICLE.rotor_thrust_min_n)
    assert np.all(thrusts <= VEHICLE.rotor_thrust_max_n)
    unclipped = controller.last_unclipped_thrusts_n
    assert unclipped.min() < VEHICLE.rotor_thrust_min_n  # the controller asked for more than the rotors give
    wanted, applied = wrench_of(unclipped), wrench_of(thrusts)
    assert applied[0] == pytest.approx(wanted[0])  # the hover thrust is kept
    np.testing.assert_allclose(applied[1:3], wanted[1:3], atol=1e-12)  # no roll or pitch appears
    assert 0.0 < applied[3] / wanted[3] < 1.0  # yaw still damps the spin, scaled down to fit


def test_roll_and_pitch_come_before_collective_thrust() -> None:
    low, high = VEHICLE.rotor_thrust_min_n, VEHICLE.rotor_thrust_max_n
    mixer = VEHICLE.mixer_matrix
    wanted = np.array([3.9 * high, 0.15, -0.1, 0.0])  # near full thrust with a strong roll and pitch
    thrusts = desaturate(mixer[:, 0] * wanted[0], mixer[:, 1:3] @ wanted[1:3], mixer[:, 3] * wanted[3], low, high)
    applied = wrench_of(thrusts)
    assert thrusts.max() <= high + 1e-12
    np.testing.assert_allclose(applied[1:3], wanted[1:3], atol=1e-12)
    assert applied[0] < wanted[0]  # thrust gave way
    # Clipping each rotor instead loses the roll and pitch asked for.
    clipped = wrench_of(np.clip(mixer @ wanted, low, high))
    assert abs(clipped[1] - wanted[1]) > 0.01


@pytest.mark.parametrize("seed", range(5))
def test_desaturated_thrusts_are_in_range_and_keep_roll_and_pitch_when_they_fit(seed: int) -> None:
    low, high = VEHICLE.rotor_thrust_min_n, VEHICLE.rotor_thrust_max_n
    mixer = VEHICLE.mixer_matrix
    rng = np.random.default_rng(seed)
    for _ in range(200):
        wanted = np.array([rng.uniform(0.0, 5.0 * high), *rng.normal(scale=0.2, size=2), rng.normal(scale=0.05)])
        roll_pitch = mixer[:, 1:3] @ wanted[1:3]
        thrusts = desaturate(mixer[:, 0] * wanted[0], roll_pitch, mixer[:, 3] * wanted[3], low, high)
        assert thrusts.min() >= low - 1e-12
        assert thrusts.max() <= high + 1e-12
        if roll_pitch.max() - roll_pitch.min() <= high - low:
            np.testing.assert_allclose(wrench_of(thrusts)[1:3], wanted[1:3], atol=1e-9)


def test_a_reference_falling_faster_than_gravity_does_not_turn_the_thrust_axis_down() -> None:
    """The CI flip of 2026-12-05: a vehicle rising at 1.8 m/s, a reference that brakes it at -4.3 m/s^2 and
    feedback on the vertical speed error asked for -10 m/s^2; the thrust axis pointed down and the attitude
    loop rolled the vehicle over. The commanded thrust keeps an upward part and a bounded tilt."""
    controller = SE3Controller(VEHICLE)
    ref = Reference(np.array([0.0, 0.0, 1.0]), np.array([3.0, 0.0, 0.0]), np.array([0.0, 0.0, -9.0]), 0.0,
                    np.zeros(3), np.zeros(3))  # fmt: skip
    thrusts = controller.rotor_thrusts(
        np.array([0.0, 0.0, 1.1]), np.array([0.0, 0.0, 2.0]), np.eye(3), np.zeros(3), ref
    )
    thrust, roll, pitch, _ = wrench_of(thrusts)
    assert thrust >= 0.2 * WEIGHT_N - 1e-9
    # Level now, and the axis it wants is within 70 deg of vertical: a bounded pitch command, no roll.
    assert abs(roll) < 1e-9
    assert pitch > 0.0  # towards +x, where the reference runs


def test_the_commanded_tilt_is_capped_and_keeps_the_horizontal_direction() -> None:
    force = limit_thrust_vector(np.array([30.0, -40.0, 5.0]), 1.0, math.radians(55.0))
    assert math.degrees(math.atan2(math.hypot(force[0], force[1]), force[2])) == pytest.approx(55.0)
    assert force[0] / force[1] == pytest.approx(30.0 / -40.0)
    down = limit_thrust_vector(np.array([0.0, 0.0, -3.0]), 1.0, math.radians(55.0))
    np.testing.assert_allclose(down, [0.0, 0.0, 1.0])
    inside = np.array([1.0, 1.0, 5.0])
    np.testing.assert_array_equal(limit_thrust_vector(inside, 1.0, math.radians(55.0)), inside)


def test_braking_a_rising_vehicle_harder_than_gravity_does_not_flip_it_in_mujoco() -> None:
    """Closed loop in MuJoCo: the same demand held for 0.5 s keeps the vehicle upright."""
    vehicle = MujocoQuadrotor()
    vehicle.reset(np.array([0.0, 0.0, 2.0]))
    vehicle.data.qvel[:3] = [-3.5, 1.2, 1.8]
    controller = SE3Controller(VEHICLE)
    lowest_up = 1.0
    for _ in range(125):  # 0.5 s at 250 Hz
        state = vehicle.state()
        ref = Reference(state.position_m - np.array([0.0, 0.0, 0.05]), np.array([-3.7, 0.8, 1.2]),
                        np.array([-0.9, -2.6, -4.3]), 0.0, np.zeros(3), np.zeros(3))  # fmt: skip
        vehicle.set_rotor_thrusts(
            controller.rotor_thrusts(state.position_m, state.velocity_m_s, state.rotation, state.body_rates_rad_s, ref)
        )
        vehicle.step(0.004)
        lowest_up = min(lowest_up, float(vehicle.state().rotation[2, 2]))
    assert lowest_up > math.cos(math.radians(60.0)), lowest_up


def _fly_mujoco(controller: SE3Controller, vehicle: VehicleParams, seconds: float, ref_at: object) -> np.ndarray:
    """Fly `controller` on a MuJoCo vehicle built from `vehicle` at 250 Hz; return the position errors."""
    quad = MujocoQuadrotor(vehicle)
    first: Reference = ref_at(0.0)  # type: ignore[operator]
    quad.reset(first.position)
    quad.data.qvel[:3] = first.velocity
    errors = []
    for k in range(round(seconds * 250)):
        state = quad.state()
        ref: Reference = ref_at(k * 0.004)  # type: ignore[operator]
        thrusts = controller.rotor_thrusts(
            state.position_m, state.velocity_m_s, state.rotation, state.body_rates_rad_s, ref, dt_s=0.004
        )
        quad.set_rotor_thrusts(thrusts)
        quad.step(0.004)
        errors.append(float(np.linalg.norm(state.position_m - ref.position)))
    return np.asarray(errors)


def test_integral_action_absorbs_a_payload_the_controller_is_not_told_about() -> None:
    """15 % more mass than the controller assumes: without integral action the vehicle sags for good; with it
    the hover error goes to zero."""
    heavy = VehicleParams(mass_kg=VEHICLE.mass_kg * 1.15)
    hover = hover_reference()
    without = _fly_mujoco(SE3Controller(VEHICLE, SE3Gains(ki_position=(0.0, 0.0, 0.0))), heavy, 6.0, lambda t: hover)
    with_integral = _fly_mujoco(SE3Controller(VEHICLE), heavy, 6.0, lambda t: hover)
    assert without[-250:].mean() > 0.05  # g * 0.15 / kp_z = 7 cm of sag
    assert with_integral[-250:].mean() < 0.005


def test_drag_feedforward_cuts_the_tracking_error_of_a_fast_straight_line() -> None:
    """MuJoCo flies the rotor drag of `quadsim.aero`: at 6 m/s the controller that predicts it tracks far better."""
    speed = 6.0

    def ref_at(t: float) -> Reference:
        return Reference(np.array([speed * t, 0.0, 1.0]), np.array([speed, 0.0, 0.0]), np.zeros(3), 0.0,
                         np.zeros(3), np.zeros(3))  # fmt: skip

    gains = {"ki_position": (0.0, 0.0, 0.0)}  # the feed-forward alone
    blind = _fly_mujoco(SE3Controller(VEHICLE, SE3Gains(aero_feedforward=False, **gains)), VEHICLE, 2.0, ref_at)
    aware = _fly_mujoco(SE3Controller(VEHICLE, SE3Gains(**gains)), VEHICLE, 2.0, ref_at)
    assert blind[-100:].mean() > 0.05
    assert aware[-100:].mean() < 0.25 * blind[-100:].mean()


def test_the_integral_holds_still_while_the_thrust_is_limited() -> None:
    """Anti-windup: a reference 20 m away saturates the tilt; the integral must not grow meanwhile."""
    controller = SE3Controller(VEHICLE)
    far = Reference(np.array([20.0, 0.0, 1.0]), np.zeros(3), np.zeros(3), 0.0, np.zeros(3), np.zeros(3))
    for _ in range(500):
        controller.rotor_thrusts(np.array([0.0, 0.0, 1.0]), np.zeros(3), np.eye(3), np.zeros(3), far, dt_s=0.004)
    # One step integrated before the first command was seen limited; nothing after.
    assert np.abs(controller.integral_accel_m_s2).max() <= 8.0 * 20.0 * 0.004 + 1e-9
    unlimited = SE3Controller(VEHICLE)
    near = Reference(np.array([0.05, 0.0, 1.0]), np.zeros(3), np.zeros(3), 0.0, np.zeros(3), np.zeros(3))
    for _ in range(500):
        unlimited.rotor_thrusts(np.array([0.0, 0.0, 1.0]), np.zeros(3), np.eye(3), np.zeros(3), near, dt_s=0.004)
    assert unlimited.integral_accel_m_s2[0] == pytest.approx(8.0 * 0.05 * 2.0)  # ki * error * time
    with pytest.raises(ValueError, match="kp\\*kd"):
        SE3Gains(ki_position=(200.0, 4.0, 6.0))

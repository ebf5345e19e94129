"""VehicleParams: allocation and mixer, hover, torque signs of the rotor layout, validation, RotorPy export."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

VEHICLES = [
    VehicleParams(),
    VehicleParams(
        name="heavy-wide",
        mass_kg=1.2,
        inertia_kg_m2=(1.1e-2, 1.3e-2, 2.0e-2),
        arm_length_m=0.25,
        rotor_speed_max_rad_s=1000.0,
        rotor_directions=(-1, 1, -1, 1),
    ),
]


@pytest.fixture(params=VEHICLES, ids=lambda v: v.name)
def vehicle(request: pytest.FixtureRequest) -> VehicleParams:
    return request.param


def test_mixer_inverts_allocation(vehicle: VehicleParams) -> None:
    np.testing.assert_allclose(vehicle.mixer_matrix @ vehicle.allocation_matrix, np.eye(4), atol=1e-9)
    np.testing.assert_allclose(vehicle.allocation_matrix @ vehicle.mixer_matrix, np.eye(4), atol=1e-9)


def test_hover_splits_weight_evenly_at_hover_speed(vehicle: VehicleParams) -> None:
    weight = vehicle.mass_kg * GRAVITY_M_S2
    thrusts = vehicle.mixer_matrix @ np.array([weight, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(thrusts, weight / 4.0, rtol=1e-12)
    speeds = vehicle.rotor_speeds_from_thrusts(thrusts)
    np.testing.assert_allclose(speeds, vehicle.hover_rotor_speed_rad_s, rtol=1e-12)
    np.testing.assert_allclose(vehicle.thrust_coeff_n_per_rad2_s2 * speeds**2, weight / 4.0, rtol=1e-12)
    assert vehicle.rotor_speed_min_rad_s < vehicle.hover_rotor_speed_rad_s < vehicle.rotor_speed_max_rad_s


def test_rotor_layout_is_front_left_first(vehicle: VehicleParams) -> None:
    pos = vehicle.rotor_positions_m
    signs = np.sign(pos[:, :2])
    np.testing.assert_array_equal(signs, [[1, 1], [1, -1], [-1, -1], [-1, 1]])
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), vehicle.arm_length_m)


def test_torque_signs_match_rotor_layout(vehicle: VehicleParams) -> None:
    alloc = vehicle.allocation_matrix
    # Rotors 1 and 4 sit on the +y side: more thrust there rolls the vehicle positively about +x.
    roll = alloc @ np.array([1.0, 0.0, 0.0, 1.0])
    assert roll[1] > 0
    assert roll[2] == pytest.approx(0.0, abs=1e-12)
    # Rotors 3 and 4 sit at -x: more thrust there pitches the nose down, positive about +y.
    pitch = alloc @ np.array([0.0, 0.0, 1.0, 1.0])
    assert pitch[2] > 0
    assert pitch[1] == pytest.approx(0.0, abs=1e-12)
    # Each rotor's reaction torque about +z has the sign of its direction.
    for i, direction in enumerate(vehicle.rotor_directions):
        single = np.zeros(4)
        single[i] = 1.0
        assert np.sign((alloc @ single)[3]) == direction
    # Torque about the centre equals r x f summed over rotors (force along body z).
    thrusts = np.array([0.3, 1.1, 0.7, 2.0])
    moment = np.sum(
        [np.cross(r, [0.0, 0.0, f]) for r, f in zip(vehicle.rotor_positions_m, thrusts, strict=True)], axis=0
    )
    np.testing.assert_allclose((alloc @ thrusts)[1:3], moment[:2], rtol=1e-12)
    assert (alloc @ thrusts)[0] == pytest.approx(thrusts.sum())


def test_mixer_produces_pure_torques(vehicle: VehicleParams) -> None:
    weight = vehicle.mass_kg * GRAVITY_M_S2
    for axis in range(1, 4):
        wrench = np.array([weight, 0.0, 0.0, 0.0])
        wrench[axis] = 0.01
        thrusts = vehicle.mixer_matrix @ wrench
        np.testing.assert_allclose(vehicle.allocation_matrix @ thrusts, wrench, atol=1e-12)
        assert thrusts.sum() == pytest.approx(weight)


def test_rotor_speeds_keep_sign_of_thrust(vehicle: VehicleParams) -> None:
    thrusts = np.array([-0.5, 0.0, 0.5, 2.0])
    speeds = vehicle.rotor_speeds_from_thrusts(thrusts)
    np.testing.assert_array_equal(np.sign(speeds), np.sign(thrusts))
    np.testing.assert_allclose(vehicle.thrust_coeff_n_per_rad2_s2 * speeds * np.abs(speeds), thrusts, atol=1e-15)


def test_thrust_range_follows_rotor_speed_range(vehicle: VehicleParams) -> None:
    k = vehicle.thrust_coeff_n_per_rad2_s2
    assert vehicle.rotor_thrust_min_n == pytest.approx(k * vehicle.rotor_speed_min_rad_s**2)
    assert vehicle.rotor_thrust_max_n == pytest.approx(k * vehicle.rotor_speed_max_rad_s**2)
    assert vehicle.max_total_thrust_n == pytest.approx(4.0 * vehicle.rotor_thrust_max_n)
    assert vehicle.max_total_thrust_n > vehicle.mass_kg * GRAVITY_M_S2


@pytest.mark.parametrize(
    ("changes", "field_named"),
    [
        ({"mass_kg": -0.5}, "mass_kg"),
        ({"mass_kg": 0.0}, "mass_kg"),
        ({"inertia_kg_m2": (1e-3, 0.0, 1e-3)}, "inertia_kg_m2"),
        ({"arm_length_m": -0.1}, "arm_length_m"),
        ({"thrust_coeff_n_per_rad2_s2": 0.0}, "thrust_coeff_n_per_rad2_s2"),
        ({"rotor_speed_min_rad_s": 900.0, "rotor_speed_max_rad_s": 800.0}, "rotor_speed_max_rad_s"),
        ({"rotor_speed_min_rad_s": -1.0}, "rotor_speed_max_rad_s"),
        ({"motor_time_constant_s": 0.0}, "motor_time_constant_s"),
    ],
)
def test_invalid_parameters_raise_naming_the_field(changes: dict[str, object], field_named: str) -> None:
    with pytest.raises(ValueError, match=field_named):
        VehicleParams(**changes)  # type: ignore[arg-type]


def test_vehicle_that_cannot_hover_is_rejected() -> None:
    # 4 * 5.57e-6 * 400^2 = 3.56 N < 0.5 kg * 9.81 = 4.9 N.
    with pytest.raises(ValueError, match=r"cannot hover.*max thrust .* <= weight"):
        VehicleParams(rotor_speed_max_rad_s=400.0)
    with pytest.raises(ValueError, match="cannot hover"):
        VehicleParams(mass_kg=2.0)


def test_vehicle_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        VehicleParams().mass_kg = 1.0  # type: ignore[misc]


def test_rotorpy_params_match_vehicle(vehicle: VehicleParams) -> None:
    params = vehicle.to_rotorpy()
    assert params["mass"] == vehicle.mass_kg
    assert (params["Ixx"], params["Iyy"], params["Izz"]) == vehicle.inertia_kg_m2
    assert params["Ixy"] == params["Iyz"] == params["Ixz"] == 0.0
    assert params["num_rotors"] == 4
    assert list(params["rotor_pos"]) == ["r1", "r2", "r3", "r4"]
    np.testing.assert_array_equal(np.vstack(list(params["rotor_pos"].values())), vehicle.rotor_positions_m)
    np.testing.assert_array_equal(params["rotor_directions"], vehicle.rotor_directions)
    assert params["k_eta"] == vehicle.thrust_coeff_n_per_rad2_s2
    assert params["k_m"] == vehicle.moment_coeff_nm_per_rad2_s2
    assert params["tau_m"] == vehicle.motor_time_constant_s
    assert params["rotor_speed_min"] == vehicle.rotor_speed_min_rad_s
    assert params["rotor_speed_max"] == vehicle.rotor_speed_max_rad_s
    assert (params["c_Dx"], params["c_Dy"], params["c_Dz"]) == vehicle.parasitic_drag_n_per_m2_s2
    # The export owns its arrays: editing it must not change the vehicle.
    params["rotor_pos"]["r1"][0] = 99.0
    assert vehicle.rotor_positions_m[0, 0] != 99.0


def test_rotorpy_multirotor_uses_the_same_allocation(vehicle: VehicleParams) -> None:
    multirotor_module = pytest.importorskip("rotorpy.vehicles.multirotor")
    quad = multirotor_module.Multirotor(vehicle.to_rotorpy(), aero=False)
    np.testing.assert_allclose(quad.f_to_TM, vehicle.allocation_matrix, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(quad.TM_to_f, vehicle.mixer_matrix, rtol=1e-9)
    np.testing.assert_allclose(quad.inertia, vehicle.inertia_matrix)
    np.testing.assert_allclose(quad.rotor_geometry, vehicle.rotor_positions_m)
    # RotorPy's own rigid-body wrench from rotor speeds agrees with our allocation of the rotor thrusts.
    speeds = np.array([450.0, 520.0, 610.0, 380.0])
    force, moment = quad.compute_body_wrench(np.zeros(3), speeds, np.zeros(3))
    wrench = vehicle.allocation_matrix @ (vehicle.thrust_coeff_n_per_rad2_s2 * speeds**2)
    np.testing.assert_allclose(force, [0.0, 0.0, wrench[0]], atol=1e-12)
    np.testing.assert_allclose(moment, wrench[1:], rtol=1e-9, atol=1e-15)

"""The aerodynamic model the MuJoCo vehicle flies and the controller predicts is RotorPy's, to rounding."""

from __future__ import annotations

import numpy as np
import pytest

from quadsim.aero import AeroModel
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

multirotor = pytest.importorskip("rotorpy.vehicles.multirotor")


def test_aero_wrench_matches_rotorpy_for_random_states() -> None:
    vehicle = VehicleParams()
    with_aero = multirotor.Multirotor(vehicle.to_rotorpy(), aero=True)
    without = multirotor.Multirotor(vehicle.to_rotorpy(), aero=False)
    rng = np.random.default_rng(3)
    for _ in range(20):
        airspeed, rates = rng.normal(size=3) * 5.0, rng.normal(size=3) * 2.0
        speeds = rng.uniform(vehicle.rotor_speed_min_rad_s, vehicle.rotor_speed_max_rad_s, 4)
        force_on, moment_on = with_aero.compute_body_wrench(rates, speeds, airspeed)
        force_off, moment_off = without.compute_body_wrench(rates, speeds, airspeed)
        force, moment = AeroModel(vehicle).wrench_body(airspeed, rates, speeds)
        np.testing.assert_allclose(force, force_on - force_off, atol=1e-12)
        np.testing.assert_allclose(moment, moment_on - moment_off, atol=1e-12)


def test_predicted_drag_opposes_the_motion_and_grows_with_speed() -> None:
    vehicle = VehicleParams()
    slow = AeroModel(vehicle).predicted_force_world(np.eye(3), np.array([2.0, 0.0, 0.0]), np.zeros(3))
    fast = AeroModel(vehicle).predicted_force_world(np.eye(3), np.array([6.0, 0.0, 0.0]), np.zeros(3))
    assert slow[0] < 0.0
    assert fast[0] < 2.5 * slow[0]  # rotor drag is linear in speed, parasitic drag quadratic
    assert fast[2] > 0.0  # translational lift
    hover = AeroModel(vehicle).predicted_force_world(np.eye(3), np.zeros(3), np.zeros(3))
    np.testing.assert_array_equal(hover, np.zeros(3))
    assert abs(fast[0]) > 0.1 * vehicle.mass_kg * GRAVITY_M_S2  # large enough to matter at this speed

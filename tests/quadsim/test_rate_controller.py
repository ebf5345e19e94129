"""The body-rate loop: a step in the rate command is tracked on the MuJoCo vehicle, and no rotor leaves its range."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quadsim.mujoco_vehicle import MujocoQuadrotor
from quadsim.rate_controller import RateController, RateControllerGains
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

VEHICLE = VehicleParams()
HOVER_N = VEHICLE.mass_kg * GRAVITY_M_S2


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_step_in_rate_command_is_tracked(axis: int) -> None:
    quad = MujocoQuadrotor(VEHICLE)
    quad.reset(np.array([0.0, 0.0, 5.0]))
    controller = RateController(VEHICLE)
    command = np.zeros(3)
    command[axis] = 2.0 if axis < 2 else 1.0
    rates = []
    for _ in range(75):  # 0.3 s at 250 Hz
        quad.set_rotor_thrusts(controller.rotor_thrusts(HOVER_N, command, quad.state().body_rates_rad_s))
        quad.step(0.004)
        rates.append(quad.state().body_rates_rad_s)
    rates_arr = np.array(rates)
    # Settled within 0.3 s to a few percent on the commanded axis, the others near zero.
    assert abs(rates_arr[-1, axis] - command[axis]) < 0.05 * command[axis]
    others = [i for i in range(3) if i != axis]
    assert np.abs(rates_arr[-10:, others]).max() < 0.05
    # Rises monotonically enough: past 60 % of the step within 3 time constants of the loop (kp = 40 or 20 1/s).
    tau = 1.0 / RateControllerGains().kp_rate_per_s[axis]
    assert rates_arr[round(3 * tau / 0.004), axis] > 0.6 * command[axis]


@settings(max_examples=200, deadline=None)
@given(
    thrust=st.floats(-5.0, 40.0),
    command=st.lists(st.floats(-50.0, 50.0), min_size=3, max_size=3),
    rates=st.lists(st.floats(-20.0, 20.0), min_size=3, max_size=3),
)
def test_rotor_and_torque_limits_are_respected(thrust: float, command: list[float], rates: list[float]) -> None:
    controller = RateController(VEHICLE)
    wanted = np.asarray(command)
    measured = np.asarray(rates)
    applied_thrust, torque = controller.wrench(thrust, wanted, measured)
    rotor = VEHICLE.mixer_matrix @ np.array([applied_thrust, *torque])
    assert rotor.min() >= VEHICLE.rotor_thrust_min_n - 1e-9
    assert rotor.max() <= VEHICLE.rotor_thrust_max_n + 1e-9
    assert np.all(np.abs(torque) <= np.asarray(RateControllerGains().max_torque_nm) + 1e-12)
    # Limits only shrink the torque, never turn it: each axis keeps the unlimited torque's sign.
    inertia = VEHICLE.inertia_matrix
    raw = inertia @ (np.asarray(RateControllerGains().kp_rate_per_s) * (wanted - measured)) + np.cross(
        measured, inertia @ measured
    )
    assert np.all(torque * raw >= -1e-12)


def test_small_command_passes_unchanged() -> None:
    controller = RateController(VEHICLE)
    thrust, torque = controller.wrench(HOVER_N, np.array([0.1, -0.1, 0.05]), np.zeros(3))
    assert thrust == pytest.approx(HOVER_N)
    expected = VEHICLE.inertia_matrix @ (np.asarray(RateControllerGains().kp_rate_per_s) * [0.1, -0.1, 0.05])
    np.testing.assert_allclose(torque, expected, rtol=1e-12)


def test_bad_gains_are_refused() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        RateControllerGains(kp_rate_per_s=(1.0, 0.0, 1.0))

"""SET_POSITION_TARGET_LOCAL_NED read as PX4 reads it: type mask, NaN, NED to ENU."""

from __future__ import annotations

import math

import numpy as np

from px4sim.setpoints import setpoint_from_local_ned

POS_VEL_YAW = 0b0000_1001_1100_0000
VEL_ONLY = 0b0000_0101_1100_0111  # position, acceleration, yaw ignored


def test_position_ned_becomes_enu() -> None:
    sp = setpoint_from_local_ned(POS_VEL_YAW, (1.0, 2.0, -3.0), (0.5, 0.0, -1.0), (0, 0, 0), 0.0, 0.0)
    assert sp is not None
    np.testing.assert_allclose(sp.position_enu, [2.0, 1.0, 3.0])
    np.testing.assert_allclose(sp.velocity_enu, [0.0, 0.5, 1.0])
    assert np.isnan(sp.acceleration_enu).all()
    assert sp.yaw_enu_rad is not None
    assert math.isclose(sp.yaw_enu_rad, math.pi / 2)  # north is +90 deg in ENU
    assert sp.yaw_rate_enu_rad_s is None


def test_mask_and_nan_mean_not_set() -> None:
    sp = setpoint_from_local_ned(VEL_ONLY, (1.0, 2.0, 3.0), (1.0, math.nan, 0.0), (0, 0, 0), 0.0, 0.3)
    assert sp is not None
    assert np.isnan(sp.position_enu).all()
    assert math.isnan(sp.velocity_enu[0])
    assert sp.velocity_enu[1] == 1.0
    assert sp.yaw_enu_rad is None
    assert sp.yaw_rate_enu_rad_s is not None
    assert math.isclose(sp.yaw_rate_enu_rad_s, -0.3)


def test_force_setpoints_are_ignored() -> None:
    assert setpoint_from_local_ned(1 << 9, (0, 0, 0), (0, 0, 0), (0, 0, 0), 0.0, 0.0) is None

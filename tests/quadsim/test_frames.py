"""The one frame library: axes written out by hand, one angle wrap for floats and arrays, one yaw convention."""

from __future__ import annotations

import math

import numpy as np
import pytest

from px4link.telemetry import Attitude
from quadsim import frames
from quadsim.rotations import matrix_to_quat_wxyz, quat_wxyz_to_matrix


def test_axes_by_hand() -> None:
    east, north, up = np.eye(3)
    np.testing.assert_allclose(frames.enu_to_ned(north), [1.0, 0.0, 0.0])  # NED x is north
    np.testing.assert_allclose(frames.enu_to_ned(east), [0.0, 1.0, 0.0])
    np.testing.assert_allclose(frames.enu_to_ned(up), [0.0, 0.0, -1.0])
    np.testing.assert_allclose(frames.flu_to_frd([0.0, 1.0, 0.0]), [0.0, -1.0, 0.0])  # left is minus right
    assert frames.yaw_enu_to_ned(0.0) == pytest.approx(math.pi / 2)  # facing east
    assert frames.yaw_enu_to_ned(math.pi / 2) == pytest.approx(0.0)  # facing north


def test_wrap_angle_is_one_function_for_floats_and_arrays() -> None:
    angles = np.array([math.pi, -math.pi, 3 * math.pi, -2.5 * math.pi, 0.0, 7.0])
    wrapped = frames.wrap_angle(angles)
    assert isinstance(frames.wrap_angle(7.0), float)
    np.testing.assert_allclose(wrapped, [frames.wrap_angle(float(a)) for a in angles], atol=1e-12)
    assert np.all((wrapped > -math.pi) & (wrapped <= math.pi))
    np.testing.assert_allclose(wrapped[:2], [math.pi, math.pi])


def test_the_bridge_reads_heading_in_the_projects_one_convention() -> None:
    """A rolled and pitched vehicle: the telemetry's heading is `frames.yaw_of`, not a second definition."""
    yaw, roll, pitch = 0.7, 0.4, -0.3
    cz, sz = math.cos(yaw), math.sin(yaw)
    cx, sx = math.cos(roll), math.sin(roll)
    cy, sy = math.cos(pitch), math.sin(pitch)
    rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    rotation = rz @ ry @ rx
    q = matrix_to_quat_wxyz(rotation)
    attitude = Attitude(time_boot_s=0.0, q_wxyz=(q[0], q[1], q[2], q[3]), body_rates_flu_rad_s=(0.0, 0.0, 0.0))
    assert attitude.yaw_enu_rad == pytest.approx(frames.yaw_of(quat_wxyz_to_matrix(q)), abs=1e-12)
    level = rz
    assert frames.yaw_of(level) == pytest.approx(yaw)

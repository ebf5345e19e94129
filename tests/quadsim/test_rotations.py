"""Rotation helpers: quaternion/matrix round trips, hat/vee/cross3, heading convention, angle wrapping."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quadsim.flatness import flat_state
from quadsim.frames import wrap_angle, yaw_of
from quadsim.rotations import (
    cross3,
    hat,
    matrix_to_quat_wxyz,
    norm3,
    quat_wxyz_to_matrix,
    vee,
)
from quadsim.vehicle import VehicleParams

finite = st.floats(min_value=-10.0, max_value=10.0, allow_nan=False, allow_infinity=False)
vectors = arrays(np.float64, 3, elements=finite)
quaternions = arrays(np.float64, 4, elements=st.floats(-1.0, 1.0)).filter(lambda q: np.linalg.norm(q) > 0.1)
angles = st.floats(min_value=-math.pi, max_value=math.pi)


def rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@given(quaternions)
def test_quaternion_gives_a_proper_rotation(q: np.ndarray) -> None:
    r = quat_wxyz_to_matrix(q)
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)


@given(quaternions)
def test_quaternion_matrix_round_trip(q: np.ndarray) -> None:
    unit = q / np.linalg.norm(q)
    back = matrix_to_quat_wxyz(quat_wxyz_to_matrix(q))
    assert back[0] >= 0.0
    assert np.linalg.norm(back) == pytest.approx(1.0)
    # q and -q are the same rotation; the result is the one with w >= 0.
    sign = 1.0 if unit[0] >= 0 else -1.0
    if abs(unit[0]) < 1e-9:  # w ~ 0: both signs are valid
        sign = float(np.sign(np.dot(back, unit))) or 1.0
    np.testing.assert_allclose(back, sign * unit, atol=1e-9)


@given(quaternions)
def test_matrix_quaternion_round_trip(q: np.ndarray) -> None:
    r = quat_wxyz_to_matrix(q)
    np.testing.assert_allclose(quat_wxyz_to_matrix(matrix_to_quat_wxyz(r)), r, atol=1e-12)


@given(quaternions)
def test_quaternion_convention_matches_mujoco(q: np.ndarray) -> None:
    unit = q / np.linalg.norm(q)
    expected = np.empty(9)
    mujoco.mju_quat2Mat(expected, unit)
    np.testing.assert_allclose(quat_wxyz_to_matrix(q), expected.reshape(3, 3), atol=1e-12)


@pytest.mark.parametrize(
    "r",
    [rot_x(math.pi), rot_y(math.pi), rot_z(math.pi), rot_x(math.pi) @ rot_z(0.3), rot_y(3.0) @ rot_x(0.2)],
    ids=["x180", "y180", "z180", "x180z", "y172x"],
)
def test_matrix_to_quaternion_near_half_turns(r: np.ndarray) -> None:
    q = matrix_to_quat_wxyz(r)
    np.testing.assert_allclose(quat_wxyz_to_matrix(q), r, atol=1e-12)


def test_quaternion_of_known_rotations() -> None:
    half = math.sqrt(0.5)
    np.testing.assert_allclose(quat_wxyz_to_matrix(np.array([1.0, 0.0, 0.0, 0.0])), np.eye(3))
    np.testing.assert_allclose(quat_wxyz_to_matrix(np.array([half, 0.0, 0.0, half])), rot_z(math.pi / 2), atol=1e-15)
    np.testing.assert_allclose(quat_wxyz_to_matrix(np.array([half, half, 0.0, 0.0])), rot_x(math.pi / 2), atol=1e-15)


@given(vectors, vectors)
def test_hat_and_cross3_are_the_cross_product(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(hat(a) @ b, np.cross(a, b), atol=1e-12)
    np.testing.assert_allclose(cross3(a, b), np.cross(a, b), atol=1e-12)
    np.testing.assert_allclose(hat(a), -hat(a).T)
    assert norm3(a) == pytest.approx(np.linalg.norm(a))


@given(vectors)
def test_vee_inverts_hat(v: np.ndarray) -> None:
    np.testing.assert_array_equal(vee(hat(v)), v)


@given(angles)
def test_yaw_of_level_rotation(yaw: float) -> None:
    assert wrap_angle(yaw_of(rot_z(yaw)) - yaw) == pytest.approx(0.0, abs=1e-12)


@settings(deadline=None)
@given(
    angles,
    arrays(np.float64, 3, elements=st.floats(-8.0, 8.0)),
)
def test_yaw_of_tilted_flat_frame_is_the_commanded_heading(yaw: float, acc: np.ndarray) -> None:
    derivatives = np.zeros((5, 1, 4))
    derivatives[2, 0, :3] = acc
    derivatives[0, 0, 3] = yaw
    r = flat_state(derivatives, VehicleParams()).rotation[0]
    # The flatness frame's y axis is perpendicular to the heading (cos yaw, sin yaw, 0).
    assert r[:, 1] @ np.array([math.cos(yaw), math.sin(yaw), 0.0]) == pytest.approx(0.0, abs=1e-12)
    assert wrap_angle(yaw_of(r) - yaw) == pytest.approx(0.0, abs=1e-9)


def test_yaw_of_differs_from_zyx_yaw_when_tilted() -> None:
    # Yaw 0.5 then pitch 0.4 then roll 0.6 (ZYX): the heading convention is not the ZYX yaw.
    r = rot_z(0.5) @ rot_y(0.4) @ rot_x(0.6)
    assert math.atan2(r[1, 0], r[0, 0]) == pytest.approx(0.5)
    assert yaw_of(r) != pytest.approx(0.5, abs=1e-3)
    # But it is the heading whose direction is perpendicular to the body y axis.
    heading = yaw_of(r)
    assert r[:, 1] @ np.array([math.cos(heading), math.sin(heading), 0.0]) == pytest.approx(0.0, abs=1e-12)


@given(st.floats(min_value=-100.0, max_value=100.0))
def test_wrap_angle_range_and_equivalence(angle: float) -> None:
    wrapped = float(wrap_angle(angle))
    assert -math.pi < wrapped <= math.pi
    assert math.cos(wrapped) == pytest.approx(math.cos(angle), abs=1e-9)
    assert math.sin(wrapped) == pytest.approx(math.sin(angle), abs=1e-9)


def test_wrap_angle_edges() -> None:
    np.testing.assert_allclose(wrap_angle(np.array([math.pi, -math.pi, 3 * math.pi, 0.0])), [math.pi] * 3 + [0.0])

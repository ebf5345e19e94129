"""The simulated vehicle's own frame changes between the project's frames and PX4's (independent of the bridge).

Conventions:
- The project (and the physics): world ENU (x east, y north, z up), body FLU (x forward, y left, z up).
- PX4 and MAVLink: world NED (x north, y east, z down), body FRD (x forward, y right, z down).
- Quaternions are scalar-first [w, x, y, z] and rotate body vectors into the world (body -> world).
- Yaw in ENU is measured from east, counter-clockwise (about up); in NED from north, clockwise seen from
  above (about down). Angles come out wrapped to (-pi, pi].

Every change is written as an explicit rotation matrix (`ENU_TO_NED`, `FLU_TO_FRD`, each read off the axes
above) and everything else is derived from those two matrices: vectors, attitudes (R_ned_frd =
ENU_TO_NED R_enu_flu FRD_TO_FLU), headings (a direction vector carried across) and yaw rates.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Columns: where ENU's east, north and up land in NED. Rows: NED's north, east and down in ENU terms.
ENU_TO_NED = np.array(
    [
        [0.0, 1.0, 0.0],  # north = ENU y
        [1.0, 0.0, 0.0],  # east = ENU x
        [0.0, 0.0, -1.0],  # down = -ENU z
    ]
)
NED_TO_ENU = ENU_TO_NED.T
FLU_TO_FRD = np.array(
    [
        [1.0, 0.0, 0.0],  # forward = forward
        [0.0, -1.0, 0.0],  # right = -left
        [0.0, 0.0, -1.0],  # down = -up
    ]
)
FRD_TO_FLU = FLU_TO_FRD.T


def _signed_permutation(matrix: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """(source axis, sign) of each output axis of a signed permutation matrix (one +-1 per row)."""
    axes = np.argmax(np.abs(matrix), axis=1)
    signs = matrix[np.arange(3), axes]
    if not np.allclose(np.abs(signs), 1.0) or sorted(axes.tolist()) != [0, 1, 2]:
        raise ValueError(f"not a signed permutation: {matrix.tolist()}")
    return axes, signs


# The frame matrices only swap and negate axes; applying them that way keeps a NaN ("not set") on its own axis,
# where a matrix product would spread it (NaN * 0 is NaN).
_ENU_TO_NED_AXES, _ENU_TO_NED_SIGNS = _signed_permutation(ENU_TO_NED)
_NED_TO_ENU_AXES, _NED_TO_ENU_SIGNS = _signed_permutation(NED_TO_ENU)
_FLU_TO_FRD_AXES, _FLU_TO_FRD_SIGNS = _signed_permutation(FLU_TO_FRD)
_FRD_TO_FLU_AXES, _FRD_TO_FLU_SIGNS = _signed_permutation(FRD_TO_FLU)


def enu_to_ned(v: ArrayLike) -> NDArray[np.float64]:
    """A world vector (position, velocity, acceleration) from ENU to NED; (..., 3) arrays, NaN stays per axis."""
    return np.asarray(v, dtype=np.float64)[..., _ENU_TO_NED_AXES] * _ENU_TO_NED_SIGNS


def ned_to_enu(v: ArrayLike) -> NDArray[np.float64]:
    """A world vector from NED to ENU; (..., 3) arrays, NaN stays per axis."""
    return np.asarray(v, dtype=np.float64)[..., _NED_TO_ENU_AXES] * _NED_TO_ENU_SIGNS


def flu_to_frd(v: ArrayLike) -> NDArray[np.float64]:
    """A body vector (angular rate, body velocity) from FLU to FRD; (..., 3) arrays."""
    return np.asarray(v, dtype=np.float64)[..., _FLU_TO_FRD_AXES] * _FLU_TO_FRD_SIGNS


def frd_to_flu(v: ArrayLike) -> NDArray[np.float64]:
    """A body vector from FRD to FLU; (..., 3) arrays."""
    return np.asarray(v, dtype=np.float64)[..., _FRD_TO_FLU_AXES] * _FRD_TO_FLU_SIGNS


def rotation_enu_flu_to_ned_frd(rotation_enu_flu: ArrayLike) -> NDArray[np.float64]:
    """Attitude matrix (body FLU -> world ENU) as PX4's (body FRD -> world NED)."""
    return ENU_TO_NED @ np.asarray(rotation_enu_flu, dtype=np.float64) @ FRD_TO_FLU


def rotation_ned_frd_to_enu_flu(rotation_ned_frd: ArrayLike) -> NDArray[np.float64]:
    """PX4's attitude matrix (body FRD -> world NED) as the project's (body FLU -> world ENU)."""
    return NED_TO_ENU @ np.asarray(rotation_ned_frd, dtype=np.float64) @ FLU_TO_FRD


def rotation_from_quaternion(q_wxyz: ArrayLike) -> NDArray[np.float64]:
    """Rotation matrix of a quaternion [w, x, y, z] (normalised first); ValueError for a zero or non-finite one."""
    q = np.asarray(q_wxyz, dtype=np.float64).reshape(4)
    length = float(np.linalg.norm(q))
    if not (length > 0.0 and math.isfinite(length)):
        raise ValueError(f"not a rotation quaternion: {q.tolist()}")
    w, x, y, z = q / length
    # R = (w^2 - |u|^2) I + 2 u u^T + 2 w [u]x, with u = (x, y, z) the vector part.
    u = np.array([x, y, z])
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.asarray((w * w - u @ u) * np.eye(3) + 2.0 * np.outer(u, u) + 2.0 * w * cross)


def quaternion_from_rotation(rotation: ArrayLike) -> NDArray[np.float64]:
    """Unit quaternion [w, x, y, z] with w >= 0 of a rotation matrix (from its largest diagonal combination)."""
    r = np.asarray(rotation, dtype=np.float64)
    # 4 w^2, 4 x^2, 4 y^2, 4 z^2 from the trace and diagonal; divide by the largest for accuracy.
    squares = np.array(
        [
            1.0 + r[0, 0] + r[1, 1] + r[2, 2],
            1.0 + r[0, 0] - r[1, 1] - r[2, 2],
            1.0 - r[0, 0] + r[1, 1] - r[2, 2],
            1.0 - r[0, 0] - r[1, 1] + r[2, 2],
        ]
    )
    largest = int(np.argmax(squares))
    # Sums and differences of off-diagonal pairs: 4wx, 4wy, 4wz, 4xy, 4xz, 4yz.
    wx, wy, wz = r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]
    xy, xz, yz = r[0, 1] + r[1, 0], r[0, 2] + r[2, 0], r[1, 2] + r[2, 1]
    four_times_each_with = (
        (squares[0], wx, wy, wz),  # 4w * (w, x, y, z)
        (wx, squares[1], xy, xz),  # 4x * (w, x, y, z)
        (wy, xy, squares[2], yz),  # 4y * (w, x, y, z)
        (wz, xz, yz, squares[3]),  # 4z * (w, x, y, z)
    )[largest]
    q = np.array(four_times_each_with, dtype=np.float64)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0.0 else -q


def quat_enu_flu_to_ned_frd(q_wxyz: ArrayLike) -> NDArray[np.float64]:
    """Attitude quaternion (body FLU -> world ENU) as PX4's (body FRD -> world NED), [w, x, y, z], w >= 0."""
    return quaternion_from_rotation(rotation_enu_flu_to_ned_frd(rotation_from_quaternion(q_wxyz)))


def quat_ned_frd_of_rotation(rotation_enu_flu: ArrayLike) -> NDArray[np.float64]:
    """PX4's attitude quaternion (body FRD -> world NED), w >= 0, of the physics' matrix (body FLU -> world ENU)."""
    return quaternion_from_rotation(rotation_enu_flu_to_ned_frd(rotation_enu_flu))


def quat_ned_frd_to_enu_flu(q_wxyz: ArrayLike) -> NDArray[np.float64]:
    """PX4's attitude quaternion (body FRD -> world NED) as the project's (body FLU -> world ENU), w >= 0."""
    return quaternion_from_rotation(rotation_ned_frd_to_enu_flu(rotation_from_quaternion(q_wxyz)))


def wrap_angle(angle: float) -> float:
    """`angle` wrapped to (-pi, pi]."""
    shifted = math.fmod(float(angle) + math.pi, 2.0 * math.pi)  # in (-2 pi, 2 pi)
    if shifted <= 0.0:
        shifted += 2.0 * math.pi  # now in (0, 2 pi]
    return shifted - math.pi


def yaw_enu_to_ned(yaw_enu_rad: float) -> float:
    """A heading from ENU (0 = east, counter-clockwise) to NED (0 = north, clockwise), in (-pi, pi]."""
    north, east, _down = ENU_TO_NED @ np.array([math.cos(yaw_enu_rad), math.sin(yaw_enu_rad), 0.0])
    return wrap_angle(math.atan2(east, north))


def yaw_ned_to_enu(yaw_ned_rad: float) -> float:
    """A heading from NED (0 = north, clockwise) to ENU (0 = east, counter-clockwise), in (-pi, pi]."""
    east, north, _up = NED_TO_ENU @ np.array([math.cos(yaw_ned_rad), math.sin(yaw_ned_rad), 0.0])
    return wrap_angle(math.atan2(north, east))


def yaw_rate_ned_to_enu(yaw_rate_ned_rad_s: float) -> float:
    """A yaw rate about NED's down axis as a rate about ENU's up axis."""
    return float((NED_TO_ENU @ np.array([0.0, 0.0, yaw_rate_ned_rad_s]))[2])


def yaw_rate_enu_to_ned(yaw_rate_enu_rad_s: float) -> float:
    """A yaw rate about ENU's up axis as a rate about NED's down axis."""
    return float((ENU_TO_NED @ np.array([0.0, 0.0, yaw_rate_enu_rad_s]))[2])


def heading_enu(rotation_enu_flu: ArrayLike) -> float:
    """Heading (rad, ENU) of a body attitude, as the project's controller defines it.

    The controller builds its attitude so that the body y (left) axis is perpendicular to the heading
    direction (cos yaw, sin yaw, 0); the heading is therefore the horizontal part of the body y axis
    turned a quarter turn clockwise (left -> forward). For a level vehicle it is the usual ZYX yaw.
    """
    r = np.asarray(rotation_enu_flu, dtype=np.float64)
    left_east, left_north = float(r[0, 1]), float(r[1, 1])
    forward_east, forward_north = left_north, -left_east
    return math.atan2(forward_north, forward_east)

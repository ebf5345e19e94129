"""Small rotation helpers (world ENU, body FLU; quaternions are scalar-first [w, x, y, z] as in MuJoCo)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray


def hat(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Skew-symmetric matrix of a 3-vector: hat(a) @ b == cross(a, b)."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def cross3(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cross product of two 3-vectors (much faster than `np.cross` for single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def norm3(a: NDArray[np.float64]) -> float:
    """Euclidean norm of a 3-vector."""
    return math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])


def vee(m: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse of `hat` (reads the skew part of a 3 x 3 matrix)."""
    return np.array([m[2, 1], m[0, 2], m[1, 0]])


def quat_wxyz_to_matrix(q: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotation matrix (body -> world) of a unit quaternion [w, x, y, z]."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat_wxyz(r: NDArray[np.float64]) -> NDArray[np.float64]:
    """Unit quaternion [w, x, y, z] (w >= 0) of a rotation matrix."""
    trace = float(np.trace(r))
    if trace > 0.0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array([0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        q = np.empty(4)
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q

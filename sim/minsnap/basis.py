"""Constant matrices of the 7th-order (minimum-snap) polynomial on the unit interval.

A segment of duration `T` is written in normalised time `tau = t / T` as
``p(tau) = sum_j c_j tau^j`` for ``j = 0..7``. Its position, velocity, acceleration and jerk at
both ends, scaled by ``T^r`` for the r-th derivative, fix the eight coefficients through the
constant Hermite matrix below; the snap cost of the segment is then a quadratic form in those
end derivatives whose entries scale as powers of `T`.
"""

from __future__ import annotations

from math import factorial

import numpy as np
from numpy.typing import NDArray

POLY_ORDER = 7
NUM_COEFFS = POLY_ORDER + 1
NUM_END_DERIVATIVES = 4  # position, velocity, acceleration, jerk at each end
SNAP_ORDER = 4


def falling_factorial(n: int, k: int) -> int:
    """Return n * (n-1) * ... * (n-k+1), the factor in the k-th derivative of t^n (0 if k > n)."""
    return factorial(n) // factorial(n - k) if k <= n else 0


def endpoint_matrix() -> NDArray[np.float64]:
    """Return the `8 x 8` map from tau-coefficients to scaled end derivatives (orders 0..3 at tau=0, then tau=1)."""
    matrix = np.zeros((NUM_COEFFS, NUM_COEFFS))
    for r in range(NUM_END_DERIVATIVES):
        matrix[r, r] = factorial(r)
        for j in range(r, NUM_COEFFS):
            matrix[NUM_END_DERIVATIVES + r, j] = falling_factorial(j, r)
    return matrix


def unit_snap_gram() -> NDArray[np.float64]:
    """Return Q with ``c^T Q c = integral_0^1 (d^4 p / d tau^4)^2 d tau``."""
    gram = np.zeros((NUM_COEFFS, NUM_COEFFS))
    for i in range(SNAP_ORDER, NUM_COEFFS):
        for j in range(SNAP_ORDER, NUM_COEFFS):
            power = i + j - 2 * SNAP_ORDER + 1
            gram[i, j] = falling_factorial(i, SNAP_ORDER) * falling_factorial(j, SNAP_ORDER) / power
    return gram


HERMITE = np.linalg.inv(endpoint_matrix())
"""`8 x 8`: scaled end derivatives -> tau-coefficients."""

SNAP_FORM = HERMITE.T @ unit_snap_gram() @ HERMITE
"""`8 x 8`: snap cost of a unit-duration segment as a quadratic form in its scaled end derivatives."""

END_ORDER = np.array([0, 1, 2, 3, 0, 1, 2, 3])
"""Derivative order of each of the 8 end values (start of segment, then end)."""

TIME_POWER = END_ORDER[:, None] + END_ORDER[None, :] - (2 * SNAP_ORDER - 1)
"""Entry (a, b) of a segment's snap form is ``SNAP_FORM[a, b] * T ** TIME_POWER[a, b]``."""


def segment_snap_forms(segment_times_s: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the `M x 8 x 8` snap-cost quadratic forms of M segments in their (unscaled) end derivatives."""
    return SNAP_FORM[None, :, :] * segment_times_s[:, None, None] ** TIME_POWER[None, :, :]


def segment_snap_form_derivatives(segment_times_s: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return d/dT of `segment_snap_forms`, `M x 8 x 8`."""
    return (SNAP_FORM * TIME_POWER)[None, :, :] * segment_times_s[:, None, None] ** (TIME_POWER - 1)[None, :, :]

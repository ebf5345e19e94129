"""A trajectory as samples of position, velocity and acceleration, read back by quintic Hermite interpolation.

This is the form a trajectory takes on the wire (ROS `MultiDOFJointTrajectory` points carry exactly
these three derivatives). Between two samples the interpolant is the quintic that matches position,
velocity and acceleration at both ends, so it reproduces any polynomial up to degree 5 exactly and a
minimum-snap (degree 7) piece to well under a millimetre at a few samples per segment; its jerk and
snap feed the controller's attitude feed-forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from minsnap import Trajectory

SAMPLED_ORDERS = 3
"""Derivative orders carried per sample: position, velocity, acceleration."""


def quintic_hermite_coefficients(
    start: NDArray[np.float64], end: NDArray[np.float64], duration_s: float
) -> NDArray[np.float64]:
    """Coefficients `6 x A` (ascending powers of local time) of the quintic from `start` to `end`.

    Args:
        start, end: `3 x A` arrays: rows position, velocity, acceleration; one column per axis.
        duration_s: the interval's length (> 0).
    """
    h = float(duration_s)
    p0, v0, a0 = start
    p1, v1, a1 = end
    d = p1 - p0 - v0 * h - 0.5 * a0 * h * h
    e = v1 - v0 - a0 * h
    f = a1 - a0
    return np.array(
        [
            p0,
            v0,
            0.5 * a0,
            (10.0 * d - 4.0 * e * h + 0.5 * f * h * h) / h**3,
            (-15.0 * d + 7.0 * e * h - f * h * h) / h**4,
            (6.0 * d - 3.0 * e * h + 0.5 * f * h * h) / h**5,
        ]
    )


def hermite_coefficients(
    start: NDArray[np.float64], end: NDArray[np.float64], duration_s: float
) -> NDArray[np.float64]:
    """Coefficients `2m x A` (ascending powers of local time) of the polynomial of degree 2m-1 that matches
    the `m` derivatives (orders 0..m-1, rows of `start` and `end`, `m x A`) at both ends of `duration_s`."""
    orders = start.shape[0]
    return np.asarray(np.linalg.solve(_hermite_matrix(orders, float(duration_s)), np.vstack([start, end])), np.float64)


def _hermite_matrix(orders: int, h: float) -> NDArray[np.float64]:
    degree = 2 * orders
    matrix = np.zeros((degree, degree))
    for k in range(orders):
        matrix[k, k] = _falling(k, k)
        for j in range(k, degree):
            matrix[orders + k, j] = _falling(j, k) * h ** (j - k)
    return matrix


def polynomial_derivatives(coefficients: NDArray[np.float64], t_s: float, max_order: int = 4) -> NDArray[np.float64]:
    """Derivatives 0..`max_order` (`(max_order+1) x A`) at local time `t_s` of polynomials `C x A` (ascending)."""
    degree = coefficients.shape[0]
    out = np.zeros((max_order + 1, coefficients.shape[1]))
    powers = t_s ** np.arange(degree, dtype=np.float64)
    for k in range(min(max_order, degree - 1) + 1):
        factors = np.array([_falling(j, k) for j in range(k, degree)], dtype=np.float64)
        out[k] = (factors * powers[: degree - k]) @ coefficients[k:]
    return out


def _falling(n: int, k: int) -> float:
    result = 1.0
    for i in range(k):
        result *= n - i
    return result


@dataclass(frozen=True)
class SampledTrajectory:
    """Samples of x, y, z and yaw with their first two derivatives.

    Attributes:
        times_s: `K` strictly increasing sample times from the trajectory's start (first is 0).
        values: `3 x K x 4`: derivative order (position, velocity, acceleration), sample, axis (x, y, z, yaw).
    """

    times_s: NDArray[np.float64]
    values: NDArray[np.float64]

    def __post_init__(self) -> None:
        times, values = self.times_s, self.values
        if times.ndim != 1 or times.shape[0] < 2:
            raise ValueError(f"a sampled trajectory needs at least 2 sample times, got shape {times.shape}")
        if values.shape != (SAMPLED_ORDERS, times.shape[0], 4):
            raise ValueError(f"values must be 3 x {times.shape[0]} x 4 (order, sample, axis), got {values.shape}")
        if not (np.isfinite(times).all() and np.isfinite(values).all()):
            raise ValueError("sample times and values must be finite")
        if not (np.diff(times) > 0).all():
            raise ValueError("sample times must be strictly increasing")

    @classmethod
    def from_trajectory(cls, trajectory: Trajectory, samples_per_segment: int) -> SampledTrajectory:
        """Sample each segment of a trajectory at `samples_per_segment` equal steps (knots included)."""
        if samples_per_segment < 1:
            raise ValueError(f"samples_per_segment must be >= 1, got {samples_per_segment}")
        knots = trajectory.knot_times_s
        fractions = np.arange(samples_per_segment) / samples_per_segment
        times = (knots[:-1, None] + trajectory.segment_times_s[:, None] * fractions[None, :]).reshape(-1)
        times = np.append(times, knots[-1])
        values = trajectory.derivatives(times, max_order=SAMPLED_ORDERS - 1)
        return cls(times_s=times - times[0], values=values)

    @property
    def duration_s(self) -> float:
        """Time of the last sample."""
        return float(self.times_s[-1])

    def derivatives(self, t_s: float) -> NDArray[np.float64]:
        """Position to snap (`5 x 4`) at time `t_s`; before 0 the start, after the end the end state at rest."""
        if t_s >= self.duration_s:
            out = np.zeros((5, 4))
            out[0] = self.values[0, -1]
            return out
        t = max(float(t_s), 0.0)
        i = int(np.searchsorted(self.times_s, t, side="right")) - 1
        i = min(max(i, 0), self.times_s.shape[0] - 2)
        h = float(self.times_s[i + 1] - self.times_s[i])
        coefficients = quintic_hermite_coefficients(self.values[:, i, :], self.values[:, i + 1, :], h)
        return polynomial_derivatives(coefficients, t - float(self.times_s[i]))

    def positions(self) -> NDArray[np.float64]:
        """`K x 3` sampled positions."""
        return self.values[0, :, :3]

    def speeds_m_s(self) -> NDArray[np.float64]:
        """`K` sampled speeds."""
        return np.linalg.norm(self.values[1, :, :3], axis=1)

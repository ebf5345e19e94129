"""Piecewise 7th-order polynomial trajectories in x, y, z and yaw: evaluation and JSON."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from minsnap.basis import NUM_COEFFS, falling_factorial
from minsnap.errors import TrajectoryInputError
from minsnap.validation import as_segment_times

AXES = ("x", "y", "z", "yaw")
JSON_FORMAT = "minsnap.trajectory/1"

# _DERIV_FACTORS[k, j]: factor of t^(j-k) in the k-th derivative of t^j.
_DERIV_FACTORS = np.array([[falling_factorial(j, k) for j in range(NUM_COEFFS)] for k in range(NUM_COEFFS)], float)


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A piecewise polynomial through waypoints.

    Attributes:
        segment_times_s: `M`-dim durations of the segments, all > 0.
        coefficients: `M x 4 x 8` monomial coefficients in local segment time ``t in [0, T_i]``,
            ascending powers, for the axes x, y, z (m) and yaw (rad).
        waypoints: `(M+1) x 4` waypoints (x, y, z, yaw) the trajectory passes through at the knots.
    """

    segment_times_s: NDArray[np.float64]
    coefficients: NDArray[np.float64]
    waypoints: NDArray[np.float64]

    @property
    def num_segments(self) -> int:
        """Number of polynomial segments."""
        return int(self.segment_times_s.shape[0])

    @property
    def duration_s(self) -> float:
        """Total duration of the trajectory."""
        return float(self.segment_times_s.sum())

    @property
    def knot_times_s(self) -> NDArray[np.float64]:
        """`(M+1)`-dim times at which the trajectory reaches each waypoint, starting at 0."""
        return np.concatenate([[0.0], np.cumsum(self.segment_times_s)])

    def segment_index(self, times_s: NDArray[np.float64]) -> NDArray[np.intp]:
        """Index of the segment containing each time (times outside [0, duration] use the end segments)."""
        index = np.searchsorted(self.knot_times_s, times_s, side="right") - 1
        return np.clip(index, 0, self.num_segments - 1)

    def derivatives(self, times_s: ArrayLike, max_order: int = 4) -> NDArray[np.float64]:
        """Evaluate derivatives 0..`max_order` at the given times.

        Args:
            times_s: `K`-dim times; values outside ``[0, duration]`` are clamped to the ends.
            max_order: highest derivative (4 = snap, at most 7).

        Returns:
            A `(max_order+1) x K x 4` array: derivative order, time, axis (x, y, z, yaw).
        """
        if not 0 <= max_order < NUM_COEFFS:
            raise ValueError(f"max_order must be in 0..{NUM_COEFFS - 1}, got {max_order}")
        t = np.clip(np.atleast_1d(np.asarray(times_s, dtype=np.float64)), 0.0, self.duration_s)
        seg = self.segment_index(t)
        local = t - self.knot_times_s[seg]
        coeffs = self.coefficients[seg]  # K x 4 x 8
        powers = local[:, None] ** np.arange(NUM_COEFFS)[None, :]  # K x 8
        out = np.empty((max_order + 1, t.shape[0], 4))
        for k in range(max_order + 1):
            weights = np.zeros_like(powers)
            weights[:, k:] = powers[:, : NUM_COEFFS - k] * _DERIV_FACTORS[k, k:]
            out[k] = np.einsum("kac,kc->ka", coeffs, weights)
        return out

    def time_scaled(self, factor: float) -> Trajectory:
        """The same path flown `factor` times slower: segment times x factor, each derivative of order r / factor^r.

        Rest to rest (zero velocity, acceleration and jerk at both ends) this is exactly the minimum-snap
        trajectory of the scaled times (the snap cost scales uniformly), so no new solve is needed; with a
        moving end it is still a smooth trajectory through the waypoints, but not that solve's.
        """
        if not (math.isfinite(factor) and factor > 0.0):
            raise ValueError(f"factor must be finite and > 0, got {factor}")
        powers = float(factor) ** -np.arange(NUM_COEFFS, dtype=np.float64)
        return Trajectory(
            segment_times_s=self.segment_times_s * factor,
            coefficients=self.coefficients * powers,
            waypoints=self.waypoints,
        )

    def position(self, times_s: ArrayLike) -> NDArray[np.float64]:
        """`K x 3` positions (m) at the given times."""
        return self.derivatives(times_s, max_order=0)[0, :, :3]

    def sample(self, rate_hz: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Sample uniformly at `rate_hz` including the end time; return times `K` and derivatives `5 x K x 4`."""
        count = max(2, int(np.ceil(self.duration_s * rate_hz)) + 1)
        times = np.linspace(0.0, self.duration_s, count)
        return times, self.derivatives(times, max_order=4)

    def snap_cost(self, include_yaw: bool = False) -> float:
        """Integral of the squared snap over the trajectory, summed over x, y, z (and yaw if asked)."""
        axes = 4 if include_yaw else 3
        total = 0.0
        for k, duration in enumerate(self.segment_times_s):
            snap_coeffs = self.coefficients[k, :axes, 4:] * _DERIV_FACTORS[4, 4:]
            # snap(t) = sum_m s_m t^m for m = 0..3; integrate its square on [0, T].
            m = np.arange(4)
            power = m[:, None] + m[None, :] + 1
            gram = duration**power / power
            total += float(np.einsum("am,mn,an->", snap_coeffs, gram, snap_coeffs))
        return total

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary that `from_dict` reads back exactly."""
        return {
            "format": JSON_FORMAT,
            "axes": list(AXES),
            "polynomial_order": NUM_COEFFS - 1,
            "coefficient_basis": "monomial in local segment time t (s), ascending powers",
            "segment_times_s": self.segment_times_s.tolist(),
            "waypoints": self.waypoints.tolist(),
            "coefficients": self.coefficients.tolist(),
        }

    def to_json(self) -> str:
        """Serialise to a JSON string (floats written with full precision)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        """Read a dictionary written by `to_dict`; raises `TrajectoryInputError` if it is malformed."""
        if not isinstance(data, dict):
            raise TrajectoryInputError(f"a trajectory must be a JSON object, got {type(data).__name__}")
        if data.get("format") != JSON_FORMAT:
            raise TrajectoryInputError(f"expected a '{JSON_FORMAT}' trajectory, got format {data.get('format')!r}")
        try:
            times = np.asarray(data["segment_times_s"], dtype=np.float64)
            coeffs = np.asarray(data["coefficients"], dtype=np.float64)
            waypoints = np.asarray(data["waypoints"], dtype=np.float64)
        except KeyError as exc:
            raise TrajectoryInputError(f"trajectory JSON is missing the field {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise TrajectoryInputError(f"trajectory JSON fields must be rectangular arrays of numbers: {exc}") from exc
        if times.ndim != 1:
            raise TrajectoryInputError(f"segment_times_s must be a list of numbers, got shape {times.shape}")
        m = times.shape[0]
        if coeffs.shape != (m, 4, NUM_COEFFS) or waypoints.shape != (m + 1, 4):
            raise TrajectoryInputError(
                f"trajectory JSON shapes disagree: {m} segment times, coefficients {coeffs.shape} "
                f"(want {(m, 4, NUM_COEFFS)}), waypoints {waypoints.shape} (want {(m + 1, 4)})"
            )
        if not (np.all(np.isfinite(coeffs)) and np.all(np.isfinite(waypoints))):
            raise TrajectoryInputError("trajectory JSON coefficients and waypoints must all be finite")
        as_segment_times(times, m + 1)
        return cls(segment_times_s=times, coefficients=coeffs, waypoints=waypoints)

    @classmethod
    def from_json(cls, text: str) -> Trajectory:
        """Parse a JSON string written by `to_json`; raises `TrajectoryInputError` if it is malformed."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise TrajectoryInputError(f"trajectory is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

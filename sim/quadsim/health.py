"""The vehicle's envelope, watched: is it flying its plan, or has it crashed, flipped or flown away?

`EnvelopeMonitor` is pure (no ROS, no I/O): each `update` takes the time, the vehicle's position,
velocity and tilt, the reference it should be at (if a plan is known) and whether a plan is active,
and returns a `HealthReport` with a level and a message (the tracking error counts whenever a reference is
given: after a plan's end the reference is its last point, where the vehicle should hold):

- ERROR while something is wrong now: the tracking error exceeds `max_tracking_error_m`, the speed
  exceeds `max_speed_m_s` (the vehicle's), the tilt exceeds `max_tilt_rad` (flipped), or the vehicle
  is on the ground (below `ground_height_m`, slower than `ground_speed_m_s`) more than
  `ground_distance_m` from its reference.
- WARN while a recent problem lasts: within the last `recent_s` there was an ERROR, a tracking error
  above `warn_tracking_error_m`, or a problem the caller noted (`note_problem`: a refused input).
  A WARN ends `recent_s` after its cause; it is never a count of the past.
- OK otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray


class Level(IntEnum):
    """Diagnostic levels, with the values of diagnostic_msgs/DiagnosticStatus (OK 0, WARN 1, ERROR 2)."""

    OK = 0
    WARN = 1
    ERROR = 2


@dataclass(frozen=True)
class EnvelopeLimits:
    """Bounds of the flight envelope (see the module docstring)."""

    max_tracking_error_m: float = 1.0
    warn_tracking_error_m: float = 0.3
    max_speed_m_s: float = 10.0
    max_tilt_rad: float = math.radians(60.0)
    ground_height_m: float = 0.1
    ground_speed_m_s: float = 0.3
    ground_distance_m: float = 1.0
    recent_s: float = 5.0

    def __post_init__(self) -> None:
        values = {
            "max_tracking_error_m": self.max_tracking_error_m,
            "warn_tracking_error_m": self.warn_tracking_error_m,
            "max_speed_m_s": self.max_speed_m_s,
            "max_tilt_rad": self.max_tilt_rad,
            "ground_speed_m_s": self.ground_speed_m_s,
            "ground_distance_m": self.ground_distance_m,
            "recent_s": self.recent_s,
        }
        bad = [name for name, value in values.items() if not (math.isfinite(value) and value > 0.0)]
        if bad or not math.isfinite(self.ground_height_m):
            raise ValueError(f"envelope limits must be finite and > 0 (ground_height_m finite): {bad or self}")
        if self.warn_tracking_error_m > self.max_tracking_error_m:
            raise ValueError("warn_tracking_error_m must not exceed max_tracking_error_m")


@dataclass(frozen=True)
class HealthReport:
    """One verdict: level, a message that says why, and the figures it was made from (nan: unknown)."""

    level: Level
    message: str
    tracking_error_m: float = math.nan
    speed_m_s: float = math.nan
    tilt_rad: float = math.nan


def tilt_of(rotation: ArrayLike) -> float:
    """Angle (rad) between the body z axis and the world's up axis: 0 level, pi upside down."""
    r = np.asarray(rotation, dtype=np.float64)
    return float(math.acos(min(1.0, max(-1.0, float(r[2, 2])))))


class EnvelopeMonitor:
    """See the module docstring."""

    def __init__(self, limits: EnvelopeLimits | None = None) -> None:
        self.limits = limits or EnvelopeLimits()
        self._recent: tuple[float, str] | None = None  # time and message of the latest problem
        self.last = HealthReport(Level.WARN, "no vehicle state yet")

    def note_problem(self, time_s: float, message: str) -> None:
        """A problem seen by the caller (a refused input): WARN for `recent_s` from `time_s`."""
        self._recent = (float(time_s), message)

    def recent_problem(self, time_s: float) -> str:
        """The latest problem within `recent_s` of `time_s`, or ""."""
        if self._recent is None:
            return ""
        then, message = self._recent
        if -self.limits.recent_s <= time_s - then <= self.limits.recent_s:
            return f"{message} ({max(0.0, time_s - then):.1f} s ago)"
        return ""

    def update(
        self,
        time_s: float,
        position_m: ArrayLike,
        velocity_m_s: ArrayLike,
        tilt_rad: float,
        reference_m: ArrayLike | None,
        plan_active: bool,
    ) -> HealthReport:
        """The verdict on the vehicle's state at `time_s` (see the module docstring); also kept as `last`."""
        limits = self.limits
        position = np.asarray(position_m, dtype=np.float64)[:3]
        velocity = np.asarray(velocity_m_s, dtype=np.float64)[:3]
        speed = float(np.linalg.norm(velocity))
        reference: NDArray[np.float64] | None = None
        if reference_m is not None:
            reference = np.asarray(reference_m, dtype=np.float64)[:3]
        error = float(np.linalg.norm(position - reference)) if reference is not None else math.nan
        errors: list[str] = []
        if not (np.isfinite(position).all() and np.isfinite(velocity).all() and math.isfinite(tilt_rad)):
            errors.append("vehicle state is not finite")
        if reference is not None and not error <= limits.max_tracking_error_m:
            errors.append(f"tracking error {error:.2f} m > {limits.max_tracking_error_m:g} m")
        if speed > limits.max_speed_m_s:
            errors.append(f"speed {speed:.2f} m/s > {limits.max_speed_m_s:g} m/s")
        if tilt_rad > limits.max_tilt_rad:
            errors.append(f"tilt {math.degrees(tilt_rad):.0f} deg > {math.degrees(limits.max_tilt_rad):.0f} deg")
        on_ground = bool(position[2] < limits.ground_height_m and speed < limits.ground_speed_m_s)
        if on_ground and reference is not None and error > limits.ground_distance_m:
            errors.append(f"on the ground (z {position[2]:.2f} m) {error:.2f} m from the plan")
        if errors:
            message = "; ".join(errors)
            self.note_problem(time_s, message)
            report = HealthReport(Level.ERROR, message, error, speed, tilt_rad)
        else:
            if reference is not None and error > limits.warn_tracking_error_m:
                self.note_problem(time_s, f"tracking error {error:.2f} m > {limits.warn_tracking_error_m:g} m")
            recent = self.recent_problem(time_s)
            if recent:
                report = HealthReport(Level.WARN, f"recent problem: {recent}", error, speed, tilt_rad)
            else:
                report = HealthReport(Level.OK, "tracking" if plan_active else "holding", error, speed, tilt_rad)
        self.last = report
        return report

    def current(self, time_s: float) -> HealthReport:
        """The last verdict, with a WARN that has run out (or a problem noted since) taken into account."""
        last = self.last
        if last.level == Level.ERROR:
            return last
        recent = self.recent_problem(time_s)
        if recent:
            return HealthReport(
                Level.WARN, f"recent problem: {recent}", last.tracking_error_m, last.speed_m_s, last.tilt_rad
            )
        if last.level == Level.WARN and last.message.startswith("recent problem"):
            return HealthReport(Level.OK, "ok", last.tracking_error_m, last.speed_m_s, last.tilt_rad)
        return last

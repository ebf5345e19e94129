"""Waypoint courses: seeded random courses, fixed held-out test sets, and replanning sets.

Courses follow the MFRL paper's set-up: 5 to 14 waypoints in a 9 x 9 x 3 m box with a minimum
spacing. A course is an `N x 4` array (x, y, z in m, ENU; yaw in rad). Courses whose minimum-snap
path (at constant-speed times) would dip below the floor are redrawn, since no time scale can fix
the shape of a path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minsnap import solve_min_snap
from minsnap.allocation import constant_speed_times

TEST_SET_SEED = 20_241_124
"""The held-out test courses are drawn from this seed; training never uses it."""


@dataclass(frozen=True)
class CourseSpec:
    """Where waypoints may be and how far apart."""

    box_min_m: tuple[float, float, float] = (0.0, 0.0, 0.8)
    box_max_m: tuple[float, float, float] = (9.0, 9.0, 3.0)
    min_waypoints: int = 5
    max_waypoints: int = 14
    min_spacing_m: float = 1.5
    max_yaw_step_rad: float = np.pi / 3
    min_path_height_m: float = 0.3
    """Redraw a course whose constant-speed minimum-snap path goes below this height."""

    def __post_init__(self) -> None:
        if not 2 <= self.min_waypoints <= self.max_waypoints:
            raise ValueError(
                f"need 2 <= min_waypoints <= max_waypoints, got {self.min_waypoints}, {self.max_waypoints}"
            )


def _path_min_height(course: np.ndarray) -> float:
    trajectory = solve_min_snap(course, constant_speed_times(course, 2.0))
    times = np.linspace(0.0, trajectory.duration_s, 40 * trajectory.num_segments)
    return float(trajectory.position(times)[:, 2].min())


def random_course(
    rng: np.random.Generator, spec: CourseSpec | None = None, num_waypoints: int | None = None
) -> np.ndarray:
    """One random course (`N x 4`) drawn from `rng`."""
    spec = spec or CourseSpec()
    low, high = np.asarray(spec.box_min_m), np.asarray(spec.box_max_m)
    for _ in range(1000):
        count = num_waypoints or int(rng.integers(spec.min_waypoints, spec.max_waypoints + 1))
        points = [rng.uniform(low, high)]
        while len(points) < count:
            candidate = rng.uniform(low, high)
            if np.linalg.norm(candidate - points[-1]) >= spec.min_spacing_m:
                points.append(candidate)
        yaw = np.cumsum(
            np.concatenate([[rng.uniform(-np.pi, np.pi)], rng.uniform(-1, 1, count - 1) * spec.max_yaw_step_rad])
        )
        course = np.column_stack([np.asarray(points), yaw])
        if _path_min_height(course) >= spec.min_path_height_m:
            return course
    raise RuntimeError(f"could not draw a course above {spec.min_path_height_m} m in 1000 tries; loosen {spec}")


def course_set(count: int, seed: int, spec: CourseSpec | None = None) -> list[np.ndarray]:
    """`count` courses from one seed (the same seed gives the same courses)."""
    rng = np.random.default_rng(seed)
    return [random_course(rng, spec) for _ in range(count)]


def held_out_courses(count: int = 50, spec: CourseSpec | None = None) -> list[np.ndarray]:
    """The fixed held-out test set."""
    return course_set(count, TEST_SET_SEED, spec)


def displaced_course(
    nominal: np.ndarray, displacement_m: float, rng: np.random.Generator, spec: CourseSpec | None = None
) -> np.ndarray:
    """A replanning variant of a course: every waypoint after the first moved by `displacement_m` in a random
    direction (kept inside the box and apart from its neighbours) and its heading turned by up to 45 deg."""
    spec = spec or CourseSpec()
    low, high = np.asarray(spec.box_min_m), np.asarray(spec.box_max_m)
    if displacement_m == 0.0:
        return nominal.copy()
    for _ in range(1000):
        moved = nominal.copy()
        for i in range(1, len(moved)):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            moved[i, :3] = np.clip(moved[i, :3] + displacement_m * direction, low, high)
            moved[i, 3] += rng.uniform(-np.pi / 4, np.pi / 4)
        spacing = np.linalg.norm(np.diff(moved[:, :3], axis=0), axis=1)
        if spacing.min() >= 0.5 * spec.min_spacing_m and _path_min_height(moved) >= spec.min_path_height_m:
            return moved
    raise RuntimeError(f"could not displace the course by {displacement_m} m in 1000 tries")


def replanning_set(
    nominals: list[np.ndarray], displacement_m: float, seed: int, spec: CourseSpec | None = None
) -> list[np.ndarray]:
    """One displaced variant of each nominal course (0 m returns the nominal courses)."""
    rng = np.random.default_rng(seed + round(displacement_m * 1000))
    return [displaced_course(course, displacement_m, rng, spec) for course in nominals]

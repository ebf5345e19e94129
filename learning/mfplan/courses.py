"""Waypoint courses: seeded random courses, fixed held-out test sets, replanning sets (displaced waypoints),
and moving replans (the vehicle part-way along a course, in motion).

Courses follow the MFRL paper's set-up: 5 to 14 waypoints in a 9 x 9 x 3 m box with a minimum
spacing. A course is an `N x 4` array (x, y, z in m, ENU; yaw in rad). Courses whose minimum-snap
path (at constant-speed times) would dip below the floor are redrawn, since no time scale can fix
the shape of a path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minsnap import EndpointState, solve_min_snap
from minsnap.allocation import constant_speed_times, trapezoidal_times

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


@dataclass(frozen=True)
class MovingReplan:
    """A replan in the air: the vehicle's state part-way along a course, and the waypoints it still has to fly
    (displaced like a replanning set's), starting at the vehicle's position."""

    waypoints: np.ndarray
    """`M x 4`: the vehicle's position and yaw, then the remaining waypoints."""
    start: EndpointState
    """The vehicle's velocity and acceleration there."""
    course_index: int
    """The nominal course it was cut from."""


REPLAN_FLIGHT_SPEED_M_S = 3.0
"""Cruise speed (and acceleration, m/s^2) of the flight a moving replan interrupts."""


def moving_replan(
    nominal: np.ndarray,
    displacement_m: float,
    rng: np.random.Generator,
    course_index: int = 0,
    spec: CourseSpec | None = None,
) -> MovingReplan:
    """Interrupt a flight of `nominal` (trapezoidal times at 3 m/s and 3 m/s^2) at a random time that leaves at
    least two waypoints ahead and 0.3 m to the next one; replan from the vehicle's state to the remaining
    waypoints, displaced by `displacement_m` (`displaced_course`)."""
    spec = spec or CourseSpec()
    if nominal.shape[0] < 3:
        raise ValueError(f"a moving replan needs a course of at least 3 waypoints, got {nominal.shape[0]}")
    speed = REPLAN_FLIGHT_SPEED_M_S
    flight = solve_min_snap(nominal, trapezoidal_times(nominal, max_speed_m_s=speed, max_accel_m_s2=speed))
    knots = flight.knot_times_s
    for _ in range(1000):
        t = float(rng.uniform(0.1 * knots[1], knots[-2]))
        segment = int(flight.segment_index(np.array([t]))[0])
        state = flight.derivatives(np.array([t]), max_order=2)[:, 0, :]
        ahead = nominal[segment + 1 :]
        if np.linalg.norm(ahead[0, :3] - state[0, :3]) < 0.3 or len(ahead) < 2:
            continue
        course = np.vstack([state[0], ahead])
        try:
            course = displaced_course(course, displacement_m, rng, spec)
        except RuntimeError:
            continue
        start = EndpointState(velocity=state[1, :3].copy(), acceleration=state[2, :3].copy())
        return MovingReplan(course, start, course_index)
    raise RuntimeError("could not cut a moving replan from the course in 1000 tries")


def moving_replanning_set(
    nominals: list[np.ndarray], displacement_m: float, seed: int, spec: CourseSpec | None = None
) -> list[MovingReplan]:
    """One moving replan of each nominal course (seeded; displaced by `displacement_m`)."""
    rng = np.random.default_rng(seed + 500_000 + round(displacement_m * 1000))
    return [moving_replan(course, displacement_m, rng, i, spec) for i, course in enumerate(nominals)]

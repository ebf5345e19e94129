"""The certified planner bounds what a user relies on: speed, acceleration, excursion, ground, geofence.

Every check here is independent of the certificate's own code: trajectories are sampled densely and
measured directly, so a certificate that under-bounds (or a planner that skips it) fails these tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from mfplan.courses import course_set, displaced_course
from mfplan.inflight import REPLANNER_LIMITS, fly_moves, min_speed_after
from mfplan.planner import WAYPOINT_REACHED_REPAIR, CertifiedPlanner, PlanResult
from minsnap import EndpointState, Trajectory
from quadsim.certificate import SafetyLimits
from quadsim.courses import load_course
from quadsim.geofence import BoxGeofence

# The user's reproducer: a replan from differentiated odometry during frequent switches. The old planner
# certified it by a 3.57x time-scale search, and its path left the waypoints' box by 7.76 m at 9.5 m/s.
REPRODUCER = np.array([[0.746, -0.289, 3.112, 0.0], [-0.841, 0.849, 1.324, 2.963], [-0.711, 0.023, 0.632, -1.348]])
REPRODUCER_START = EndpointState(
    velocity=np.array([-2.721, -0.001, 1.361]), acceleration=np.array([-11.868, 13.224, -7.125])
)
DENSE_STEP_S = 1e-3


def measured(trajectory: Trajectory) -> dict[str, float]:
    """Speed, acceleration and lowest point of a trajectory, sampled every millisecond."""
    times = np.arange(0.0, trajectory.duration_s + DENSE_STEP_S, DENSE_STEP_S)
    d = trajectory.derivatives(times, max_order=2)
    return {
        "speed": float(np.linalg.norm(d[1, :, :3], axis=1).max()),
        "acceleration": float(np.linalg.norm(d[2, :, :3], axis=1).max()),
        "min_z": float(d[0, :, 2].min()),
    }


def excursion_m(trajectory: Trajectory, region: np.ndarray) -> float:
    """Largest distance of the densely sampled path outside the axis-aligned box of `region`'s points."""
    times = np.arange(0.0, trajectory.duration_s + DENSE_STEP_S, DENSE_STEP_S)
    positions = trajectory.position(times)[:, :3]
    low, high = region[:, :3].min(axis=0), region[:, :3].max(axis=0)
    outside = np.maximum(low - positions, 0.0) + np.maximum(positions - high, 0.0)
    return float(np.linalg.norm(outside, axis=1).max())


def assert_within_limits(planner: CertifiedPlanner, result: PlanResult, waypoints: np.ndarray) -> None:
    """A feasible plan meets every limit when measured from outside; a refused one names its constraint."""
    if not result.feasible:
        assert result.trajectory is None
        assert result.constraint, result.reason
        assert result.constraint in result.reason
        return
    trajectory = result.trajectory
    assert trajectory is not None
    limits, vehicle = planner.limits, planner.vehicle
    figures = measured(trajectory)
    assert figures["speed"] <= (limits.max_speed_m_s or vehicle.max_speed_m_s) + 1e-9
    assert figures["acceleration"] <= (limits.max_acceleration_m_s2 or vehicle.max_acceleration_m_s2) + 1e-9
    assert figures["min_z"] >= limits.ground_clearance_m - 1e-9
    assert excursion_m(trajectory, waypoints) <= limits.max_excursion_m + 1e-9


@pytest.fixture(scope="module")
def shipped() -> CertifiedPlanner:
    return CertifiedPlanner.from_checkpoint()


def test_the_reproducer_is_refused_or_repaired_within_its_bounds(shipped: CertifiedPlanner) -> None:
    result = shipped.plan(REPRODUCER, REPRODUCER_START)
    assert_within_limits(shipped, result, REPRODUCER)
    if result.feasible:
        assert result.trajectory is not None
        start = result.trajectory.derivatives([0.0], max_order=2)[:, 0, :3]
        np.testing.assert_allclose(start[0], REPRODUCER[0, :3], atol=1e-9)  # the start state stays exact
        np.testing.assert_allclose(start[1], REPRODUCER_START.velocity, atol=1e-6)
        np.testing.assert_allclose(start[2], REPRODUCER_START.acceleration, atol=1e-5)


def _training_like(count: int, seed: int) -> list[tuple[np.ndarray, EndpointState]]:
    """Courses drawn as the trainer draws them: a third start from a moving vehicle (0.5-2.5 m/s, N(0, 1) m/s^2)."""
    rng = np.random.default_rng(seed)
    drawn = []
    for waypoints in course_set(count, seed):
        start = EndpointState()
        if rng.random() < 1.0 / 3.0:
            first = waypoints[1, :3] - waypoints[0, :3]
            direction = first / np.linalg.norm(first) + 0.5 * rng.normal(size=3)
            start = EndpointState(
                velocity=rng.uniform(0.5, 2.5) * direction / np.linalg.norm(direction),
                acceleration=rng.normal(scale=1.0, size=3),
            )
        drawn.append((waypoints, start))
    return drawn


@pytest.mark.slow
def test_no_course_drawn_like_the_training_set_is_refused(shipped: CertifiedPlanner) -> None:
    refused = []
    for waypoints, start in _training_like(120, seed=2024):
        result = shipped.plan(waypoints, start)
        assert_within_limits(shipped, result, waypoints)
        if not result.feasible:
            refused.append(result.reason)
    assert not refused, refused


@pytest.mark.slow
def test_replans_from_a_moving_reference_stay_within_bounds_and_keep_the_start(shipped: CertifiedPlanner) -> None:
    """In-flight replans as the replanner makes them: start at the old plan's reference, waypoints moved 1-3 m."""
    rng = np.random.default_rng(7)
    refused = 0
    for nominal in course_set(40, seed=99):
        first = shipped.plan(nominal)
        assert first.feasible
        assert first.trajectory is not None
        when = rng.uniform(0.1, 0.9) * first.trajectory.duration_s
        d = first.trajectory.derivatives([when], max_order=2)[:, 0]
        ahead = first.trajectory.waypoints[first.trajectory.knot_times_s > when]
        moved = displaced_course(np.vstack([nominal[:1], ahead]), rng.uniform(1.0, 3.0), rng)[1:]
        points = np.vstack([np.append(d[0, :3], d[0, 3]), moved])
        start = EndpointState(velocity=d[1, :3], acceleration=d[2, :3])
        result = shipped.plan(points, start)
        assert_within_limits(shipped, result, points)
        refused += not result.feasible
        if result.feasible:
            assert result.trajectory is not None
            start_state = result.trajectory.derivatives([0.0], max_order=2)[:, 0, :3]
            np.testing.assert_allclose(start_state[1], d[1, :3], atol=1e-6)
            np.testing.assert_allclose(start_state[2], d[2, :3], atol=1e-5)
    # Most are served; the rest are refused for a named shape limit (34 of 40 served when this was written: 3 would
    # swing more than 2 m out of their box, 3 would dip below the floor; waypoints moved 1-3 m near a moving vehicle).
    # 33 of 40 since the recalibration for the drag-aware controller (Step 10): margin 1.0 instead of 1.222, so the
    # plans from rest are faster and the replans start from a faster vehicle. 29 of 40 since plans from rest are
    # tightened to the certificate's boundary (2026-12-06): 7 would swing more than 2 m out of their box, 3 dip
    # below the floor, 1 cannot slow from the vehicle's speed in time (the untightened planner: 4, 3 and 0). 34 of
    # 40 since the first-segment repair (2026-12-07; it serves 8): 4 would swing out of their box, 2 dip too low.
    # 38 of 40 since the pass radius grows with the start speed and the first segment may be 4x (2026-12-07; they
    # serve 4): 2 would swing out of their box.
    assert refused <= 2


@pytest.mark.parametrize(
    ("limits", "constraint"),
    [
        (SafetyLimits(max_speed_m_s=0.05), "speed"),
        (SafetyLimits(geofence=BoxGeofence(min_enu_m=(-1.0, -1.0, 0.0), max_enu_m=(1.0, 1.0, 2.0))), "geofence"),
    ],
)
def test_a_refusal_names_the_constraint(limits: SafetyLimits, constraint: str) -> None:
    planner = CertifiedPlanner.from_checkpoint(limits=limits, max_time_scale=2.0)
    result = planner.plan(course_set(1, seed=5)[0])
    assert not result.feasible
    assert result.constraint == constraint
    assert constraint in result.reason


def test_an_underground_course_is_refused_for_ground_clearance(shipped: CertifiedPlanner) -> None:
    underground = course_set(1, seed=5)[0] - np.array([0.0, 0.0, 10.0, 0.0])
    result = shipped.plan(underground)
    assert not result.feasible
    assert result.constraint == "ground clearance"


def test_a_lower_speed_limit_is_met(shipped: CertifiedPlanner) -> None:
    planner = CertifiedPlanner.from_checkpoint(limits=SafetyLimits(max_speed_m_s=1.5))
    for waypoints in course_set(5, seed=3):
        result = planner.plan(waypoints)
        assert result.feasible, result.reason
        assert_within_limits(planner, result, waypoints)
        assert measured(result.trajectory)["speed"] <= 1.5  # type: ignore[arg-type]


def test_a_search_past_its_deadline_is_refused_and_says_so(shipped: CertifiedPlanner) -> None:
    """A replan that would come late is refused (the vehicle has flown on); one that passes at once is not."""
    waypoints = course_set(1, seed=5)[0]
    slow = SafetyLimits(max_speed_m_s=1.0)
    hurried = CertifiedPlanner.from_checkpoint(deadline_s=1e-9, limits=slow, tighten=False)
    late = hurried.plan(waypoints)
    assert not late.feasible
    assert "deadline" in late.reason
    assert late.feasibility_checks == 1  # the policy's own times are always checked, then the search stops
    # Tightened, the first check is at the estimated boundary (speed scales exactly): it passes, no search needed.
    at_once = CertifiedPlanner.from_checkpoint(deadline_s=1e-9, limits=slow).plan(waypoints)
    assert at_once.feasible
    assert at_once.feasibility_checks == 1
    roomy = CertifiedPlanner.from_checkpoint(deadline_s=10.0, limits=SafetyLimits(max_speed_m_s=1.0))
    assert roomy.plan(waypoints).feasible


def test_a_start_state_beyond_the_limits_is_refused_before_solving(shipped: CertifiedPlanner) -> None:
    result = shipped.plan(REPRODUCER, REPRODUCER_START)  # its start acceleration tilts the thrust 81 deg
    assert not result.feasible
    assert result.constraint == "tilt"
    assert result.feasibility_checks == 0
    too_fast = shipped.plan(REPRODUCER, EndpointState(velocity=np.array([11.0, 0.0, 0.0])))
    assert too_fast.constraint == "speed"


def test_a_replan_moving_later_waypoints_is_served_at_every_moment_of_the_flown_plan(shipped: CertifiedPlanner) -> None:
    """A user moves the goals after the next one while the vehicle flies: whenever the replan comes (the node's
    timing varies with load), it starts from the reference and is certified, not refused. Near the next waypoint
    the start's velocity and turning acceleration leave a first segment of the policy's length no way through
    (scaling all segments keeps its share), which refused such replans before the first-segment repair."""
    course = np.array([[0.0, 0.0, 1.0, 0.0], [2.0, 1.0, 1.5, 0.0], [4.0, -1.0, 2.0, 0.0], [6.0, 0.0, 1.5, 0.0]])
    first = shipped.plan(course)
    assert first.feasible
    assert first.trajectory is not None
    moved = course.copy()
    moved[2:, :3] += np.array([0.0, 0.5, 0.2])
    refused = []
    for when in np.arange(0.5, 0.95 * first.trajectory.duration_s, 0.03):
        d = first.trajectory.derivatives([when], max_order=3)[:, 0]
        start = EndpointState(velocity=d[1, :3], acceleration=d[2, :3], jerk=d[3, :3])
        points = np.vstack([d[0], moved[1:]])
        result = shipped.plan(points, start)
        assert_within_limits(shipped, result, points)
        if not result.feasible:
            refused.append(f"t={when:.2f} s: {result.reason}")
    assert not refused, refused


@pytest.mark.parametrize("tighten_moving", [False, True])
def test_chained_replans_of_the_demo_mission_are_served(tighten_moving: bool) -> None:
    """Moves of the waypoints one after another, each replanned from the last replan, at the node's limits
    (`mfplan.inflight`): a replan often starts just before (or, after the plan's lead, just past) the waypoint the
    vehicle was approaching when the move was sent, at 3-5 m/s. Before the speed-scaled pass radius and the 4x
    first segment (2026-12-07), 6 of 60 such replans were refused with the shipped planner and 14 of 60 with
    tightened replans in motion (excursion, ground clearance, tilt at every time scale); with them 0 and 2; with a
    close waypoint taken as reached first (that evening), 0 and 4 (all 4 of the 180 moves `bench/replan_chain.py`
    refuses on 60 seeds, against 5 of 180 without it)."""
    options = {"tighten_moving": True, "moving_safety_margin": 1.0} if tighten_moving else {}
    planner = CertifiedPlanner.from_checkpoint(limits=REPLANNER_LIMITS, **options)
    refusals = []
    for seed in range(20):
        for replan in fly_moves(planner, load_course(), seed):
            assert_within_limits(planner, replan.result, replan.points)
            if not replan.result.feasible:
                refusals.append(replan.result.reason)
    assert len(refusals) <= (4 if tighten_moving else 0), refusals


def test_a_waypoint_half_a_second_ahead_is_taken_as_reached_rather_than_braked_for() -> None:
    """A replan in motion takes its first waypoint as reached when the vehicle would get there within 0.5 s (PX4's
    2 m acceptance radius at 4 m/s), before planning through it; until 2026-12-07 it did so within 0.3 s, and
    only when no plan through it passed. On the demo mission's chained moves (20 seeds) today's planner serves as
    many replans and brakes below 0.5 m/s less often (5 near stops against 8). A waypoint is
    only ever skipped within that horizon."""
    near_stops, served = {}, {}
    for name, options in (("before", {"pass_horizon_s": 0.3, "reach_close_waypoint_first": False}), ("today", {})):
        planner = CertifiedPlanner.from_checkpoint(limits=REPLANNER_LIMITS, **options)
        replans = [replan for seed in range(20) for replan in fly_moves(planner, load_course(), seed)]
        speeds = [min_speed_after(r.result) for r in replans if r.result.feasible]
        near_stops[name] = sum(speed < 0.5 for speed in speeds)
        served[name] = len(speeds)
        for replan in replans:
            if replan.result.feasible and replan.result.repair.startswith(WAYPOINT_REACHED_REPAIR):
                ahead = float(np.linalg.norm(replan.points[1, :3] - replan.points[0, :3]))
                horizon = planner.pass_horizon_s * replan.start_speed_m_s
                assert ahead <= max(planner.pass_radius_m, horizon) + 1e-9
    assert served["today"] >= served["before"]
    assert near_stops["today"] < near_stops["before"], near_stops


def test_a_close_waypoint_is_flown_through_when_the_user_asks_for_every_waypoint() -> None:
    """`reach_close_waypoint_first=False` (the replanner's parameter of that name): a close first waypoint through
    which a plan passes is flown through, reached after t = 0; by default it is taken as reached (at t = 0) and the
    status's `repair` says so; a waypoint beyond the horizon is flown through either way."""
    course = np.array([[0.0, 0.0, 2.0], [1.5, 0.0, 2.0], [5.0, 1.0, 2.5], [8.0, 0.0, 2.0]])
    start = EndpointState(velocity=np.array([4.0, 0.0, 0.0]))  # 1.5 m at 4 m/s: 0.375 s ahead
    through = CertifiedPlanner.from_checkpoint(limits=REPLANNER_LIMITS, reach_close_waypoint_first=False)
    reached = CertifiedPlanner.from_checkpoint(limits=REPLANNER_LIMITS)
    flown = through.plan(course, start)
    assert flown.feasible
    assert flown.repair == ""
    assert flown.waypoint_times_s[1] > 0.0
    taken = reached.plan(course, start)
    assert taken.feasible
    assert taken.repair.startswith(WAYPOINT_REACHED_REPAIR)
    assert taken.waypoint_times_s[1] == 0.0
    assert taken.certified_by in ("policy", "time-scale search")
    far = course.copy()
    far[1, 0] = 2.5  # 0.625 s ahead
    assert reached.plan(far, start).repair == ""

"""The replanner's timeline: which of the plans it sent is flown at a given time, and its reference there."""

from __future__ import annotations

import numpy as np
import pytest

from mfplan.timeline import PlanTimeline
from minsnap import solve_min_snap

S = 1_000_000_000


def _line(x0: float, x1: float, seconds: float):  # type: ignore[no-untyped-def]
    return solve_min_snap(np.array([[x0, 0, 1], [x1, 0, 1]], float), np.array([seconds]))


def test_a_plan_is_flown_from_its_start_and_the_older_one_until_then() -> None:
    timeline = PlanTimeline()
    first, second = _line(0.0, 4.0, 4.0), _line(5.0, 6.0, 1.0)
    timeline.add(0, first, now_ns=0)
    timeline.add(2 * S, second, now_ns=S)  # sent at 1 s, starting at 2 s
    assert timeline.flown_at(S + S // 2) == (0, first)
    np.testing.assert_allclose(
        timeline.reference_at(S + S // 2), first.derivatives(np.array([1.5]), max_order=3)[:, 0, :]
    )
    assert timeline.flown_at(2 * S) == (2 * S, second)
    assert timeline.latest == (2 * S, second)
    assert timeline.end_ns() == 3 * S


def test_a_new_plan_drops_the_plans_it_supersedes_and_those_already_over() -> None:
    timeline = PlanTimeline()
    a, b, c = _line(0.0, 1.0, 1.0), _line(1.0, 2.0, 1.0), _line(2.0, 3.0, 1.0)
    timeline.add(0, a, now_ns=0)
    timeline.add(3 * S, b, now_ns=S)
    timeline.add(2 * S, c, now_ns=S)  # starts before b: b is never flown
    assert len(timeline) == 2
    assert timeline.latest == (2 * S, c)
    timeline.add(4 * S, b, now_ns=3 * S)  # by then c has started: a is over
    assert len(timeline) == 2
    assert timeline.flown_at(0) == (2 * S, c)


def test_after_its_end_the_last_plan_is_held_at_rest() -> None:
    timeline = PlanTimeline()
    assert timeline.reference_at(0) is None
    timeline.add(0, _line(0.0, 2.0, 1.0), now_ns=0)
    reference = timeline.reference_at(5 * S)
    assert reference is not None
    np.testing.assert_allclose(reference[0, :3], [2.0, 0.0, 1.0], atol=1e-9)
    assert not reference[1:].any()


def test_a_plan_the_autopilot_started_late_is_found_where_the_vehicle_is() -> None:
    """PX4's bridge holds a plan until OFFBOARD is in: the vehicle flies it 1.5 s behind its stamp."""
    timeline = PlanTimeline()
    line = _line(0.0, 6.0, 6.0)
    timeline.add(0, line, now_ns=0)
    now_ns = 4 * S
    flown = line.derivatives(np.array([2.5]), max_order=0)[0, 0, :3]  # where the vehicle is: 1.5 s behind
    reference = timeline.reference_at(now_ns)
    assert reference is not None
    assert np.linalg.norm(reference[0, :3] - flown) > 0.5
    shift = timeline.resynchronise(now_ns, flown, max_delay_s=2.0, tolerance_m=0.5)
    assert shift == pytest.approx(1.5, abs=0.011)
    reference = timeline.reference_at(now_ns)
    assert reference is not None
    assert np.linalg.norm(reference[0, :3] - flown) < 0.05
    # A vehicle far from every point of the last 2 s of the plan is not matched: nothing changes.
    assert timeline.resynchronise(now_ns, flown + np.array([0.0, 3.0, 0.0]), 2.0, 0.5) is None
    assert timeline.flown_at(now_ns) == (round(shift * 1e9), line)

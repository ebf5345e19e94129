"""The envelope monitor: a crash, a flip, a fly-away are ERRORs; a WARN lasts while its cause is recent, not forever."""

from __future__ import annotations

import math

import numpy as np

from quadsim.health import EnvelopeLimits, EnvelopeMonitor, Level, tilt_of

REF = np.array([1.0, 2.0, 1.5])


def test_on_plan_is_ok() -> None:
    monitor = EnvelopeMonitor()
    report = monitor.update(1.0, REF + np.array([0.05, 0.0, 0.0]), [1.0, 0.0, 0.0], 0.1, REF, plan_active=True)
    assert report.level == Level.OK
    assert math.isclose(report.tracking_error_m, 0.05)


def test_crash_flipped_far_from_the_plan_is_an_error() -> None:
    """What the graph said OK ("tracking") to before: flipped on the ground, 790 m from the plan."""
    monitor = EnvelopeMonitor()
    report = monitor.update(5.0, [790.0, 0.0, 0.02], [0.0, 0.0, 0.0], math.pi, [0.0, 0.0, 1.0], plan_active=True)
    assert report.level == Level.ERROR
    assert "tracking error 790" in report.message
    assert "tilt 180 deg" in report.message
    assert "on the ground" in report.message


def test_each_error_alone() -> None:
    limits = EnvelopeLimits(max_speed_m_s=5.0)
    cases = {
        "tracking error": (REF + np.array([1.5, 0.0, 0.0]), [0.0, 0.0, 0.0], 0.0, REF),
        "speed": (REF, [6.0, 0.0, 0.0], 0.0, REF),
        "tilt": (REF, [0.0, 0.0, 0.0], math.radians(70.0), REF),
        "on the ground": (np.array([0.0, 0.0, 0.05]), [0.0, 0.0, 0.0], 0.0, np.array([0.0, 0.0, 1.2])),
    }
    for word, (position, velocity, tilt, reference) in cases.items():
        report = EnvelopeMonitor(limits).update(0.0, position, velocity, tilt, reference, plan_active=True)
        assert report.level == Level.ERROR, word
        assert word in report.message, (word, report.message)


def test_fly_away_without_a_plan_is_an_error_by_speed() -> None:
    report = EnvelopeMonitor(EnvelopeLimits(max_speed_m_s=8.0)).update(
        0.0, [16_000.0, 0.0, 50.0], [30.0, 0.0, 0.0], 0.2, None, plan_active=False
    )
    assert report.level == Level.ERROR
    assert "speed 30.00 m/s" in report.message


def test_landed_at_the_reference_is_not_an_error() -> None:
    report = EnvelopeMonitor().update(0.0, [0.0, 0.0, 0.05], [0.0, 0.0, 0.0], 0.0, [0.0, 0.0, 0.1], plan_active=False)
    assert report.level == Level.OK


def test_warn_lasts_while_recent_then_clears() -> None:
    monitor = EnvelopeMonitor(EnvelopeLimits(recent_s=5.0))
    assert monitor.update(0.0, REF + np.array([0.5, 0.0, 0.0]), [0, 0, 0], 0.0, REF, True).level == Level.WARN
    assert monitor.update(3.0, REF, [0, 0, 0], 0.0, REF, True).level == Level.WARN
    assert monitor.update(5.5, REF, [0, 0, 0], 0.0, REF, True).level == Level.OK
    # an error is followed by a WARN while it is recent, then OK: no sticky counter
    assert monitor.update(6.0, REF, [0, 0, 0], 1.5, REF, True).level == Level.ERROR
    assert monitor.update(7.0, REF, [0, 0, 0], 0.0, REF, True).level == Level.WARN
    assert monitor.update(11.5, REF, [0, 0, 0], 0.0, REF, True).level == Level.OK


def test_noted_problem_warns_for_a_while() -> None:
    monitor = EnvelopeMonitor(EnvelopeLimits(recent_s=2.0))
    monitor.update(0.0, REF, [0, 0, 0], 0.0, REF, True)
    monitor.note_problem(1.0, "path refused")
    assert monitor.current(2.0).level == Level.WARN
    assert "path refused" in monitor.current(2.0).message
    assert monitor.current(3.5).level == Level.OK


def test_tilt_of() -> None:
    assert tilt_of(np.eye(3)) == 0.0
    assert math.isclose(tilt_of(np.diag([1.0, -1.0, -1.0])), math.pi)

"""Simulation in the loop: the graph flies a course to its last waypoint, replanning in the air without a jump."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest

from mfrl_graph.flight_record import FlightRecord, read_flight
from mfrl_graph.graph import GraphOptions, build_graph
from mfrl_graph.runner import run_graph

from .conftest import next_domain

COURSE = (0.0, 0.0, 1.0, 2.5, 1.0, 1.5, 5.0, -0.5, 2.0, 7.0, 1.0, 1.5, 8.0, 3.0, 1.2)
TRACKING_BOUND_M = 0.10
MAX_ACCELERATION_M_S2 = 40.0  # thrust-to-weight about 3.7: the vehicle cannot change its velocity faster


@pytest.fixture(scope="module")
def flight(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], FlightRecord]:
    """One flight of the demo graph (as fast as the controller answers), with two in-flight replans."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(next_domain()), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    out = tmp_path_factory.mktemp("flight")
    options = GraphOptions(
        mode="sim",
        real_time_factor=0.0,
        course=COURSE,
        replan_count=2,
        bag_dir=str(out / "bag"),
        results_file=str(out / "mission.json"),
        mission_timeout_s=120.0,
    )
    outcome = run_graph(build_graph("demo", options), env=env, log_dir=out / "logs", timeout_s=150.0)
    logs = {p.name: p.read_text()[-2000:] for p in (out / "logs").glob("*.log")}
    assert outcome.code == 0, f"{outcome.reason}; logs: {logs}"
    return json.loads((out / "mission.json").read_text()), read_flight(out / "bag")


@pytest.mark.ros
@pytest.mark.sim
@pytest.mark.slow
def test_flies_the_course_to_the_last_waypoint_within_tracking_bounds(
    flight: tuple[dict[str, Any], FlightRecord],
) -> None:
    mission, record = flight
    assert mission["success"], mission["message"]
    assert mission["final_error_m"] < 0.15
    times, errors = record.tracking_error_m()
    flying = times >= record.plans[0].start_s
    assert errors[flying].max() < TRACKING_BOUND_M
    assert np.linalg.norm(record.odom_position[-1] - np.array(COURSE[-3:])) < 0.15


@pytest.mark.ros
@pytest.mark.sim
@pytest.mark.slow
def test_replans_in_flight_keep_position_and_velocity_continuous(flight: tuple[dict[str, Any], FlightRecord]) -> None:
    mission, record = flight
    moved = [e for e in mission["events"] if e["kind"] == "moved waypoints" and e["result"] == "planned"]
    assert len(moved) >= 1, mission["events"]
    courses = [e for e in mission["events"] if e["kind"] == "course" and e["result"] == "planned"]
    assert len(record.plans) == len(courses) + len(moved)  # a course refused as stale is sent again
    replan_stamps = {round(e["plan_stamp_s"], 6) for e in moved}
    replans = [p for p in record.plans if round(p.start_s, 6) in replan_stamps]
    assert len(replans) == len(moved)
    for plan in replans:
        # In the air when it replanned ...
        k = int(np.searchsorted(record.odom_t, plan.start_s))
        assert np.linalg.norm(record.odom_velocity[k]) > 0.3
        # ... the new plan starts where the vehicle is ...
        assert np.linalg.norm(plan.positions_m[0] - record.odom_position[k]) < 0.05
        # ... the reference it follows does not jump across the switch (steps of one control period) ...
        window = (record.ref_t > plan.start_s - 0.1) & (record.ref_t < plan.start_s + 0.5)
        t, p, v = record.ref_t[window], record.ref_position[window], record.ref_velocity[window]
        dt = np.diff(t)
        speed = np.linalg.norm(v[:-1], axis=1)
        assert (np.linalg.norm(np.diff(p, axis=0), axis=1) <= (speed + 1.0) * dt + 1e-3).all()
        assert (np.linalg.norm(np.diff(v, axis=0), axis=1) <= MAX_ACCELERATION_M_S2 * dt + 1e-3).all()
        # ... and neither does the vehicle's velocity.
        window = (record.odom_t > plan.start_s - 0.1) & (record.odom_t < plan.start_s + 0.5)
        dv = np.linalg.norm(np.diff(record.odom_velocity[window], axis=0), axis=1)
        assert (dv <= MAX_ACCELERATION_M_S2 * np.diff(record.odom_t[window])).all()


@pytest.mark.ros
@pytest.mark.sim
@pytest.mark.slow
def test_every_node_reports_its_figures_on_diagnostics(flight: tuple[dict[str, Any], FlightRecord]) -> None:
    _, record = flight
    expected = {
        "mfrl: replanner": {"latency_p50_ms", "plan_age_s", "planning_last_ms"},
        "mfrl: quadrotor_sim": {"real_time_factor", "missed_commands"},
        "mfrl: tracker": {"plan_age_s", "tracking_error_m", "mode"},
    }
    for name, keys in expected.items():
        assert keys <= record.diagnostics.get(name, set()), (name, record.diagnostics)

"""Simulation in the loop with the learned controller: `controller:=policy` flies the replanning course.

The shipped MDPO tracking controller (learning/policyopt/checkpoints/) takes the tracker's place in the
graph; it must reach the last waypoint through in-air replans, within a looser bound than the geometric
controller's (it tracks several times worse: bench/tracking.py).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mfrl_graph.flight_record import read_flight
from mfrl_graph.graph import GraphOptions, build_graph, shipped_controller_checkpoint
from mfrl_graph.runner import run_graph

from .conftest import next_domain
from .test_sim_flight import COURSE

LEARNED_TRACKING_BOUND_M = 0.5


@pytest.mark.ros
@pytest.mark.sim
@pytest.mark.slow
def test_learned_controller_flies_the_course_with_replans(tmp_path_factory: pytest.TempPathFactory) -> None:
    assert shipped_controller_checkpoint().is_file()
    env = {**os.environ, "ROS_DOMAIN_ID": str(next_domain()), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    out = tmp_path_factory.mktemp("policy_flight")
    options = GraphOptions(
        mode="sim",
        controller="policy",
        real_time_factor=0.0,
        course=COURSE,
        replan_count=2,
        bag_dir=str(out / "bag"),
        results_file=str(out / "mission.json"),
        mission_timeout_s=120.0,
    )
    graph = build_graph("demo", options)
    assert graph.node("tracker").executable == "policy_controller"
    outcome = run_graph(graph, env=env, log_dir=out / "logs", timeout_s=150.0)
    logs = {p.name: p.read_text()[-2000:] for p in (out / "logs").glob("*.log")}
    assert outcome.code == 0, f"{outcome.reason}; logs: {logs}"
    mission = json.loads((out / "mission.json").read_text())
    assert mission["success"], mission["message"]
    record = read_flight(out / "bag")
    assert len(record.plans) >= 2  # in-air replans were flown
    times, errors = record.tracking_error_m()
    flying = times >= record.plans[0].start_s
    assert errors[flying].max() < LEARNED_TRACKING_BOUND_M
    assert np.linalg.norm(record.odom_position[-1] - np.array(COURSE[-3:])) < 0.3

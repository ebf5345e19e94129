"""The pip-only runner: one process per node, a node that dies is reported, a stop reaches every node."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mfrl_graph.graph import GraphOptions, GraphSpec, NodeSpec, build_graph
from mfrl_graph.runner import GraphProcesses, run_graph


@pytest.mark.ros
def test_a_node_that_dies_is_reported_and_the_others_are_stopped(ros_env: dict[str, str], graph_logs: Path) -> None:
    graph = build_graph("replanner", GraphOptions())
    broken = GraphSpec(
        graph.name,
        (*graph.nodes, NodeSpec("bad_tracker", "tracker", {"kp_attitude": -1.0})),
        graph.params_file,
    )
    outcome = run_graph(broken, env=ros_env, log_dir=graph_logs, timeout_s=60.0)
    assert outcome.code == 1
    assert "bad_tracker died with exit code 2" in outcome.reason
    assert all(code is not None for code in outcome.exit_codes.values()), outcome.exit_codes
    assert "kp_attitude" in (graph_logs / "bad_tracker.log").read_text()


@pytest.mark.ros
def test_a_stop_request_ends_every_node(ros_env: dict[str, str], graph_logs: Path) -> None:
    processes = GraphProcesses(build_graph("replanner", GraphOptions()), env=ros_env, log_dir=graph_logs)
    processes.start()
    log = graph_logs / "replanner.log"
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and "policy loaded" not in log.read_text():
        time.sleep(0.1)
    threading.Timer(0.5, processes.request_stop, args=("test",)).start()
    outcome = processes.wait(timeout_s=60.0)
    assert outcome.code == 0
    assert outcome.reason == "stopped: test"
    assert outcome.exit_codes == {"replanner": 0, "quadrotor_sim": 0, "tracker": 0}

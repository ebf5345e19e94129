"""The pip-only runner: one process per node, a node that dies is reported, a stop reaches every node."""

from __future__ import annotations

import json
import socket
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


@pytest.mark.ros
def test_foxglove_flag_serves_a_websocket(ros_env: dict[str, str], graph_logs: Path) -> None:
    pytest.importorskip("foxglove", reason="foxglove-sdk is not installed")
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = GraphProcesses(
        build_graph("replanner", GraphOptions(mode="external", foxglove=True, foxglove_port=port)),
        env=ros_env,
        log_dir=graph_logs,
    )
    processes.start()
    try:
        deadline = time.monotonic() + 60.0
        connected = False
        while time.monotonic() < deadline and not connected:
            with socket.socket() as client:
                connected = client.connect_ex(("127.0.0.1", port)) == 0
            time.sleep(0.2)
        assert connected, (graph_logs / "foxglove_view.log").read_text()[-2000:]
        # A Foxglove client is told of the scene's channels.
        advertised: set[str] = set()
        with connect(f"ws://127.0.0.1:{port}", subprotocols=[Subprotocol("foxglove.sdk.v1")]) as client:
            end = time.monotonic() + 10.0
            while time.monotonic() < end and not {"/vehicle", "/flown", "/plan"} <= advertised:
                message = client.recv(timeout=5.0)
                if isinstance(message, str) and json.loads(message).get("op") == "advertise":
                    advertised.update(channel["topic"] for channel in json.loads(message)["channels"])
        assert {"/vehicle", "/flown", "/plan"} <= advertised
        assert processes.processes["foxglove_view"].poll() is None
    finally:
        processes.stop()


@pytest.mark.ros
def test_a_lifecycle_shutdown_ends_the_process_and_the_runner_reports_it(
    ros_env: dict[str, str], graph_logs: Path
) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    from .conftest import RosPeer

    processes = GraphProcesses(build_graph("replanner", GraphOptions(mode="external")), env=ros_env, log_dir=graph_logs)
    processes.start()
    peer = RosPeer("lifecycle_client")
    try:
        client = peer.node.create_client(ChangeState, "/replanner/change_state")
        assert peer.spin_until(client.service_is_ready, 30.0)
        log = graph_logs / "replanner.log"
        assert peer.spin_until(lambda: "policy loaded" in log.read_text(), 60.0)
        future = client.call_async(ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVE_SHUTDOWN)))
        assert peer.spin_until(future.done, 10.0)
        assert future.result().success
        outcome = processes.wait(timeout_s=10.0)
    finally:
        peer.close()
        processes.stop()
    assert outcome.reason == "node replanner exited (exit code 0) while the graph ran"
    assert outcome.exit_codes == {"replanner": 0}

"""Fixtures for tests with a real ROS 2 graph: localhost discovery and a distinct domain id per test."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels (extra `ros`) are not installed")

from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402

_COUNTER = itertools.count()


def next_domain() -> int:
    """A domain id no other test of this run uses, and that another run on the machine is unlikely to use.

    xdist workers get disjoint blocks of ids (100..231); inside a block the start depends on the process id,
    so two test runs at once (say, two people's) do not share a graph: nodes of one would take the
    other's latched plans.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    block = 33
    return 100 + (index % 4) * block + (os.getpid() + next(_COUNTER)) % block


@pytest.fixture
def ros_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for this test's graph: localhost discovery, its own domain id (also set in this process)."""
    domain = str(next_domain())
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return dict(os.environ)


class RosPeer:
    """A test node on its own context and single-threaded executor, with helpers that wait on events."""

    def __init__(self, name: str) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Spin until `condition()` holds or the timeout passes; return whether it held."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def close(self) -> None:
        """Stop the executor before shutting the context down (else the process may abort at exit)."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def ros_peer(ros_env: dict[str, str]) -> Iterator[RosPeer]:
    """A test node in this test's domain."""
    peer = RosPeer("test_peer")
    try:
        yield peer
    finally:
        peer.close()


class LocalNodes:
    """Nodes under test in this process (rclpy's default context) with a test node, on one executor."""

    def __init__(self) -> None:
        rclpy.init(domain_id=int(os.environ["ROS_DOMAIN_ID"]))
        self.executor = SingleThreadedExecutor()
        self.peer = rclpy.create_node("test_peer")
        self.nodes: list[Node] = [self.peer]
        self.executor.add_node(self.peer)

    def add(self, node: Node) -> Node:
        """Spin `node` with the test node."""
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Spin until `condition()` holds or the timeout passes; return whether it held."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def close(self) -> None:
        """Stop the executor, destroy the nodes, shut the context down."""
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown()


@pytest.fixture
def local_nodes(ros_env: dict[str, str]) -> Iterator[LocalNodes]:
    """Nodes in this process, in this test's domain (add them with `local_nodes.add(Node())`)."""
    nodes = LocalNodes()
    try:
        yield nodes
    finally:
        nodes.close()


@pytest.fixture
def graph_logs(tmp_path: Path) -> Path:
    """Where the nodes of a test's graph write their output."""
    return tmp_path / "logs"

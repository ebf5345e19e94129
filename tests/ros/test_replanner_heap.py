"""The replanner's heap: what it loads at configure is kept out of the garbage collector's later full collections.

A full collection of the replanner's process (torch, rclpy, the planner: about a million objects) took 150-200 ms,
every few hundred plans, in the middle of a plan; frozen at configure, a full collection scans only what was made
since.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from .conftest import LocalNodes

pytest.importorskip("torch")


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Leave the test process's collector as it was found (the replanner freezes the whole process)."""
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_a_configured_replanner_leaves_full_collections_little_to_scan(unfrozen: None, local_nodes: LocalNodes) -> None:
    from mfrl.replanner import Replanner

    node = Replanner()
    local_nodes.add(node)
    try:
        assert local_nodes.spin_until(lambda: node.active, 60.0), "the replanner did not become active"
        frozen = gc.get_freeze_count()
        assert frozen > 100_000  # the libraries and the policy, loaded before the node served its first path
        assert len(gc.get_objects()) < frozen // 20  # what a full collection still scans
        node.trigger_deactivate()
        node.trigger_cleanup()
        assert gc.get_freeze_count() == 0  # the dropped policy can be collected again
    finally:
        node.close()

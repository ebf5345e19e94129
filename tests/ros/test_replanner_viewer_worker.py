"""The replanner's viewer worker: the latest plan's viewer topics are published, after the trajectory and never
while a plan is being made (a viewer build that overlapped a plan held it up by milliseconds)."""

from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="the ROS 2 wheels (extra `ros`) are not installed")

from mfrl.replanner import ViewerWorker

from .conftest import LocalNodes


class Recorder:
    """A viewer `publish` that records what it published, and when; it can stop halfway at a checkpoint."""

    def __init__(self) -> None:
        self.worker: ViewerWorker | None = None
        self.published: list[tuple[str, float]] = []
        self.halfway = threading.Event()
        self.proceed = threading.Event()
        self.proceed.set()
        self.done = threading.Event()

    def __call__(self, name: str) -> None:
        assert self.worker is not None
        self.halfway.set()
        assert self.proceed.wait(5.0)
        self.worker.checkpoint()
        self.published.append((name, time.monotonic()))
        self.done.set()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    recorder.worker = ViewerWorker(recorder, delay_s=0.05)
    try:
        yield recorder
    finally:
        recorder.worker.stop()


def test_the_latest_plan_is_published_after_the_delay(recorder: Recorder) -> None:
    assert recorder.worker is not None
    submitted = time.monotonic()
    recorder.worker.submit("first")
    recorder.worker.submit("second")  # latest plan wins
    assert recorder.done.wait(5.0)
    time.sleep(0.1)
    assert [name for name, _ in recorder.published] == ["second"]
    assert recorder.published[0][1] - submitted >= 0.05


def test_nothing_starts_while_a_plan_is_being_made(recorder: Recorder) -> None:
    assert recorder.worker is not None
    with recorder.worker.planning():
        recorder.worker.submit("plan")
        assert not recorder.halfway.wait(0.2)  # due, but held back by the plan
    assert recorder.done.wait(5.0)


def test_work_under_way_waits_at_its_next_checkpoint_for_the_plan(recorder: Recorder) -> None:
    assert recorder.worker is not None
    recorder.proceed.clear()
    recorder.worker.submit("plan")
    assert recorder.halfway.wait(5.0)  # the build has started ...
    with recorder.worker.planning():  # ... and a plan arrives before its next checkpoint
        recorder.proceed.set()
        assert not recorder.done.wait(0.2)  # held at the checkpoint while the plan runs
    assert recorder.done.wait(5.0)


def test_replans_faster_than_the_delay_do_not_hold_the_viewer_back_for_ever(recorder: Recorder) -> None:
    assert recorder.worker is not None
    deadline = time.monotonic() + 2.0
    while not recorder.done.is_set() and time.monotonic() < deadline:
        recorder.worker.submit("replan")  # every 10 ms, faster than the 50 ms delay
        time.sleep(0.01)
    assert recorder.done.is_set()


def test_the_viewer_topics_carry_the_whole_plan(local_nodes: LocalNodes) -> None:
    """Built in chunks, the planned path still has every sample, in order, in the node's frame."""
    from builtin_interfaces.msg import Time
    from nav_msgs.msg import Path
    from visualization_msgs.msg import MarkerArray

    from mfrl import qos
    from mfrl.conversions import path_from_points
    from mfrl.replanner import VIEWER_CHUNK, Replanner

    node = Replanner()
    local_nodes.add(node)
    peer = local_nodes.peer
    paths: list[Path] = []
    markers: list[MarkerArray] = []
    peer.create_subscription(Path, "planned_path", paths.append, qos.LATCHED)
    peer.create_subscription(MarkerArray, "trajectory_markers", markers.append, qos.LATCHED)
    sender = peer.create_publisher(Path, "waypoints", qos.WAYPOINTS)
    try:
        assert local_nodes.spin_until(lambda: node.active and sender.get_subscription_count() > 0, 60.0)
        course = np.array(  # long enough for several chunks at the tightened planner's speed
            [[0.0, 0.0, 1.0], [8.0, 0.0, 2.0], [8.0, 8.0, 1.5], [0.0, 8.0, 2.0], [0.0, 0.5, 1.0], [8.0, 0.5, 2.0]]
        )
        sender.publish(path_from_points(course, "world", Time(sec=1)))
        assert local_nodes.spin_until(lambda: bool(paths and markers), 30.0)
        assert node.trajectory is not None
        duration_s = node.trajectory.duration_s
        poses = paths[-1].poses
        assert len(poses) == math.ceil(duration_s * node.config.viewer_sample_rate_hz) + 1
        assert len(poses) > 2 * VIEWER_CHUNK  # several chunks
        assert {pose.header.frame_id for pose in poses} == {"world"}
        got = np.array([[p.pose.position.x, p.pose.position.y, p.pose.position.z] for p in poses])
        expected = node.trajectory.position(np.linspace(0.0, duration_s, len(poses)))
        np.testing.assert_allclose(got, expected, atol=1e-9)
        line = markers[-1].markers[1]
        assert len(line.points) == len(line.colors) == len(poses)
    finally:
        node.close()
        gc.unfreeze()  # configure froze this test process's heap

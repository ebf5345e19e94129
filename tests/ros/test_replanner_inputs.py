"""The replanner under bad input: each bad path gets an error status and a log line, and the next good one is served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from std_srvs.srv import Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from mfrl import qos
from mfrl.conversions import path_from_points
from mfrl_graph.graph import GraphOptions, build_graph
from mfrl_graph.runner import GraphProcesses

from .conftest import RosPeer

GOOD = np.array([[0.0, 0.0, 1.0], [2.0, 1.0, 1.5], [4.0, -1.0, 2.0], [6.0, 0.0, 1.5]])


def _bad_paths() -> dict[str, tuple[PathMsg, str]]:
    """Each bad input, and a word its error message must contain."""
    stamp = Time(sec=100)
    nan = GOOD.copy()
    nan[2, 1] = np.nan
    wrong_frame = path_from_points(GOOD, "map", stamp)
    many = np.column_stack([np.linspace(0.0, 100.0, 10_000), np.zeros(10_000), np.ones(10_000)])
    shuffled = path_from_points(GOOD, "world", stamp)
    shuffled.poses[2].header.stamp = Time(sec=50)
    shuffled.poses[1].header.stamp = Time(sec=60)
    return {
        "empty": (path_from_points(np.zeros((0, 3)), "world", stamp), "empty path"),
        "one waypoint": (path_from_points(GOOD[:1], "world", stamp), "1 pose"),
        "NaN": (path_from_points(nan, "world", stamp), "non-finite"),
        "10,000 waypoints": (path_from_points(many, "world", stamp), "10000 poses"),
        "wrong frame": (wrong_frame, "frame 'map'"),
        "out-of-order pose stamps": (shuffled, "back in time"),
        "path older than the last one": (path_from_points(GOOD, "world", Time(sec=5)), "older than"),
    }


@pytest.fixture
def replanner(ros_env: dict[str, str], graph_logs: Path) -> Iterator[GraphProcesses]:
    """The replanner alone (no simulator: plans start from the path's first pose, at rest)."""
    graph = build_graph("replanner", GraphOptions(mode="external"))
    processes = GraphProcesses(graph, env=ros_env, log_dir=graph_logs)
    processes.start()
    try:
        yield processes
    finally:
        processes.stop()


@pytest.mark.ros
def test_each_bad_path_gets_an_error_and_the_next_good_one_is_served(
    replanner: GraphProcesses, ros_peer: RosPeer, graph_logs: Path
) -> None:
    statuses: list[DiagnosticStatus] = []
    trajectories: list[MultiDOFJointTrajectory] = []
    node = ros_peer.node
    node.create_subscription(DiagnosticStatus, "/replanner/status", statuses.append, qos.REQUEST)
    node.create_subscription(MultiDOFJointTrajectory, "/trajectory", trajectories.append, qos.LATCHED)
    publisher = node.create_publisher(PathMsg, "/waypoints", qos.REQUEST)
    assert ros_peer.spin_until(lambda: publisher.get_subscription_count() > 0, 30.0), "replanner never subscribed"

    # The first good path; it also waits until the lifecycle node is active (configured: policy loaded).
    def served(stamp_s: int) -> bool:
        return any(t.header.stamp.sec == stamp_s for t in trajectories)

    for _ in range(60):
        publisher.publish(path_from_points(GOOD, "world", Time(sec=10)))
        if ros_peer.spin_until(lambda: served(10), 1.0):
            break
    assert served(10), f"no trajectory for a good path; statuses: {[s.message for s in statuses]}"

    ros_peer.spin_until(lambda: False, 1.0)  # let the answers to the repeated first path arrive
    for name, (message, expected) in _bad_paths().items():
        statuses.clear()
        publisher.publish(message)

        def errors() -> list[str]:
            return [s.message for s in statuses if s.level == DiagnosticStatus.ERROR]

        assert ros_peer.spin_until(lambda: bool(errors()), 10.0), f"{name}: no error status"
        assert expected in errors()[0], f"{name}: {errors()[0]!r}"
        # ... and the node still serves the next good path.
        stamp_s = 20 + len(trajectories)
        statuses.clear()
        publisher.publish(
            path_from_points(GOOD + np.array([0.0, 0.0, 0.1 * len(trajectories)]), "world", Time(sec=stamp_s))
        )
        assert ros_peer.spin_until(lambda s=stamp_s: served(s), 10.0), f"after {name}: next good path not served"
        assert ros_peer.spin_until(lambda: any(s.message == "planned" for s in statuses), 10.0)
        assert replanner.processes["replanner"].poll() is None, f"replanner died after {name}"

    # The last plan is latched: a subscriber that comes late (a restarted controller) still gets it.
    late: list[MultiDOFJointTrajectory] = []
    node.create_subscription(MultiDOFJointTrajectory, "/trajectory", late.append, qos.LATCHED)
    assert ros_peer.spin_until(lambda: bool(late), 10.0), "the last plan was not latched"
    assert late[-1].header.stamp == trajectories[-1].header.stamp

    log = (graph_logs / "replanner.log").read_text()
    for name, (_, expected) in _bad_paths().items():
        assert expected in log, f"{name}: no log line containing {expected!r}"
    assert log.count("[ERROR]") >= len(_bad_paths())


@pytest.mark.ros
def test_replan_service_replans_through_the_remaining_waypoints(replanner: GraphProcesses, ros_peer: RosPeer) -> None:
    node = ros_peer.node
    trajectories: list[MultiDOFJointTrajectory] = []
    node.create_subscription(MultiDOFJointTrajectory, "/trajectory", trajectories.append, qos.LATCHED)
    publisher = node.create_publisher(PathMsg, "/waypoints", qos.REQUEST)
    client = node.create_client(Trigger, "/replanner/replan")
    assert ros_peer.spin_until(lambda: client.service_is_ready() and publisher.get_subscription_count() > 0, 30.0)

    future = client.call_async(Trigger.Request())
    assert ros_peer.spin_until(future.done, 10.0)
    assert not future.result().success  # nothing planned yet: refused with a reason
    assert "no course" in future.result().message

    for _ in range(60):
        publisher.publish(path_from_points(GOOD, "world", Time(sec=10)))
        if ros_peer.spin_until(lambda: bool(trajectories), 1.0):
            break
    count = len(trajectories)
    future = client.call_async(Trigger.Request())
    assert ros_peer.spin_until(future.done, 10.0)
    assert future.result().success, future.result().message
    assert ros_peer.spin_until(lambda: len(trajectories) > count, 10.0)


@pytest.mark.ros
def test_nan_odometry_is_refused_and_the_next_plan_starts_from_the_last_good_state(
    replanner: GraphProcesses, ros_peer: RosPeer
) -> None:
    node = ros_peer.node
    statuses: list[DiagnosticStatus] = []
    trajectories: list[MultiDOFJointTrajectory] = []
    node.create_subscription(DiagnosticStatus, "/replanner/status", statuses.append, qos.REQUEST)
    node.create_subscription(MultiDOFJointTrajectory, "/trajectory", trajectories.append, qos.LATCHED)
    paths = node.create_publisher(PathMsg, "/waypoints", qos.REQUEST)
    odometry = node.create_publisher(Odometry, "/odom", qos.SENSOR)
    assert ros_peer.spin_until(
        lambda: odometry.get_subscription_count() > 0 and paths.get_subscription_count() > 0, 30.0
    )
    for _ in range(60):  # wait until the lifecycle node is active
        paths.publish(path_from_points(GOOD, "world", Time(sec=10)))
        if ros_peer.spin_until(lambda: bool(trajectories), 1.0):
            break
    assert trajectories, "the replanner never became active"

    def odom(position: tuple[float, float, float], velocity_x: float) -> Odometry:
        msg = Odometry()
        msg.header.frame_id, msg.child_frame_id = "world", "base_link"
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z = position
        msg.pose.pose.orientation.w = 1.0
        msg.twist.twist.linear.x = velocity_x
        return msg

    good_position = (0.5, -0.25, 1.2)
    for _ in range(5):
        odometry.publish(odom(good_position, 0.0))
        ros_peer.spin_until(lambda: False, 0.02)
    statuses.clear()
    odometry.publish(odom((0.6, -0.25, 1.2), float("nan")))
    assert ros_peer.spin_until(
        lambda: any(s.level == DiagnosticStatus.ERROR and "odometry refused" in s.message for s in statuses), 10.0
    ), [s.message for s in statuses]
    odometry.publish(odom(good_position, 0.0))  # fresh again, so the plan starts from the vehicle
    ros_peer.spin_until(lambda: False, 0.05)
    count = len(trajectories)
    paths.publish(path_from_points(GOOD + np.array([0.0, 0.0, 0.2]), "world", Time(sec=30)))
    assert ros_peer.spin_until(lambda: len(trajectories) > count, 10.0), [s.message for s in statuses]
    first = trajectories[-1].points[0].transforms[0].translation
    np.testing.assert_allclose([first.x, first.y, first.z], good_position, atol=1e-6)
    assert replanner.processes["replanner"].poll() is None

"""The replanner under bad input: each bad path gets an error status and a log line, and the next good one is served."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from rclpy.publisher import Publisher
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
    paths = {
        "empty": (path_from_points(np.zeros((0, 3)), "world", stamp), "empty path"),
        "one waypoint": (path_from_points(GOOD[:1], "world", stamp), "1 pose"),
        "NaN": (path_from_points(nan, "world", stamp), "non-finite"),
        "10,000 waypoints": (path_from_points(many, "world", stamp), "10000 poses"),
        "wrong frame": (wrong_frame, "frame 'map'"),
        "out-of-order pose stamps": (shuffled, "back in time"),
        "path older than the last one": (path_from_points(GOOD, "world", Time(sec=5)), "older than"),
        "nanosec of 1e9": (path_from_points(GOOD, "world", Time(sec=100, nanosec=1_000_000_000)), "nanosec"),
        "sec of 2^31-1": (path_from_points(GOOD, "world", Time(sec=2**31 - 1)), "int32 limit"),
        "a frame id of 100,000 characters": (path_from_points(GOOD, "x" * 100_000, stamp), "(100000 chars)"),
    }
    for far in (1e5, 1e6, 1e9, 1.7e308):  # before: 1e5 was planned 37,000 s long, 1.7e308 raised
        points = GOOD.copy()
        points[2, 0] = far
        paths[f"a waypoint at x={far:g}"] = (path_from_points(points, "world", stamp), "workspace bound")
    zero = path_from_points(GOOD, "world", stamp)
    zero.poses[2].pose.orientation.w = 0.0
    paths["a zero quaternion"] = (zero, "pose 2 has a zero or non-finite orientation quaternion")
    return paths


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


@dataclass
class ReplannerClient:
    """A test's ear and voice on the replanner's documented topics: statuses, trajectories, paths, odometry."""

    statuses: list[DiagnosticStatus]
    trajectories: list[MultiDOFJointTrajectory]
    paths: Publisher
    odometry: Publisher


def active_replanner_client(ros_peer: RosPeer) -> ReplannerClient:
    """Subscribe and publish as a client would, and wait until the lifecycle node serves a first path."""
    node = ros_peer.node
    client = ReplannerClient(
        [],
        [],
        node.create_publisher(PathMsg, "/waypoints", qos.REQUEST),
        node.create_publisher(Odometry, "/odom", qos.SENSOR),
    )
    node.create_subscription(DiagnosticStatus, "/replanner/status", client.statuses.append, qos.REQUEST)
    node.create_subscription(MultiDOFJointTrajectory, "/trajectory", client.trajectories.append, qos.LATCHED)
    assert ros_peer.spin_until(
        lambda: client.odometry.get_subscription_count() > 0 and client.paths.get_subscription_count() > 0, 30.0
    )
    for _ in range(60):  # wait until the lifecycle node is active
        client.paths.publish(path_from_points(GOOD, "world", Time(sec=10)))
        if ros_peer.spin_until(lambda: bool(client.trajectories), 1.0):
            break
    assert client.trajectories, "the replanner never became active"
    return client


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
        assert len(errors()[0]) < 600, f"{name}: status message of {len(errors()[0])} characters"
        # ... and the node still serves the next good path.
        stamp_s = 20 + len(trajectories)
        statuses.clear()
        publisher.publish(
            path_from_points(GOOD + np.array([0.0, 0.0, 0.1 * len(trajectories)]), "world", Time(sec=stamp_s))
        )
        assert ros_peer.spin_until(lambda s=stamp_s: served(s), 10.0), f"after {name}: next good path not served"
        assert ros_peer.spin_until(lambda: any(s.message == "planned" for s in statuses), 10.0)
        assert replanner.processes["replanner"].poll() is None, f"replanner died after {name}"

    # A path stamped in the future is refused, and does not lock out the next (older) stamped path.
    statuses.clear()
    ahead = node.get_clock().now().nanoseconds + 3_600_000_000_000
    publisher.publish(path_from_points(GOOD, "world", Time(sec=ahead // 10**9)))
    assert ros_peer.spin_until(lambda: any("ahead of the node's clock" in s.message for s in statuses), 10.0)
    stamp_s = 20 + len(trajectories)
    publisher.publish(path_from_points(GOOD, "world", Time(sec=stamp_s)))
    assert ros_peer.spin_until(lambda: served(stamp_s), 10.0), "a future-stamped path locked out the next one"
    # Long strings are cut in the status.
    long_frame = [s for s in statuses if "chars)" in s.message]
    assert all(len(s.message) < 600 for s in long_frame)

    # The last plan is latched: a subscriber that comes late (a restarted controller) still gets it.
    late: list[MultiDOFJointTrajectory] = []
    node.create_subscription(MultiDOFJointTrajectory, "/trajectory", late.append, qos.LATCHED)
    assert ros_peer.spin_until(lambda: bool(late), 10.0), "the last plan was not latched"
    assert late[-1].header.stamp == trajectories[-1].header.stamp

    log = (graph_logs / "replanner.log").read_text()
    assert "x" * 1000 not in log, "a 100,000-character frame id went to the log uncut"
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
    client = active_replanner_client(ros_peer)
    statuses, trajectories, paths, odometry = client.statuses, client.trajectories, client.paths, client.odometry

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


def _odometry(node: object, position: tuple[float, float, float], velocity_x: float) -> Odometry:
    msg = Odometry()
    msg.header.frame_id, msg.child_frame_id = "world", "base_link"
    msg.header.stamp = node.get_clock().now().to_msg()  # type: ignore[attr-defined]
    msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z = position
    msg.pose.pose.orientation.w = 1.0
    msg.twist.twist.linear.x = velocity_x
    return msg


@pytest.mark.ros
def test_implausible_odometry_is_counted_and_poisons_nothing_and_quaternions_are_normalised(
    replanner: GraphProcesses, ros_peer: RosPeer
) -> None:
    """Twist 1e100 for a while: refused, counted by reason on /diagnostics, and the next path right after good
    odometry returns is planned from it. A yaw of +90 deg written as a quaternion of norm 10 flies 90 deg."""
    node = ros_peer.node
    statuses: list[DiagnosticStatus] = []
    trajectories: list[MultiDOFJointTrajectory] = []
    diagnostics: list[DiagnosticArray] = []
    node.create_subscription(DiagnosticStatus, "/replanner/status", statuses.append, qos.STATUS)
    node.create_subscription(MultiDOFJointTrajectory, "/trajectory", trajectories.append, qos.LATCHED)
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, qos.REQUEST)
    paths = node.create_publisher(PathMsg, "/waypoints", qos.WAYPOINTS)
    odometry = node.create_publisher(Odometry, "/odom", qos.SENSOR)
    assert ros_peer.spin_until(
        lambda: odometry.get_subscription_count() > 0 and paths.get_subscription_count() > 0, 30.0
    )
    for _ in range(60):  # wait until the lifecycle node is active
        paths.publish(path_from_points(GOOD, "world", Time()))
        if ros_peer.spin_until(lambda: bool(trajectories), 1.0):
            break
    assert trajectories, "the replanner never became active"

    hover = (0.0, 0.0, 1.0)
    for _ in range(25):  # 0.5 s of absurd velocity
        odometry.publish(_odometry(node, hover, 1e100))
        ros_peer.spin_until(lambda: False, 0.02)
    for _ in range(5):  # 0.1 s of good odometry
        odometry.publish(_odometry(node, hover, 0.0))
        ros_peer.spin_until(lambda: False, 0.02)
    statuses.clear()
    count = len(trajectories)
    yaw_90_norm_10 = path_from_points(GOOD + np.array([0.0, 0.0, 0.3]), "world", Time())
    q = yaw_90_norm_10.poses[-1].pose.orientation
    q.w, q.z = 10.0 * np.cos(np.pi / 4), 10.0 * np.sin(np.pi / 4)
    paths.publish(yaw_90_norm_10)
    assert ros_peer.spin_until(lambda: len(trajectories) > count, 10.0), [s.message for s in statuses]
    assert ros_peer.spin_until(lambda: any(s.message == "planned" for s in statuses), 5.0)
    planned = next(s for s in statuses if s.message == "planned")
    assert {kv.key: kv.value for kv in planned.values}["start"] in ("odometry", "reference")
    first = trajectories[-1].points[0].transforms[0].translation
    np.testing.assert_allclose([first.x, first.y, first.z], hover, atol=1e-6)
    last = trajectories[-1].points[-1].transforms[0].rotation
    assert np.degrees(2.0 * np.arctan2(last.z, last.w)) == pytest.approx(90.0, abs=0.5)

    def counts() -> dict[str, str]:
        for array in reversed(diagnostics):
            for status in array.status:
                if status.name == "mfrl: replanner":
                    return {kv.key: kv.value for kv in status.values}
        return {}

    assert ros_peer.spin_until(lambda: int(counts().get("bad_odometry.speed", "0")) >= 20, 5.0), counts()

    # A burst of paths within the queue's depth: each one gets a status.
    statuses.clear()
    burst = 40
    for k in range(burst):
        paths.publish(path_from_points(GOOD + np.array([0.0, 0.0, 0.01 * k]), "world", Time()))
    assert ros_peer.spin_until(lambda: len(statuses) >= burst, 20.0), f"{len(statuses)} statuses for {burst} paths"
    assert replanner.processes["replanner"].poll() is None


def test_the_replanner_and_the_bridge_share_one_geofence() -> None:
    import yaml

    from mfrl.configs import ReplannerConfig

    file = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "mfrl" / "config" / "replanner.yaml"
    data = yaml.safe_load(file.read_text())
    keys = ("geofence_min_enu_m", "geofence_max_enu_m", "geofence_radius_m", "geofence_center_enu_m")
    replanner, bridge = data["replanner"]["ros__parameters"], data["px4_bridge"]["ros__parameters"]
    assert {k: replanner[k] for k in keys} == {k: bridge[k] for k in keys}
    with pytest.raises(ValueError, match="geofence"):
        ReplannerConfig(geofence_min_enu_m=[0.0, 0.0, 0.0], geofence_max_enu_m=[-1.0, 1.0, 1.0])


@pytest.mark.ros
def test_a_stalled_replanner_refuses_the_paths_that_waited_and_serves_the_next(
    replanner: GraphProcesses, ros_peer: RosPeer
) -> None:
    """A starved replanner (here: stopped with SIGSTOP) must not plan from a stale clock and state when it wakes;
    slow odometry (5 Hz) alone is not taken for a stall."""
    node = ros_peer.node
    client = active_replanner_client(ros_peer)
    statuses, paths, odometry = client.statuses, client.paths, client.odometry
    hover = Odometry()
    hover.header.frame_id, hover.child_frame_id = "world", "base_link"
    hover.pose.pose.position.z, hover.pose.pose.orientation.w = 1.0, 1.0

    def fly_for(seconds: float) -> None:
        """Odometry at 5 Hz (hovering at the course's start) while spinning."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            hover.header.stamp = node.get_clock().now().to_msg()
            odometry.publish(hover)
            ros_peer.spin_until(lambda: False, 0.2)

    def answer(stamp_s: int) -> str:
        """The replanner's status message for the path stamped `stamp_s` ("planned" or why not; waits 10 s)."""
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            for status in statuses:
                if any(kv.key == "path_stamp" and kv.value == f"{stamp_s}.000000000" for kv in status.values):
                    return str(status.message)
            fly_for(0.2)
        return "no answer"

    for stamp_s in (20, 21, 22):
        fly_for(0.5)
        statuses.clear()
        paths.publish(path_from_points(GOOD, "world", Time(sec=stamp_s)))
        assert answer(stamp_s) == "planned", "a path was refused while the replanner kept up (5 Hz odometry)"

    pid = replanner.processes["replanner"].pid
    statuses.clear()
    os.kill(pid, signal.SIGSTOP)
    try:
        paths.publish(path_from_points(GOOD, "world", Time(sec=30)))
        fly_for(0.6)
    finally:
        os.kill(pid, signal.SIGCONT)
    reply = answer(30)
    assert reply.startswith("path refused: behind"), reply
    assert "max_input_lag_s" in reply

    statuses.clear()
    fly_for(0.5)
    paths.publish(path_from_points(GOOD, "world", Time(sec=31)))
    assert answer(31) == "planned", "the replanner did not serve the path sent after it woke"


def test_the_offline_stand_in_for_the_replanner_uses_its_default_limits() -> None:
    """`bench/replan_chain.py` and the planner's chained-replan test fly the node's planner without ROS: with the
    node's default certificate limits, or their refusal counts describe another planner."""
    from mfplan.inflight import REPLANNER_LIMITS
    from mfrl.configs import ReplannerConfig
    from mfrl.replanner import safety_limits

    assert safety_limits(ReplannerConfig()) == REPLANNER_LIMITS


def test_the_nodes_planner_takes_its_waypoint_acceptance_from_the_parameters() -> None:
    """`pass_horizon_s` and `reach_close_waypoint_first` reach the node's planner (the offline stand-in flies the
    planner's defaults, which are the parameters' defaults); a horizon out of range is refused with its name."""
    from mfplan.planner import DEFAULT_CHECKPOINT, CertifiedPlanner
    from mfrl.configs import ReplannerConfig
    from mfrl.replanner import make_planner

    default, planner = ReplannerConfig(), CertifiedPlanner.from_checkpoint()
    assert (default.pass_horizon_s, default.reach_close_waypoint_first) == (
        planner.pass_horizon_s,
        planner.reach_close_waypoint_first,
    )
    chosen = make_planner(DEFAULT_CHECKPOINT, ReplannerConfig(pass_horizon_s=0.2, reach_close_waypoint_first=False))
    assert (chosen.pass_horizon_s, chosen.reach_close_waypoint_first) == (0.2, False)
    with pytest.raises(ValueError, match="pass_horizon_s"):
        ReplannerConfig(pass_horizon_s=-0.1)

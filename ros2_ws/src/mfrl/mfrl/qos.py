"""The QoS profile of every topic of the graph, in one place.

Sensor data (odometry, camera images) is best-effort and keeps only the latest; commands are reliable
with a deadline; plans are reliable and transient-local (latched), so a late subscriber or a restarted
controller gets the last one; /clock is what rclpy's time source expects. In the ReLIC graph the reward
is a report (reliable: a lost one would teach the policy a wrong outcome) and the target object is
latched state.
"""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

SENSOR = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
"""Odometry and camera images: the newest sample is the only one worth having."""

COMMAND = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
    deadline=Duration(seconds=0.5),
)
"""Controller commands: reliable, and a missed deadline is an event the simulator can see."""

LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""The last plan (trajectory, path, markers): reliable, kept for late subscribers."""

REQUEST = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Requests and reports (diagnostics, references): reliable, a few queued, none replayed to late joiners."""

WAYPOINTS_DEPTH = 100
"""Paths the replanner's subscription queues while it plans (a burst of up to this many each get a status)."""

WAYPOINTS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=WAYPOINTS_DEPTH,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Waypoint paths: reliable, and up to `WAYPOINTS_DEPTH` queued. A publisher keeps only its own depth of
unacknowledged paths: send with this profile too, or wait for each path's status, to lose none in a burst.
Beyond the depth, DDS drops the oldest paths without a word (no status, not counted)."""

STATUS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=WAYPOINTS_DEPTH,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""The replanner's `~/status`: one per path, so as deep as the path queue."""

CLOCK = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""/clock from the simulator."""

TOPICS: dict[str, QoSProfile] = {
    "/odom": SENSOR,
    "/cmd_wrench": COMMAND,
    "/clock": CLOCK,
    "/waypoints": WAYPOINTS,
    "/trajectory": LATCHED,
    "/planned_path": LATCHED,
    "/trajectory_markers": LATCHED,
    "/replanner/status": STATUS,
    "/tracker/reference": REQUEST,
    "/diagnostics": REQUEST,
    "/camera/image": SENSOR,
    "/cmd_vel": COMMAND,
    "/relic/reward": REQUEST,
    "/relic/target": LATCHED,
}
"""Each topic of the graph (by its default name) and its profile; a recorder subscribes with the same."""


def for_topic(name: str) -> QoSProfile:
    """The profile of a graph topic (a topic not in the graph: reliable, volatile)."""
    return TOPICS.get(name, REQUEST)

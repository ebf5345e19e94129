"""An outside client of the replanner graph: replans every 200-250 ms of sim time and records what comes back.

It is an ordinary rclpy node on its own context and `SingleThreadedExecutor` (like `RosPeer` in
conftest.py) that speaks only the documented topics with the documented QoS (`mfrl.qos`):

* subscribes `/odom` (position, world-frame velocity, attitude, sim time of every sample it gets),
  `/trajectory` (every plan decoded from the message's points: times, positions, velocities,
  accelerations, header stamp), `/replanner/status` (OK / ERROR, messages kept) and `/diagnostics`;
* publishes `nav_msgs/Path` on `/waypoints` in frame `world`, stamped with its node clock, which runs on
  the simulator's `/clock` (`use_sim_time`), and whose first pose is the vehicle's current position;
* drives a *pattern* (the user's report): every 200-250 ms of sim time a new path, from the vehicle's
  position plus the pattern's goals at that time. Seeded.

Nothing here imports the replanner, the tracker or the planner: the checks are those an operator could
make from outside (`plan_speeds`, `plan_excursion_m` interpolate between the published samples as a
follower would, with quintic Hermite pieces through position, velocity and acceleration).

This file imports nothing from conftest, so `bench/ros_soak.py` loads it by path.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from numpy.typing import NDArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from trajectory_msgs.msg import MultiDOFJointTrajectory

from mfrl import qos

FRAME_ID = "world"
ARENA_LOW = np.array([-3.0, -3.0, 0.8])
ARENA_HIGH = np.array([3.0, 3.0, 2.8])
"""The user's box: 6 x 6 x 2 m."""


# --------------------------------------------------------------------------------------------------- patterns
class Pattern:
    """Goals to send at sim time `t_s` (seconds since the pattern began); the vehicle's position goes first."""

    name = "pattern"

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def goals(self, t_s: float) -> NDArray[np.float64]:
        """`K x 3` goals (K >= 1)."""
        raise NotImplementedError


class RandomCourses(Pattern):
    """(a) A new random course of 3-5 waypoints in the 6 x 6 x 2 m box at every send."""

    name = "random_courses"

    def goals(self, t_s: float) -> NDArray[np.float64]:
        count = int(self.rng.integers(3, 6))
        return self.rng.uniform(ARENA_LOW, ARENA_HIGH, size=(count, 3))


class DriftingCourse(Pattern):
    """(b) A 3-pose course (the vehicle and two goals) whose goals drift at `speed_m_s`, bouncing off the box."""

    name = "drifting_goals"

    def __init__(self, seed: int, speed_m_s: float = 0.3) -> None:
        super().__init__(seed)
        self.start = self.rng.uniform(ARENA_LOW + 0.5, ARENA_HIGH - 0.5, size=(2, 3))
        directions = self.rng.normal(size=(2, 3))
        self.velocity = speed_m_s * directions / np.linalg.norm(directions, axis=1, keepdims=True)

    def goals(self, t_s: float) -> NDArray[np.float64]:
        span = ARENA_HIGH - ARENA_LOW
        raw = self.start + self.velocity * t_s - ARENA_LOW
        folded = np.abs(np.mod(raw + span, 2.0 * span) - span)  # reflect at the walls
        return ARENA_LOW + folded


class JitteredCourse(Pattern):
    """(c) A fixed course of two goals, each sent with 5 cm of Gaussian jitter."""

    name = "jittered_goals"

    def __init__(self, seed: int, jitter_m: float = 0.05) -> None:
        super().__init__(seed)
        self.course = np.array([[2.0, 1.5, 1.5], [-1.5, 2.0, 2.2]])
        self.jitter_m = jitter_m

    def goals(self, t_s: float) -> NDArray[np.float64]:
        return self.course + self.rng.normal(scale=self.jitter_m, size=self.course.shape)


class CirclingGoal(Pattern):
    """(d) One goal moving on a circle of `radius_m` about (0, 0, 1.5) at `speed_m_s`."""

    name = "circling_goal"

    def __init__(self, seed: int, radius_m: float = 2.0, speed_m_s: float = 0.5) -> None:
        super().__init__(seed)
        self.radius_m, self.rate_rad_s = radius_m, speed_m_s / radius_m
        self.phase = float(self.rng.uniform(0.0, 2.0 * np.pi))

    def goals(self, t_s: float) -> NDArray[np.float64]:
        angle = self.phase + self.rate_rad_s * t_s
        return np.array([[self.radius_m * math.cos(angle), self.radius_m * math.sin(angle), 1.5]])


class Alternating(Pattern):
    """Patterns taken in turn, `period_s` of sim time each (the soak: circling goal and drifting course)."""

    name = "alternating"

    def __init__(self, patterns: list[Pattern], period_s: float = 60.0) -> None:
        super().__init__(0)
        self.patterns, self.period_s = patterns, period_s

    def goals(self, t_s: float) -> NDArray[np.float64]:
        return self.patterns[int(t_s // self.period_s) % len(self.patterns)].goals(t_s)


PATTERNS: dict[str, Callable[[int], Pattern]] = {
    "random_courses": RandomCourses,
    "drifting_goals": DriftingCourse,
    "jittered_goals": JitteredCourse,
    "circling_goal": CirclingGoal,
}


# ------------------------------------------------------------------------------------------------- records
@dataclass
class Send:
    """One path sent: sim time, wall time, the points (vehicle first), and what answered it."""

    sim_s: float
    wall_s: float
    points: NDArray[np.float64]
    stamp_ns: int = 0  # the path's header stamp
    answer: str = ""  # "planned", "refused: <message>" or "" (no answer seen)
    latency_s: float | None = None  # wall time from sending to the trajectory's arrival


@dataclass
class PlanRecord:
    """One trajectory as received: header stamp (sim s), arrival (wall s), samples, and the send it answers."""

    stamp_s: float
    wall_s: float
    times_s: NDArray[np.float64]
    positions: NDArray[np.float64]
    velocities: NDArray[np.float64]
    accelerations: NDArray[np.float64]
    send_index: int | None


@dataclass
class Recorder:
    """Everything the client saw."""

    odom_t: list[float] = field(default_factory=list)
    odom_position: list[list[float]] = field(default_factory=list)
    odom_velocity: list[list[float]] = field(default_factory=list)
    odom_up_z: list[float] = field(default_factory=list)  # z of the body's up axis in the world (< 0: flipped)
    plans: list[PlanRecord] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)
    statuses: list[tuple[int, str]] = field(default_factory=list)  # (level, message)
    diagnostics: dict[str, dict[str, str]] = field(default_factory=dict)

    def arrays(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Odometry as arrays: times (K), positions (K x 3), velocities (K x 3), up-axis z (K)."""
        return (
            np.asarray(self.odom_t, dtype=np.float64),
            np.asarray(self.odom_position, dtype=np.float64).reshape(-1, 3),
            np.asarray(self.odom_velocity, dtype=np.float64).reshape(-1, 3),
            np.asarray(self.odom_up_z, dtype=np.float64),
        )


def _stamp_s(stamp: Time) -> float:
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def _rotation_wxyz(w: float, x: float, y: float, z: float) -> NDArray[np.float64]:
    """Body-to-world rotation of a unit quaternion (normalised here)."""
    n = math.sqrt(w * w + x * x + y * y + z * z) or 1.0
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


# ----------------------------------------------------------------------------------- checks from outside
def hermite_dense(plan: PlanRecord, per_interval: int = 8) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Positions and velocities between the samples: quintic Hermite through p, v, a at both ends of each interval."""
    t, p, v, a = plan.times_s, plan.positions, plan.velocities, plan.accelerations
    if t.shape[0] < 2:
        return p, v
    h = np.diff(t)[:, None, None]  # intervals x 1 x 1
    s = (np.arange(per_interval) / per_interval)[None, :, None]  # 1 x S x 1
    p0, p1, v0, v1, a0, a1 = (x[:, None, :] for x in (p[:-1], p[1:], v[:-1] * h[:, 0], v[1:] * h[:, 0],
                                                       a[:-1] * h[:, 0] ** 2, a[1:] * h[:, 0] ** 2))  # fmt: skip
    s2, s3, s4, s5 = s**2, s**3, s**4, s**5
    h00, h10, h20 = 1 - 10 * s3 + 15 * s4 - 6 * s5, s - 6 * s3 + 8 * s4 - 3 * s5, 0.5 * (s2 - 3 * s3 + 3 * s4 - s5)
    h01, h11, h21 = 10 * s3 - 15 * s4 + 6 * s5, -4 * s3 + 7 * s4 - 3 * s5, 0.5 * (s3 - 2 * s4 + s5)
    d00, d10, d20 = (
        -30 * s2 + 60 * s3 - 30 * s4,
        1 - 18 * s2 + 32 * s3 - 15 * s4,
        0.5 * (2 * s - 9 * s2 + 12 * s3 - 5 * s4),
    )
    d01, d11, d21 = 30 * s2 - 60 * s3 + 30 * s4, -12 * s2 + 28 * s3 - 15 * s4, 0.5 * (3 * s2 - 8 * s3 + 5 * s4)
    pos = h00 * p0 + h10 * v0 + h20 * a0 + h01 * p1 + h11 * v1 + h21 * a1
    vel = (d00 * p0 + d10 * v0 + d20 * a0 + d01 * p1 + d11 * v1 + d21 * a1) / h
    return np.vstack([pos.reshape(-1, 3), p[-1:]]), np.vstack([vel.reshape(-1, 3), v[-1:]])


def box_excursion_m(points: NDArray[np.float64], low: NDArray[np.float64], high: NDArray[np.float64]) -> float:
    """How far the farthest of `points` lies outside the box [low, high] (0 inside)."""
    if points.size == 0:
        return 0.0
    outside = np.maximum(np.maximum(low - points, points - high), 0.0)
    return float(np.linalg.norm(outside, axis=1).max())


def plan_figures(plan: PlanRecord, box_points: NDArray[np.float64]) -> tuple[float, float, float]:
    """(peak speed m/s, excursion m outside the box of `box_points` and the plan's own start, lowest height m)
    of one plan."""
    positions, velocities = hermite_dense(plan)
    points = np.vstack([box_points, plan.positions[:1]])
    speeds = np.linalg.norm(np.vstack([velocities, plan.velocities]), axis=1)
    dense = np.vstack([positions, plan.positions])
    excursion = box_excursion_m(dense, points.min(axis=0), points.max(axis=0))
    return float(speeds.max(initial=0.0)), excursion, float(dense[:, 2].min())


# ----------------------------------------------------------------------------------------------- the client
def find_free_domain(first: int, tries: int = 12, listen_s: float = 1.5) -> int:
    """The first ROS domain id from `first` on (steps of 7, 1..232) where no node answers discovery in `listen_s`.

    Other people's test runs on the same machine may use the same id; a graph that shares it would take
    their odometry and plans. Needs ROS_AUTOMATIC_DISCOVERY_RANGE set (LOCALHOST) before the call.
    """
    candidates = [1 + (first - 1 + 7 * k) % 232 for k in range(tries)]
    for domain in candidates:
        context = Context()
        rclpy.init(context=context, domain_id=domain)
        node = Node("domain_probe", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        others: list[tuple[str, str]] = []
        try:
            deadline = time.monotonic() + listen_s
            while time.monotonic() < deadline and not others:
                executor.spin_once(timeout_sec=0.05)
                others = [n for n in node.get_node_names_and_namespaces() if n[0] != "domain_probe"]
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown(context=context)
        if not others:
            return domain
    raise RuntimeError(f"every ROS domain id tried ({candidates}) has other nodes in it")


class InflightClient:
    """See the module docstring. Call `close()` when done (the executor stops before the context)."""

    def __init__(self, name: str = "inflight_client", domain_id: int | None = None, odom_stride: int = 1) -> None:
        self.odom_stride = max(1, odom_stride)  # keep every n-th odometry sample (a long soak keeps fewer)
        self.odom_seen = 0
        self.context = Context()
        domain = int(os.environ.get("ROS_DOMAIN_ID", "0")) if domain_id is None else domain_id
        rclpy.init(context=self.context, domain_id=domain)
        self.node = Node(
            name, context=self.context, parameter_overrides=[Parameter("use_sim_time", Parameter.Type.BOOL, True)]
        )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.record = Recorder()
        self._next_unanswered = 0
        self._plans_by_stamp: dict[int, int] = {}  # trajectories not yet matched to a status, by header stamp
        self._planned_by_stamp: dict[int, int] = {}  # "planned" statuses whose trajectory has not come yet
        self.latest_position: NDArray[np.float64] | None = None
        self.latest_odom_s = 0.0
        self.path_pub = self.node.create_publisher(PathMsg, "/waypoints", qos.for_topic("/waypoints"))
        node = self.node
        node.create_subscription(Odometry, "/odom", self._on_odom, qos.for_topic("/odom"))
        node.create_subscription(
            MultiDOFJointTrajectory, "/trajectory", self._on_trajectory, qos.for_topic("/trajectory")
        )
        node.create_subscription(
            DiagnosticStatus, "/replanner/status", self._on_status, qos.for_topic("/replanner/status")
        )
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, qos.for_topic("/diagnostics"))

    # Callbacks ----------------------------------------------------------------------------------------------
    def _on_odom(self, msg: Odometry) -> None:
        p, q, v = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist.linear
        rotation = _rotation_wxyz(q.w, q.x, q.y, q.z)
        velocity = rotation @ np.array([v.x, v.y, v.z])  # REP 105: the twist is in the body frame
        position = [p.x, p.y, p.z]
        t = _stamp_s(msg.header.stamp)
        self.latest_position, self.latest_odom_s = np.array(position), t
        self.odom_seen += 1
        up_z = float(rotation[2, 2])
        keep = self.odom_seen % self.odom_stride == 0 or up_z <= 0.0 or p.z <= 0.1  # never drop a crash sample
        if not keep:
            return
        record = self.record
        record.odom_t.append(t)
        record.odom_position.append(position)
        record.odom_velocity.append(velocity.tolist())
        record.odom_up_z.append(up_z)

    def _answer(self, values: dict[str, str]) -> int | None:
        """The send a status answers: the one its `path_stamp` names, else the oldest unanswered one.

        The replanner answers every path with one status, in order (`~/status`: OK "planned" or ERROR).
        """
        stamp = values.get("path_stamp", "")
        try:
            number = float(stamp)
            stamp_ns = round(number * 1e9) if number < 1e12 else round(number)
        except ValueError:
            stamp_ns = -1
        sends = self.record.sends
        for i in range(len(sends) - 1, max(-1, len(sends) - 200), -1):
            if stamp_ns >= 0 and abs(sends[i].stamp_ns - stamp_ns) < 1_000_000:
                return i if not sends[i].answer else None
        while self._next_unanswered < len(sends) and sends[self._next_unanswered].answer:
            self._next_unanswered += 1
        return self._next_unanswered if self._next_unanswered < len(sends) else None

    def _link(self, plan_index: int, send_index: int) -> None:
        plan, send = self.record.plans[plan_index], self.record.sends[send_index]
        plan.send_index = send_index
        send.latency_s = plan.wall_s - send.wall_s

    def _on_trajectory(self, msg: MultiDOFJointTrajectory) -> None:
        now = time.monotonic()
        points = [pt for pt in msg.points if pt.transforms]
        times = np.array([pt.time_from_start.sec + 1e-9 * pt.time_from_start.nanosec for pt in points])

        def rows(get: Callable[[Any], Any]) -> NDArray[np.float64]:
            return np.array([[get(pt).x, get(pt).y, get(pt).z] for pt in points], dtype=np.float64).reshape(-1, 3)

        zero = np.zeros((len(points), 3))
        positions = rows(lambda pt: pt.transforms[0].translation)
        velocities = rows(lambda pt: pt.velocities[0].linear) if all(pt.velocities for pt in points) else zero
        accelerations = rows(lambda pt: pt.accelerations[0].linear) if all(pt.accelerations for pt in points) else zero
        stamp_ns = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        self.record.plans.append(
            PlanRecord(_stamp_s(msg.header.stamp), now, times, positions, velocities, accelerations, None)
        )
        send_index = self._planned_by_stamp.pop(stamp_ns, None)
        if send_index is not None:  # its status came first
            self._link(len(self.record.plans) - 1, send_index)
        else:
            self._plans_by_stamp[stamp_ns] = len(self.record.plans) - 1

    def _on_status(self, msg: DiagnosticStatus) -> None:
        level = int.from_bytes(msg.level, "little") if isinstance(msg.level, bytes) else int(msg.level)
        values = {kv.key: kv.value for kv in msg.values}
        self.record.statuses.append((level, msg.message))
        planned = level == 0 and msg.message == "planned"
        refused = level == 2 and msg.message.startswith("path")  # not odometry refusals: those answer no path
        if not (planned or refused):
            return
        index = self._answer(values)
        if index is None:
            return
        send = self.record.sends[index]
        if refused:
            send.answer = f"refused: {msg.message}"
            return
        send.answer = "planned"
        try:
            plan_stamp_ns = int(float(values.get("plan_stamp_ns", "nan")))
        except ValueError:
            return
        plan_index = self._plans_by_stamp.pop(plan_stamp_ns, None)
        if plan_index is not None:
            self._link(plan_index, index)
        else:  # the trajectory is still on its way
            self._planned_by_stamp[plan_stamp_ns] = index

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.record.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    # Helpers ------------------------------------------------------------------------------------------------
    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Spin until `condition()` holds or `timeout_s` (wall) passes; return whether it held."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.01)
        return condition()

    def sim_now_s(self) -> float:
        """The node clock (the simulator's /clock)."""
        return float(self.node.get_clock().now().nanoseconds) * 1e-9

    def graph_state(self) -> dict[str, Any]:
        """What `wait_for_graph` waits for (for a failure message)."""
        return {
            "waypoints_subscribers": self.path_pub.get_subscription_count(),
            "trajectory_subscribers": self.node.count_subscribers("/trajectory"),
            "odometry": self.latest_position is not None,
            "sim_time_s": self.sim_now_s(),
        }

    def wait_for_graph(self, timeout_s: float = 60.0) -> bool:
        """The replanner listens on /waypoints, the tracker on /trajectory, and sim time runs (odometry in)."""

        def ready() -> bool:
            state = self.graph_state()
            return bool(
                state["waypoints_subscribers"] > 0
                and state["trajectory_subscribers"] >= 2  # the tracker and this client
                and state["odometry"]
                and state["sim_time_s"] > 0.0
            )

        return self.spin_until(ready, timeout_s)

    def send(self, goals: NDArray[np.float64]) -> Send:
        """Send a path: the vehicle's position, then `goals`; stamped with the node's (sim) clock, frame `world`."""
        assert self.latest_position is not None, "no odometry yet"
        points = np.vstack([self.latest_position, np.asarray(goals, dtype=np.float64).reshape(-1, 3)])
        stamp = self.node.get_clock().now().to_msg()
        msg = PathMsg()
        msg.header.frame_id, msg.header.stamp = FRAME_ID, stamp
        poses = []
        for row in points:
            pose = PoseStamped()
            pose.header.frame_id, pose.header.stamp = FRAME_ID, stamp
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(c) for c in row)
            pose.pose.orientation.w = 1.0
            poses.append(pose)
        msg.poses = poses
        send = Send(_stamp_s(stamp), time.monotonic(), points, int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec))
        self.record.sends.append(send)
        self.path_pub.publish(msg)
        return send

    def first_plan(self, pattern: Pattern, timeout_s: float = 60.0) -> bool:
        """Send the pattern's first path (again each second) until a trajectory answers and the tracker flies it.

        The replanner's publisher can match the tracker's subscription seconds after both exist (DDS discovery
        on a loaded machine); plans sent before that are never flown, so an operator waits for the tracker's
        /diagnostics to count a plan, as the demo's mission waits for the vehicle to move.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            count = len(self.record.plans)
            self.send(pattern.goals(0.0))

            def flown(count: int = count) -> bool:
                tracker = self.record.diagnostics.get("mfrl: tracker", {})
                return len(self.record.plans) > count and int(tracker.get("plans", "0") or 0) > 0

            if self.spin_until(flown, 1.5):
                return True
        return False

    def first_plan_failure(self) -> str:
        """Why `first_plan` gave up: the graph's state, the answers to the paths sent, and what the tracker says."""
        answers: dict[str, int] = {}
        for send in self.record.sends:
            key = (send.answer or "unanswered")[:160]
            answers[key] = answers.get(key, 0) + 1
        tracker = self.record.diagnostics.get("mfrl: tracker")
        said = "never received" if tracker is None else {k: tracker.get(k) for k in ("mode", "plans", "refused_plans")}
        return (
            f"graph {self.graph_state()}; {len(self.record.sends)} paths sent, answers {answers}; "
            f"{len(self.record.plans)} trajectories received; tracker diagnostics "
            f"{said}; "
            f"diagnostics seen from {sorted(self.record.diagnostics)}"
        )

    def fly(
        self,
        pattern: Pattern,
        sim_duration_s: float,
        wall_timeout_s: float,
        interval_s: tuple[float, float] = (0.2, 0.25),
        seed: int = 0,
        on_tick: Callable[[], None] | None = None,
    ) -> float:
        """Replan every `interval_s` (uniform, sim time) with the pattern until `sim_duration_s` of sim time or
        `wall_timeout_s` of wall time pass; return the sim seconds flown."""
        rng = np.random.default_rng(seed)
        began_sim, began_wall = self.sim_now_s(), time.monotonic()
        next_send = began_sim
        while True:
            now = self.sim_now_s()
            if now - began_sim >= sim_duration_s or time.monotonic() - began_wall >= wall_timeout_s:
                return now - began_sim
            if now >= next_send:
                self.send(pattern.goals(now - began_sim))
                # On the schedule, not from now: a client loop that saw sim time late (a loaded machine) does
                # not send fewer paths; one that fell a whole interval behind does not send a burst either.
                next_send = max(next_send, now - interval_s[0]) + float(rng.uniform(*interval_s))
            if on_tick is not None:
                on_tick()
            self.executor.spin_once(timeout_sec=0.005)

    def close(self) -> None:
        """Stop the executor before shutting the context down (else the process may abort at exit)."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


# --------------------------------------------------------------------------------------------- summaries
@dataclass
class FlightSummary:
    """The safety figures of one flight, measured from outside."""

    sim_s: float
    sends: int
    planned: int
    refused: int
    unanswered: int
    refusals: dict[str, int]
    error_messages: list[str]
    plans: int
    plan_peak_speed_m_s: float
    plan_max_excursion_m: float
    plan_min_z_m: float
    plans_over_speed: int
    plans_outside_box: int
    plans_below_clearance: int
    plans_outside_certificate: int
    vehicle_max_speed_m_s: float
    vehicle_max_excursion_m: float
    vehicle_min_z_m: float
    vehicle_min_up_z: float
    vehicle_max_distance_m: float
    crashed: bool
    crash_time_s: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def refusal_reason(message: str) -> str:
    """A refusal's reason without its numbers (for counting refusals by reason)."""
    head = message.split(":", 2)
    text = ": ".join(part.strip() for part in head[:2]) if len(head) > 1 else message
    return "".join("#" if c.isdigit() else c for c in text)[:80]


def summarise(
    record: Recorder,
    speed_bound_m_s: float,
    excursion_bound_m: float,
    start_position: NDArray[np.float64],
    since_sim_s: float = 0.0,
    plan_tolerance_m_s: float = 0.05,
    plan_tolerance_m: float = 0.05,
    ground_z_m: float = 0.05,
    ground_clearance_m: float = 0.0,
) -> FlightSummary:
    """Outside figures of a flight: plans against their own path's box and the ground clearance, the vehicle
    against every waypoint sent."""
    t, position, velocity, up_z = record.arrays()
    keep = t >= since_sim_s
    t, position, velocity, up_z = t[keep], position[keep], velocity[keep], up_z[keep]
    sent = [s for s in record.sends if s.sim_s >= since_sim_s]
    # The goals ever sent and the start (not the first poses: those are where the vehicle was, wherever that was).
    everything = np.vstack([start_position[None, :], *(s.points[1:] for s in record.sends)])
    low, high = everything.min(axis=0), everything.max(axis=0)
    speeds = np.linalg.norm(velocity, axis=1) if t.size else np.zeros(1)
    outside = np.maximum(np.maximum(low - position, position - high), 0.0) if t.size else np.zeros((1, 3))
    crashed_at = np.flatnonzero((position[:, 2] <= ground_z_m) | (up_z <= 0.0)) if t.size else np.zeros(0, int)
    plan_speeds, plan_excursions, plan_lows = [], [], []
    for plan in record.plans:
        if plan.stamp_s < since_sim_s - 1.0:
            continue
        if plan.send_index is not None:
            box = record.sends[plan.send_index].points
        else:  # unmatched: the two last paths sent before it arrived (a looser box)
            before = [s.points for s in record.sends if s.wall_s <= plan.wall_s][-2:]
            box = np.vstack(before) if before else plan.positions[:1]
        speed, excursion, lowest = plan_figures(plan, box)
        plan_speeds.append(speed)
        plan_excursions.append(excursion)
        plan_lows.append(lowest)
    refusals: dict[str, int] = {}
    for s in sent:
        if s.answer.startswith("refused"):
            reason = refusal_reason(s.answer.removeprefix("refused: "))
            refusals[reason] = refusals.get(reason, 0) + 1
    return FlightSummary(
        sim_s=float(t[-1] - t[0]) if t.size else 0.0,
        sends=len(sent),
        planned=sum(s.answer == "planned" for s in sent),
        refused=sum(s.answer.startswith("refused") for s in sent),
        unanswered=sum(not s.answer for s in sent),
        refusals=refusals,
        error_messages=[m for level, m in record.statuses if level == 2],
        plans=len(plan_speeds),
        plan_peak_speed_m_s=max(plan_speeds, default=0.0),
        plan_max_excursion_m=max(plan_excursions, default=0.0),
        plan_min_z_m=min(plan_lows, default=math.nan),
        plans_over_speed=sum(v > speed_bound_m_s + plan_tolerance_m_s for v in plan_speeds),
        plans_outside_box=sum(e > excursion_bound_m + plan_tolerance_m for e in plan_excursions),
        plans_below_clearance=sum(z < ground_clearance_m - plan_tolerance_m for z in plan_lows),
        plans_outside_certificate=sum(
            v > speed_bound_m_s + plan_tolerance_m_s
            or e > excursion_bound_m + plan_tolerance_m
            or z < ground_clearance_m - plan_tolerance_m
            for v, e, z in zip(plan_speeds, plan_excursions, plan_lows, strict=True)
        ),
        vehicle_max_speed_m_s=float(speeds.max(initial=0.0)),
        vehicle_max_excursion_m=float(np.linalg.norm(outside, axis=1).max(initial=0.0)),
        vehicle_min_z_m=float(position[:, 2].min()) if t.size else math.nan,
        vehicle_min_up_z=float(up_z.min()) if t.size else math.nan,
        vehicle_max_distance_m=float(np.linalg.norm(position - start_position, axis=1).max(initial=0.0)),
        crashed=bool(crashed_at.size),
        crash_time_s=float(t[crashed_at[0]] - since_sim_s) if crashed_at.size else None,
    )


def save_record(record: Recorder, stem: Path) -> None:
    """Write what the client saw: `<stem>.npz` (odometry) and `<stem>.json` (plans and sends), for post-mortems."""
    t, position, velocity, up_z = record.arrays()
    np.savez_compressed(stem.with_suffix(".npz"), t=t, position=position, velocity=velocity, up_z=up_z)
    plans = [
        {
            "stamp_s": plan.stamp_s,
            "wall_s": plan.wall_s,
            "times_s": plan.times_s.tolist(),
            "positions": plan.positions.tolist(),
            "velocities": plan.velocities.tolist(),
            "accelerations": plan.accelerations.tolist(),
        }
        for plan in record.plans
    ]
    sends = [
        {"sim_s": s.sim_s, "wall_s": s.wall_s, "points": s.points.tolist(), "answer": s.answer} for s in record.sends
    ]
    stem.with_suffix(".json").write_text(json.dumps({"plans": plans, "sends": sends}))

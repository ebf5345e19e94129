"""The `waypoint_mission` node: the demo's operator. Sends a course, moves waypoints in flight, waits for the goal.

It sends the course on `waypoints` once the vehicle's odometry is in and the graph is connected (the
replanner on `waypoints`, the controller and recorder on `trajectory`), counts a waypoint as passed when
the vehicle comes within `reached_radius_m` of it or of the next one (`next_waypoint_index`), and every
`replan_interval_s` of simulated time (up to `replan_count` times) moves the intermediate waypoints beyond
the one being approached by `displacement_m` in a seeded horizontal direction and sends the rest of the
course again, so the vehicle replans in the air. A move the replanner refuses (say, a plan that came too
late for its start on a loaded machine) is undone, as the vehicle flies on with its plan through the old waypoints, and
tried again an interval later, up to `MAX_MOVE_ATTEMPTS_PER_MOVE` tries per move. If the vehicle has
not moved `START_WITHIN_S` after the course's plan (a controller that matched the replanner late got
the latched plan stale and refused it), the course is sent again, up to `MAX_COURSE_SENDS` times. It
times each path from sending to the trajectory's arrival (wall clock), and ends (exit code 0) when the
vehicle rests at the last waypoint, or fails (exit code 1) after `timeout_s`. Its figures go to
`results_file` (JSON).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from nav_msgs.msg import Odometry, Path
from numpy.typing import NDArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from trajectory_msgs.msg import MultiDOFJointTrajectory

from mfrl import qos
from mfrl.configs import WaypointMissionConfig
from mfrl.conversions import ns_to_stamp, odometry_state, path_from_points, stamp_to_ns
from mfrl.node_main import run_node
from mfrl.parameters import ConfigParameters
from runkit import write_json_atomic

RESEND_AFTER_S = 2.0
"""A path that got neither a trajectory nor a status in this long (wall) is sent again."""
START_WITHIN_S = 1.5
"""Sim time after the course's plan by which the vehicle must have moved START_DISTANCE_M ..."""
START_DISTANCE_M = 0.1
"""... or the course is sent again: a controller that joined late refused the (latched) plan as stale."""
MAX_COURSE_SENDS = 3
"""The course goes out at most this often; after that the mission goes on with the last plan."""
RETRY_AFTER_REFUSAL_S = 0.3
"""A path the replanner refused is sent again (the course) or retried (a move) no sooner than this (wall)."""
MAX_MOVE_ATTEMPTS_PER_MOVE = 3
"""A refused move is tried again at the next interval; at most this many tries per planned move."""


def next_waypoint_index(
    position: NDArray[np.float64], course: NDArray[np.float64], next_index: int, radius_m: float
) -> int:
    """The index of the waypoint being approached after the vehicle reached `position` (`course`: `N x 3`, the
    last waypoint the goal, never passed). A waypoint is passed when the vehicle comes within `radius_m` of it or
    of the one after it: the replanner may take the waypoint ahead as reached without flying through it (a
    moving vehicle close to it, `mfplan.planner`'s pass radius), and the vehicle then goes on to the next."""
    last = course.shape[0] - 1
    index = next_index
    while index < last:
        window = course[index : min(index + 2, last + 1)]
        near = np.flatnonzero(np.linalg.norm(window - position, axis=1) < radius_m)
        if near.shape[0] == 0:
            break
        index = min(index + int(near[0]) + 1, last)
    return index


class WaypointMission(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("waypoint_mission")
        self.exit_code: int | None = None
        self.params = ConfigParameters(self, WaypointMissionConfig, read_only=True)
        config: WaypointMissionConfig = self.params.config
        self.config = config
        if len(config.course) < 6:
            raise ValueError("parameter course needs at least two waypoints (six numbers)")
        self.course = np.asarray(config.course, dtype=np.float64).reshape(-1, 3)
        self.rng = np.random.default_rng(config.seed)
        self.position: NDArray[np.float64] | None = None
        self.speed_m_s = 0.0
        self.now_ns = 0
        self.next_index = 1
        self.first_plan_ns: int | None = None  # the stamp of the course's plan (sim time 0 is a stamp too)
        self.course_start: NDArray[np.float64] | None = None
        self.started = False
        self.course_sends = 0
        self.moves = 0
        self.move_attempts = 0
        self.last_move_ns = 0
        self.awaiting: dict[str, Any] | None = None
        self.quiet_until = 0.0  # monotonic time before which no path goes out (after a refusal)
        self.events: list[dict[str, Any]] = []
        self.began = time.monotonic()
        self.warned_waiting = False
        self.path_pub = self.create_publisher(Path, "waypoints", qos.REQUEST)
        self.create_subscription(Odometry, "odom", self.on_odometry, qos.SENSOR)
        self.create_subscription(MultiDOFJointTrajectory, "trajectory", self.on_trajectory, qos.LATCHED)
        self.create_subscription(DiagnosticStatus, "replanner_status", self.on_status, qos.REQUEST)
        self.create_timer(0.02, self.on_timer, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def on_odometry(self, msg: Odometry) -> None:
        """Track the vehicle and the waypoints it has passed."""
        state = odometry_state(msg)
        self.position, self.now_ns = state.position_m, state.stamp_ns
        self.speed_m_s = float(np.linalg.norm(state.velocity_m_s))
        self.next_index = next_waypoint_index(self.position, self.course, self.next_index, self.config.reached_radius_m)

    def on_trajectory(self, msg: MultiDOFJointTrajectory) -> None:
        """A plan arrived: time the path that asked for it."""
        if self.awaiting is None:
            return
        event = self.awaiting
        self.awaiting = None
        event["latency_ms"] = 1e3 * (time.perf_counter() - event.pop("sent"))
        event.pop("previous_course", None)
        event["plan_stamp_s"] = stamp_to_ns(msg.header.stamp) * 1e-9
        event["result"] = "planned"
        self.events.append(event)
        if self.first_plan_ns is None:
            self.first_plan_ns = stamp_to_ns(msg.header.stamp)
            self.course_start = None if self.position is None else self.position.copy()
        self.get_logger().info(f"{event['kind']} planned in {event['latency_ms']:.2f} ms (path sent to trajectory)")

    def on_status(self, msg: DiagnosticStatus) -> None:
        """An error status answers the path in flight: record it."""
        if self.awaiting is not None and msg.level == DiagnosticStatus.ERROR:
            event = self.awaiting
            self.awaiting = None
            event.pop("sent")
            event["result"] = f"error: {msg.message}"
            self.events.append(event)
            self.get_logger().warning(f"{event['kind']} refused by the replanner: {msg.message}")
            self.quiet_until = time.monotonic() + RETRY_AFTER_REFUSAL_S
            if event["kind"] == "moved waypoints":  # the vehicle flies on through the old waypoints
                self.course = np.asarray(event.pop("previous_course"), dtype=np.float64)
                self.moves -= 1

    def send(
        self, kind: str, waypoints: NDArray[np.float64], previous_course: NDArray[np.float64] | None = None
    ) -> None:
        """Send the vehicle's position and `waypoints` as a path (`previous_course`: what a refusal restores)."""
        assert self.position is not None
        points = np.vstack([self.position, waypoints])
        self.path_pub.publish(path_from_points(points, self.config.frame_id, ns_to_stamp(self.now_ns)))
        self.awaiting = {
            "kind": kind,
            "sim_time_s": self.now_ns * 1e-9,
            "sent": time.perf_counter(),
            "sent_wall": time.monotonic(),
            "waypoints": waypoints.tolist(),
        }
        if previous_course is not None:
            self.awaiting["previous_course"] = previous_course.tolist()

    def graph_ready(self) -> bool:
        """Odometry is in, the replanner listens, and the controller (and recorder) can hear its plans."""
        if self.position is None or self.path_pub.get_subscription_count() < self.config.path_subscribers:
            return False
        if self.first_plan_ns is not None or self.awaiting is not None:
            return True
        listeners = self.count_subscribers("trajectory") - 1  # this node subscribes to it too
        planners = self.count_publishers("trajectory")
        ready = listeners >= self.config.trajectory_subscribers and planners >= 1
        if not ready and not self.warned_waiting and time.monotonic() - self.began > 10.0:
            self.warned_waiting = True
            self.get_logger().warning(
                f"waiting for the graph: {listeners} of {self.config.trajectory_subscribers} trajectory subscribers "
                f"and {planners} publishers seen"
            )
        return ready

    def on_timer(self) -> None:
        """Send, move, finish or time out."""
        config = self.config
        if time.monotonic() - self.began > config.timeout_s:
            self.finish(False, f"timed out after {config.timeout_s} s (wall)")
            return
        if not self.graph_ready() or time.monotonic() < self.quiet_until:
            return
        if self.awaiting is not None:
            if time.monotonic() - self.awaiting["sent_wall"] > RESEND_AFTER_S:
                self.get_logger().warning("no answer to the path: sending it again")
                previous = self.awaiting.get("previous_course")
                self.send(
                    self.awaiting["kind"],
                    np.asarray(self.awaiting["waypoints"]),
                    None if previous is None else np.asarray(previous),
                )
            return
        if self.first_plan_ns is None:
            self.course_sends += 1
            self.send("course", self.course[1:])
            return
        if not self.started and self.course_start is not None:
            assert self.position is not None
            if np.linalg.norm(self.position - self.course_start) >= START_DISTANCE_M:
                self.started = True
            elif self.course_sends < MAX_COURSE_SENDS:
                if self.now_ns - self.first_plan_ns >= START_WITHIN_S * 1e9:
                    self.get_logger().warning(
                        f"the vehicle has not moved {START_WITHIN_S} s after the course's plan (a controller "
                        "that joined late refuses a stale plan): sending the course again"
                    )
                    self.first_plan_ns = None
                return  # no waypoint moves before the vehicle is on its way
        interval_ns = round(config.replan_interval_s * 1e9)
        due_ns = max(self.first_plan_ns, self.last_move_ns) + interval_ns
        ahead = self.course[self.next_index + 1 : -1]  # the waypoint being approached and the goal stay put
        attempts_left = self.move_attempts < MAX_MOVE_ATTEMPTS_PER_MOVE * config.replan_count
        if self.moves < config.replan_count and attempts_left and self.now_ns >= due_ns and ahead.shape[0] > 0:
            self.moves += 1
            self.move_attempts += 1
            self.last_move_ns = self.now_ns
            previous = self.course.copy()
            angles = self.rng.uniform(0.0, 2.0 * np.pi, ahead.shape[0])
            shift = config.displacement_m * np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], axis=1)
            self.course[self.next_index + 1 : -1] += shift
            self.send("moved waypoints", self.course[self.next_index :], previous)
            return
        goal = self.course[-1]
        assert self.position is not None
        error = float(np.linalg.norm(self.position - goal))
        at_goal = self.next_index == self.course.shape[0] - 1 and error < config.goal_tolerance_m
        if at_goal and self.speed_m_s < config.settle_speed_m_s:
            self.finish(True, f"goal reached ({error:.3f} m away)")

    def finish(self, success: bool, message: str) -> None:
        """Write the results and end the node."""
        final_error = float(np.linalg.norm(self.position - self.course[-1])) if self.position is not None else None
        latencies = [e["latency_ms"] for e in self.events if "latency_ms" in e]
        results = {
            "success": success,
            "message": message,
            "flight_time_s": (self.now_ns - self.first_plan_ns) * 1e-9 if self.first_plan_ns is not None else None,
            "final_error_m": final_error,
            "events": [{k: v for k, v in e.items() if k != "sent_wall"} for e in self.events],
            "replan_latency_ms": latencies,
            "initial_course": np.asarray(self.config.course).reshape(-1, 3).tolist(),
            "final_course": self.course.tolist(),
            "wall_time_s": time.monotonic() - self.began,
        }
        if self.config.results_file:
            write_json_atomic(self.config.results_file, results)
        log = self.get_logger().info if success else self.get_logger().error
        log(f"mission {'complete' if success else 'failed'}: {message}")
        self.exit_code = 0 if success else 1


def main(args: list[str] | None = None) -> int:
    """Entry point of the `waypoint_mission` executable."""
    return run_node(WaypointMission, args)


if __name__ == "__main__":
    raise SystemExit(main())

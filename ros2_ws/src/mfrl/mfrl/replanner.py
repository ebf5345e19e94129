"""The `replanner` node: waypoint paths in, certified minimum-snap trajectories out (MFRL policy).

Lifecycle: configuring loads the policy; activating starts serving. A path (nav_msgs/Path on
`waypoints`) is a course whose first pose is its start: the node replaces that pose with the
vehicle's current position (from `odom`; velocity and a filtered acceleration become the start
state) and plans through the rest. `~/replan` (std_srvs/Trigger) plans again from the current state
through the waypoints not yet reached. Each plan goes out as a sampled MultiDOFJointTrajectory on
`trajectory`, then a nav_msgs/Path (`planned_path`) and markers coloured by speed
(`trajectory_markers`) for viewers, all latched. Every path gets a status on `~/status` (OK with the
planning figures, or ERROR with the reason, also logged); a bad path never stops the node.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path as FilePath

import numpy as np
import torch
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry, Path
from numpy.typing import NDArray
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_srvs.srv import Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory
from visualization_msgs.msg import MarkerArray

from mfplan.planner import DEFAULT_CHECKPOINT, CertifiedPlanner, PlanResult
from mfrl import qos
from mfrl.configs import ReplannerConfig
from mfrl.conversions import (
    CourseError,
    course_from_path,
    diagnostic_status,
    diagnostics_message,
    ns_to_stamp,
    odometry_state,
    path_from_points,
    plan_markers,
)
from mfrl.node_main import run_node
from mfrl.parameters import ConfigParameters
from mfrl.trajectory_wire import write_trajectory
from minsnap import EndpointState, Trajectory, TrajectoryInputError
from quadsim.sampled_trajectory import SampledTrajectory

VIEWER_DELAY_S = 0.02
"""The viewer topics of a plan go out up to this long after its trajectory (which must not wait for them)."""


class StartState:
    """The vehicle's latest position and velocity, and its acceleration by filtered differences."""

    def __init__(self) -> None:
        self.stamp_ns = 0
        self.position = np.zeros(3)
        self.velocity = np.zeros(3)
        self.acceleration = np.zeros(3)

    def update(self, stamp_ns: int, position: NDArray[np.float64], velocity: NDArray[np.float64], tau_s: float) -> None:
        """Take a new odometry sample."""
        dt = (stamp_ns - self.stamp_ns) * 1e-9
        if self.stamp_ns and 0.0 < dt < 0.5:
            raw = (velocity - self.velocity) / dt
            alpha = dt / (tau_s + dt)
            self.acceleration = self.acceleration + alpha * (raw - self.acceleration)
        elif dt != 0.0:
            self.acceleration = np.zeros(3)
        self.stamp_ns, self.position, self.velocity = stamp_ns, position, velocity


class Replanner(LifecycleNode):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("replanner")
        self.exit_code: int | None = None
        self.params = ConfigParameters(self, ReplannerConfig, read_only=("autostart", "diagnostics_period_s"))
        self.planner: CertifiedPlanner | None = None
        self.start = StartState()
        self.last_path_stamp_ns = 0
        self.waypoints: NDArray[np.float64] | None = None  # the course being flown (start first)
        self.trajectory: Trajectory | None = None
        self.plan_stamp_ns = 0
        self.latencies_ms: list[float] = []
        self.planning_ms: list[float] = []
        self.errors = 0
        self.bad_odometry = 0
        self._created = False
        self.status_pub = self.create_publisher(DiagnosticStatus, "~/status", qos.REQUEST)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.REQUEST)
        self.create_subscription(Odometry, "odom", self.on_odometry, qos.SENSOR)
        self.create_subscription(Path, "waypoints", self.on_waypoints, qos.REQUEST)
        self.create_service(Trigger, "~/replan", self.on_replan)
        self.create_timer(self.config.diagnostics_period_s, self.publish_diagnostics)
        self.viewer_pending: tuple[Trajectory, NDArray[np.float64], Time] | None = None
        self.create_timer(VIEWER_DELAY_S, self.flush_viewer_topics, clock=Clock(clock_type=ClockType.STEADY_TIME))
        if self.config.autostart:
            self._autostart = self.create_timer(0.0, self._run_autostart)

    @property
    def config(self) -> ReplannerConfig:
        """The current parameters."""
        config: ReplannerConfig = self.params.config
        return config

    def _run_autostart(self) -> None:
        self._autostart.cancel()
        self.trigger_configure()
        if self._state_machine.current_state[1] == "inactive":
            self.trigger_activate()

    # Lifecycle ---------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the policy (the checkpoint parameter, or the shipped one)."""
        path = FilePath(self.config.checkpoint) if self.config.checkpoint else DEFAULT_CHECKPOINT
        torch.set_num_threads(self.config.torch_threads)
        try:
            self.planner = CertifiedPlanner.from_checkpoint(path, max_time_scale=self.config.max_time_scale)
        except Exception as exc:
            self.get_logger().error(f"cannot load the policy checkpoint {path}: {exc}")
            return TransitionCallbackReturn.FAILURE
        if not self._created:
            self.trajectory_pub = self.create_lifecycle_publisher(MultiDOFJointTrajectory, "trajectory", qos.LATCHED)
            self.path_pub = self.create_lifecycle_publisher(Path, "planned_path", qos.LATCHED)
            self.markers_pub = self.create_lifecycle_publisher(MarkerArray, "trajectory_markers", qos.LATCHED)
            self._created = True
        self.get_logger().info(f"policy loaded from {path}")
        return super().on_configure(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Drop the policy."""
        self.planner = None
        return super().on_cleanup(state)

    @property
    def active(self) -> bool:
        """Whether the node is serving paths."""
        return bool(self._state_machine.current_state[1] == "active")

    # Inputs ------------------------------------------------------------------------------------------------
    def on_odometry(self, msg: Odometry) -> None:
        """Keep the start state up to date; odometry that is not finite is refused (the last good state stays)."""
        try:
            state = odometry_state(msg)
            if not state.is_finite():
                self.bad_odometry += 1
                if self.bad_odometry == 1 or self.bad_odometry % 100 == 0:
                    self.report_error(f"odometry refused ({self.bad_odometry} so far): it is not finite")
                return
            self.start.update(
                state.stamp_ns, state.position_m, state.velocity_m_s, self.config.accel_filter_time_constant_s
            )
        except Exception as exc:  # the node must live on
            self.report_error(f"odometry failed unexpectedly: {exc!r}")

    def on_waypoints(self, msg: Path) -> None:
        """Plan through a new course; a bad one gets an error status and the node goes on."""
        received = time.perf_counter()
        if not self.active:
            self.report_error("path ignored: the replanner is not active (configure and activate it first)")
            return
        try:
            course = course_from_path(msg, self.config.frame_id, self.config.max_waypoints, self.last_path_stamp_ns)
            self.plan_and_publish(course.waypoints, course.stamp_ns, received)
            self.last_path_stamp_ns = max(self.last_path_stamp_ns, course.stamp_ns)
        except TrajectoryInputError as exc:
            self.report_error(f"path refused: {exc}")
        except Exception as exc:  # the node must live on: report anything unexpected and serve the next path
            self.report_error(f"path failed unexpectedly: {exc!r}\n{traceback.format_exc()}")

    def on_replan(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Plan again from the current state through the waypoints not yet reached."""
        received = time.perf_counter()
        if not self.active or self.waypoints is None or self.trajectory is None:
            response.success, response.message = False, "nothing to replan: no course has been planned yet"
            return response
        elapsed_s = (self.start.stamp_ns - self.plan_stamp_ns) * 1e-9
        remaining = self.waypoints[1:][self.trajectory.knot_times_s[1:] > elapsed_s]
        if remaining.shape[0] == 0:
            response.success, response.message = False, "nothing to replan: every waypoint has been reached"
            return response
        try:
            result = self.plan_and_publish(np.vstack([self.waypoints[:1], remaining]), 0, received)
        except TrajectoryInputError as exc:
            self.report_error(f"replan refused: {exc}")
            response.success, response.message = False, str(exc)
            return response
        except Exception as exc:  # the node must live on: report it and answer the caller
            self.report_error(f"replan failed unexpectedly: {exc!r}\n{traceback.format_exc()}")
            response.success, response.message = False, f"replan failed unexpectedly: {exc!r}"
            return response
        response.success = result.feasible
        response.message = "replanned" if result.feasible else result.reason
        return response

    # Planning ----------------------------------------------------------------------------------------------
    def plan_and_publish(self, waypoints: NDArray[np.float64], path_stamp_ns: int, received: float) -> PlanResult:
        """Plan from the current state through `waypoints[1:]`, publish, and report; return the result."""
        assert self.planner is not None
        config = self.config
        now_ns = self.get_clock().now().nanoseconds
        fresh = self.start.stamp_ns and (now_ns - self.start.stamp_ns) * 1e-9 <= config.max_odometry_age_s
        if fresh:
            plan_ns = self.start.stamp_ns
            start = EndpointState(velocity=self.start.velocity.copy(), acceleration=self.start.acceleration.copy())
            goals = waypoints[1:]
            near = np.linalg.norm(goals[:, :3] - self.start.position, axis=1) <= config.min_waypoint_spacing_m
            first = int(np.argmin(near)) if not near.all() else goals.shape[0] - 1
            points = np.vstack([np.append(self.start.position, waypoints[0, 3]), goals[first:]])
            if points.shape[0] < 2 or np.linalg.norm(points[-1, :3] - points[0, :3]) <= config.min_waypoint_spacing_m:
                raise CourseError("the vehicle is already at the last waypoint: nothing to plan")
        else:
            plan_ns = path_stamp_ns or now_ns
            start, points = None, waypoints
        result = self.planner.plan(points, start)
        if not result.feasible or result.trajectory is None:
            raise CourseError(f"no feasible trajectory: {result.reason}")
        sampled = SampledTrajectory.from_trajectory(result.trajectory, config.samples_per_segment)
        self.trajectory_pub.publish(write_trajectory(sampled, config.frame_id, plan_ns))  # CDR bytes, built directly
        stamp = ns_to_stamp(plan_ns)
        latency_ms = 1e3 * (time.perf_counter() - received)
        self.waypoints, self.trajectory, self.plan_stamp_ns = points, result.trajectory, plan_ns
        if config.publish_viewer_topics:  # after this callback: the trajectory goes out first, alone
            self.viewer_pending = (result.trajectory, points, stamp)
        self.latencies_ms.append(latency_ms)
        self.planning_ms.append(result.planning_time_ms)
        values = {
            "planning_time_ms": result.planning_time_ms,
            "latency_ms": latency_ms,
            "total_time_s": result.total_time_s,
            "waypoints": points.shape[0],
            "certified_by": result.certified_by,
            "time_scale": result.time_scale,
            "start": "odometry" if fresh else "first pose at rest",
            "plan_stamp_ns": plan_ns,
        }
        self.status_pub.publish(diagnostic_status(self.get_name(), "mfrl", DiagnosticStatus.OK, "planned", values))
        return result

    def flush_viewer_topics(self) -> None:
        """Publish the viewer topics of the last plan, if not done yet."""
        if self.viewer_pending is not None and self.active:
            pending, self.viewer_pending = self.viewer_pending, None
            self.publish_viewer_topics(*pending)

    def publish_viewer_topics(self, trajectory: Trajectory, points: NDArray[np.float64], stamp: Time) -> None:
        """The plan as a nav_msgs/Path and as markers coloured by speed."""
        config = self.config
        times, derivatives = trajectory.sample(config.viewer_sample_rate_hz)
        del times
        positions = derivatives[0, :, :3]
        speeds = np.linalg.norm(derivatives[1, :, :3], axis=1)
        self.path_pub.publish(path_from_points(derivatives[0], config.frame_id, stamp))
        self.markers_pub.publish(
            plan_markers(points, positions, speeds, config.frame_id, stamp, config.max_marker_speed_m_s)
        )

    def report_error(self, message: str) -> None:
        """Log an error and publish it as the status."""
        self.errors += 1
        self.get_logger().error(message)
        self.status_pub.publish(
            diagnostic_status(self.get_name(), "mfrl", DiagnosticStatus.ERROR, message.splitlines()[0], {})
        )

    def publish_diagnostics(self) -> None:
        """Planner latency, plan age and counts on /diagnostics."""
        now_ns = self.get_clock().now().nanoseconds
        latencies = np.array(self.latencies_ms[-100:])
        values: dict[str, object] = {
            "state": self._state_machine.current_state[1],
            "plans": len(self.latencies_ms),
            "errors": self.errors,
            "bad_odometry": self.bad_odometry,
            "plan_age_s": (now_ns - self.plan_stamp_ns) * 1e-9 if self.plan_stamp_ns else "no plan",
        }
        if latencies.size:
            values["latency_last_ms"] = float(latencies[-1])
            values["latency_p50_ms"] = float(np.percentile(latencies, 50))
            values["planning_last_ms"] = float(self.planning_ms[-1])
        level = DiagnosticStatus.OK if self.active else DiagnosticStatus.WARN
        message = "serving" if self.active else "not active"
        stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(diagnostics_message(stamp, self.get_name(), "mfrl", level, message, values))


def main(args: list[str] | None = None) -> int:
    """Entry point of the `replanner` executable."""
    return run_node(Replanner, args)


if __name__ == "__main__":
    raise SystemExit(main())

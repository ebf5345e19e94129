"""The `replanner` node: waypoint paths in, certified minimum-snap trajectories out (MFRL policy).

Lifecycle: configuring loads the policy (with the certificate's limits) and freezes what the process holds then
out of the garbage collector's way (`freeze_heap`); activating starts serving;
cleaning up drops it and forgets the last path's stamp; shutting down ends the process. A path
(nav_msgs/Path on `waypoints`) is a course whose first pose is its start: the node replaces that
pose with the start state and plans through the rest. The start state is, in order:

- "reference": while a plan is being flown (the node published one and fresh odometry puts the vehicle
  within `max_reference_deviation_m` of its reference now), the reference the vehicle will be flying a
  *lead* from now (position, velocity, acceleration, jerk, yaw and its rates), and the new plan is
  stamped then: it reaches the tracker before its start and takes over there without a jump. The lead is
  the planning deadline plus a delivery margin, on the node's clock (in simulation: times the measured
  rate of sim time to wall time), within [`min_plan_lead_s`, `max_plan_lead_s`]; a plan whose planning
  took longer than its lead is refused ("late"), as a late switch would make the tracker blend two plans;
- "odometry": with fresh odometry otherwise, the vehicle's position and velocity (acceleration and jerk
  from the plan being flown while the vehicle is within `max_tracking_error_m` of it, else zero), stamped
  with the odometry (the tracker blends the difference out); with no plan flown yet, at rest a lead ahead;
- "first pose at rest": without fresh odometry, the path's own first pose.

`~/replan` (std_srvs/Trigger) plans again, from the same start, through the waypoints not yet reached.
Each plan goes out as a sampled MultiDOFJointTrajectory on `trajectory` (its CDR bytes, written directly), then
(from a worker thread that keeps out of the plans' way, `ViewerWorker`; at most `max_viewer_samples` samples) a
nav_msgs/Path (`planned_path`) and markers coloured by speed (`trajectory_markers`) for viewers, all latched.
Every path that reaches the node gets a status on `~/status`: OK with the planning figures and the planner's
`repair` (e.g. "waypoint 1 taken as reached ..." when the vehicle, close to it and fast, was planned on to the
next waypoint), or ERROR with the reason, also logged. A refused path or a refused plan publishes nothing, so
the vehicle keeps flying its current plan. Refused inputs are counted by reason on /diagnostics, together with
the vehicle's envelope (`quadsim.health`).

A node that has fallen behind its inputs (its process was starved, and paths, odometry and /clock
queued up) plans nothing: a plan made then starts from a stale clock and a stale state, reaches the
tracker late (the tracker refuses it as stale, or blends a large jump) and, added to this node's
timeline though the vehicle never flew it, would make the next plans start from where the vehicle is
not. Before each plan the node measures, with the DDS source timestamps against this host's clock (times
the node clock's rate), how long the path waited, and how much longer ago than its own period the
odometry it starts from was published; past `max_input_lag_s` it refuses the path as "behind": the
client sends it again, and the queue drains meanwhile.
"""

from __future__ import annotations

import gc
import math
import statistics
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

import numpy as np
import torch
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry, Path
from numpy.typing import NDArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.subscription import MessageInfo
from std_srvs.srv import Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory
from visualization_msgs.msg import MarkerArray

from mfplan.planner import DEFAULT_CHECKPOINT, CertifiedPlanner, PlanResult
from mfplan.timeline import PlanTimeline
from mfrl import qos
from mfrl.configs import ReplannerConfig, geofence_of
from mfrl.conversions import (
    CourseError,
    course_from_path,
    diagnostic_status,
    diagnostics_message,
    ns_to_stamp,
    odometry_state,
    path_from_points,
    plan_markers,
    truncate,
)
from mfrl.node_main import run_node
from mfrl.parameters import ConfigParameters
from mfrl.trajectory_wire import write_trajectory
from minsnap import EndpointState, Trajectory, TrajectoryInputError
from quadsim.certificate import SafetyLimits
from quadsim.health import EnvelopeLimits, EnvelopeMonitor, tilt_of
from quadsim.sampled_trajectory import SampledTrajectory
from quadsim.vehicle import VehicleParams

ODOMETRY_PERIOD_S = 0.01
"""Odometry is checked and taken at most this often (wall time), and always before a plan (see on_odometry)."""

RECENT_SAMPLES = 100
"""Latencies and planning times kept for the /diagnostics percentiles (the counts are kept apart)."""
PLAN_DELIVERY_S = 0.02
"""Wall time allowed, beyond the planning deadline, for a plan to reach the tracker (the lead's margin)."""
LATE_MARGIN_S = 0.005
"""Wall time allowed for a plan to reach the tracker when checking that it is not late."""
SIM_RATE_WINDOW_S = 0.5
"""Wall time over which the rate of the node clock to wall time is measured (1 outside simulation)."""
HOVER_SPEED_M_S = 0.2
"""Below this speed a vehicle with no plan is taken to hover where it is (its first plan starts at rest)."""

VIEWER_DELAY_S = 0.01
"""Wall time between a plan's trajectory going out and its viewer topics being built (see ViewerWorker)."""
VIEWER_CHUNK = 100
"""Samples of the viewer topics built between two of the viewer worker's checkpoints."""

ERROR_LOG_THROTTLE = 100
"""A refusal that repeats (bad odometry at 250 Hz) is logged the first time and then every this many."""


def freeze_heap() -> None:
    """Collect once, then keep everything alive now (libraries, the policy) out of later collections.

    With torch, rclpy and the planner loaded the process holds about a million objects that the garbage
    collector scans on every full collection: 150-200 ms, measured in this node, every few hundred plans, in
    the middle of one (a plan that late is refused, or reaches the tracker late). Frozen objects are never
    scanned, so a full collection costs what the objects made since cost (`gc.freeze`).
    """
    gc.collect()
    gc.freeze()


def vehicle_max_speed_m_s(configured: float, vehicle: VehicleParams | None = None) -> float:
    """The speed limit: the parameter when > 0, else the vehicle's (its description's, or a default)."""
    if configured > 0.0:
        return configured
    return float((vehicle or VehicleParams()).max_speed_m_s)


def safety_limits(config: ReplannerConfig) -> SafetyLimits:
    """The certificate's limits from the parameters."""
    return SafetyLimits(
        max_speed_m_s=config.max_speed_m_s or None,
        max_acceleration_m_s2=config.max_acceleration_m_s2 or None,
        max_tilt_deg=config.max_plan_tilt_deg or None,
        max_excursion_m=config.max_excursion_m,
        ground_clearance_m=config.ground_clearance_m,
        geofence=geofence_of(config),
    )


def make_planner(path: FilePath, config: ReplannerConfig) -> CertifiedPlanner:
    """The planner of a checkpoint with the parameters' limits."""
    return CertifiedPlanner.from_checkpoint(
        path,
        max_time_scale=config.max_time_scale,
        limits=safety_limits(config),
        deadline_s=config.planning_deadline_s,
        pass_horizon_s=config.pass_horizon_s,
        reach_close_waypoint_first=config.reach_close_waypoint_first,
    )


@dataclass(frozen=True)
class Start:
    """Where a plan starts: which kind, its first point (x, y, z, yaw), its end state, and its stamp (ns)."""

    kind: str
    point: NDArray[np.float64] | None
    state: EndpointState | None
    stamp_ns: int


class OdometryGate:
    """The latest plausible odometry: what it says, when it was stamped and when it was received (node clock).

    `check` refuses a sample whose speed exceeds the bound, whose position jumped farther than that speed
    allows since the previous sample, or whose velocity changed faster than the acceleration bound. The
    jump and acceleration checks compare with the previous sample that passed the absolute checks
    (refused or not), so a genuine jump is refused once and then followed: nothing stays poisoned.
    """

    def __init__(self) -> None:
        self.stamp_ns = 0
        self.received_ns = 0
        self.position = np.zeros(3)
        self.velocity = np.zeros(3)
        self.tilt_rad = 0.0
        self._previous: tuple[int, int, NDArray[np.float64], NDArray[np.float64]] | None = None

    def check(
        self,
        stamp_ns: int,
        received_ns: int,
        position: NDArray[np.float64],
        velocity: NDArray[np.float64],
        max_speed_m_s: float,
        max_acceleration_m_s2: float,
        workspace_bound_m: float,
    ) -> str:
        """The reason to refuse this sample ("speed", "position jump", "acceleration", "workspace"), or ""."""
        speed = float(np.linalg.norm(velocity))
        if speed > max_speed_m_s:
            return "speed"
        if float(np.max(np.abs(position))) > workspace_bound_m:
            return "workspace"
        previous, self._previous = self._previous, (stamp_ns, received_ns, position, velocity)
        if previous is None:
            return ""
        then_stamp, then_received, then_position, then_velocity = previous
        dt = (stamp_ns - then_stamp) * 1e-9
        if dt <= 0.0:
            dt = max((received_ns - then_received) * 1e-9, 0.0)
        jump = float(np.linalg.norm(position - then_position))
        if jump > max_speed_m_s * dt + 0.05:
            return "position jump"
        if dt > 1e-4 and float(np.linalg.norm(velocity - then_velocity)) > max_acceleration_m_s2 * dt + 0.5:
            return "acceleration"
        return ""

    def accept(
        self, stamp_ns: int, received_ns: int, position: NDArray[np.float64], velocity: NDArray[np.float64], tilt: float
    ) -> None:
        """Take a sample that passed the checks."""
        self.stamp_ns, self.received_ns = stamp_ns, received_ns
        self.position, self.velocity, self.tilt_rad = position, velocity, tilt

    def fresh(self, now_ns: int, max_age_s: float) -> bool:
        """Whether the latest sample was received, and stamped, within `max_age_s` of `now_ns`."""
        if not self.received_ns:
            return False
        return (now_ns - self.received_ns) * 1e-9 <= max_age_s and (now_ns - self.stamp_ns) * 1e-9 <= max_age_s


class ViewerWorker:
    """Builds and publishes the viewer topics of the latest plan in a thread of its own (latest plan wins), out of
    the way of the plans.

    Building the viewer topics as rclpy messages is a few milliseconds of Python per plan (more than planning on a
    loaded machine), and Python runs one thread at a time: a viewer build that overlapped a plan held it up by as
    much, the interpreter handing over only every 5 ms. So the worker starts a plan's viewer topics `delay_s` after
    it was submitted (its trajectory's subscribers read it meanwhile), not while the node is planning (`planning`),
    and `publish` calls `checkpoint` between chunks of its work: there the worker sleeps briefly, so a plan that
    arrives takes the interpreter within a chunk, and waits for that plan to be done.
    """

    def __init__(self, publish: Any, delay_s: float = 0.0, pause_s: float = 2e-4) -> None:
        self._publish = publish
        self._delay_s = delay_s
        self._pause_s = pause_s
        self._pending: tuple[Any, ...] | None = None
        self._due = 0.0  # time.monotonic() when the pending item may start
        self._planning = 0  # plans in progress (the node's thread)
        self._condition = threading.Condition()
        self._stopped = False
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="replanner-viewer", daemon=True)
        self._thread.start()

    def submit(self, *item: Any) -> None:
        """Replace what is pending with this plan (due when the plan it replaces was: replans faster than the delay
        do not hold the viewer topics back for ever)."""
        with self._condition:
            if self._pending is None:
                self._due = time.monotonic() + self._delay_s
            self._pending = item
            self._condition.notify()

    @contextmanager
    def planning(self) -> Iterator[None]:
        """Hold the viewer work back while the block (a plan) runs."""
        with self._condition:
            self._planning += 1
        try:
            yield
        finally:
            with self._condition:
                self._planning -= 1
                self._condition.notify()

    def checkpoint(self) -> None:
        """Between chunks of viewer work: let a plan take the interpreter, and wait while one runs."""
        time.sleep(self._pause_s)  # a real sleep: the plan's thread gets the interpreter now, not in 5 ms
        with self._condition:
            while self._planning and not self._stopped:
                self._condition.wait()

    def _next(self) -> tuple[Any, ...] | None:
        """The item to publish when it is due and no plan runs; None once stopped."""
        with self._condition:
            while not self._stopped:
                wait_s = self._due - time.monotonic()
                if self._pending is None or self._planning:
                    self._condition.wait()
                elif wait_s > 0.0:
                    self._condition.wait(wait_s)
                else:
                    item, self._pending = self._pending, None
                    return item
            return None

    def _run(self) -> None:
        while (item := self._next()) is not None:
            try:
                self._publish(*item)
            except Exception:  # a viewer must never take the node down
                self.failures += 1

    def stop(self) -> None:
        """End the thread (pending work is dropped)."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        self._thread.join(timeout=2.0)


class Replanner(LifecycleNode):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("replanner")
        self.exit_code: int | None = None
        self.params = ConfigParameters(
            self,
            ReplannerConfig,
            on_change=self.apply_config,
            read_only=("autostart", "diagnostics_period_s"),
        )
        self.planner: CertifiedPlanner | None = None
        self.odometry = OdometryGate()
        self.pending_odometry: Odometry | None = None
        self.pending_odometry_sent_ns = 0  # its DDS source timestamp (system clock; 0: not given)
        self.odometry_sent_ns = 0  # the same for the odometry taken last
        self.odometry_intervals_ns: deque[int] = deque([0], maxlen=5)  # between the latest samples' publications
        self.path_sent_ns = 0  # the DDS source timestamp of the path being planned (0: a replan, or not given)
        self.odometry_taken_wall = 0.0
        self.last_path_stamp_ns = 0
        self.waypoints: NDArray[np.float64] | None = None  # the points of the last plan (its start first)
        self.trajectory: Trajectory | None = None  # the newest plan
        self.waypoint_times_s = np.zeros(0)  # when the last plan reaches each of its points
        self.plan_stamp_ns = 0  # its start
        self.timeline = PlanTimeline()  # the plans sent that are flown now or will be
        self.reference_deviation_m = math.inf  # odometry's distance from the reference at the last plan's start
        self.resynchronised = 0  # plans found flown later than stamped (timeline.resynchronise)
        self.sim_rates: deque[float] = deque([1.0], maxlen=3)  # node-clock seconds per wall second, recent windows
        self.sim_rate_mark: tuple[float, int] | None = None  # (wall, node clock) where the window began
        self.plan_start = ""
        self.plans = 0
        self.latencies_ms: deque[float] = deque(maxlen=RECENT_SAMPLES)
        self.planning_ms: deque[float] = deque(maxlen=RECENT_SAMPLES)
        self.errors = 0
        self.refused: Counter[str] = Counter()  # paths and replans refused, by reason
        self.bad_odometry: Counter[str] = Counter()  # odometry refused, by reason
        self.monitor = EnvelopeMonitor()
        self.apply_config(self.config)
        self._created = False
        self.status_pub = self.create_publisher(DiagnosticStatus, "~/status", qos.STATUS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.REQUEST)
        self.create_subscription(Odometry, "odom", self.on_odometry, qos.SENSOR)
        self.create_subscription(Path, "waypoints", self.on_waypoints, qos.WAYPOINTS)
        self.create_service(Trigger, "~/replan", self.on_replan)
        self.create_timer(self.config.diagnostics_period_s, self.publish_diagnostics)
        self.viewer = ViewerWorker(self.publish_viewer_topics, VIEWER_DELAY_S)
        if self.config.autostart:
            self._autostart = self.create_timer(0.0, self._run_autostart)

    @property
    def config(self) -> ReplannerConfig:
        """The current parameters."""
        config: ReplannerConfig = self.params.config
        return config

    def apply_config(self, config: ReplannerConfig) -> None:
        """The envelope's bounds from the parameters (the planner's limits apply at the next configure)."""
        self.max_speed_m_s = vehicle_max_speed_m_s(config.max_speed_m_s)
        self.monitor.limits = EnvelopeLimits(
            max_tracking_error_m=config.max_tracking_error_m,
            warn_tracking_error_m=config.warn_tracking_error_m,
            max_speed_m_s=self.max_speed_m_s,
            max_tilt_rad=math.radians(config.max_tilt_deg),
            recent_s=config.warn_hold_s,
        )

    def _run_autostart(self) -> None:
        self._autostart.cancel()
        self.trigger_configure()
        if self._state_machine.current_state[1] == "inactive":
            self.trigger_activate()

    def now_ns(self) -> int:
        """The node's clock (sim time under use_sim_time)."""
        return int(self.get_clock().now().nanoseconds)

    # Lifecycle ---------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the policy (the checkpoint parameter, or the shipped one), with the certificate's limits."""
        path = FilePath(self.config.checkpoint) if self.config.checkpoint else DEFAULT_CHECKPOINT
        torch.set_num_threads(self.config.torch_threads)
        try:
            self.planner = make_planner(path, self.config)
        except Exception as exc:
            self.get_logger().error(f"cannot load the policy checkpoint {truncate(str(path), 200)}: {exc}")
            return TransitionCallbackReturn.FAILURE
        if not self._created:
            self.trajectory_pub = self.create_lifecycle_publisher(MultiDOFJointTrajectory, "trajectory", qos.LATCHED)
            self.path_pub = self.create_lifecycle_publisher(Path, "planned_path", qos.LATCHED)
            self.markers_pub = self.create_lifecycle_publisher(MarkerArray, "trajectory_markers", qos.LATCHED)
            self._created = True
        freeze_heap()
        self.get_logger().info(f"policy loaded from {truncate(str(path), 200)}")
        return super().on_configure(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Drop the policy and the last path's stamp (a path of any age is accepted after a new configure)."""
        self.planner = None
        gc.unfreeze()  # the old policy can be collected; the next configure freezes what it loads
        self.last_path_stamp_ns = 0
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """End the process (run_node's loop sees `exit_code`)."""
        self.planner = None
        self.exit_code = 0
        self.get_logger().info("lifecycle shutdown: the node exits")
        return super().on_shutdown(state)

    def close(self) -> None:
        """Stop the viewer thread (run_node calls this before destroying the node)."""
        self.viewer.stop()

    @property
    def active(self) -> bool:
        """Whether the node is serving paths."""
        return bool(self._state_machine.current_state[1] == "active")

    # Inputs ------------------------------------------------------------------------------------------------
    def on_odometry(self, msg: Odometry, info: MessageInfo) -> None:
        """Keep the latest odometry (and when it was published); check and take it at most every
        ODOMETRY_PERIOD_S (wall), and before a plan.

        Odometry comes at the controller's rate (250 Hz, faster in accelerated simulation); checking every
        sample kept this single-threaded node so busy that its clock (/clock is served by the same executor)
        fell behind and its plans went out stamped in the past, which the tracker refuses as stale.
        """
        sent_ns = int(info.get("source_timestamp") or 0)
        if sent_ns > self.pending_odometry_sent_ns > 0:
            self.odometry_intervals_ns.append(sent_ns - self.pending_odometry_sent_ns)
        self.pending_odometry, self.pending_odometry_sent_ns = msg, sent_ns
        now = time.monotonic()
        if now - self.odometry_taken_wall >= ODOMETRY_PERIOD_S:
            self.odometry_taken_wall = now
            self.take_odometry()

    def measure_sim_rate(self) -> None:
        """Node-clock seconds per wall second over the last SIM_RATE_WINDOW_S (1 on a wall clock)."""
        wall, clock_ns = time.monotonic(), self.now_ns()
        mark = self.sim_rate_mark
        if mark is None or clock_ns < mark[1]:
            self.sim_rate_mark = (wall, clock_ns)
            return
        if wall - mark[0] >= SIM_RATE_WINDOW_S:
            self.sim_rates.append(min(max((clock_ns - mark[1]) * 1e-9 / (wall - mark[0]), 0.05), 100.0))
            self.sim_rate_mark = (wall, clock_ns)

    def take_odometry(self) -> None:
        """Check the pending odometry sample and keep it, or refuse and count it (the last good state stays)."""
        msg, self.pending_odometry = self.pending_odometry, None
        if msg is None:
            return
        self.odometry_sent_ns = self.pending_odometry_sent_ns
        self.measure_sim_rate()
        received_ns = self.now_ns()
        try:
            state = odometry_state(msg)
            config = self.config
            if not state.is_finite():
                self.refuse_odometry("not finite", "it is not finite", received_ns)
                return
            if not 0 <= int(msg.header.stamp.nanosec) < 1_000_000_000 or int(msg.header.stamp.sec) < 0:
                self.refuse_odometry("invalid stamp", "its stamp is invalid", received_ns)
                return
            reason = self.odometry.check(
                state.stamp_ns,
                received_ns,
                state.position_m,
                state.velocity_m_s,
                config.max_odometry_speed_factor * self.max_speed_m_s,
                config.max_odometry_acceleration_m_s2,
                config.workspace_bound_m,
            )
            if reason:
                self.refuse_odometry(reason, f"it is implausible ({reason})", received_ns)
                return
            tilt = tilt_of(state.rotation)
            self.odometry.accept(state.stamp_ns, received_ns, state.position_m, state.velocity_m_s, tilt)
            reference = self.reference_at(received_ns)
            active = self.trajectory is not None and received_ns < self.plan_end_ns()
            self.monitor.update(
                received_ns * 1e-9,
                state.position_m,
                state.velocity_m_s,
                tilt,
                None if reference is None else reference[0, :3],
                active,
            )
        except Exception as exc:  # the node must live on
            self.refuse_odometry("unexpected", f"it failed unexpectedly: {exc!r}", received_ns)

    def refuse_odometry(self, reason: str, why: str, now_ns: int) -> None:
        """Count refused odometry by reason; log the first of each reason and every 100th."""
        self.bad_odometry[reason] += 1
        count = self.bad_odometry[reason]
        self.monitor.note_problem(now_ns * 1e-9, f"odometry refused ({reason})")
        if count == 1 or count % ERROR_LOG_THROTTLE == 0:
            self.report_error(f"odometry refused ({count} so far for this reason): {why}", "", {"reason": reason})

    def on_waypoints(self, msg: Path, info: MessageInfo) -> None:
        """Plan through a new course; a bad one gets an error status and the node goes on."""
        received = time.perf_counter()
        with self.viewer.planning():  # the viewer thread keeps out of the way until the trajectory is out
            self.serve_path(msg, info, received)

    def serve_path(self, msg: Path, info: MessageInfo, received: float) -> None:
        """on_waypoints' work: check the path, plan and publish, or report why not."""
        self.path_sent_ns = int(info.get("source_timestamp") or 0)
        stamp = f"{int(msg.header.stamp.sec)}.{int(msg.header.stamp.nanosec):09d}"
        if not self.active:
            self.report_error(
                "path ignored: the replanner is not active (configure and activate it first)",
                "path: inactive",
                {"path_stamp": stamp},
            )
            return
        try:
            config = self.config
            course = course_from_path(
                msg,
                config.frame_id,
                config.max_waypoints,
                self.last_path_stamp_ns,
                now_ns=self.now_ns(),
                max_stamp_ahead_ns=round(config.max_path_stamp_ahead_s * 1e9),
                workspace_bound_m=config.workspace_bound_m,
            )
            self.check_geofence(course.waypoints[1:])
            try:
                self.plan_and_publish(course.waypoints, course.stamp_ns, received, stamp)
            finally:
                self.path_sent_ns = 0
            self.last_path_stamp_ns = max(self.last_path_stamp_ns, course.stamp_ns)
        except CourseError as exc:
            self.report_error(f"path refused: {exc}", f"path: {exc.reason}", {"path_stamp": stamp})
        except TrajectoryInputError as exc:
            self.report_error(f"path refused: {exc}", "path: invalid course", {"path_stamp": stamp})
        except Exception as exc:  # the node must live on: report anything unexpected and serve the next path
            self.report_error(
                f"path failed unexpectedly: {exc!r}\n{traceback.format_exc()}",
                "path: unexpected",
                {"path_stamp": stamp},
            )

    def check_geofence(self, goals: NDArray[np.float64]) -> None:
        """Refuse goals outside the geofence (the certificate also checks the whole trajectory)."""
        fence = geofence_of(self.config)
        if fence is None:
            return
        for i, goal in enumerate(goals):
            if not fence.contains([float(goal[0]), float(goal[1]), float(goal[2])]):
                raise CourseError(
                    f"pose {i + 1} ({goal[0]:.6g}, {goal[1]:.6g}, {goal[2]:.6g}) is outside the geofence {fence}",
                    "geofence",
                )

    def on_replan(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Plan again, from the same start as a path would, through the waypoints not yet reached."""
        received = time.perf_counter()
        with self.viewer.planning():
            return self.replan(response, received)

    def replan(self, response: Trigger.Response, received: float) -> Trigger.Response:
        """on_replan's work."""
        if not self.active or self.waypoints is None or self.trajectory is None:
            response.success, response.message = False, "nothing to replan: no course has been planned yet"
            return response
        now_ns = self.now_ns()
        if self.plan_start == "first pose at rest" and not self.odometry.fresh(now_ns, self.config.max_odometry_age_s):
            remaining = self.waypoints[1:]  # no vehicle to say how far it got: every waypoint is still ahead
        else:
            elapsed_s = (now_ns - self.plan_stamp_ns) * 1e-9
            remaining = self.waypoints[1:][self.waypoint_times_s[1:] > elapsed_s]
        if remaining.shape[0] == 0:
            response.success, response.message = False, "nothing to replan: every waypoint has been reached"
            return response
        try:
            result = self.plan_and_publish(np.vstack([self.waypoints[:1], remaining]), 0, received, "replan")
        except CourseError as exc:
            self.report_error(f"replan refused: {exc}", f"replan: {exc.reason}", {})
            response.success, response.message = False, str(exc)
            return response
        except TrajectoryInputError as exc:
            self.report_error(f"replan refused: {exc}", "replan: invalid course", {})
            response.success, response.message = False, str(exc)
            return response
        except Exception as exc:  # the node must live on: report it and answer the caller
            self.report_error(
                f"replan failed unexpectedly: {exc!r}\n{traceback.format_exc()}", "replan: unexpected", {}
            )
            response.success, response.message = False, f"replan failed unexpectedly: {exc!r}"
            return response
        response.success, response.message = result.feasible, "replanned"
        return response

    # Planning ----------------------------------------------------------------------------------------------
    def plan_end_ns(self) -> int:
        """When the newest plan ends (node clock); 0 without one."""
        return self.timeline.end_ns()

    def reference_at(self, t_ns: int) -> NDArray[np.float64] | None:
        """Position, velocity, acceleration and jerk (`4 x 4`: x, y, z, yaw each) of the plan flown at `t_ns`
        (`mfplan.timeline`); None without a plan."""
        return self.timeline.reference_at(t_ns)

    def plan_lead_ns(self) -> int:
        """How far ahead of now a plan from the reference starts (see the module docstring)."""
        config = self.config
        lead_s = max(self.sim_rates) * (config.planning_deadline_s + PLAN_DELIVERY_S)
        return round(1e9 * min(max(lead_s, config.min_plan_lead_s), config.max_plan_lead_s))

    def choose_start(self, now_ns: int, path_stamp_ns: int, first_pose: NDArray[np.float64]) -> Start:
        """The start of a new plan (see the module docstring)."""
        if not self.odometry.fresh(now_ns, self.config.max_odometry_age_s):
            return Start("first pose at rest", None, None, path_stamp_ns or now_ns)
        reference = self.reference_at(now_ns)
        deviation = math.inf
        if reference is not None:
            deviation = float(np.linalg.norm(self.odometry.position - reference[0, :3]))
            limit = self.config.max_reference_deviation_m
            odometry = self.odometry
            moving = float(np.linalg.norm(odometry.velocity)) > HOVER_SPEED_M_S  # a late plan is being flown
            if (
                deviation > limit
                and moving
                and self.timeline.resynchronise(now_ns, odometry.position, 2.0, limit, odometry.velocity) is not None
            ):
                self.resynchronised += 1  # the plan started later than stamped (the autopilot held it)
                reference = self.reference_at(now_ns)
                assert reference is not None
                deviation = float(np.linalg.norm(self.odometry.position - reference[0, :3]))
        self.reference_deviation_m = deviation
        if reference is not None and deviation <= self.config.max_reference_deviation_m:
            start_ns = now_ns + self.plan_lead_ns()
            position, velocity, acceleration, jerk = self.reference_at(start_ns)  # type: ignore[misc]
            # jerk too: the body rates the tracker feeds forward stay continuous across the switch
            state = EndpointState(
                velocity=velocity[:3].copy(),
                acceleration=acceleration[:3].copy(),
                jerk=jerk[:3].copy(),
                yaw_rate=float(velocity[3]),
                yaw_acceleration=float(acceleration[3]),
                yaw_jerk=float(jerk[3]),
            )
            return Start("reference", position.copy(), state, start_ns)
        point = np.append(self.odometry.position, first_pose[3])
        if reference is None and float(np.linalg.norm(self.odometry.velocity)) <= HOVER_SPEED_M_S:
            # Nothing flown yet and the vehicle hovers: it stays where it is until the plan starts.
            return Start("odometry", point, EndpointState(), now_ns + self.plan_lead_ns())
        # Position and velocity from odometry; acceleration and jerk from the plan being flown while the vehicle
        # is still near it (what the tracker is asking for now: a new plan that starts at zero acceleration
        # makes the tracker's blend of the two demand a burst of snap), else zero (never differentiated odometry).
        state = EndpointState(velocity=self.odometry.velocity.copy())
        if reference is not None and deviation <= self.config.max_tracking_error_m:
            state = EndpointState(
                velocity=self.odometry.velocity.copy(),
                acceleration=reference[2, :3].copy(),
                jerk=reference[3, :3].copy(),
            )
        return Start("odometry", point, state, min(self.odometry.stamp_ns, now_ns))

    def input_lag_s(self) -> float:
        """How far behind its inputs the node is (node-clock seconds): how long the path being planned waited, or
        how much longer ago than its period the odometry taken last was published, whichever is more (0 when the
        middleware gave no source timestamps)."""
        now_ns = time.time_ns()
        path_wait_ns = now_ns - self.path_sent_ns if self.path_sent_ns else 0
        period_ns = int(statistics.median(self.odometry_intervals_ns))  # 5 ints: np.median costs 40 us here
        starts_from_odometry = self.odometry.fresh(self.now_ns(), self.config.max_odometry_age_s)
        odometry_wait_ns = now_ns - self.odometry_sent_ns - period_ns if self.odometry_sent_ns else 0
        odometry_wait_ns = odometry_wait_ns if starts_from_odometry else 0  # else the path's first pose is used
        return max(self.sim_rates) * max(path_wait_ns, odometry_wait_ns, 0) * 1e-9

    def check_input_lag(self) -> None:
        """Refuse to plan while the node is behind its inputs (see the module docstring)."""
        limit = self.config.max_input_lag_s
        if limit <= 0.0:
            return
        lag = self.input_lag_s()
        if lag > limit:
            raise CourseError(
                f"behind: this node is {lag:.3f} s (node clock) behind its inputs (the path waited, or the newest "
                f"odometry it has read is older than its period), more than max_input_lag_s={limit} s; a plan now "
                "would start from a stale state: the current plan is kept (send the path again)",
                "behind",
            )

    def plan_and_publish(
        self, waypoints: NDArray[np.float64], path_stamp_ns: int, received: float, path_stamp: str
    ) -> PlanResult:
        """Plan from the start state through `waypoints[1:]`, publish, and report; return the result.

        Raises:
            CourseError: nothing left to plan, or the planner refused (nothing is published then).
        """
        assert self.planner is not None
        config = self.config
        self.take_odometry()  # the latest sample, if it has not been taken yet
        self.check_input_lag()
        now_ns = self.now_ns()
        chosen_wall = time.perf_counter()
        start = self.choose_start(now_ns, path_stamp_ns, waypoints[0])
        if start.point is not None:
            goals = waypoints[1:]
            near = np.linalg.norm(goals[:, :3] - start.point[:3], axis=1) <= config.min_waypoint_spacing_m
            first = int(np.argmin(near)) if not near.all() else goals.shape[0] - 1
            points = np.vstack([start.point, goals[first:]])
            if points.shape[0] < 2 or np.linalg.norm(points[-1, :3] - points[0, :3]) <= config.min_waypoint_spacing_m:
                raise CourseError("the vehicle is already at the last waypoint: nothing to plan", "at goal")
        else:
            points = waypoints
        result = self.planner.plan(points, start.state)
        if not result.feasible or result.trajectory is None:
            constraint = result.constraint
            raise CourseError(
                f"no feasible trajectory ({constraint}): {result.reason}; the current plan is kept",
                f"planner: {constraint}",
            )
        sampled = SampledTrajectory.from_trajectory(result.trajectory, config.samples_per_segment)
        if start.stamp_ns > now_ns:  # planned from the reference ahead: it must reach the tracker before then
            rate = max(self.sim_rates)
            arrival_ns = now_ns + round(1e9 * rate * (time.perf_counter() - chosen_wall + LATE_MARGIN_S))
            if arrival_ns > start.stamp_ns:
                raise CourseError(
                    f"late: planning took {(arrival_ns - now_ns) * 1e-9:.3f} s (node clock) of the plan's "
                    f"{(start.stamp_ns - now_ns) * 1e-9:.3f} s lead; the current plan is kept",
                    "late",
                )
        self.trajectory_pub.publish(write_trajectory(sampled, config.frame_id, start.stamp_ns))  # CDR bytes
        latency_ms = 1e3 * (time.perf_counter() - received)
        self.waypoints, self.trajectory, self.plan_stamp_ns = points, result.trajectory, start.stamp_ns
        self.timeline.add(start.stamp_ns, result.trajectory, self.now_ns())
        self.waypoint_times_s = result.waypoint_times_s
        self.plan_start = start.kind
        if config.publish_viewer_topics:  # in the viewer thread: the trajectory goes out first, alone
            self.viewer.submit(result.trajectory, points, ns_to_stamp(start.stamp_ns))
        self.plans += 1
        self.latencies_ms.append(latency_ms)
        self.planning_ms.append(result.planning_time_ms)
        values = {
            "planning_time_ms": result.planning_time_ms,
            "latency_ms": latency_ms,
            "total_time_s": result.total_time_s,
            "waypoints": points.shape[0],
            "certified_by": result.certified_by,
            "repair": result.repair,
            "time_scale": result.time_scale,
            "start": start.kind,
            "plan_stamp_ns": start.stamp_ns,
            "plan_lead_s": (start.stamp_ns - now_ns) * 1e-9,
            "reference_deviation_m": self.reference_deviation_m,
            "resynchronised": self.resynchronised,
            "path_stamp": path_stamp,
        }
        self.status_pub.publish(diagnostic_status(self.get_name(), "mfrl", DiagnosticStatus.OK, "planned", values))
        return result

    def publish_viewer_topics(self, trajectory: Trajectory, points: NDArray[np.float64], stamp: Time) -> None:
        """The plan as a nav_msgs/Path and as markers coloured by speed, at most `max_viewer_samples` samples."""
        config = self.config
        count = int(
            min(config.max_viewer_samples, max(2, math.ceil(trajectory.duration_s * config.viewer_sample_rate_hz) + 1))
        )
        times = np.linspace(0.0, trajectory.duration_s, count)
        derivatives = trajectory.derivatives(times, max_order=1)
        speeds = np.linalg.norm(derivatives[1, :, :3], axis=1)
        path = path_from_points(derivatives[0, :VIEWER_CHUNK], config.frame_id, stamp)
        poses = list(path.poses)
        for first in range(VIEWER_CHUNK, count, VIEWER_CHUNK):  # in chunks: see ViewerWorker
            self.viewer.checkpoint()
            poses.extend(path_from_points(derivatives[0, first : first + VIEWER_CHUNK], config.frame_id, stamp).poses)
        path.poses = poses
        self.viewer.checkpoint()
        positions, frame_id = derivatives[0, :, :3], config.frame_id
        markers = plan_markers(points, positions, speeds, frame_id, stamp, config.max_marker_speed_m_s)
        self.viewer.checkpoint()
        if not self.active:
            return
        self.path_pub.publish(path)
        self.viewer.checkpoint()
        self.markers_pub.publish(markers)

    def report_error(self, message: str, reason: str, values: dict[str, object]) -> None:
        """Count a refusal by `reason` (none: already counted), log it and publish it as the status."""
        self.errors += 1
        if reason:
            self.refused[reason] += 1
            self.monitor.note_problem(self.now_ns() * 1e-9, truncate(reason))
        self.get_logger().error(truncate(message, 2000))
        self.status_pub.publish(
            diagnostic_status(
                self.get_name(),
                "mfrl",
                DiagnosticStatus.ERROR,
                truncate(message.splitlines()[0], 500),
                {**values, "reason": values.get("reason", reason)},
            )
        )

    def publish_diagnostics(self) -> None:
        """Lifecycle state, the vehicle's envelope, planner latency, plan age and refusals by reason on /diagnostics."""
        now_ns = self.now_ns()
        latencies = np.array(self.latencies_ms)
        health = self.monitor.current(now_ns * 1e-9)
        fresh = self.odometry.fresh(now_ns, self.config.max_odometry_age_s)
        values: dict[str, object] = {
            "state": self._state_machine.current_state[1],
            "plans": self.plans,
            "errors": self.errors,
            "plan_start": self.plan_start or "no plan",
            "plan_age_s": (now_ns - self.plan_stamp_ns) * 1e-9 if self.plan_stamp_ns else "no plan",
            "odometry": "fresh" if fresh else ("stale" if self.odometry.received_ns else "none"),
            "input_lag_s": self.input_lag_s(),  # how far behind its odometry the node is (max_input_lag_s)
            "tracking_error_m": health.tracking_error_m,
            "speed_m_s": health.speed_m_s,
            "tilt_deg": math.degrees(health.tilt_rad),
            "bad_odometry": sum(self.bad_odometry.values()),
            "refused": sum(self.refused.values()),
        }
        values.update({f"bad_odometry.{k}": v for k, v in sorted(self.bad_odometry.items())})
        values.update({f"refused.{k}": v for k, v in sorted(self.refused.items())})
        if latencies.size:
            values["latency_last_ms"] = float(latencies[-1])
            values["latency_p50_ms"] = float(np.percentile(latencies, 50))
            values["planning_last_ms"] = float(self.planning_ms[-1])
        if not self.active:
            level, message = DiagnosticStatus.WARN, "not active"
        elif not self.odometry.received_ns:
            level, message = DiagnosticStatus.OK, "serving (no odometry: plans start from a path's first pose)"
        elif not fresh and health.level < 2:
            level, message = DiagnosticStatus.WARN, "odometry is stale: plans start from a path's first pose"
        else:
            level, message = bytes([int(health.level)]), health.message
        stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(diagnostics_message(stamp, self.get_name(), "mfrl", level, message, values))


def main(args: list[str] | None = None) -> int:
    """Entry point of the `replanner` executable."""
    return run_node(Replanner, args)


if __name__ == "__main__":
    raise SystemExit(main())

"""Messages to and from the libraries' arrays: waypoint paths, sampled trajectories, odometry, markers, status.

Pure functions of messages; no node, no I/O. Frames: ENU world, FLU body (REP 103); odometry twist in
the body frame (REP 105). The trajectory message is written and read as bytes by `mfrl.trajectory_wire`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Duration as DurationMsg
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PoseStamped, WrenchStamped
from nav_msgs.msg import Odometry, Path
from numpy.typing import NDArray
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from minsnap import TrajectoryInputError
from quadsim.mujoco_vehicle import VehicleState
from quadsim.rotations import quat_wxyz_to_matrix


class CourseError(TrajectoryInputError):
    """A waypoint path that cannot be planned; the message says what was wrong, `reason` names it in a word or two."""

    def __init__(self, message: str, reason: str = "invalid course") -> None:
        super().__init__(message)
        self.reason = reason


MAX_TEXT_CHARS = 64
"""Strings from the outside (frame ids) are cut to this length in logs and status messages."""

MAX_STAMP_SEC = 2**31 - 1
"""The largest `sec` of a builtin_interfaces/Time; a stamp there (or beyond) is refused as invalid."""


def truncate(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """`text` cut to `limit` characters with an ellipsis (and the full length) when longer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars)"


def stamp_to_ns(stamp: Time) -> int:
    """Nanoseconds of a stamp."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def stamp_problem(stamp: Time) -> str:
    """Why a stamp is invalid (nanosec >= 1e9, sec negative or at the int32 limit), or ""."""
    if not 0 <= int(stamp.nanosec) < 1_000_000_000:
        return f"nanosec={int(stamp.nanosec)} is not below 1e9"
    if int(stamp.sec) < 0:
        return f"sec={int(stamp.sec)} is negative"
    if int(stamp.sec) >= MAX_STAMP_SEC:
        return f"sec={int(stamp.sec)} is the int32 limit"
    return ""


def ns_to_stamp(ns: int) -> Time:
    """A stamp from nanoseconds."""
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def s_to_duration(seconds: float) -> DurationMsg:
    """A duration message from seconds (>= 0)."""
    ns = round(seconds * 1e9)
    return DurationMsg(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def yaw_from_quaternion(w: float, x: float, y: float, z: float) -> float:
    """Heading (rad) of a unit quaternion (ZYX yaw); normalise first (`unit_quaternion`)."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def unit_quaternion(w: float, x: float, y: float, z: float) -> tuple[float, float, float, float] | None:
    """The quaternion normalised, or None when it is zero (norm < 1e-9) or not finite."""
    values = (float(w), float(x), float(y), float(z))
    if not all(math.isfinite(v) for v in values):
        return None
    norm = math.sqrt(sum(v * v for v in values))
    if not (math.isfinite(norm) and norm > 1e-9):
        return None
    return (values[0] / norm, values[1] / norm, values[2] / norm, values[3] / norm)


@dataclass(frozen=True)
class Course:
    """A validated waypoint path: `N x 4` waypoints (x, y, z, yaw) and the path's stamp (ns, 0 if unset)."""

    waypoints: NDArray[np.float64]
    stamp_ns: int


def course_from_path(
    msg: Path,
    frame_id: str,
    max_waypoints: int,
    previous_stamp_ns: int,
    now_ns: int | None = None,
    max_stamp_ahead_ns: int = 1_000_000_000,
    workspace_bound_m: float = math.inf,
) -> Course:
    """Read and check a waypoint path.

    The first pose is the course's start (the replanner replaces it with the vehicle's position).
    Orientation quaternions are normalised; yaw is taken from the unit quaternion.

    Raises:
        CourseError: no poses, one pose, more than `max_waypoints`, a frame other than `frame_id`, an
            invalid stamp, a stamp more than `max_stamp_ahead_ns` after `now_ns` (when given), a stamp older
            than `previous_stamp_ns` or pose stamps out of order, non-finite numbers, a zero or non-finite
            quaternion, or a coordinate beyond `workspace_bound_m`. Its `reason` names the check.
    """
    count = len(msg.poses)
    if count == 0:
        raise CourseError("empty path: a course needs at least 2 poses (the start and a goal)", "empty")
    if count == 1:
        raise CourseError("path with 1 pose: a course needs at least 2 poses (the start and a goal)", "one pose")
    if count > max_waypoints:
        raise CourseError(f"path with {count} poses: at most max_waypoints={max_waypoints} are accepted", "too many")
    if msg.header.frame_id != frame_id:
        raise CourseError(
            f"path in frame {truncate(msg.header.frame_id)!r}: waypoints must be given in frame {frame_id!r}", "frame"
        )
    problem = stamp_problem(msg.header.stamp)
    if problem:
        raise CourseError(f"path stamp is invalid: {problem}", "invalid stamp")
    stamp_ns = stamp_to_ns(msg.header.stamp)
    if now_ns == 0 and stamp_ns > max_stamp_ahead_ns:
        raise CourseError(
            f"path stamped {stamp_ns * 1e-9:.6f} s, but the node's clock has not started (no /clock received yet "
            "with use_sim_time): send it again once the simulator runs",
            "no clock yet",
        )
    if now_ns is not None and stamp_ns > now_ns + max_stamp_ahead_ns:
        raise CourseError(
            f"path stamped {stamp_ns * 1e-9:.6f} s is {(stamp_ns - now_ns) * 1e-9:.3f} s ahead of the node's clock "
            f"({now_ns * 1e-9:.6f} s; at most {max_stamp_ahead_ns * 1e-9:g} s ahead is accepted): refused",
            "future stamp",
        )
    if stamp_ns and previous_stamp_ns and stamp_ns < previous_stamp_ns:
        raise CourseError(
            f"path stamped {stamp_ns * 1e-9:.6f} s is older than the last accepted one "
            f"({previous_stamp_ns * 1e-9:.6f} s): out-of-order path refused",
            "out of order",
        )
    waypoints = np.empty((count, 4))
    last_pose_ns = 0
    for i, pose in enumerate(msg.poses):
        if pose.header.frame_id not in ("", frame_id):
            raise CourseError(
                f"pose {i} in frame {truncate(pose.header.frame_id)!r}: every pose must be in frame {frame_id!r}",
                "frame",
            )
        problem = stamp_problem(pose.header.stamp)
        if problem:
            raise CourseError(f"pose {i} stamp is invalid: {problem}", "invalid stamp")
        pose_ns = stamp_to_ns(pose.header.stamp)
        if pose_ns and pose_ns < last_pose_ns:
            raise CourseError(
                f"pose {i} is stamped before pose {i - 1}: pose stamps must not go back in time", "pose order"
            )
        last_pose_ns = max(last_pose_ns, pose_ns)
        p, q = pose.pose.position, pose.pose.orientation
        position = (float(p.x), float(p.y), float(p.z))
        if not all(math.isfinite(v) for v in position):
            raise CourseError(f"pose {i} has a non-finite coordinate; every number must be finite", "non-finite")
        unit = unit_quaternion(q.w, q.x, q.y, q.z)
        if unit is None:
            raise CourseError(
                f"pose {i} has a zero or non-finite orientation quaternion "
                f"(w={q.w:.3g}, x={q.x:.3g}, y={q.y:.3g}, z={q.z:.3g}); give a unit quaternion (w=1 for yaw 0)",
                "quaternion",
            )
        waypoints[i] = (*position, yaw_from_quaternion(*unit))
    beyond = np.abs(waypoints[:, :3]) > workspace_bound_m
    if beyond.any():
        row, axis = (int(v) for v in np.argwhere(beyond)[0])
        raise CourseError(
            f"pose {row} has {'xyz'[axis]}={waypoints[row, axis]:.6g} m, beyond the workspace bound "
            f"(workspace_bound_m={workspace_bound_m:g} m): refused before planning",
            "workspace bound",
        )
    return Course(waypoints=waypoints, stamp_ns=stamp_ns)


def path_from_points(points: NDArray[np.float64], frame_id: str, stamp: Time) -> Path:
    """A nav_msgs/Path through `N x 3` (or `N x 4` with yaw) points."""
    msg = Path()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    poses = []
    for row in points:
        pose = PoseStamped()
        pose.header.frame_id = frame_id
        pose.header.stamp = stamp
        position = pose.pose.position
        position.x, position.y, position.z = float(row[0]), float(row[1]), float(row[2])
        if len(row) > 3:
            pose.pose.orientation.z = math.sin(0.5 * float(row[3]))
            pose.pose.orientation.w = math.cos(0.5 * float(row[3]))
        poses.append(pose)
    msg.poses = poses
    return msg


def odometry_message(state: VehicleState, frame_id: str, child_frame_id: str, stamp: Time) -> Odometry:
    """Odometry of a vehicle state: pose in `frame_id`, twist in the body frame `child_frame_id`."""
    msg = Odometry()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    msg.child_frame_id = child_frame_id
    position = msg.pose.pose.position
    position.x, position.y, position.z = (float(v) for v in state.position_m)
    orientation = msg.pose.pose.orientation
    orientation.w, orientation.x, orientation.y, orientation.z = (float(v) for v in state.quaternion_wxyz)
    body_velocity = state.rotation.T @ state.velocity_m_s
    linear, angular = msg.twist.twist.linear, msg.twist.twist.angular
    linear.x, linear.y, linear.z = (float(v) for v in body_velocity)
    angular.x, angular.y, angular.z = (float(v) for v in state.body_rates_rad_s)
    return msg


def wrench_message(odom: Odometry, thrust_n: float, torque_nm: NDArray[np.float64]) -> WrenchStamped:
    """A controller's command (collective thrust, body torques), stamped and framed like the odometry it answers."""
    msg = WrenchStamped()
    msg.header.stamp = odom.header.stamp
    msg.header.frame_id = odom.child_frame_id
    msg.wrench.force.z = float(thrust_n)
    msg.wrench.torque.x, msg.wrench.torque.y, msg.wrench.torque.z = (float(v) for v in torque_nm)
    return msg


def reference_message(
    odom: Odometry, frame_id: str, position_m: NDArray[np.float64], velocity_m_s: NDArray[np.float64], yaw_rad: float
) -> Odometry:
    """The reference a controller followed at this odometry's time (pose and world-frame velocity)."""
    msg = Odometry()
    msg.header.stamp = odom.header.stamp
    msg.header.frame_id = msg.child_frame_id = frame_id
    p = msg.pose.pose.position
    p.x, p.y, p.z = (float(v) for v in position_m[:3])
    msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sin(0.5 * yaw_rad), math.cos(0.5 * yaw_rad)
    v = msg.twist.twist.linear
    v.x, v.y, v.z = (float(x) for x in velocity_m_s[:3])
    return msg


@dataclass(frozen=True)
class OdometryState:
    """What odometry says: time (ns), position, world-frame velocity, attitude matrix, body rates."""

    stamp_ns: int
    position_m: NDArray[np.float64]
    velocity_m_s: NDArray[np.float64]
    rotation: NDArray[np.float64]
    body_rates_rad_s: NDArray[np.float64]

    def is_finite(self) -> bool:
        """Whether every number is finite (a NaN or a zero quaternion in the message makes it False)."""
        return bool(
            np.isfinite(self.position_m).all()
            and np.isfinite(self.velocity_m_s).all()
            and np.isfinite(self.rotation).all()
            and np.isfinite(self.body_rates_rad_s).all()
        )


def odometry_state(msg: Odometry) -> OdometryState:
    """Read odometry (twist in the body frame, as `odometry_message` writes it); check `is_finite()` before use."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    with np.errstate(invalid="ignore", divide="ignore"):
        rotation = quat_wxyz_to_matrix(np.array([q.w, q.x, q.y, q.z]))
    linear, angular = msg.twist.twist.linear, msg.twist.twist.angular
    return OdometryState(
        stamp_ns=stamp_to_ns(msg.header.stamp),
        position_m=np.array([p.x, p.y, p.z]),
        velocity_m_s=rotation @ np.array([linear.x, linear.y, linear.z]),
        rotation=rotation,
        body_rates_rad_s=np.array([angular.x, angular.y, angular.z]),
    )


def speed_colour(speed_m_s: float, max_speed_m_s: float) -> ColorRGBA:
    """Blue (still) through green to red (at `max_speed_m_s` and above)."""
    u = min(max(speed_m_s / max_speed_m_s, 0.0), 1.0) if max_speed_m_s > 0 else 0.0
    red, green, blue = min(1.0, 2.0 * u), 1.0 - abs(2.0 * u - 1.0), max(0.0, 1.0 - 2.0 * u)
    return ColorRGBA(r=red, g=green, b=blue, a=1.0)


def plan_markers(
    waypoints: NDArray[np.float64],
    positions: NDArray[np.float64],
    speeds_m_s: NDArray[np.float64],
    frame_id: str,
    stamp: Time,
    max_speed_m_s: float,
) -> MarkerArray:
    """Waypoints as spheres and the trajectory as a line strip coloured by speed."""
    spheres = Marker(ns="waypoints", id=0, type=Marker.SPHERE_LIST, action=Marker.ADD)
    spheres.header.frame_id, spheres.header.stamp = frame_id, stamp
    spheres.scale.x = spheres.scale.y = spheres.scale.z = 0.15
    spheres.color = ColorRGBA(r=1.0, g=0.6, b=0.0, a=1.0)
    spheres.pose.orientation.w = 1.0
    spheres.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in waypoints]
    line = Marker(ns="trajectory", id=1, type=Marker.LINE_STRIP, action=Marker.ADD)
    line.header.frame_id, line.header.stamp = frame_id, stamp
    line.scale.x = 0.04
    line.pose.orientation.w = 1.0
    top = max_speed_m_s if max_speed_m_s > 0 else float(np.max(speeds_m_s, initial=0.0))
    line.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in positions]
    line.colors = [speed_colour(float(s), top) for s in speeds_m_s]
    return MarkerArray(markers=[spheres, line])


def diagnostic_status(
    name: str, hardware_id: str, level: bytes, message: str, values: Mapping[str, object]
) -> DiagnosticStatus:
    """A DiagnosticStatus (level: DiagnosticStatus.OK, WARN or ERROR) with key-value pairs."""
    pairs = [KeyValue(key=k, value=f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in values.items()]
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id, values=pairs)


def diagnostics_message(
    stamp: Time, node_name: str, hardware_id: str, level: bytes, message: str, values: Mapping[str, object]
) -> DiagnosticArray:
    """A node's /diagnostics message: one status named "mfrl: <node>"."""
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [diagnostic_status(f"mfrl: {node_name}", hardware_id, level, message, values)]
    return msg

"""Every node's tunables as one typed, validated dataclass per node.

The ROS parameters (declared by `mfrl.parameters.declare_config`), the YAML file in `config/` and the
graph declaration in the top-level `launch/` are views of these classes. This module does not import
rclpy, so the graph declaration and the tests can read it without a ROS graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mfrl.relic_actions import DEFAULT_STEP_M, DEFAULT_TURN_RAD, ActionError, ActionScale
from px4link.config import BridgeConfig, FailsafeConfig, LinkConfig, OffboardConfig, PreflightConfig
from px4link.signing import SigningConfig
from quadsim.controller import SE3Gains
from quadsim.geofence import BoxGeofence, CylinderGeofence, Geofence


class ConfigError(ValueError):
    """A parameter value that the node cannot use; the message names the parameter and what is allowed."""


def _require(condition: bool, name: str, value: Any, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"parameter {name}={value!r} is invalid: it must be {allowed}")


def _finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def _hover_start() -> list[float]:
    return [0.0, 0.0, 1.0]


_GAINS = SE3Gains()
"""The SE(3) controller's own gains, which the tracker's parameters take as defaults."""


def _kp_position() -> list[float]:
    return list(_GAINS.kp_position)


def _kd_position() -> list[float]:
    return list(_GAINS.kd_position)


def _ki_position() -> list[float]:
    return list(_GAINS.ki_position)


def _recorded_topics() -> list[str]:
    return [
        "/odom",
        "/waypoints",
        "/trajectory",
        "/planned_path",
        "/tracker/reference",
        "/replanner/status",
        "/diagnostics",
    ]


def check_geofence_parameters(
    min_enu_m: list[float], max_enu_m: list[float], radius_m: float, center_enu_m: list[float]
) -> None:
    """The geofence parameters' rules (the replanner's and the px4_bridge node's are the same): two finite
    (x, y, z) corners with min < max, or both empty (no geofence); radius >= 0 (> 0: a vertical cylinder about
    the centre, its floor and ceiling the box's z bounds); a finite (x, y) centre. Raises ConfigError."""
    fence = (min_enu_m, max_enu_m)
    _require(
        fence == ([], [])
        or (
            len(fence[0]) == 3
            and len(fence[1]) == 3
            and _finite(fence[0] + fence[1])
            and all(lo < hi for lo, hi in zip(fence[0], fence[1], strict=True))
        ),
        "geofence_min_enu_m/geofence_max_enu_m",
        fence,
        "two finite (x, y, z) corners with min < max on every axis, or both empty",
    )
    _require(math.isfinite(radius_m) and radius_m >= 0.0, "geofence_radius_m", radius_m, ">= 0 (0: the box)")
    _require(
        radius_m == 0.0 or fence != ([], []),
        "geofence_radius_m",
        radius_m,
        "0 when the geofence is off (the cylinder takes its floor and ceiling from the box)",
    )
    _require(len(center_enu_m) == 2 and _finite(center_enu_m), "geofence_center_enu_m", center_enu_m, "a finite (x, y)")


def _empty() -> list[float]:
    return []


def _origin_xy() -> list[float]:
    return [0.0, 0.0]


@dataclass(frozen=True)
class ReplannerConfig:
    """Parameters of the `replanner` node.

    Attributes:
        checkpoint: policy checkpoint file; empty: the one shipped with mfplan.
        frame_id: the world frame every waypoint path must be given in.
        max_waypoints: longest path accepted (a longer one gets an error status).
        min_waypoint_spacing_m: waypoints this close to the vehicle are taken as reached and dropped.
        samples_per_segment: trajectory samples per segment in the MultiDOFJointTrajectory.
        viewer_sample_rate_hz: sampling of the nav_msgs/Path and markers for viewers.
        publish_viewer_topics: publish the nav_msgs/Path and MarkerArray (viewer on/off).
        max_marker_speed_m_s: speed shown in the colour map's hottest colour (0: the plan's top speed).
        max_odometry_age_s: odometry received (node clock) or stamped longer ago than this is not used as the
            start state (the path's first pose is).
        max_reference_deviation_m: a replan starts from the plan being flown (its reference now) while the
            vehicle is within this distance of that reference; farther, it starts from odometry.
        min_plan_lead_s: a plan from the reference starts at least this far ahead of now (node clock), so that it
            reaches the tracker before its start; the lead is planning_deadline_s + 20 ms, times the node clock's
            measured rate to wall time (sim time may run faster), within these bounds.
        max_plan_lead_s: ... and at most this far (within the tracker's max_plan_lead_s); a plan that took longer
            than its lead to make is refused as late.
        max_path_stamp_ahead_s: a path stamped more than this ahead of the node's clock is refused.
        max_input_lag_s: a path is refused ("behind") when it waited longer than this before planning, or the
            odometry a plan would start from was published longer than this beyond its period ago (node-clock
            seconds; DDS source timestamps against this host's clock): the node has fallen behind its inputs (a
            starved process), so its clock and the vehicle's state are stale and its plan would reach the
            tracker late. With planning_deadline_s it bounds how late a plan can reach the tracker: keep the sum
            below the tracker's max_plan_delay_s (0.2 + 0.25 < 0.5 s). 0 disables it (publishers on a host
            whose clock is not synchronised with this one's).
        workspace_bound_m: a waypoint with |x|, |y| or |z| beyond this is refused before planning.
        max_speed_m_s: certificate: speed limit of a plan (0: the vehicle's); also the envelope's bound.
        max_acceleration_m_s2: certificate: acceleration limit of a plan (0: the vehicle's).
        max_plan_tilt_deg: certificate: tilt limit of the thrust axis a plan asks for (0: the vehicle's, 45 deg).
        planning_deadline_s: a plan whose search is not done in this much wall time is refused (a late replan
            starts from where the vehicle no longer is; the tracker refuses plans older than its max_plan_delay_s).
        max_excursion_m: certificate: how far a plan may stray from the straight lines between its waypoints.
        ground_clearance_m: certificate: a plan (and the vehicle where it starts) must stay above this height; it
            must cover the tracking error (up to 0.36 m in the sim soaks), as the vehicle flies below its plan by that
            much (take-off and landing are the autopilot's).
        geofence_min_enu_m: geofence box's lower corner (x, y, z, m, ENU); empty with max: no geofence.
        geofence_max_enu_m: its upper corner (the same parameters, and rules, as the px4_bridge node's).
        geofence_radius_m: > 0: the geofence is a vertical cylinder of this radius about geofence_center_enu_m,
            its floor and ceiling the box's z bounds; 0: the box.
        geofence_center_enu_m: the cylinder's centre (x, y, m, ENU).
        max_odometry_speed_factor: odometry faster than this times max_speed_m_s (or moving by a jump that
            implies it) is refused as implausible.
        max_odometry_acceleration_m_s2: odometry whose velocity changes faster than this is refused.
        max_tracking_error_m: envelope (/diagnostics ERROR): the vehicle farther than this from the reference.
        warn_tracking_error_m: envelope WARN (while recent): farther than this.
        max_tilt_deg: envelope ERROR: tilted more than this (flipped).
        warn_hold_s: a WARN lasts this long after its cause (a refused input, a tracking error).
        max_viewer_samples: the viewer topics carry at most this many samples, whatever the plan's duration.
        max_time_scale: slowest time scale the planner's certification may search.
        pass_horizon_s: in a replan from a moving vehicle, the first waypoint (not the goal) counts as reached when
            the vehicle would get there within this many seconds at its speed, or within 0.5 m (PX4's acceptance
            radius, NAV_ACC_RAD, is 2 m by default: 0.5 s at 4 m/s); the status's `repair` names it.
        reach_close_waypoint_first: such a waypoint is taken as reached before a plan through it is tried, and
            planned through only when no plan past it passes; false: planned through, and taken as reached only
            when no plan through it passes (every waypoint flown through where that is feasible).
        torch_threads: threads of the policy's forward pass (1: no thread hand-offs for a tiny network).
        autostart: configure and activate the lifecycle node on start-up.
        diagnostics_period_s: period of the /diagnostics message.
    """

    checkpoint: str = ""
    frame_id: str = "world"
    max_waypoints: int = 200
    min_waypoint_spacing_m: float = 0.05
    samples_per_segment: int = 4
    viewer_sample_rate_hz: float = 20.0
    publish_viewer_topics: bool = True
    max_marker_speed_m_s: float = 0.0
    max_odometry_age_s: float = 0.5
    max_reference_deviation_m: float = 0.5
    min_plan_lead_s: float = 0.1
    max_plan_lead_s: float = 0.5
    max_path_stamp_ahead_s: float = 1.0
    max_input_lag_s: float = 0.2
    workspace_bound_m: float = 1000.0
    max_speed_m_s: float = 0.0
    max_acceleration_m_s2: float = 0.0
    max_plan_tilt_deg: float = 0.0
    planning_deadline_s: float = 0.25
    max_excursion_m: float = 2.0
    ground_clearance_m: float = 0.5
    geofence_min_enu_m: list[float] = field(default_factory=_empty)
    geofence_max_enu_m: list[float] = field(default_factory=_empty)
    geofence_radius_m: float = 0.0
    geofence_center_enu_m: list[float] = field(default_factory=_origin_xy)
    max_odometry_speed_factor: float = 3.0
    max_odometry_acceleration_m_s2: float = 200.0
    max_tracking_error_m: float = 1.0
    warn_tracking_error_m: float = 0.3
    max_tilt_deg: float = 60.0
    warn_hold_s: float = 5.0
    max_viewer_samples: int = 2000
    max_time_scale: float = 16.0
    pass_horizon_s: float = 0.5
    reach_close_waypoint_first: bool = True
    torch_threads: int = 1
    autostart: bool = True
    diagnostics_period_s: float = 1.0

    def __post_init__(self) -> None:
        _require(bool(self.frame_id), "frame_id", self.frame_id, "a non-empty frame name")
        _require(
            0.0 < self.max_reference_deviation_m <= 100.0,
            "max_reference_deviation_m",
            self.max_reference_deviation_m,
            "in (0, 100]",
        )
        _require(
            0.0 <= self.max_path_stamp_ahead_s <= 3600.0,
            "max_path_stamp_ahead_s",
            self.max_path_stamp_ahead_s,
            "in [0, 3600]",
        )
        _require(
            0.0 <= self.min_plan_lead_s <= self.max_plan_lead_s <= 1.0,
            "min_plan_lead_s/max_plan_lead_s",
            (self.min_plan_lead_s, self.max_plan_lead_s),
            "0 <= min <= max <= 1 (the tracker refuses plans starting over its max_plan_lead_s ahead)",
        )
        _require(0.0 <= self.max_input_lag_s <= 10.0, "max_input_lag_s", self.max_input_lag_s, "in [0, 10] (0: off)")
        _require(0.0 < self.workspace_bound_m <= 1e6, "workspace_bound_m", self.workspace_bound_m, "in (0, 1e6]")
        _require(
            0.0 <= self.max_plan_tilt_deg < 90.0,
            "max_plan_tilt_deg",
            self.max_plan_tilt_deg,
            "in [0, 90) (0: vehicle's)",
        )
        _require(0.0 < self.planning_deadline_s <= 10.0, "planning_deadline_s", self.planning_deadline_s, "in (0, 10]")
        _require(0.0 <= self.max_speed_m_s <= 100.0, "max_speed_m_s", self.max_speed_m_s, "in [0, 100] (0: vehicle's)")
        _require(
            0.0 <= self.max_acceleration_m_s2 <= 200.0,
            "max_acceleration_m_s2",
            self.max_acceleration_m_s2,
            "in [0, 200] (0: the vehicle's)",
        )
        _require(0.0 < self.max_excursion_m <= 1000.0, "max_excursion_m", self.max_excursion_m, "in (0, 1000]")
        _require(
            -10.0 <= self.ground_clearance_m <= 100.0, "ground_clearance_m", self.ground_clearance_m, "in [-10, 100]"
        )
        check_geofence_parameters(
            self.geofence_min_enu_m, self.geofence_max_enu_m, self.geofence_radius_m, self.geofence_center_enu_m
        )
        _require(
            1.0 <= self.max_odometry_speed_factor <= 100.0,
            "max_odometry_speed_factor",
            self.max_odometry_speed_factor,
            "in [1, 100]",
        )
        _require(
            0.0 < self.max_odometry_acceleration_m_s2 <= 1e4,
            "max_odometry_acceleration_m_s2",
            self.max_odometry_acceleration_m_s2,
            "in (0, 1e4]",
        )
        _require(
            0.0 < self.warn_tracking_error_m <= self.max_tracking_error_m <= 1000.0,
            "warn_tracking_error_m/max_tracking_error_m",
            (self.warn_tracking_error_m, self.max_tracking_error_m),
            "0 < warn <= max <= 1000",
        )
        _require(0.0 < self.max_tilt_deg <= 180.0, "max_tilt_deg", self.max_tilt_deg, "in (0, 180]")
        _require(0.0 < self.warn_hold_s <= 3600.0, "warn_hold_s", self.warn_hold_s, "in (0, 3600]")
        _require(2 <= self.max_viewer_samples <= 100_000, "max_viewer_samples", self.max_viewer_samples, "in 2..100000")
        _require(2 <= self.max_waypoints <= 100_000, "max_waypoints", self.max_waypoints, "in 2..100000")
        _require(
            0.0 <= self.min_waypoint_spacing_m < 10.0,
            "min_waypoint_spacing_m",
            self.min_waypoint_spacing_m,
            "in [0, 10)",
        )
        _require(1 <= self.samples_per_segment <= 100, "samples_per_segment", self.samples_per_segment, "in 1..100")
        _require(
            0.0 < self.viewer_sample_rate_hz <= 1000.0,
            "viewer_sample_rate_hz",
            self.viewer_sample_rate_hz,
            "in (0, 1000]",
        )
        _require(self.max_marker_speed_m_s >= 0.0, "max_marker_speed_m_s", self.max_marker_speed_m_s, ">= 0")
        _require(self.max_odometry_age_s > 0.0, "max_odometry_age_s", self.max_odometry_age_s, "> 0")
        _require(1.0 < self.max_time_scale <= 1000.0, "max_time_scale", self.max_time_scale, "in (1, 1000]")
        _require(0.0 <= self.pass_horizon_s <= 5.0, "pass_horizon_s", self.pass_horizon_s, "in [0, 5]")
        _require(1 <= self.torch_threads <= 256, "torch_threads", self.torch_threads, "in 1..256")
        _require(self.diagnostics_period_s > 0.0, "diagnostics_period_s", self.diagnostics_period_s, "> 0")


@dataclass(frozen=True)
class QuadrotorSimConfig:
    """Parameters of the `quadrotor_sim` node.

    Attributes:
        control_rate_hz: odometry (and command) rate; the physics runs at 500 Hz.
        real_time_factor: simulated seconds per wall second (0: as fast as the controller answers).
        command_timeout_s: wall time to wait for the controller's command before stepping with the last one.
        initial_position_m: where the vehicle starts, hovering.
        initial_yaw_rad: its heading there.
        frame_id: world frame of the odometry.
        child_frame_id: body frame of the odometry (its twist is given in it).
        diagnostics_period_s: period of the /diagnostics message (wall time).
    """

    control_rate_hz: float = 250.0
    real_time_factor: float = 1.0
    command_timeout_s: float = 0.1
    initial_position_m: list[float] = field(default_factory=_hover_start)
    initial_yaw_rad: float = 0.0
    frame_id: str = "world"
    child_frame_id: str = "base_link"
    diagnostics_period_s: float = 1.0

    def __post_init__(self) -> None:
        _require(10.0 <= self.control_rate_hz <= 500.0, "control_rate_hz", self.control_rate_hz, "in [10, 500]")
        _require(0.0 <= self.real_time_factor <= 100.0, "real_time_factor", self.real_time_factor, "in [0, 100]")
        _require(0.0 < self.command_timeout_s <= 10.0, "command_timeout_s", self.command_timeout_s, "in (0, 10]")
        _require(
            len(self.initial_position_m) == 3
            and _finite(self.initial_position_m)
            and self.initial_position_m[2] > 0.05,
            "initial_position_m",
            self.initial_position_m,
            "three finite numbers [x, y, z] with z > 0.05 m (in the air)",
        )
        _require(math.isfinite(self.initial_yaw_rad), "initial_yaw_rad", self.initial_yaw_rad, "finite")
        _require(bool(self.frame_id and self.child_frame_id), "frame_id", self.frame_id, "non-empty (both frames)")
        _require(self.diagnostics_period_s > 0.0, "diagnostics_period_s", self.diagnostics_period_s, "> 0")


@dataclass(frozen=True)
class TrackerConfig:
    """Parameters of the `tracker` node.

    Attributes:
        switch_blend_s: the jump between the old and the new plan's reference decays over this time.
        max_plan_delay_s: a plan starting longer ago than this on arrival is stale: refused, the vehicle holds.
        max_plan_lead_s: a plan starting later than this after its arrival is refused (it waits for its start).
        kp_position: position gains (1/s^2) for x, y, z.
        kd_position: velocity gains (1/s) for x, y, z.
        ki_position: integral gains (1/s^3) on the position error for x, y, z (zeros: no integral action).
        integral_limit_m_s2: the integral's acceleration stays within this per axis (anti-windup).
        aero_feedforward: add the rotor drag and lift predicted along the reference (`quadsim.aero`).
        kp_attitude: attitude gain (1/s^2, scaled by the inertia).
        kd_attitude: body-rate gain (1/s, scaled by the inertia).
        frame_id: world frame of odometry and trajectories.
        publish_reference: publish the reference followed at each step on ~/reference.
        max_tracking_error_m: envelope (/diagnostics ERROR): the vehicle farther than this from the reference.
        warn_tracking_error_m: envelope WARN (while recent): farther than this.
        max_speed_m_s: envelope ERROR: faster than this (0: the vehicle's).
        max_tilt_deg: envelope ERROR: tilted more than this (flipped).
        warn_hold_s: a WARN lasts this long after its cause (bad odometry, a refused plan, a tracking error).
        diagnostics_period_s: period of the /diagnostics message.
    """

    switch_blend_s: float = 0.5
    max_plan_delay_s: float = 0.5
    max_plan_lead_s: float = 1.0
    kp_position: list[float] = field(default_factory=_kp_position)
    kd_position: list[float] = field(default_factory=_kd_position)
    ki_position: list[float] = field(default_factory=_ki_position)
    integral_limit_m_s2: float = _GAINS.integral_limit_m_s2
    aero_feedforward: bool = _GAINS.aero_feedforward
    kp_attitude: float = _GAINS.kp_attitude
    kd_attitude: float = _GAINS.kd_attitude
    frame_id: str = "world"
    publish_reference: bool = True
    max_tracking_error_m: float = 1.0
    warn_tracking_error_m: float = 0.3
    max_speed_m_s: float = 0.0
    max_tilt_deg: float = 60.0
    warn_hold_s: float = 5.0
    diagnostics_period_s: float = 1.0

    def __post_init__(self) -> None:
        _require(0.0 <= self.switch_blend_s <= 10.0, "switch_blend_s", self.switch_blend_s, "in [0, 10]")
        _require(0.0 < self.max_plan_delay_s <= 60.0, "max_plan_delay_s", self.max_plan_delay_s, "in (0, 60]")
        _require(0.0 <= self.max_plan_lead_s <= 60.0, "max_plan_lead_s", self.max_plan_lead_s, "in [0, 60]")
        _require(
            0.0 < self.warn_tracking_error_m <= self.max_tracking_error_m <= 1000.0,
            "warn_tracking_error_m/max_tracking_error_m",
            (self.warn_tracking_error_m, self.max_tracking_error_m),
            "0 < warn <= max <= 1000",
        )
        _require(0.0 <= self.max_speed_m_s <= 100.0, "max_speed_m_s", self.max_speed_m_s, "in [0, 100] (0: vehicle's)")
        _require(0.0 < self.max_tilt_deg <= 180.0, "max_tilt_deg", self.max_tilt_deg, "in (0, 180]")
        _require(0.0 < self.warn_hold_s <= 3600.0, "warn_hold_s", self.warn_hold_s, "in (0, 3600]")
        for name in ("kp_position", "kd_position"):
            gains = getattr(self, name)
            _require(
                len(gains) == 3 and _finite(gains) and min(gains) > 0, name, gains, "three positive numbers (x, y, z)"
            )
        ki = self.ki_position
        _require(len(ki) == 3 and _finite(ki) and min(ki) >= 0, "ki_position", ki, "three numbers >= 0 (x, y, z)")
        if len(ki) == 3 and len(self.kp_position) == 3 and len(self.kd_position) == 3:
            products = [p * d for p, d in zip(self.kp_position, self.kd_position, strict=True)]
            _require(all(i < pd for i, pd in zip(ki, products, strict=True)), "ki_position", ki, "below kp*kd per axis")
        limit = self.integral_limit_m_s2
        _require(math.isfinite(limit) and 0.0 <= limit <= 20.0, "integral_limit_m_s2", limit, "in [0, 20]")
        _require(self.kp_attitude > 0.0, "kp_attitude", self.kp_attitude, "> 0")
        _require(self.kd_attitude > 0.0, "kd_attitude", self.kd_attitude, "> 0")
        _require(bool(self.frame_id), "frame_id", self.frame_id, "a non-empty frame name")
        _require(self.diagnostics_period_s > 0.0, "diagnostics_period_s", self.diagnostics_period_s, "> 0")


@dataclass(frozen=True)
class WaypointMissionConfig:
    """Parameters of the `waypoint_mission` node (the demo's operator: sends a course, moves it mid-flight).

    Attributes:
        course: the course as a flat list x0, y0, z0, x1, ... (m, world frame); the first point is the start.
        frame_id: frame of the paths it sends.
        reached_radius_m: a waypoint counts as passed when the vehicle comes this close.
        goal_tolerance_m: the mission ends when the vehicle is this close to the last waypoint ...
        settle_speed_m_s: ... and slower than this.
        replan_count: how many times the waypoints ahead (beyond the next one, before the goal) move in flight.
        replan_interval_s: sim time between two moves (the first is this long after the first plan).
        displacement_m: how far each moved waypoint goes (horizontally).
        seed: seed of the displacement directions.
        timeout_s: wall-clock limit of the mission (fails after it).
        results_file: JSON file the mission's events and figures are written to (empty: none).
        path_subscribers: subscribers of its path topic to wait for before the first path (the replanner,
            plus a recorder that must not miss the first plan).
        trajectory_subscribers: subscribers of the trajectory topic, besides the mission itself, to see in
            the graph before the first path (the controller, plus a recorder): a controller that joins
            after the plan went out gets it late and refuses it as stale.
    """

    course: list[float] = field(default_factory=list)
    frame_id: str = "world"
    reached_radius_m: float = 0.3
    goal_tolerance_m: float = 0.15
    settle_speed_m_s: float = 0.2
    replan_count: int = 3
    replan_interval_s: float = 1.5
    displacement_m: float = 1.0
    seed: int = 0
    timeout_s: float = 180.0
    results_file: str = ""
    path_subscribers: int = 1
    trajectory_subscribers: int = 1

    def __post_init__(self) -> None:
        _require(1 <= self.path_subscribers <= 100, "path_subscribers", self.path_subscribers, "in 1..100")
        _require(
            0 <= self.trajectory_subscribers <= 100, "trajectory_subscribers", self.trajectory_subscribers, "in 0..100"
        )
        _require(
            len(self.course) % 3 == 0 and _finite(self.course),
            "course",
            self.course,
            "finite numbers, three per waypoint (x, y, z)",
        )
        _require(bool(self.frame_id), "frame_id", self.frame_id, "a non-empty frame name")
        _require(self.reached_radius_m > 0.0, "reached_radius_m", self.reached_radius_m, "> 0")
        _require(self.goal_tolerance_m > 0.0, "goal_tolerance_m", self.goal_tolerance_m, "> 0")
        _require(self.settle_speed_m_s > 0.0, "settle_speed_m_s", self.settle_speed_m_s, "> 0")
        _require(0 <= self.replan_count <= 1000, "replan_count", self.replan_count, "in 0..1000")
        _require(self.replan_interval_s > 0.0, "replan_interval_s", self.replan_interval_s, "> 0")
        _require(0.0 <= self.displacement_m <= 10.0, "displacement_m", self.displacement_m, "in [0, 10]")
        _require(self.timeout_s > 0.0, "timeout_s", self.timeout_s, "> 0")


@dataclass(frozen=True)
class BagRecorderConfig:
    """Parameters of the `bag_recorder` node.

    Attributes:
        output_dir: the bag directory to create (must not exist yet).
        topics: topics to record (each is subscribed once it appears in the graph, with its type).
        storage: "mcap" or "sqlite3".
    """

    output_dir: str = "runs/bag"
    topics: list[str] = field(default_factory=_recorded_topics)
    storage: str = "mcap"

    def __post_init__(self) -> None:
        _require(bool(self.output_dir), "output_dir", self.output_dir, "a directory path")
        _require(
            bool(self.topics) and all(t.startswith("/") for t in self.topics),
            "topics",
            self.topics,
            "a non-empty list of absolute topic names",
        )
        _require(self.storage in ("mcap", "sqlite3"), "storage", self.storage, '"mcap" or "sqlite3"')


@dataclass(frozen=True)
class LatencyProbeConfig:
    """Parameters of the `latency_probe` node (bench/ros_latency.py: waypoints in -> trajectory out).

    Attributes:
        messages: timed paths (after the warm-up ones).
        warmup: untimed paths sent first.
        waypoints: waypoints per random course.
        seed: seed of the courses.
        frame_id: frame of the paths.
        answer_timeout_s: wall time to wait for each trajectory.
        send_period_s: a path goes out no sooner than this after the previous one (20 Hz replanning).
        results_file: JSON file with every latency and the planner's own time of each plan.
    """

    messages: int = 200
    warmup: int = 5
    waypoints: int = 10
    seed: int = 0
    frame_id: str = "world"
    answer_timeout_s: float = 5.0
    send_period_s: float = 0.05
    results_file: str = ""

    def __post_init__(self) -> None:
        _require(1 <= self.messages <= 100_000, "messages", self.messages, "in 1..100000")
        _require(0 <= self.warmup <= 1000, "warmup", self.warmup, "in 0..1000")
        _require(2 <= self.waypoints <= 100, "waypoints", self.waypoints, "in 2..100")
        _require(bool(self.frame_id), "frame_id", self.frame_id, "a non-empty frame name")
        _require(self.answer_timeout_s > 0.0, "answer_timeout_s", self.answer_timeout_s, "> 0")
        _require(0.0 <= self.send_period_s <= 10.0, "send_period_s", self.send_period_s, "in [0, 10]")


@dataclass(frozen=True)
class FoxgloveViewConfig:
    """Parameters of the `foxglove_view` node (streams the scene to Foxglove over a WebSocket).

    Attributes:
        host: address the Foxglove WebSocket server binds to.
        port: its port (connect Foxglove to ws://host:port).
        frame_id: the world frame shown.
        pose_rate_hz: rate of the vehicle pose and its trail (simulated time).
        trail_length: poses kept in the flown trail.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    frame_id: str = "world"
    pose_rate_hz: float = 25.0
    trail_length: int = 2000

    def __post_init__(self) -> None:
        _require(bool(self.host), "host", self.host, "an address")
        _require(0 <= self.port <= 65535, "port", self.port, "in 0..65535")
        _require(bool(self.frame_id), "frame_id", self.frame_id, "a non-empty frame name")
        _require(0.0 < self.pose_rate_hz <= 250.0, "pose_rate_hz", self.pose_rate_hz, "in (0, 250]")
        _require(1 <= self.trail_length <= 100_000, "trail_length", self.trail_length, "in 1..100000")


@dataclass(frozen=True)
class PolicyControllerConfig:
    """Parameters of the `policy_controller` node (a learned CTBR policy as the tracker; drop-in for `tracker`).

    Attributes:
        checkpoint: policy checkpoint (policyopt format); "geometric": the geometric CTBR baseline, no model.
        policy_rate_hz: rate of the policy's actions (the tracking env's policy_rate_hz it was trained at).
        switch_blend_s: the jump between the old and the new plan's reference decays over this time.
        max_plan_delay_s: a plan starting longer ago than this on arrival is stale: refused, the vehicle holds.
        max_plan_lead_s: a plan starting later than this after its arrival is refused (it waits for its start).
        torch_threads: threads of the policy's forward pass.
        autostart: configure (load the policy) and activate the lifecycle node on start-up.
        frame_id: world frame of the reference it publishes.
        publish_reference: publish the reference followed at each step on ~/reference (as the tracker does).
        diagnostics_period_s: period of the /diagnostics message.
    """

    checkpoint: str = "geometric"
    policy_rate_hz: float = 50.0
    switch_blend_s: float = 0.5
    max_plan_delay_s: float = 0.5
    max_plan_lead_s: float = 1.0
    torch_threads: int = 1
    autostart: bool = True
    frame_id: str = "world"
    publish_reference: bool = True
    diagnostics_period_s: float = 1.0

    def __post_init__(self) -> None:
        _require(bool(self.frame_id), "frame_id", self.frame_id, "a non-empty frame name")
        _require(bool(self.checkpoint), "checkpoint", self.checkpoint, 'a checkpoint file or "geometric"')
        _require(0.0 < self.policy_rate_hz <= 250.0, "policy_rate_hz", self.policy_rate_hz, "in (0, 250]")
        _require(0.0 <= self.switch_blend_s <= 10.0, "switch_blend_s", self.switch_blend_s, "in [0, 10]")
        _require(0.0 < self.max_plan_delay_s <= 60.0, "max_plan_delay_s", self.max_plan_delay_s, "in (0, 60]")
        _require(0.0 <= self.max_plan_lead_s <= 60.0, "max_plan_lead_s", self.max_plan_lead_s, "in [0, 60]")
        _require(1 <= self.torch_threads <= 256, "torch_threads", self.torch_threads, "in 1..256")
        _require(self.diagnostics_period_s > 0.0, "diagnostics_period_s", self.diagnostics_period_s, "> 0")


def _geofence_min() -> list[float]:
    return [-50.0, -50.0, -1.0]


def _geofence_max() -> list[float]:
    return [50.0, 50.0, 30.0]


def geofence_of(config: Any) -> Geofence | None:
    """The geofence of a node's `geofence_*` parameters (the replanner's and px4_bridge's are the same), or None."""
    if not config.geofence_min_enu_m:
        return None
    low, high = config.geofence_min_enu_m, config.geofence_max_enu_m
    if config.geofence_radius_m > 0.0:
        center = config.geofence_center_enu_m
        return CylinderGeofence((center[0], center[1]), config.geofence_radius_m, low[2], high[2])
    return BoxGeofence((low[0], low[1], low[2]), (high[0], high[1], high[2]))


_LINK, _OFFBOARD, _FAILSAFES = LinkConfig(), OffboardConfig(), FailsafeConfig()
_PREFLIGHT, _BRIDGE = PreflightConfig(), BridgeConfig()
"""The library's defaults, which the px4_bridge node's parameters take."""


@dataclass(frozen=True)
class Px4BridgeNodeConfig:
    """Parameters of the `px4_bridge` node: the main fields of `px4link.config.BridgeConfig`, whose defaults
    they take and whose checks they run (`bridge_config`), so the node and the library cannot disagree.

    Attributes:
        vehicle_url: MAVLink link: "/dev/ttyTHS1:921600" (serial at a baud rate), "udpin:0.0.0.0:14540", "tcp:H:P".
        signing_key_file: file holding the MAVLink 2 signing key as 64 hex digits; empty: no signing.
        require_signing: with a key, refuse unsigned packets (wrongly signed and replayed ones are refused either way).
        signing_timestamp_file: with a key, where the last outgoing signing timestamp is kept across restarts (for a
            companion computer without a real-time clock); empty: the clock alone.
        setpoint_rate_hz: offboard setpoint stream rate (20..250 Hz).
        drag_feedforward: the acceleration setpoint also cancels the rotor drag predicted along the reference
            (`px4link.config.OffboardConfig.drag_feedforward`).
        realtime_priority: SCHED_FIFO priority of the setpoint thread (1-99; 0: normal scheduling). Needs
            CAP_SYS_NICE or an rtprio limit (the systemd unit grants both); cuts period jitter under load. Where
            it is refused, /diagnostics says so (`setpoint_realtime` false, level WARN).
        link_loss_s: no vehicle telemetry for this long is a lost link (failsafe).
        uplink_loss_s: no answer to the bridge's TIMESYNC for this long while the vehicle's telemetry arrives is a
            lost link too: what the bridge sends does not reach the vehicle (a one-way cut).
        link_loss_action: what the vehicle is told when the link returns after a loss: hold or land.
        geofence_min_enu_m: the geofence box's lower corner (x, y, z, m, ENU); empty with max: no geofence.
        geofence_max_enu_m: its upper corner.
        geofence_radius_m: > 0: the geofence is instead a vertical cylinder of this radius about
            geofence_center_enu_m, its floor and ceiling the box's z bounds; 0: the box.
        geofence_center_enu_m: the cylinder's centre (x, y, m, ENU).
        battery_low_fraction: below this remaining charge: hold (failsafe).
        battery_critical_fraction: below this: land.
        trajectory_stale_s: a trajectory that ended this long ago is stale: hold (0: hold its end forever).
        takeoff_altitude_m: takeoff altitude above home.
        require_gps: the pre-flight check demands a 3D GPS fix (off indoors).
        offboard_on_trajectory: when a trajectory arrives while the vehicle is armed and in the air, switch to
            OFFBOARD (after the stream PX4 needs); off: an operator calls ~/offboard.
        frame_id: the world frame of odometry and trajectories (ENU).
        child_frame_id: the body frame of odometry (FLU).
        autostart: configure and activate at start (open the link); off: a lifecycle manager does it.
        diagnostics_period_s: period of /diagnostics.
    """

    vehicle_url: str = _LINK.url
    signing_key_file: str = ""
    require_signing: bool = True
    signing_timestamp_file: str = ""
    setpoint_rate_hz: float = _OFFBOARD.rate_hz
    realtime_priority: int = _OFFBOARD.realtime_priority
    drag_feedforward: bool = _OFFBOARD.drag_feedforward
    link_loss_s: float = _FAILSAFES.link_loss_s
    uplink_loss_s: float = _FAILSAFES.uplink_loss_s
    link_loss_action: str = _FAILSAFES.link_loss_action
    geofence_min_enu_m: list[float] = field(default_factory=_geofence_min)
    geofence_max_enu_m: list[float] = field(default_factory=_geofence_max)
    geofence_radius_m: float = 0.0
    geofence_center_enu_m: list[float] = field(default_factory=lambda: [0.0, 0.0])
    battery_low_fraction: float = _FAILSAFES.battery_low_fraction
    battery_critical_fraction: float = _FAILSAFES.battery_critical_fraction
    trajectory_stale_s: float = _FAILSAFES.trajectory_stale_s
    takeoff_altitude_m: float = _BRIDGE.takeoff_altitude_m
    require_gps: bool = _PREFLIGHT.require_gps
    offboard_on_trajectory: bool = False
    frame_id: str = "world"
    child_frame_id: str = "base_link"
    autostart: bool = True
    diagnostics_period_s: float = 1.0

    def __post_init__(self) -> None:
        _require(bool(self.vehicle_url), "vehicle_url", self.vehicle_url, "a MAVLink link URL")
        fence = (self.geofence_min_enu_m, self.geofence_max_enu_m)
        _require(
            fence == ([], []) or (len(fence[0]) == 3 and len(fence[1]) == 3 and _finite(fence[0] + fence[1])),
            "geofence_min_enu_m/geofence_max_enu_m",
            fence,
            "two finite (x, y, z) corners, or both empty",
        )
        _require(
            math.isfinite(self.geofence_radius_m) and self.geofence_radius_m >= 0.0,
            "geofence_radius_m",
            self.geofence_radius_m,
            ">= 0 (0: the box)",
        )
        _require(
            self.geofence_radius_m == 0.0 or fence != ([], []),
            "geofence_radius_m",
            self.geofence_radius_m,
            "0 when the geofence is off (the cylinder takes its floor and ceiling from the box)",
        )
        _require(
            len(self.geofence_center_enu_m) == 2 and _finite(self.geofence_center_enu_m),
            "geofence_center_enu_m",
            self.geofence_center_enu_m,
            "a finite (x, y)",
        )
        _require(self.link_loss_action in ("hold", "land"), "link_loss_action", self.link_loss_action, "hold or land")
        _require(bool(self.frame_id), "frame_id", self.frame_id, "non-empty")
        _require(self.diagnostics_period_s > 0.0, "diagnostics_period_s", self.diagnostics_period_s, "> 0")
        try:  # every other range is the library's own
            self.bridge_config()
        except ValueError as exc:
            raise ConfigError(f"px4_bridge parameters are invalid: {exc}") from exc

    def bridge_config(self, signing: SigningConfig | None = None) -> BridgeConfig:
        """The bridge's settings from these parameters (raises the library's ValueError with the reason)."""
        return BridgeConfig(
            link=LinkConfig(url=self.vehicle_url, signing=signing),
            offboard=OffboardConfig(
                rate_hz=self.setpoint_rate_hz,
                realtime_priority=self.realtime_priority,
                drag_feedforward=self.drag_feedforward,
            ),
            failsafes=FailsafeConfig(
                link_loss_s=self.link_loss_s,
                uplink_loss_s=self.uplink_loss_s,
                link_loss_action="land" if self.link_loss_action == "land" else "hold",
                geofence=geofence_of(self),
                battery_low_fraction=self.battery_low_fraction,
                battery_critical_fraction=self.battery_critical_fraction,
                trajectory_stale_s=self.trajectory_stale_s,
            ),
            preflight=PreflightConfig(require_gps=self.require_gps),
            takeoff_altitude_m=self.takeoff_altitude_m,
        )


SHIPPED_RELIC_POLICY = "objectnav3d_policy.pt"
"""The ReLIC policy that `relic_nav` loads by default (learning/relicrl/checkpoints/)."""


def shipped_relic_policy() -> str:
    """The path of the shipped ObjectNav3D ReLIC policy (the file may not exist: configure then says so)."""
    import relicrl  # the package only: its __init__ imports nothing (no torch)

    return str(Path(relicrl.__file__).resolve().parent / "checkpoints" / SHIPPED_RELIC_POLICY)


@dataclass(frozen=True)
class RelicNavConfig:
    """Parameters of the `relic_nav` node (a ReLIC in-context policy driving a robot from camera images).

    Attributes:
        policy_file: ReLIC policy file (relicrl format, read weights-only); default: the shipped ObjectNav3D policy.
        max_context: steps the policy keeps in context; a full context is reset (context_resets on /diagnostics).
        greedy: take the most likely action (False: sample from the policy, as in training).
        seed: seed of the action sampling.
        target_object: the object to find (index of the target one-hot, below the policy's vector size); a
            message on relic/target changes it too (the latest of the two holds).
        step_m: one forward step (m): move forward is linear.x = step_m / control_period_s.
        turn_rad: one turn (rad): turn left / right is angular.z = +/- turn_rad / control_period_s.
        control_period_s: time over which one action's velocity is held (s).
        torch_threads: threads of the policy's forward pass.
        autostart: configure (load the policy) and activate the lifecycle node on start-up.
        diagnostics_period_s: period of the /diagnostics message.
    """

    policy_file: str = field(default_factory=shipped_relic_policy)
    max_context: int = 65_536
    greedy: bool = False
    seed: int = 0
    target_object: int = 0
    step_m: float = DEFAULT_STEP_M
    turn_rad: float = DEFAULT_TURN_RAD
    control_period_s: float = 0.5
    torch_threads: int = 1
    autostart: bool = True
    diagnostics_period_s: float = 1.0

    def __post_init__(self) -> None:
        _require(bool(self.policy_file), "policy_file", self.policy_file, "a ReLIC policy file")
        _require(1 <= self.max_context <= 1 << 20, "max_context", self.max_context, "in 1..1048576")
        _require(self.seed >= 0, "seed", self.seed, ">= 0")
        _require(self.target_object >= 0, "target_object", self.target_object, ">= 0 (an index of the target one-hot)")
        _require(1 <= self.torch_threads <= 256, "torch_threads", self.torch_threads, "in 1..256")
        _require(self.diagnostics_period_s > 0.0, "diagnostics_period_s", self.diagnostics_period_s, "> 0")
        try:
            self.action_scale()
        except ActionError as exc:
            raise ConfigError(f"relic_nav parameter {exc}") from None

    def action_scale(self) -> ActionScale:
        """The size of each action's velocity (ActionError when a size is invalid)."""
        return ActionScale(self.step_m, self.turn_rad, self.control_period_s)


@dataclass(frozen=True)
class RelicWorldConfig:
    """Parameters of the `relic_world` node (relicnav's ObjectNav3D in lock step with `relic_nav`).

    Attributes:
        trial_split: layouts from "eval" (held-out) or "train" seeds (relicnav.trial_seeds).
        first_trial: index in that split of the first trial's seed; each new trial takes the next one.
        episodes_per_trial: episodes in one layout before a new trial (the nav node's context is reset then).
        max_episode_steps: an episode is cut (truncated) after this many actions.
        image_size: side of the square camera image (pixels): the policy's image size.
        stop_action: the environment has a fourth action, stop (the policy must have four actions then).
        distance_shaping: reward per metre of geodesic distance gained towards the target (0: sparse reward).
        command_timeout_s: wall time to wait for the cmd_vel answering an image before sending the image again.
        nav_node: node whose ~/reset_context and ~/mark_episode_boundary services are called (empty: none).
        frame_id: frame of the camera images.
        diagnostics_period_s: period of the /diagnostics message.
    """

    trial_split: str = "eval"
    first_trial: int = 0
    episodes_per_trial: int = 4
    max_episode_steps: int = 250
    image_size: int = 64
    stop_action: bool = False
    distance_shaping: float = 1.0
    command_timeout_s: float = 2.0
    nav_node: str = "relic_nav"
    frame_id: str = "camera"
    diagnostics_period_s: float = 1.0

    def __post_init__(self) -> None:
        _require(self.trial_split in ("eval", "train"), "trial_split", self.trial_split, '"eval" or "train"')
        _require(0 <= self.first_trial < 1 << 29, "first_trial", self.first_trial, "in [0, 2^29)")
        _require(1 <= self.episodes_per_trial <= 100_000, "episodes_per_trial", self.episodes_per_trial, "in 1..100000")
        _require(1 <= self.max_episode_steps <= 100_000, "max_episode_steps", self.max_episode_steps, "in 1..100000")
        _require(8 <= self.image_size <= 1024, "image_size", self.image_size, "in 8..1024")
        _require(
            math.isfinite(self.distance_shaping) and self.distance_shaping >= 0.0,
            "distance_shaping",
            self.distance_shaping,
            "finite and >= 0",
        )
        _require(0.0 < self.command_timeout_s <= 60.0, "command_timeout_s", self.command_timeout_s, "in (0, 60]")
        _require(bool(self.frame_id), "frame_id", self.frame_id, "a non-empty frame name")
        _require(self.diagnostics_period_s > 0.0, "diagnostics_period_s", self.diagnostics_period_s, "> 0")


NODE_CONFIGS: dict[str, type[Any]] = {
    "replanner": ReplannerConfig,
    "quadrotor_sim": QuadrotorSimConfig,
    "tracker": TrackerConfig,
    "waypoint_mission": WaypointMissionConfig,
    "bag_recorder": BagRecorderConfig,
    "latency_probe": LatencyProbeConfig,
    "foxglove_view": FoxgloveViewConfig,
    "policy_controller": PolicyControllerConfig,
    "px4_bridge": Px4BridgeNodeConfig,
    "relic_nav": RelicNavConfig,
    "relic_world": RelicWorldConfig,
}
"""Each executable of the package and the dataclass of its parameters."""


def parameter_names(executable: str) -> set[str]:
    """The parameters that an executable declares (besides ROS's own `use_sim_time`)."""
    return {f.name for f in fields(NODE_CONFIGS[executable])}

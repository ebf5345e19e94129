"""Post-flight review of a PX4 ULog: planned vs flown trajectory, tracking error, mode and arming changes.

    px4link review LOG.ulg --out-dir runs/flight_review

Reads (pyulog) the flown path from `vehicle_local_position` and the plan from `trajectory_setpoint`
(what an offboard companion sends) or, when the log lacks it, `vehicle_local_position_setpoint`;
`vehicle_status`, when logged, gives arming and navigation-state changes. PX4 logs NED; the review
works in the project's ENU, converted by `quadsim.frames` only. Writes `<log name>.png` (top view,
altitude vs time, tracking error vs time, speed; mode and arming changes marked) and
`<log name>.json` (flight time, max and RMS tracking error, max speed, the changes).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import tyro
from numpy.typing import NDArray
from pyulog import ULog

from quadsim.frames import ned_to_enu
from runkit import UserError, format_table, get_logger, write_bytes_atomic, write_json_atomic

log = get_logger("px4link.flight_review")

FLOWN_TOPIC = "vehicle_local_position"
PLANNED_TOPICS = ("trajectory_setpoint", "vehicle_local_position_setpoint")
"""Where the plan is read from, first found wins."""
STATUS_TOPIC = "vehicle_status"

ARMING_STATE_ARMED = 2
"""vehicle_status.arming_state of an armed vehicle (PX4 v1.14 and later: 1 disarmed, 2 armed)."""

NAV_STATE_NAMES = {
    0: "MANUAL",
    1: "ALTCTL",
    2: "POSCTL",
    3: "AUTO.MISSION",
    4: "AUTO.LOITER",
    5: "AUTO.RTL",
    10: "ACRO",
    12: "DESCEND",
    13: "TERMINATION",
    14: "OFFBOARD",
    15: "STABILIZED",
    17: "AUTO.TAKEOFF",
    18: "AUTO.LAND",
    19: "AUTO.FOLLOW_TARGET",
    20: "AUTO.PRECLAND",
    21: "ORBIT",
    22: "AUTO.VTOL_TAKEOFF",
}
"""PX4's vehicle_status.nav_state values and their mode names."""


class FlightReviewError(UserError, ValueError):
    """A log that cannot be reviewed (missing topics or fields); the message says what the log has."""


@dataclass(frozen=True)
class StatusChange:
    """A change of arming state or navigation state, as vehicle_status logged it."""

    time_s: float
    armed: bool
    nav_state: int

    @property
    def mode(self) -> str:
        """PX4's name of the navigation state."""
        return NAV_STATE_NAMES.get(self.nav_state, f"nav_state {self.nav_state}")


@dataclass(frozen=True)
class FlightTrack:
    """What a log says about one flight, in ENU and seconds since the log started.

    Attributes:
        flown_times_s: `N` times of the flown samples.
        flown_positions_m: `N x 3` flown positions (ENU).
        flown_velocities_m_s: `N x 3` flown velocities (ENU).
        planned_times_s: `M` times of the plan's samples (samples without a position setpoint dropped).
        planned_positions_m: `M x 3` planned positions (ENU).
        planned_topic: the topic the plan came from.
        status_changes: arming / navigation-state changes (empty when vehicle_status is not logged).
        log_end_s: time of the last sample of any topic.
    """

    flown_times_s: NDArray[np.float64]
    flown_positions_m: NDArray[np.float64]
    flown_velocities_m_s: NDArray[np.float64]
    planned_times_s: NDArray[np.float64]
    planned_positions_m: NDArray[np.float64]
    planned_topic: str
    status_changes: tuple[StatusChange, ...]
    log_end_s: float


@dataclass(frozen=True)
class FlightSummary:
    """The review's figures (the JSON summary)."""

    log: str
    planned_topic: str
    flight_time_s: float
    """Time armed when vehicle_status is logged, else the time span of the flown samples."""
    log_duration_s: float
    tracked_time_s: float
    """Time during which a plan was in force (the tracking error is measured over it)."""
    tracking_error_max_m: float
    tracking_error_rms_m: float
    max_speed_m_s: float
    status_changes: list[dict[str, float | bool | str]] = field(default_factory=list)
    tracking_error_by_mode: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per flight mode (from vehicle_status): max and RMS error and the time tracked in it, e.g. OFFBOARD."""


def _dataset(ulog: ULog, name: str) -> dict[str, NDArray[np.float64]] | None:
    for data in ulog.data_list:
        if data.name == name and data.multi_id == 0:
            return {k: np.asarray(v) for k, v in data.data.items()}
    return None


def _columns(data: dict[str, NDArray[np.float64]], topic: str, names: Sequence[str]) -> NDArray[np.float64]:
    missing = [n for n in names if n not in data]
    if missing:
        raise FlightReviewError(f"{topic} lacks field(s) {missing}; it has {sorted(data)}")
    return np.stack([data[n].astype(np.float64) for n in names], axis=-1)


def load_flight(path: Path) -> FlightTrack:
    """Read a ULog's flown and planned trajectory (ENU); FlightReviewError when the topics are missing."""
    ulog = ULog(str(path), [FLOWN_TOPIC, *PLANNED_TOPICS, STATUS_TOPIC], disable_str_exceptions=True)
    t0_us = int(ulog.start_timestamp)
    flown = _dataset(ulog, FLOWN_TOPIC)
    planned_topic = next((name for name in PLANNED_TOPICS if _dataset(ulog, name) is not None), None)
    if flown is None or planned_topic is None:
        everything = sorted({d.name for d in ULog(str(path), disable_str_exceptions=True).data_list})
        needs = [FLOWN_TOPIC] if flown is None else []
        needs += [] if planned_topic else [" or ".join(PLANNED_TOPICS)]
        raise FlightReviewError(f"{path} has no {' and no '.join(needs)}; the topics it has: {everything}")

    def seconds(data: dict[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        return (data["timestamp"].astype(np.float64) - t0_us) * 1e-6

    flown_ned = _columns(flown, FLOWN_TOPIC, ("x", "y", "z"))
    velocity_ned = _columns(flown, FLOWN_TOPIC, ("vx", "vy", "vz"))
    planned = _dataset(ulog, planned_topic)
    assert planned is not None
    if planned_topic == "trajectory_setpoint":
        planned_ned = _columns(planned, planned_topic, ("position[0]", "position[1]", "position[2]"))
    else:
        planned_ned = _columns(planned, planned_topic, ("x", "y", "z"))
    # PX4 marks unused setpoint axes NaN (a velocity-only setpoint has no position): drop those samples.
    has_position = np.all(np.isfinite(planned_ned), axis=1)
    if not np.any(has_position):
        raise FlightReviewError(f"{path}: every {planned_topic} sample lacks a position (NaN): no plan to compare")
    planned_times = seconds(planned)

    status = _dataset(ulog, STATUS_TOPIC)
    changes = _status_changes(seconds(status), status) if status is not None else ()
    ends = [seconds(flown)[-1], planned_times[-1]] + ([seconds(status)[-1]] if status is not None else [])
    return FlightTrack(
        flown_times_s=seconds(flown),
        flown_positions_m=ned_to_enu(flown_ned),
        flown_velocities_m_s=ned_to_enu(velocity_ned),
        planned_times_s=planned_times[has_position],
        planned_positions_m=ned_to_enu(planned_ned[has_position]),
        planned_topic=planned_topic,
        status_changes=changes,
        log_end_s=float(max(ends)),
    )


def _status_changes(times_s: NDArray[np.float64], data: dict[str, NDArray[np.float64]]) -> tuple[StatusChange, ...]:
    states = _columns(data, STATUS_TOPIC, ("arming_state", "nav_state")).astype(np.int64)
    changes: list[StatusChange] = []
    previous: tuple[int, int] | None = None
    for t, (arming, nav) in zip(times_s, states, strict=True):
        if (int(arming), int(nav)) != previous:
            changes.append(StatusChange(float(t), int(arming) == ARMING_STATE_ARMED, int(nav)))
            previous = (int(arming), int(nav))
    return tuple(changes)


def planned_at(track: FlightTrack, times_s: NDArray[np.float64], max_gap_s: float = 0.5) -> NDArray[np.float64]:
    """The plan at `times_s` (`K x 3`, ENU), linear between setpoints; NaN where no plan was in force.

    A plan is in force between two setpoints at most `max_gap_s` apart (a stopped stream, e.g. after
    the vehicle left offboard, ends it).
    """
    t_plan, p_plan = track.planned_times_s, track.planned_positions_m
    out = np.full((len(times_s), 3), np.nan)
    if len(t_plan) == 1:
        out[np.isclose(times_s, t_plan[0])] = p_plan[0]
        return out
    idx = np.searchsorted(t_plan, times_s, side="right") - 1
    inside = (idx >= 0) & (idx < len(t_plan) - 1)
    inside |= (idx == len(t_plan) - 1) & np.isclose(times_s, t_plan[-1])
    lo = np.clip(idx, 0, len(t_plan) - 2)
    gap = t_plan[lo + 1] - t_plan[lo]
    ok = inside & (gap <= max_gap_s)
    frac = np.where(gap > 0, (times_s - t_plan[lo]) / np.where(gap > 0, gap, 1.0), 0.0)[:, None]
    interp = p_plan[lo] + frac * (p_plan[lo + 1] - p_plan[lo])
    out[ok] = interp[ok]
    return out


def tracking_error_m(track: FlightTrack, max_gap_s: float = 0.5) -> NDArray[np.float64]:
    """Distance from each flown sample to the plan at that time (`N`); NaN where no plan was in force."""
    planned = planned_at(track, track.flown_times_s, max_gap_s)
    return np.linalg.norm(track.flown_positions_m - planned, axis=1)


def _armed_time_s(track: FlightTrack) -> float:
    total, armed_since = 0.0, None
    for change in track.status_changes:
        if change.armed and armed_since is None:
            armed_since = change.time_s
        elif not change.armed and armed_since is not None:
            total += change.time_s - armed_since
            armed_since = None
    if armed_since is not None:
        total += track.log_end_s - armed_since
    return total


def summarise(track: FlightTrack, log_path: Path, max_gap_s: float = 0.5) -> FlightSummary:
    """The review's figures for a flight."""
    error = tracking_error_m(track, max_gap_s)
    tracked = np.isfinite(error)
    if not np.any(tracked):
        raise FlightReviewError(
            f"{log_path}: no flown sample falls while a plan was in force ({track.planned_topic} spans "
            f"{track.planned_times_s[0]:.2f}-{track.planned_times_s[-1]:.2f} s, the flown samples "
            f"{track.flown_times_s[0]:.2f}-{track.flown_times_s[-1]:.2f} s)"
        )
    dt = np.diff(track.flown_times_s)
    tracked_time = float(np.sum(dt[tracked[:-1] & tracked[1:]])) if len(dt) else 0.0
    if track.status_changes:
        flight_time = _armed_time_s(track)
    else:
        flight_time = float(track.flown_times_s[-1] - track.flown_times_s[0])
    speeds = np.linalg.norm(track.flown_velocities_m_s, axis=1)
    by_mode: dict[str, dict[str, float]] = {}
    modes = _mode_at(track, track.flown_times_s)
    for mode in sorted(set(modes) - {""}):
        in_mode = tracked & (modes == mode)
        if np.any(in_mode):
            by_mode[mode] = {
                "max_m": float(np.max(error[in_mode])),
                "rms_m": float(np.sqrt(np.mean(error[in_mode] ** 2))),
                "samples": int(np.sum(in_mode)),
            }
    return FlightSummary(
        log=str(log_path),
        planned_topic=track.planned_topic,
        flight_time_s=flight_time,
        log_duration_s=track.log_end_s,
        tracked_time_s=tracked_time,
        tracking_error_max_m=float(np.max(error[tracked])),
        tracking_error_rms_m=float(np.sqrt(np.mean(error[tracked] ** 2))),
        max_speed_m_s=float(np.max(speeds[np.isfinite(speeds)], initial=0.0)),
        status_changes=[
            {"time_s": c.time_s, "armed": c.armed, "mode": c.mode, "nav_state": c.nav_state}
            for c in track.status_changes
        ],
        tracking_error_by_mode=by_mode,
    )


def _mode_at(track: FlightTrack, times_s: NDArray[np.float64]) -> NDArray[np.str_]:
    """The flight mode in force at each time ("" before the first vehicle_status)."""
    modes = np.full(times_s.shape, "", dtype=object)
    for change in track.status_changes:
        modes[times_s >= change.time_s] = change.mode
    return modes.astype(str)


def _mark_changes(ax: plt.Axes, changes: Sequence[StatusChange], label: bool) -> None:
    previous_armed: bool | None = None
    for change in changes:
        colour = "tab:red" if change.armed != previous_armed and previous_armed is not None else "grey"
        ax.axvline(change.time_s, color=colour, lw=0.8, ls="--", alpha=0.8)
        if label:
            text = change.mode + ("" if change.armed == previous_armed else (" ARMED" if change.armed else " DISARMED"))
            ax.annotate(
                text,
                (change.time_s, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                fontsize=7,
                va="top",
                ha="right",
                color=colour,
            )
        previous_armed = change.armed


def plot_review(track: FlightTrack, summary: FlightSummary, path: Path, max_gap_s: float = 0.5) -> Path:
    """Write the review PNG: top view, altitude, tracking error and speed vs time (atomically)."""
    error = tracking_error_m(track, max_gap_s)
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), layout="constrained")
    ax_top, ax_alt, ax_err, ax_speed = axes.ravel()

    ax_top.plot(*track.planned_positions_m[:, :2].T, color="black", lw=1.5, label=f"planned ({track.planned_topic})")
    ax_top.plot(*track.flown_positions_m[:, :2].T, color="tab:blue", lw=1.0, ls="--", label="flown")
    ax_top.scatter(*track.flown_positions_m[0, :2], color="tab:green", zorder=3, label="start")
    ax_top.scatter(*track.flown_positions_m[-1, :2], color="tab:red", marker="s", zorder=3, label="end")
    ax_top.set(xlabel="east (m)", ylabel="north (m)", title="top view (ENU)")
    both = np.vstack([track.planned_positions_m[:, :2], track.flown_positions_m[:, :2]])
    centre = 0.5 * (np.nanmin(both, axis=0) + np.nanmax(both, axis=0))
    half = max(0.6 * float(np.nanmax(np.nanmax(both, axis=0) - np.nanmin(both, axis=0))), 1.0)  # a hover is not a dot
    ax_top.set(xlim=(centre[0] - half, centre[0] + half), ylim=(centre[1] - half, centre[1] + half))
    ax_top.set_aspect("equal", adjustable="box")
    ax_top.legend(fontsize=8)

    ax_alt.plot(track.planned_times_s, track.planned_positions_m[:, 2], color="black", lw=1.5, label="planned")
    ax_alt.plot(track.flown_times_s, track.flown_positions_m[:, 2], color="tab:blue", lw=1.0, ls="--", label="flown")
    ax_alt.set(xlabel="time since log start (s)", ylabel="altitude, up (m)", title="altitude")
    ax_alt.legend(fontsize=8, loc="lower right")
    _mark_changes(ax_alt, track.status_changes, label=True)

    ax_err.plot(track.flown_times_s, error, color="tab:orange")
    ax_err.set(
        xlabel="time since log start (s)",
        ylabel="position error (m)",
        title=f"tracking error: max {summary.tracking_error_max_m:.3f} m, RMS {summary.tracking_error_rms_m:.3f} m",
    )
    ax_err.set_ylim(bottom=0.0)
    _mark_changes(ax_err, track.status_changes, label=False)

    ax_speed.plot(track.flown_times_s, np.linalg.norm(track.flown_velocities_m_s, axis=1), color="tab:blue")
    ax_speed.set(
        xlabel="time since log start (s)", ylabel="m/s", title=f"flown speed (max {summary.max_speed_m_s:.2f})"
    )
    _mark_changes(ax_speed, track.status_changes, label=False)

    fig.suptitle(f"{Path(summary.log).name}: flight time {summary.flight_time_s:.1f} s (dashed: mode/arming changes)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def review_flight(log_path: Path, out_dir: Path, max_gap_s: float = 0.5) -> tuple[FlightSummary, Path, Path]:
    """Review one log: returns the summary and the paths of the PNG and the JSON written to `out_dir`."""
    track = load_flight(log_path)
    summary = summarise(track, log_path, max_gap_s)
    png = plot_review(track, summary, out_dir / f"{log_path.stem}.png", max_gap_s)
    json_path = write_json_atomic(out_dir / f"{log_path.stem}.json", summary)
    return summary, png, json_path


@dataclass
class FlightReviewArgs:
    """Review a PX4 flight log: planned vs flown trajectory, tracking error, mode and arming changes."""

    log: Annotated[Path, tyro.conf.Positional]
    """The PX4 ULog file (.ulg)."""
    out_dir: Path = Path("runs/flight_review")
    """Where the PNG and the JSON summary are written."""
    max_gap_s: float = 0.5
    """Setpoints further apart than this end the plan in force (the stream stopped)."""


def review(args: FlightReviewArgs) -> int:
    """Review the log, print the figures, write the PNG and JSON; returns the exit status.

    Raises:
        UserError: no such log file; FlightReviewError (a UserError): a log without the topics a review needs.
    """
    if not args.log.is_file():
        raise UserError(f"no such log file: {args.log}")
    summary, png, json_path = review_flight(args.log, args.out_dir, args.max_gap_s)
    rows = [
        ("flight time (s)", summary.flight_time_s),
        ("tracked time (s)", summary.tracked_time_s),
        ("tracking error max (m)", summary.tracking_error_max_m),
        ("tracking error RMS (m)", summary.tracking_error_rms_m),
        ("max speed (m/s)", summary.max_speed_m_s),
    ]
    print(format_table(("figure", "value"), rows))
    for change in summary.status_changes:
        print(f"  {change['time_s']:8.2f} s  {'ARMED   ' if change['armed'] else 'DISARMED'}  {change['mode']}")
    log.info("wrote %s and %s", png, json_path)
    return 0

"""Figures of flights: 3-D path, speed, rotor speeds against their limits, tracking error."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minsnap import Trajectory
from quadsim.flight_log import FlightLog
from quadsim.vehicle import VehicleParams
from runkit import write_bytes_atomic

_COLOURS = {"planned": "black", "analytic": "tab:green", "mujoco": "tab:blue", "rotorpy": "tab:orange"}


def plot_fidelity_flights(
    trajectory: Trajectory,
    flights: Mapping[str, FlightLog],
    analytic_rotor_speeds: tuple[np.ndarray, np.ndarray],
    vehicle: VehicleParams,
    path: str | Path,
    title: str = "",
) -> Path:
    """Write a PNG with the planned and flown paths, speed, rotor speeds vs limits and tracking error.

    Args:
        trajectory: the planned trajectory.
        flights: flight logs by fidelity name.
        analytic_rotor_speeds: (times `K`, required rotor speeds `K x 4`) from the analytic check.
        vehicle: for the rotor speed limits.
        path: where to write the PNG (atomically).
        title: figure title.
    """
    times, derivs = trajectory.sample(100.0)
    fig = plt.figure(figsize=(15, 9), layout="constrained")
    grid = fig.add_gridspec(2, 3, width_ratios=[1.3, 1, 1])
    ax3d = fig.add_subplot(grid[:, 0], projection="3d")
    ax3d.plot(*derivs[0, :, :3].T, color=_COLOURS["planned"], lw=2, label="planned")
    for name, flight in flights.items():
        ax3d.plot(*flight.positions_m.T, color=_COLOURS.get(name), lw=1, ls="--", label=f"flown ({name})")
    ax3d.scatter(*trajectory.waypoints[:, :3].T, color="red", s=30, label="waypoints", depthshade=False)
    ax3d.set(xlabel="x (m)", ylabel="y (m)", zlabel="z (m)", title="path (ENU)")
    ax3d.legend(loc="upper left", fontsize=8)

    ax_speed = fig.add_subplot(grid[0, 1])
    ax_speed.plot(times, np.linalg.norm(derivs[1, :, :3], axis=1), color="black", label="speed (m/s)")
    ax_speed.plot(times, np.linalg.norm(derivs[2, :, :3], axis=1), color="tab:purple", label="acceleration (m/s²)")
    for knot in trajectory.knot_times_s:
        ax_speed.axvline(knot, color="grey", lw=0.5, alpha=0.5)
    ax_speed.set(xlabel="time (s)", title="planned speed and acceleration (grey: waypoints)")
    ax_speed.legend(fontsize=8)

    ax_rotor = fig.add_subplot(grid[0, 2])
    a_times, a_speeds = analytic_rotor_speeds
    ax_rotor.plot(a_times, a_speeds.max(axis=1), color=_COLOURS["analytic"], label="analytic max")
    ax_rotor.plot(a_times, a_speeds.min(axis=1), color=_COLOURS["analytic"], ls=":", label="analytic min")
    for name, flight in flights.items():
        ax_rotor.plot(
            flight.times_s,
            flight.rotor_speed_cmd_rad_s.max(axis=1),
            color=_COLOURS.get(name),
            lw=0.8,
            label=f"{name} max command",
        )
    ax_rotor.axhline(vehicle.rotor_speed_max_rad_s, color="red", ls="--", label="limits")
    ax_rotor.axhline(vehicle.rotor_speed_min_rad_s, color="red", ls="--")
    ax_rotor.set(xlabel="time (s)", ylabel="rad/s", title="rotor speeds vs limits")
    ax_rotor.legend(fontsize=8)

    ax_err = fig.add_subplot(grid[1, 1:3])
    ax_yaw = ax_err.twinx()
    for name, flight in flights.items():
        ax_err.plot(flight.times_s, flight.position_error_m, color=_COLOURS.get(name), label=f"{name} position")
        ax_yaw.plot(
            flight.times_s,
            np.degrees(flight.yaw_error_rad),
            color=_COLOURS.get(name),
            ls=":",
            lw=0.8,
            label=f"{name} yaw",
        )
    ax_err.axhline(0.2, color="red", ls="--", label="0.2 m bound")
    ax_err.set(xlabel="time (s)", ylabel="position error (m)", title="tracking error (dotted: yaw, right axis)")
    ax_err.set_ylim(bottom=0.0)
    ax_yaw.set_ylabel("yaw error (deg)")
    ax_yaw.set_ylim(bottom=0.0)
    ax_err.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())

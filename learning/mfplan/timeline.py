"""The plans a replanner has sent, each taking over at its own start time, and the reference they make.

A replanner stamps each plan a little in the future (its planning latency) and plans it from the
reference predicted at that stamp, so the plan a follower flies *now* is often not the newest one: it
is the newest whose start has come. `PlanTimeline` keeps those plans and answers, for any time, the
reference being flown then (position to jerk), the way `quadsim.follower.TrajectoryFollower` switches.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from minsnap import Trajectory

REFERENCE_ORDERS = 4
"""Derivative orders of a reference: position, velocity, acceleration, jerk."""
RESYNC_STEP_S = 0.01
"""Time step of the search for the point of a delayed plan that the vehicle is at."""


class PlanTimeline:
    """Plans by start time (ns); a new plan replaces those that would start at or after it."""

    def __init__(self) -> None:
        self._plans: list[tuple[int, Trajectory]] = []

    def __len__(self) -> int:
        return len(self._plans)

    def clear(self) -> None:
        """Forget every plan."""
        self._plans = []

    def add(self, start_ns: int, trajectory: Trajectory, now_ns: int) -> None:
        """Add a plan starting at `start_ns`; drop the plans it supersedes, and those over before `now_ns`."""
        plans = [entry for entry in self._plans if entry[0] < start_ns]
        plans.append((int(start_ns), trajectory))
        # Keep the plan flown now (the newest started one) and everything after it.
        started = [i for i, (start, _) in enumerate(plans) if start <= now_ns]
        self._plans = plans[started[-1] :] if started else plans

    @property
    def latest(self) -> tuple[int, Trajectory] | None:
        """The newest plan (start ns, trajectory), or None."""
        return self._plans[-1] if self._plans else None

    def flown_at(self, t_ns: int) -> tuple[int, Trajectory] | None:
        """The plan flown at `t_ns`: the newest started by then (the first one before any has started)."""
        if not self._plans:
            return None
        current = self._plans[0]
        for entry in self._plans[1:]:
            if entry[0] <= t_ns:
                current = entry
        return current

    def resynchronise(
        self,
        t_ns: int,
        position: NDArray[np.float64],
        max_delay_s: float,
        tolerance_m: float,
        velocity: NDArray[np.float64] | None = None,
        velocity_tolerance_m_s: float = 1.0,
    ) -> float | None:
        """Delay the plan flown at `t_ns` so that its reference now is the point nearest `position` among the
        last `max_delay_s` of it, if that point is within `tolerance_m` (and, given `velocity`, its velocity within
        `velocity_tolerance_m_s` of it); return how much later it now starts (s), or
        None when no point is near enough (nothing changes then).

        A vehicle's autopilot can start a plan later than its stamp (PX4's bridge holds a plan until OFFBOARD is
        in, a second and a half); the replanner, which does not see that, would find the vehicle far from a
        reference it is in fact flying, and fall back to a start from odometry with a jump in the setpoints.
        """
        entry = self.flown_at(t_ns)
        if entry is None:
            return None
        start_ns, trajectory = entry
        local = min(max((t_ns - start_ns) * 1e-9, 0.0), trajectory.duration_s)
        times = np.clip(local - np.arange(0.0, max_delay_s, RESYNC_STEP_S), 0.0, trajectory.duration_s)
        states = trajectory.derivatives(times, max_order=1)[:, :, :3]
        distances = np.linalg.norm(states[0] - np.asarray(position, dtype=np.float64)[:3], axis=1)
        if velocity is not None:
            mismatch = np.linalg.norm(states[1] - np.asarray(velocity, dtype=np.float64)[:3], axis=1)
            distances = np.where(mismatch <= velocity_tolerance_m_s, distances, np.inf)
        best = int(np.argmin(distances))
        if distances[best] > tolerance_m:
            return None
        new_start_ns = t_ns - round(float(times[best]) * 1e9)  # its point `times[best]` is flown at t_ns
        index = next(i for i, item in enumerate(self._plans) if item is entry)
        self._plans[index] = (new_start_ns, trajectory)
        return (new_start_ns - start_ns) * 1e-9

    def reference_at(self, t_ns: int) -> NDArray[np.float64] | None:
        """Position, velocity, acceleration and jerk (`4 x 4`: x, y, z, yaw each) flown at `t_ns`: before
        the first plan's start its first point, after the last one's end at rest at its last point."""
        entry = self.flown_at(t_ns)
        if entry is None:
            return None
        start_ns, trajectory = entry
        t = min(max((t_ns - start_ns) * 1e-9, 0.0), trajectory.duration_s)
        d: NDArray[np.float64] = trajectory.derivatives(np.array([t]), max_order=REFERENCE_ORDERS - 1)[:, 0, :]
        if t >= trajectory.duration_s:
            d[1:] = 0.0
        return d

    def end_ns(self) -> int:
        """When the newest plan ends (0 without one)."""
        latest = self.latest
        if latest is None:
            return 0
        return latest[0] + round(latest[1].duration_s * 1e9)

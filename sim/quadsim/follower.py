"""Which reference the tracking controller follows: the latest plan, blended in without a jump, or a hold.

`TrajectoryFollower` turns plans (sampled trajectories with a start time) into a controller reference
at any time. A plan that arrives before its start time waits and is switched to at its start: a
replanner that plans from the reference it predicts at that time (as `mfrl.replanner` does, with a
lead of its planning latency) then gets a switch with no jump at all. A plan that arrives after its
start is switched to at once, and the difference between the old and the new reference (position to
jerk) at the switch decays to zero along a degree-7 polynomial over `switch_blend_s`, so the reference,
and the body rates the controller feeds forward from it, stay continuous whatever the new plan's start.
A plan whose start lies more than `max_plan_delay_s` in the past, or more than `max_plan_lead_s` in the
future, when it arrives is refused; after a plan's end, and before any plan, the vehicle holds a fixed
position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from quadsim.controller import Reference
from quadsim.flatness import flat_state
from quadsim.frames import wrap_angle
from quadsim.sampled_trajectory import SampledTrajectory, hermite_coefficients, polynomial_derivatives
from quadsim.vehicle import VehicleParams

FollowerMode = Literal["idle", "hold", "tracking"]


@dataclass(frozen=True)
class FollowerConfig:
    """How plans are switched and when they are stale.

    Attributes:
        switch_blend_s: time over which the jump between the old and the new reference decays (0: no blend).
        max_plan_delay_s: a plan that starts longer ago than this when it arrives is refused as stale.
        max_plan_lead_s: a plan that starts later than this after its arrival is refused (a wrong clock).
    """

    switch_blend_s: float = 0.5
    max_plan_delay_s: float = 0.5
    max_plan_lead_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.switch_blend_s >= 0.0:
            raise ValueError(f"switch_blend_s must be >= 0, got {self.switch_blend_s}")
        if not self.max_plan_delay_s > 0.0:
            raise ValueError(f"max_plan_delay_s must be > 0, got {self.max_plan_delay_s}")
        if not self.max_plan_lead_s >= 0.0:
            raise ValueError(f"max_plan_lead_s must be >= 0, got {self.max_plan_lead_s}")


@dataclass(frozen=True)
class _Blend:
    start_s: float
    coefficients: NDArray[np.float64]  # 8 x 4 degree-7 polynomial of the offset, local time from start_s


MAX_QUEUED_PLANS = 8
"""Plans that may wait for their start at once (a replanner has one or two in flight)."""
BLEND_ORDERS = 4
"""Derivatives the switch blend keeps continuous: position, velocity, acceleration, jerk."""


class TrajectoryFollower:
    """The reference for the controller at each instant (see the module docstring)."""

    def __init__(self, vehicle: VehicleParams, config: FollowerConfig | None = None) -> None:
        self.vehicle = vehicle
        self.config = config or FollowerConfig()
        self._plan: SampledTrajectory | None = None
        self._plan_start_s = 0.0
        self._hold: NDArray[np.float64] | None = None  # x, y, z, yaw
        self._blend: _Blend | None = None
        self._queued: list[tuple[SampledTrajectory, float]] = []  # plans waiting for their start, in start order

    @property
    def plan_start_s(self) -> float | None:
        """Start time of the plan being followed (None before the first)."""
        return self._plan_start_s if self._plan is not None else None

    @property
    def queued_starts_s(self) -> list[float]:
        """Start times of the plans that arrived early and wait for them."""
        return [start for _, start in self._queued]

    def mode(self, now_s: float) -> FollowerMode:
        """ "tracking" inside a plan, "hold" at a fixed point, "idle" before anything to follow."""
        self._start_queued(now_s)
        if self._plan is not None and now_s <= self._plan_start_s + self._plan.duration_s:
            return "tracking"
        return "hold" if (self._plan is not None or self._hold is not None) else "idle"

    def hold_at(self, position: NDArray[np.float64], yaw_rad: float) -> None:
        """Hold this point until a plan starts (used at start, where the vehicle is); plans that wait for their
        start keep waiting (a controller's first odometry must not drop the plan sent ahead of it)."""
        self._hold = np.array([*np.asarray(position, dtype=np.float64)[:3], float(yaw_rad)])
        self._plan = None
        self._blend = None

    def accept(self, plan: SampledTrajectory, start_s: float, now_s: float) -> str:
        """Take a plan starting at `start_s`: switch now, or at its start if that is later (it replaces the
        waiting plans that start later); return "" or, when it is refused, why (nothing changes then)."""
        delay = now_s - start_s
        if delay > self.config.max_plan_delay_s:
            return (
                f"stale plan refused: it starts {delay:.3f} s before now, more than max_plan_delay_s="
                f"{self.config.max_plan_delay_s} s"
            )
        if -delay > self.config.max_plan_lead_s:
            return (
                f"plan refused: it starts {-delay:.3f} s after now, more than max_plan_lead_s="
                f"{self.config.max_plan_lead_s} s (is its clock the vehicle's?)"
            )
        self._start_queued(now_s)  # those that were due go first
        if start_s > now_s:
            if len(self._queued) >= MAX_QUEUED_PLANS and self._queued[-1][1] < start_s:
                return f"plan refused: {MAX_QUEUED_PLANS} plans already wait for their start"
            self._queued = [entry for entry in self._queued if entry[1] < start_s] + [(plan, float(start_s))]
            return ""
        self._queued = []  # a newer plan replaces those still waiting
        self._switch(plan, float(start_s), now_s)
        return ""

    def _start_queued(self, now_s: float) -> None:
        """Switch to the waiting plans that are due, each at its own start (however late this call comes)."""
        while self._queued and now_s >= self._queued[0][1]:
            plan, start_s = self._queued.pop(0)
            self._switch(plan, start_s, start_s)

    def _switch(self, plan: SampledTrajectory, start_s: float, now_s: float) -> None:
        """Follow `plan` from `now_s`, blending out the jump from the reference followed until now."""
        blend = None
        if self._plan is not None or self._hold is not None:
            old = self._flat_outputs(now_s)
            new = plan.derivatives(now_s - start_s)
            offset = old[:BLEND_ORDERS] - new[:BLEND_ORDERS]
            offset[0, 3] = wrap_angle(float(offset[0, 3]))
            if self.config.switch_blend_s > 0.0 and np.any(offset != 0.0):
                end = np.zeros((BLEND_ORDERS, 4))
                blend = _Blend(now_s, hermite_coefficients(offset, end, self.config.switch_blend_s))
        self._plan, self._plan_start_s, self._blend = plan, start_s, blend

    def flat_outputs(self, now_s: float) -> NDArray[np.float64]:
        """Position to snap (`5 x 4`, axes x, y, z, yaw) of the reference at `now_s`."""
        self._start_queued(now_s)
        return self._flat_outputs(now_s)

    def preview(self, times_s: NDArray[np.float64]) -> NDArray[np.float64]:
        """Flat outputs (`len(times_s) x 5 x 4`) at increasing future `times_s`, as the follower would give them
        with no new plan; nothing here changes: waiting plans still start, and blends still run, at their time."""
        ghost = TrajectoryFollower(self.vehicle, self.config)
        ghost._plan, ghost._plan_start_s, ghost._hold = self._plan, self._plan_start_s, self._hold
        ghost._blend, ghost._queued = self._blend, list(self._queued)
        return np.stack([ghost.flat_outputs(float(t)) for t in np.asarray(times_s, dtype=np.float64)])

    def _flat_outputs(self, now_s: float) -> NDArray[np.float64]:
        if self._plan is None:
            out = np.zeros((5, 4))
            if self._hold is not None:
                out[0] = self._hold
            return out
        out = self._plan.derivatives(now_s - self._plan_start_s)
        blend = self._blend
        if blend is not None:
            local = now_s - blend.start_s
            if local < self.config.switch_blend_s:
                out = out + polynomial_derivatives(blend.coefficients, max(local, 0.0))
            else:
                self._blend = None
        return out

    def reference(self, now_s: float) -> Reference:
        """The controller reference (with flatness feed-forward) at `now_s`."""
        d = self.flat_outputs(now_s)
        state = flat_state(d[:, None, :], self.vehicle)
        return Reference(
            position=d[0, :3],
            velocity=d[1, :3],
            acceleration=d[2, :3],
            yaw_rad=float(d[0, 3]),
            body_rates_rad_s=state.body_rates_rad_s[0],
            body_angular_accel_rad_s2=state.body_angular_accel_rad_s2[0],
        )

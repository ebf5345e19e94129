"""Which reference the tracking controller follows: the latest plan, blended in without a jump, or a hold.

`TrajectoryFollower` turns plans (sampled trajectories with a start time) into a controller reference
at any time. A new plan is switched to at once, and the difference between the old and the new
reference (position, velocity, acceleration) at the switch decays to zero along a quintic over
`switch_blend_s`, so the reference stays continuous up to acceleration whatever the new plan's start.
A plan whose start lies more than `max_plan_delay_s` in the past when it arrives is stale and refused;
after a plan's end, and before any plan, the vehicle holds a fixed position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from quadsim.controller import Reference
from quadsim.flatness import flat_state
from quadsim.sampled_trajectory import SampledTrajectory, polynomial_derivatives, quintic_hermite_coefficients
from quadsim.vehicle import VehicleParams

FollowerMode = Literal["idle", "hold", "tracking"]


@dataclass(frozen=True)
class FollowerConfig:
    """How plans are switched and when they are stale.

    Attributes:
        switch_blend_s: time over which the jump between the old and the new reference decays (0: no blend).
        max_plan_delay_s: a plan that starts longer ago than this when it arrives is refused as stale.
    """

    switch_blend_s: float = 0.5
    max_plan_delay_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.switch_blend_s >= 0.0:
            raise ValueError(f"switch_blend_s must be >= 0, got {self.switch_blend_s}")
        if not self.max_plan_delay_s > 0.0:
            raise ValueError(f"max_plan_delay_s must be > 0, got {self.max_plan_delay_s}")


@dataclass(frozen=True)
class _Blend:
    start_s: float
    coefficients: NDArray[np.float64]  # 6 x 4 quintic of the offset, local time from start_s


class TrajectoryFollower:
    """The reference for the controller at each instant (see the module docstring)."""

    def __init__(self, vehicle: VehicleParams, config: FollowerConfig | None = None) -> None:
        self.vehicle = vehicle
        self.config = config or FollowerConfig()
        self._plan: SampledTrajectory | None = None
        self._plan_start_s = 0.0
        self._hold: NDArray[np.float64] | None = None  # x, y, z, yaw
        self._blend: _Blend | None = None

    @property
    def plan_start_s(self) -> float | None:
        """Start time of the plan being followed (None before the first)."""
        return self._plan_start_s if self._plan is not None else None

    def mode(self, now_s: float) -> FollowerMode:
        """ "tracking" inside a plan, "hold" at a fixed point, "idle" before anything to follow."""
        if self._plan is not None and now_s <= self._plan_start_s + self._plan.duration_s:
            return "tracking"
        return "hold" if (self._plan is not None or self._hold is not None) else "idle"

    def hold_at(self, position: NDArray[np.float64], yaw_rad: float) -> None:
        """Hold this point until a plan arrives (used at start, where the vehicle is)."""
        self._hold = np.array([*np.asarray(position, dtype=np.float64)[:3], float(yaw_rad)])
        self._plan = None
        self._blend = None

    def accept(self, plan: SampledTrajectory, start_s: float, now_s: float) -> str:
        """Switch to a plan starting at `start_s`; return "" or, when it is refused, why."""
        delay = now_s - start_s
        if delay > self.config.max_plan_delay_s:
            return (
                f"stale plan refused: it starts {delay:.3f} s before now, more than max_plan_delay_s="
                f"{self.config.max_plan_delay_s} s"
            )
        blend = None
        if self._plan is not None or self._hold is not None:
            old = self.flat_outputs(now_s)
            new = plan.derivatives(now_s - start_s)
            offset = old[:3] - new[:3]
            offset[0, 3] = _wrap(offset[0, 3])
            if self.config.switch_blend_s > 0.0 and np.any(offset != 0.0):
                coefficients = quintic_hermite_coefficients(offset, np.zeros((3, 4)), self.config.switch_blend_s)
                blend = _Blend(now_s, coefficients)
        self._plan, self._plan_start_s, self._blend = plan, float(start_s), blend
        return ""

    def flat_outputs(self, now_s: float) -> NDArray[np.float64]:
        """Position to snap (`5 x 4`, axes x, y, z, yaw) of the reference at `now_s`."""
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


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2.0 * np.pi) - np.pi)

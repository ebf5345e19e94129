"""Where the automatic modes fly: a reference point that moves to a target at PX4's speed limits.

Takeoff climbs at MPC_TKO_SPEED, landing descends at MPC_LAND_SPEED, horizontal legs fly at
MPC_XY_CRUISE; the reference carries its own velocity as feed-forward, so the vehicle follows a
straight, speed-limited path rather than a step.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from quadsim.controller import Reference

_ZERO3 = np.zeros(3)


class Carrot:
    """A reference point moving towards a target with separate horizontal, climb and descent speed limits."""

    def __init__(self) -> None:
        self.position = np.zeros(3)
        self.target = np.zeros(3)
        self.yaw_rad = 0.0
        self._velocity = np.zeros(3)

    def start(self, position: NDArray[np.float64], yaw_rad: float, target: NDArray[np.float64] | None = None) -> None:
        """Begin at `position` (usually where the vehicle is) heading `yaw_rad`; hold there unless given a target."""
        self.position = np.array(position, dtype=np.float64)
        self.target = self.position.copy() if target is None else np.array(target, dtype=np.float64)
        self.yaw_rad = yaw_rad
        self._velocity = np.zeros(3)

    def reached(self, tolerance_m: float = 1e-6) -> bool:
        """True once the point is at the target."""
        return bool(np.linalg.norm(self.target - self.position) <= tolerance_m)

    def step(self, dt_s: float, xy_speed_m_s: float, up_speed_m_s: float, down_speed_m_s: float) -> Reference:
        """Move the point for `dt_s` and return the reference there."""
        delta = self.target - self.position
        step = np.zeros(3)
        horizontal = math.hypot(delta[0], delta[1])
        max_xy = xy_speed_m_s * dt_s
        if horizontal > 0.0:
            step[:2] = delta[:2] * (min(horizontal, max_xy) / horizontal)
        step[2] = float(np.clip(delta[2], -down_speed_m_s * dt_s, up_speed_m_s * dt_s))
        self.position = self.position + step
        self._velocity = step / dt_s if dt_s > 0.0 else np.zeros(3)
        return Reference(self.position.copy(), self._velocity.copy(), _ZERO3, self.yaw_rad, _ZERO3, _ZERO3)

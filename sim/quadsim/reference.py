"""Reference states along a trajectory, precomputed at the controller rate for fast flight loops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minsnap import Trajectory
from quadsim.controller import Reference
from quadsim.flatness import flat_state
from quadsim.vehicle import VehicleParams


@dataclass(frozen=True)
class ReferenceTrack:
    """Flat states sampled every `dt_s` from 0 to the end of the trajectory plus a hold at the last waypoint.

    Attributes:
        times_s: `K` sample times.
        derivatives: `5 x K x 4` position..snap of x, y, z, yaw (zero derivatives during the hold).
        body_rates_rad_s, body_angular_accel_rad_s2: `K x 3` feed-forward from flatness.
        rotation: `K x 3 x 3` reference attitude.
    """

    dt_s: float
    times_s: np.ndarray
    derivatives: np.ndarray
    body_rates_rad_s: np.ndarray
    body_angular_accel_rad_s2: np.ndarray
    rotation: np.ndarray

    @classmethod
    def build(cls, trajectory: Trajectory, vehicle: VehicleParams, dt_s: float, hold_s: float) -> ReferenceTrack:
        """Sample the trajectory every `dt_s` for its duration plus `hold_s` (the end point is held)."""
        count = int(np.floor((trajectory.duration_s + hold_s) / dt_s)) + 1
        times = np.arange(count) * dt_s
        derivatives = trajectory.derivatives(times, max_order=4)
        after_end = times > trajectory.duration_s
        derivatives[1:, after_end, :] = 0.0
        state = flat_state(derivatives, vehicle)
        return cls(
            dt_s=dt_s,
            times_s=times,
            derivatives=derivatives,
            body_rates_rad_s=state.body_rates_rad_s,
            body_angular_accel_rad_s2=state.body_angular_accel_rad_s2,
            rotation=state.rotation,
        )

    def __len__(self) -> int:
        return int(self.times_s.shape[0])

    def at(self, index: int) -> Reference:
        """The controller reference at sample `index`."""
        d = self.derivatives
        return Reference(
            position=d[0, index, :3],
            velocity=d[1, index, :3],
            acceleration=d[2, index, :3],
            yaw_rad=float(d[0, index, 3]),
            body_rates_rad_s=self.body_rates_rad_s[index],
            body_angular_accel_rad_s2=self.body_angular_accel_rad_s2[index],
        )

"""Geofences in the local ENU frame: an axis-aligned box or a vertical cylinder.

Shared by the planner's trajectory certificate and the PX4 bridge's failsafes (the bridge's config, in
hardware/, re-exports them). `excess_m` is convex in the position, so its largest value over a convex hull
of positions is at a vertex: that is what lets `quadsim.certificate` bound it over whole trajectory segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


class SettingError(ValueError):
    """A setting out of range; the message names the field and the allowed range.

    The geofences raise it, and the bridge's BridgeConfigError (hardware/) is this type, so that every setting
    (the geofence's included) fails with one error type although the geofence lives in sim.
    """


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise SettingError(message)


@dataclass(frozen=True)
class BoxGeofence:
    """An axis-aligned box in the local ENU frame (metres)."""

    min_enu_m: tuple[float, float, float] = (-50.0, -50.0, -1.0)
    max_enu_m: tuple[float, float, float] = (50.0, 50.0, 30.0)

    def __post_init__(self) -> None:
        _require(
            all(lo < hi for lo, hi in zip(self.min_enu_m, self.max_enu_m, strict=True)),
            "geofence box min must be < max on every axis",
        )

    def contains(self, position_enu_m: tuple[float, float, float] | list[float]) -> bool:
        """True inside (or on) the box."""
        return all(lo <= p <= hi for p, lo, hi in zip(position_enu_m, self.min_enu_m, self.max_enu_m, strict=True))

    def excess_m(self, positions_enu_m: ArrayLike) -> NDArray[np.float64]:
        """How far each position (`... x 3`, or wider: extra columns are ignored) is past the box's farthest
        face (m): <= 0 inside, > 0 outside. Convex in the position, 1-Lipschitz."""
        p = np.asarray(positions_enu_m, dtype=np.float64)[..., :3]
        past = np.maximum(np.asarray(self.min_enu_m) - p, p - np.asarray(self.max_enu_m))
        return np.asarray(past.max(axis=-1), dtype=np.float64)


@dataclass(frozen=True)
class CylinderGeofence:
    """A vertical cylinder in the local ENU frame: centre (x, y), radius, floor and ceiling (metres)."""

    center_enu_m: tuple[float, float] = (0.0, 0.0)
    radius_m: float = 50.0
    min_z_m: float = -1.0
    max_z_m: float = 30.0

    def __post_init__(self) -> None:
        _require(self.radius_m > 0.0, f"geofence radius_m must be > 0, got {self.radius_m}")
        _require(self.min_z_m < self.max_z_m, "geofence min_z_m must be < max_z_m")

    def contains(self, position_enu_m: tuple[float, float, float] | list[float]) -> bool:
        """True inside (or on) the cylinder."""
        x, y, z = position_enu_m
        dx, dy = x - self.center_enu_m[0], y - self.center_enu_m[1]
        return dx * dx + dy * dy <= self.radius_m**2 and self.min_z_m <= z <= self.max_z_m

    def excess_m(self, positions_enu_m: ArrayLike) -> NDArray[np.float64]:
        """How far each position (`... x 3`, or wider) is past the wall, floor or ceiling (m): <= 0 inside,
        > 0 outside. Convex in the position, 1-Lipschitz."""
        p = np.asarray(positions_enu_m, dtype=np.float64)
        radial = np.sqrt(np.square(p[..., :2] - np.asarray(self.center_enu_m)).sum(axis=-1)) - self.radius_m
        vertical = np.maximum(self.min_z_m - p[..., 2], p[..., 2] - self.max_z_m)
        return np.asarray(np.maximum(radial, vertical), dtype=np.float64)


Geofence = BoxGeofence | CylinderGeofence

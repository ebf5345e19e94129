"""Waypoint courses shipped with the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from minsnap.waypoint_files import load_waypoints

DEFAULT_COURSE = "warehouse_loop"


def course_path(name: str = DEFAULT_COURSE) -> Path:
    """Path of a built-in course CSV."""
    path = Path(str(resources.files("quadsim.courses") / f"{name}.csv"))
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.csv"))
        raise FileNotFoundError(f"no built-in course {name!r}; available: {available}")
    return path


def load_course(name: str = DEFAULT_COURSE) -> np.ndarray:
    """Waypoints (`N x 4`: x, y, z, yaw) of a built-in course."""
    return load_waypoints(course_path(name))

"""Read waypoint files: CSV with a header row `x,y,z` (optional `yaw`), or YAML; errors name the line."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import yaml
from numpy.typing import NDArray

from minsnap.errors import TrajectoryInputError
from minsnap.validation import as_waypoints

REQUIRED_COLUMNS = ("x", "y", "z")


class WaypointFileError(TrajectoryInputError):
    """A waypoint file cannot be read; the message names the file, the line and the problem."""


def _number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise WaypointFileError(f"{where}: column '{column}' is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise WaypointFileError(f"{where}: column '{column}' is {text!r}; coordinates must be finite")
    return value


def parse_waypoints_csv(text: str, source: str = "<csv>") -> NDArray[np.float64]:
    """Parse CSV text with a header row (x, y, z and optionally yaw, in any order) into an `N x 4` array."""
    rows = [r for r in csv.reader(io.StringIO(text))]
    numbered = [(i + 1, r) for i, r in enumerate(rows) if r and not r[0].lstrip().startswith("#")]
    if not numbered:
        raise WaypointFileError(f"{source}: the file is empty; expected a header row 'x,y,z[,yaw]' and waypoints")
    header_line, header = numbered[0]
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise WaypointFileError(
            f"{source}:{header_line}: header {header} lacks column(s) {missing}; expected 'x,y,z' and optionally 'yaw'"
        )
    columns = [*REQUIRED_COLUMNS, *(["yaw"] if "yaw" in names else [])]
    index = [names.index(c) for c in columns]
    points = np.zeros((len(numbered) - 1, 4))
    for k, (line, row) in enumerate(numbered[1:]):
        where = f"{source}:{line}"
        if len(row) != len(names):
            raise WaypointFileError(f"{where}: {len(row)} values but the header has {len(names)} columns")
        for j, (column, i) in enumerate(zip(columns, index, strict=True)):
            points[k, j] = _number(row[i].strip(), where, column)
    return _checked(points, source, [line for line, _ in numbered[1:]])


def parse_waypoints_yaml(text: str, source: str = "<yaml>") -> NDArray[np.float64]:
    """Parse YAML: a list of `{x, y, z[, yaw]}` mappings or `[x, y, z(, yaw)]` lists, top-level or under `waypoints`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WaypointFileError(f"{source}: not valid YAML: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("waypoints")
    if not isinstance(data, list):
        raise WaypointFileError(f"{source}: expected a list of waypoints (top level or under 'waypoints')")
    points = np.zeros((len(data), 4))
    for k, item in enumerate(data):
        where = f"{source}: waypoint {k}"
        if isinstance(item, dict):
            missing = [c for c in REQUIRED_COLUMNS if c not in item]
            if missing:
                raise WaypointFileError(f"{where} lacks {missing}")
            values = [item[c] for c in REQUIRED_COLUMNS] + [item.get("yaw", 0.0)]
            names = [*REQUIRED_COLUMNS, "yaw"]
        elif isinstance(item, list) and len(item) in (3, 4):
            values = [*item, 0.0] if len(item) == 3 else list(item)
            names = [*REQUIRED_COLUMNS, "yaw"]
        else:
            raise WaypointFileError(f"{where} is {item!r}; expected {{x, y, z[, yaw]}} or [x, y, z(, yaw)]")
        for j, (name, value) in enumerate(zip(names, values, strict=True)):
            points[k, j] = _number(str(value), where, name)
    return _checked(points, source, None)


def _checked(points: NDArray[np.float64], source: str, lines: list[int] | None) -> NDArray[np.float64]:
    try:
        return as_waypoints(points)
    except TrajectoryInputError as exc:
        message = str(exc)
        if lines is not None:
            message += f" (data rows are on lines {lines[0]}..{lines[-1]})" if lines else ""
        raise WaypointFileError(f"{source}: {message}") from exc


def load_waypoints(path: str | Path) -> NDArray[np.float64]:
    """Load an `N x 4` waypoint array from a `.csv`, `.yaml` or `.yml` file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise WaypointFileError(f"cannot read waypoint file {file}: {exc.strerror}") from exc
    if file.suffix.lower() in (".yaml", ".yml"):
        return parse_waypoints_yaml(text, str(file))
    if file.suffix.lower() == ".csv":
        return parse_waypoints_csv(text, str(file))
    raise WaypointFileError(f"{file}: unknown waypoint file type {file.suffix!r}; use .csv (x,y,z[,yaw]) or .yaml")

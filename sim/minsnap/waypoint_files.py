"""Read waypoint files: CSV with a header row `x,y,z` (optional `yaw`), or YAML; errors name the file and the line."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from minsnap.errors import TrajectoryInputError
from minsnap.validation import as_waypoints
from runkit import UserError

REQUIRED_COLUMNS = ("x", "y", "z")


class WaypointFileError(TrajectoryInputError, UserError):
    """A waypoint file cannot be read; the message names the file, the line and the problem.

    A `UserError`: the command-line tools report it on one line (exit status 2).
    """


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
    reader = csv.reader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise WaypointFileError(f"{source}:{reader.line_num + 1}: not a CSV row: {exc}") from exc
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
    data, lines = _yaml_waypoints(text, source)
    if not isinstance(data, list):
        raise WaypointFileError(f"{source}: expected a list of waypoints (top level or under 'waypoints')")
    points = np.zeros((len(data), 4))
    for k, item in enumerate(data):
        where = f"{source}:{lines[k]}: waypoint {k}" if lines else f"{source}: waypoint {k}"
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
    return _checked(points, source, lines)


def _yaml_waypoints(text: str, source: str) -> tuple[Any, list[int] | None]:
    """The waypoint list of a YAML document (top level or under `waypoints`) and the line of each waypoint."""
    try:
        loader = yaml.SafeLoader(text)  # checks the characters already
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise WaypointFileError(_yaml_problem(exc, text, source)) from exc
    if isinstance(data, dict) and isinstance(node, yaml.MappingNode):
        data = data.get("waypoints")
        node = next((value for key, value in node.value if key.value == "waypoints"), None)
    if isinstance(data, list) and isinstance(node, yaml.SequenceNode) and len(node.value) == len(data):
        return data, [item.start_mark.line + 1 for item in node.value]
    return data, None


def _yaml_problem(error: yaml.YAMLError, text: str, source: str) -> str:
    """A YAML error on one line, with the line it is on."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        message = f"{source}:{error.problem_mark.line + 1}: not valid YAML: {error.problem}"
        if error.context and error.context_mark is not None:
            message += f" ({error.context} from line {error.context_mark.line + 1})"
        return message
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        code = ord(error.character) if isinstance(error.character, str) else error.character
        return f"{source}:{line}: not valid YAML: character #x{code:04x} is not allowed in YAML text"
    return f"{source}: not valid YAML: {' '.join(str(error).split())}"


def _checked(points: NDArray[np.float64], source: str, lines: list[int] | None) -> NDArray[np.float64]:
    try:
        return as_waypoints(points)
    except TrajectoryInputError as exc:
        message = str(exc)
        if lines is not None:
            message += f" (the waypoints are on lines {lines[0]}..{lines[-1]})" if lines else ""
        raise WaypointFileError(f"{source}: {message}") from exc


def load_waypoints(path: str | Path) -> NDArray[np.float64]:
    """Load an `N x 4` waypoint array from a `.csv`, `.yaml` or `.yml` file."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise WaypointFileError(f"{file}: unknown waypoint file type {suffix!r}; use .csv (x,y,z[,yaw]) or .yaml")
    text = _read_text(file)
    if suffix == ".csv":
        return parse_waypoints_csv(text, str(file))
    return parse_waypoints_yaml(text, str(file))


def _read_text(file: Path) -> str:
    """The text of a waypoint file (UTF-8, an optional byte-order mark); WaypointFileError for a binary file."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise WaypointFileError(f"cannot read waypoint file {file}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise WaypointFileError(
            f"{file}:{line}: not a UTF-8 text file (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "waypoint files are CSV or YAML text"
        ) from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise WaypointFileError(f"{file}:{line}: not a text file (it holds NUL bytes); waypoint files are CSV or YAML")
    return text.replace("\r\n", "\n").replace("\r", "\n")

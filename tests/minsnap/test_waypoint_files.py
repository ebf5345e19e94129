"""Waypoint files: CSV and YAML read correctly, and every error names the line and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from minsnap.waypoint_files import WaypointFileError, load_waypoints, parse_waypoints_csv, parse_waypoints_yaml


def test_csv_with_yaw_any_column_order_and_comments() -> None:
    text = "# my course\nyaw,z,x,y\n0.5,1,0,0\n\n1.0,2,3,4\n"
    points = parse_waypoints_csv(text)
    np.testing.assert_allclose(points, [[0, 0, 1, 0.5], [3, 4, 2, 1.0]])


def test_csv_without_yaw_gets_zero_yaw() -> None:
    points = parse_waypoints_csv("x,y,z\n0,0,1\n1,0,1\n")
    np.testing.assert_allclose(points[:, 3], 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a,b,c\n1,2,3\n1,2,4\n", "lacks column"),
        ("x,y,z\n0,0,1\n1,zero,1\n", r"<csv>:3: column 'y' is 'zero', not a number"),
        ("x,y,z\n0,0,1\n1,nan,1\n", r"<csv>:3: column 'y' is 'nan'; coordinates must be finite"),
        ("x,y,z\n0,0,1\n1,2\n", r"<csv>:3: 2 values but the header has 3 columns"),
        ("x,y,z\n0,0,1\n", "at least 2 waypoints"),
        ("x,y,z\n0,0,1\n0,0,1\n", "same position"),
    ],
)
def test_csv_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(WaypointFileError, match=message):
        parse_waypoints_csv(text)


def test_yaml_mappings_and_lists() -> None:
    points = parse_waypoints_yaml("waypoints:\n  - {x: 0, y: 0, z: 1}\n  - [1, 2, 3, 0.5]\n")
    np.testing.assert_allclose(points, [[0, 0, 1, 0], [1, 2, 3, 0.5]])


@pytest.mark.parametrize(
    ("text", "message"),
    [("{bad", "not valid YAML"), ("a: 1", "expected a list"), ("- {x: 0, y: 0}\n- [1,1,1]", "lacks")],
)
def test_yaml_errors(text: str, message: str) -> None:
    with pytest.raises(WaypointFileError, match=message):
        parse_waypoints_yaml(text)


def test_load_by_suffix_and_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("x,y,z\n0,0,1\n1,1,1\n")
    (tmp_path / "c.yaml").write_text("- [0, 0, 1]\n- [1, 1, 1]\n")
    np.testing.assert_allclose(load_waypoints(tmp_path / "c.csv"), load_waypoints(tmp_path / "c.yaml"))
    (tmp_path / "c.txt").write_text("")
    with pytest.raises(WaypointFileError, match="unknown waypoint file type"):
        load_waypoints(tmp_path / "c.txt")
    with pytest.raises(WaypointFileError, match="cannot read"):
        load_waypoints(tmp_path / "missing.csv")

"""A waypoint file that is not what it should be (binary, another encoding, broken YAML) is a one-line user error
naming the file and the line; a file saved with a byte-order mark or Windows line ends still reads."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from minsnap import TrajectoryInputError
from minsnap.waypoint_files import WaypointFileError, load_waypoints, parse_waypoints_yaml
from runkit import UserError


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", ["course.csv", "course.yaml"])
def test_a_binary_file_names_the_file_and_says_it_is_not_text(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, bytes(range(200, 256)) * 4)
    with pytest.raises(WaypointFileError) as caught:
        load_waypoints(path)
    assert str(caught.value) == (
        f"{path}:1: not a UTF-8 text file (byte 0xc8 at offset 0); waypoint files are CSV or YAML text"
    )


def test_another_encoding_names_the_line_of_the_first_bad_byte(tmp_path: Path) -> None:
    path = _write(tmp_path, "latin1.csv", "x,y,z\n0,0,1\n1,1,1 # café\n".encode("latin-1"))
    with pytest.raises(WaypointFileError, match=rf"^{re.escape(str(path))}:3: not a UTF-8 text file \(byte 0xe9"):
        load_waypoints(path)


def test_nul_bytes_in_utf8_text_are_refused_with_their_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "nul.csv", b"x,y,z\n0,0,1\n1,1\x00,1\n")
    with pytest.raises(WaypointFileError, match=rf"^{re.escape(str(path))}:3: not a text file \(it holds NUL bytes\)"):
        load_waypoints(path)


def test_a_byte_order_mark_and_windows_line_ends_read_as_plain_csv(tmp_path: Path) -> None:
    path = _write(tmp_path, "excel.csv", b"\xef\xbb\xbfx,y,z\r\n0,0,1\r\n1,2,3\r\n")
    np.testing.assert_allclose(load_waypoints(path), [[0, 0, 1, 0], [1, 2, 3, 0]])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "- [0, 0, 1]\n- [1, 2\n  y: 3\n",
            r"^<yaml>:3: not valid YAML: .*\(while parsing a flow sequence from line 2\)$",
        ),
        ("- [0, 0, 1]\n- [1, \x01, 1]\n", r"^<yaml>:2: not valid YAML: character #x0001 is not allowed"),
        ("waypoints:\n  - [0, 0, 1]\n  - {x: 1, y: 2}\n", r"^<yaml>:3: waypoint 1 lacks \['z'\]$"),
        ("- [0, 0, 1]\n- [1, 1, one]\n", r"^<yaml>:2: waypoint 1: column 'z' is 'one', not a number$"),
        ("- [0, 0, 1]\n- [0, 0, 1]\n", r"same position .* \(the waypoints are on lines 1\.\.2\)$"),
    ],
)
def test_yaml_errors_are_one_line_and_name_the_line(text: str, message: str) -> None:
    with pytest.raises(WaypointFileError, match=message) as caught:
        parse_waypoints_yaml(text)
    assert "\n" not in str(caught.value)


def test_a_waypoint_file_error_is_a_user_error_and_a_trajectory_input_error(tmp_path: Path) -> None:
    with pytest.raises(WaypointFileError) as caught:
        load_waypoints(tmp_path / "missing.csv")
    assert isinstance(caught.value, UserError)
    assert isinstance(caught.value, TrajectoryInputError)

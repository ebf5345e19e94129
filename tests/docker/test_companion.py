"""The companion deployment: the systemd unit, its environment file, and the image's entrypoint script.

The image cannot be built here (no Docker engine); what can run here does: `systemd-analyze verify` on the
unit, and the entrypoint script under bash.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from px4link.link_url import parse_link_url

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "docker" / "systemd" / "mfrl-flight.service"
ENV_FILE = ROOT / "docker" / "systemd" / "mfrl-flight.env"
DOCKERFILE = ROOT / "docker" / "Dockerfile.companion"
ENTRYPOINT = ROOT / "docker" / "companion" / "entrypoint.sh"


def _unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) of a systemd unit, continuation lines joined; keys may repeat."""
    entries: list[tuple[str, str, str]] = []
    section, pending = "", ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def _values(section: str, key: str) -> list[str]:
    return [v for s, k, v in _unit_entries(UNIT) if s == section and k == key]


def _env() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if line and not line.startswith("#"))
    return {k: v for k, v in pairs}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    """Verified with docker's path of this machine and a stand-in docker.service (no Docker engine here)."""
    docker = shutil.which("docker") or "/bin/true"
    (tmp_path / "mfrl-flight.service").write_text(UNIT.read_text().replace("/usr/bin/docker", docker))
    (tmp_path / "docker.service").write_text("[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n")
    result = subprocess.run(
        ["systemd-analyze", "verify", "./mfrl-flight.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout + result.stderr == "", result.stdout + result.stderr


def test_unit_starts_after_docker_and_network_restarts_with_limits_and_starts_at_boot() -> None:
    assert "docker.service" in _values("Unit", "Requires")[0].split()
    after = _values("Unit", "After")[0].split()
    assert {"docker.service", "network-online.target"} <= set(after)
    assert "network-online.target" in _values("Unit", "Wants")[0].split()
    assert _values("Service", "Restart") == ["on-failure"]
    assert int(_values("Unit", "StartLimitBurst")[0]) >= 1
    assert int(_values("Unit", "StartLimitIntervalSec")[0]) > 0
    assert _values("Install", "WantedBy") == ["multi-user.target"]
    assert _values("Service", "StandardOutput") == ["journal"]
    assert any("MFRL_SERIAL_DEVICE" in v for v in _values("Service", "ExecStartPre")), "must wait for the serial port"


def test_unit_runs_the_image_with_the_serial_device_and_host_network() -> None:
    (exec_start,) = _values("Service", "ExecStart")
    words = exec_start.split()
    assert words[:2] == ["/usr/bin/docker", "run"]
    assert words[words.index("--device") + 1] == "${MFRL_SERIAL_DEVICE}"
    assert words[words.index("--network") + 1] == "host"
    assert words[-1] == "${MFRL_IMAGE}", "the image is the last word (no command: the image's entrypoint runs)"


def test_every_variable_the_unit_uses_is_set_in_the_environment_file() -> None:
    used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", UNIT.read_text())) - {"i"}
    passed = set(re.findall(r"--env ([A-Z_]+)", UNIT.read_text()))
    env = _env()
    assert (used | passed) <= set(env), f"not set in {ENV_FILE.name}: {sorted((used | passed) - set(env))}"
    assert _values("Service", "EnvironmentFile") == ["/etc/mfrl/mfrl-flight.env"]


def test_the_vehicle_url_is_one_the_bridge_accepts_on_the_device_passed_in() -> None:
    env = _env()
    link = parse_link_url(env["VEHICLE_URL"])
    assert link.kind == "serial"
    assert link.device == env["MFRL_SERIAL_DEVICE"]
    assert link.baud == 921600
    dockerfile_url = re.search(r"VEHICLE_URL=(\S+)", DOCKERFILE.read_text())
    assert dockerfile_url is not None
    parse_link_url(dockerfile_url.group(1))


def test_image_files_the_dockerfile_names_exist_and_are_executable() -> None:
    text = DOCKERFILE.read_text()
    for in_image in re.findall(r"/opt/mfrl/(docker/companion/[\w.-]+)", text):
        path = ROOT / in_image
        assert path.is_file(), f"{DOCKERFILE.name} uses {in_image}, which is not in the repository"
        assert os.access(path, os.X_OK), f"{in_image} must be executable (git keeps the mode; COPY keeps it)"
    assert "docker/companion/ros2" in text
    assert "USER flight" in text
    assert "--groups dialout" in text


def _run_entrypoint(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    # A stand-in `ros2` that prints its arguments (no ROS CLI here); the entrypoint is what is under test.
    ros2 = fake_bin / "ros2"
    ros2.write_text('#!/bin/sh\necho "ros2 $*"\n')
    ros2.chmod(0o755)
    full_env = {
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "ROS_LOG_DIR": str(tmp_path / "logs"),
        **env,
    }
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args], env=full_env, capture_output=True, text=True, check=False, timeout=30
    )


def test_entrypoint_launches_the_vehicle_graph_with_the_link_and_extra_arguments(tmp_path: Path) -> None:
    result = _run_entrypoint(
        tmp_path, "foxglove:=true", VEHICLE_URL="/dev/null:921600", MFRL_LAUNCH_ARGS="viewer:=false"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "ros2",
        "launch",
        "mfrl",
        "replanner.launch.py",
        "mode:=vehicle",
        "vehicle_url:=/dev/null:921600",
        "viewer:=false",
        "foxglove:=true",
    ]


def test_entrypoint_refuses_a_serial_device_that_was_not_passed_in(tmp_path: Path) -> None:
    result = _run_entrypoint(tmp_path, VEHICLE_URL="/dev/ttyNOPE9:921600")
    assert result.returncode == 66
    assert "--device /dev/ttyNOPE9" in result.stderr


def test_entrypoint_runs_a_command_instead_when_given_one(tmp_path: Path) -> None:
    result = _run_entrypoint(tmp_path, "echo", "preflight", VEHICLE_URL="/dev/ttyNOPE9:921600")
    assert result.returncode == 0
    assert result.stdout.strip() == "preflight"


def test_the_launch_file_declares_the_arguments_the_entrypoint_passes() -> None:
    launch_file = (ROOT / "ros2_ws" / "src" / "mfrl" / "launch" / "replanner.launch.py").read_text()
    assert '"mode"' in launch_file
    assert '"vehicle_url"' in launch_file

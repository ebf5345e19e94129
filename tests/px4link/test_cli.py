"""The `px4link` command line against the simulated PX4: pre-flight, arm refused and accepted, and the review of
the ULog the vehicle wrote of a flight the bridge flew (planned vs flown, from the log alone)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mujoco")

from px4link.bridge import Px4Bridge
from px4link.config import BridgeConfig, LinkConfig
from px4sim.autopilot import Px4SimConfig, SimulatedPx4

pytestmark = [pytest.mark.mavlink, pytest.mark.sim, pytest.mark.slow]

PX4LINK = [sys.executable, "-m", "px4link.cli"]


def _wait(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return bool(predicate())  # type: ignore[operator]


def _px4link(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PX4LINK, *args], capture_output=True, text=True, timeout=timeout_s, check=False)


def test_preflight_and_arm_say_why_not_and_then_go(udp_port: int, tmp_path: Path) -> None:
    vehicle = SimulatedPx4(Px4SimConfig(url=f"udpout:127.0.0.1:{udp_port}", params={"COM_OF_LOSS_T": 0.0}))
    url = f"udpin:127.0.0.1:{udp_port}"
    with vehicle:
        refused = _px4link("preflight", "--url", url)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "COM_OF_LOSS_T" in refused.stdout  # the report names what is not ready
        arm_refused = _px4link("arm", "--url", url)
        assert arm_refused.returncode == 1
        assert not vehicle.snapshot().armed
    vehicle = SimulatedPx4(Px4SimConfig(url=f"udpout:127.0.0.1:{udp_port}"))
    with vehicle:
        ready = _px4link("preflight", "--url", url)
        assert ready.returncode == 0, ready.stdout + ready.stderr
        armed = _px4link("arm", "--url", url)
        assert armed.returncode == 0, armed.stdout + armed.stderr
        assert _wait(lambda: vehicle.snapshot().armed, 2.0)


class _Leg:
    """2 m north of `start` in 4 s (quintic, at rest at both ends)."""

    duration_s = 4.0

    def __init__(self, start: tuple[float, float, float]) -> None:
        self.start = start

    def derivatives(self, t_s: float) -> list[list[float]]:
        s = min(max(t_s / self.duration_s, 0.0), 1.0)
        h = 10 * s**3 - 15 * s**4 + 6 * s**5
        dh = (30 * s**2 - 60 * s**3 + 30 * s**4) / self.duration_s
        ddh = (60 * s - 180 * s**2 + 120 * s**3) / self.duration_s**2
        x, y, z = self.start
        return [[x, y + 2.0 * h, z, 0.0], [0.0, 2.0 * dh, 0.0, 0.0], [0.0, 2.0 * ddh, 0.0, 0.0]]


def test_review_of_the_log_the_vehicle_wrote(udp_port: int, tmp_path: Path) -> None:
    logs = tmp_path / "ulog"
    vehicle = SimulatedPx4(Px4SimConfig(url=f"udpout:127.0.0.1:{udp_port}", ulog_dir=logs))
    bridge = Px4Bridge(BridgeConfig(link=LinkConfig(url=f"udpin:127.0.0.1:{udp_port}")))
    with vehicle, bridge:
        assert bridge.wait_vehicle(10.0)
        assert _wait(lambda: bridge.telemetry().local_position is not None, 5.0)
        assert _wait(lambda: bridge.telemetry().ekf is not None, 5.0)
        bridge.arm()
        bridge.takeoff(2.0)
        assert _wait(lambda: vehicle.snapshot().mode.name == "AUTO.LOITER", 15.0), "takeoff did not end in a hold"
        time.sleep(2.0)  # settle in the hold
        here = bridge.telemetry().local_position.position_enu_m  # type: ignore[union-attr]
        bridge.follow(_Leg(here), time.monotonic() + 1.5)
        bridge.start_offboard()
        time.sleep(5.0)
        bridge.land()
        assert _wait(lambda: not vehicle.snapshot().armed, 30.0), "did not land and disarm"
    assert _wait(lambda: any(logs.glob("*.ulg")), 5.0), "no ULog written"
    log_file = sorted(logs.glob("*.ulg"))[-1]
    out = tmp_path / "review"
    reviewed = _px4link("review", str(log_file), "--out-dir", str(out))
    assert reviewed.returncode == 0, reviewed.stdout + reviewed.stderr
    assert "ARMED" in reviewed.stdout
    summary = json.loads(next(out.glob("*.json")).read_text())
    assert next(out.glob("*.png")).stat().st_size > 10_000
    offboard = summary["tracking_error_by_mode"]["OFFBOARD"]
    assert offboard["max_m"] < 0.3, summary  # the flown leg followed the planned one
    assert summary["max_speed_m_s"] > 0.5, summary  # ... and it did move


def test_preflight_over_a_signed_link_with_the_vehicles_key_file(udp_port: int, tmp_path: Path) -> None:
    key = bytes(range(32))
    key_file = tmp_path / "mavlink_key"
    key_file.write_text(key.hex() + "\n")
    config = Px4SimConfig(url=f"udpout:127.0.0.1:{udp_port}", signing_key=key, require_signing=True)
    url = f"udpin:127.0.0.1:{udp_port}"
    with SimulatedPx4(config):
        signed = _px4link("preflight", "--url", url, "--signing-key-file", str(key_file))
        assert signed.returncode == 0, signed.stdout + signed.stderr
        wrong = tmp_path / "wrong_key"
        wrong.write_text(bytes(32).hex())
        refused = _px4link("preflight", "--url", url, "--signing-key-file", str(wrong), "--wait-s", "2")
        assert refused.returncode != 0  # the vehicle's signed frames fail our check: no vehicle is heard
        assert "no heartbeat" in refused.stderr
    bad = tmp_path / "short_key"
    bad.write_text("abcd")
    unusable = _px4link("preflight", "--url", url, "--signing-key-file", str(bad))
    assert unusable.returncode != 0
    assert "32 bytes" in unusable.stderr
    assert "Traceback" not in unusable.stderr


def test_the_command_line_defaults_are_the_link_configs() -> None:
    """`px4link`'s --url and --system-id default to LinkConfig's own values (no second copy to drift)."""
    from px4link.cli import LinkArgs
    from px4link.config import LinkConfig

    link = LinkArgs().bridge_config().link
    defaults = LinkConfig()
    assert (link.url, link.system_id, link.vehicle_system_id) == (
        defaults.url,
        defaults.system_id,
        defaults.vehicle_system_id,
    )

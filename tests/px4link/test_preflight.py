"""Pre-flight: a ready vehicle passes and arms; each unready part makes arm() refuse and say why."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pymavlink.dialects.v20 import common as mavlink2

from px4link.bridge import Px4Bridge
from px4link.config import BoxGeofence, BridgeConfig, FailsafeConfig, LinkConfig, PreflightConfig
from px4link.preflight import PreflightFailed

pytestmark = pytest.mark.mavlink


def _bridge(port: int, **failsafes: Any) -> Px4Bridge:
    return Px4Bridge(
        BridgeConfig(
            link=LinkConfig(url=f"udpout:127.0.0.1:{port}", heartbeat_period_s=0.2),
            failsafes=FailsafeConfig(**failsafes),
            preflight=PreflightConfig(param_timeout_s=0.3),
        )
    )


def _ready(bridge: Px4Bridge) -> None:
    assert bridge.wait_vehicle(3.0)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        t = bridge.telemetry()
        if t.local_position and t.ekf and t.battery:
            return
        time.sleep(0.02)
    raise AssertionError("no telemetry from the peer")


def test_ready_vehicle_passes_and_arms(peer: Any) -> None:
    with _bridge(peer.port) as bridge:
        _ready(bridge)
        report = bridge.preflight()
        assert report.ok, report.summary()
        bridge.arm()
        assert peer.armed


@pytest.mark.parametrize(
    ("spoil", "item", "reason"),
    [
        (lambda p: p.params.__setitem__("COM_OBL_RC_ACT", (6, 6)), "COM_OBL_RC_ACT", "never Terminate"),
        (lambda p: p.params.__setitem__("COM_OF_LOSS_T", (0.0, 9)), "COM_OF_LOSS_T", "set it in"),
        (lambda p: p.params.pop("NAV_DLL_ACT"), "NAV_DLL_ACT", "cannot read"),
        (lambda p: setattr(p, "ekf_flags", 0x1), "ekf", "no relative horizontal position"),
        (lambda p: setattr(p, "battery_remaining", 30), "battery", "need >= 50%"),
        (lambda p: setattr(p, "position_ned", [0.0, 0.0, -100.0]), "geofence", "outside the geofence"),
    ],
)
def test_unready_vehicle_is_refused_with_the_reason(peer: Any, spoil: Any, item: str, reason: str) -> None:
    spoil(peer)
    with _bridge(peer.port) as bridge:
        _ready(bridge)
        time.sleep(0.1)
        with pytest.raises(PreflightFailed, match=reason) as info:
            bridge.arm()
        assert [i.name for i in info.value.report.failures()] == [item]
        assert not any(c.command == mavlink2.MAV_CMD_COMPONENT_ARM_DISARM for c in peer.commands)


def test_missing_geofence_is_a_failure_and_force_arms_anyway(peer: Any) -> None:
    with _bridge(peer.port, geofence=None) as bridge:
        _ready(bridge)
        with pytest.raises(PreflightFailed, match="no geofence configured"):
            bridge.arm()
        bridge.arm(force=True)
        assert peer.armed


def test_no_vehicle_says_so(udp_port: int) -> None:
    with _bridge(udp_port, geofence=BoxGeofence()) as bridge:
        report = bridge.preflight()
        link = next(i for i in report.items if i.name == "link")
        assert not link.ok
        assert "no heartbeat" in link.reason

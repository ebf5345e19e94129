"""End to end against the simulated PX4 (px4sim, MuJoCo quadrotor): the bridge arms it after a passing pre-flight
check, takes off, primes and enters OFFBOARD, flies a short trajectory, lands; a link cut during offboard and a
vehicle reboot are survived."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

pytest.importorskip("mujoco")

from px4link.bridge import ActionEvent, Px4Bridge
from px4link.config import BridgeConfig, FailsafeConfig, LinkConfig
from px4link.failsafes import FailsafeEvent, FailsafeKind
from px4sim.autopilot import Px4SimConfig, SimulatedPx4
from px4sim.link_faults import LinkFaultRelay, LinkFaults

pytestmark = [pytest.mark.mavlink, pytest.mark.sim, pytest.mark.slow]


def _wait(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


class _Leg:
    """From `start` (ENU) to 1.5 m east of it in 3 s (quintic, at rest at both ends), yaw east."""

    duration_s = 3.0

    def __init__(self, start: tuple[float, float, float]) -> None:
        self.start = np.asarray(start)

    def derivatives(self, t_s: float) -> np.ndarray:
        s = min(max(t_s / self.duration_s, 0.0), 1.0)
        h = 10 * s**3 - 15 * s**4 + 6 * s**5
        dh = (30 * s**2 - 60 * s**3 + 30 * s**4) / self.duration_s
        ddh = (60 * s - 180 * s**2 + 120 * s**3) / self.duration_s**2
        d = np.zeros((3, 4))
        d[0, :3] = self.start + np.array([1.5 * h, 0.0, 0.0])
        d[1, 0], d[2, 0] = 1.5 * dh, 1.5 * ddh
        return d


def _pair(
    port_vehicle_sends_to: int, bridge_url: str, params: dict[str, float] | None = None, **failsafes: Any
) -> tuple[SimulatedPx4, Px4Bridge]:
    vehicle = SimulatedPx4(Px4SimConfig(url=f"udpout:127.0.0.1:{port_vehicle_sends_to}", params=params or {}))
    bridge = Px4Bridge(BridgeConfig(link=LinkConfig(url=bridge_url), failsafes=FailsafeConfig(**failsafes)))
    return vehicle, bridge


def _airborne(bridge: Px4Bridge, altitude_m: float = 2.0) -> None:
    assert bridge.wait_vehicle(10.0), "no heartbeat from the simulated PX4"
    assert _wait(lambda: bridge.telemetry().local_position is not None and bridge.telemetry().ekf is not None, 5.0)
    report = bridge.preflight()
    assert report.ok, report.summary()
    bridge.arm()
    bridge.takeoff(altitude_m)
    assert _wait(lambda: bridge.telemetry().local_position.position_enu_m[2] > altitude_m - 0.3, 15.0), "no climb"  # type: ignore[union-attr]


def test_arm_takeoff_offboard_leg_land(udp_port: int) -> None:
    vehicle, bridge = _pair(udp_port, f"udpin:127.0.0.1:{udp_port}")
    vehicle.start()
    try:
        with bridge:
            _airborne(bridge)
            here = bridge.telemetry().local_position.position_enu_m  # type: ignore[union-attr]
            leg = _Leg(here)
            bridge.follow(leg, time.monotonic() + 1.3)  # starts right after the priming second
            bridge.start_offboard()
            assert vehicle.snapshot().mode.name == "OFFBOARD"
            assert _wait(lambda: vehicle.snapshot().position_enu[0] > here[0] + 1.3, 8.0), "did not fly the leg"
            time.sleep(1.0)
            end = vehicle.snapshot().position_enu
            assert np.linalg.norm(end - (np.asarray(here) + np.array([1.5, 0.0, 0.0]))) < 0.3
            bridge.land()
            assert _wait(lambda: vehicle.snapshot().landed, 20.0), "did not land"
    finally:
        vehicle.stop()


def test_link_cut_in_offboard_and_vehicle_reboot(udp_port: int) -> None:
    relay = LinkFaultRelay(LinkFaults()).start()
    vehicle, bridge = _pair(relay.port_b, f"udpout:127.0.0.1:{relay.port_a}", link_loss_s=0.5)
    vehicle.start()
    events: list[Any] = []
    try:
        with bridge:
            bridge.add_listener(events.append)
            _airborne(bridge)
            bridge.start_offboard()
            cut_s = relay.cut()
            assert _wait(
                lambda: any(isinstance(e, FailsafeEvent) and e.kind == FailsafeKind.LINK_LOST for e in events), 2.0
            )
            lost = next(e for e in events if isinstance(e, FailsafeEvent) and e.kind == FailsafeKind.LINK_LOST)
            print(f"\npx4sim: link cut -> bridge LINK_LOST {1000 * (lost.time_s - cut_s):.0f} ms")
            assert lost.time_s - cut_s < 0.5 + 0.3
            assert not bridge.offboard.claims_offboard
            # PX4's own offboard-loss failsafe takes the vehicle out of OFFBOARD after COM_OF_LOSS_T.
            assert _wait(lambda: vehicle.snapshot().mode.name != "OFFBOARD", 5.0)
            relay.restore()
            assert _wait(lambda: any(isinstance(e, ActionEvent) for e in events), 5.0)
            action = next(e for e in events if isinstance(e, ActionEvent))
            assert action.ok, action.detail
            assert action.action == "hold"
            bridge.land()
            assert _wait(lambda: vehicle.snapshot().landed, 20.0)
            bridge.disarm()
            assert _wait(lambda: not bridge.telemetry().status.armed, 3.0)  # type: ignore[union-attr]
            events.clear()
            vehicle.reboot(1.0)
            assert _wait(
                lambda: any(isinstance(e, FailsafeEvent) and e.kind == FailsafeKind.LINK_RESTORED for e in events), 10.0
            )
            assert not any(isinstance(e, ActionEvent) for e in events), "a vehicle rebooted on the ground is left alone"
            assert bridge.params.read("COM_OF_LOSS_T").value > 0.0, "parameters answer again after the reboot"
    finally:
        vehicle.stop()
        relay.stop()


def test_after_a_link_cut_px4s_own_landing_is_not_interrupted_by_the_bridge(udp_port: int) -> None:
    """COM_OBL_RC_ACT = 4: PX4 lands when offboard setpoints stop; the link's return must not turn that into a hold."""
    relay = LinkFaultRelay(LinkFaults()).start()
    vehicle, bridge = _pair(relay.port_b, f"udpout:127.0.0.1:{relay.port_a}", {"COM_OBL_RC_ACT": 4}, link_loss_s=0.5)
    vehicle.start()
    events: list[Any] = []
    try:
        with bridge:
            bridge.add_listener(events.append)
            _airborne(bridge)
            bridge.start_offboard()
            relay.cut()
            assert _wait(lambda: vehicle.snapshot().mode.name == "AUTO.LAND", 5.0), vehicle.snapshot().mode.name
            relay.restore()
            assert _wait(lambda: any(isinstance(e, ActionEvent) for e in events), 5.0)
            action = next(e for e in events if isinstance(e, ActionEvent))
            assert action.cause == FailsafeKind.LINK_RESTORED
            assert "not sent" in action.detail
            assert "AUTO.LAND" in action.detail
            time.sleep(0.5)
            assert vehicle.snapshot().mode.name == "AUTO.LAND"
            assert not bridge.offboard.claims_offboard
            assert _wait(lambda: vehicle.snapshot().landed, 20.0), "PX4's landing did not finish"
    finally:
        vehicle.stop()
        relay.stop()

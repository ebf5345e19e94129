"""Failsafes: the monitor's edges (pure), and through the bridge against the peer: a link cut during offboard is
detected within 0.5 s (measured and printed), the bridge stops claiming offboard and tells the vehicle to hold when
the link returns; geofence, battery and stale-trajectory failsafes command a hold or a landing."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from pymavlink.dialects.v20 import common as mavlink2

from px4link.bridge import ActionEvent, Px4Bridge
from px4link.config import BoxGeofence, BridgeConfig, FailsafeConfig, LinkConfig
from px4link.failsafes import FailsafeEvent, FailsafeInputs, FailsafeKind, FailsafeMonitor
from px4link.offboard import OffboardState
from px4sim.link_faults import LinkFaultRelay, LinkFaults


def _kinds(events: list[FailsafeEvent]) -> list[FailsafeKind]:
    return [e.kind for e in events]


def test_link_loss_fires_once_and_restore_asks_for_the_configured_action() -> None:
    monitor = FailsafeMonitor(FailsafeConfig(link_loss_s=0.5, link_loss_action="land"))
    assert monitor.evaluate(FailsafeInputs(0.0, float("inf"))) == [], "never connected is not a loss"
    assert monitor.evaluate(FailsafeInputs(1.0, 0.1)) == []
    assert _kinds(monitor.evaluate(FailsafeInputs(1.6, 0.6))) == [FailsafeKind.LINK_LOST]
    assert monitor.evaluate(FailsafeInputs(1.7, 0.7)) == [], "edge-triggered: once"
    restored = monitor.evaluate(FailsafeInputs(2.0, 0.01))
    assert _kinds(restored) == [FailsafeKind.LINK_RESTORED]
    assert restored[0].action == "land"


def test_geofence_battery_and_stale_trajectory_edges() -> None:
    monitor = FailsafeMonitor(
        FailsafeConfig(geofence=BoxGeofence((-5, -5, 0), (5, 5, 5)), trajectory_stale_s=1.0, battery_low_action="land")
    )
    base = {"link_age_s": 0.01, "armed": True, "offboard": True}
    assert monitor.evaluate(FailsafeInputs(0.0, position_enu_m=(0, 0, 1), battery_fraction=0.9, **base)) == []
    events = monitor.evaluate(FailsafeInputs(0.1, position_enu_m=(6, 0, 1), setpoint_enu_m=(7, 0, 1), **base))
    assert _kinds(events) == [FailsafeKind.GEOFENCE, FailsafeKind.GEOFENCE_SETPOINT]
    assert all(e.action == "hold" for e in events)
    low = monitor.evaluate(FailsafeInputs(0.2, battery_fraction=0.2, **base))
    assert _kinds(low) == [FailsafeKind.BATTERY_LOW]
    assert low[0].action == "land"
    critical = monitor.evaluate(FailsafeInputs(0.3, battery_fraction=0.05, **base))
    assert _kinds(critical) == [FailsafeKind.BATTERY_CRITICAL]
    assert critical[0].action == "land"
    assert monitor.evaluate(FailsafeInputs(0.4, trajectory_end_age_s=0.5, **base)) == []
    stale = monitor.evaluate(FailsafeInputs(0.5, trajectory_end_age_s=1.5, **base))
    assert _kinds(stale) == [FailsafeKind.TRAJECTORY_STALE]
    assert stale[0].action == "hold"


def test_a_critical_battery_landing_is_not_undone_when_the_reading_recovers() -> None:
    monitor = FailsafeMonitor(FailsafeConfig(battery_low_fraction=0.25, battery_critical_fraction=0.12))
    base = {"link_age_s": 0.01, "armed": True}
    assert _kinds(monitor.evaluate(FailsafeInputs(0.0, battery_fraction=0.10, **base))) == [
        FailsafeKind.BATTERY_CRITICAL
    ]
    # the voltage sags less as the vehicle descends: the reading rises above critical, then above low
    for t, fraction in ((1.0, 0.14), (2.0, 0.20), (3.0, 0.30), (4.0, 0.11)):
        assert monitor.evaluate(FailsafeInputs(t, battery_fraction=fraction, **base)) == [], fraction
    # after a landing and a disarm the latch is cleared: the next flight is judged afresh
    assert monitor.evaluate(FailsafeInputs(5.0, battery_fraction=0.11, link_age_s=0.01, armed=False)) == []
    assert _kinds(monitor.evaluate(FailsafeInputs(6.0, battery_fraction=0.20, **base))) == [FailsafeKind.BATTERY_LOW]
    assert monitor.evaluate(FailsafeInputs(7.0, battery_fraction=0.30, **base)) == []


def test_battery_and_geofence_are_ignored_while_disarmed() -> None:
    monitor = FailsafeMonitor(FailsafeConfig(geofence=BoxGeofence((-1, -1, 0), (1, 1, 1))))
    events = monitor.evaluate(FailsafeInputs(0.0, 0.01, position_enu_m=(9, 9, 9), battery_fraction=0.01, armed=False))
    assert events == []


def _config(port: int, **failsafes: Any) -> BridgeConfig:
    return BridgeConfig(
        link=LinkConfig(url=f"udpout:127.0.0.1:{port}", heartbeat_period_s=0.2),
        failsafes=FailsafeConfig(**failsafes),
    )


def _wait(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


def _fly_offboard(bridge: Px4Bridge) -> None:
    assert bridge.wait_vehicle(3.0)
    assert _wait(lambda: bridge.telemetry().local_position is not None, 2.0)
    bridge.arm(force=True)
    bridge.start_offboard()
    assert bridge.offboard.claims_offboard


@pytest.mark.mavlink
def test_link_cut_during_offboard_fails_safe_within_half_a_second_and_holds_on_return(peer: Any) -> None:
    relay = LinkFaultRelay(LinkFaults()).start()
    peer.remote, peer.fixed_remote = ("127.0.0.1", relay.port_b), True
    events: list[Any] = []
    try:
        with Px4Bridge(_config(relay.port_a, link_loss_s=0.5, link_loss_action="hold")) as bridge:
            bridge.add_listener(events.append)
            _fly_offboard(bridge)
            cut_s = relay.cut()
            assert _wait(
                lambda: any(isinstance(e, FailsafeEvent) and e.kind == FailsafeKind.LINK_LOST for e in events), 2.0
            )
            lost = next(e for e in events if isinstance(e, FailsafeEvent) and e.kind == FailsafeKind.LINK_LOST)
            latency_s = lost.time_s - cut_s
            print(f"\nlink cut -> LINK_LOST failsafe: {latency_s * 1000:.0f} ms (limit 500 ms + one telemetry period)")
            # The vehicle's last message can be up to one telemetry period (20 ms) before the cut: a generous bound.
            assert 0.40 < latency_s < 0.5 + 0.15
            assert bridge.offboard.state == OffboardState.LINK_LOST
            assert not bridge.offboard.claims_offboard
            time.sleep(0.3)
            restore_s = relay.restore()
            assert _wait(lambda: any(isinstance(e, ActionEvent) for e in events), 3.0)
            action = next(e for e in events if isinstance(e, ActionEvent))
            assert action.action == "hold"
            assert action.ok, action.detail
            assert action.cause == FailsafeKind.LINK_RESTORED
            hold_s = peer.first_command_time(mavlink2.MAV_CMD_DO_SET_MODE, p2=4, p3=3)
            assert hold_s is not None
            assert hold_s > restore_s
            print(f"link restored -> hold command at the vehicle: {(hold_s - restore_s) * 1000:.0f} ms")
            assert peer.mode == (4, 3)
            assert bridge.offboard.state == OffboardState.IDLE
    finally:
        relay.stop()


class _Away:
    """A trajectory that heads 1 m/s east forever (it would leave a 3 m fence after 3 s)."""

    def derivatives(self, t_s: float) -> np.ndarray:
        d = np.zeros((3, 4))
        d[0] = [max(t_s, 0.0), 0.0, 1.0, 0.0]
        d[1, 0] = 1.0
        return d


class _GoesBad:
    """1 m/s east, then NaN after 1.8 s (a broken plan); raises after 2.5 s."""

    def derivatives(self, t_s: float) -> np.ndarray:
        if t_s > 2.5:
            raise RuntimeError("segment lookup failed")
        d = np.zeros((3, 4))
        d[0] = [max(t_s, 0.0), 0.0, 1.0, 0.0]
        d[1, 0] = 1.0
        if t_s > 1.8:
            d[0, 0] = np.nan
        return d


@pytest.mark.mavlink
def test_a_trajectory_that_goes_non_finite_is_dropped_and_the_vehicle_holds_at_the_last_setpoint(peer: Any) -> None:
    events: list[Any] = []
    with Px4Bridge(_config(peer.port)) as bridge:
        bridge.add_listener(events.append)
        bridge.follow(_GoesBad(), time.monotonic())
        _fly_offboard(bridge)
        assert _wait(lambda: any(isinstance(e, ActionEvent) for e in events), 5.0)
        fault = next(e for e in events if isinstance(e, FailsafeEvent))
        assert fault.kind == FailsafeKind.TRAJECTORY_FAULT
        assert "not finite" in fault.detail
        action = next(e for e in events if isinstance(e, ActionEvent))
        assert action.action == "hold"
        assert action.cause == FailsafeKind.TRAJECTORY_FAULT
        assert _wait(lambda: peer.mode == (4, 3), 2.0), "no hold (AUTO.LOITER) at the vehicle"
        sent = [sp for _, sp in peer.setpoints]
        assert all(np.isfinite([sp.x, sp.y, sp.z]).all() for sp in sent)
        last_x = max(sp.x for sp in sent)  # NED x is north; the plan went east (NED y)
        assert last_x == pytest.approx(0.0, abs=1e-6)
        assert 1.5 < max(sp.y for sp in sent) <= 1.8 + 1e-6


@pytest.mark.mavlink
def test_setpoint_leaving_the_geofence_is_not_sent_and_the_vehicle_holds(peer: Any) -> None:
    events: list[Any] = []
    fence = BoxGeofence((-3.0, -3.0, -1.0), (3.0, 3.0, 5.0))
    with Px4Bridge(_config(peer.port, geofence=fence)) as bridge:
        bridge.add_listener(events.append)
        bridge.follow(_Away(), time.monotonic() - 1.5)
        _fly_offboard(bridge)
        assert _wait(lambda: any(isinstance(e, ActionEvent) for e in events), 5.0)
        kinds = [e.kind for e in events if isinstance(e, FailsafeEvent)]
        assert FailsafeKind.GEOFENCE_SETPOINT in kinds
        assert max(sp.y for _, sp in peer.setpoints) <= 3.0 + 1e-6, "a setpoint outside the fence was sent"
        assert peer.mode == (4, 3)


@pytest.mark.mavlink
def test_critical_battery_lands(peer: Any) -> None:
    events: list[Any] = []
    with Px4Bridge(_config(peer.port)) as bridge:
        bridge.add_listener(events.append)
        _fly_offboard(bridge)
        peer.battery_remaining = 5
        assert _wait(lambda: any(isinstance(e, ActionEvent) for e in events), 3.0)
        action = next(e for e in events if isinstance(e, ActionEvent))
        assert action.action == "land"
        assert action.cause == FailsafeKind.BATTERY_CRITICAL
        assert peer.mode == (4, 6)


@pytest.mark.mavlink
def test_stale_trajectory_holds(peer: Any) -> None:
    class Short:
        duration_s = 1.5

        def derivatives(self, t_s: float) -> np.ndarray:
            d = np.zeros((3, 4))
            d[0, 2] = 1.0
            return d

    events: list[Any] = []
    with Px4Bridge(_config(peer.port, trajectory_stale_s=0.5)) as bridge:
        bridge.add_listener(events.append)
        bridge.follow(Short(), time.monotonic())
        _fly_offboard(bridge)
        assert _wait(lambda: any(isinstance(e, ActionEvent) for e in events), 3.0)
        assert [e.kind for e in events if isinstance(e, FailsafeEvent)] == [FailsafeKind.TRAJECTORY_STALE]
        assert peer.mode == (4, 3)


def test_a_one_way_cut_is_a_link_loss_once_the_vehicle_has_answered() -> None:
    monitor = FailsafeMonitor(FailsafeConfig(link_loss_s=0.5, uplink_loss_s=1.0))
    assert monitor.evaluate(FailsafeInputs(0.0, 0.1, uplink_age_s=None)) == [], "never answered: not judged"
    assert monitor.evaluate(FailsafeInputs(0.5, 0.1, uplink_age_s=0.2)) == []
    events = monitor.evaluate(FailsafeInputs(1.5, 0.05, uplink_age_s=1.1))  # telemetry arrives, answers do not
    assert _kinds(events) == [FailsafeKind.LINK_LOST]
    assert "TIMESYNC" in events[0].detail
    assert _kinds(monitor.evaluate(FailsafeInputs(2.0, 0.05, uplink_age_s=0.1))) == [FailsafeKind.LINK_RESTORED]

"""The bridge against px4sim in its own process, through a tap that drops, cuts one or both directions and records:
offboard confirmation that survives lost heartbeats and ACKs, a one-way cut found from the vehicle's own answers,
and the link's return that holds at once without ever overriding a landing PX4 started itself."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("mujoco")

from px4link import px4_modes
from px4link.bridge import ActionEvent, OffboardError, Px4Bridge
from px4link.config import BridgeConfig, CommandConfig, FailsafeConfig, LinkConfig
from px4link.failsafes import FailsafeEvent, FailsafeKind
from px4link.offboard import OffboardState

from .conftest import free_udp_port, wait_until
from .mavlink_tap import (
    COMMAND_ACK,
    COMMAND_LONG,
    HEARTBEAT,
    SET_POSITION_TARGET_LOCAL_NED,
    Tap,
    start_px4sim,
    stop_px4sim,
)

pytestmark = [pytest.mark.mavlink, pytest.mark.sim, pytest.mark.slow]

MAV_CMD_DO_SET_MODE, MAV_CMD_NAV_LAND, MAV_CMD_NAV_LOITER_UNLIM = 176, 21, 17


class _Flight:
    def __init__(self, bridge: Px4Bridge, tap: Tap, vehicle: subprocess.Popen[bytes]) -> None:
        self.bridge, self.tap, self.vehicle = bridge, tap, vehicle
        self.events: list[Any] = []
        bridge.add_listener(self.events.append)

    def of(self, event_type: type, **fields: Any) -> list[Any]:
        events = list(self.events)
        return [e for e in events if isinstance(e, event_type) and all(getattr(e, k) == v for k, v in fields.items())]

    def mode(self) -> str:
        status = self.bridge.telemetry().status
        return "" if status is None else status.mode_name

    def airborne(self, altitude_m: float = 2.0) -> None:
        bridge = self.bridge
        assert bridge.wait_vehicle(30.0), "no heartbeat from px4sim"
        heard = bridge.telemetry
        assert wait_until(lambda: heard().local_position is not None and heard().ekf is not None, 5.0)
        bridge.arm()
        bridge.takeoff(altitude_m)
        assert wait_until(lambda: bridge.telemetry().local_position.position_enu_m[2] > altitude_m - 0.3, 20.0)  # type: ignore[union-attr]


def _flight(params: dict[str, float]) -> Iterator[_Flight]:
    bridge_port = free_udp_port()
    tap = Tap(bridge_port)
    bridge = Px4Bridge(
        BridgeConfig(
            link=LinkConfig(url=f"udpin:127.0.0.1:{bridge_port}"),
            failsafes=FailsafeConfig(link_loss_s=0.5, uplink_loss_s=1.0),
            commands=CommandConfig(ack_timeout_s=0.3, retries=2),
        )
    )
    vehicle = start_px4sim(tap.port, params=params)
    try:
        with bridge:
            yield _Flight(bridge, tap, vehicle)
    finally:
        stop_px4sim(vehicle)
        tap.close()


@pytest.fixture
def flight() -> Iterator[_Flight]:
    yield from _flight({"COM_OBL_RC_ACT": 4})  # COM_OF_LOSS_T: PX4's default, 1 s


def test_offboard_is_confirmed_by_ack_or_heartbeat_whichever_survives(flight: _Flight) -> None:
    bridge, tap = flight.bridge, flight.tap
    flight.airborne()
    # 1. Heartbeats lost in the confirmation window: the accepting ACK confirms.
    tap.drop_to_bridge = frozenset({HEARTBEAT})
    bridge.start_offboard()
    assert bridge.offboard.claims_offboard
    tap.drop_to_bridge = frozenset()
    assert wait_until(lambda: flight.mode() == "OFFBOARD", 3.0)
    bridge.hold()
    assert wait_until(lambda: flight.mode() == "AUTO.LOITER", 3.0)
    # 2. ACKs lost: the command is retried, and the heartbeat confirms.
    tap.drop_to_bridge = frozenset({COMMAND_ACK})
    bridge.start_offboard()
    assert bridge.offboard.claims_offboard
    tap.drop_to_bridge = frozenset()
    bridge.hold()
    assert wait_until(lambda: flight.mode() == "AUTO.LOITER", 3.0)
    # 3. Both lost: start_offboard cannot know and says so, but the stream goes on, and the bridge's state
    #    follows the vehicle as soon as a heartbeat gets through.
    tap.drop_to_bridge = frozenset({COMMAND_ACK, HEARTBEAT})
    with pytest.raises(OffboardError, match="no ACK"):
        bridge.start_offboard()
    assert bridge.offboard.state == OffboardState.PRIMING
    assert bridge.offboard.streaming
    tap.drop_to_bridge = frozenset()
    assert wait_until(lambda: bridge.offboard.claims_offboard, 2.5), "a heartbeat in OFFBOARD did not fix the state"
    assert flight.mode() == "OFFBOARD"
    bridge.land()
    assert wait_until(lambda: bridge.telemetry().landed is not None and bridge.telemetry().landed.on_ground, 20.0)  # type: ignore[union-attr]


def test_a_one_way_cut_is_found_from_the_vehicles_answers(flight: _Flight) -> None:
    bridge, tap = flight.bridge, flight.tap
    flight.airborne()
    bridge.start_offboard()
    cut_s = time.monotonic()
    tap.cut_to_vehicle = True  # the vehicle's messages still arrive; nothing the bridge sends gets through
    assert wait_until(lambda: flight.of(FailsafeEvent, kind=FailsafeKind.LINK_LOST), 2.5), "one-way cut not noticed"
    lost = flight.of(FailsafeEvent, kind=FailsafeKind.LINK_LOST)[0]
    print(f"\none-way cut -> LINK_LOST after {lost.time_s - cut_s:.3f} s: {lost.detail}")
    assert "TIMESYNC" in lost.detail
    assert lost.time_s - cut_s < 1.0 + 0.2 + 0.3  # uplink_loss_s + a TIMESYNC period + margin
    assert not bridge.offboard.claims_offboard
    # PX4's own offboard-loss action (COM_OBL_RC_ACT = 4: land) runs; when the link is back the bridge leaves it be.
    assert wait_until(lambda: flight.mode() == "AUTO.LAND", 5.0)
    back_s = time.monotonic()
    tap.cut_to_vehicle = False
    assert wait_until(lambda: flight.of(ActionEvent), 3.0)
    action = flight.of(ActionEvent)[0]
    assert "not sent" in action.detail, action.detail
    mode_commands = [c for c in tap.frames_to_vehicle(COMMAND_LONG, back_s) if _command(c[1]) in _MODE_COMMANDS]
    assert mode_commands == [], "the bridge sent a mode command over PX4's landing"
    assert wait_until(lambda: bridge.telemetry().landed is not None and bridge.telemetry().landed.on_ground, 20.0)  # type: ignore[union-attr]


def test_link_back_holds_at_once_and_never_overrides_px4s_landing(flight: _Flight) -> None:
    """Cuts shorter than COM_OF_LOSS_T (PX4 stays in OFFBOARD: the bridge streams a hold within a period or two),
    then one longer (PX4 lands on its own: the bridge sends no mode command)."""
    bridge, tap = flight.bridge, flight.tap
    flight.airborne()
    bridge.start_offboard()
    delays_ms = []
    for cut_length_s in (0.6, 0.7, 0.8):
        time.sleep(1.0)
        flight.events.clear()
        tap.cut()
        time.sleep(cut_length_s)
        back_s = tap.restore()
        assert wait_until(lambda b=back_s: tap.frames_to_vehicle(SET_POSITION_TARGET_LOCAL_NED, b), 1.0), "no setpoint"
        first = tap.frames_to_vehicle(SET_POSITION_TARGET_LOCAL_NED, back_s)
        assert wait_until(lambda: flight.of(ActionEvent), 1.0), "no action after the link came back"
        delays_ms.append(1000.0 * (first[0][0] - back_s))
        action = flight.of(ActionEvent)[0]
        assert action.ok
        assert "streamed in OFFBOARD" in action.detail, action.detail
        assert bridge.offboard.claims_offboard
        time.sleep(0.5)
        assert flight.mode() == "OFFBOARD", f"PX4 left OFFBOARD after a {cut_length_s} s cut"
        assert [c for c in tap.frames_to_vehicle(COMMAND_LONG, back_s) if _command(c[1]) in _MODE_COMMANDS] == []
    print(f"\nlink back -> first hold setpoint at the vehicle: {', '.join(f'{d:.0f}' for d in delays_ms)} ms")
    assert max(delays_ms) < 150.0  # the link is declared back on its first message, the stream resumes next tick
    # A cut longer than COM_OF_LOSS_T: PX4 lands by itself, and the bridge's return must not turn it into a hold.
    flight.events.clear()
    tap.cut()
    assert wait_until(lambda: flight.of(FailsafeEvent, kind=FailsafeKind.LINK_LOST), 1.0)
    time.sleep(1.5)
    back_s = tap.restore()
    assert wait_until(lambda: flight.of(ActionEvent), 3.0)
    assert wait_until(lambda: flight.mode() == "AUTO.LAND", 3.0)
    mode_commands = [c for c in tap.frames_to_vehicle(COMMAND_LONG, back_s) if _command(c[1]) in _MODE_COMMANDS]
    assert mode_commands == [], "the bridge sent a mode command over PX4's landing"
    assert wait_until(lambda: bridge.telemetry().landed is not None and bridge.telemetry().landed.on_ground, 20.0)  # type: ignore[union-attr]
    assert flight.mode() in ("AUTO.LAND", "AUTO.LOITER")  # landed where PX4 chose, never held in the air


_MODE_COMMANDS = {MAV_CMD_DO_SET_MODE, MAV_CMD_NAV_LAND, MAV_CMD_NAV_LOITER_UNLIM}


def _command(frame: bytes) -> int:
    """COMMAND_LONG's command field (after seven floats and the target ids; MAVLink 2 trims trailing zeros)."""
    payload = frame[10 : 10 + frame[1]] + bytes(33)
    return int.from_bytes(payload[28:30], "little")


def test_mode_names_the_tests_use_are_px4s() -> None:
    assert px4_modes.OFFBOARD.name == "OFFBOARD"
    assert {px4_modes.LAND.name, px4_modes.HOLD.name} == {"AUTO.LAND", "AUTO.LOITER"}


def test_the_preflight_check_passes_at_30_percent_loss_each_way() -> None:
    from px4sim.link_faults import LinkFaultRelay, LinkFaults

    relay = LinkFaultRelay(LinkFaults(loss_probability=0.3, seed=7)).start()
    vehicle = start_px4sim(relay.port_b)
    bridge = Px4Bridge(BridgeConfig(link=LinkConfig(url=f"udpout:127.0.0.1:{relay.port_a}")))
    try:
        with bridge:
            assert bridge.wait_vehicle(30.0)
            heard = bridge.telemetry
            assert wait_until(lambda: heard().ekf is not None and heard().battery is not None, 10.0)
            reports = [bridge.preflight() for _ in range(6)]
            failed = [r.summary() for r in reports if not r.ok]
            assert failed == [], "\n\n".join(failed)
            print(f"\n30 % loss: 6 of 6 pre-flight checks passed, {bridge.counters().param_retries} requests resent")
            assert bridge.counters().param_retries > 0, "the loss must have cost retries"
    finally:
        stop_px4sim(vehicle)
        relay.stop()

"""COMMAND_LONG / COMMAND_ACK: accepted, denied, late, missing (retries with `confirmation`, then CommandTimeout),
IN_PROGRESS; against the test peer and against MAVSDK's ActionServer (an independent implementation)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pymavlink.dialects.v20 import common as mavlink2

from px4link import px4_modes
from px4link.commands import CommandRejected, CommandSender, CommandTimeout
from px4link.config import CommandConfig

pytestmark = pytest.mark.mavlink

ARM = mavlink2.MAV_CMD_COMPONENT_ARM_DISARM
SET_MODE = mavlink2.MAV_CMD_DO_SET_MODE


def _sender(connection_to: Any, peer: Any, **config: Any) -> CommandSender:
    conn = connection_to(peer.port)
    assert conn.wait_vehicle(3.0), "no heartbeat from the peer"
    return CommandSender(conn, CommandConfig(**config))


def test_arm_is_acknowledged_and_reaches_the_vehicle(connection_to: Any, peer: Any) -> None:
    sender = _sender(connection_to, peer)
    result = sender.arm()
    assert result.attempts == 1
    assert peer.armed
    command = next(c for c in peer.commands if c.command == ARM)
    assert command.params[:2] == (1.0, 0.0), "force magic must not be sent unless asked"
    assert command.source == (1, 191), "the companion computer speaks as system 1, component 191"


def test_force_disarm_sends_the_magic_number_only_when_asked(connection_to: Any, peer: Any) -> None:
    sender = _sender(connection_to, peer)
    sender.disarm(force=True)
    assert next(c for c in peer.commands if c.command == ARM).params[1] == 21196.0


def test_set_mode_uses_px4_custom_mode_encoding(connection_to: Any, peer: Any) -> None:
    sender = _sender(connection_to, peer)
    sender.set_mode(px4_modes.LAND)
    assert peer.mode == (4, 6)
    sender.hold()
    assert peer.mode == (4, 3)


def test_denied_command_raises_with_the_command_and_the_reason(connection_to: Any, peer: Any) -> None:
    peer.behaviour.policy[ARM] = "deny"
    sender = _sender(connection_to, peer)
    with pytest.raises(CommandRejected, match=r"MAV_CMD_COMPONENT_ARM_DISARM \(arm\).*MAV_RESULT_DENIED"):
        sender.arm()
    assert not peer.armed


def test_missing_ack_is_retried_with_confirmation_then_times_out(connection_to: Any, peer: Any) -> None:
    peer.behaviour.policy[ARM] = "ignore"
    sender = _sender(connection_to, peer, ack_timeout_s=0.1, retries=3)
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"arm.*no COMMAND_ACK after 4 attempt"):
        sender.arm()
    assert 0.35 < time.monotonic() - start < 3.0
    sent = [c for c in peer.commands if c.command == ARM]
    assert [c.confirmation for c in sent] == [0, 1, 2, 3]
    assert sender.retries_sent == 3


def test_an_ack_from_another_component_of_the_vehicle_is_not_the_autopilots(connection_to: Any, peer: Any) -> None:
    peer.behaviour.policy[ARM] = "camera_accepts"
    sender = _sender(connection_to, peer, ack_timeout_s=0.1, retries=1)
    with pytest.raises(CommandTimeout, match=r"arm.*no COMMAND_ACK after 2 attempt"):
        sender.arm()
    assert not peer.armed


def test_lost_first_attempts_are_recovered_by_retries(connection_to: Any, peer: Any) -> None:
    peer.behaviour.ignore_first[ARM] = 2
    sender = _sender(connection_to, peer, ack_timeout_s=0.1, retries=4)
    result = sender.arm()
    assert result.attempts == 3
    assert peer.armed


def test_late_ack_within_the_timeout_needs_no_retry(connection_to: Any, peer: Any) -> None:
    peer.behaviour.ack_delay_s[ARM] = 0.25
    sender = _sender(connection_to, peer, ack_timeout_s=0.6, retries=2)
    result = sender.arm()
    assert result.attempts == 1
    assert result.elapsed_s >= 0.2


def test_in_progress_stops_resending_and_waits_for_the_final_ack(connection_to: Any, peer: Any) -> None:
    peer.behaviour.policy[ARM] = "in_progress"
    sender = _sender(connection_to, peer, ack_timeout_s=0.1, retries=5)
    result = sender.arm()
    assert result.attempts == 1, "IN_PROGRESS must stop the resending"
    assert peer.armed


def test_mavsdk_action_server_accepts_arm_takeoff_disarm(
    connection_to: Any, mavsdk_autopilot: Any, udp_port: int
) -> None:
    from mavsdk.plugins.action_server.action_server import ActionServer

    conn = connection_to(udp_port, url=f"udpin:127.0.0.1:{udp_port}")
    autopilot = mavsdk_autopilot(udp_port)
    server = ActionServer(autopilot.server_component())
    server.set_armable(True, True)
    server.set_disarmable(True, True)
    server.set_allow_takeoff(True)
    seen: list[str] = []
    server.subscribe_arm_disarm(lambda *args: seen.append("arm_disarm"))
    assert conn.wait_vehicle(5.0), "no heartbeat from MAVSDK"
    sender = CommandSender(conn, CommandConfig(ack_timeout_s=0.5, retries=3))
    assert sender.arm().attempts >= 1
    sender.takeoff()
    sender.disarm()
    deadline = time.monotonic() + 3.0  # MAVSDK calls back from its own thread, after it has sent the ACK
    while seen.count("arm_disarm") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen.count("arm_disarm") == 2


def test_mavsdk_action_server_refuses_arming_when_not_armable(
    connection_to: Any, mavsdk_autopilot: Any, udp_port: int
) -> None:
    from mavsdk.plugins.action_server.action_server import ActionServer

    conn = connection_to(udp_port, url=f"udpin:127.0.0.1:{udp_port}")
    autopilot = mavsdk_autopilot(udp_port)
    server = ActionServer(autopilot.server_component())
    server.set_armable(False, False)
    assert conn.wait_vehicle(5.0)
    sender = CommandSender(conn, CommandConfig(ack_timeout_s=0.5, retries=1))
    with pytest.raises(CommandRejected, match="arm"):
        sender.arm()

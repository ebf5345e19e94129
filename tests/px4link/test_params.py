"""Parameters: PX4's bytewise int encoding, read/write against the test peer and MAVSDK's ParamServer, timeouts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymavlink.dialects.v20 import common as mavlink2

from px4link.config import CommandConfig
from px4link.params import ParamClient, ParamRejected, ParamTimeout, decode_param_value, encode_param_value

INT32 = mavlink2.MAV_PARAM_TYPE_INT32
REAL32 = mavlink2.MAV_PARAM_TYPE_REAL32


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_int32_round_trips_bytewise_or_is_refused(value: int) -> None:
    # Bit patterns of a signalling NaN cannot survive a Python float: refused loudly, never sent corrupted.
    if 0x7F800000 < (value & 0x7FFFFFFF) < 0x7FC00000:
        with pytest.raises(ValueError, match="signalling-NaN"):
            encode_param_value(value, INT32)
        return
    assert decode_param_value(encode_param_value(value, INT32), INT32) == value


@given(st.integers(min_value=0, max_value=255))
def test_uint8_round_trips_bytewise(value: int) -> None:
    t = mavlink2.MAV_PARAM_TYPE_UINT8
    assert decode_param_value(encode_param_value(value, t), t) == value


def test_bytewise_is_not_a_cast() -> None:
    # PX4 puts the int's bits in the float: 3 travels as a denormal, not as 3.0.
    assert encode_param_value(3, INT32) != 3.0
    assert encode_param_value(3, INT32, "cast") == 3.0


@pytest.mark.mavlink
def test_read_and_write_against_the_peer(connection_to: Any, peer: Any) -> None:
    conn = connection_to(peer.port)
    assert conn.wait_vehicle(3.0)
    params = ParamClient(conn, CommandConfig(ack_timeout_s=0.3))
    assert params.read("COM_OBL_RC_ACT").value == 5
    assert params.read("COM_OF_LOSS_T").value == pytest.approx(1.0)
    assert params.write("COM_OBL_RC_ACT", 4).value == 4
    assert peer.params["COM_OBL_RC_ACT"] == (4, INT32)
    assert params.write("COM_OF_LOSS_T", 0.5).value == pytest.approx(0.5)


@pytest.mark.mavlink
def test_write_is_not_fooled_by_an_old_value_crossing_the_echo(connection_to: Any, peer: Any) -> None:
    """A PARAM_VALUE with the old value (another client's read) arriving before the echo is not a rejection."""
    conn = connection_to(peer.port)
    assert conn.wait_vehicle(3.0)
    params = ParamClient(conn, CommandConfig(ack_timeout_s=0.3))
    assert params.read("COM_OBL_RC_ACT").value == 5
    peer.behaviour.param_old_value_first = True
    assert params.write("COM_OBL_RC_ACT", 4).value == 4
    assert peer.params["COM_OBL_RC_ACT"] == (4, INT32)


@pytest.mark.mavlink
def test_write_the_vehicle_refuses_is_rejected_without_retries(connection_to: Any, peer: Any) -> None:
    conn = connection_to(peer.port)
    assert conn.wait_vehicle(3.0)
    params = ParamClient(conn, CommandConfig(ack_timeout_s=0.2, retries=3))
    peer.behaviour.param_rejects.add("COM_OF_LOSS_T")
    with pytest.raises(ParamRejected, match=r"COM_OF_LOSS_T=0.5 answered with COM_OF_LOSS_T=1.0"):
        params.write("COM_OF_LOSS_T", 0.5, param_type=REAL32)
    assert params.retries_sent == 0
    assert peer.params["COM_OF_LOSS_T"] == (1.0, REAL32)


@pytest.mark.mavlink
def test_unknown_parameter_times_out_after_retries(connection_to: Any, peer: Any) -> None:
    conn = connection_to(peer.port)
    assert conn.wait_vehicle(3.0)
    params = ParamClient(conn, CommandConfig(ack_timeout_s=0.1, retries=2))
    with pytest.raises(ParamTimeout, match=r"NOPE_PARAM.*3 attempt"):
        params.read("NOPE_PARAM")
    assert params.retries_sent == 2


@pytest.mark.mavlink
def test_read_and_write_against_mavsdk_param_server(connection_to: Any, mavsdk_autopilot: Any, udp_port: int) -> None:
    from mavsdk.plugins.param_server.param_server import ParamServer

    conn = connection_to(udp_port, url=f"udpin:127.0.0.1:{udp_port}")
    autopilot = mavsdk_autopilot(udp_port)
    server = ParamServer(autopilot.server_component())
    server.provide_param_int("COM_OBL_RC_ACT", 5)
    server.provide_param_float("COM_OF_LOSS_T", 1.5)
    assert conn.wait_vehicle(5.0)
    params = ParamClient(conn, CommandConfig(ack_timeout_s=0.5, retries=3))
    assert params.read("COM_OBL_RC_ACT").value == 5
    assert params.read("COM_OF_LOSS_T").value == pytest.approx(1.5)
    assert params.write("COM_OBL_RC_ACT", 4).value == 4
    assert server.retrieve_param_int("COM_OBL_RC_ACT") == 4
    params.write("COM_OF_LOSS_T", 0.75)
    assert server.retrieve_param_float("COM_OF_LOSS_T") == pytest.approx(0.75)

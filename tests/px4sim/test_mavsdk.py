"""MAVSDK (an independent MAVLink implementation that decodes PX4 modes itself) as the ground station."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from px4sim.autopilot import Px4SimConfig, SimulatedPx4

mavsdk = pytest.importorskip("mavsdk")
from mavsdk import ComponentType, Configuration, Mavsdk  # noqa: E402
from mavsdk.plugins.action import Action  # noqa: E402
from mavsdk.plugins.param import Param  # noqa: E402
from mavsdk.plugins.telemetry import FlightMode, Telemetry  # noqa: E402

pytestmark = [pytest.mark.mavlink, pytest.mark.sim]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def mavsdk_and_vehicle() -> Iterator[tuple[object, SimulatedPx4]]:
    port = _free_udp_port()
    sdk = Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION))
    sdk.add_any_connection(f"udpin://127.0.0.1:{port}")
    vehicle = SimulatedPx4(
        Px4SimConfig(url=f"udpout:127.0.0.1:{port}", stream_rate_scale=0.3, params={"COM_DISARM_LAND": 0.5})
    )
    vehicle.start()
    system = sdk.first_autopilot(8.0)
    assert system is not None, "MAVSDK did not discover the vehicle as an autopilot"
    try:
        yield system, vehicle
    finally:
        vehicle.stop()
        sdk.destroy()


def test_mavsdk_sees_modes_armed_state_position_and_params(mavsdk_and_vehicle: tuple[object, SimulatedPx4]) -> None:
    system, vehicle = mavsdk_and_vehicle
    telemetry, action, param = Telemetry(system), Action(system), Param(system)
    assert _until(lambda: telemetry.flight_mode() == FlightMode.HOLD, 3.0)
    assert not telemetry.armed()
    assert param.get_param_float("MIS_TAKEOFF_ALT") == pytest.approx(2.5)
    assert param.get_param_int("COM_OBL_RC_ACT") == 0
    param.set_param_float("MIS_TAKEOFF_ALT", 1.5)
    assert vehicle.params.get("MIS_TAKEOFF_ALT") == 1.5

    action.arm()
    assert _until(telemetry.armed, 3.0)
    action.takeoff()
    assert _until(lambda: telemetry.flight_mode() == FlightMode.TAKEOFF, 3.0)
    assert _until(lambda: telemetry.flight_mode() == FlightMode.HOLD, 8.0), "takeoff ends in hold"
    assert _until(lambda: abs(telemetry.position().relative_altitude_m - 1.5) < 0.15, 3.0)
    position = telemetry.position()
    assert position.latitude_deg == pytest.approx(47.397742, abs=1e-5)

    action.land()
    assert _until(lambda: telemetry.flight_mode() == FlightMode.LAND, 3.0)
    assert _until(lambda: not telemetry.armed(), 12.0), "landing ends disarmed"
    assert vehicle.snapshot().landed

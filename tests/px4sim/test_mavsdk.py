"""MAVSDK (an independent MAVLink implementation that decodes PX4 modes itself) as the ground station."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from pymavlink.dialects.v20 import common as mavlink

from px4sim import px4_custom_mode as px4_modes
from px4sim.autopilot import Px4SimConfig, SimulatedPx4

mavsdk = pytest.importorskip("mavsdk")
from mavsdk import ComponentType, Configuration, Mavsdk  # noqa: E402
from mavsdk.plugins.action import Action  # noqa: E402
from mavsdk.plugins.offboard import Offboard, PositionNedYaw, VelocityBodyYawspeed  # noqa: E402
from mavsdk.plugins.param import Param  # noqa: E402
from mavsdk.plugins.telemetry import FlightMode, Telemetry  # noqa: E402

pytestmark = [pytest.mark.mavlink, pytest.mark.sim]

# px4sim's name of each mode it reports -> MAVSDK's name of it (MAVSDK decodes HEARTBEAT.custom_mode itself).
MAVSDK_MODE = {
    "OFFBOARD": FlightMode.OFFBOARD,
    "POSCTL": FlightMode.POSCTL,
    "ALTCTL": FlightMode.ALTCTL,
    "MANUAL": FlightMode.MANUAL,
    "STABILIZED": FlightMode.STABILIZED,
    "AUTO.LOITER": FlightMode.HOLD,
    "AUTO.TAKEOFF": FlightMode.TAKEOFF,
    "AUTO.LAND": FlightMode.LAND,
    "AUTO.RTL": FlightMode.RETURN_TO_LAUNCH,
    "AUTO.MISSION": FlightMode.MISSION,
    "AUTO.READY": FlightMode.READY,
}


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
    # Out of MIS_TAKEOFF_ALT's documented range: PX4 applies it all the same
    # (PX4: src/modules/mavlink/mavlink_parameters.cpp).
    param.set_param_float("MIS_TAKEOFF_ALT", 100.0)
    assert vehicle.params.get("MIS_TAKEOFF_ALT") == 100.0
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


def test_mavsdk_names_every_mode_px4sim_reports(mavsdk_and_vehicle: tuple[object, SimulatedPx4]) -> None:
    system, vehicle = mavsdk_and_vehicle
    telemetry = Telemetry(system)
    assert {mode.name for mode in px4_modes.NAMED_MODES} == set(MAVSDK_MODE)
    vehicle.streams.set_interval(mavlink.MAVLINK_MSG_ID_HEARTBEAT, 50_000)  # 20 Hz: quicker mode reports
    for mode in px4_modes.NAMED_MODES:
        vehicle.commander.mode = mode  # disarmed: only the reported mode changes
        expected = MAVSDK_MODE[mode.name]
        assert _until(lambda expected=expected: telemetry.flight_mode() == expected, 2.0), (
            f"px4sim reports {mode.name}; MAVSDK reads {telemetry.flight_mode().name}, not {expected.name}"
        )
    vehicle.commander.mode = px4_modes.TERMINATION
    assert _until(lambda: telemetry.flight_mode() == FlightMode.UNKNOWN, 2.0), telemetry.flight_mode().name


def test_mavsdk_offboard_position_setpoint_flies_north(mavsdk_and_vehicle: tuple[object, SimulatedPx4]) -> None:
    """MAVSDK's offboard plugin (its own DO_SET_MODE and NED setpoints) flies px4sim: north is ENU +y."""
    system, vehicle = mavsdk_and_vehicle
    telemetry, action, offboard = Telemetry(system), Action(system), Offboard(system)
    assert _until(lambda: telemetry.flight_mode() == FlightMode.HOLD, 3.0)
    start = vehicle.snapshot().position_enu
    assert start[:2] == pytest.approx([0.0, 0.0], abs=0.05)
    assert vehicle.snapshot().yaw_enu_rad == pytest.approx(0.0, abs=0.05)  # boots facing east

    # Hover 1.5 m up, facing north (NED yaw 0), before and after the mode switch.
    offboard.set_position_ned(PositionNedYaw(0.0, 0.0, -1.5, 0.0))
    assert _until(lambda: vehicle.snapshot().offboard_signal_ok, 3.0), "MAVSDK's setpoints did not arrive"
    offboard.start()  # MAVSDK's MAV_CMD_DO_SET_MODE for OFFBOARD; raises unless px4sim accepts it
    assert _until(lambda: telemetry.flight_mode() == FlightMode.OFFBOARD, 3.0)
    assert vehicle.snapshot().mode.name == "OFFBOARD"
    action.arm()
    assert _until(lambda: vehicle.snapshot().position_enu[2] > 1.35, 10.0), "did not climb to the setpoint"
    assert _until(lambda: abs(telemetry.position_velocity_ned().position.down_m + 1.5) < 0.15, 5.0)
    assert _until(lambda: abs(vehicle.snapshot().yaw_enu_rad - math.pi / 2) < 0.05, 5.0), "did not face north"
    assert _until(lambda: abs(telemetry.attitude_euler().yaw_deg) < 3.0, 3.0), "MAVSDK does not see it face north"

    # One metre north in NED is one metre along ENU +y; east (ENU x) and height stay.
    offboard.set_position_ned(PositionNedYaw(1.0, 0.0, -1.5, 0.0))
    assert _until(lambda: abs(vehicle.snapshot().position_enu[1] - 1.0) < 0.05, 8.0), vehicle.snapshot().position_enu
    end = vehicle.snapshot().position_enu
    assert end[0] == pytest.approx(start[0], abs=0.1)
    assert end[2] == pytest.approx(1.5, abs=0.15)
    assert _until(lambda: abs(telemetry.position_velocity_ned().position.north_m - 1.0) < 0.1, 3.0)
    assert telemetry.position_velocity_ned().position.east_m == pytest.approx(0.0, abs=0.1)

    offboard.stop()  # MAVSDK asks for Hold: AUTO.LOITER in px4sim
    assert _until(lambda: telemetry.flight_mode() == FlightMode.HOLD, 3.0)
    assert vehicle.snapshot().mode.name == "AUTO.LOITER"


def test_mavsdk_documented_offboard_flow_one_setpoint_then_start(
    mavsdk_and_vehicle: tuple[object, SimulatedPx4],
) -> None:
    """MAVSDK's documented flow: one set_position_ned, then start(). PX4 needs only a fresh setpoint
    (PX4: src/modules/commander/HealthAndArmingChecks/checks/offboardCheck.cpp)."""
    system, vehicle = mavsdk_and_vehicle
    telemetry, offboard = Telemetry(system), Offboard(system)
    assert _until(lambda: telemetry.flight_mode() == FlightMode.HOLD, 3.0)
    before = vehicle.snapshot().counters.setpoints
    offboard.set_position_ned(PositionNedYaw(0.0, 0.0, -1.0, 0.0))
    offboard.start()  # raises OffboardError unless px4sim accepts the mode switch
    print(f"setpoints px4sim had from MAVSDK at start(): {vehicle.snapshot().counters.setpoints - before}")
    assert _until(lambda: telemetry.flight_mode() == FlightMode.OFFBOARD, 3.0)
    assert vehicle.snapshot().mode.name == "OFFBOARD"


def test_mavsdk_body_frame_velocity_flies_forward_right_and_down(
    mavsdk_and_vehicle: tuple[object, SimulatedPx4],
) -> None:
    """MAV_FRAME_BODY_NED velocity turns by the heading (PX4: src/modules/mavlink/mavlink_receiver.cpp).

    Facing east (NED yaw 90 deg): forward is east (ENU +x), right is south (ENU -y), down is down."""
    system, vehicle = mavsdk_and_vehicle
    telemetry, action, offboard = Telemetry(system), Action(system), Offboard(system)
    assert _until(lambda: telemetry.flight_mode() == FlightMode.HOLD, 3.0)
    offboard.set_position_ned(PositionNedYaw(0.0, 0.0, -2.0, 90.0))
    offboard.start()
    action.arm()
    assert _until(lambda: abs(vehicle.snapshot().position_enu[2] - 2.0) < 0.1, 10.0), "did not climb"
    assert _until(lambda: abs(vehicle.snapshot().yaw_enu_rad) < 0.05, 5.0), "did not face east"

    def moved(velocity: VelocityBodyYawspeed, seconds: float) -> np.ndarray:
        start = vehicle.snapshot().position_enu
        offboard.set_velocity_body(velocity)
        time.sleep(seconds)
        offboard.set_velocity_body(VelocityBodyYawspeed(0.0, 0.0, 0.0, 0.0))
        time.sleep(0.8)
        return np.asarray(vehicle.snapshot().position_enu - start)

    forward = moved(VelocityBodyYawspeed(1.0, 0.0, 0.0, 0.0), 1.5)
    assert forward[0] > 1.0, forward
    assert abs(forward[1]) < 0.25, forward
    assert abs(forward[2]) < 0.2, forward
    right = moved(VelocityBodyYawspeed(0.0, 1.0, 0.0, 0.0), 1.5)
    assert right[1] < -1.0, right
    assert abs(right[0]) < 0.25, right
    assert abs(right[2]) < 0.2, right
    down = moved(VelocityBodyYawspeed(0.0, 0.0, 0.5, 0.0), 1.5)
    assert down[2] < -0.5, down
    assert np.hypot(down[0], down[1]) < 0.25, down


def test_mavsdk_is_armable_follows_the_arming_checks(mavsdk_and_vehicle: tuple[object, SimulatedPx4]) -> None:
    """MAVSDK reads is_armable from SYS_STATUS MAV_SYS_STATUS_PREARM_CHECK, which PX4 sets healthy when its
    arming checks pass (PX4: src/modules/commander/HealthAndArmingChecks/HealthAndArmingChecks.cpp)."""
    system, vehicle = mavsdk_and_vehicle
    telemetry = Telemetry(system)
    assert _until(lambda: telemetry.health().is_armable, 5.0), "armable vehicle not seen as armable"
    vehicle.set_battery_remaining(0.10)
    assert _until(lambda: not telemetry.health().is_armable, 3.0), "low battery still armable"
    vehicle.set_battery_remaining(0.9)
    assert _until(lambda: telemetry.health().is_armable, 3.0)
    vehicle.set_estimator_ok(False)
    assert _until(lambda: not telemetry.health().is_armable, 3.0), "estimator fault still armable"

"""px4sim's own PX4 conventions checked against outside references: pymavlink's PX4 mode map, hand-computed frames.

px4sim is the bridge's independent test peer, so its mode encoding and frame changes are checked here against
things neither it nor the bridge wrote: pymavlink's own table of PX4 modes, and values worked out by hand.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from pymavlink import mavutil
from pymavlink.dialects.v20 import common as mavlink

from px4sim import px4_custom_mode as modes
from px4sim import px4_frames as frames
from px4sim.telemetry import GeoOrigin, TelemetryStreams, VehicleView, euler_of

# px4sim's name of each mode -> pymavlink's name of it (`mavutil.px4_map`, `mavutil.interpret_px4_mode`).
PYMAVLINK_NAME = {
    "MANUAL": "MANUAL",
    "ALTCTL": "ALTCTL",
    "POSCTL": "POSCTL",
    "STABILIZED": "STABILIZED",
    "ACRO": "ACRO",
    "RATTITUDE_LEGACY": "RATTITUDE",
    "OFFBOARD": "OFFBOARD",
    "AUTO.TAKEOFF": "TAKEOFF",
    "AUTO.LOITER": "LOITER",
    "AUTO.MISSION": "MISSION",
    "AUTO.RTL": "RTL",
    "AUTO.LAND": "LAND",
    "AUTO.7": "RTGS",  # retired by PX4 (sub mode 7), still in pymavlink's map
    "AUTO.FOLLOW_TARGET": "FOLLOWME",
}
# Modes px4sim reports that pymavlink has no name for.
NOT_IN_PYMAVLINK = {"AUTO.READY", "TERMINATION"}
REPORTED_MODES = (*modes.NAMED_MODES, modes.TERMINATION)


# ---- modes: px4sim against pymavlink ---------------------------------------------------------------------------


def test_every_mode_px4sim_reports_is_in_the_comparison() -> None:
    names = {mode.name for mode in REPORTED_MODES}
    assert "OFFBOARD" in names
    assert names <= set(PYMAVLINK_NAME) | NOT_IN_PYMAVLINK, "a new px4sim mode needs its pymavlink name here"
    assert set(PYMAVLINK_NAME.values()) == set(mavutil.px4_map), "pymavlink's PX4 map changed"


@pytest.mark.parametrize("mode", REPORTED_MODES, ids=lambda m: m.name)
def test_pymavlink_reads_px4sim_custom_mode_as_the_same_mode(mode: modes.Px4Mode) -> None:
    base = modes.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
    read = mavutil.interpret_px4_mode(base, modes.encode_custom_mode(mode))
    if mode.name in NOT_IN_PYMAVLINK:
        assert read not in mavutil.px4_map, f"pymavlink reads {mode.name} as another mode, {read}"
    else:
        assert read == PYMAVLINK_NAME[mode.name]


@pytest.mark.parametrize("pymavlink_name", sorted(mavutil.px4_map))
def test_pymavlink_set_mode_params_decode_to_the_same_mode(pymavlink_name: str) -> None:
    base, main, sub = mavutil.px4_map[pymavlink_name]
    mode = modes.mode_from_set_mode_params(base, main, sub)
    assert PYMAVLINK_NAME[mode.name] == pymavlink_name
    assert modes.set_mode_params(mode)[1:] == (main, sub)
    assert mavutil.interpret_px4_mode(base, modes.encode_custom_mode(mode)) == pymavlink_name


def test_mode_numbers_match_pymavlink_constants() -> None:
    assert int(modes.MainMode.OFFBOARD) == mavutil.PX4_CUSTOM_MAIN_MODE_OFFBOARD == 6
    assert int(modes.MainMode.AUTO) == mavutil.PX4_CUSTOM_MAIN_MODE_AUTO == 4
    assert int(modes.MainMode.POSCTL) == mavutil.PX4_CUSTOM_MAIN_MODE_POSCTL == 3
    assert int(modes.AutoSubMode.LOITER) == mavutil.PX4_CUSTOM_SUB_MODE_AUTO_LOITER == 3
    assert int(modes.AutoSubMode.LAND) == mavutil.PX4_CUSTOM_SUB_MODE_AUTO_LAND == 6
    assert modes.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED == mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
    assert modes.MAV_MODE_FLAG_SAFETY_ARMED == mavlink.MAV_MODE_FLAG_SAFETY_ARMED


def test_custom_mode_bit_layout_by_hand() -> None:
    # main mode in bits 16-23, sub mode in bits 24-31, the low 16 bits reserved (zero)
    assert modes.encode_custom_mode(modes.OFFBOARD) == 0x0006_0000
    assert modes.encode_custom_mode(modes.POSCTL) == 0x0003_0000
    assert modes.encode_custom_mode(modes.HOLD) == 0x0304_0000
    assert modes.encode_custom_mode(modes.LAND) == 0x0604_0000
    assert modes.decode_custom_mode(0x0504_0000) == modes.RTL
    assert modes.decode_custom_mode(0x0204_1234) == modes.TAKEOFF  # the reserved bits are ignored


@pytest.mark.parametrize("mode", REPORTED_MODES, ids=lambda m: m.name)
def test_mode_round_trips(mode: modes.Px4Mode) -> None:
    assert modes.decode_custom_mode(modes.encode_custom_mode(mode)) == mode
    assert modes.mode_from_set_mode_params(*modes.set_mode_params(mode)) == mode


def test_mode_names_and_aliases() -> None:
    assert modes.mode_by_name("offboard") == modes.OFFBOARD
    assert modes.mode_by_name("AUTO.LOITER") == modes.mode_by_name("HOLD") == modes.HOLD
    assert modes.mode_by_name("POSITION") == modes.POSCTL
    with pytest.raises(ValueError, match="unknown PX4 mode"):
        modes.mode_by_name("SPORT")


def test_bad_set_mode_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="CUSTOM_MODE_ENABLED"):
        modes.mode_from_set_mode_params(0.0, 6.0, 0.0)
    with pytest.raises(ValueError, match="main mode"):
        modes.mode_from_set_mode_params(1.0, 42.0, 0.0)
    with pytest.raises(ValueError, match="sub mode"):
        modes.mode_from_set_mode_params(1.0, 4.0, 300.0)
    with pytest.raises(ValueError, match="main mode"):
        modes.decode_custom_mode(0x002A_0000)


def _view(mode: modes.Px4Mode, armed: bool, quaternion_ned_frd: NDArray[np.float64] | None = None) -> VehicleView:
    zero = np.zeros(3)
    return VehicleView(
        time_boot_s=1.0,
        position_ned=zero,
        velocity_ned=zero,
        quaternion_ned_frd=np.array([1.0, 0.0, 0.0, 0.0]) if quaternion_ned_frd is None else quaternion_ned_frd,
        rates_frd=zero,
        home_ned=zero,
        armed=armed,
        mode=mode,
        landed=False,
        failsafe=False,
        estimator_ok=True,
        prearm_ok=True,
        battery_remaining=1.0,
        battery_voltage_v=16.0,
        battery_current_a=0.0,
        battery_consumed_mah=0.0,
        battery_cells=4,
    )


class _Bytes:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


def _over_the_wire(build: str, view: VehicleView) -> Any:
    """The message px4sim's telemetry builds for `view`, packed into a frame and parsed back by pymavlink."""
    out = _Bytes()
    sender = mavlink.MAVLink(out, srcSystem=1, srcComponent=1)
    sender.send(getattr(TelemetryStreams(sender, GeoOrigin()), build)(view))
    parsed = mavlink.MAVLink(None).parse_buffer(bytes(out.data)) or []
    assert len(parsed) == 1
    return parsed[0]


@pytest.mark.parametrize(
    "mode", [modes.OFFBOARD, modes.HOLD, modes.TAKEOFF, modes.LAND, modes.RTL], ids=lambda m: m.name
)
@pytest.mark.parametrize("armed", [False, True])
def test_heartbeat_frames_read_as_the_mode_in_pymavlink(mode: modes.Px4Mode, armed: bool) -> None:
    heartbeat = _over_the_wire("heartbeat", _view(mode, armed))
    assert heartbeat.autopilot == mavlink.MAV_AUTOPILOT_PX4
    assert heartbeat.base_mode & mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
    assert bool(heartbeat.base_mode & mavlink.MAV_MODE_FLAG_SAFETY_ARMED) == armed
    assert mavutil.mode_string_v10(heartbeat) == PYMAVLINK_NAME[mode.name]


# ---- frames: hand-computed values ------------------------------------------------------------------------------

SQRT_HALF = math.sqrt(0.5)


def test_world_axes_by_hand() -> None:
    np.testing.assert_allclose(frames.ned_to_enu([1.0, 0.0, 0.0]), [0.0, 1.0, 0.0])  # north = ENU +y
    np.testing.assert_allclose(frames.ned_to_enu([0.0, 1.0, 0.0]), [1.0, 0.0, 0.0])  # east = ENU +x
    np.testing.assert_allclose(frames.enu_to_ned([0.0, 0.0, 1.0]), [0.0, 0.0, -1.0])  # up = NED -z
    np.testing.assert_allclose(frames.enu_to_ned([1.0, 2.0, 3.0]), [2.0, 1.0, -3.0])
    np.testing.assert_allclose(frames.enu_to_ned([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]), [[0.0, 1.0, 0.0], [0, 0, -2]])


def test_body_axes_by_hand() -> None:
    np.testing.assert_allclose(frames.flu_to_frd([1.0, 0.0, 0.0]), [1.0, 0.0, 0.0])  # forward stays forward
    np.testing.assert_allclose(frames.flu_to_frd([0.0, 1.0, 0.0]), [0.0, -1.0, 0.0])  # left = -right
    np.testing.assert_allclose(frames.flu_to_frd([0.0, 0.0, 1.0]), [0.0, 0.0, -1.0])  # up = -down
    np.testing.assert_allclose(frames.frd_to_flu([0.1, 0.2, 0.3]), [0.1, -0.2, -0.3])


def test_unset_axes_stay_unset() -> None:
    enu = frames.ned_to_enu([math.nan, 2.0, 3.0])
    np.testing.assert_array_equal(enu, [2.0, math.nan, -3.0])  # NaN only where north was NaN


def test_yaw_by_hand() -> None:
    assert frames.yaw_enu_to_ned(0.0) == pytest.approx(math.pi / 2)  # facing east
    assert frames.yaw_enu_to_ned(math.pi / 2) == pytest.approx(0.0)  # facing north
    assert frames.yaw_enu_to_ned(math.pi) == pytest.approx(-math.pi / 2)  # facing west
    assert frames.yaw_ned_to_enu(0.0) == pytest.approx(math.pi / 2)  # north
    assert frames.yaw_ned_to_enu(math.pi / 2) == pytest.approx(0.0)  # east
    assert abs(frames.yaw_ned_to_enu(-math.pi / 2)) == pytest.approx(math.pi)  # west
    assert frames.yaw_rate_enu_to_ned(0.3) == pytest.approx(-0.3)  # turning left is a negative rate about down
    assert frames.yaw_rate_ned_to_enu(-0.3) == pytest.approx(0.3)


def test_wrap_angle() -> None:
    assert frames.wrap_angle(math.pi) == pytest.approx(math.pi)
    assert frames.wrap_angle(-math.pi) == pytest.approx(math.pi)  # (-pi, pi]: -pi becomes pi
    assert frames.wrap_angle(3 * math.pi) == pytest.approx(math.pi)
    assert frames.wrap_angle(-2.5 * math.pi) == pytest.approx(-0.5 * math.pi)
    assert frames.wrap_angle(0.25) == 0.25
    for angle in np.linspace(-20.0, 20.0, 401):
        wrapped = frames.wrap_angle(float(angle))
        assert -math.pi < wrapped <= math.pi
        assert math.isclose(math.cos(wrapped), math.cos(angle), abs_tol=1e-9)
        assert math.isclose(math.sin(wrapped), math.sin(angle), abs_tol=1e-9)


def _same_rotation(a: NDArray[np.float64], b: NDArray[np.float64]) -> bool:
    return bool(np.allclose(a, b, atol=1e-9) or np.allclose(a, -b, atol=1e-9))


def test_attitudes_by_hand() -> None:
    # Level, facing east (ENU identity) is a yaw of +90 deg in NED: a quarter turn about down.
    assert _same_rotation(frames.quat_enu_flu_to_ned_frd([1, 0, 0, 0]), np.array([SQRT_HALF, 0, 0, SQRT_HALF]))
    # Level, facing north (a quarter turn about up in ENU) is NED's identity.
    assert _same_rotation(frames.quat_enu_flu_to_ned_frd([SQRT_HALF, 0, 0, SQRT_HALF]), np.array([1.0, 0, 0, 0]))
    # Facing north, banked 30 deg right: ENU q = yaw(90) * roll(30) about forward; NED q = roll(30) alone.
    c45, s45, c15, s15 = SQRT_HALF, SQRT_HALF, math.cos(math.radians(15)), math.sin(math.radians(15))
    q_enu = np.array([c45 * c15, c45 * s15, s45 * s15, s45 * c15])
    q_ned = frames.quat_enu_flu_to_ned_frd(q_enu)
    assert _same_rotation(q_ned, np.array([c15, s15, 0.0, 0.0]))
    roll, pitch, yaw = euler_of(q_ned)
    assert (math.degrees(roll), math.degrees(pitch), math.degrees(yaw)) == pytest.approx((30.0, 0.0, 0.0), abs=1e-9)
    # The right wing (FRD +y) points down-east in NED, i.e. the vehicle banks right.
    right_wing_ned = frames.rotation_from_quaternion(q_ned) @ np.array([0.0, 1.0, 0.0])
    np.testing.assert_allclose(
        right_wing_ned, [0.0, math.cos(math.radians(30)), math.sin(math.radians(30))], atol=1e-12
    )


def test_heading_of_level_attitudes_by_hand() -> None:
    for yaw in (0.0, 0.5, math.pi / 2, 3.0, -2.0):
        level = np.array([[math.cos(yaw), -math.sin(yaw), 0.0], [math.sin(yaw), math.cos(yaw), 0.0], [0, 0, 1.0]])
        assert frames.heading_enu(level) == pytest.approx(yaw)
        q_ned = frames.quat_ned_frd_of_rotation(level)
        assert frames.wrap_angle(euler_of(q_ned)[2] - frames.yaw_enu_to_ned(yaw)) == pytest.approx(0.0, abs=1e-12)


# ---- frames: round trips and consistency -------------------------------------------------------------------------


def _random_quaternions(count: int, seed: int = 7) -> NDArray[np.float64]:
    q = np.random.default_rng(seed).normal(size=(count, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_vector_round_trips() -> None:
    v = np.random.default_rng(3).normal(size=(200, 3))
    np.testing.assert_allclose(frames.ned_to_enu(frames.enu_to_ned(v)), v)
    np.testing.assert_allclose(frames.frd_to_flu(frames.flu_to_frd(v)), v)
    for yaw in np.random.default_rng(4).uniform(-math.pi, math.pi, 200):
        assert frames.wrap_angle(frames.yaw_ned_to_enu(frames.yaw_enu_to_ned(float(yaw))) - yaw) == pytest.approx(
            0.0, abs=1e-12
        )


def test_rotation_matrices_are_proper_rotations() -> None:
    # ENU <-> NED and FLU <-> FRD are half turns (orthonormal, det +1), each its own inverse.
    for matrix in (frames.ENU_TO_NED, frames.FLU_TO_FRD):
        np.testing.assert_allclose(matrix @ matrix.T, np.eye(3))
        np.testing.assert_allclose(matrix @ matrix, np.eye(3))
        assert np.linalg.det(matrix) == pytest.approx(1.0)


def test_attitude_round_trips_and_agrees_with_vectors() -> None:
    rng = np.random.default_rng(11)
    for q in _random_quaternions(200):
        r_enu = frames.rotation_from_quaternion(q)
        np.testing.assert_allclose(r_enu @ r_enu.T, np.eye(3), atol=1e-12)
        assert _same_rotation(frames.quaternion_from_rotation(r_enu), q)
        q_ned = frames.quat_enu_flu_to_ned_frd(q)
        assert q_ned[0] >= 0.0
        assert _same_rotation(frames.quat_ned_frd_to_enu_flu(q_ned), q)
        assert _same_rotation(frames.quat_ned_frd_of_rotation(r_enu), q_ned)
        # A body vector carried into the world gives the same world vector in either pair of frames.
        body_flu = rng.normal(size=3)
        world_ned = frames.rotation_from_quaternion(q_ned) @ frames.flu_to_frd(body_flu)
        np.testing.assert_allclose(world_ned, frames.enu_to_ned(r_enu @ body_flu), atol=1e-12)


def test_heading_follows_the_body_left_axis() -> None:
    for q in _random_quaternions(100, seed=5):
        r = frames.rotation_from_quaternion(q)
        yaw = frames.heading_enu(r)
        heading = np.array([math.cos(yaw), math.sin(yaw), 0.0])
        assert abs(float(heading @ r[:, 1])) < 1e-9  # the body left axis is perpendicular to the heading
        assert float(np.cross(heading, r[:, 1])[2]) >= 0.0  # and lies to its left

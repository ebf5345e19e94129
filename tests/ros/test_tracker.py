"""The `tracker` node under bad odometry: a level hover command and a warning, never a crash or a NaN command."""

from __future__ import annotations

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import WrenchStamped
from nav_msgs.msg import Odometry

from mfrl import qos
from mfrl.conversions import odometry_message
from mfrl.tracker import Tracker
from quadsim.mujoco_vehicle import MujocoQuadrotor
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

from .conftest import LocalNodes

VEHICLE = VehicleParams()
HOVER_N = VEHICLE.mass_kg * GRAVITY_M_S2


@pytest.mark.ros
def test_bad_odometry_gets_a_hover_command_and_the_tracker_goes_on(local_nodes: LocalNodes) -> None:
    node = local_nodes.add(Tracker())
    assert isinstance(node, Tracker)
    peer = local_nodes.peer
    commands: list[WrenchStamped] = []
    diagnostics: list[DiagnosticArray] = []
    peer.create_subscription(WrenchStamped, "/cmd_wrench", commands.append, qos.COMMAND)
    peer.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, qos.REQUEST)
    odom_pub = peer.create_publisher(Odometry, "/odom", qos.SENSOR)
    assert local_nodes.spin_until(lambda: odom_pub.get_subscription_count() > 0, 10.0)
    quad = MujocoQuadrotor(VEHICLE)
    quad.reset(np.array([0.0, 0.0, 1.0]))

    def send(stamp_s: int, spoil: str = "") -> WrenchStamped:
        msg = odometry_message(quad.state(), "world", "base_link", Time(sec=stamp_s))
        if spoil == "nan":
            msg.pose.pose.position.x = float("nan")
        elif spoil == "zero quaternion":
            o = msg.pose.pose.orientation
            o.w = o.x = o.y = o.z = 0.0
        count = len(commands)
        odom_pub.publish(msg)
        assert local_nodes.spin_until(lambda: len(commands) > count, 5.0), f"no command for odometry {spoil!r}"
        return commands[-1]

    def values(command: WrenchStamped) -> list[float]:
        w = command.wrench
        return [w.force.z, w.torque.x, w.torque.y, w.torque.z]

    assert all(math.isfinite(v) for v in values(send(1)))
    for stamp_s, spoil in ((2, "nan"), (3, "zero quaternion")):
        assert values(send(stamp_s, spoil)) == pytest.approx([HOVER_N, 0.0, 0.0, 0.0])
    # the first bad sample must not have poisoned the hold: good odometry gets a finite command again
    after = values(send(4))
    assert all(math.isfinite(v) for v in after)
    assert after[0] == pytest.approx(HOVER_N, rel=0.2)

    def ours() -> list[DiagnosticStatus]:
        return [s for d in diagnostics for s in d.status if s.name == "mfrl: tracker"]

    assert local_nodes.spin_until(lambda: bool(ours()), 3.0), "no /diagnostics from the tracker"
    status = ours()[-1]
    assert status.level == DiagnosticStatus.WARN
    assert {kv.key: kv.value for kv in status.values}["bad_odometry"] == "2"


@pytest.mark.ros
def test_parameter_changes_are_validated_applied_or_refused_with_the_reason(local_nodes: LocalNodes) -> None:
    """What `ros2 param set` meets: a bad value and a start-up-only parameter are refused; a good gain applies."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    node = local_nodes.add(Tracker())
    assert isinstance(node, Tracker)
    client = local_nodes.peer.create_client(SetParameters, "/tracker/set_parameters")
    assert local_nodes.spin_until(client.service_is_ready, 10.0)

    def set_parameter(name: str, value: object) -> tuple[bool, str]:
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        future = client.call_async(request)
        assert local_nodes.spin_until(future.done, 5.0)
        result = future.result().results[0]
        return bool(result.successful), str(result.reason)

    ok, reason = set_parameter("switch_blend_s", -1.0)
    assert not ok
    assert "switch_blend_s" in reason
    ok, reason = set_parameter("diagnostics_period_s", 0.1)  # the timer is made at start-up
    assert not ok
    assert "read-only" in reason
    assert node.params.config.diagnostics_period_s == 1.0
    ok, _ = set_parameter("kp_attitude", 100.0)
    assert ok
    assert node.controller.gains.kp_attitude == 100.0
    # Integral action from outside: NaN, negative and unstable (>= kp*kd) gains are refused, the gains kept.
    for bad in ([float("nan"), 8.0, 12.0], [-1.0, 8.0, 12.0], [500.0, 8.0, 12.0]):
        ok, reason = set_parameter("ki_position", bad)
        assert not ok
        assert "ki_position" in reason
    assert node.controller.gains.ki_position == (8.0, 8.0, 12.0)
    ok, _ = set_parameter("integral_limit_m_s2", float("inf"))
    assert not ok
    ok, _ = set_parameter("ki_position", [0.0, 0.0, 0.0])  # off
    assert ok
    assert node.controller.gains.ki_position == (0.0, 0.0, 0.0)


@pytest.mark.ros
def test_a_flipped_or_distant_vehicle_is_an_error_and_a_warning_does_not_stick(local_nodes: LocalNodes) -> None:
    """Before: after a crash (flipped, 790 m from the plan) the tracker said OK, "tracking"; WARN was a sticky count."""
    node = local_nodes.add(Tracker())
    assert isinstance(node, Tracker)
    peer = local_nodes.peer
    commands: list[WrenchStamped] = []
    diagnostics: list[DiagnosticArray] = []
    peer.create_subscription(WrenchStamped, "/cmd_wrench", commands.append, qos.COMMAND)
    peer.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, qos.REQUEST)
    odom_pub = peer.create_publisher(Odometry, "/odom", qos.SENSOR)
    assert local_nodes.spin_until(lambda: odom_pub.get_subscription_count() > 0, 10.0)
    quad = MujocoQuadrotor(VEHICLE)

    def level_after(stamp_s: int, position: tuple[float, float, float], flipped: bool = False) -> DiagnosticStatus:
        quad.reset(np.array(position))
        msg = odometry_message(quad.state(), "world", "base_link", Time(sec=stamp_s))
        if flipped:
            o = msg.pose.pose.orientation
            o.w, o.x, o.y, o.z = 0.0, 1.0, 0.0, 0.0
        count = len(commands)
        odom_pub.publish(msg)
        assert local_nodes.spin_until(lambda: len(commands) > count, 5.0)
        diagnostics.clear()
        node.publish_diagnostics()
        assert local_nodes.spin_until(lambda: bool(diagnostics), 3.0)
        return next(s for d in diagnostics for s in d.status if s.name == "mfrl: tracker")

    assert level_after(1, (0.0, 0.0, 1.0)).level == DiagnosticStatus.OK  # holds where it starts
    crashed = level_after(2, (790.0, 0.0, 0.02), flipped=True)
    assert crashed.level == DiagnosticStatus.ERROR
    assert "tracking error 790" in crashed.message
    assert "tilt" in crashed.message
    assert level_after(3, (0.0, 0.0, 1.0)).level == DiagnosticStatus.WARN  # recent
    assert level_after(10, (0.0, 0.0, 1.0)).level == DiagnosticStatus.OK  # 5 s later: no sticky warning

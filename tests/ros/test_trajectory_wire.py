"""The trajectory's wire bytes: what rclpy reads from them, and what the followers read from any publisher's."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Transform, Twist
from hypothesis import given, settings
from hypothesis import strategies as st
from rclpy.serialization import deserialize_message, serialize_message
from trajectory_msgs.msg import MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint

from mfrl.trajectory_wire import WireFormatError, read_trajectory, write_trajectory
from minsnap import solve_min_snap
from quadsim.sampled_trajectory import SampledTrajectory

WAYPOINTS = np.array([[0.0, 0.0, 1.0, 0.0], [2.0, 1.0, 1.5, 1.0], [4.0, -1.0, 2.0, 3.0], [5.0, 2.0, 1.0, -2.5]])


def _sampled(samples_per_segment: int = 4) -> SampledTrajectory:
    return SampledTrajectory.from_trajectory(solve_min_snap(WAYPOINTS, np.array([1.5, 2.0, 1.2])), samples_per_segment)


def _message_field_by_field(sampled: SampledTrajectory, frame_id: str, stamp_ns: int) -> MultiDOFJointTrajectory:
    """The message built the readable way, with rclpy's Python objects."""
    msg = MultiDOFJointTrajectory()
    msg.header.frame_id = frame_id
    msg.header.stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    msg.joint_names = ["base_link"]
    for k, t in enumerate(sampled.times_s):
        (x, y, z, yaw), (vx, vy, vz, wz), (ax, ay, az, dwz) = sampled.values[:, k]
        point = MultiDOFJointTrajectoryPoint()
        transform = Transform()
        transform.translation.x, transform.translation.y, transform.translation.z = x, y, z
        transform.rotation.z, transform.rotation.w = math.sin(0.5 * yaw), math.cos(0.5 * yaw)
        velocity, acceleration = Twist(), Twist()
        velocity.linear.x, velocity.linear.y, velocity.linear.z, velocity.angular.z = vx, vy, vz, wz
        acceleration.linear.x, acceleration.linear.y, acceleration.linear.z = ax, ay, az
        acceleration.angular.z = dwz
        point.transforms, point.velocities, point.accelerations = [transform], [velocity], [acceleration]
        ns = round(float(t) * 1e9)
        point.time_from_start.sec, point.time_from_start.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
        msg.points.append(point)
    return msg


# "world" and "a_longer_frame" put the first point at 4 mod 8 (no padding after its first count), the others at 0
@pytest.mark.parametrize("frame_id", ["", "m", "map", "odom", "world", "world_ned", "a_longer_frame"])
@pytest.mark.parametrize("samples_per_segment", [1, 4])
def test_rclpy_reads_the_bytes_as_the_message_built_field_by_field(frame_id: str, samples_per_segment: int) -> None:
    sampled = _sampled(samples_per_segment)
    stamp_ns = 1_234_567_890_123
    expected = _message_field_by_field(sampled, frame_id, stamp_ns)
    data = write_trajectory(sampled, frame_id, stamp_ns)
    assert deserialize_message(data, MultiDOFJointTrajectory) == expected
    assert len(data) == len(serialize_message(expected))  # same layout; only padding bytes may differ


@pytest.mark.parametrize("frame_id", ["", "map", "odom"])
def test_followers_read_back_what_the_replanner_sent(frame_id: str) -> None:
    sampled = _sampled()
    wire = read_trajectory(write_trajectory(sampled, frame_id, 42))
    assert (wire.stamp_ns, wire.frame_id) == (42, frame_id)
    np.testing.assert_allclose(wire.sampled.times_s, sampled.times_s, atol=1e-9)
    expected = sampled.values.copy()
    expected[0, :, 3] = np.unwrap(np.arctan2(np.sin(expected[0, :, 3]), np.cos(expected[0, :, 3])))
    np.testing.assert_allclose(wire.sampled.values, expected, atol=1e-12)


def test_another_publishers_message_is_read_by_its_first_joint() -> None:
    """Two joints, two transforms per point, stamps past zero: the follower takes the first joint."""
    msg = MultiDOFJointTrajectory()
    msg.header.frame_id = "map"
    msg.header.stamp = Time(sec=7, nanosec=5)
    msg.joint_names = ["base_link", "gimbal"]
    for k in range(3):
        point = MultiDOFJointTrajectoryPoint()
        first, second = Transform(), Transform()
        first.translation.x = float(k)
        first.rotation.z, first.rotation.w = math.sin(0.5 * 3.0 * k), math.cos(0.5 * 3.0 * k)  # yaw 0, 3, 6 rad
        second.translation.x = 100.0
        velocity, acceleration = Twist(), Twist()
        velocity.linear.y, acceleration.linear.z = 2.0 * k, -1.0
        point.transforms, point.velocities, point.accelerations = [first, second], [velocity, Twist()], [acceleration]
        point.time_from_start.sec = 10 + k
        msg.points.append(point)
    wire = read_trajectory(serialize_message(msg))
    # the first point is 10 s after the header stamp: the samples start there
    assert (wire.stamp_ns, wire.frame_id) == (17_000_000_005, "map")
    np.testing.assert_allclose(wire.sampled.times_s, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(wire.sampled.values[0, :, 0], [0.0, 1.0, 2.0])
    np.testing.assert_allclose(wire.sampled.values[0, :, 3], [0.0, 3.0, 6.0], atol=1e-12)  # yaw unwrapped
    np.testing.assert_allclose(wire.sampled.values[1, :, 1], [0.0, 2.0, 4.0])
    np.testing.assert_allclose(wire.sampled.values[2, :, 2], [-1.0, -1.0, -1.0])


def test_a_trajectory_needs_two_points_each_with_a_transform_twist_and_acceleration() -> None:
    msg = MultiDOFJointTrajectory()
    msg.points = [MultiDOFJointTrajectoryPoint()]
    with pytest.raises(ValueError, match="at least 2 points"):
        read_trajectory(serialize_message(msg))
    msg.points = [MultiDOFJointTrajectoryPoint(), MultiDOFJointTrajectoryPoint()]
    with pytest.raises(ValueError, match="point 0 lacks"):
        read_trajectory(serialize_message(msg))


def test_every_truncation_is_a_wire_format_error() -> None:
    data = write_trajectory(_sampled(2), "map", 1)
    for end in range(len(data)):
        with pytest.raises((WireFormatError, ValueError)):
            read_trajectory(data[:end])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_escape_as_anything_but_a_clear_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):  # WireFormatError is a ValueError
        read_trajectory(b"\x00\x01\x00\x00" + data)

"""A path reaching a replanner whose sim clock has not started is refused as such, not as a future stamp."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="the ROS 2 wheels (extra `ros`) are not installed")

from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path

from mfrl.conversions import CourseError, course_from_path


def _path(stamp_s: int) -> Path:
    msg = Path()
    msg.header.frame_id = "world"
    msg.header.stamp.sec = stamp_s
    for x in (0.0, 1.0):
        pose = PoseStamped()
        pose.pose.position.x, pose.pose.position.z = x, 1.0
        pose.pose.orientation.w = 1.0
        msg.poses.append(pose)
    return msg


def test_a_path_before_the_clock_starts_is_refused_saying_so() -> None:
    with pytest.raises(CourseError, match="clock has not started") as refused:
        course_from_path(_path(5), "world", 10, 0, now_ns=0)
    assert refused.value.reason == "no clock yet"


def test_with_a_running_clock_a_far_future_stamp_is_still_a_future_stamp() -> None:
    with pytest.raises(CourseError, match="ahead of the node's clock"):
        course_from_path(_path(50), "world", 10, 0, now_ns=10_000_000_000)
    assert course_from_path(_path(10), "world", 10, 0, now_ns=10_000_000_000).waypoints.shape[0] == 2

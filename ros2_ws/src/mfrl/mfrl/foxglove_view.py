"""The `foxglove_view` node: streams the scene to Foxglove (foxglove-sdk WebSocket server).

Channels: `/vehicle` (foxglove.PoseInFrame), `/flown` (foxglove.PosesInFrame, the trail), `/plan`
(foxglove.SceneUpdate: the planned path coloured by speed). Open Foxglove and
connect to ws://host:port.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.node import Node
from trajectory_msgs.msg import MultiDOFJointTrajectory

from mfrl import qos
from mfrl.configs import FoxgloveViewConfig
from mfrl.conversions import speed_colour, stamp_to_ns
from mfrl.node_main import run_node
from mfrl.parameters import ConfigParameters
from mfrl.trajectory_wire import WireFormatError, read_trajectory

try:
    import foxglove
    from foxglove import channels as fox_channels
    from foxglove import messages as fox
except ImportError as exc:  # an optional extra: say how to get it
    raise SystemExit(f"foxglove_view needs foxglove-sdk: pip install foxglove-sdk ({exc})") from exc


def _timestamp(ns: int) -> fox.Timestamp:
    return fox.Timestamp(sec=ns // 1_000_000_000, nsec=ns % 1_000_000_000)


class FoxgloveView(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("foxglove_view")
        self.exit_code: int | None = None
        self.params = ConfigParameters(self, FoxgloveViewConfig, read_only=True)
        config: FoxgloveViewConfig = self.params.config
        self.config = config
        self.server = foxglove.start_server(name="mfrl", host=config.host, port=config.port)
        self.vehicle = fox_channels.PoseInFrameChannel("/vehicle")
        self.flown = fox_channels.PosesInFrameChannel("/flown")
        self.plan = fox_channels.SceneUpdateChannel("/plan")
        self.trail: deque[fox.Pose] = deque(maxlen=config.trail_length)
        self.next_pose_ns = 0
        self.create_subscription(Odometry, "odom", self.on_odometry, qos.SENSOR)
        self.create_subscription(MultiDOFJointTrajectory, "trajectory", self.on_trajectory, qos.LATCHED, raw=True)
        self.get_logger().info(f"Foxglove: connect to ws://{config.host}:{self.server.port}")

    def on_odometry(self, msg: Odometry) -> None:
        """The vehicle's pose and trail, at `pose_rate_hz` of simulated time."""
        ns = stamp_to_ns(msg.header.stamp)
        if ns < self.next_pose_ns:
            return
        self.next_pose_ns = ns + round(1e9 / self.config.pose_rate_hz)
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        pose = fox.Pose(
            position=fox.Vector3(x=p.x, y=p.y, z=p.z), orientation=fox.Quaternion(x=q.x, y=q.y, z=q.z, w=q.w)
        )
        self.trail.append(pose)
        stamp = _timestamp(ns)
        self.vehicle.log(fox.PoseInFrame(timestamp=stamp, frame_id=self.config.frame_id, pose=pose))
        self.flown.log(fox.PosesInFrame(timestamp=stamp, frame_id=self.config.frame_id, poses=list(self.trail)))

    def on_trajectory(self, data: bytes) -> None:
        """The plan as a line coloured by speed."""
        try:
            wire = read_trajectory(data)
        except (WireFormatError, ValueError) as exc:
            self.get_logger().error(f"trajectory not shown: {exc}")
            return
        positions, speeds = wire.sampled.positions(), wire.sampled.speeds_m_s()
        top = float(np.max(speeds, initial=0.0))
        colours = [speed_colour(float(s), top) for s in speeds]
        line = fox.LinePrimitive(
            type=fox.LinePrimitiveLineType.LineStrip,
            thickness=0.05,
            points=[fox.Point3(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in positions],
            colors=[fox.Color(r=c.r, g=c.g, b=c.b, a=1.0) for c in colours],
        )
        entity = fox.SceneEntity(
            timestamp=_timestamp(wire.stamp_ns), frame_id=self.config.frame_id, id="plan", lines=[line]
        )
        self.plan.log(fox.SceneUpdate(entities=[entity]))

    def close(self) -> None:
        """Stop the WebSocket server."""
        self.server.stop()


def main(args: list[str] | None = None) -> int:
    """Entry point of the `foxglove_view` executable."""
    return run_node(FoxgloveView, args)


if __name__ == "__main__":
    raise SystemExit(main())

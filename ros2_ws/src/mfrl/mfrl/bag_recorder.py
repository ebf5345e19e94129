"""The `bag_recorder` node: records topics of the graph to a rosbag2 file (MCAP or SQLite) with `rosbags`.

Each listed topic is subscribed, with the graph's QoS for it, as soon as it appears; messages are
written as received (serialised CDR, no decoding). The bag is closed on shutdown.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from mfrl import qos
from mfrl.configs import BagRecorderConfig
from mfrl.node_main import run_node
from mfrl.parameters import ConfigParameters

PATH_TOPIC = "/waypoints"
PATH_TOPIC_WAIT_S = 10.0


def message_class(type_name: str) -> Any:
    """The Python class of a ROS message type such as "nav_msgs/msg/Odometry"."""
    package, kind, name = type_name.split("/")
    module = __import__(f"{package}.{kind}", fromlist=[name])
    return getattr(module, name)


class BagRecorder(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("bag_recorder")
        self.exit_code: int | None = None
        self.params = ConfigParameters(self, BagRecorderConfig, read_only=True)
        config: BagRecorderConfig = self.params.config
        self.config = config
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        storage = StoragePlugin.MCAP if config.storage == "mcap" else StoragePlugin.SQLITE3
        Path(config.output_dir).parent.mkdir(parents=True, exist_ok=True)
        self.writer: Writer | None = Writer(config.output_dir, version=9, storage_plugin=storage)
        self.writer.open()
        self.connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()
        self.create_timer(0.2, self.discover, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f"recording {len(config.topics)} topics to {config.output_dir}")

    def discover(self) -> None:
        """Subscribe to listed topics that have appeared.

        The operator's path topic (`PATH_TOPIC`) is joined last, once every other listed topic is recorded
        (or `PATH_TOPIC_WAIT_S` has passed): an operator that waits for this subscriber before sending a
        course then knows that nothing of the flight is missed.
        """
        found = dict(self.get_topic_names_and_types())
        others = [t for t in self.config.topics if t != PATH_TOPIC]
        waited = time.monotonic() - self.started > PATH_TOPIC_WAIT_S
        for name, types in found.items():
            if name == PATH_TOPIC and not (waited or all(t in self.connections for t in others)):
                continue
            if name in self.config.topics and name not in self.connections and types:
                self.connections[name] = self.writer.add_connection(name, types[0], typestore=self.typestore)  # type: ignore[union-attr]
                self.counts[name] = 0
                self.create_subscription(
                    message_class(types[0]),
                    name,
                    lambda data, topic=name: self.write(topic, data),
                    qos.for_topic(name),
                    raw=True,
                )

    def write(self, topic: str, data: bytes) -> None:
        """Append one serialised message, stamped with the receive time (sim time under use_sim_time)."""
        if self.writer is not None:
            self.writer.write(self.connections[topic], self.get_clock().now().nanoseconds, data)
            self.counts[topic] += 1

    def close(self) -> None:
        """Close the bag (called once on shutdown)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.get_logger().info(f"bag closed: {self.counts}")


def main(args: list[str] | None = None) -> int:
    """Entry point of the `bag_recorder` executable."""
    return run_node(BagRecorder, args)


if __name__ == "__main__":
    raise SystemExit(main())

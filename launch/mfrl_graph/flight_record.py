"""Read a demo flight back from its bag (with `rosbags`, no ROS install): flown path, reference, plans, statuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from quadsim.rotations import quat_wxyz_to_matrix


def _stamp_s(header: object) -> float:
    stamp = header.stamp  # type: ignore[attr-defined]
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


@dataclass
class Plan:
    """One trajectory as published: its start (sim time, s) and its sampled positions `K x 3` at times `K`."""

    start_s: float
    times_s: NDArray[np.float64]
    positions_m: NDArray[np.float64]


@dataclass
class FlightRecord:
    """Time series of one flight (sim time, s).

    Attributes:
        odom_t, odom_position, odom_velocity: the vehicle (velocity in the world frame).
        ref_t, ref_position, ref_velocity: the reference the tracker followed at each step.
        plans: every trajectory published.
        planning_time_ms, latency_ms: the replanner's status figures of each plan.
        errors: error statuses of the replanner.
        diagnostics: for each /diagnostics status name, the keys it reported.
        counts: messages per topic.
    """

    odom_t: NDArray[np.float64]
    odom_position: NDArray[np.float64]
    odom_velocity: NDArray[np.float64]
    ref_t: NDArray[np.float64]
    ref_position: NDArray[np.float64]
    ref_velocity: NDArray[np.float64]
    plans: list[Plan] = field(default_factory=list)
    planning_time_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    diagnostics: dict[str, set[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def tracking_error_m(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(times, |vehicle - reference|) at the steps where both are known."""
        common, odom_i, ref_i = np.intersect1d(self.odom_t, self.ref_t, return_indices=True)
        return common, np.linalg.norm(self.odom_position[odom_i] - self.ref_position[ref_i], axis=1)


def _rotation(q: Any) -> NDArray[np.float64]:
    """Body-to-world rotation of a geometry_msgs/Quaternion."""
    return quat_wxyz_to_matrix(np.array([q.w, q.x, q.y, q.z], dtype=np.float64))


def read_flight(bag_dir: str | Path) -> FlightRecord:
    """Read the odometry, reference, trajectory and status topics of a demo bag."""
    odom: list[tuple[float, list[float], list[float]]] = []
    ref: list[tuple[float, list[float], list[float]]] = []
    empty, empty3 = np.zeros(0), np.zeros((0, 3))
    record = FlightRecord(empty, empty3, empty3, empty, empty3, empty3)
    with AnyReader([Path(bag_dir)], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        for connection, _, raw in reader.messages():
            topic = connection.topic
            record.counts[topic] = record.counts.get(topic, 0) + 1
            if topic not in ("/odom", "/tracker/reference", "/trajectory", "/replanner/status", "/diagnostics"):
                continue
            msg: Any = reader.deserialize(raw, connection.msgtype)
            if topic == "/diagnostics":
                for status in msg.status:
                    record.diagnostics.setdefault(status.name, set()).update(kv.key for kv in status.values)
            elif topic == "/odom":
                p, twist = msg.pose.pose.position, msg.twist.twist.linear
                velocity = _rotation(msg.pose.pose.orientation) @ np.array([twist.x, twist.y, twist.z])
                odom.append((_stamp_s(msg.header), [p.x, p.y, p.z], velocity.tolist()))
            elif topic == "/tracker/reference":
                p, v = msg.pose.pose.position, msg.twist.twist.linear
                ref.append((_stamp_s(msg.header), [p.x, p.y, p.z], [v.x, v.y, v.z]))
            elif topic == "/trajectory":
                times = [pt.time_from_start.sec + 1e-9 * pt.time_from_start.nanosec for pt in msg.points]
                positions = [
                    [pt.transforms[0].translation.x, pt.transforms[0].translation.y, pt.transforms[0].translation.z]
                    for pt in msg.points
                ]
                record.plans.append(Plan(_stamp_s(msg.header), np.array(times), np.array(positions)))
            else:
                values = {kv.key: kv.value for kv in msg.values}
                if msg.level == 2:
                    record.errors.append(msg.message)
                elif "planning_time_ms" in values:
                    record.planning_time_ms.append(float(values["planning_time_ms"]))
                    record.latency_ms.append(float(values["latency_ms"]))
    if odom:
        record.odom_t = np.array([o[0] for o in odom])
        record.odom_position = np.array([o[1] for o in odom])
        record.odom_velocity = np.array([o[2] for o in odom])
    if ref:
        record.ref_t = np.array([r[0] for r in ref])
        record.ref_position = np.array([r[1] for r in ref])
        record.ref_velocity = np.array([r[2] for r in ref])
    return record

"""trajectory_msgs/MultiDOFJointTrajectory as CDR bytes, written and read without building Python messages.

rclpy builds a message as nested Python objects (a 37-point trajectory is about 700 of them) and
converts them to C structs to serialise; the reverse on receipt. For the replanner's output that cost
more than the minimum-snap solve. The bytes here have rclpy's layout (a test checks that
`rclpy.serialization.deserialize_message` reads them as the message built field by field, and that
their length is `serialize_message`'s; only padding bytes may differ), so every other subscriber
(RViz, Foxglove, a bag) sees an ordinary message; the replanner publishes them as a serialised
message and the tracker and the latency probe subscribe raw and read them with `read_trajectory`.

Wire format: the 4-byte encapsulation header (CDR little endian), then the fields in declaration
order, each primitive aligned to its size relative to the end of the header (XCDR1), strings as
uint32 length (with the terminating NUL) and bytes, sequences as uint32 count and elements.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quadsim.sampled_trajectory import SampledTrajectory

CDR_LE_HEADER = b"\x00\x01\x00\x00"
"""Encapsulation: plain CDR, little endian (what rmw_fastrtps_cpp writes for ROS 2 messages)."""

_U32 = struct.Struct("<I")
_I32_U32 = struct.Struct("<iI")
_D7 = struct.Struct("<7d")
_D6 = struct.Struct("<6d")


_POINT_ALIGNED = np.dtype(
    [
        ("transforms", "<u4"), ("pad0", "<u4"), ("transform", "<f8", 7),
        ("velocities", "<u4"), ("pad1", "<u4"), ("velocity", "<f8", 6),
        ("accelerations", "<u4"), ("pad2", "<u4"), ("acceleration", "<f8", 6),
        ("sec", "<i4"), ("nanosec", "<u4"),
    ]
)  # fmt: skip
"""A point with one transform, twist and acceleration, starting 8-aligned (what `write_trajectory` writes)."""


class WireFormatError(ValueError):
    """Bytes that are not a MultiDOFJointTrajectory this module can read; the message says where."""


@dataclass(frozen=True)
class WireTrajectory:
    """What a trajectory message carries for a follower: when its first sample is, its frame, and the samples.

    `stamp_ns` is the header stamp plus the first point's `time_from_start`, and `sampled`'s times start
    at 0 there, so a plan whose first point is not at `time_from_start` 0 is still flown on time.
    """

    stamp_ns: int
    frame_id: str
    sampled: SampledTrajectory


def _string(text: str, offset: int) -> tuple[bytes, int]:
    """A CDR string at `offset` (payload-relative): padding to 4, length with NUL, bytes."""
    data = text.encode("utf-8") + b"\x00"
    pad = -offset % 4
    out = b"\x00" * pad + _U32.pack(len(data)) + data
    return out, offset + len(out)


def write_trajectory(sampled: SampledTrajectory, frame_id: str, stamp_ns: int, joint_name: str = "base_link") -> bytes:
    """The CDR bytes of the MultiDOFJointTrajectory of `sampled`, starting at `stamp_ns`, in `frame_id`.

    One joint; each point holds one transform (world-frame position, yaw as a quaternion about z), one
    twist (world-frame velocity, yaw rate in angular.z) and one acceleration (world-frame acceleration,
    yaw acceleration in angular.z); padding bytes are zero. The points are filled column by column into one
    array of `_POINT_ALIGNED` records and go out as its buffer: no Python object per point or number.
    """
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    head = [_I32_U32.pack(sec, nanosec)]
    offset = 8
    chunk, offset = _string(frame_id, offset)
    head.append(chunk)
    pad = -offset % 4
    name, _ = _string(joint_name, offset + pad + 4)
    head.append(b"\x00" * pad + _U32.pack(1) + name)
    offset += pad + 4 + len(name)
    points = _aligned_points(sampled)
    pad = -offset % 4
    head.append(b"\x00" * pad + _U32.pack(points.shape[0]))
    offset += pad + 4
    body = points.data.cast("B")
    if offset % 8 == 0:
        return b"".join((CDR_LE_HEADER, *head, body))
    # The first point starts at 4 mod 8 (it depends on the strings' lengths): its transform count then needs no
    # padding before the doubles; every later point starts 8-aligned again (a point is 184 or 180 bytes).
    return b"".join((CDR_LE_HEADER, *head, body[:4], body[8:]))


def _aligned_points(sampled: SampledTrajectory) -> NDArray[np.void]:
    """The samples as `_POINT_ALIGNED` records (counts 1, padding zero), in the message's field order."""
    values = sampled.values
    points = np.zeros(sampled.times_s.shape[0], _POINT_ALIGNED)
    points["transforms"] = points["velocities"] = points["accelerations"] = 1
    transform = points["transform"]
    transform[:, :3] = values[0, :, :3]
    half_yaw = 0.5 * values[0, :, 3]
    transform[:, 5] = np.sin(half_yaw)
    transform[:, 6] = np.cos(half_yaw)
    for field, order in (("velocity", 1), ("acceleration", 2)):
        twist = points[field]
        twist[:, :3] = values[order, :, :3]
        twist[:, 5] = values[order, :, 3]
    ns = np.rint(sampled.times_s * 1e9).astype(np.int64)  # as round(): to nearest, ties to even
    points["sec"], points["nanosec"] = np.divmod(ns, 1_000_000_000)
    return points


class _Reader:
    """Reads CDR primitives from a payload with XCDR1 alignment; every overrun is a WireFormatError."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 4 or data[:2] not in (b"\x00\x01", b"\x00\x00"):
            raise WireFormatError("not a CDR payload: missing or unknown encapsulation header")
        if data[:2] == b"\x00\x00":
            raise WireFormatError("big-endian CDR is not supported")
        self.view = memoryview(data)[4:]
        self.offset = 0

    def _take(self, fmt: struct.Struct, align: int, what: str) -> tuple[float | int, ...]:
        self.offset += -self.offset % align
        end = self.offset + fmt.size
        if end > len(self.view):
            raise WireFormatError(f"message ends inside {what} (byte {self.offset} of {len(self.view)})")
        values = fmt.unpack_from(self.view, self.offset)
        self.offset = end
        return values

    def u32(self, what: str) -> int:
        return int(self._take(_U32, 4, what)[0])

    def time(self, what: str) -> int:
        sec, nanosec = self._take(_I32_U32, 4, what)
        return int(sec) * 1_000_000_000 + int(nanosec)

    def doubles(self, fmt: struct.Struct, what: str) -> tuple[float, ...]:
        return tuple(float(v) for v in self._take(fmt, 8, what))

    def string(self, what: str) -> str:
        length = self.u32(f"the length of {what}")
        end = self.offset + length
        if length == 0 or end > len(self.view):
            raise WireFormatError(f"{what} has a bad length {length}")
        raw = bytes(self.view[self.offset : end - 1])
        self.offset = end
        return raw.decode("utf-8", errors="replace")

    def sequence_length(self, what: str, element_bytes: int) -> int:
        count = self.u32(f"the length of {what}")
        if count * element_bytes > len(self.view) - self.offset:
            raise WireFormatError(f"{what} claims {count} elements, more than the message holds")
        return count


def _read_point(reader: _Reader, k: int, times: NDArray[np.float64], values: NDArray[np.float64]) -> None:
    """Point `k`, read field by field (any number of transforms, twists and accelerations)."""
    transforms = [reader.doubles(_D7, "a transform") for _ in range(reader.sequence_length("transforms", 56))]
    velocities = [reader.doubles(_D6, "a velocity") for _ in range(reader.sequence_length("velocities", 48))]
    accelerations = [reader.doubles(_D6, "an acceleration") for _ in range(reader.sequence_length("accel", 48))]
    times[k] = reader.time("time_from_start") * 1e-9
    if not (transforms and velocities and accelerations):
        raise ValueError(f"trajectory point {k} lacks a transform, velocity or acceleration")
    x, y, z, qx, qy, qz, qw = transforms[0]
    values[0, k] = (x, y, z, math.atan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz)))
    vel, acc = velocities[0], accelerations[0]
    values[1, k] = (vel[0], vel[1], vel[2], vel[5])
    values[2, k] = (acc[0], acc[1], acc[2], acc[5])


def _fill_points(points: NDArray[np.void], times: NDArray[np.float64], values: NDArray[np.float64]) -> None:
    """Points with one transform, twist and acceleration each, read as one array."""
    times[:] = points["sec"] + 1e-9 * points["nanosec"]
    tr = points["transform"]
    qx, qy, qz, qw = tr[:, 3], tr[:, 4], tr[:, 5], tr[:, 6]
    values[0, :, :3] = tr[:, :3]
    values[0, :, 3] = np.arctan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))
    values[1, :, :3] = points["velocity"][:, :3]
    values[1, :, 3] = points["velocity"][:, 5]
    values[2, :, :3] = points["acceleration"][:, :3]
    values[2, :, 3] = points["acceleration"][:, 5]


def read_trajectory(data: bytes) -> WireTrajectory:
    """Read a serialised MultiDOFJointTrajectory (any publisher's) for a follower: the first joint of each point.

    Raises:
        WireFormatError: truncated or malformed bytes.
        ValueError: fewer than 2 points, a point without transform/velocity/acceleration, or bad times.
    """
    reader = _Reader(data)
    stamp_ns = reader.time("header.stamp")
    frame_id = reader.string("header.frame_id")
    for i in range(reader.sequence_length("joint_names", 5)):
        reader.string(f"joint_names[{i}]")
    count = reader.sequence_length("points", 20)
    if count < 2:
        raise ValueError(f"a trajectory needs at least 2 points, got {count}")
    times = np.empty(count)
    values = np.empty((3, count, 4))
    k = 0
    while k < count:
        if reader.offset % 8 == 0 and len(reader.view) - reader.offset == (count - k) * _POINT_ALIGNED.itemsize:
            points = np.frombuffer(reader.view, _POINT_ALIGNED, count - k, reader.offset)
            counts = (points["transforms"], points["velocities"], points["accelerations"])
            if all((c == 1).all() for c in counts):
                _fill_points(points, times[k:], values[:, k:])
                break
        _read_point(reader, k, times, values)
        k += 1
    values[0, :, 3] = np.unwrap(values[0, :, 3])
    first_ns = stamp_ns + round(float(times[0]) * 1e9)
    return WireTrajectory(first_ns, frame_id, SampledTrajectory(times_s=times - times[0], values=values))

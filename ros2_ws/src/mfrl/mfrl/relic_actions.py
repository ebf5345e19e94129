"""What crosses the wire between `relic_nav` and `relic_world`: discrete actions as velocities, images as arrays.

No ROS import here (the graph declaration and the tests read it without rclpy); the nodes copy these plain
values into and out of geometry_msgs/Twist and sensor_msgs/Image.

Actions are relicnav ObjectNav3D's: 0 turn left, 1 turn right, 2 move forward, 3 stop (only for a policy
or environment with four actions). An action is a body velocity held for one control period, in the body
frame FLU (REP 103: +x forward, +z up, so a positive yaw rate turns left):

- move forward: linear.x = step_m / control_period_s;
- turn left / right: angular.z = +turn_rad / control_period_s / -turn_rad / control_period_s;
- stop: every component zero.

The inverse (`velocity_action`) reads only which component is non-zero and its sign, so it gives back the
same action for any positive step, turn and period (the simulator need not know the controller's), and
refuses every velocity that is none of these patterns (a sideways or backwards velocity, two components at
once, NaN) with an `ActionError` that says what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

TURN_LEFT, TURN_RIGHT, MOVE_FORWARD, STOP = 0, 1, 2, 3
"""The actions (relicnav.objectnav3d's numbers)."""
ACTION_NAMES = ("turn left", "turn right", "move forward", "stop")
"""Each action's name, by its number."""
MIN_ACTIONS, MAX_ACTIONS = 3, 4
"""A policy or environment has the three moves, and optionally stop."""

DEFAULT_STEP_M = 0.25
"""ObjectNav3D's forward step (relicnav.objectnav3d.FORWARD_M, the ReLIC authors' ExtObjNav step)."""
DEFAULT_TURN_RAD = math.radians(30.0)
"""ObjectNav3D's turn (relicnav.objectnav3d.TURN_DEG)."""

IMAGE_ENCODINGS = ("rgb8", "bgr8")
"""The sensor_msgs/Image encodings a camera image may have (8-bit colour; anything else is refused)."""


class ActionError(ValueError):
    """An action number or a velocity that is not one of the actions; the message says what is allowed."""


class ImageError(ValueError):
    """A camera image that the policy cannot read; the message says what was wrong and what would be right."""


@dataclass(frozen=True)
class ActionScale:
    """How far one action moves the robot, and over what time.

    Attributes:
        step_m: distance of one forward step (m).
        turn_rad: angle of one turn (rad).
        control_period_s: time over which one action's velocity is held (s).
    """

    step_m: float = DEFAULT_STEP_M
    turn_rad: float = DEFAULT_TURN_RAD
    control_period_s: float = 0.5

    def __post_init__(self) -> None:
        for name, value, limit in (
            ("step_m", self.step_m, 10.0),
            ("turn_rad", self.turn_rad, math.pi),
            ("control_period_s", self.control_period_s, 60.0),
        ):
            if not (math.isfinite(value) and 0.0 < value <= limit):
                raise ActionError(f"{name}={value!r} is invalid: it must be in (0, {limit:g}]")


@dataclass(frozen=True)
class BodyVelocity:
    """A Twist's six numbers: linear (m/s) and angular (rad/s) velocity in the body frame (FLU)."""

    linear_m_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    angular_rad_s: tuple[float, float, float] = (0.0, 0.0, 0.0)


def check_action_count(num_actions: int) -> None:
    """Raise `ActionError` unless `num_actions` is 3 (the moves) or 4 (with stop)."""
    if not MIN_ACTIONS <= num_actions <= MAX_ACTIONS:
        raise ActionError(
            f"{num_actions} actions: expected {MIN_ACTIONS} (turn left, turn right, move forward) or "
            f"{MAX_ACTIONS} (and stop), ObjectNav3D's action set"
        )


def action_velocity(action: int, scale: ActionScale, num_actions: int = MAX_ACTIONS) -> BodyVelocity:
    """The body velocity that carries out `action` over `scale.control_period_s`."""
    check_action_count(num_actions)
    if isinstance(action, bool) or not isinstance(action, int | np.integer) or not 0 <= action < num_actions:
        raise ActionError(f"action {action!r} is not one of the {num_actions} actions (an int in [0, {num_actions}))")
    if action == MOVE_FORWARD:
        return BodyVelocity(linear_m_s=(scale.step_m / scale.control_period_s, 0.0, 0.0))
    if action in (TURN_LEFT, TURN_RIGHT):
        yaw_rate = scale.turn_rad / scale.control_period_s
        return BodyVelocity(angular_rad_s=(0.0, 0.0, yaw_rate if action == TURN_LEFT else -yaw_rate))
    return BodyVelocity()


def velocity_action(velocity: BodyVelocity, num_actions: int = MAX_ACTIONS) -> int:
    """The action whose velocity has the pattern of `velocity` (see the module docstring)."""
    check_action_count(num_actions)
    values = (*velocity.linear_m_s, *velocity.angular_rad_s)
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise ActionError(f"velocity {values} is not six finite numbers")
    moving = [i for i, v in enumerate(values) if v != 0.0]
    if not moving:
        if num_actions <= STOP:
            raise ActionError("a zero velocity is stop, which is not an action here (3 actions: no stop)")
        return STOP
    if moving == [0] and values[0] > 0.0:
        return MOVE_FORWARD
    if moving == [5]:
        return TURN_LEFT if values[5] > 0.0 else TURN_RIGHT
    raise ActionError(
        f"velocity linear={velocity.linear_m_s} angular={velocity.angular_rad_s} is no action: expected only "
        "linear.x > 0 (forward), only angular.z > 0 or < 0 (turn left or right), or zero (stop)"
    )


def decode_image(
    height: int, width: int, encoding: str, step: int, data: bytes | bytearray | memoryview, shape: tuple[int, ...]
) -> NDArray[np.uint8]:
    """The `H x W x 3` uint8 RGB array of an image message's fields, checked against the policy's `shape`.

    Rows may be padded (`step` > 3 `width`); the padding is dropped. bgr8 is turned into RGB. Nothing is
    allocated from the claimed sizes before they are checked against `shape` and the data's length.

    Raises:
        ImageError: an encoding other than rgb8 or bgr8 (mono8, 32FC1, ...: float images, which could hold
            NaN, never reach the policy), a size other than the policy's, a step shorter than a row, or data
            whose length is not height x step.
    """
    if encoding not in IMAGE_ENCODINGS:
        shown = encoding if len(encoding) <= 32 else encoding[:32] + "..."
        raise ImageError(f"encoding {shown!r} is not accepted: send {' or '.join(IMAGE_ENCODINGS)}")
    if len(shape) != 3 or shape[2] != 3:
        raise ImageError(f"the policy reads images of shape {shape}, not H x W x 3 colour images")
    if (height, width) != (shape[0], shape[1]):
        raise ImageError(f"image is {width} x {height} (width x height); the policy reads {shape[1]} x {shape[0]}")
    row_bytes = 3 * width
    if step < row_bytes:
        raise ImageError(f"step {step} is shorter than a row of {width} {encoding} pixels ({row_bytes} bytes)")
    if len(data) != height * step:
        raise ImageError(f"data has {len(data)} bytes; height x step is {height} x {step} = {height * step}")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(height, step)
    image = rows[:, :row_bytes].reshape(height, width, 3)
    if encoding == "bgr8":
        image = image[:, :, ::-1]
    return np.ascontiguousarray(image)


@dataclass(frozen=True)
class Rgb8Image:
    """An image message's fields for an rgb8 image (unpadded rows)."""

    height: int
    width: int
    step: int
    data: bytes
    encoding: str = "rgb8"


def encode_rgb8(image: NDArray[np.uint8]) -> Rgb8Image:
    """The rgb8 message fields of an `H x W x 3` uint8 RGB array."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ImageError(f"an rgb8 image is uint8 H x W x 3, got {array.dtype} {array.shape}")
    height, width = int(array.shape[0]), int(array.shape[1])
    return Rgb8Image(height, width, 3 * width, np.ascontiguousarray(array).tobytes())

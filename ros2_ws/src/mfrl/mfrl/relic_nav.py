"""The `relic_nav` node: a ReLIC in-context policy (`relicrl`) driving a robot from its camera, one action per image.

Each `camera/image` (sensor_msgs/Image: rgb8 or bgr8, the policy's size) is answered with one `cmd_vel`
(geometry_msgs/Twist): the policy's discrete action as a body velocity held for `control_period_s`
(`mfrl.relic_actions`: move forward, turn left or right, stop). The policy reads the image, the target
object as a one-hot (the `target_object` parameter, or the latest std_msgs/Int32 on `relic/target`) and the
reward its previous action earned: the last std_msgs/Float32 on `relic/reward` received since the previous
image, 0 if none. A sender publishes the reward before the next image (when both wait, the executor serves
the reward first: its subscription is created first). Every step is appended to the policy's context, which
spans episodes:

- `~/mark_episode_boundary` (std_srvs/Trigger): the next image starts a new episode of the same trial; the
  context is kept (what the policy learned of the scene is in it);
- `~/reset_context` (Trigger): a new trial (a new scene): the context is emptied.

Lifecycle: configuring loads the policy file (`relicrl.agent.InContextAgent.load`: weights only, nothing in
the file is unpickled, so a crafted one runs nothing) and checks that it can drive this node (it reads
H x W x 3 images, has ObjectNav3D's 3 or 4 actions, and `target_object` is within its target vector). A
missing or bad file fails the transition with a one-line reason on `~/status`, on `/diagnostics` and in the
log; the node stays unconfigured and up. Activating starts answering images; deactivating stops it (images
are ignored, nothing is published); cleaning up drops the model. torch is imported on the first configure.

An image the policy cannot read (another encoding, another size, a step shorter than a row, data that is not
height x step bytes) is refused with its reason: an ERROR on `~/status` (a repeated reason at most once a
second), a log line (at most one a second), counted on `/diagnostics` (ERROR for the period it happened
in). Nothing is appended to the context and no command is sent; the node never stops on bad input.
`/diagnostics` carries the state, target, context length, the policy's step time (the last, and the median of
the last `LATENCY_WINDOW`), context resets (a full context), steps, and refused images with the last reason.
One thread: every callback runs in the node's single-threaded executor.
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist
from numpy.typing import NDArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, Int32
from std_srvs.srv import Trigger

from mfrl import qos
from mfrl.configs import RelicNavConfig
from mfrl.conversions import diagnostic_status, diagnostics_message, truncate
from mfrl.node_main import run_node
from mfrl.parameters import ConfigParameters
from mfrl.relic_actions import ActionScale, action_velocity, check_action_count, decode_image

if TYPE_CHECKING:
    from relicrl.agent import InContextAgent

LATENCY_WINDOW = 100
"""Policy steps over which the median step time is taken."""

STATUS_PERIOD_S = 1.0
"""A repeated error is reported on ~/status (and logged) at most this often."""

MAX_REASON_CHARS = 200
"""A refusal reason is cut to this length in statuses and logs."""


def load_agent(config: RelicNavConfig, target: int) -> InContextAgent:
    """The policy of `config.policy_file` as an in-context agent, checked to be drivable by this node.

    Raises:
        FileNotFoundError: no file there.
        runkit.checkpoint.CheckpointError: not a ReLIC policy file (damaged, another kind, a pickle).
        ValueError: a policy this node cannot drive (no image input, another action set, a target beyond its
            target vector).
    """
    path = Path(config.policy_file)
    if not path.is_file():
        raise FileNotFoundError("no such file (train one with `relic train --env objectnav3d`, or set policy_file)")
    import torch  # torch and relicrl's model only when a policy is loaded

    from relicrl.agent import InContextAgent

    torch.set_num_threads(config.torch_threads)
    agent = InContextAgent.load(path, max_context=config.max_context, greedy=config.greedy, seed=config.seed)
    spec = agent.spec
    if spec.image_shape is None or len(spec.image_shape) != 3 or spec.image_shape[2] != 3:
        raise ValueError(f"the policy reads no colour image (image_shape {spec.image_shape}); relic_nav needs one")
    check_action_count(spec.num_actions)
    if not 0 <= target < spec.vector_dim:
        raise ValueError(f"target_object {target} is out of range: the policy's target vector has {spec.vector_dim}")
    return agent


def twist_message(action: int, scale: ActionScale, num_actions: int) -> Twist:
    """The Twist that carries out `action` (mfrl.relic_actions.action_velocity)."""
    velocity = action_velocity(action, scale, num_actions)
    msg = Twist()
    msg.linear.x, msg.linear.y, msg.linear.z = velocity.linear_m_s
    msg.angular.x, msg.angular.y, msg.angular.z = velocity.angular_rad_s
    return msg


class RelicNav(LifecycleNode):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("relic_nav")
        self.exit_code: int | None = None
        self.params = ConfigParameters(
            self, RelicNavConfig, on_change=self.apply_config, read_only=("autostart", "diagnostics_period_s")
        )
        # Added after ConfigParameters' callback, so it runs first: a refused target changes nothing.
        self.add_on_set_parameters_callback(self.check_target_parameter)
        config = self.config
        self.agent: InContextAgent | None = None
        self.scale = config.action_scale()
        self.target = config.target_object
        self.target_parameter = config.target_object
        self.reward = 0.0
        self.steps = 0
        self.boundaries = 0
        self.context_reset_requests = 0
        self.refused = 0
        self.refused_in_period = 0
        self.last_refusal = ""
        self.step_s: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.error = ""
        self.last_status_s = -math.inf
        self.command_pub = self.create_publisher(Twist, "cmd_vel", qos.COMMAND)
        self.status_pub = self.create_publisher(DiagnosticStatus, "~/status", qos.REQUEST)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.REQUEST)
        # The reward and target subscriptions before the image's: the executor serves them first.
        self.create_subscription(Float32, "relic/reward", self.on_reward, qos.REQUEST)
        self.create_subscription(Int32, "relic/target", self.on_target, qos.LATCHED)
        self.create_subscription(Image, "camera/image", self.on_image, qos.SENSOR)
        self.create_service(Trigger, "~/reset_context", self.on_reset_context)
        self.create_service(Trigger, "~/mark_episode_boundary", self.on_mark_episode_boundary)
        self.create_timer(config.diagnostics_period_s, self.publish_diagnostics)
        if config.autostart:
            self._autostart = self.create_timer(0.0, self._run_autostart)

    @property
    def config(self) -> RelicNavConfig:
        """The current parameters."""
        config: RelicNavConfig = self.params.config
        return config

    @property
    def state_name(self) -> str:
        """The lifecycle state: unconfigured, inactive, active, finalized."""
        return str(self._state_machine.current_state[1])

    @property
    def active(self) -> bool:
        """Whether images are answered."""
        return self.state_name == "active"

    def apply_config(self, config: RelicNavConfig) -> None:
        """Action sizes and a new target_object apply at once; the policy settings on the next configure."""
        self.scale = config.action_scale()
        if config.target_object != self.target_parameter:
            self.target = self.target_parameter = config.target_object

    def check_target_parameter(self, parameters: list[Parameter]) -> SetParametersResult:
        """Refuse a target_object beyond the loaded policy's target vector."""
        for parameter in parameters:
            if parameter.name == "target_object" and isinstance(parameter.value, int):
                reason = self.target_problem(parameter.value)
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def target_problem(self, target: int) -> str:
        """Why `target` cannot be the target object ("" if it can)."""
        size = self.agent.spec.vector_dim if self.agent is not None else None
        if target < 0 or (size is not None and target >= size):
            allowed = f"in 0..{size - 1}" if size is not None else ">= 0"
            return f"target_object {target} is out of range: it must be {allowed} (the policy's target vector)"
        return ""

    def _run_autostart(self) -> None:
        self._autostart.cancel()
        self.trigger_configure()
        if self.state_name == "inactive":
            self.trigger_activate()

    # Lifecycle ---------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the policy (a failure leaves the node unconfigured, with the reason reported)."""
        config = self.config
        try:
            self.agent = load_agent(config, self.target)
        except Exception as exc:  # a bad file fails the transition with its reason; the node stays up
            reason = " ".join(str(exc).split()) or type(exc).__name__
            self.report_error(f"cannot load the policy {config.policy_file!r}: {reason}", throttled=False)
            return TransitionCallbackReturn.FAILURE
        self.reward = 0.0
        self.step_s.clear()
        self.clear_error(f"policy loaded: {config.policy_file}")
        spec = self.agent.spec
        self.get_logger().info(
            f"policy loaded: {config.policy_file} (images {spec.image_shape}, {spec.vector_dim} targets, "
            f"{spec.num_actions} actions)"
        )
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Answer images."""
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop answering images (the context is kept)."""
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Drop the policy and its context."""
        self.agent = None
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """End the process (run_node's loop sees `exit_code`)."""
        self.agent = None
        self.exit_code = 0
        self.get_logger().info("lifecycle shutdown: the node exits")
        return super().on_shutdown(state)

    # Inputs ------------------------------------------------------------------------------------------------
    def on_reward(self, msg: Float32) -> None:
        """Keep the reward of the previous action for the next image (a non-finite one is refused)."""
        if not math.isfinite(msg.data):
            self.report_error(f"relic/reward {msg.data} is not finite: the next step gets reward 0")
            self.reward = 0.0
            return
        self.reward = float(msg.data)

    def on_target(self, msg: Int32) -> None:
        """Switch the target object (refused, with the reason, beyond the policy's target vector)."""
        reason = self.target_problem(int(msg.data))
        if reason:
            self.report_error(f"relic/target refused: {reason}")
            return
        self.target = int(msg.data)

    def on_image(self, msg: Image) -> None:
        """Answer the image with one command while active; refuse an unreadable one with its reason."""
        agent = self.agent
        if agent is None or not self.active:
            return
        try:
            shape = agent.spec.image_shape or ()
            image = decode_image(msg.height, msg.width, msg.encoding, msg.step, memoryview(msg.data), shape)
            action = agent.act({"vector": self.target_vector(agent.spec.vector_dim), "image": image}, self.reward)
            command = twist_message(action, self.scale, agent.spec.num_actions)
        except ValueError as exc:  # ImageError, or the policy's own refusal: nothing was appended
            self.refuse(str(exc))
            return
        except Exception as exc:  # whatever went wrong, the node keeps answering
            self.refuse(f"unexpected error: {exc!r}")
            return
        self.command_pub.publish(command)
        self.reward = 0.0
        self.steps += 1
        self.step_s.append(agent.last_step_s)
        if self.error:
            self.clear_error("answering images")

    def target_vector(self, size: int) -> NDArray[np.float32]:
        """The one-hot of the target object."""
        vector = np.zeros(size, dtype=np.float32)
        vector[self.target] = 1.0
        return vector

    def on_reset_context(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """A new trial: empty the context (and forget the pending reward)."""
        if self.agent is None:
            response.success, response.message = False, "no policy loaded: configure relic_nav first"
            return response
        dropped = self.agent.context_length
        self.agent.reset_context()
        self.reward = 0.0
        self.context_reset_requests += 1
        response.success, response.message = True, f"context reset ({dropped} steps dropped)"
        return response

    def on_mark_episode_boundary(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """The next image starts a new episode; the context is kept."""
        if self.agent is None:
            response.success, response.message = False, "no policy loaded: configure relic_nav first"
            return response
        self.agent.mark_episode_boundary()
        self.boundaries += 1
        response.success = True
        response.message = f"the next image starts a new episode ({self.agent.context_length} steps kept)"
        return response

    # Reports -----------------------------------------------------------------------------------------------
    def refuse(self, reason: str) -> None:
        """Count a refused image and report its reason (status and log, each at most once a second)."""
        reason = truncate(" ".join(reason.split()), MAX_REASON_CHARS)
        self.refused += 1
        self.refused_in_period += 1
        self.last_refusal = reason
        self.report_error(f"image refused: {reason}")

    def report_error(self, message: str, throttled: bool = True) -> None:
        """Log and publish an ERROR status (the same one at most every STATUS_PERIOD_S; with `throttled`, a log
        line at most that often whatever the message: a stream of bad inputs does not flood the log)."""
        now_s = time.monotonic()
        if message == self.error and now_s - self.last_status_s < STATUS_PERIOD_S:
            return
        self.error, self.last_status_s = message, now_s
        if throttled:
            self.get_logger().error(message, throttle_duration_sec=STATUS_PERIOD_S)
        else:
            self.get_logger().error(message)
        self.status_pub.publish(diagnostic_status(self.get_name(), "relicrl", DiagnosticStatus.ERROR, message, {}))

    def clear_error(self, message: str) -> None:
        """An OK status once the error is over."""
        self.error, self.last_status_s = "", -math.inf
        self.status_pub.publish(diagnostic_status(self.get_name(), "relicrl", DiagnosticStatus.OK, message, {}))

    def publish_diagnostics(self) -> None:
        """State, context, step time, resets and refused images on /diagnostics."""
        agent = self.agent
        values: dict[str, object] = {
            "state": self.state_name,
            "policy_file": self.config.policy_file,
            "target_object": self.target,
            "context_length": agent.context_length if agent is not None else 0,
            "max_context": self.config.max_context,
            "step_ms": 1e3 * self.step_s[-1] if self.step_s else 0.0,
            "step_p50_ms": 1e3 * float(np.median(self.step_s)) if self.step_s else 0.0,
            "context_resets": agent.context_resets if agent is not None else 0,
            "context_reset_requests": self.context_reset_requests,
            "episode_boundaries": self.boundaries,
            "steps": self.steps,
            "refused_images": self.refused,
            "last_refusal": self.last_refusal or "none",
        }
        if self.refused_in_period:
            level = DiagnosticStatus.ERROR
            message = f"{self.refused_in_period} images refused: {self.last_refusal}"
        elif agent is None:
            level, message = DiagnosticStatus.ERROR if self.error else DiagnosticStatus.WARN, self.error or "no policy"
        elif not self.active:
            level, message = DiagnosticStatus.WARN, "not active: images are not answered"
        else:
            level, message = DiagnosticStatus.OK, "answering images" if self.steps else "waiting for images"
        self.refused_in_period = 0
        stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(diagnostics_message(stamp, self.get_name(), "relicrl", level, message, values))


def main(args: list[str] | None = None) -> int:
    """Entry point of the `relic_nav` executable."""
    return run_node(RelicNav, args)


if __name__ == "__main__":
    raise SystemExit(main())

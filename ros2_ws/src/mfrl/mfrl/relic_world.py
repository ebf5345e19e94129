"""The `relic_world` node: relicnav's ObjectNav3D (first-person object navigation) in lock step with `relic_nav`.

The loop: the current observation's image goes out on `camera/image` (sensor_msgs/Image, rgb8, stamped with
the node's clock), and the world waits for one `cmd_vel` (geometry_msgs/Twist). The Twist is read back into
its action (`mfrl.relic_actions.velocity_action`; a Twist that is no action is refused, counted and logged,
and the world keeps waiting), the environment steps, the step's reward goes out on `relic/reward`
(std_msgs/Float32), then the next image. When no cmd_vel comes within `command_timeout_s` (wall time), the
image is sent again (counted: `image_resends`).

Episodes and trials: when an episode ends (the target reached, or `max_episode_steps` taken), the next one
starts in the same layout: its target object goes out on `relic/target` (std_msgs/Int32, latched), the nav
node's `~/mark_episode_boundary` (std_srvs/Trigger) is called, and the first image of the episode goes out
once that call is answered, so the boundary is always marked before the image it concerns (a service call,
not a topic, for that reason). Every `episodes_per_trial` episodes a new layout is drawn (the next seed of
`trial_split`, from `first_trial` on) and `~/reset_context` is called instead. A call not answered within
`command_timeout_s`, or to a node that is not there, is logged and counted (`unanswered_calls`) and the
world goes on. With `nav_node` empty no service is called (another controller can drive the world).

At start the world waits for the nav node's services (logging every few seconds), then draws the first
trial. Episode, success and trial counters, and the waits, are on `/diagnostics`. One thread: every callback
runs in the node's single-threaded executor; a new trial's layout takes about 0.1 s in a callback.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist
from rclpy.client import Client
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.task import Future
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, Int32
from std_srvs.srv import Trigger

from mfrl import qos
from mfrl.configs import RelicWorldConfig
from mfrl.conversions import diagnostics_message
from mfrl.node_main import run_node
from mfrl.parameters import ConfigParameters
from mfrl.relic_actions import ActionError, BodyVelocity, encode_rgb8, velocity_action
from relicnav import make_trial_env, trial_seeds

ENV_NAME = "objectnav3d"
TICK_S = 0.02
"""Period of the timer that watches for timeouts (wall time)."""
WAIT_LOG_PERIOD_S = 5.0
"""While waiting for the nav node's services, a log line this often."""


def image_message(image: np.ndarray, frame_id: str, stamp: Any) -> Image:
    """The rgb8 Image of an `H x W x 3` uint8 RGB observation."""
    fields = encode_rgb8(image)
    msg = Image(height=fields.height, width=fields.width, encoding=fields.encoding, step=fields.step)
    msg.is_bigendian = 0
    msg.data = fields.data
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    return msg


def twist_velocity(msg: Twist) -> BodyVelocity:
    """A Twist's six numbers."""
    return BodyVelocity(
        (float(msg.linear.x), float(msg.linear.y), float(msg.linear.z)),
        (float(msg.angular.x), float(msg.angular.y), float(msg.angular.z)),
    )


class RelicWorld(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("relic_world")
        self.exit_code: int | None = None
        self.params = ConfigParameters(self, RelicWorldConfig, read_only=True)
        config: RelicWorldConfig = self.params.config
        self.config = config
        self.env = make_trial_env(
            ENV_NAME,
            obs_size=config.image_size,
            max_episode_steps=config.max_episode_steps,
            stop_action=config.stop_action,
            distance_shaping=config.distance_shaping,
        )
        self.num_actions = int(self.env.action_space.n)
        self.observation: dict[str, np.ndarray] = {}
        self.started = False
        self.awaiting_command = False
        self.sent_s = 0.0
        self.call: tuple[Future, float, str] | None = None
        self.waiting_since_s = time.monotonic()
        self.last_wait_log_s = self.waiting_since_s
        self.trials = self.trial_episodes = self.trial_seed = 0
        self.episodes = self.successes = self.steps = self.episode_steps = 0
        self.episode_return = self.last_episode_return = 0.0
        self.last_episode_success = False
        self.image_resends = self.refused_commands = self.stale_commands = self.unanswered_calls = 0
        self.last_problem = ""
        self.image_pub = self.create_publisher(Image, "camera/image", qos.SENSOR)
        self.reward_pub = self.create_publisher(Float32, "relic/reward", qos.REQUEST)
        self.target_pub = self.create_publisher(Int32, "relic/target", qos.LATCHED)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.REQUEST)
        self.create_subscription(Twist, "cmd_vel", self.on_command, qos.COMMAND)
        self.reset_client: Client | None = None
        self.boundary_client: Client | None = None
        if config.nav_node:
            self.reset_client = self.create_client(Trigger, f"{config.nav_node}/reset_context")
            self.boundary_client = self.create_client(Trigger, f"{config.nav_node}/mark_episode_boundary")
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(TICK_S, self.on_tick, clock=steady)
        self.create_timer(config.diagnostics_period_s, self.publish_diagnostics, clock=steady)

    # The loop ----------------------------------------------------------------------------------------------
    def on_tick(self) -> None:
        """Start once the nav node is there; re-send an unanswered image; give up on an unanswered call."""
        now_s = time.monotonic()
        if not self.started:
            clients = [c for c in (self.reset_client, self.boundary_client) if c is not None]
            if all(c.service_is_ready() for c in clients):
                self.started = True
                self.get_logger().info(f"starting: {ENV_NAME}, {self.config.episodes_per_trial} episodes per trial")
                self.start_trial()
            elif now_s - self.last_wait_log_s > WAIT_LOG_PERIOD_S:
                self.last_wait_log_s = now_s
                self.get_logger().info(f"waiting for the services of {self.config.nav_node}")
            return
        if self.call is not None and now_s - self.call[1] > self.config.command_timeout_s:
            name = self.call[2]
            self.call = None
            self.problem(f"{name} was not answered within {self.config.command_timeout_s} s; going on")
            self.unanswered_calls += 1
            self.send_image()
        elif self.awaiting_command and now_s - self.sent_s > self.config.command_timeout_s:
            self.image_resends += 1
            self.send_image()

    def start_trial(self) -> None:
        """Draw the next layout, reset the nav node's context, start the trial's first episode."""
        config = self.config
        index = (config.first_trial + self.trials) % (1 << 29)
        self.trial_seed = trial_seeds(ENV_NAME, "eval" if config.trial_split == "eval" else "train", 1, index)[0]
        self.env.new_trial(self.trial_seed)
        self.trials += 1
        self.trial_episodes = 0
        self.begin_episode(self.reset_client)

    def begin_episode(self, client: Client | None) -> None:
        """Reset the environment, publish the target, call the nav node, then send the first image."""
        self.observation = self.env.reset()
        self.episode_steps, self.episode_return = 0, 0.0
        self.target_pub.publish(Int32(data=int(np.argmax(self.observation["vector"]))))
        if client is None:
            self.send_image()
            return
        name = client.srv_name
        if not client.service_is_ready():
            self.problem(f"{name} is not available; going on")
            self.unanswered_calls += 1
            self.send_image()
            return
        future = client.call_async(Trigger.Request())
        self.call = (future, time.monotonic(), name)
        future.add_done_callback(self.on_call_done)

    def on_call_done(self, future: Future) -> None:
        """The nav node answered: send the episode's first image (a late answer, after a timeout, is dropped)."""
        if self.call is None or self.call[0] is not future:
            return
        name = self.call[2]
        self.call = None
        response = future.result()
        if response is None or not response.success:
            self.problem(f"{name} failed: {getattr(response, 'message', 'no answer')}")
        self.send_image()

    def send_image(self) -> None:
        """Publish the current observation's image and wait for its command."""
        stamp = self.get_clock().now().to_msg()
        self.image_pub.publish(image_message(self.observation["image"], self.config.frame_id, stamp))
        self.sent_s = time.monotonic()
        self.awaiting_command = True

    def on_command(self, msg: Twist) -> None:
        """Step the environment with the command's action; publish the reward; go on to the next image."""
        if not self.awaiting_command:
            self.stale_commands += 1  # an answer to a re-sent image, or one during a service call
            return
        try:
            action = velocity_action(twist_velocity(msg), self.num_actions)
        except ActionError as exc:
            self.refused_commands += 1
            self.problem(f"cmd_vel refused: {exc}")
            return
        self.awaiting_command = False
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.observation = observation
        self.steps += 1
        self.episode_steps += 1
        self.episode_return += float(reward)
        self.reward_pub.publish(Float32(data=float(reward)))
        if not (terminated or truncated):
            self.send_image()
            return
        self.episodes += 1
        self.trial_episodes += 1
        self.last_episode_success = bool(info.get("success", False))
        self.successes += int(self.last_episode_success)
        self.last_episode_return = self.episode_return
        if self.trial_episodes >= self.config.episodes_per_trial:
            self.start_trial()
        else:
            self.begin_episode(self.boundary_client)

    # Reports -----------------------------------------------------------------------------------------------
    def problem(self, message: str) -> None:
        """Log a problem (at most once a second) and keep it for /diagnostics."""
        self.last_problem = message
        self.get_logger().warning(message, throttle_duration_sec=1.0)

    def publish_diagnostics(self) -> None:
        """Episodes, successes, trials, steps and the waits on /diagnostics."""
        values: dict[str, object] = {
            "episodes": self.episodes,
            "successes": self.successes,
            "success_rate": self.successes / self.episodes if self.episodes else 0.0,
            "trials": self.trials,
            "trial_seed": self.trial_seed,
            "trial_episodes": self.trial_episodes,
            "steps": self.steps,
            "episode_steps": self.episode_steps,
            "last_episode_return": self.last_episode_return,
            "last_episode_success": self.last_episode_success,
            "image_resends": self.image_resends,
            "refused_commands": self.refused_commands,
            "stale_commands": self.stale_commands,
            "unanswered_calls": self.unanswered_calls,
            "last_problem": self.last_problem or "none",
        }
        if not self.started:
            level, message = DiagnosticStatus.WARN, f"waiting for the services of {self.config.nav_node}"
        elif self.last_problem:
            level, message = DiagnosticStatus.WARN, self.last_problem
        else:
            level, message = DiagnosticStatus.OK, "running"
        self.last_problem = ""
        stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(diagnostics_message(stamp, self.get_name(), ENV_NAME, level, message, values))

    def close(self) -> None:
        """Close the environment's hidden window (run_node calls this before destroying the node)."""
        self.env.close()


def main(args: list[str] | None = None) -> int:
    """Entry point of the `relic_world` executable."""
    return run_node(RelicWorld, args)


if __name__ == "__main__":
    raise SystemExit(main())

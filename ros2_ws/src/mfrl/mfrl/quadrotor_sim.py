"""The `quadrotor_sim` node: the MuJoCo quadrotor in simulated time, in lock step with its controller.

Each control period it publishes /clock and `odom` (stamped with the simulated time), waits for the
controller's `cmd_wrench` (geometry_msgs/WrenchStamped: collective thrust on force.z, body torques)
answering that stamp, applies it through the mixer (rotor thrust limits and motor lag in the model)
and steps. A command that does not come within `command_timeout_s` of wall time is counted as missed
and the last one is held. Simulated time starts when the first command arrives and is paced to
`real_time_factor` (0: as fast as the controller answers).
"""

from __future__ import annotations

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import WrenchStamped
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg

from mfrl import qos
from mfrl.configs import QuadrotorSimConfig
from mfrl.conversions import diagnostics_message, ns_to_stamp, odometry_message, stamp_to_ns
from mfrl.node_main import run_node
from mfrl.parameters import ConfigParameters
from quadsim.mujoco_vehicle import MujocoQuadrotor


class QuadrotorSim(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("quadrotor_sim")
        self.exit_code: int | None = None
        self.params = ConfigParameters(self, QuadrotorSimConfig, read_only=True)
        config: QuadrotorSimConfig = self.params.config
        self.config = config
        self.vehicle = MujocoQuadrotor()
        self.vehicle.reset(np.asarray(config.initial_position_m), config.initial_yaw_rad)
        self.period_ns = round(1e9 / config.control_rate_hz)
        self.tick = 0
        self.started = False
        self.answered = False
        self.missed = 0
        self.sent_wall = 0.0
        self.due_wall = 0.0
        self.rtf_mark = (time.monotonic(), 0)
        self.real_time_factor = 0.0
        self.clock_pub = self.create_publisher(ClockMsg, "/clock", qos.CLOCK)
        self.odom_pub = self.create_publisher(Odometry, "odom", qos.SENSOR)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos.REQUEST)
        self.create_subscription(WrenchStamped, "cmd_wrench", self.on_command, qos.COMMAND)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        pace = self.period_ns * 1e-9 / config.real_time_factor if config.real_time_factor > 0 else 0.004
        self.create_timer(max(pace / 4.0, 0.001), self.on_timer, clock=steady)
        self.create_timer(config.diagnostics_period_s, self.publish_diagnostics, clock=steady)
        self.publish_state()

    @property
    def stamp_ns(self) -> int:
        """Simulated time now."""
        return self.tick * self.period_ns

    def publish_state(self) -> None:
        """/clock, then the odometry of the current tick."""
        stamp = ns_to_stamp(self.stamp_ns)
        self.clock_pub.publish(ClockMsg(clock=stamp))
        state = self.vehicle.state()
        self.odom_pub.publish(odometry_message(state, self.config.frame_id, self.config.child_frame_id, stamp))
        self.sent_wall = time.monotonic()

    def on_command(self, msg: WrenchStamped) -> None:
        """Apply the controller's answer to the current tick (late answers to older ticks are dropped)."""
        if stamp_to_ns(msg.header.stamp) != self.stamp_ns:
            return
        force, torque = msg.wrench.force, msg.wrench.torque
        values = np.array([force.z, torque.x, torque.y, torque.z])
        if not np.isfinite(values).all():
            self.get_logger().error("non-finite command ignored; holding the last one")
        else:
            self.vehicle.set_wrench(float(values[0]), values[1:])
        self.answered = True
        if not self.started:
            self.started = True
            self.due_wall = time.monotonic()
            self.get_logger().info("controller answered: simulated time starts")
        self.try_advance()

    def on_timer(self) -> None:
        """Advance when due; re-send the state while waiting for a controller; count timeouts."""
        now = time.monotonic()
        if not self.started:
            if now - self.sent_wall > 0.1:
                self.publish_state()
            return
        if not self.answered and now - self.sent_wall > self.config.command_timeout_s:
            self.missed += 1
            self.answered = True
        self.try_advance()

    def try_advance(self) -> None:
        """Step one control period if the command is in and the pace allows."""
        if not self.answered:
            return
        now = time.monotonic()
        rtf = self.config.real_time_factor
        if rtf > 0.0:
            if now < self.due_wall:
                return
            step_wall = self.period_ns * 1e-9 / rtf
            self.due_wall = max(self.due_wall + step_wall, now - step_wall)
        self.vehicle.step(self.period_ns * 1e-9)
        self.tick += 1
        self.answered = False
        self.publish_state()

    def publish_diagnostics(self) -> None:
        """Real-time factor, simulated time and missed commands on /diagnostics."""
        now, tick = time.monotonic(), self.tick
        then, then_tick = self.rtf_mark
        if now > then:
            self.real_time_factor = (tick - then_tick) * self.period_ns * 1e-9 / (now - then)
        self.rtf_mark = (now, tick)
        state = self.vehicle.state()
        values = {
            "real_time_factor": self.real_time_factor,
            "sim_time_s": self.stamp_ns * 1e-9,
            "missed_commands": self.missed,
            "altitude_m": float(state.position_m[2]),
        }
        level = DiagnosticStatus.OK if self.missed == 0 else DiagnosticStatus.WARN
        message = "running" if self.started else "waiting for the controller"
        msg = diagnostics_message(ns_to_stamp(self.stamp_ns), self.get_name(), "mujoco", level, message, values)
        self.diagnostics_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """Entry point of the `quadrotor_sim` executable."""
    return run_node(QuadrotorSim, args)


if __name__ == "__main__":
    raise SystemExit(main())

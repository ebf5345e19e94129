"""The `relic_nav` node as an outside client sees it, the `relic_nav` graph, and the action and image wire.

The node runs in its own process (`python -m mfrl.relic_nav`, as the runner starts it) on this test's
domain; a test node drives its lifecycle through the lifecycle services, publishes camera images, rewards
and targets, and reads `cmd_vel`, `~/status` and `/diagnostics`. Each test writes its own small untrained
policy file (`relicrl.model.build_policy`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels (extra `ros`) are not installed")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float32  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from mfrl import qos  # noqa: E402
from mfrl.configs import ConfigError, RelicNavConfig, RelicWorldConfig  # noqa: E402
from mfrl.relic_actions import (  # noqa: E402
    DEFAULT_STEP_M,
    DEFAULT_TURN_RAD,
    MOVE_FORWARD,
    STOP,
    TURN_LEFT,
    TURN_RIGHT,
    ActionError,
    ActionScale,
    BodyVelocity,
    ImageError,
    action_velocity,
    decode_image,
    encode_rgb8,
    velocity_action,
)
from mfrl_graph import runner  # noqa: E402
from mfrl_graph.graph import GraphOptions, GraphSpec, build_graph  # noqa: E402
from mfrl_graph.runner import GraphProcesses  # noqa: E402

from .conftest import RosPeer  # noqa: E402

SIDE = 64
NODE = "relic_nav"
START_TIMEOUT_S = 60.0
"""The node's process imports rclpy (and torch on configure) on a shared 2-core machine."""


def write_policy(path: Path, num_actions: int = 3, image_shape: tuple[int, int, int] | None = (SIDE, SIDE, 3)) -> Path:
    """A small untrained ReLIC policy file (six targets, ObjectNav3D's actions by default)."""
    from relicrl.checkpoint import save_policy
    from relicrl.model import ModelSpec, build_policy

    spec = ModelSpec(
        vector_dim=6, num_actions=num_actions, image_shape=image_shape, d_model=16, n_layers=1, n_heads=2, d_mlp=32
    )
    save_policy(path, build_policy(spec))
    return path


# The action and image wire (no ROS graph) -------------------------------------------------------------------
@pytest.mark.parametrize("num_actions", [3, 4])
@pytest.mark.parametrize("scale", [ActionScale(), ActionScale(0.1, 0.05, 0.1), ActionScale(2.0, math.pi, 7.0)])
def test_every_action_maps_to_a_velocity_and_back(num_actions: int, scale: ActionScale) -> None:
    for action in range(num_actions):
        velocity = action_velocity(action, scale, num_actions)
        assert velocity_action(velocity, num_actions) == action
    forward = action_velocity(MOVE_FORWARD, scale)
    assert forward.linear_m_s == (scale.step_m / scale.control_period_s, 0.0, 0.0)
    assert action_velocity(TURN_LEFT, scale).angular_rad_s[2] == scale.turn_rad / scale.control_period_s > 0.0
    assert action_velocity(TURN_RIGHT, scale).angular_rad_s[2] == -scale.turn_rad / scale.control_period_s
    assert action_velocity(STOP, scale) == BodyVelocity()


def test_defaults_are_objectnav3d_step_and_turn() -> None:
    from relicnav import objectnav3d

    assert DEFAULT_STEP_M == objectnav3d.FORWARD_M
    assert pytest.approx(math.radians(objectnav3d.TURN_DEG)) == DEFAULT_TURN_RAD
    assert (objectnav3d.TURN_LEFT, objectnav3d.TURN_RIGHT, objectnav3d.MOVE_FORWARD, objectnav3d.STOP) == (
        TURN_LEFT,
        TURN_RIGHT,
        MOVE_FORWARD,
        STOP,
    )


@pytest.mark.parametrize(
    ("velocity", "num_actions", "match"),
    [
        (BodyVelocity((-0.5, 0.0, 0.0)), 4, "no action"),
        (BodyVelocity((0.0, 0.3, 0.0)), 4, "no action"),
        (BodyVelocity((0.5, 0.0, 0.0), (0.0, 0.0, 1.0)), 4, "no action"),
        (BodyVelocity((math.nan, 0.0, 0.0)), 4, "finite"),
        (BodyVelocity((0.0, 0.0, 0.0), (0.0, 0.0, math.inf)), 4, "finite"),
        (BodyVelocity(), 3, "no stop"),
    ],
)
def test_a_velocity_that_is_no_action_is_refused(velocity: BodyVelocity, num_actions: int, match: str) -> None:
    with pytest.raises(ActionError, match=match):
        velocity_action(velocity, num_actions)


def test_bad_action_numbers_and_sizes_are_refused() -> None:
    for action in (-1, 3, True, 2.0):
        with pytest.raises(ActionError):
            action_velocity(action, ActionScale(), 3)  # type: ignore[arg-type]
    with pytest.raises(ActionError, match="5 actions"):
        action_velocity(0, ActionScale(), 5)
    with pytest.raises(ActionError, match="step_m"):
        ActionScale(step_m=0.0)
    with pytest.raises(ConfigError, match="control_period_s"):
        RelicNavConfig(policy_file="p.pt", control_period_s=math.nan)
    with pytest.raises(ConfigError, match="trial_split"):
        RelicWorldConfig(trial_split="test")


def test_images_round_trip_and_bgr_padding_are_read() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(SIDE, SIDE, 3), dtype=np.uint8)
    wire = encode_rgb8(image)
    assert (wire.height, wire.width, wire.step, len(wire.data)) == (SIDE, SIDE, 3 * SIDE, SIDE * SIDE * 3)
    np.testing.assert_array_equal(decode_image(SIDE, SIDE, "rgb8", wire.step, wire.data, image.shape), image)
    bgr = encode_rgb8(np.ascontiguousarray(image[:, :, ::-1])).data
    np.testing.assert_array_equal(decode_image(SIDE, SIDE, "bgr8", 3 * SIDE, bgr, image.shape), image)
    padded = np.zeros((SIDE, 3 * SIDE + 8), dtype=np.uint8)
    padded[:, : 3 * SIDE] = image.reshape(SIDE, -1)
    decoded = decode_image(SIDE, SIDE, "rgb8", 3 * SIDE + 8, padded.tobytes(), image.shape)
    np.testing.assert_array_equal(decoded, image)


# Bad images: (what a sender gets wrong, the message fields, words of the refusal).
BAD_IMAGES: list[tuple[str, dict[str, Any], str]] = [
    ("wrong size", {"height": 32, "width": 32, "encoding": "rgb8", "step": 96, "data": bytes(32 * 96)}, "32 x 32"),
    ("mono8", {"height": SIDE, "width": SIDE, "encoding": "mono8", "step": SIDE, "data": bytes(SIDE * SIDE)}, "mono8"),
    (
        "float with NaN",
        {
            "height": SIDE,
            "width": SIDE,
            "encoding": "32FC1",
            "step": 4 * SIDE,
            "data": np.full(SIDE * SIDE, np.nan, dtype=np.float32).tobytes(),
        },
        "32FC1",
    ),
    (
        "truncated data",
        {"height": SIDE, "width": SIDE, "encoding": "rgb8", "step": 3 * SIDE, "data": bytes(3 * SIDE * SIDE - 10)},
        "data has",
    ),
    (
        "huge size, short data",
        {"height": 2**31, "width": 2**31, "encoding": "rgb8", "step": 2**32 - 1, "data": bytes(12)},
        "2147483648 x 2147483648",
    ),
    (
        "step shorter than a row",
        {"height": SIDE, "width": SIDE, "encoding": "bgr8", "step": 100, "data": bytes(SIDE * 100)},
        "step 100",
    ),
]


@pytest.mark.parametrize(("what", "fields", "words"), BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
def test_decode_refuses_a_bad_image_with_its_reason(what: str, fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ImageError, match=words):
        decode_image(shape=(SIDE, SIDE, 3), **fields)


def test_the_shipped_policy_can_drive_the_node() -> None:
    from mfrl.relic_nav import load_agent
    from relicnav.objectnav3d import OBJECTS

    config = RelicNavConfig()
    # the graph's default policy ships with the package: a missing one is a broken install, not a skip
    assert Path(config.policy_file).is_file(), f"no shipped policy at {config.policy_file}"
    spec = load_agent(config, config.target_object).spec
    assert spec.image_shape == (SIDE, SIDE, 3)
    assert spec.vector_dim == len(OBJECTS)
    assert spec.num_actions == 3


# The node, from outside -------------------------------------------------------------------------------------
def image_message(fields: dict[str, Any]) -> Image:
    """An Image with these fields."""
    msg = Image(height=fields["height"], width=fields["width"], encoding=fields["encoding"], step=fields["step"])
    msg.data = fields["data"]
    return msg


def good_image(seed: int, encoding: str = "rgb8") -> Image:
    """A random 64 x 64 colour image."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(SIDE, SIDE, 3), dtype=np.uint8)
    return image_message(
        {"height": SIDE, "width": SIDE, "encoding": encoding, "step": 3 * SIDE, "data": pixels.tobytes()}
    )


class NavClient:
    """A test node that drives `relic_nav` through its topics and services."""

    def __init__(self, peer: RosPeer) -> None:
        self.peer = peer
        node = peer.node
        self.commands: list[Twist] = []
        self.statuses: list[DiagnosticStatus] = []
        self.diagnostics: list[DiagnosticStatus] = []
        node.create_subscription(Twist, "/cmd_vel", self.commands.append, qos.COMMAND)
        node.create_subscription(DiagnosticStatus, f"/{NODE}/status", self.statuses.append, qos.REQUEST)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.on_diagnostics, qos.REQUEST)
        self.image_pub = node.create_publisher(Image, "/camera/image", qos.SENSOR)
        self.reward_pub = node.create_publisher(Float32, "/relic/reward", qos.REQUEST)
        self.change_state: Any = node.create_client(ChangeState, f"/{NODE}/change_state")
        self.get_state: Any = node.create_client(GetState, f"/{NODE}/get_state")
        self.set_parameters: Any = node.create_client(SetParameters, f"/{NODE}/set_parameters")
        self.reset_context: Any = node.create_client(Trigger, f"/{NODE}/reset_context")
        self.mark_boundary: Any = node.create_client(Trigger, f"/{NODE}/mark_episode_boundary")

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.diagnostics.extend(s for s in msg.status if s.name == f"mfrl: {NODE}")

    def wait_ready(self) -> None:
        ready = self.peer.spin_until(
            lambda: self.change_state.service_is_ready() and self.image_pub.get_subscription_count() > 0,
            START_TIMEOUT_S,
        )
        assert ready, "relic_nav did not come up"

    def call(self, client: Any, request: Any, timeout_s: float = 30.0) -> Any:
        future = client.call_async(request)
        assert self.peer.spin_until(future.done, timeout_s), f"no answer from {client.srv_name}"
        return future.result()

    def transition(self, transition_id: int) -> bool:
        return bool(self.call(self.change_state, ChangeState.Request(transition=Transition(id=transition_id))).success)

    def state(self) -> str:
        return str(self.call(self.get_state, GetState.Request()).current_state.label)

    def set_parameter(self, name: str, value: Any) -> Any:
        request = SetParameters.Request(
            parameters=[ParameterMsg(name=name, value=Parameter(name, value=value).get_parameter_value())]
        )
        return self.call(self.set_parameters, request).results[0]

    def trigger(self, client: Any) -> Any:
        return self.call(client, Trigger.Request())

    def fresh_diagnostics(
        self, condition: Callable[[dict[str, str]], bool] = lambda _: True, timeout_s: float = 5.0
    ) -> dict[str, str]:
        """The first /diagnostics published after this call (that meets `condition`)."""
        found: list[dict[str, str]] = []
        start = len(self.diagnostics)

        def seen() -> bool:
            nonlocal start
            for status in self.diagnostics[start:]:
                values = {"level": str(status.level[0]), "message": status.message}
                values.update({kv.key: kv.value for kv in status.values})
                if condition(values):
                    found.append(values)
                    return True
            start = len(self.diagnostics)
            return False

        assert self.peer.spin_until(seen, timeout_s), "no such /diagnostics from relic_nav"
        return found[0]

    def send(self, msg: Image, expect_answer: bool = True, timeout_s: float = 10.0) -> Twist | None:
        """Publish an image; return the one command it got (None, after `timeout_s`, when none is expected)."""
        count = len(self.commands)
        self.image_pub.publish(msg)
        if not expect_answer:
            assert not self.peer.spin_until(lambda: len(self.commands) > count, timeout_s), "an unexpected command"
            return None
        assert self.peer.spin_until(lambda: len(self.commands) > count, timeout_s), "no cmd_vel for the image"
        self.peer.spin_until(lambda: False, 0.3)  # and no second one
        assert len(self.commands) == count + 1, f"{len(self.commands) - count} commands for one image"
        return self.commands[-1]


@pytest.fixture
def nav_process(ros_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    """Start `relic_nav` (not autostarted; diagnostics at 5 Hz) with a policy file; stop it after the test."""
    processes: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "relic_nav.log"

    def start(policy_file: Path) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "mfrl.relic_nav", "--ros-args", "-r", f"__node:={NODE}"]
        for parameter in ("autostart:=false", "diagnostics_period_s:=0.2", f"policy_file:={policy_file}"):
            command += ["-p", parameter]
        output = log.open("wb")
        process = subprocess.Popen(command, env=ros_env, stdout=output, stderr=subprocess.STDOUT)
        output.close()
        processes.append(process)
        return process

    try:
        yield start
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if log.exists():
            print(log.read_text()[-3000:])


@pytest.fixture
def client(ros_env: dict[str, str]) -> Iterator[NavClient]:
    """The test node, in this test's domain."""
    peer = RosPeer("relic_nav_client")
    try:
        yield NavClient(peer)
    finally:
        peer.close()


def _activate(nav: NavClient) -> None:
    nav.wait_ready()
    assert nav.state() == "unconfigured"
    assert nav.transition(Transition.TRANSITION_CONFIGURE), nav.statuses[-1].message if nav.statuses else ""
    assert nav.transition(Transition.TRANSITION_ACTIVATE)
    assert nav.state() == "active"


@pytest.mark.ros
@pytest.mark.slow
def test_a_good_image_gives_one_command_and_the_context_follows_the_services(
    nav_process: Callable[[Path], subprocess.Popen[bytes]], client: NavClient, tmp_path: Path
) -> None:
    process = nav_process(write_policy(tmp_path / "policy.pt"))
    _activate(client)
    command = client.send(good_image(0))
    assert command is not None
    action = velocity_action(BodyVelocity((command.linear.x, command.linear.y, command.linear.z),
                                          (command.angular.x, command.angular.y, command.angular.z)), 3)  # fmt: skip
    assert action in (TURN_LEFT, TURN_RIGHT, MOVE_FORWARD)
    assert client.fresh_diagnostics()["context_length"] == "1"
    client.reward_pub.publish(Float32(data=0.5))  # the previous action's reward, before the next image
    client.send(good_image(1, "bgr8"))
    values = client.fresh_diagnostics()
    assert values["context_length"] == "2"
    assert values["level"] == str(DiagnosticStatus.OK[0])
    assert float(values["step_ms"]) > 0.0
    assert float(values["step_p50_ms"]) > 0.0

    answer = client.trigger(client.mark_boundary)
    assert answer.success
    assert client.fresh_diagnostics()["context_length"] == "2"  # a new episode keeps the context
    client.send(good_image(2))
    assert client.fresh_diagnostics()["context_length"] == "3"
    answer = client.trigger(client.reset_context)
    assert answer.success
    assert "3 steps" in answer.message
    values = client.fresh_diagnostics()
    assert values["context_length"] == "0"
    assert values["episode_boundaries"] == "1"
    assert values["context_reset_requests"] == "1"

    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    client.send(good_image(3), expect_answer=False, timeout_s=1.0)  # inactive: nothing is published
    assert client.fresh_diagnostics()["state"] == "inactive"
    assert client.transition(Transition.TRANSITION_CLEANUP)
    assert not client.trigger(client.reset_context).success  # no policy any more
    assert process.poll() is None


@pytest.mark.ros
@pytest.mark.slow
def test_bad_images_are_refused_with_a_reason_and_good_ones_are_still_answered(
    nav_process: Callable[[Path], subprocess.Popen[bytes]], client: NavClient, tmp_path: Path
) -> None:
    process = nav_process(write_policy(tmp_path / "policy.pt"))
    _activate(client)
    for what, fields, words in BAD_IMAGES:
        count = len(client.statuses)
        for _ in range(20):  # best-effort: sent again until the node has seen it
            client.image_pub.publish(image_message(fields))
            if client.peer.spin_until(lambda n=count: len(client.statuses) > n, 0.5):
                break
        assert len(client.statuses) > count, f"no status for {what}"
        status = client.statuses[-1]
        assert status.level == DiagnosticStatus.ERROR, (what, status.message)
        assert words in status.message, (what, status.message)
    values = client.fresh_diagnostics()
    assert int(values["refused_images"]) >= len(BAD_IMAGES)
    assert values["context_length"] == "0"  # nothing of a refused image reached the context
    assert not client.commands

    mono = image_message(BAD_IMAGES[1][1])
    for _ in range(200):  # a burst (best-effort, depth 1: the node sees some of it)
        client.image_pub.publish(mono)
    refused = int(values["refused_images"])
    values = client.fresh_diagnostics(lambda v: int(v["refused_images"]) > refused)
    assert values["level"] == str(DiagnosticStatus.ERROR[0])
    assert "mono8" in values["message"]
    assert "mono8" in values["last_refusal"]
    assert values["context_length"] == "0"

    client.reward_pub.publish(Float32(data=math.nan))  # refused too (the next step gets reward 0)
    assert client.send(good_image(0)) is not None  # and the node keeps answering good images
    values = client.fresh_diagnostics()
    assert values["context_length"] == "1"
    assert values["level"] == str(DiagnosticStatus.OK[0])
    assert not client.commands[1:]
    assert process.poll() is None


class _OpensAFile:
    """Unpickling this object would call `open(marker, "w")`: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.mark.ros
@pytest.mark.slow
def test_a_missing_or_bad_policy_file_keeps_the_node_unconfigured_with_its_reason(
    nav_process: Callable[[Path], subprocess.Popen[bytes]], client: NavClient, tmp_path: Path
) -> None:
    import torch

    marker = tmp_path / "marker"
    crafted = tmp_path / "crafted.pt"
    torch.save(_OpensAFile(marker), crafted)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a policy\n" * 10)
    cases = [
        (tmp_path / "missing.pt", "no such file"),
        (garbage, "not a readable ReLIC policy"),
        (crafted, "not a readable ReLIC policy"),
        (write_policy(tmp_path / "five.pt", num_actions=5), "5 actions"),
        (write_policy(tmp_path / "blind.pt", image_shape=None), "no colour image"),
    ]
    process = nav_process(cases[0][0])
    client.wait_ready()
    for path, words in cases:
        assert client.set_parameter("policy_file", str(path)).successful
        count = len(client.statuses)
        assert not client.transition(Transition.TRANSITION_CONFIGURE), f"{path} was loaded"
        assert client.state() == "unconfigured"
        assert client.peer.spin_until(lambda n=count: len(client.statuses) > n, 5.0), f"no status for {path}"
        status = client.statuses[-1]
        assert status.level == DiagnosticStatus.ERROR
        assert str(path) in status.message
        assert words in status.message
        assert "\n" not in status.message
        assert words in client.fresh_diagnostics()["message"]  # /diagnostics says why too
        assert not marker.exists(), "the crafted file was unpickled"

    good = write_policy(tmp_path / "good.pt")
    assert client.set_parameter("policy_file", str(good)).successful
    assert client.set_parameter("target_object", 6).successful  # no policy yet: checked on configure
    assert not client.transition(Transition.TRANSITION_CONFIGURE)
    assert "target_object 6 is out of range" in client.statuses[-1].message
    assert client.set_parameter("target_object", 5).successful
    assert client.transition(Transition.TRANSITION_CONFIGURE)  # the node is alive and configures
    result = client.set_parameter("target_object", 6)  # with a policy loaded: refused at once
    assert not result.successful
    assert "out of range" in result.reason
    assert client.set_parameter("max_context", 0).successful is False
    assert process.poll() is None


# The graph --------------------------------------------------------------------------------------------------
def _quick_graph(policy: Path) -> GraphSpec:
    """The relic_nav graph with the test's policy, short episodes and two episodes per trial."""
    graph = build_graph("relic_nav", GraphOptions(relic_policy=str(policy)))
    world = graph.node("relic_world")
    parameters = {**world.parameters, "max_episode_steps": 4, "episodes_per_trial": 2, "command_timeout_s": 0.5}
    nodes = tuple(dataclasses.replace(n, parameters=parameters) if n is world else n for n in graph.nodes)
    return dataclasses.replace(graph, nodes=nodes)


@pytest.mark.ros
@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.xdist_group("flight_graph")
def test_the_graph_runs_episodes_and_trials_in_lock_step(
    ros_env: dict[str, str], graph_logs: Path, tmp_path: Path
) -> None:
    graph = _quick_graph(write_policy(tmp_path / "policy.pt"))
    assert graph.node("relic_nav").parameters["policy_file"] == str(tmp_path / "policy.pt")
    processes = GraphProcesses(graph, env=ros_env, log_dir=graph_logs)
    latest: dict[str, dict[str, str]] = {}

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            latest[status.name] = {kv.key: kv.value for kv in status.values}

    def logs() -> str:
        return "\n".join(p.read_text()[-1500:] for p in graph_logs.glob("*.log"))

    processes.start()
    peer = RosPeer("relic_graph_client")
    try:
        peer.node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, qos.REQUEST)

        def counted() -> bool:
            # each node reports once a second: wait for a report of both taken after the episodes ran
            world = latest.get("mfrl: relic_world", {})
            nav = latest.get("mfrl: relic_nav", {})
            world_done = int(world.get("episodes", 0)) >= 3 and int(world.get("trials", 0)) >= 2
            nav_seen = int(nav.get("steps", 0)) > 0 and int(nav.get("context_reset_requests", 0)) >= 1
            return world_done and nav_seen and int(nav.get("episode_boundaries", 0)) >= 1

        assert peer.spin_until(counted, 90.0), f"{latest}\n{logs()}"
        nav = latest["mfrl: relic_nav"]
        world = latest["mfrl: relic_world"]
        assert nav["state"] == "active"
        assert int(nav["steps"]) > 0
        assert int(world["steps"]) >= 3
        assert int(nav["episode_boundaries"]) >= 1
        assert int(nav["context_reset_requests"]) >= 1
        assert int(world["refused_commands"]) == 0
        assert all(p.poll() is None for p in processes.processes.values()), logs()
    finally:
        peer.close()
        codes = processes.stop()
    assert codes == {"relic_nav": 0, "relic_world": 0}, logs()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["relic_nav", "--relic-policy", "no/such/policy.pt"], "--relic-policy: no such file no/such/policy.pt"),
        (["relic_nav", "--mode", "vehicle"], "runs its own simulated world: mode sim"),
    ],
)
def test_mfrl_launch_relic_nav_refuses_a_bad_argument_before_starting(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a node process was started: {args}")

    monkeypatch.setattr(runner.subprocess, "Popen", refuse)
    assert runner.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert message in err


def test_the_graph_refuses_a_vehicle_mode_or_a_course() -> None:
    with pytest.raises(ValueError, match="mode sim"):
        build_graph("relic_nav", GraphOptions(mode="vehicle"))
    with pytest.raises(ValueError, match="course"):
        build_graph("relic_nav", GraphOptions(course=(0, 0, 1, 1, 1, 1)))
    graph = build_graph("relic_nav", GraphOptions())
    assert "policy_file" not in graph.node("relic_nav").parameters  # the node's own default: the shipped file
    assert graph.node("relic_world").parameters["nav_node"] == "relic_nav"
    assert os.fspath(graph.params_file).endswith("replanner.yaml")

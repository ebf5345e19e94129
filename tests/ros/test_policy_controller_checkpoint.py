"""A bad `checkpoint` file fails the policy_controller's configure transition with a one-line reason.

The file is never unpickled (a crafted one runs nothing); the node stays up and reports the reason on
`~/status`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels (extra `ros`) are not installed")

import torch  # noqa: E402
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from mfrl import qos  # noqa: E402
from mfrl.policy_controller import PolicyController  # noqa: E402

from .conftest import LocalNodes  # noqa: E402


class _OpensAFile:
    """Unpickling this object would call `open(marker, "w")`: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.mark.ros
def test_a_crafted_or_broken_checkpoint_fails_configure_with_its_reason(
    local_nodes: LocalNodes, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    crafted = tmp_path / "crafted.pt"
    torch.save(_OpensAFile(marker), crafted)
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint\n")
    node = local_nodes.add(PolicyController())
    assert isinstance(node, PolicyController)
    statuses: list[DiagnosticStatus] = []
    local_nodes.peer.create_subscription(DiagnosticStatus, "/policy_controller/status", statuses.append, qos.REQUEST)
    assert local_nodes.spin_until(lambda: node.active, 10.0), "the node did not start with the geometric controller"
    node.trigger_deactivate()
    node.trigger_cleanup()
    for path in (crafted, text):
        node.set_parameters([Parameter("checkpoint", value=str(path))])
        count = len(statuses)
        node.trigger_configure()
        assert node._state_machine.current_state[1] == "unconfigured"
        assert local_nodes.spin_until(lambda n=count: len(statuses) > n, 5.0), (
            "no ERROR status for the failed configure"
        )
        message = statuses[-1].message
        assert statuses[-1].level == DiagnosticStatus.ERROR
        assert str(path) in message
        assert "\n" not in message
        assert not marker.exists()
    node.set_parameters([Parameter("checkpoint", value="geometric")])
    node.trigger_configure()  # the node is still alive and configures with a good setting
    assert node._state_machine.current_state[1] == "inactive"

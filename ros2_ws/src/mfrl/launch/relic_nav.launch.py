"""ros2 launch mfrl relic_nav.launch.py [relic_policy:=FILE] [params_file:=FILE]

ReLIC in-context navigation: `relic_world` (relicnav's ObjectNav3D, first-person images) in lock step with
`relic_nav` (a ReLIC policy answering each camera image with a cmd_vel, its context kept across the
episodes of a trial). The nodes, their names and parameters come from the graph declared once in
`mfrl_graph.graph` (the top-level `launch/` of the repository), which the pip-only runner
(`mfrl-launch relic_nav`) reads as well.
"""

from __future__ import annotations

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mfrl_graph.graph import GraphOptions, build_graph

ARGUMENTS = {
    "relic_policy": ("", "ReLIC policy file of relic_nav (empty: the shipped objectnav3d_policy.pt)"),
    "params_file": ("", "YAML parameter file (empty: this package's config/replanner.yaml)"),
}


def _nodes(context: LaunchContext) -> list[Node]:
    params_file = LaunchConfiguration("params_file").perform(context) or str(
        Path(get_package_share_directory("mfrl")) / "config" / "replanner.yaml"
    )
    options = GraphOptions(relic_policy=LaunchConfiguration("relic_policy").perform(context), params_file=params_file)
    graph = build_graph("relic_nav", options)
    return [
        Node(
            package="mfrl",
            executable=spec.executable,
            name=spec.name,
            parameters=[str(graph.params_file), dict(spec.parameters)],
            remappings=list(spec.remappings),
            output="screen",
        )
        for spec in graph.nodes
    ]


def generate_launch_description() -> LaunchDescription:
    """The launch arguments, then the graph's nodes (built once the arguments are known)."""
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])

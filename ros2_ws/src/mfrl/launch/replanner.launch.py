"""ros2 launch mfrl replanner.launch.py [mode:=sim|vehicle|external] [vehicle_url:=URL] [checkpoint:=FILE] ...

The replanning graph: the replanner, and with `mode:=sim` the MuJoCo quadrotor and the tracker in
simulated time; with `mode:=vehicle` the `px4_bridge` node flies the trajectory on a PX4 vehicle over
MAVLink (`vehicle_url`, e.g. /dev/ttyTHS1:921600 or udpin:0.0.0.0:14540). The nodes, their names,
parameters and remappings come from the graph declared once in `mfrl_graph.graph` (the top-level
`launch/` of the repository), which the pip-only runner
(`mfrl-launch replanner`) reads as well.
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
    "mode": (
        "sim",
        "sim: MuJoCo quadrotor + tracker (sim time); vehicle: PX4 over MAVLink; external: odom comes from elsewhere",
    ),
    "vehicle_url": ("", "mode:=vehicle: MAVLink URL of the PX4 vehicle (empty: px4_bridge's vehicle_url parameter)"),
    "checkpoint": ("", "policy checkpoint of the replanner (empty: the one shipped with mfplan)"),
    "controller": ("se3", "mode:=sim: se3 (geometric tracker) or policy (a learned controller, policy_controller)"),
    "controller_checkpoint": ("", "controller:=policy: policyopt checkpoint (empty: the shipped MDPO controller)"),
    "params_file": ("", "YAML parameter file (empty: this package's config/replanner.yaml)"),
    "viewer": ("true", "publish the planned path and speed-coloured markers for viewers"),
    "real_time_factor": ("1.0", "simulation pace (0: as fast as the controller answers)"),
    "foxglove": ("false", "stream the scene to Foxglove (foxglove-sdk) on ws://127.0.0.1:8765"),
}


def _flag(context: LaunchContext, name: str) -> bool:
    value = LaunchConfiguration(name).perform(context).strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise ValueError(f"launch argument {name}:={value!r} must be true or false")
    return value in ("true", "1")


def _nodes(context: LaunchContext) -> list[Node]:
    params_file = LaunchConfiguration("params_file").perform(context) or str(
        Path(get_package_share_directory("mfrl")) / "config" / "replanner.yaml"
    )
    options = GraphOptions(
        mode=LaunchConfiguration("mode").perform(context).strip().lower(),
        vehicle_url=LaunchConfiguration("vehicle_url").perform(context),
        checkpoint=LaunchConfiguration("checkpoint").perform(context),
        controller=LaunchConfiguration("controller").perform(context).strip().lower(),
        controller_checkpoint=LaunchConfiguration("controller_checkpoint").perform(context),
        params_file=params_file,
        viewer=_flag(context, "viewer"),
        real_time_factor=float(LaunchConfiguration("real_time_factor").perform(context)),
        foxglove=_flag(context, "foxglove"),
    )
    graph = build_graph("replanner", options)
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

"""The node graphs of the stack, declared once: which executables run, under what names, with which parameters.

A graph is plain data (`GraphSpec`). The ROS 2 launch file turns each `NodeSpec` into a
`launch_ros.actions.Node`; the pip-only runner turns it into a process `python -m mfrl.<executable>`
with the same `--ros-args`. Parameters come from the package's YAML file first, then the values
given here (launch arguments), as in `ros2 launch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROS_PACKAGE = "mfrl"
PARAMS_FILE_NAME = "replanner.yaml"
SOURCE_PACKAGE_DIR = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / ROS_PACKAGE
"""The ROS package in this repository (the runner reads its config from here when it is not installed)."""

GRAPH_NAMES = ("replanner", "demo", "relic_nav")
MODES = ("sim", "vehicle", "external")
CONTROLLERS = ("se3", "policy")
"""The simulated vehicle's controller: the geometric SE(3) `tracker`, or a learned `policy_controller`."""
SHIPPED_CONTROLLER = "mdpo_tracking.pt"
"""The learned controller flown by default (learning/policyopt/checkpoints/)."""


def shipped_controller_checkpoint() -> Path:
    """The path of the shipped learned tracking controller."""
    import policyopt  # the package only (no torch import)

    return Path(policyopt.__file__).resolve().parent / "checkpoints" / SHIPPED_CONTROLLER


"""Where odometry comes from: the MuJoCo simulator, a PX4 vehicle through `px4_bridge`, or another node."""

ParameterValue = bool | int | float | str | list[float] | list[str]


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph.

    Attributes:
        name: the node's name in the graph.
        executable: the executable of the `mfrl` package (also the module `mfrl.<executable>`).
        parameters: parameter values set on top of the YAML file.
        remappings: (from, to) topic remappings.
        ends_graph: when this node exits on its own, the graph is done (the runner stops the others).
    """

    name: str
    executable: str
    parameters: dict[str, ParameterValue] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    ends_graph: bool = False


@dataclass(frozen=True)
class GraphSpec:
    """A graph: its nodes and the parameter file every node reads."""

    name: str
    nodes: tuple[NodeSpec, ...]
    params_file: Path

    def node(self, name: str) -> NodeSpec:
        """The node called `name`."""
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(f"graph {self.name!r} has no node {name!r}; it has {[n.name for n in self.nodes]}")


@dataclass(frozen=True)
class GraphOptions:
    """What a user chooses when starting a graph (the launch file's arguments).

    Attributes:
        mode: "sim": MuJoCo quadrotor and tracker in the loop (sim time); "vehicle": a PX4 vehicle over MAVLink
            through `px4_bridge` (wall time); "external": only the replanner (something else supplies `odom`).
        vehicle_url: vehicle mode: the MAVLink link URL of the PX4 vehicle (empty: the bridge's parameter).
        controller: sim mode: "se3" (the geometric tracker) or "policy" (a learned policy, `policy_controller`).
        controller_checkpoint: controller "policy": a policyopt checkpoint (empty: the shipped MDPO controller).
        checkpoint: policy checkpoint of the replanner (empty: the shipped one).
        params_file: YAML parameter file (empty: the package's `config/replanner.yaml`).
        viewer: publish the viewer topics (nav_msgs/Path, markers).
        real_time_factor: pace of the simulation (0: as fast as the controller answers).
        foxglove: stream the scene to Foxglove (foxglove-sdk) on ws://127.0.0.1:`foxglove_port`.
        foxglove_port: its port.
        course: demo only: the mission's waypoints, flat x, y, z list.
        replan_count: demo only: how many times waypoints move in flight.
        bag_dir: demo only: where the bag recorder writes (empty: no recorder).
        results_file: demo only: the mission's JSON results.
        mission_timeout_s: demo only: wall-clock limit of the mission.
        relic_policy: relic_nav only: the ReLIC policy file of `relic_nav` (empty: the node's default, the
            shipped learning/relicrl/checkpoints/objectnav3d_policy.pt).
    """

    mode: str = "sim"
    vehicle_url: str = ""
    controller: str = "se3"
    controller_checkpoint: str = ""
    checkpoint: str = ""
    params_file: str = ""
    viewer: bool = True
    real_time_factor: float = 1.0
    foxglove: bool = False
    foxglove_port: int = 8765
    course: tuple[float, ...] = ()
    replan_count: int = 3
    bag_dir: str = ""
    results_file: str = ""
    mission_timeout_s: float = 180.0
    relic_policy: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: the modes are {', '.join(MODES)}")
        if self.controller not in CONTROLLERS:
            raise ValueError(f"controller={self.controller!r}: the controllers are {', '.join(CONTROLLERS)}")
        if self.controller != "se3" and self.mode != "sim":
            raise ValueError(
                f"controller={self.controller!r} needs mode sim (in mode {self.mode!r} the vehicle's own "
                "controller, PX4's, follows the trajectory)"
            )

    @property
    def sim(self) -> bool:
        """Simulation in the loop (sim time)."""
        return self.mode == "sim"


def default_params_file() -> Path:
    """The package's parameter file: in this repository's ROS package, else where ROS's index installed it."""
    source = SOURCE_PACKAGE_DIR / "config" / PARAMS_FILE_NAME
    if source.is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(ROS_PACKAGE)) / "config" / PARAMS_FILE_NAME
    except (ImportError, LookupError, OSError, ValueError):
        return source


def build_graph(name: str, options: GraphOptions | None = None) -> GraphSpec:
    """The graph `name` (one of `GRAPH_NAMES`) for the given options."""
    options = options or GraphOptions()
    if name not in GRAPH_NAMES:
        raise ValueError(f"unknown graph {name!r}; the graphs are {', '.join(GRAPH_NAMES)}")
    if name == "relic_nav":
        return relic_nav_graph(options)
    sim_time: dict[str, ParameterValue] = {"use_sim_time": options.sim}
    replanner_params: dict[str, ParameterValue] = {**sim_time, "publish_viewer_topics": options.viewer}
    if options.checkpoint:
        replanner_params["checkpoint"] = options.checkpoint
    nodes = [NodeSpec("replanner", "replanner", replanner_params)]
    if options.sim:
        nodes.append(NodeSpec("quadrotor_sim", "quadrotor_sim", {"real_time_factor": options.real_time_factor}))
        if options.controller == "policy":
            # Named `tracker`: the learned controller takes the tracker's place (its topics, its recorded reference).
            checkpoint = options.controller_checkpoint or str(shipped_controller_checkpoint())
            controller: dict[str, ParameterValue] = {**sim_time, "checkpoint": checkpoint}
            nodes.append(NodeSpec("tracker", "policy_controller", controller))
        else:
            nodes.append(NodeSpec("tracker", "tracker", dict(sim_time)))
    if options.mode == "vehicle":
        # An operator arms and takes off (px4_bridge's services); a plan that arrives in the air is then flown.
        bridge: dict[str, ParameterValue] = {"offboard_on_trajectory": True}
        if options.vehicle_url:
            bridge["vehicle_url"] = options.vehicle_url
        nodes.append(NodeSpec("px4_bridge", "px4_bridge", bridge))
    if options.foxglove:
        nodes.append(NodeSpec("foxglove_view", "foxglove_view", {**sim_time, "port": options.foxglove_port}))
    if name == "demo":
        if options.mode == "external":
            raise ValueError("the demo graph needs a vehicle: mode sim or vehicle")
        if len(options.course) < 6:
            raise ValueError("the demo graph needs a course of at least two waypoints")
        mission: dict[str, Any] = {
            **sim_time,
            "course": [float(v) for v in options.course],
            "replan_count": options.replan_count,
            "results_file": options.results_file,
            "timeout_s": options.mission_timeout_s,
            "path_subscribers": 2 if options.bag_dir else 1,  # the recorder must not miss the first plan
            "trajectory_subscribers": 2 if options.bag_dir else 1,  # the controller, and the recorder
        }
        nodes.append(
            NodeSpec(
                "waypoint_mission", "waypoint_mission", mission, (("replanner_status", "/replanner/status"),), True
            )
        )
        if options.bag_dir:
            nodes.append(NodeSpec("bag_recorder", "bag_recorder", {**sim_time, "output_dir": options.bag_dir}))
    params_file = Path(options.params_file) if options.params_file else default_params_file()
    return GraphSpec(name=name, nodes=tuple(nodes), params_file=params_file)


def relic_nav_graph(options: GraphOptions) -> GraphSpec:
    """ReLIC in-context navigation: `relic_world` (relicnav's ObjectNav3D) in lock step with `relic_nav`.

    Wall time. Of the options, `relic_policy` and `params_file` apply; a vehicle mode or a course is refused
    (the graph has its own simulated world and no mission); the quadrotor options are not used.
    """
    if options.mode != "sim":
        raise ValueError(f"the relic_nav graph runs its own simulated world: mode sim, not {options.mode!r}")
    if options.course:
        raise ValueError("the relic_nav graph takes no course (its episodes come from the ObjectNav3D world)")
    nav: dict[str, ParameterValue] = {"policy_file": options.relic_policy} if options.relic_policy else {}
    nav_node = NodeSpec("relic_nav", "relic_nav", nav)
    world = NodeSpec("relic_world", "relic_world", {"nav_node": nav_node.name})
    params_file = Path(options.params_file) if options.params_file else default_params_file()
    return GraphSpec(name="relic_nav", nodes=(nav_node, world), params_file=params_file)


def ros_arguments(spec: NodeSpec, params_file: Path) -> list[str]:
    """The `--ros-args` of a node, as the runner passes them (the launch file passes the same through launch_ros)."""
    args = ["--ros-args", "-r", f"__node:={spec.name}", "--params-file", str(params_file)]
    for key, value in spec.parameters.items():
        args += ["-p", f"{key}:={_yaml_value(value)}"]
    for source, target in spec.remappings:
        args += ["-r", f"{source}:={target}"]
    return args


def _yaml_value(value: ParameterValue) -> str:
    """A parameter value as `-p` reads it (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    return repr(value)

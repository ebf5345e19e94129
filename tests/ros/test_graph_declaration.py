"""The graph declaration, the launch file and the ROS package agree: every node, executable and parameter exists."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mfrl.configs import NODE_CONFIGS, ConfigError, ReplannerConfig, parameter_names
from mfrl_graph.graph import GRAPH_NAMES, SOURCE_PACKAGE_DIR, GraphOptions, build_graph, ros_arguments

LAUNCH_FILE = SOURCE_PACKAGE_DIR / "launch" / "replanner.launch.py"
RELIC_LAUNCH_FILE = SOURCE_PACKAGE_DIR / "launch" / "relic_nav.launch.py"
ROS_OWN_PARAMETERS = {"use_sim_time"}
OPTIONS = [
    GraphOptions(),
    GraphOptions(mode="external", checkpoint="policy.pt", viewer=False, foxglove=True),
    GraphOptions(course=(0, 0, 1, 2, 0, 1), bag_dir="bag", results_file="r.json"),
    GraphOptions(mode="vehicle", vehicle_url="udpin:0.0.0.0:14540"),
    GraphOptions(controller="policy", controller_checkpoint="controller.pt"),
]
RELIC_OPTIONS = [GraphOptions(), GraphOptions(relic_policy="relic.pt")]
"""The relic_nav graph takes only these options (its own world; no vehicle, no course)."""


def _setup_executables() -> set[str]:
    """The executables setup.py installs (its EXECUTABLES tuple)."""
    tree = ast.parse((SOURCE_PACKAGE_DIR / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "EXECUTABLES" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no EXECUTABLES")


def _graphs() -> list[tuple[str, GraphOptions]]:
    graphs = []
    for name in GRAPH_NAMES:
        if name == "relic_nav":
            graphs += [(name, options) for options in RELIC_OPTIONS]
        else:
            graphs += [(name, options) for options in OPTIONS if name == "replanner" or options.course]
    return graphs


@pytest.mark.parametrize(("name", "options"), _graphs())
def test_every_node_executable_and_parameter_exists(name: str, options: GraphOptions) -> None:
    graph = build_graph(name, options)
    executables = _setup_executables()
    for spec in graph.nodes:
        assert spec.executable in executables, f"{spec.executable} is not installed by setup.py"
        module = importlib.import_module(f"mfrl.{spec.executable}")
        assert callable(module.main)
        unknown = set(spec.parameters) - parameter_names(spec.executable) - ROS_OWN_PARAMETERS
        assert not unknown, f"{spec.name}: parameters {unknown} are not declared by {spec.executable}"
    assert graph.params_file.is_file()


def test_parameter_file_names_only_declared_parameters_of_graph_nodes() -> None:
    data = yaml.safe_load((SOURCE_PACKAGE_DIR / "config" / "replanner.yaml").read_text())
    for node_name, section in data.items():
        assert node_name in NODE_CONFIGS, f"{node_name} is no executable of the package"
        unknown = set(section["ros__parameters"]) - parameter_names(node_name)
        assert not unknown, f"{node_name}: {unknown} not declared"
        config_cls = NODE_CONFIGS[node_name]
        config_cls(**section["ros__parameters"])  # the file's values pass the node's validation


@pytest.mark.parametrize(
    ("launch_file", "graph", "required"),
    [
        (LAUNCH_FILE, "replanner", {"mode", "vehicle_url", "checkpoint", "params_file", "viewer"}),
        (RELIC_LAUNCH_FILE, "relic_nav", {"relic_policy", "params_file"}),
    ],
)
def test_launch_file_arguments_are_graph_options_and_it_reads_the_declaration(
    launch_file: Path, graph: str, required: set[str]
) -> None:
    source = launch_file.read_text()
    tree = ast.parse(source)
    arguments = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets)
    )
    option_fields = {f.name for f in dataclasses.fields(GraphOptions)}
    assert required <= set(arguments)
    assert set(arguments) <= option_fields
    assert f'build_graph("{graph}"' in source
    assert "launch_ros.actions import Node" in source


def test_invalid_parameter_is_refused_with_its_name() -> None:
    with pytest.raises(ConfigError, match="samples_per_segment"):
        ReplannerConfig(samples_per_segment=0)
    with pytest.raises(ConfigError, match="frame_id"):
        ReplannerConfig(frame_id="")


def test_ros_arguments_carry_name_params_file_parameters_and_remappings() -> None:
    graph = build_graph("demo", OPTIONS[2])
    mission = graph.node("waypoint_mission")
    args = ros_arguments(mission, graph.params_file)
    assert args[:3] == ["--ros-args", "-r", "__node:=waypoint_mission"]
    assert "course:=[0.0, 0.0, 1.0, 2.0, 0.0, 1.0]" in args
    assert "replanner_status:=/replanner/status" in args


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("colcon", path=str(Path(sys.executable).parent)) is None, reason="colcon missing")
def test_colcon_build_installs_what_ros2_launch_needs(tmp_path: Path) -> None:
    colcon = shutil.which("colcon", path=str(Path(sys.executable).parent))
    assert colcon is not None
    env = {**os.environ, "AMENT_PREFIX_PATH": sys.prefix}
    completed = subprocess.run(
        [colcon, "--log-base", str(tmp_path / "log"), "build", "--build-base", str(tmp_path / "build"),
         "--install-base", str(tmp_path / "install")],
        cwd=SOURCE_PACKAGE_DIR.parents[1], env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    install = tmp_path / "install" / "mfrl"
    for spec in (*build_graph("demo", OPTIONS[2]).nodes, *build_graph("relic_nav", RELIC_OPTIONS[0]).nodes):
        assert (install / "lib" / "mfrl" / spec.executable).is_file(), f"ros2 run cannot find {spec.executable}"
    assert (install / "share" / "mfrl" / "launch" / "replanner.launch.py").is_file()
    assert (install / "share" / "mfrl" / "launch" / "relic_nav.launch.py").is_file()
    assert (install / "share" / "mfrl" / "config" / "replanner.yaml").is_file()
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "mfrl").is_file()

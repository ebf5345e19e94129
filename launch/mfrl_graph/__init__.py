"""The MFRL node graphs, declared once, and the runner that starts them without a ROS 2 install.

`mfrl_graph.graph` declares the nodes (executables, names, parameters, remappings) of each graph;
`ros2_ws/src/mfrl/launch/replanner.launch.py` (a real ROS 2 launch file) and the `mfrl-launch`
runner both build their processes from it. Nothing here imports rclpy.
"""

from mfrl_graph.graph import GRAPH_NAMES, GraphOptions, GraphSpec, NodeSpec, build_graph

__all__ = ["GRAPH_NAMES", "GraphOptions", "GraphSpec", "NodeSpec", "build_graph"]

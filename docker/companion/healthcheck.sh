#!/usr/bin/env bash
# Container health: every node named in MFRL_HEALTH_NODES (default: replanner px4_bridge) is in the ROS graph.
set -euo pipefail
nodes="$(timeout 15 ros2 node list --no-daemon --spin-time 5)"
for name in ${MFRL_HEALTH_NODES:-replanner px4_bridge}; do
    if ! grep -qx "/${name}" <<<"$nodes"; then
        echo "healthcheck: node /${name} is not running (graph has: $(echo "$nodes" | tr '\n' ' '))" >&2
        exit 1
    fi
done

#!/usr/bin/env bash
# Companion image entrypoint: start the flight graph, or run the command given instead.
#   docker run ... mfrl-stack:companion                          # ros2 launch ... mode:=vehicle
#   docker run ... mfrl-stack:companion use_sim_time:=false ...  # extra launch arguments (NAME:=VALUE)
#   docker run ... mfrl-stack:companion px4link preflight --url /dev/ttyTHS1:921600   # any command
# Environment: VEHICLE_URL (the bridge's link URL, default /dev/ttyTHS1:921600), ROS_DOMAIN_ID,
# MFRL_LAUNCH_ARGS (extra launch arguments, space separated; the systemd unit's env file sets them).
set -euo pipefail

export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:-/opt/mfrl/ros2_install:/opt/mfrl/venv}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-0}"
VEHICLE_URL="${VEHICLE_URL:-/dev/ttyTHS1:921600}"
mkdir -p "${ROS_LOG_DIR:-/var/lib/mfrl/ros_logs}"

# A command (anything that is not a launch argument NAME:=VALUE) runs instead of the flight graph.
if [ "$#" -gt 0 ] && [[ "$1" != *":="* ]]; then
    exec "$@"
fi

# A serial link needs its device passed in (docker run --device): say so instead of failing deep in the bridge.
case "$VEHICLE_URL" in
    /dev/*|serial://*)
        device="${VEHICLE_URL#serial://}"
        device="${device%%\?*}"
        device="${device%:*}"
        if [ ! -e "$device" ]; then
            echo "entrypoint: serial device $device (from VEHICLE_URL=$VEHICLE_URL) is not in the container;" \
                 "pass it with --device $device" >&2
            exit 66
        fi
        ;;
esac

# shellcheck disable=SC2086  # MFRL_LAUNCH_ARGS is a space-separated list of NAME:=VALUE words
exec ros2 launch mfrl replanner.launch.py mode:=vehicle "vehicle_url:=${VEHICLE_URL}" ${MFRL_LAUNCH_ARGS:-} "$@"

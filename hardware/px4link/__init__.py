"""PX4 over MAVLink (pymavlink, no ROS imports): link, commands, offboard streaming, telemetry, failsafes."""

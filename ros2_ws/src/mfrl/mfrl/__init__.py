"""ROS 2 nodes of the MFRL stack: replanner, MuJoCo quadrotor simulator, tracker, demo mission and bag recorder.

Thin wrappers: parameters, message conversions and QoS live here; every algorithm lives in the
libraries (`mfplan`, `minsnap`, `quadsim`).
"""

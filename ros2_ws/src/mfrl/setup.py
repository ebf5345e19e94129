"""ament_python package `mfrl`: one node per module, executables installed to lib/mfrl (see setup.cfg)."""

from glob import glob

from setuptools import setup

PACKAGE = "mfrl"
EXECUTABLES = (
    "replanner",
    "quadrotor_sim",
    "tracker",
    "waypoint_mission",
    "bag_recorder",
    "latency_probe",
    "foxglove_view",
    "px4_bridge",
    "policy_controller",
    "relic_nav",
    "relic_world",
)

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="mfrl-stack maintainers",
    maintainer_email="mfrl-stack@example.org",
    description="MFRL replanning graph: replanner, MuJoCo quadrotor simulator, SE(3) tracker.",
    license="Apache-2.0",
    entry_points={"console_scripts": [f"{name} = {PACKAGE}.{name}:main" for name in EXECUTABLES]},
)

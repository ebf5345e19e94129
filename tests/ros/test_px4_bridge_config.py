"""The px4_bridge node's parameters become the bridge's settings: the geofence's shape, and refusals that say why."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="the ROS 2 wheels (extra `ros`) are not installed")

from mfrl.configs import Px4BridgeNodeConfig
from mfrl.px4_bridge import bridge_config
from px4link.config import BoxGeofence, CylinderGeofence


def test_the_default_geofence_is_the_box_of_the_parameters() -> None:
    fence = bridge_config(Px4BridgeNodeConfig()).failsafes.geofence
    assert fence == BoxGeofence((-50.0, -50.0, -1.0), (50.0, 50.0, 30.0))


def test_a_radius_makes_it_a_cylinder_with_the_boxs_floor_and_ceiling() -> None:
    config = Px4BridgeNodeConfig(geofence_radius_m=20.0, geofence_center_enu_m=[3.0, -4.0])
    fence = bridge_config(config).failsafes.geofence
    assert fence == CylinderGeofence((3.0, -4.0), 20.0, -1.0, 30.0)
    assert fence.contains((3.0, 15.0, 5.0))
    assert not fence.contains((3.0, 16.5, 5.0))
    assert not fence.contains((3.0, -4.0, 31.0))


def test_empty_corners_turn_the_geofence_off() -> None:
    assert bridge_config(Px4BridgeNodeConfig(geofence_min_enu_m=[], geofence_max_enu_m=[])).failsafes.geofence is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"geofence_radius_m": -1.0}, "geofence_radius_m"),
        ({"geofence_radius_m": 10.0, "geofence_min_enu_m": [], "geofence_max_enu_m": []}, "geofence is off"),
        ({"geofence_center_enu_m": [1.0]}, "geofence_center_enu_m"),
    ],
)
def test_bad_geofence_parameters_are_refused_with_the_reason(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Px4BridgeNodeConfig(**changes)  # type: ignore[arg-type]


def test_the_nodes_defaults_are_the_librarys() -> None:
    from px4link.config import BridgeConfig

    library, node = BridgeConfig(), bridge_config(Px4BridgeNodeConfig())
    assert node.link.url == library.link.url
    assert node.offboard == library.offboard
    assert node.preflight == library.preflight
    assert node.takeoff_altitude_m == library.takeoff_altitude_m
    library_failsafes = {k: v for k, v in vars(library.failsafes).items() if k != "geofence"}
    assert {k: v for k, v in vars(node.failsafes).items() if k != "geofence"} == library_failsafes


@pytest.mark.parametrize(
    ("changes", "accepted"),
    [
        ({"link_loss_s": 20.0}, True),  # the node allowed only up to 10 s while the bridge allows 30
        ({"link_loss_s": 31.0}, False),
        ({"setpoint_rate_hz": 10.0}, False),
        ({"battery_low_fraction": 0.1, "battery_critical_fraction": 0.2}, False),
    ],
)
def test_the_libraries_ranges_are_the_nodes(changes: dict[str, object], accepted: bool) -> None:
    from px4link.config import FailsafeConfig, OffboardConfig

    def library_accepts() -> bool:
        try:
            FailsafeConfig(**{k: v for k, v in changes.items() if k in vars(FailsafeConfig())})  # type: ignore[arg-type]
            if "setpoint_rate_hz" in changes:
                OffboardConfig(rate_hz=changes["setpoint_rate_hz"])  # type: ignore[arg-type]
        except ValueError:
            return False
        return True

    assert library_accepts() == accepted
    if accepted:
        Px4BridgeNodeConfig(**changes)  # type: ignore[arg-type]
    else:
        with pytest.raises(ValueError, match="px4_bridge parameters are invalid"):
            Px4BridgeNodeConfig(**changes)  # type: ignore[arg-type]

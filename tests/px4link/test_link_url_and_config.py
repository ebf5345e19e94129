"""Link URLs and configuration: good forms parse, bad ones raise errors that say what would be right."""

from __future__ import annotations

import pytest

from px4link.config import BoxGeofence, BridgeConfigError, CylinderGeofence, FailsafeConfig, LinkConfig, OffboardConfig
from px4link.link_url import LinkUrl, LinkUrlError, parse_link_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/dev/ttyACM0:921600", LinkUrl("serial", device="/dev/ttyACM0", baud=921600)),
        ("serial:///dev/ttyUSB0?baud=57600", LinkUrl("serial", device="/dev/ttyUSB0", baud=57600)),
        ("udpin:0.0.0.0:14540", LinkUrl("udpin", host="0.0.0.0", port=14540)),
        ("udpout:127.0.0.1:14580", LinkUrl("udpout", host="127.0.0.1", port=14580)),
        ("tcp:192.168.1.5:5760", LinkUrl("tcp", host="192.168.1.5", port=5760)),
        ("udpin://0.0.0.0:14540", LinkUrl("udpin", host="0.0.0.0", port=14540)),
    ],
)
def test_accepted_forms(url: str, expected: LinkUrl) -> None:
    assert parse_link_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("bluetooth:xx", "unknown link URL"),
        ("udpin:14540", "HOST:PORT"),
        ("udpout:127.0.0.1:notaport", "not a number"),
        ("tcp:127.0.0.1:70000", "outside 1..65535"),
        ("/dev/ttyACM0", "needs a baud rate"),
        ("/dev/ttyACM0:12345", "not one of"),
        ("serial:///dev/ttyUSB0", "needs ?baud"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(LinkUrlError, match=message.replace("?", r"\?")):
        parse_link_url(url)


def test_config_refuses_rates_below_20_hz_and_short_priming() -> None:
    with pytest.raises(BridgeConfigError, match="rate_hz"):
        OffboardConfig(rate_hz=10.0)
    with pytest.raises(BridgeConfigError, match="priming_s"):
        OffboardConfig(priming_s=0.5)
    with pytest.raises(LinkUrlError):
        LinkConfig(url="nonsense")
    with pytest.raises(BridgeConfigError, match="must differ"):
        LinkConfig(component_id=1)
    with pytest.raises(BridgeConfigError, match="link_loss_action"):
        FailsafeConfig(link_loss_action="explode")  # type: ignore[arg-type]


def test_geofences_contain_what_they_should() -> None:
    box = BoxGeofence((-1.0, -2.0, 0.0), (1.0, 2.0, 3.0))
    assert box.contains((0.0, 0.0, 1.0))
    assert not box.contains((0.0, 2.5, 1.0))
    assert not box.contains((0.0, 0.0, -0.1))
    cylinder = CylinderGeofence((1.0, 1.0), 2.0, 0.0, 5.0)
    assert cylinder.contains((2.0, 2.0, 1.0))
    assert not cylinder.contains((3.0, 3.0, 1.0))
    assert not cylinder.contains((1.0, 1.0, 6.0))
    with pytest.raises(BridgeConfigError, match="min must be < max"):
        BoxGeofence((0.0, 0.0, 0.0), (0.0, 1.0, 1.0))

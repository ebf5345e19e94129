"""Link addresses as URLs: serial with a baud rate, UDP (listen or send), TCP; parsed with a clear error.

Accepted forms:
    /dev/ttyACM0:921600            serial device and baud rate (the usual way to reach PX4's TELEM2)
    serial:///dev/ttyUSB0?baud=57600
    udpin:0.0.0.0:14540            listen; replies go to the last sender (the vehicle)
    udpout:127.0.0.1:14580         send to a fixed address; the vehicle replies to our source port
    tcp:127.0.0.1:5760             connect to a TCP server
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Literal

LinkKind = Literal["serial", "udpin", "udpout", "tcp"]

STANDARD_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 921600, 1000000, 1500000, 2000000, 3000000)
_EXAMPLES = (
    "/dev/ttyACM0:921600 or serial:///dev/ttyUSB0?baud=57600, udpin:0.0.0.0:14540, udpout:HOST:PORT, tcp:HOST:PORT"
)


class LinkUrlError(ValueError):
    """A link URL that cannot be used; the message says what was wrong and shows the accepted forms."""


@dataclass(frozen=True)
class LinkUrl:
    """A parsed link address."""

    kind: LinkKind
    host: str = ""
    port: int = 0
    device: str = ""
    baud: int = 0

    def __str__(self) -> str:
        if self.kind == "serial":
            return f"{self.device}:{self.baud}"
        return f"{self.kind}:{self.host}:{self.port}"


def parse_link_url(url: str) -> LinkUrl:
    """Parse a link URL (see the module docstring); raises LinkUrlError with the accepted forms."""
    text = url.strip()
    if not text:
        raise LinkUrlError(f"empty link URL; use {_EXAMPLES}")
    if text.startswith("serial:"):
        return _parse_serial_query(text)
    if text.startswith("/dev/") or text.startswith("COM"):
        return _parse_serial_colon(text)
    scheme, sep, rest = text.partition(":")
    if not sep or scheme not in ("udpin", "udpout", "tcp", "udp"):
        raise LinkUrlError(f"unknown link URL {url!r}; use {_EXAMPLES}")
    kind: LinkKind = "udpin" if scheme == "udp" else scheme  # type: ignore[assignment]
    host, sep, port_text = rest.lstrip("/").rpartition(":")
    if not sep or not host:
        raise LinkUrlError(f"link URL {url!r} needs HOST:PORT after {scheme}:, e.g. {scheme}:127.0.0.1:14540")
    return LinkUrl(kind=kind, host=host, port=_port(port_text, url))


def _port(text: str, url: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise LinkUrlError(f"link URL {url!r}: port {text!r} is not a number") from None
    if not 0 < port < 65536:
        raise LinkUrlError(f"link URL {url!r}: port {port} is outside 1..65535")
    return port


def _baud(text: str, url: str) -> int:
    try:
        baud = int(text)
    except ValueError:
        raise LinkUrlError(f"link URL {url!r}: baud rate {text!r} is not a number") from None
    if baud not in STANDARD_BAUDS:
        raise LinkUrlError(f"link URL {url!r}: baud rate {baud} is not one of {STANDARD_BAUDS}")
    return baud


def _parse_serial_colon(url: str) -> LinkUrl:
    device, sep, baud_text = url.rpartition(":")
    if not sep or not device:
        raise LinkUrlError(f"serial link URL {url!r} needs a baud rate, e.g. /dev/ttyACM0:921600")
    return LinkUrl(kind="serial", device=device, baud=_baud(baud_text, url))


def _parse_serial_query(url: str) -> LinkUrl:
    parsed = urllib.parse.urlparse(url)
    device = parsed.path
    if not device:
        raise LinkUrlError(f"serial link URL {url!r} has no device, e.g. serial:///dev/ttyUSB0?baud=57600")
    query = urllib.parse.parse_qs(parsed.query)
    if "baud" not in query:
        raise LinkUrlError(f"serial link URL {url!r} needs ?baud=RATE, e.g. serial:///dev/ttyUSB0?baud=57600")
    return LinkUrl(kind="serial", device=device, baud=_baud(query["baud"][0], url))

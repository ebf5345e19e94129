"""The vehicle's end of a MAVLink link: UDP datagrams to and from a peer named by a URL.

`udpout:HOST:PORT` sends to HOST:PORT from an ephemeral port (as PX4 SITL sends to 14540 for an
offboard computer); `udpin:HOST:PORT` listens there and answers whoever last sent a datagram.
"""

from __future__ import annotations

import contextlib
import select
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkUrl:
    """A parsed link URL."""

    kind: str
    host: str
    port: int


def parse_url(url: str) -> LinkUrl:
    """Parse `udpout:HOST:PORT` or `udpin:HOST:PORT`; ValueError says what is accepted."""
    parts = url.split(":")
    if len(parts) != 3 or parts[0] not in ("udpout", "udpin") or not parts[2].isdigit():
        raise ValueError(f"link URL {url!r} not understood: use udpout:HOST:PORT or udpin:HOST:PORT")
    port = int(parts[2])
    if not 0 <= port <= 65535:
        raise ValueError(f"link URL {url!r}: port {port} is outside 0..65535")
    return LinkUrl(parts[0], parts[1] or "0.0.0.0", port)


class UdpLink:
    """A UDP socket that sends MAVLink frames to the peer and receives datagrams from it."""

    def __init__(self, url: str) -> None:
        self.url = parse_url(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.peer: tuple[str, int] | None = None
        if self.url.kind == "udpin":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((self.url.host, self.url.port))
        else:
            self.sock.bind(("0.0.0.0", 0))
            self.peer = (self.url.host, self.url.port)

    @property
    def local_port(self) -> int:
        """The port this end is bound to."""
        return int(self.sock.getsockname()[1])

    def send(self, data: bytes) -> None:
        """Send one datagram to the peer (dropped while no peer is known or the peer is unreachable)."""
        if self.peer is None:
            return
        with contextlib.suppress(OSError):
            self.sock.sendto(data, self.peer)

    def receive(self, timeout_s: float) -> list[bytes]:
        """Datagrams that arrive within `timeout_s` (all that are waiting once the first is in)."""
        if timeout_s > 0.0:
            ready, _, _ = select.select([self.sock], [], [], timeout_s)
            if not ready:
                return []
        out: list[bytes] = []
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ICMP port unreachable reported on the socket
                continue
            if self.url.kind == "udpin":
                self.peer = addr
            out.append(data)
        return out

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

"""Byte transports under the MAVLink connection: UDP (listen or send), TCP client, serial (termios, no pyserial).

Each reads with a timeout and writes without blocking for long; a write that cannot go out is counted, not raised,
because a flight link must never stall the setpoint stream. UDP keeps datagram boundaries (`datagram = True`):
the parser restarts at each datagram, so a truncated frame costs only itself.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from typing import Protocol

from px4link.link_url import LinkUrl


class LinkError(OSError):
    """A link could not be opened (port in use, device missing, TCP peer down)."""


class Transport(Protocol):
    """What the connection needs from a link."""

    datagram: bool
    write_failures: int
    drops: int
    """Times the device or connection was lost (and is being reopened)."""

    def read(self, timeout_s: float) -> bytes:
        """Bytes received within `timeout_s` (b"" when none)."""
        ...

    def write(self, data: bytes) -> None:
        """Send bytes; failures are counted in `write_failures`."""
        ...

    def confirm_sender(self) -> None:
        """The last bytes read held a frame of the vehicle (checked and, with signing, verified): reply there."""
        ...

    def close(self) -> None:
        """Release the link."""
        ...


class UdpTransport:
    """UDP: `udpin` binds and replies to the vehicle; `udpout` sends to a fixed address from an ephemeral port.

    With `udpin` the reply address is the sender of the last datagram that held a frame of the vehicle (the
    connection confirms it after parsing, and after the signature verified when signing is on), never merely the
    last sender: one stray or hostile datagram must not redirect the commands away from the vehicle.
    """

    datagram = True

    def __init__(self, url: LinkUrl) -> None:
        self.write_failures = 0
        self.drops = 0  # connectionless: never dropped
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._listen = url.kind == "udpin"
        self._remote: tuple[str, int] | None = None
        self._last_sender: tuple[str, int] | None = None
        try:
            if self._listen:
                self._sock.bind((url.host, url.port))
            else:
                self._remote = (socket.gethostbyname(url.host), url.port)
                self._sock.bind(("0.0.0.0", 0))
        except OSError as exc:
            self._sock.close()
            raise LinkError(f"cannot open UDP link {url}: {exc}") from exc
        self._sock.setblocking(False)

    @property
    def local_port(self) -> int:
        """The bound local port (useful with udpout, whose port is ephemeral)."""
        return int(self._sock.getsockname()[1])

    def read(self, timeout_s: float) -> bytes:
        ready, _, _ = select.select([self._sock], [], [], timeout_s)
        if not ready:
            return b""
        try:
            data, address = self._sock.recvfrom(65535)
        except (BlockingIOError, ConnectionRefusedError, InterruptedError):
            return b""
        except OSError:
            return b""
        if self._listen:
            self._last_sender = address
        return data

    def confirm_sender(self) -> None:
        if self._listen and self._last_sender is not None:
            self._remote = self._last_sender

    def write(self, data: bytes) -> None:
        if self._remote is None:
            self.write_failures += 1  # udpin before the vehicle has spoken: nowhere to send
            return
        try:
            self._sock.sendto(data, self._remote)
        except OSError:
            self.write_failures += 1

    def close(self) -> None:
        self._sock.close()


class TcpTransport:
    """TCP client; a lost connection is re-opened on the next read (at most once a second)."""

    datagram = False

    def __init__(self, url: LinkUrl) -> None:
        self.write_failures = 0
        self.drops = 0
        self._address = (url.host, url.port)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._next_retry_s = 0.0
        try:
            self._sock = socket.create_connection(self._address, timeout=2.0)
        except OSError as exc:
            raise LinkError(f"cannot connect to TCP {url}: {exc}") from exc
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _reconnect(self) -> None:
        now = time.monotonic()
        if now < self._next_retry_s:
            time.sleep(0.05)
            return
        self._next_retry_s = now + 1.0
        try:
            sock = socket.create_connection(self._address, timeout=0.5)
        except OSError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._sock = sock

    def read(self, timeout_s: float) -> bytes:
        sock = self._sock
        if sock is None:
            self._reconnect()
            return b""
        ready, _, _ = select.select([sock], [], [], timeout_s)
        if not ready:
            return b""
        try:
            data = sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            data = b""
        if not data:
            with self._lock:
                self._sock = None
                self.drops += 1
            sock.close()
        return data

    def write(self, data: bytes) -> None:
        with self._lock:
            sock = self._sock
        if sock is None:
            self.write_failures += 1
            return
        try:
            sock.sendall(data)
        except OSError:
            self.write_failures += 1

    def confirm_sender(self) -> None:
        pass  # one peer on the other end: nothing to choose

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


class SerialTransport:
    """A serial device in raw mode at the URL's baud rate (termios; Linux and macOS).

    A hang-up (USB cable out, the flight controller rebooting: reads fail or return end-of-file) closes the
    device; the next reads try to open it again, at most once a second, so the receive thread neither spins
    nor dies, and the link comes back when the device does.
    """

    datagram = False

    def __init__(self, url: LinkUrl) -> None:
        self.write_failures = 0
        self.drops = 0
        self._url = url
        self._lock = threading.Lock()
        self._next_retry_s = 0.0
        self._fd: int | None = _open_serial(url)

    def _hang_up(self, fd: int) -> None:
        with self._lock:
            if self._fd != fd:
                return
            self._fd = None
            self.drops += 1
            self._next_retry_s = time.monotonic() + 1.0
        os.close(fd)

    def _reopen(self, timeout_s: float) -> None:
        now = time.monotonic()
        if now < self._next_retry_s:
            time.sleep(min(timeout_s, self._next_retry_s - now))
            return
        self._next_retry_s = now + 1.0
        try:
            fd = _open_serial(self._url)
        except LinkError:
            return
        with self._lock:
            self._fd = fd

    def read(self, timeout_s: float) -> bytes:
        fd = self._fd
        if fd is None:
            self._reopen(timeout_s)
            return b""
        try:
            ready, _, _ = select.select([fd], [], [], timeout_s)
            if not ready:
                return b""
            data = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return b""
        except (OSError, ValueError):
            self._hang_up(fd)
            return b""
        if not data:  # readable and empty: end of file, the other end hung up
            self._hang_up(fd)
        return data

    def write(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:
            self.write_failures += 1
            return
        try:
            os.write(fd, data)
        except OSError:
            self.write_failures += 1

    def confirm_sender(self) -> None:
        pass  # one peer on the other end: nothing to choose

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            self._next_retry_s = float("inf")  # closed for good: no reopening
        if fd is not None:
            os.close(fd)


def _open_serial(url: LinkUrl) -> int:
    """Open and configure a serial device (raw, the URL's baud rate); raises LinkError."""
    import termios
    import tty

    try:
        fd = os.open(url.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise LinkError(f"cannot open serial device {url.device}: {exc}") from exc
    try:
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        speed = getattr(termios, f"B{url.baud}")
        attrs[4] = attrs[5] = speed
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except (termios.error, AttributeError) as exc:
        os.close(fd)
        raise LinkError(f"cannot set {url.device} to {url.baud} baud: {exc}") from exc
    return fd


def open_transport(url: LinkUrl) -> Transport:
    """Open the transport a parsed URL names; raises LinkError when it cannot."""
    if url.kind in ("udpin", "udpout"):
        return UdpTransport(url)
    if url.kind == "tcp":
        return TcpTransport(url)
    return SerialTransport(url)

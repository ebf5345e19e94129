"""MAVLink 2 message signing on the vehicle's side: check incoming signatures and refuse replays.

A signed frame ends with a 13-byte block: link id, a 48-bit timestamp (10 us units since
2015-01-01) and the first 6 bytes of SHA-256(secret key + frame up to the timestamp). A frame is
accepted when its signature matches and its timestamp is newer than the last accepted one of the
same stream (link id, system, component); a new stream must be no more than a minute old. The
stream's timestamp only moves after the signature checked out, so a forged frame cannot poison it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

MAVLINK_IFLAG_SIGNED = 0x01
SIGNATURE_BLOCK_LEN = 13
_EPOCH_2015_S = 1420070400
_NEW_STREAM_WINDOW = 60 * 100_000  # one minute in 10 us units


def signing_timestamp_now() -> int:
    """The current MAVLink signing timestamp (10 us units since 2015-01-01 UTC)."""
    return int((time.time() - _EPOCH_2015_S) * 100_000)


@dataclass
class SignatureCounters:
    """What the verifier saw."""

    accepted: int = 0
    unsigned: int = 0
    bad_signature: int = 0
    replayed: int = 0

    @property
    def rejected(self) -> int:
        """Frames refused for any reason."""
        return self.unsigned + self.bad_signature + self.replayed


@dataclass
class SignatureVerifier:
    """Checks signed MAVLink 2 frames against one secret key (32 bytes)."""

    secret_key: bytes
    counters: SignatureCounters = field(default_factory=SignatureCounters)
    _streams: dict[tuple[int, int, int], int] = field(default_factory=dict)

    def check(self, frame: bytes) -> bool:
        """True when `frame` (one whole MAVLink frame) is signed with the key and is not a replay."""
        if len(frame) < 12 or frame[0] != 0xFD or not frame[2] & MAVLINK_IFLAG_SIGNED:
            self.counters.unsigned += 1
            return False
        block = frame[-SIGNATURE_BLOCK_LEN:]
        link_id = block[0]
        timestamp = int.from_bytes(block[1:7], "little")
        digest = hashlib.sha256(self.secret_key + frame[:-6]).digest()[:6]
        if digest != block[7:13]:
            self.counters.bad_signature += 1
            return False
        stream = (link_id, frame[5], frame[6])
        last = self._streams.get(stream)
        if last is not None and timestamp <= last:
            self.counters.replayed += 1
            return False
        if last is None and timestamp + _NEW_STREAM_WINDOW < signing_timestamp_now():
            self.counters.replayed += 1
            return False
        self._streams[stream] = timestamp
        self.counters.accepted += 1
        return True

"""MAVLink 2 message signing as the specification says: the key, the checks, the outgoing timestamp, the counters.

A signed frame carries a link id, a 48-bit timestamp (10 us units since 2015-01-01 UTC) and the first 6 bytes of
SHA-256(secret key + frame). A frame is accepted only if its signature matches and its timestamp is newer than the
last one accepted on the same stream (link id, system, component); a stream heard for the first time must be no
more than a minute older than our clock. A replayed frame has an old timestamp and is refused.

Two places where pymavlink differs from the specification are done here as the specification says
(`SpecSigningMAVLink`):

* pymavlink records a frame's timestamp for its stream before it checks the signature, so frames with a wrong key
  and a future timestamp lock every real frame of that stream out until the forged time passes. Here the signature
  is checked first and only a verified frame moves the stream's timestamp.
* pymavlink's outgoing timestamp goes up by one per frame from where it started, so it falls behind real time (by
  about the run time) and a restarted vehicle then refuses every frame as a stale new stream. Here each frame is
  stamped with max(clock, last stamp + 1), and the last stamp can be kept in a file so that a restart on a machine
  with no real-time clock never goes back (the specification's recommendation).

With signing optional (`require=False`) unsigned frames are accepted; a frame that is signed but fails the check
(wrong key, replay, stale stream) is still refused: a wrong signature is never better than none.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymavlink.dialects.v20 import common as mavlink2

from runkit.atomic import write_text_atomic

SIGNING_EPOCH_UNIX_S = 1420070400.0
"""2015-01-01 00:00:00 UTC, the origin of MAVLink signing timestamps."""


class SigningConfigError(ValueError):
    """A signing setting is unusable (key length, link id)."""


@dataclass(frozen=True)
class SigningConfig:
    """How this end signs and which frames it accepts.

    Attributes:
        secret_key_hex: the 32-byte key as 64 hex digits (what PX4 stores and QGroundControl shows); or empty.
        passphrase: a passphrase whose SHA-256 is the key (used when secret_key_hex is empty).
        link_id: this end's link id, sent in every signed frame (0-255).
        require: refuse unsigned frames (counted); False accepts unsigned frames. Wrongly signed, replayed and
            stale frames are refused either way.
        allow_unsigned_msg_ids: message ids accepted unsigned even when signing is required (e.g. 109 RADIO_STATUS).
        timestamp_file: where the last outgoing timestamp is kept across restarts (written atomically every few
            seconds and at close); empty: the clock alone.
    """

    secret_key_hex: str = ""
    passphrase: str = ""
    link_id: int = 0
    require: bool = True
    allow_unsigned_msg_ids: tuple[int, ...] = ()
    timestamp_file: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.link_id <= 255:
            raise SigningConfigError(f"link_id must be in 0..255, got {self.link_id}")
        if not self.secret_key_hex and not self.passphrase:
            raise SigningConfigError("signing needs a key: set secret_key_hex (64 hex digits) or passphrase")
        if self.secret_key_hex:
            try:
                key = bytes.fromhex(self.secret_key_hex)
            except ValueError as exc:
                raise SigningConfigError("secret_key_hex must be hex digits") from exc
            if len(key) != 32:
                raise SigningConfigError(f"secret_key_hex must be 32 bytes (64 hex digits), got {len(key)} bytes")

    def key(self) -> bytes:
        """The 32-byte secret key."""
        return bytes.fromhex(self.secret_key_hex) if self.secret_key_hex else key_from_passphrase(self.passphrase)


def signing_from_key_file(path: str | Path, require: bool = True, timestamp_file: str = "") -> SigningConfig:
    """Signing with the key in a file: 64 hex digits (PX4's key, as provisioned on the vehicle), whitespace ignored.

    `timestamp_file`: where the last outgoing signing timestamp is kept across restarts (empty: the clock alone).
    """
    file = Path(path).expanduser()
    try:
        key_hex = "".join(file.read_text().split())
    except OSError as exc:
        raise SigningConfigError(f"cannot read the signing key file {file}: {exc.strerror or exc}") from exc
    try:
        return SigningConfig(secret_key_hex=key_hex, require=require, timestamp_file=timestamp_file)
    except SigningConfigError as exc:
        raise SigningConfigError(f"signing key file {file}: {exc}") from exc


def key_from_passphrase(passphrase: str) -> bytes:
    """The 32-byte signing key of a passphrase: SHA-256 of its UTF-8 bytes (as MAVProxy's `signing setup`)."""
    if not passphrase:
        raise SigningConfigError("an empty passphrase is not a key")
    return hashlib.sha256(passphrase.encode("utf-8")).digest()


def signing_timestamp_now() -> int:
    """The current signing timestamp: 10 us units since 2015-01-01 UTC."""
    return int((time.time() - SIGNING_EPOCH_UNIX_S) * 100_000)


NEW_STREAM_WINDOW = 60 * 100_000
"""A stream heard for the first time may be at most this much older than our clock (one minute, 10 us units)."""


def read_timestamp_file(path: str | Path) -> int:
    """The timestamp kept in `path` (0 when the file is missing or unreadable: the clock then decides)."""
    try:
        return max(0, int(Path(path).expanduser().read_text().strip()))
    except (OSError, ValueError):
        return 0


class SpecSigningMAVLink(mavlink2.MAVLink):
    """A pymavlink encoder/parser whose signing follows the MAVLink 2 specification (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replayed_count = 0
        self.stale_stream_count = 0
        self._signed_frame_failed = False
        self._timestamp_file: Path | None = None

    def configure(self, config: SigningConfig, sign_outgoing: bool) -> None:
        """Use `config`'s key and link id; sign what is sent when `sign_outgoing`; check what is parsed."""
        signing = self.signing
        signing.secret_key = config.key()
        signing.link_id = config.link_id
        signing.sign_outgoing = sign_outgoing
        self._timestamp_file = Path(config.timestamp_file).expanduser() if config.timestamp_file else None
        kept = read_timestamp_file(self._timestamp_file) + 1 if self._timestamp_file is not None else 0
        signing.timestamp = max(signing_timestamp_now(), kept)
        allowed = frozenset(config.allow_unsigned_msg_ids)

        def allow_unsigned(_mav: Any, msg_id: int) -> bool:
            if self._signed_frame_failed:  # a signed frame that failed its check: never let it through
                self._signed_frame_failed = False
                return False
            return (not config.require) or msg_id in allowed

        signing.allow_unsigned_callback = allow_unsigned

    def check_signature(self, msgbuf: bytearray, srcSystem: int, srcComponent: int) -> bool:
        """True when the frame's signature verifies and its timestamp is fresh for its stream (then recorded)."""
        key = self.signing.secret_key
        assert key is not None
        self._signed_frame_failed = True
        if hashlib.sha256(key + bytes(msgbuf[:-6])).digest()[:6] != bytes(msgbuf[-6:]):
            return False
        link_id = msgbuf[-13]
        timestamp = int.from_bytes(bytes(msgbuf[-12:-6]), "little")
        stream = (link_id, srcSystem, srcComponent)
        last = self.signing.stream_timestamps.get(stream)
        if last is not None and timestamp <= last:
            self.replayed_count += 1
            return False
        if last is None and timestamp + NEW_STREAM_WINDOW < max(self.signing.timestamp, signing_timestamp_now()):
            self.stale_stream_count += 1
            return False
        self.signing.stream_timestamps[stream] = timestamp
        self._signed_frame_failed = False
        return True

    def send(self, mavmsg: Any, force_mavlink1: bool = False) -> None:
        """Stamp the frame with max(clock, last stamp + 1), then sign and send it as pymavlink does."""
        self.signing.timestamp = max(self.signing.timestamp, signing_timestamp_now())
        super().send(mavmsg, force_mavlink1=force_mavlink1)

    def save_timestamp(self) -> None:
        """Keep the next outgoing timestamp in the configured file (nothing without one)."""
        if self._timestamp_file is not None and self.signing.sign_outgoing:
            write_text_atomic(self._timestamp_file, f"{int(self.signing.timestamp)}\n")


def apply_signing(mav: Any, config: SigningConfig, sign_outgoing: bool) -> None:
    """Set up a `SpecSigningMAVLink` to sign what it sends and check what it parses."""
    if not isinstance(mav, SpecSigningMAVLink):
        raise TypeError("signing per the specification needs a SpecSigningMAVLink, not pymavlink's own MAVLink")
    mav.configure(config, sign_outgoing)


@dataclass(frozen=True)
class SigningCounters:
    """What the receive side did with signed and unsigned frames since start.

    Attributes:
        signed_frames: frames that carried a signature.
        good_signatures: signatures that matched with a fresh timestamp.
        bad_signatures: signed frames that failed the check: wrong signature, replayed or stale timestamp.
        replayed: of those, frames whose timestamp was not newer than its stream's last one.
        stale_streams: of those, frames of a new stream more than a minute older than our clock.
        unsigned_accepted: unsigned frames accepted (signing optional, or an allowed message id).
        refused: frames refused (unsigned with signing required, or failing the check).
    """

    signed_frames: int = 0
    good_signatures: int = 0
    bad_signatures: int = 0
    replayed: int = 0
    stale_streams: int = 0
    unsigned_accepted: int = 0
    refused: int = 0


def signing_counters(mav: Any) -> SigningCounters:
    """The counters of a pymavlink parser's signing state."""
    s = mav.signing
    return SigningCounters(
        signed_frames=int(s.sig_count),
        good_signatures=int(s.goodsig_count),
        bad_signatures=int(s.badsig_count),
        replayed=int(getattr(mav, "replayed_count", 0)),
        stale_streams=int(getattr(mav, "stale_stream_count", 0)),
        unsigned_accepted=int(s.unsigned_count),
        refused=int(s.reject_count),
    )

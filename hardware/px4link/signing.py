"""MAVLink 2 message signing: the key, how a pymavlink parser is set up with it, and the refusal counters.

A signed frame carries a link id, a 48-bit timestamp (10 us units since 2015-01-01 UTC) and the first 6 bytes of
SHA-256(secret key + frame). With signing required, a frame is accepted only if its signature matches and its
timestamp is newer than the last one seen on the same stream (link id, system, component): a replayed frame has an
old timestamp and is refused. pymavlink does the check; this module configures it and reads its counters.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        require: refuse unsigned, wrongly signed and replayed frames (counted); False accepts unsigned frames.
        allow_unsigned_msg_ids: message ids accepted unsigned even when signing is required (e.g. 109 RADIO_STATUS).
    """

    secret_key_hex: str = ""
    passphrase: str = ""
    link_id: int = 0
    require: bool = True
    allow_unsigned_msg_ids: tuple[int, ...] = ()

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


def signing_from_key_file(path: str | Path, require: bool = True) -> SigningConfig:
    """Signing with the key in a file: 64 hex digits (PX4's key, as provisioned on the vehicle), whitespace ignored."""
    file = Path(path).expanduser()
    try:
        key_hex = "".join(file.read_text().split())
    except OSError as exc:
        raise SigningConfigError(f"cannot read the signing key file {file}: {exc.strerror or exc}") from exc
    try:
        return SigningConfig(secret_key_hex=key_hex, require=require)
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


def apply_signing(mav: Any, config: SigningConfig, sign_outgoing: bool) -> None:
    """Set up a pymavlink `MAVLink` object to sign what it sends and check what it parses."""
    signing = mav.signing
    signing.secret_key = config.key()
    signing.link_id = config.link_id
    signing.timestamp = signing_timestamp_now()
    signing.sign_outgoing = sign_outgoing
    signing.allow_unsigned_callback = _unsigned_policy(config)


def _unsigned_policy(config: SigningConfig) -> Callable[[Any, int], bool]:
    allowed = frozenset(config.allow_unsigned_msg_ids)

    def allow(_mav: Any, msg_id: int) -> bool:
        return (not config.require) or msg_id in allowed

    return allow


@dataclass(frozen=True)
class SigningCounters:
    """What the receive side did with signed and unsigned frames since start.

    Attributes:
        signed_frames: frames that carried a signature.
        good_signatures: signatures that matched with a fresh timestamp.
        bad_signatures: signatures that did not match, or replayed/old timestamps.
        unsigned_accepted: frames accepted without a good signature (policy allowed them).
        refused: frames refused (unsigned or badly signed, with signing required).
    """

    signed_frames: int = 0
    good_signatures: int = 0
    bad_signatures: int = 0
    unsigned_accepted: int = 0
    refused: int = 0


def signing_counters(mav: Any) -> SigningCounters:
    """The counters of a pymavlink parser's signing state."""
    s = mav.signing
    return SigningCounters(
        signed_frames=int(s.sig_count),
        good_signatures=int(s.goodsig_count),
        bad_signatures=int(s.badsig_count),
        unsigned_accepted=int(s.unsigned_count),
        refused=int(s.reject_count),
    )

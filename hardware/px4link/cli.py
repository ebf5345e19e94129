"""`px4link`: talk to a PX4 vehicle from the command line through the bridge.

px4link preflight --url /dev/ttyACM0:921600       the pre-flight report (exit 1 when not ready)
px4link telemetry --url udpin:0.0.0.0:14540 --seconds 5   typed telemetry (ENU/FLU) as JSON lines
px4link arm --url ...        arm after a passing pre-flight check (--force skips it)
px4link land --url ...       land where the vehicle is
px4link hold --url ...       hold position (AUTO.LOITER)
px4link review FLIGHT.ulg --out-dir DIR   planned vs flown from a PX4 ULog (PNG + JSON summary)
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pyulog.exceptions import ULogException

from px4link.bridge import Px4Bridge
from px4link.commands import CommandError
from px4link.config import BridgeConfig, LinkConfig
from px4link.flight_review import FlightReviewArgs, review
from px4link.preflight import PreflightFailed
from px4link.signing import SigningConfig, signing_from_key_file
from runkit import as_user_error, run_cli, to_jsonable

_LINK = LinkConfig()
"""The library's defaults: the command line's are the same values, not copies of them."""


@dataclass(frozen=True)
class LinkArgs:
    """Where the vehicle is."""

    url: str = _LINK.url
    """Link URL: /dev/ttyACM0:921600, serial:///dev/ttyUSB0?baud=57600, udpin:H:P, udpout:H:P, tcp:H:P."""
    system_id: int = _LINK.system_id
    """Our (and the vehicle's) MAVLink system id."""
    signing_key_file: str = ""
    """MAVLink 2 signing: a file with the vehicle's key (64 hex digits), as the px4_bridge node takes it."""
    signing_passphrase: str = ""
    """MAVLink 2 signing passphrase (its SHA-256 is the key), when there is no key file; empty: no signing."""
    wait_s: float = 5.0
    """How long to wait for the vehicle's heartbeat."""

    def bridge_config(self) -> BridgeConfig:
        """A bridge configuration for this link."""
        signing = None
        if self.signing_key_file:
            signing = signing_from_key_file(self.signing_key_file)
        elif self.signing_passphrase:
            signing = SigningConfig(passphrase=self.signing_passphrase)
        link = LinkConfig(url=self.url, system_id=self.system_id, vehicle_system_id=self.system_id, signing=signing)
        return BridgeConfig(link=link)


@dataclass(frozen=True)
class PreflightArgs(LinkArgs):
    """Print the pre-flight report; exit 1 when something is not ready."""


@dataclass(frozen=True)
class TelemetryArgs(LinkArgs):
    """Print typed telemetry as one JSON object per interval."""

    seconds: float = 5.0
    """How long to print."""
    interval_s: float = 0.5
    """Time between prints."""


@dataclass(frozen=True)
class ArmArgs(LinkArgs):
    """Arm after a passing pre-flight check."""

    force: bool = False
    """Skip the pre-flight check and PX4's arming checks (only on the bench, props off)."""


@dataclass(frozen=True)
class LandArgs(LinkArgs):
    """Land where the vehicle is."""


@dataclass(frozen=True)
class HoldArgs(LinkArgs):
    """Hold position (AUTO.LOITER)."""


def _connected(args: LinkArgs) -> Px4Bridge:
    with as_user_error(ValueError):  # a bad URL or signing key: say which
        config = args.bridge_config()
    bridge = Px4Bridge(config).start()
    if not bridge.wait_vehicle(args.wait_s):
        bridge.stop()
        raise SystemExit(f"no heartbeat from a vehicle on {args.url} within {args.wait_s} s")
    time.sleep(0.5)  # let telemetry arrive
    return bridge


def _telemetry(bridge: Px4Bridge, args: TelemetryArgs) -> None:
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        snapshot = bridge.telemetry()
        fields = {f.name: getattr(snapshot, f.name) for f in dataclasses.fields(snapshot) if f.name != "received_s"}
        fields["mode"] = snapshot.status.mode_name if snapshot.status else None
        print(json.dumps(to_jsonable(fields), default=str), flush=True)
        time.sleep(args.interval_s)


def run(args: LinkArgs) -> int:
    """Run one subcommand; returns the exit status."""
    bridge = _connected(args)
    try:
        if isinstance(args, PreflightArgs):
            report = bridge.preflight()
            print(report.summary())
            return 0 if report.ok else 1
        if isinstance(args, TelemetryArgs):
            _telemetry(bridge, args)
            return 0
        if isinstance(args, ArmArgs):
            bridge.arm(force=args.force)
        elif isinstance(args, LandArgs):
            bridge.land()
        elif isinstance(args, HoldArgs):
            bridge.hold()
        print("accepted")
        return 0
    except (PreflightFailed, CommandError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        bridge.stop()


def review_command(args: FlightReviewArgs) -> int:
    """`px4link review`: a missing or unreadable log is the user's to fix (one line, exit status 2)."""
    with as_user_error(ULogException, prefix=f"{args.log} is not a readable PX4 ULog: "):
        return review(args)


def run_command(args: LinkArgs | FlightReviewArgs) -> int:
    """Run one parsed subcommand; returns the exit status."""
    return review_command(args) if isinstance(args, FlightReviewArgs) else run(args)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `px4link` console script."""
    commands = {
        "preflight": PreflightArgs,
        "telemetry": TelemetryArgs,
        "arm": ArmArgs,
        "land": LandArgs,
        "hold": HoldArgs,
        "review": FlightReviewArgs,
    }
    raise SystemExit(run_cli(commands, run_command, argv=argv, description=__doc__))


if __name__ == "__main__":
    main()

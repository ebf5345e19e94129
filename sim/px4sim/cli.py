"""`px4sim`: run the simulated PX4 vehicle until Ctrl-C (or SIGTERM).

px4sim --url udpout:127.0.0.1:14540
px4sim --url udpin:0.0.0.0:14580 --signing-key-hex 00112233... --require-signing --param COM_OF_LOSS_T=0.5
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from px4sim.autopilot import Px4SimConfig, SimulatedPx4
from runkit.logs import get_logger

_log = get_logger("px4sim.cli")


@dataclass
class Args:
    """Run a simulated PX4 vehicle over MAVLink."""

    url: str = "udpout:127.0.0.1:14540"
    """Where to talk: udpout:HOST:PORT sends there, udpin:HOST:PORT listens there."""
    system_id: int = 1
    """MAVLink system id of the vehicle."""
    signing_key_hex: str = ""
    """MAVLink 2 signing key as 64 hex digits (empty: no signing)."""
    require_signing: bool = False
    """Refuse unsigned or wrongly signed frames (needs --signing-key-hex)."""
    param: tyro.conf.UseAppendAction[list[str]] = field(default_factory=list)
    """PX4 parameters to set at boot, NAME=VALUE; repeat the flag for each (every one applies)."""
    home_enu: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Where the vehicle boots, ENU metres."""
    ulog_dir: Path | None = None
    """Write a ULog per arm-to-disarm cycle here."""
    stream_rate_scale: float = 1.0
    """Scale of every telemetry rate but HEARTBEAT's (1: PX4's onboard-link rates)."""
    status_period_s: float = 5.0
    """How often to log a line of status (0: never)."""


def config_from_args(args: Args) -> Px4SimConfig:
    """The vehicle's configuration from the command line; ValueError says what is wrong."""
    params: dict[str, float] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--param {item!r}: write NAME=VALUE, e.g. COM_OF_LOSS_T=0.5")
        params[name.strip()] = float(value)
    key = bytes.fromhex(args.signing_key_hex) if args.signing_key_hex else None
    return Px4SimConfig(
        url=args.url,
        system_id=args.system_id,
        signing_key=key,
        require_signing=args.require_signing,
        params=params,
        home_enu=args.home_enu,
        ulog_dir=args.ulog_dir,
        stream_rate_scale=args.stream_rate_scale,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `px4sim` console script."""
    args = tyro.cli(Args, args=argv)
    try:
        config = config_from_args(args)
        vehicle = SimulatedPx4(config)
    except ValueError as exc:
        _log.error("%s", exc)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    vehicle.start()
    try:
        while not done.wait(args.status_period_s if args.status_period_s > 0 else 3600.0):
            snap = vehicle.snapshot()
            if args.status_period_s > 0:
                x, y, z = snap.position_enu
                _log.info(
                    "%s %s at ENU (%.2f, %.2f, %.2f) battery %.0f %%",
                    "armed" if snap.armed else "disarmed",
                    snap.mode.name,
                    x,
                    y,
                    z,
                    snap.battery_remaining * 100,
                )
    except KeyboardInterrupt:
        pass
    finally:
        vehicle.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

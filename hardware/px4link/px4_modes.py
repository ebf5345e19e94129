"""PX4's flight modes as MAVLink carries them: the one place that encodes and decodes `custom_mode`.

PX4 packs its mode into HEARTBEAT.custom_mode: the main mode in bits 16-23, the sub mode (used by AUTO
and POSCTL) in bits 24-31. MAV_CMD_DO_SET_MODE carries base mode (MAV_MODE_FLAG_CUSTOM_MODE_ENABLED),
main mode and sub mode in params 1-3. Values from PX4's `px4_custom_mode.h`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAV_MODE_FLAG_CUSTOM_MODE_ENABLED = 1
MAV_MODE_FLAG_SAFETY_ARMED = 128


class MainMode(enum.IntEnum):
    """PX4_CUSTOM_MAIN_MODE_*."""

    MANUAL = 1
    ALTCTL = 2
    POSCTL = 3
    AUTO = 4
    ACRO = 5
    OFFBOARD = 6
    STABILIZED = 7
    RATTITUDE_LEGACY = 8
    SIMPLE = 9
    TERMINATION = 10


class AutoSubMode(enum.IntEnum):
    """PX4_CUSTOM_SUB_MODE_AUTO_* (sub modes of MainMode.AUTO)."""

    READY = 1
    TAKEOFF = 2
    LOITER = 3
    MISSION = 4
    RTL = 5
    LAND = 6
    FOLLOW_TARGET = 8
    PRECLAND = 9
    VTOL_TAKEOFF = 10


@dataclass(frozen=True)
class Px4Mode:
    """A PX4 flight mode: main mode and sub mode (0 where the main mode has none)."""

    main: MainMode
    sub: int = 0

    @property
    def name(self) -> str:
        """PX4's name for the mode, e.g. "OFFBOARD", "AUTO.LOITER"."""
        if self.main == MainMode.AUTO and self.sub:
            try:
                return f"AUTO.{AutoSubMode(self.sub).name}"
            except ValueError:
                return f"AUTO.{self.sub}"
        return self.main.name if not self.sub else f"{self.main.name}.{self.sub}"


OFFBOARD = Px4Mode(MainMode.OFFBOARD)
POSCTL = Px4Mode(MainMode.POSCTL)
ALTCTL = Px4Mode(MainMode.ALTCTL)
MANUAL = Px4Mode(MainMode.MANUAL)
STABILIZED = Px4Mode(MainMode.STABILIZED)
HOLD = Px4Mode(MainMode.AUTO, AutoSubMode.LOITER)
TAKEOFF = Px4Mode(MainMode.AUTO, AutoSubMode.TAKEOFF)
LAND = Px4Mode(MainMode.AUTO, AutoSubMode.LAND)
RTL = Px4Mode(MainMode.AUTO, AutoSubMode.RTL)
MISSION = Px4Mode(MainMode.AUTO, AutoSubMode.MISSION)
READY = Px4Mode(MainMode.AUTO, AutoSubMode.READY)

_BY_NAME = {m.name: m for m in (OFFBOARD, POSCTL, ALTCTL, MANUAL, STABILIZED, HOLD, TAKEOFF, LAND, RTL, MISSION, READY)}


def encode_custom_mode(mode: Px4Mode) -> int:
    """HEARTBEAT.custom_mode of a PX4 mode."""
    return (int(mode.main) << 16) | ((int(mode.sub) & 0xFF) << 24)


def decode_custom_mode(custom_mode: int) -> Px4Mode:
    """PX4 mode of a HEARTBEAT.custom_mode; raises ValueError for a main mode PX4 does not have."""
    main = (int(custom_mode) >> 16) & 0xFF
    sub = (int(custom_mode) >> 24) & 0xFF
    try:
        return Px4Mode(MainMode(main), sub)
    except ValueError as exc:
        raise ValueError(f"custom_mode {custom_mode:#010x} has main mode {main}, which PX4 does not define") from exc


def set_mode_params(mode: Px4Mode) -> tuple[float, float, float]:
    """Params 1-3 of MAV_CMD_DO_SET_MODE (176) that ask PX4 for `mode`."""
    return float(MAV_MODE_FLAG_CUSTOM_MODE_ENABLED), float(int(mode.main)), float(int(mode.sub))


def mode_from_set_mode_params(param1: float, param2: float, param3: float) -> Px4Mode:
    """The mode MAV_CMD_DO_SET_MODE asks for; ValueError when the custom-mode flag is off or the mode is unknown."""
    if not int(param1) & MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
        raise ValueError("MAV_CMD_DO_SET_MODE without MAV_MODE_FLAG_CUSTOM_MODE_ENABLED: PX4 needs a custom mode")
    try:
        return Px4Mode(MainMode(int(param2)), int(param3))
    except ValueError as exc:
        raise ValueError(f"MAV_CMD_DO_SET_MODE asks for main mode {param2}, which PX4 does not define") from exc


def mode_by_name(name: str) -> Px4Mode:
    """A mode by PX4's name ("OFFBOARD", "AUTO.LOITER", "HOLD" as an alias of AUTO.LOITER, ...)."""
    key = name.strip().upper()
    aliases = {
        "HOLD": "AUTO.LOITER",
        "LOITER": "AUTO.LOITER",
        "LAND": "AUTO.LAND",
        "TAKEOFF": "AUTO.TAKEOFF",
        "RTL": "AUTO.RTL",
        "MISSION": "AUTO.MISSION",
        "POSITION": "POSCTL",
        "ALTITUDE": "ALTCTL",
    }
    key = aliases.get(key, key)
    if key not in _BY_NAME:
        raise ValueError(f"unknown PX4 mode {name!r}; known: {sorted(_BY_NAME)}")
    return _BY_NAME[key]

"""PX4's flight modes on the wire, as the simulated vehicle reads and writes them (independent of the bridge).

From PX4's `px4_custom_mode.h`: HEARTBEAT.custom_mode is a uint32 laid out as the little-endian union
`{uint16 reserved; uint8 main_mode; uint8 sub_mode}`, so the main mode sits in bits 16-23 and the sub
mode in bits 24-31. This module packs and unpacks that layout with `struct`, field by field.

MAV_CMD_DO_SET_MODE (176) asks for a mode with param1 = base mode (MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
set), param2 = main mode, param3 = sub mode (0 where the main mode has none).

Names follow PX4: the main mode's name ("OFFBOARD", "POSCTL"), "AUTO.<sub mode>" in AUTO ("AUTO.LOITER",
the mode PX4's ground stations call Hold).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

# MAV_MODE_FLAG bits of HEARTBEAT.base_mode (MAVLink common.xml).
MAV_MODE_FLAG_CUSTOM_MODE_ENABLED = 0x01
MAV_MODE_FLAG_SAFETY_ARMED = 0x80

# The px4_custom_mode union: reserved (uint16), main_mode (uint8), sub_mode (uint8), little-endian.
_CUSTOM_MODE_LAYOUT = struct.Struct("<HBB")
_UINT32 = struct.Struct("<I")


class MainMode(enum.IntEnum):
    """PX4_CUSTOM_MAIN_MODE_* (`px4_custom_mode.h`)."""

    MANUAL = 1
    ALTCTL = 2
    POSCTL = 3
    AUTO = 4
    ACRO = 5
    OFFBOARD = 6
    STABILIZED = 7
    RATTITUDE_LEGACY = 8
    SIMPLE = 9  # reserved by PX4, never flown
    TERMINATION = 10


_MAIN_MODE_NUMBERS = frozenset(int(m) for m in MainMode)


class AutoSubMode(enum.IntEnum):
    """PX4_CUSTOM_SUB_MODE_AUTO_* (sub modes of MainMode.AUTO); 7 (RTGS) was retired by PX4."""

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
        """PX4's name of the mode: "OFFBOARD", "AUTO.LOITER", "AUTO.<n>" for an AUTO sub mode PX4 lacks."""
        if self.sub == 0:
            return self.main.name
        if self.main != MainMode.AUTO:
            return f"{self.main.name}.{self.sub}"
        known = {int(s): s.name for s in AutoSubMode}
        return f"AUTO.{known.get(int(self.sub), str(self.sub))}"


MANUAL = Px4Mode(MainMode.MANUAL)
ALTCTL = Px4Mode(MainMode.ALTCTL)
POSCTL = Px4Mode(MainMode.POSCTL)
STABILIZED = Px4Mode(MainMode.STABILIZED)
OFFBOARD = Px4Mode(MainMode.OFFBOARD)
TERMINATION = Px4Mode(MainMode.TERMINATION)
READY = Px4Mode(MainMode.AUTO, AutoSubMode.READY)
TAKEOFF = Px4Mode(MainMode.AUTO, AutoSubMode.TAKEOFF)
HOLD = Px4Mode(MainMode.AUTO, AutoSubMode.LOITER)
MISSION = Px4Mode(MainMode.AUTO, AutoSubMode.MISSION)
RTL = Px4Mode(MainMode.AUTO, AutoSubMode.RTL)
LAND = Px4Mode(MainMode.AUTO, AutoSubMode.LAND)

# The modes the vehicle can be asked for by name (boot mode, CLI); TERMINATION is entered, never asked for.
NAMED_MODES: tuple[Px4Mode, ...] = (
    OFFBOARD,
    POSCTL,
    ALTCTL,
    MANUAL,
    STABILIZED,
    HOLD,
    TAKEOFF,
    LAND,
    RTL,
    MISSION,
    READY,
)
_BY_NAME = {mode.name: mode for mode in NAMED_MODES}
_ALIASES = {
    "HOLD": HOLD,
    "LOITER": HOLD,
    "TAKEOFF": TAKEOFF,
    "LAND": LAND,
    "RTL": RTL,
    "MISSION": MISSION,
    "POSITION": POSCTL,
    "ALTITUDE": ALTCTL,
}


def encode_custom_mode(mode: Px4Mode) -> int:
    """HEARTBEAT.custom_mode of `mode` (the px4_custom_mode union read as a uint32)."""
    packed = _CUSTOM_MODE_LAYOUT.pack(0, int(mode.main), int(mode.sub))
    return int(_UINT32.unpack(packed)[0])


def decode_custom_mode(custom_mode: int) -> Px4Mode:
    """The mode of a HEARTBEAT.custom_mode; ValueError for a main mode PX4 does not define."""
    _reserved, main, sub = _CUSTOM_MODE_LAYOUT.unpack(_UINT32.pack(int(custom_mode) & 0xFFFFFFFF))
    if main not in _MAIN_MODE_NUMBERS:
        raise ValueError(f"custom_mode {int(custom_mode):#010x}: main mode {main} is not one of PX4's")
    return Px4Mode(MainMode(main), sub)


def set_mode_params(mode: Px4Mode) -> tuple[float, float, float]:
    """Params 1-3 of a MAV_CMD_DO_SET_MODE that asks for `mode`."""
    return float(MAV_MODE_FLAG_CUSTOM_MODE_ENABLED), float(mode.main), float(mode.sub)


def mode_from_set_mode_params(base_mode: float, main_mode: float, sub_mode: float) -> Px4Mode:
    """The mode a MAV_CMD_DO_SET_MODE asks for; ValueError without the custom-mode flag or for an unknown mode."""
    if not int(base_mode) & MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
        raise ValueError("MAV_CMD_DO_SET_MODE without MAV_MODE_FLAG_CUSTOM_MODE_ENABLED: PX4 needs a custom mode")
    main, sub = int(main_mode), int(sub_mode)
    if main not in _MAIN_MODE_NUMBERS:
        raise ValueError(f"MAV_CMD_DO_SET_MODE asks for main mode {main_mode}, which PX4 does not define")
    if not 0 <= sub <= 0xFF:
        raise ValueError(f"MAV_CMD_DO_SET_MODE asks for sub mode {sub_mode}, which does not fit PX4's uint8")
    return Px4Mode(MainMode(main), sub)


def mode_by_name(name: str) -> Px4Mode:
    """A mode by PX4's name ("OFFBOARD", "AUTO.LOITER") or a short alias ("HOLD", "LAND", "POSITION", ...)."""
    key = name.strip().upper()
    mode = _BY_NAME.get(key) or _ALIASES.get(key)
    if mode is None:
        raise ValueError(f"unknown PX4 mode {name!r}; known: {sorted(_BY_NAME)} and aliases {sorted(_ALIASES)}")
    return mode

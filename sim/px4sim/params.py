"""PX4's parameters as the simulated vehicle keeps them: names, types, defaults and ranges from PX4's reference.

MAVLink carries every value in a float field. PX4 sends and reads INT32 parameters bytewise: the four
bytes of the int32 travel in the float's place (MAV_PARAM_TYPE_INT32 in `param_type`).

PARAM_SET as PX4 handles it (PX4: src/modules/mavlink/mavlink_parameters.cpp):
- the declared `param_type` must match the parameter's own type (MAV_PARAM_TYPE_INT32 for INT32,
  MAV_PARAM_TYPE_REAL32 for FLOAT); on a mismatch nothing is written and PX4 answers only with the
  STATUSTEXT "[pm] param types mismatch param: NAME" (no PARAM_VALUE);
- the documented min/max are metadata for ground stations: PX4's param_set does not enforce them, so an
  out-of-range value is stored (px4sim adds a warning STATUSTEXT, see `ParamStore.out_of_range`).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Literal

ParamType = Literal["INT32", "FLOAT"]

MAV_PARAM_TYPE_INT32 = 6
MAV_PARAM_TYPE_REAL32 = 9


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: PX4's name, type, default and documented range (inclusive)."""

    name: str
    type: ParamType
    default: float
    min: float
    max: float

    @property
    def mav_type(self) -> int:
        """MAV_PARAM_TYPE of the parameter."""
        return MAV_PARAM_TYPE_INT32 if self.type == "INT32" else MAV_PARAM_TYPE_REAL32


def _i(name: str, default: int, lo: int, hi: int) -> ParamSpec:
    return ParamSpec(name, "INT32", float(default), float(lo), float(hi))


def _f(name: str, default: float, lo: float, hi: float) -> ParamSpec:
    return ParamSpec(name, "FLOAT", default, lo, hi)


# PX4 defaults (v1.14/v1.15 parameter reference). COM_RC_IN_MODE is 4 (no stick input) because the
# simulated vehicle has no RC: flights come from a companion computer only.
PX4_PARAMS: tuple[ParamSpec, ...] = (
    _f("COM_OF_LOSS_T", 1.0, 0.0, 60.0),
    _i("COM_OBL_RC_ACT", 0, 0, 7),
    _i("COM_DL_LOSS_T", 10, 5, 300),
    _i("NAV_DLL_ACT", 0, 0, 6),
    _i("NAV_RCL_ACT", 2, 0, 6),
    _i("COM_RC_IN_MODE", 4, 0, 4),
    _i("COM_ARM_WO_GPS", 1, 0, 1),
    _f("COM_DISARM_LAND", 2.0, -1.0, 20.0),
    _f("COM_DISARM_PRFLT", 10.0, -1.0, 20.0),
    _i("COM_LOW_BAT_ACT", 0, 0, 3),
    _i("GF_ACTION", 2, 0, 5),
    _f("GF_MAX_HOR_DIST", 0.0, 0.0, 10000.0),
    _f("GF_MAX_VER_DIST", 0.0, 0.0, 10000.0),
    _f("BAT_LOW_THR", 0.15, 0.12, 0.5),
    _f("BAT_CRIT_THR", 0.07, 0.05, 0.25),
    _f("BAT_EMERGEN_THR", 0.05, 0.03, 0.1),
    _i("BAT1_N_CELLS", 3, 1, 16),
    _f("BAT1_V_CHARGED", 4.05, 3.0, 5.0),
    _f("BAT1_V_EMPTY", 3.6, 2.5, 4.0),
    _f("MIS_TAKEOFF_ALT", 2.5, 0.0, 80.0),
    _f("MPC_XY_VEL_MAX", 12.0, 0.0, 20.0),
    _f("MPC_XY_CRUISE", 5.0, 3.0, 20.0),
    _f("MPC_Z_VEL_MAX_UP", 3.0, 0.5, 8.0),
    _f("MPC_Z_VEL_MAX_DN", 1.5, 0.5, 4.0),
    _f("MPC_ACC_HOR_MAX", 5.0, 2.0, 15.0),
    _f("MPC_ACC_UP_MAX", 4.0, 1.0, 15.0),
    _f("MPC_ACC_DOWN_MAX", 3.0, 1.0, 15.0),
    _f("MPC_TKO_SPEED", 1.5, 1.0, 5.0),
    _f("MPC_LAND_SPEED", 0.7, 0.6, 4.0),
    _f("RTL_RETURN_ALT", 60.0, 0.0, 150.0),
    _f("RTL_DESCEND_ALT", 30.0, 2.0, 100.0),
    _i("MAV_SYS_ID", 1, 1, 250),
    _i("SYS_AUTOSTART", 4001, 0, 9999999),
    # PX4: src/modules/commander/commander_params.c (COM_FAIL_ACT_T, 5 s since v1.14)
    _f("COM_FAIL_ACT_T", 5.0, 0.0, 25.0),
)


def float_bits_of_int(value: int) -> float:
    """The float whose bytes are the int32 `value` (PX4's bytewise encoding for PARAM_VALUE)."""
    return float(struct.unpack("<f", struct.pack("<i", int(value)))[0])


def int_of_float_bits(value: float) -> int:
    """The int32 carried in the bytes of a float (reads PX4's bytewise encoding)."""
    return int(struct.unpack("<i", struct.pack("<f", float(value)))[0])


class ParamError(ValueError):
    """A parameter set that PX4 would not apply (unknown name, not a finite number, wrong declared type)."""


class ParamTypeMismatchError(ParamError):
    """A PARAM_SET whose declared MAV_PARAM_TYPE is not the parameter's type (PX4 writes nothing)."""


class ParamStore:
    """The vehicle's parameters: PX4's set with their defaults, overridable by name."""

    def __init__(self, overrides: dict[str, float] | None = None) -> None:
        self.specs: dict[str, ParamSpec] = {p.name: p for p in PX4_PARAMS}
        self.names: list[str] = [p.name for p in PX4_PARAMS]
        self._values: dict[str, float] = {p.name: p.default for p in PX4_PARAMS}
        for name, value in (overrides or {}).items():
            self.set(name, value)

    def __len__(self) -> int:
        return len(self.names)

    def get(self, name: str) -> float:
        """The value (an INT32 parameter as an integral float); KeyError for an unknown name."""
        return self._values[name]

    def set(self, name: str, value: float) -> float:
        """Set a parameter by value; ParamError when unknown or not finite. Returns the stored value.

        The documented range is not enforced, as PX4's param_set does not enforce it (see `out_of_range`).
        """
        spec = self.specs.get(name)
        if spec is None:
            raise ParamError(f"unknown parameter {name!r}")
        v = float(value)
        if not math.isfinite(v):
            raise ParamError(f"{name}: {value} is not a finite number")
        if spec.type == "INT32":
            if v != round(v):
                raise ParamError(f"{name} is an INT32 parameter; {value} is not an integer")
            v = float(round(v))
        self._values[name] = v
        return v

    def out_of_range(self, name: str) -> bool:
        """True when the stored value lies outside the parameter's documented [min, max]."""
        spec = self.specs[name]
        return not spec.min <= self._values[name] <= spec.max

    def set_from_wire(self, name: str, wire_value: float, declared_type: int) -> float:
        """Apply a PARAM_SET as PX4 does: the declared type must be the parameter's, then the bytes are read by it.

        ParamTypeMismatchError (nothing written) when `declared_type` is not the parameter's MAV_PARAM_TYPE.
        """
        spec = self.specs.get(name)
        if spec is None:
            raise ParamError(f"unknown parameter {name!r}")
        if int(declared_type) != spec.mav_type:
            raise ParamTypeMismatchError(f"param types mismatch param: {name}")
        value = float(int_of_float_bits(wire_value)) if spec.type == "INT32" else float(wire_value)
        return self.set(name, value)

    def wire_value(self, name: str) -> float:
        """PARAM_VALUE.param_value of a parameter (INT32 bytewise)."""
        spec = self.specs[name]
        v = self._values[name]
        return float_bits_of_int(int(v)) if spec.type == "INT32" else v

    def index(self, name: str) -> int:
        """The parameter's index in PARAM_VALUE (its place in the list)."""
        return self.names.index(name)

    def values(self) -> dict[str, float]:
        """A copy of every value by name."""
        return dict(self._values)

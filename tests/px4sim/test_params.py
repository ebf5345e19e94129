"""PX4 parameters: defaults, bytewise INT32 encoding, range checks (no sockets)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from px4sim.params import PX4_PARAMS, ParamError, ParamStore, float_bits_of_int, int_of_float_bits


def test_defaults_are_px4s() -> None:
    store = ParamStore()
    assert store.get("COM_OF_LOSS_T") == 1.0
    assert store.get("COM_OBL_RC_ACT") == 0
    assert store.get("MIS_TAKEOFF_ALT") == 2.5
    assert store.get("NAV_DLL_ACT") == 0
    assert all(spec.min <= spec.default <= spec.max for spec in PX4_PARAMS)


# Ints whose bytes form a signalling NaN (-8388607..-4194305, and above 0x7F800000) do not survive a trip
# through a Python float (the NaN gets quietened); no PX4 INT32 parameter lives there.
@given(st.integers(min_value=-(2**22), max_value=2**30))
def test_int32_bytewise_round_trip(value: int) -> None:
    assert int_of_float_bits(float_bits_of_int(value)) == value


def test_int_param_set_from_wire_reads_bytes_by_the_params_type() -> None:
    store = ParamStore()
    assert store.set_from_wire("COM_OBL_RC_ACT", float_bits_of_int(4)) == 4
    assert store.wire_value("COM_OBL_RC_ACT") == float_bits_of_int(4)
    # A sender that puts 4.0 as a plain float into an INT32 param gets PX4's behaviour: the bytes are
    # an enormous int, out of range, refused; the value stays.
    with pytest.raises(ParamError):
        store.set_from_wire("COM_OBL_RC_ACT", 4.0)
    assert store.get("COM_OBL_RC_ACT") == 4


def test_out_of_range_and_unknown_refused() -> None:
    store = ParamStore()
    with pytest.raises(ParamError, match="outside the range"):
        store.set("COM_OBL_RC_ACT", 9)
    with pytest.raises(ParamError, match="outside the range"):
        store.set("MIS_TAKEOFF_ALT", 500.0)
    with pytest.raises(ParamError, match="unknown"):
        store.set("NOT_A_PARAM", 1.0)
    with pytest.raises(ParamError, match="finite"):
        store.set("COM_OF_LOSS_T", math.nan)
    assert store.get("MIS_TAKEOFF_ALT") == 2.5


def test_overrides_at_boot() -> None:
    assert ParamStore({"COM_OF_LOSS_T": 0.5}).get("COM_OF_LOSS_T") == 0.5
    with pytest.raises(ParamError):
        ParamStore({"COM_OF_LOSS_T": -1.0})

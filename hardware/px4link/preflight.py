"""The pre-flight check: a typed report of what is ready and, for what is not, why.

Items: the link (vehicle heartbeat fresh), the parameters offboard flight depends on (COM_OF_LOSS_T and
COM_OBL_RC_ACT: what PX4 does when our setpoints stop; NAV_DLL_ACT and COM_DL_LOSS_T: when the ground link stops),
the EKF (ESTIMATOR_STATUS), GPS (GPS_RAW_INT, when required), the battery, and the geofence (configured, vehicle
inside). `Px4Bridge.arm()` runs it and raises `PreflightFailed` with the report unless forced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from px4link.config import FailsafeConfig, PreflightConfig
from px4link.params import ParamError, ParamValue
from px4link.telemetry import TelemetrySnapshot

COM_OBL_RC_ACT_NAMES = {
    0: "Position",
    1: "Altitude",
    2: "Manual",
    3: "Return",
    4: "Land",
    5: "Hold",
    6: "Terminate",
    7: "Disarm",
}
"""PX4's COM_OBL_RC_ACT values: the mode PX4 falls back to when offboard setpoints stop."""

_UNSAFE_OFFBOARD_LOSS_ACTIONS = (6, 7)  # terminate / disarm: the vehicle falls

PREFLIGHT_PARAMS = ("COM_OF_LOSS_T", "COM_OBL_RC_ACT", "NAV_DLL_ACT", "COM_DL_LOSS_T")
"""The parameters the check reads."""


@dataclass(frozen=True)
class PreflightItem:
    """One check: its name, whether it passed, and a reason a person can act on."""

    name: str
    ok: bool
    reason: str


@dataclass(frozen=True)
class PreflightReport:
    """All checks; `ok` only when every one passed."""

    items: tuple[PreflightItem, ...]

    @property
    def ok(self) -> bool:
        """True when every item passed."""
        return all(item.ok for item in self.items)

    def failures(self) -> tuple[PreflightItem, ...]:
        """The items that did not pass."""
        return tuple(item for item in self.items if not item.ok)

    def summary(self) -> str:
        """One line per item: "ok|FAIL name: reason"."""
        return "\n".join(f"{'ok  ' if i.ok else 'FAIL'} {i.name}: {i.reason}" for i in self.items)


class PreflightFailed(RuntimeError):  # noqa: N818  (the name says what happened: arming was refused)
    """Arming refused because the pre-flight check failed; `report` says why."""

    def __init__(self, report: PreflightReport) -> None:
        self.report = report
        reasons = "; ".join(f"{i.name}: {i.reason}" for i in report.failures())
        super().__init__(f"refusing to arm, pre-flight check failed: {reasons}")


ParamReader = Callable[[str], ParamValue]
"""Reads one parameter (raises ParamError when it cannot)."""


def run_preflight(
    telemetry: TelemetrySnapshot,
    heartbeat_age_s: float,
    read_param: ParamReader,
    config: PreflightConfig,
    failsafes: FailsafeConfig,
) -> PreflightReport:
    """Run every check and return the report (never raises for a failed check)."""
    items = [
        _link(heartbeat_age_s, config.max_heartbeat_age_s),
        *_params(read_param, config),
        _ekf(telemetry, config),
        _gps(telemetry, config),
        _battery(telemetry, config),
        _geofence(telemetry, failsafes),
    ]
    return PreflightReport(tuple(items))


def _link(heartbeat_age_s: float, max_age_s: float) -> PreflightItem:
    if heartbeat_age_s == float("inf"):
        return PreflightItem(
            "link", False, "no heartbeat from the vehicle yet: check the link URL, wiring, MAV_n_CONFIG"
        )
    if heartbeat_age_s > max_age_s:
        return PreflightItem(
            "link", False, f"last vehicle heartbeat {heartbeat_age_s:.1f} s ago (need < {max_age_s:g} s)"
        )
    return PreflightItem("link", True, f"vehicle heartbeat {heartbeat_age_s:.2f} s ago")


def _read(read_param: ParamReader, name: str) -> ParamValue | str:
    try:
        return read_param(name)
    except ParamError as exc:
        return str(exc)


def _params(read_param: ParamReader, config: PreflightConfig) -> list[PreflightItem]:
    items: list[PreflightItem] = []
    loss_t = _read(read_param, "COM_OF_LOSS_T")
    if isinstance(loss_t, str):
        items.append(PreflightItem("COM_OF_LOSS_T", False, f"cannot read: {loss_t}"))
    elif not 0.0 < float(loss_t.value) <= config.max_offboard_loss_timeout_s:
        items.append(
            PreflightItem(
                "COM_OF_LOSS_T",
                False,
                f"offboard loss timeout is {loss_t.value} s; set it in (0, {config.max_offboard_loss_timeout_s}] s",
            )
        )
    else:
        items.append(PreflightItem("COM_OF_LOSS_T", True, f"offboard loss timeout {loss_t.value} s"))
    action = _read(read_param, "COM_OBL_RC_ACT")
    if isinstance(action, str):
        items.append(PreflightItem("COM_OBL_RC_ACT", False, f"cannot read: {action}"))
    else:
        value = int(action.value)
        name = COM_OBL_RC_ACT_NAMES.get(value, f"unknown ({value})")
        ok = value in COM_OBL_RC_ACT_NAMES and value not in _UNSAFE_OFFBOARD_LOSS_ACTIONS
        reason = f"offboard loss action {name}" + (
            "" if ok else ": choose Land (4) or Hold (5), never Terminate/Disarm"
        )
        items.append(PreflightItem("COM_OBL_RC_ACT", ok, reason))
    for name, what in (("NAV_DLL_ACT", "data link loss action"), ("COM_DL_LOSS_T", "data link loss timeout")):
        value_or_error = _read(read_param, name)
        if isinstance(value_or_error, str):
            items.append(PreflightItem(name, False, f"cannot read: {value_or_error}"))
        else:
            items.append(PreflightItem(name, True, f"{what} {value_or_error.value}"))
    return items


def _ekf(t: TelemetrySnapshot, config: PreflightConfig) -> PreflightItem:
    if not config.require_ekf:
        return PreflightItem("ekf", True, "not required")
    if t.ekf is None:
        return PreflightItem("ekf", False, "no ESTIMATOR_STATUS received (is the stream enabled on this MAVLink port?)")
    if not t.ekf.ok:
        return PreflightItem("ekf", False, "estimator not ready: " + ", ".join(t.ekf.problems()))
    return PreflightItem("ekf", True, "attitude, velocity and position estimates valid")


def _gps(t: TelemetrySnapshot, config: PreflightConfig) -> PreflightItem:
    if not config.require_gps:
        return PreflightItem("gps", True, "not required")
    if t.gps is None:
        return PreflightItem("gps", False, "no GPS_RAW_INT received")
    if t.gps.fix_type < 3:
        return PreflightItem(
            "gps", False, f"GPS fix type {t.gps.fix_type} with {t.gps.satellites} satellites (need 3D fix)"
        )
    return PreflightItem("gps", True, f"fix type {t.gps.fix_type}, {t.gps.satellites} satellites")


def _battery(t: TelemetrySnapshot, config: PreflightConfig) -> PreflightItem:
    if t.battery is None or t.battery.remaining_fraction is None:
        return PreflightItem("battery", False, "battery state unknown (no BATTERY_STATUS / SYS_STATUS remaining)")
    fraction = t.battery.remaining_fraction
    if fraction < config.min_battery_fraction:
        return PreflightItem("battery", False, f"battery at {fraction:.0%}, need >= {config.min_battery_fraction:.0%}")
    return PreflightItem("battery", True, f"battery at {fraction:.0%} ({t.battery.voltage_v:.2f} V)")


def _geofence(t: TelemetrySnapshot, failsafes: FailsafeConfig) -> PreflightItem:
    fence = failsafes.geofence
    if fence is None:
        return PreflightItem("geofence", False, "no geofence configured (FailsafeConfig.geofence)")
    if t.local_position is None:
        return PreflightItem("geofence", False, "vehicle position unknown (no LOCAL_POSITION_NED)")
    p = t.local_position.position_enu_m
    if not fence.contains(p):
        return PreflightItem(
            "geofence", False, f"vehicle at ({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f}) m ENU is outside the geofence"
        )
    return PreflightItem("geofence", True, f"vehicle inside the {type(fence).__name__}")

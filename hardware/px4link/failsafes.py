"""The bridge's failsafes as a pure, edge-triggered monitor: inputs in, typed events out (no I/O).

Each check raises an event once when its condition starts (and LINK_RESTORED once when the link comes back):
    LINK_LOST           no vehicle heartbeat/telemetry for `link_loss_s`, or (one-way cut) no answer to our
                        TIMESYNC for `uplink_loss_s` while its messages arrive: stop streaming and claiming offboard
    LINK_RESTORED       the link is back after a loss: `link_loss_action` (hold or land), never over a landing or
                        return PX4 started itself
    GEOFENCE            the vehicle is outside the fence: hold
    GEOFENCE_SETPOINT   the trajectory would lead outside the fence: hold (the setpoint is not followed)
    BATTERY_LOW         below `battery_low_fraction`: `battery_low_action`
    BATTERY_CRITICAL    below `battery_critical_fraction`: land
    TRAJECTORY_STALE    the trajectory ended `trajectory_stale_s` ago with nothing new: hold
    TRAJECTORY_FAULT    the trajectory raised or gave non-finite values: dropped, hold
The bridge turns events into commands, logs them and hands them to listeners (a ROS node publishes them).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from px4link.config import FailsafeConfig


class FailsafeKind(enum.Enum):
    """What went wrong (or came back)."""

    LINK_LOST = "link_lost"
    LINK_RESTORED = "link_restored"
    GEOFENCE = "geofence"
    GEOFENCE_SETPOINT = "geofence_setpoint"
    BATTERY_LOW = "battery_low"
    BATTERY_CRITICAL = "battery_critical"
    TRAJECTORY_STALE = "trajectory_stale"
    TRAJECTORY_FAULT = "trajectory_fault"


FailsafeResponse = str
""""hold", "land" or "stop_offboard" (no command: the link is down)."""


@dataclass(frozen=True)
class FailsafeEvent:
    """One failsafe: what, what the bridge does about it, why, and when (monotonic s)."""

    kind: FailsafeKind
    action: FailsafeResponse
    detail: str
    time_s: float


@dataclass(frozen=True)
class FailsafeInputs:
    """What the monitor looks at, sampled at one instant.

    Attributes:
        now_s: monotonic time.
        link_age_s: seconds since anything came from the vehicle (inf before the first).
        uplink_age_s: seconds since the vehicle last answered our TIMESYNC (None: it never has; not judged).
        position_enu_m: the vehicle's position (None when unknown).
        setpoint_enu_m: the position being commanded (None when not streaming).
        battery_fraction: remaining battery (None when unknown).
        trajectory_end_age_s: seconds since the followed trajectory ended (negative while it runs; None: none).
        trajectory_fault: why the followed trajectory was dropped (it raised or went non-finite); None: no fault.
        offboard: True while the bridge streams setpoints (trajectory and setpoint checks apply only then).
        armed: True while the vehicle is armed (battery and geofence checks apply only then).
    """

    now_s: float
    link_age_s: float
    uplink_age_s: float | None = None
    position_enu_m: tuple[float, float, float] | None = None
    setpoint_enu_m: tuple[float, float, float] | None = None
    battery_fraction: float | None = None
    trajectory_end_age_s: float | None = None
    trajectory_fault: str | None = None
    offboard: bool = False
    armed: bool = False


class FailsafeMonitor:
    """Edge-triggered failsafe checks (see the module docstring)."""

    def __init__(self, config: FailsafeConfig | None = None) -> None:
        self.config = config or FailsafeConfig()
        self._active: set[FailsafeKind] = set()
        self._link_ever_up = False

    @property
    def active(self) -> frozenset[FailsafeKind]:
        """Conditions that hold now."""
        return frozenset(self._active)

    def reset(self, kind: FailsafeKind) -> None:
        """Forget that `kind` is active (e.g. after the operator acknowledged it), so it can fire again."""
        self._active.discard(kind)

    def evaluate(self, inputs: FailsafeInputs) -> list[FailsafeEvent]:
        """Events that start at this instant."""
        events: list[FailsafeEvent] = []
        events += self._link(inputs)
        if FailsafeKind.LINK_LOST in self._active:
            return events  # nothing else can be acted on without a link
        events += self._geofence(inputs)
        events += self._battery(inputs)
        events += self._trajectory(inputs)
        return events

    def _edge(self, kind: FailsafeKind, condition: bool, action: str, detail: str, now_s: float) -> list[FailsafeEvent]:
        if condition and kind not in self._active:
            self._active.add(kind)
            return [FailsafeEvent(kind, action, detail, now_s)]
        if not condition:
            self._active.discard(kind)
        return []

    def _link(self, i: FailsafeInputs) -> list[FailsafeEvent]:
        cfg = self.config
        downlink_lost = i.link_age_s > cfg.link_loss_s
        uplink_lost = i.uplink_age_s is not None and i.uplink_age_s > cfg.uplink_loss_s
        lost = downlink_lost or uplink_lost
        if not lost:
            self._link_ever_up = True
        if not self._link_ever_up:
            return []  # never connected: not a loss
        was_lost = FailsafeKind.LINK_LOST in self._active
        events = self._edge(
            FailsafeKind.LINK_LOST,
            lost,
            "stop_offboard",
            f"nothing from the vehicle for {i.link_age_s:.3f} s (limit {cfg.link_loss_s} s)"
            if downlink_lost or i.uplink_age_s is None
            else f"the vehicle has not answered our TIMESYNC for {i.uplink_age_s:.3f} s (limit {cfg.uplink_loss_s} s) "
            "though its messages arrive: what the bridge sends does not reach it",
            i.now_s,
        )
        if was_lost and not lost:
            events.append(
                FailsafeEvent(
                    FailsafeKind.LINK_RESTORED, cfg.link_loss_action, "vehicle heard again after a link loss", i.now_s
                )
            )
        return events

    def _geofence(self, i: FailsafeInputs) -> list[FailsafeEvent]:
        fence = self.config.geofence
        if fence is None:
            return []
        outside = i.armed and i.position_enu_m is not None and not fence.contains(i.position_enu_m)
        events = self._edge(
            FailsafeKind.GEOFENCE,
            outside,
            "hold",
            f"vehicle at {_fmt(i.position_enu_m)} is outside the geofence",
            i.now_s,
        )
        setpoint_outside = i.offboard and i.setpoint_enu_m is not None and not fence.contains(i.setpoint_enu_m)
        events += self._edge(
            FailsafeKind.GEOFENCE_SETPOINT,
            setpoint_outside,
            "hold",
            f"trajectory setpoint {_fmt(i.setpoint_enu_m)} is outside the geofence",
            i.now_s,
        )
        return events

    def _battery(self, i: FailsafeInputs) -> list[FailsafeEvent]:
        """Low, then critical; each latched until the vehicle disarms.

        A battery's reading recovers under a lighter load: without the latch a critical landing would be
        followed by a low-battery hold when the reading rose again, which stops the descent.
        """
        cfg = self.config
        if not i.armed:
            self._active -= {FailsafeKind.BATTERY_LOW, FailsafeKind.BATTERY_CRITICAL}
            return []
        if i.battery_fraction is None:
            return []
        fraction = i.battery_fraction
        events: list[FailsafeEvent] = []
        if fraction < cfg.battery_critical_fraction and FailsafeKind.BATTERY_CRITICAL not in self._active:
            self._active.add(FailsafeKind.BATTERY_CRITICAL)
            detail = f"battery at {fraction:.0%} (critical below {cfg.battery_critical_fraction:.0%})"
            events.append(FailsafeEvent(FailsafeKind.BATTERY_CRITICAL, "land", detail, i.now_s))
        latched = self._active & {FailsafeKind.BATTERY_LOW, FailsafeKind.BATTERY_CRITICAL}
        if fraction < cfg.battery_low_fraction and not latched:
            self._active.add(FailsafeKind.BATTERY_LOW)
            detail = f"battery at {fraction:.0%} (low below {cfg.battery_low_fraction:.0%})"
            events.append(FailsafeEvent(FailsafeKind.BATTERY_LOW, cfg.battery_low_action, detail, i.now_s))
        return events

    def _trajectory(self, i: FailsafeInputs) -> list[FailsafeEvent]:
        limit = self.config.trajectory_stale_s
        stale = limit > 0.0 and i.offboard and i.trajectory_end_age_s is not None and i.trajectory_end_age_s > limit
        events = self._edge(
            FailsafeKind.TRAJECTORY_STALE,
            stale,
            "hold",
            f"trajectory ended {i.trajectory_end_age_s or 0.0:.1f} s ago with nothing new (limit {limit} s)",
            i.now_s,
        )
        fault = i.trajectory_fault is not None and i.offboard
        events += self._edge(
            FailsafeKind.TRAJECTORY_FAULT, fault, "hold", f"trajectory dropped: {i.trajectory_fault}", i.now_s
        )
        return events


def _fmt(p: tuple[float, float, float] | None) -> str:
    return "unknown" if p is None else f"({p[0]:.2f}, {p[1]:.2f}, {p[2]:.2f}) m ENU"

"""PX4's commander and navigator as the simulated vehicle follows them: arming, modes, failsafes, auto flight.

Time is passed in (`now_s`, the vehicle's clock); nothing here touches a socket. Events go out as
(severity, text) through `emit`, which the MAVLink side sends as STATUSTEXT.

Rules kept from PX4 (the source file that holds each is named beside it):
- Arming checks: estimator healthy, battery above BAT_LOW_THR, inside the geofence, no failsafe
  active, and in OFFBOARD a live setpoint stream. Force (param2 = 21196) skips them. Disarming in
  the air is refused unless forced. SYS_STATUS reports the result as MAV_SYS_STATUS_PREARM_CHECK
  (present and enabled always, healthy while the checks pass or armed), which MAVSDK reads as
  `health.is_armable` (PX4: src/modules/commander/HealthAndArmingChecks/HealthAndArmingChecks.cpp,
  src/modules/mavlink/streams/SYS_STATUS.hpp).
- OFFBOARD is only entered while the offboard signal is fresh: the last setpoint younger than
  COM_OF_LOSS_T; one setpoint is enough (PX4: src/modules/commander/HealthAndArmingChecks/checks/
  offboardCheck.cpp). With none for COM_OF_LOSS_T, armed, the COM_OBL_RC_ACT action runs at once, as
  PX4's mode fallback does, without the COM_FAIL_ACT_T hold (0 position, 1 altitude, 2 manual: these
  need RC, which this vehicle lacks, so it holds; 3 return, 4 land, 5 hold, 6 terminate, 7 disarm).
  The vehicle never goes back to OFFBOARD by itself.
- Data link: only ground-station heartbeats (MAV_TYPE_GCS) count, not a companion computer's; silent for
  COM_DL_LOSS_T while armed: NAV_DLL_ACT (0 off, 1 hold, 2 return, 3 land, 5 terminate, 6 disarm)
  (PX4: src/modules/commander/Commander.cpp, dataLinkCheck).
- Geofence breach (GF_MAX_HOR_DIST / GF_MAX_VER_DIST from home, 0 = off): GF_ACTION (0 none,
  1 warning, 2 hold, 3 return, 4 terminate, 5 land).
- Battery below BAT_LOW_THR / BAT_CRIT_THR / BAT_EMERGEN_THR: warnings; COM_LOW_BAT_ACT 2 lands at
  critical, 3 returns at critical and lands at emergency.
- COM_FAIL_ACT_T (PX4: src/modules/commander/failsafe/framework.cpp, failsafe.cpp): a return or land
  from the data-link, geofence or battery failsafes is preceded by COM_FAIL_ACT_T s of Hold ("Failsafe
  activated, entering Hold for N seconds"), then the action runs. No hold for terminate or disarm, for
  the offboard-loss fallback, when a failsafe return or land already runs, or with COM_FAIL_ACT_T <= 0.1.
  A mode switch during the hold is a user takeover: the delayed action is dropped.
- Failsafes clear when their condition clears, and on disarming (PX4: failsafe/framework.cpp: actions are
  removed on disarm; disarmed, no failsafe action is selected): after a failsafe landing and disarm the
  vehicle can be armed again, subject to the usual checks.
- Takeoff climbs to MIS_TAKEOFF_ALT (or the command's altitude) then holds (AUTO.LOITER); land
  descends at MPC_LAND_SPEED; landed for COM_DISARM_LAND s disarms; armed without taking off for
  COM_DISARM_PRFLT s disarms. Return climbs to RTL_RETURN_ALT, flies home, lands.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from px4sim import px4_custom_mode as px4_modes
from px4sim.battery import Battery
from px4sim.flight import FlightModel, MotionLimits
from px4sim.navigator import Carrot
from px4sim.params import ParamStore
from px4sim.px4_custom_mode import TERMINATION, MainMode, Px4Mode
from px4sim.px4_frames import heading_enu
from px4sim.setpoints import OffboardSetpoint, OffboardTracker
from quadsim.controller import Reference

# MAV_RESULT and MAV_SEVERITY values.
ACCEPTED, TEMPORARILY_REJECTED, DENIED, UNSUPPORTED, FAILED = 0, 1, 2, 3, 4
CRITICAL, WARNING, NOTICE, INFO = 2, 4, 5, 6
FORCE_MAGIC = 21196

_NEEDS_RC = {
    MainMode.MANUAL,
    MainMode.ALTCTL,
    MainMode.POSCTL,
    MainMode.ACRO,
    MainMode.STABILIZED,
    MainMode.RATTITUDE_LEGACY,
    MainMode.SIMPLE,
}
_USER_MODES = {px4_modes.OFFBOARD, px4_modes.HOLD, px4_modes.TAKEOFF, px4_modes.LAND, px4_modes.RTL}

Emit = Callable[[int, str], None]


@dataclass(frozen=True)
class ArmResult:
    """The outcome of an arm or disarm request: MAV_RESULT and, when refused, why."""

    result: int
    reason: str = ""


class Commander:
    """Arming state, flight mode, failsafes and the reference each mode flies (see the module docstring)."""

    def __init__(
        self,
        params: ParamStore,
        flight: FlightModel,
        battery: Battery,
        home_enu: NDArray[np.float64],
        default_mode: Px4Mode,
        emit: Emit,
    ) -> None:
        self.params = params
        self.flight = flight
        self.battery = battery
        self.home_enu = np.asarray(home_enu, dtype=np.float64)
        self.default_mode = default_mode
        self.emit = emit
        self.estimator_ok = True
        self.reset(0.0)

    def reset(self, now_s: float) -> None:
        """Boot state: disarmed on the ground at home, default mode, no failsafe."""
        self.armed = False
        self.mode = self.default_mode
        self.failsafes: set[str] = set()
        self.setpoint: OffboardSetpoint | None = None
        self.last_reference: Reference | None = None
        self._last_setpoint_s: float | None = None
        self._delayed: tuple[str, str] | None = None  # (failsafe, action) waiting out COM_FAIL_ACT_T
        self._delay_until_s = 0.0
        self._failsafe_action = ""  # the failsafe action the vehicle is carrying out
        self._last_gcs_heartbeat_s: float | None = None
        self._datalink_lost = False
        self._armed_at_s = now_s
        self._has_flown = False
        self._landed_at_s: float | None = now_s
        self._battery_level = 0
        self._rtl_phase = ""
        self._takeoff_height_m = 0.0
        self._offboard = OffboardTracker()
        self._carrot = Carrot()
        self.flight.reset(self.home_enu, 0.0)
        self._carrot.start(self.flight.state().position_m, 0.0)

    # ---- inputs ---------------------------------------------------------------------------------

    def on_setpoint(self, sp: OffboardSetpoint, now_s: float) -> None:
        """A SET_POSITION_TARGET_LOCAL_NED arrived."""
        self.setpoint = sp
        self._last_setpoint_s = now_s
        self.failsafes.discard("offboard_loss")

    def on_gcs_heartbeat(self, now_s: float) -> None:
        """A heartbeat from a ground station (MAV_TYPE_GCS) arrived."""
        self._last_gcs_heartbeat_s = now_s
        if self._datalink_lost:
            self._datalink_lost = False
            self.failsafes.discard("datalink_loss")
            self.emit(INFO, "Data link regained")

    def offboard_signal_ok(self, now_s: float) -> bool:
        """The offboard signal is fresh: the last setpoint is younger than COM_OF_LOSS_T.

        PX4: src/modules/commander/HealthAndArmingChecks/checks/offboardCheck.cpp (no rate is asked for).
        """
        if self._last_setpoint_s is None:
            return False
        return now_s < self._last_setpoint_s + self.params.get("COM_OF_LOSS_T")

    # ---- arming ---------------------------------------------------------------------------------

    def arming_refusal(self, now_s: float) -> str:
        """Why arming would be refused now ("" when every check passes)."""
        if not self.estimator_ok:
            return "Preflight Fail: ekf2 not ready (estimator unhealthy)"
        if self.battery.remaining < self.params.get("BAT_LOW_THR"):
            return f"Preflight Fail: low battery ({self.battery.remaining * 100:.0f} % remaining)"
        if self.geofence_breached():
            return "Preflight Fail: vehicle outside geofence"
        if self.failsafes:
            return f"Arming denied: failsafe active ({', '.join(sorted(self.failsafes))})"
        if self.mode == px4_modes.OFFBOARD and not self.offboard_signal_ok(now_s):
            return "Arming denied: no offboard signal"
        if self.mode.main in _NEEDS_RC or self.mode == TERMINATION:
            return f"Arming denied: {self.mode.name} needs manual control, which is not available"
        return ""

    def arm(self, force: bool, now_s: float) -> ArmResult:
        """MAV_CMD_COMPONENT_ARM_DISARM with param1 = 1."""
        if self.armed:
            return ArmResult(ACCEPTED)
        reason = "" if force else self.arming_refusal(now_s)
        if reason:
            self.emit(CRITICAL, reason)
            return ArmResult(TEMPORARILY_REJECTED, reason)
        self.armed = True
        self._armed_at_s = now_s
        self._has_flown = False
        self._landed_at_s = now_s if self.flight.landed else None
        self._enter_mode(self.mode, now_s)
        self.emit(INFO, "Armed by external command")
        return ArmResult(ACCEPTED)

    def disarm(self, force: bool, now_s: float, why: str = "external command") -> ArmResult:
        """MAV_CMD_COMPONENT_ARM_DISARM with param1 = 0 (refused in the air unless forced)."""
        if not self.armed:
            return ArmResult(ACCEPTED)
        if not force and not self.flight.landed:
            reason = "Disarming denied: not landed"
            self.emit(CRITICAL, reason)
            return ArmResult(TEMPORARILY_REJECTED, reason)
        self._set_disarmed()
        self.emit(INFO, f"Disarmed by {why}")
        return ArmResult(ACCEPTED)

    def _set_disarmed(self) -> None:
        """Disarm; failsafes whose condition has cleared go, as PX4 removes actions on disarm.

        PX4: src/modules/commander/failsafe/framework.cpp (removeActions on disarm; nothing selected while
        disarmed). The offboard signal is a requirement of the OFFBOARD mode only, checked again at arming.
        """
        self.armed = False
        self._delayed = None
        self._failsafe_action = ""
        self.failsafes.discard("offboard_loss")
        if not self.geofence_breached():
            self.failsafes.discard("geofence")

    # ---- modes ----------------------------------------------------------------------------------

    def request_mode(self, mode: Px4Mode, now_s: float) -> tuple[int, str]:
        """MAV_CMD_DO_SET_MODE: switch when PX4 would, else (MAV_RESULT, reason)."""
        if mode == self.mode:
            return ACCEPTED, ""
        if mode.main in _NEEDS_RC:
            reason = f"Switching to {mode.name} is currently not possible: no manual control input"
        elif mode == px4_modes.OFFBOARD and not self.offboard_signal_ok(now_s):
            reason = "Switching to Offboard is currently not possible: no offboard signal"
        elif mode not in _USER_MODES:
            reason = f"Switching to {mode.name} is currently not possible"
        else:
            self._enter_mode(mode, now_s)
            self._user_takeover()
            self.emit(INFO, f"Mode: {mode.name}")
            return ACCEPTED, ""
        self.emit(CRITICAL, reason)
        return TEMPORARILY_REJECTED, reason

    def takeoff(self, altitude_above_home_m: float | None, now_s: float) -> tuple[int, str]:
        """MAV_CMD_NAV_TAKEOFF: AUTO.TAKEOFF to the altitude (MIS_TAKEOFF_ALT when None)."""
        if self.failsafes:
            reason = f"Takeoff denied: failsafe active ({', '.join(sorted(self.failsafes))})"
            self.emit(CRITICAL, reason)
            return TEMPORARILY_REJECTED, reason
        height = self.params.get("MIS_TAKEOFF_ALT") if altitude_above_home_m is None else altitude_above_home_m
        self._takeoff_height_m = max(float(height), 0.5)
        self._enter_mode(px4_modes.TAKEOFF, now_s)
        self._user_takeover()
        self.emit(INFO, f"Takeoff to {self._takeoff_height_m:.1f} m above home")
        return ACCEPTED, ""

    def _enter_mode(self, mode: Px4Mode, now_s: float) -> None:
        state = self.flight.state()
        yaw = heading_enu(state.rotation)
        here = state.position_m.copy()
        if self.flight.landed:
            here[2] = self.flight.ground_z_m
        self.mode = mode
        if mode == px4_modes.OFFBOARD:
            self._offboard.reset(state, yaw)
        elif mode == px4_modes.TAKEOFF:
            if not self._takeoff_height_m:
                self._takeoff_height_m = self.params.get("MIS_TAKEOFF_ALT")
            target = np.array([here[0], here[1], self.home_enu[2] + self._takeoff_height_m])
            self._carrot.start(here, yaw, target)
        elif mode == px4_modes.LAND:
            self._carrot.start(here, yaw, np.array([here[0], here[1], self.flight.ground_z_m - 1.0]))
        elif mode == px4_modes.RTL:
            self._rtl_phase = "climb"
            climb_to = max(here[2], self.home_enu[2] + self.params.get("RTL_RETURN_ALT"))
            self._carrot.start(here, yaw, np.array([here[0], here[1], climb_to]))
        else:
            if not self.flight.landed:  # hold where braking at MPC_ACC_HOR_MAX stops, as PX4's hold does
                velocity = state.velocity_m_s
                here[:2] += (
                    velocity[:2] * np.hypot(velocity[0], velocity[1]) / (2.0 * self.params.get("MPC_ACC_HOR_MAX"))
                )
            self._carrot.start(here, yaw)

    # ---- failsafes ------------------------------------------------------------------------------

    def geofence_breached(self) -> bool:
        """Outside GF_MAX_HOR_DIST or above GF_MAX_VER_DIST from home (a zero limit is off)."""
        offset = self.flight.state().position_m - self.home_enu
        horizontal, vertical = self.params.get("GF_MAX_HOR_DIST"), self.params.get("GF_MAX_VER_DIST")
        return bool(
            (horizontal > 0.0 and math.hypot(offset[0], offset[1]) > horizontal)
            or (vertical > 0.0 and offset[2] > vertical)
        )

    def _user_takeover(self) -> None:
        """A mode the user asked for: a failsafe action waiting out COM_FAIL_ACT_T is dropped (PX4: framework.cpp)."""
        if self._delayed is not None:
            self._delayed = None
            self.emit(INFO, "Failsafe: user took over, delayed action dropped")
        self._failsafe_action = ""

    def _failsafe(self, reason: str, action: str, text: str, now_s: float, delayable: bool = True) -> None:
        """Trigger a failsafe: hold first for COM_FAIL_ACT_T where PX4 does, else run `action` now.

        PX4: src/modules/commander/failsafe/framework.cpp (checkFailsafe starts the delay only for actions
        whose user takeover is "Auto"; getSelectedAction never delays Disarm or Terminate;
        clearDelayIfNeeded drops it while a failsafe worse than Hold already runs).
        """
        self.failsafes.add(reason)
        if action in ("none", "warning") or not self.armed:
            self.emit(WARNING, f"Failsafe warning: {text}")
            return
        delay_s = self.params.get("COM_FAIL_ACT_T")
        already_acting = self._failsafe_action in ("return", "land") or self._delayed is not None
        if delayable and action in ("return", "land") and delay_s > 0.1 and not already_acting:
            self.emit(CRITICAL, f"Failsafe activated: {text}, entering Hold for {round(delay_s)} seconds")
            self._enter_mode(px4_modes.HOLD, now_s)
            self._delayed = (reason, action)
            self._delay_until_s = now_s + delay_s
            self._failsafe_action = "hold"
            return
        self.emit(CRITICAL, f"Failsafe activated: {text}, activating {action}")
        self._run_failsafe_action(action, now_s)

    def _run_failsafe_action(self, action: str, now_s: float) -> None:
        self._failsafe_action = action
        if action == "hold":
            self._enter_mode(px4_modes.HOLD, now_s)
        elif action == "return":
            self._enter_mode(px4_modes.RTL, now_s)
        elif action == "land":
            self._enter_mode(px4_modes.LAND, now_s)
        elif action == "terminate":
            self.mode = TERMINATION
            self.armed = False
            self._delayed = None
        elif action == "disarm":
            self._set_disarmed()

    def _run_delayed_failsafe(self, now_s: float) -> None:
        if self._delayed is None or now_s < self._delay_until_s:
            return
        reason, action = self._delayed
        self._delayed = None
        if self.armed and reason in self.failsafes:
            self.emit(CRITICAL, f"Failsafe: hold over, activating {action}")
            self._run_failsafe_action(action, now_s)

    def _check_failsafes(self, now_s: float) -> None:
        p = self.params.get
        if (
            self.armed
            and self.mode == px4_modes.OFFBOARD
            and "offboard_loss" not in self.failsafes
            and not self.offboard_signal_ok(now_s)
        ):
            actions = ("hold", "hold", "hold", "return", "land", "hold", "terminate", "disarm")
            act = int(p("COM_OBL_RC_ACT"))
            action = actions[act] if 0 <= act < len(actions) else "hold"
            # PX4: failsafe/failsafe.cpp, checkModeFallback: a mode fallback (takeover "Always"), no delay.
            self._failsafe("offboard_loss", action, "no offboard signal", now_s, delayable=False)
        if (
            not self._datalink_lost
            and self._last_gcs_heartbeat_s is not None
            and now_s - self._last_gcs_heartbeat_s > p("COM_DL_LOSS_T")
        ):
            self._datalink_lost = True
            dll = int(p("NAV_DLL_ACT"))
            if dll != 0:
                # PX4: failsafe/failsafe.cpp, fromNavDllOrRclActParam (terminate and disarm: takeover "Never")
                action = {1: "hold", 2: "return", 3: "land", 5: "terminate", 6: "disarm"}.get(dll, "warning")
                self._failsafe("datalink_loss", action, "no connection to the ground control station", now_s)
            else:
                self.emit(WARNING, "Data link lost")
        breached = self.geofence_breached()
        if breached and "geofence" not in self.failsafes and self.armed:
            gf = int(p("GF_ACTION"))
            action = ("none", "warning", "hold", "return", "terminate", "land")[gf] if 0 <= gf <= 5 else "warning"
            self._failsafe("geofence", action, "geofence breached", now_s)
        elif not breached:
            self.failsafes.discard("geofence")
        self._check_battery(now_s)

    def _check_battery(self, now_s: float) -> None:
        p = self.params.get
        remaining = self.battery.remaining
        level = (
            3
            if remaining < p("BAT_EMERGEN_THR")
            else 2
            if remaining < p("BAT_CRIT_THR")
            else (1 if remaining < p("BAT_LOW_THR") else 0)
        )
        names = {1: "battery_low", 2: "battery_critical", 3: "battery_emergency"}
        if level < self._battery_level:  # a fresh pack (or an injected charge): the warnings clear
            self.failsafes.difference_update(names[k] for k in range(level + 1, 4))
            self._battery_level = level
        if level <= self._battery_level:
            return
        self._battery_level = level
        texts = {1: "low battery", 2: "critical battery", 3: "emergency battery level"}
        act = int(p("COM_LOW_BAT_ACT"))
        action = "warning"
        if act == 2 and level >= 2:
            action = "land"
        elif act == 3:
            action = "return" if level == 2 else "land" if level == 3 else "warning"
        self._failsafe(names[level], action, f"{texts[level]} ({remaining * 100:.0f} % remaining)", now_s)

    # ---- the control period ---------------------------------------------------------------------

    def tick(self, now_s: float, dt_s: float) -> None:
        """One control period: failsafes, the reference of the mode, physics, land detection, auto-disarm."""
        self._check_failsafes(now_s)
        self._run_delayed_failsafe(now_s)
        ref = self._reference(now_s, dt_s) if self.armed else None
        was_landed = self.flight.landed
        self.flight.step(dt_s, self.armed, ref)
        self.battery.step(dt_s, self.armed, self.flight.total_thrust_n, self.flight.hover_thrust_n())
        if was_landed and not self.flight.landed:
            self._has_flown = True
            self._landed_at_s = None
            if self.armed:
                self.emit(INFO, "Takeoff detected")
        elif not was_landed and self.flight.landed:
            self._landed_at_s = now_s
            if self.armed:
                self.emit(INFO, "Landing detected")
        self._auto_disarm(now_s)

    def prearm_ok(self, now_s: float) -> bool:
        """MAV_SYS_STATUS_PREARM_CHECK health: the arming checks pass (always healthy while armed)."""
        return self.armed or not self.arming_refusal(now_s)

    def _auto_disarm(self, now_s: float) -> None:
        if not self.armed or not self.flight.landed or self._landed_at_s is None:
            return
        if self._has_flown:
            delay, why = self.params.get("COM_DISARM_LAND"), "landing"
        else:
            delay, why = self.params.get("COM_DISARM_PRFLT"), "auto preflight disarming"
        if delay > 0.0 and now_s - self._landed_at_s >= delay:
            self.disarm(True, now_s, why)

    def _speeds(self) -> tuple[float, float, float]:
        p = self.params.get
        return p("MPC_XY_CRUISE"), p("MPC_Z_VEL_MAX_UP"), p("MPC_Z_VEL_MAX_DN")

    def _reference(self, now_s: float, dt_s: float) -> Reference | None:
        ref = self._mode_reference(now_s, dt_s)
        self.last_reference = ref
        if ref is None:
            return None
        p = self.params.get
        xy_max = p("MPC_XY_VEL_MAX") if self.mode == px4_modes.OFFBOARD else p("MPC_XY_CRUISE")
        limits = MotionLimits(
            xy_max,
            p("MPC_Z_VEL_MAX_UP"),
            p("MPC_Z_VEL_MAX_DN"),
            p("MPC_ACC_HOR_MAX"),
            p("MPC_ACC_UP_MAX"),
            p("MPC_ACC_DOWN_MAX"),
        )
        return self.flight.limit_reference(ref, self.flight.state(), limits)

    def _mode_reference(self, now_s: float, dt_s: float) -> Reference | None:
        state = self.flight.state()
        p = self.params.get
        xy, up, down = self._speeds()
        if self.mode == px4_modes.OFFBOARD:
            if self.setpoint is None:
                return None
            return self._offboard.reference(self.setpoint, state, dt_s)
        if self.mode == px4_modes.TAKEOFF:
            ref = self._carrot.step(dt_s, xy, p("MPC_TKO_SPEED"), down)
            if self._carrot.reached() and abs(state.position_m[2] - self._carrot.target[2]) < 0.15:
                self.emit(INFO, "Takeoff complete, holding")
                self._takeoff_height_m = 0.0
                self._enter_mode(px4_modes.HOLD, now_s)
            return ref
        if self.mode == px4_modes.LAND or (self.mode == px4_modes.RTL and self._rtl_phase == "land"):
            return self._carrot.step(dt_s, xy, up, p("MPC_LAND_SPEED"))
        if self.mode == px4_modes.RTL:
            ref = self._carrot.step(dt_s, xy, up, down)
            if self._carrot.reached() and self._rtl_phase == "climb":
                self._rtl_phase = "return"
                target = np.array([self.home_enu[0], self.home_enu[1], self._carrot.position[2]])
                self._carrot.start(self._carrot.position, self._carrot.yaw_rad, target)
            elif self._carrot.reached() and self._rtl_phase == "return":
                self._rtl_phase = "land"
                target = np.array([self.home_enu[0], self.home_enu[1], self.flight.ground_z_m - 1.0])
                self._carrot.start(self._carrot.position, self._carrot.yaw_rad, target)
            return ref
        if self.mode == TERMINATION:
            return None
        if self.flight.landed:
            return None
        return self._carrot.step(dt_s, xy, up, down)

"""The vehicle's ULog: PX4's topics (NED, PX4's field names) from arming to disarming, through `ulog_writer`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from px4sim import px4_custom_mode as px4_modes
from px4sim.battery import Battery
from px4sim.commander import Commander
from px4sim.flight import FlightModel
from px4sim.params import ParamStore
from px4sim.px4_custom_mode import Px4Mode
from px4sim.px4_frames import enu_to_ned, quat_ned_frd_of_rotation, yaw_enu_to_ned
from px4sim.ulog_writer import PX4_TOPICS, UlogWriter

_TOPICS = ("vehicle_local_position", "trajectory_setpoint", "vehicle_attitude", "battery_status", "vehicle_status")
# PX4's vehicle_status.nav_state values of the modes this vehicle flies.
_NAV_STATE = {
    px4_modes.HOLD: 4,
    px4_modes.RTL: 5,
    px4_modes.OFFBOARD: 14,
    px4_modes.TAKEOFF: 17,
    px4_modes.LAND: 18,
}


def nav_state_of(mode: Px4Mode) -> int:
    """PX4's nav_state of a mode (0, manual, for the modes this vehicle does not fly)."""
    return _NAV_STATE.get(mode, 0)


class FlightLog:
    """One .ulg file: open at arming, a sample per call to `write_sample`, closed at disarming."""

    def __init__(self, path: Path, start_s: float) -> None:
        self.path = Path(path)
        self.writer = UlogWriter(self.path, _us(start_s), {"sys_name": "px4sim", "ver_hw": "SITL"})
        self._fields = {name: {f for f, _ in PX4_TOPICS[name]} for name in _TOPICS}
        for name in _TOPICS:
            self.writer.add_topic(name, PX4_TOPICS[name])

    def _write(self, topic: str, values: dict[str, object]) -> None:
        known = self._fields[topic]
        self.writer.write(topic, {k: v for k, v in values.items() if k in known})  # type: ignore[misc]

    def write_sample(
        self, now_s: float, commander: Commander, flight: FlightModel, battery: Battery, params: ParamStore
    ) -> None:
        """Log the vehicle's state, the reference it flies, its battery and its status at `now_s`."""
        t = _us(now_s)
        state = flight.state()
        p, v = enu_to_ned(state.position_m), enu_to_ned(state.velocity_m_s)
        self._write(
            "vehicle_local_position",
            {
                "timestamp": t,
                "timestamp_sample": t,
                "x": p[0],
                "y": p[1],
                "z": p[2],
                "vx": v[0],
                "vy": v[1],
                "vz": v[2],
                "xy_valid": True,
                "z_valid": True,
                "v_xy_valid": True,
                "v_z_valid": True,
            },
        )
        ref = commander.last_reference
        if ref is not None:
            self._write(
                "trajectory_setpoint",
                {
                    "timestamp": t,
                    "position": enu_to_ned(ref.position),
                    "velocity": enu_to_ned(ref.velocity),
                    "acceleration": enu_to_ned(ref.acceleration),
                    "jerk": np.zeros(3),
                    "yaw": yaw_enu_to_ned(ref.yaw_rad),
                    "yawspeed": 0.0,
                },
            )
        self._write(
            "vehicle_attitude",
            {"timestamp": t, "timestamp_sample": t, "q": quat_ned_frd_of_rotation(state.rotation)},
        )
        cells = int(params.get("BAT1_N_CELLS"))
        voltage = battery.voltage_v(cells, params.get("BAT1_V_CHARGED"), params.get("BAT1_V_EMPTY"))
        self._write(
            "battery_status",
            {
                "timestamp": t,
                "voltage_v": voltage,
                "current_a": battery.current_a,
                "current_average_a": battery.current_a,
                "discharged_mah": battery.consumed_mah,
                "remaining": battery.remaining,
                "connected": True,
                "cell_count": cells,
            },
        )
        self._write(
            "vehicle_status",
            {
                "timestamp": t,
                "arming_state": 2 if commander.armed else 1,
                "nav_state": nav_state_of(commander.mode),
                "nav_state_user_intention": nav_state_of(commander.mode),
                "failsafe": bool(commander.failsafes),
                "vehicle_type": 1,
            },
        )

    def log_message(self, severity: int, now_s: float, text: str) -> None:
        """A STATUSTEXT as a logged string (MAV_SEVERITY and ULog levels share their numbering)."""
        self.writer.log_message(min(max(severity, 0), 7), _us(now_s), text)

    def close(self) -> Path:
        """Finish the file (renamed into place)."""
        return self.writer.close()


def _us(seconds: float) -> int:
    return max(0, round(seconds * 1e6))

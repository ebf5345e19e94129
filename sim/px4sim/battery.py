"""A simple battery: charge drains with the current, the current grows with thrust, the voltage sags with charge.

Current is `idle_current_a` when disarmed and `hover_current_a * (thrust / hover thrust)^1.5` armed (rotor
power goes with thrust to the 3/2). Cell voltage runs linearly from BAT1_V_EMPTY (empty) to
BAT1_V_CHARGED (full), less the sag across `internal_resistance_ohm`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatteryConfig:
    """The pack.

    Attributes:
        capacity_mah: charge when full.
        initial_remaining: state of charge at boot (0..1).
        idle_current_a: draw when disarmed (avionics only).
        hover_current_a: draw in a hover.
        internal_resistance_ohm: voltage sag per ampere.
    """

    capacity_mah: float = 5000.0
    initial_remaining: float = 1.0
    idle_current_a: float = 0.3
    hover_current_a: float = 8.0
    internal_resistance_ohm: float = 0.02

    def __post_init__(self) -> None:
        if not self.capacity_mah > 0.0:
            raise ValueError(f"capacity_mah must be > 0, got {self.capacity_mah}")
        if not 0.0 <= self.initial_remaining <= 1.0:
            raise ValueError(f"initial_remaining must be in [0, 1], got {self.initial_remaining}")


class Battery:
    """State of charge, current and voltage of the pack."""

    def __init__(self, config: BatteryConfig | None = None) -> None:
        self.config = config or BatteryConfig()
        self.remaining = self.config.initial_remaining
        self.current_a = self.config.idle_current_a
        self.consumed_mah = 0.0

    def set_remaining(self, remaining: float) -> None:
        """Force the state of charge (0..1), e.g. to inject a low battery."""
        self.remaining = min(max(float(remaining), 0.0), 1.0)

    def step(self, dt_s: float, armed: bool, thrust_n: float, hover_thrust_n: float) -> None:
        """Drain the pack for `dt_s` at the current that the thrust asks for."""
        cfg = self.config
        if armed:
            ratio = max(thrust_n, 0.0) / hover_thrust_n
            self.current_a = cfg.idle_current_a + cfg.hover_current_a * ratio**1.5
        else:
            self.current_a = cfg.idle_current_a
        used_mah = self.current_a * dt_s / 3.6
        self.consumed_mah += used_mah
        self.remaining = max(0.0, self.remaining - used_mah / cfg.capacity_mah)

    def voltage_v(self, cells: int, v_charged: float, v_empty: float) -> float:
        """Pack voltage under the present load."""
        cell = v_empty + (v_charged - v_empty) * self.remaining
        return max(0.0, cells * cell - self.current_a * self.config.internal_resistance_ohm)

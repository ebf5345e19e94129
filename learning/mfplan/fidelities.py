"""The fidelity ladder: names, their fidelity-column values, and what one evaluation costs.

Cheapest first: "analytic" (differential flatness and rotor limits, milliseconds), "mujoco" (the
project's model flown by the tracking controller, ~0.15 s), "rotorpy" (the independent high-fidelity
simulator, ~1.6 s), which is the target fidelity the estimator predicts. The reward estimator sees a
fidelity as one input column with values in [0, 1] (1 = target), as BoTorch's multi-fidelity models
expect.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class Fidelity:
    """One rung of the ladder."""

    name: str
    value: float
    """The fidelity column's value in [0, 1]; the target fidelity is 1."""
    default_cost_s: float
    """Seconds per evaluation until measured wall times replace it."""


LADDER: tuple[Fidelity, ...] = (
    Fidelity("analytic", 0.0, 0.003),
    Fidelity("mujoco", 0.5, 0.15),
    Fidelity("rotorpy", 1.0, 1.6),
)
FIDELITY_NAMES: tuple[str, ...] = tuple(f.name for f in LADDER)
FIDELITY_VALUES: dict[str, float] = {f.name: f.value for f in LADDER}
TARGET_FIDELITY: str = LADDER[-1].name
TARGET_FIDELITY_VALUE: float = LADDER[-1].value


class UnknownFidelityError(ValueError):
    """A fidelity name or value that is not on the ladder."""


def fidelity_value(name: str) -> float:
    """The fidelity column's value of fidelity `name`."""
    try:
        return FIDELITY_VALUES[name]
    except KeyError:
        raise UnknownFidelityError(f"unknown fidelity {name!r}; expected one of {FIDELITY_NAMES}") from None


def fidelity_name(value: float, tolerance: float = 1e-6) -> str:
    """The name of the fidelity whose column value is `value`."""
    for rung in LADDER:
        if abs(rung.value - value) <= tolerance:
            return rung.name
    raise UnknownFidelityError(f"no fidelity has column value {value}; the ladder is {FIDELITY_VALUES}")


@dataclass
class FidelityCosts:
    """Seconds per evaluation at each fidelity: the defaults until measured, then a running median.

    `record` keeps the last `window` wall times of a fidelity; its cost is their median (robust to the
    slow first call of a fresh worker and to a machine that is briefly busy).
    """

    seconds: dict[str, float] = field(default_factory=lambda: {f.name: f.default_cost_s for f in LADDER})
    window: int = 51
    _samples: dict[str, deque[float]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        for name, cost_s in self.seconds.items():
            fidelity_value(name)
            if not cost_s > 0.0:
                raise ValueError(f"cost of {name!r} must be > 0 s, got {cost_s}")
        missing = set(FIDELITY_NAMES) - set(self.seconds)
        if missing:
            raise ValueError(f"costs missing for fidelities {sorted(missing)}")

    def cost_s(self, name: str) -> float:
        """Seconds one evaluation at fidelity `name` costs."""
        fidelity_value(name)
        return self.seconds[name]

    def record(self, name: str, wall_time_s: float) -> None:
        """Add one measured wall time; the cost becomes the median of the last `window` measurements."""
        self.record_many(name, (wall_time_s,))

    def record_many(self, name: str, wall_times_s: Iterable[float]) -> None:
        """Add measured wall times of fidelity `name` (non-positive or non-finite times are ignored)."""
        fidelity_value(name)
        samples = self._samples.setdefault(name, deque(maxlen=self.window))
        samples.extend(t for t in wall_times_s if 0.0 < t < float("inf"))
        if samples:
            self.seconds[name] = max(statistics.median(samples), 1e-6)

    def costs_at(self, fidelity_column: Tensor) -> Tensor:
        """Seconds per evaluation at fidelity-column values (piecewise linear between rungs).

        Args:
            fidelity_column: a `batch_shape`-dim tensor of values in [0, 1].

        Returns:
            A `batch_shape`-dim tensor of seconds, same dtype and device.
        """
        values = torch.tensor([f.value for f in LADDER], dtype=fidelity_column.dtype, device=fidelity_column.device)
        costs = torch.tensor(
            [self.seconds[f.name] for f in LADDER], dtype=fidelity_column.dtype, device=fidelity_column.device
        )
        x = fidelity_column.clamp(values[0], values[-1])
        upper = torch.searchsorted(values, x.contiguous()).clamp(1, len(LADDER) - 1)
        lower = upper - 1
        span = values[upper] - values[lower]
        weight = (x - values[lower]) / span
        return costs[lower] + weight * (costs[upper] - costs[lower])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot (costs and the measurement windows), for checkpoints."""
        return {
            "seconds": dict(self.seconds),
            "window": self.window,
            "samples": {name: list(samples) for name, samples in self._samples.items()},
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> FidelityCosts:
        """Rebuild from `to_dict`'s output."""
        costs = cls(seconds={str(k): float(v) for k, v in payload["seconds"].items()}, window=int(payload["window"]))
        for name, samples in payload.get("samples", {}).items():
            costs._samples[name] = deque((float(t) for t in samples), maxlen=costs.window)
        return costs

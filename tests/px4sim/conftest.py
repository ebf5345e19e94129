"""Fixtures for the simulated PX4 vehicle's tests: a vehicle pointed at a raw pymavlink ground station."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ground import Ground

from px4sim.autopilot import Px4SimConfig, SimulatedPx4

VehicleFactory = Callable[..., tuple[SimulatedPx4, Ground]]


@pytest.fixture
def make_vehicle() -> Iterator[VehicleFactory]:
    """Start vehicles (with their ground stations) on free loopback ports; stop them after the test."""
    started: list[tuple[SimulatedPx4, Ground]] = []

    def make(ground_key: bytes | None = None, **config: object) -> tuple[SimulatedPx4, Ground]:
        ground = Ground(signing_key=ground_key)
        config.setdefault("stream_rate_scale", 0.2)
        vehicle = SimulatedPx4(Px4SimConfig(url=ground.url, **config))  # type: ignore[arg-type]
        vehicle.start()
        started.append((vehicle, ground))
        ground.wait_peer()
        return vehicle, ground

    yield make
    for vehicle, ground in started:
        vehicle.stop()
        ground.close()

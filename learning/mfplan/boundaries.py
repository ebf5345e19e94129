"""Where a trajectory stops flying: the smallest slow-down of its segment times that a fidelity passes.

Each `BoundarySearch` bisects (in log space) one trajectory's slow-down factor in one wind; many
searches advance in lockstep so that every round's flights run in parallel. Used by the evaluation (the
baseline's time-feasibility curve) and by the calibration of the planner's safety margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mfplan.dispatch import EvaluationDispatcher
from minsnap import EndpointState, solve_min_snap


@dataclass
class BoundarySearch:
    """One search for the smallest slow-down `k` of `times_s` that flies feasibly in one wind."""

    waypoints: np.ndarray
    times_s: np.ndarray
    wind_seed: int
    low: float = 1.0
    start: EndpointState | None = None
    """A moving start (a replan in the air), kept exact at every slow-down; None: from rest."""
    high: float = float("nan")
    boundary: float = float("nan")
    """The smallest feasible factor found (to the tolerance): 1 when `times_s` itself flies, inf when not
    even `max_margin` does."""
    flight_seconds: float = 0.0
    """Wall time of this search's flights: what it costs when run on its own."""


def search_boundaries(
    dispatcher: EvaluationDispatcher,
    searches: list[BoundarySearch],
    fidelity: str,
    max_margin: float,
    tolerance: float,
) -> None:
    """Fill every search's `boundary` by bisection in log space, all searches in lockstep (parallel flights).

    Assumes feasibility is monotone in the slow-down, as it is for a trajectory that starts and ends at rest
    (from a moving start the path changes with the slow-down: the search then finds a boundary, not the first).
    """

    def fly(pairs: list[tuple[BoundarySearch, float]]) -> list[bool]:
        trajectories = [solve_min_snap(s.waypoints, k * s.times_s, start=s.start) for s, k in pairs]
        results = dispatcher.evaluate(
            [(t, fidelity) for t in trajectories], [s.wind_seed for s, _ in pairs], progress=f"search {fidelity}"
        )
        for (search, _), result in zip(pairs, results, strict=True):
            search.flight_seconds += result.wall_time_s
        return [r.feasible for r in results]

    ends = fly([(s, 1.0) for s in searches] + [(s, max_margin) for s in searches])
    count = len(searches)
    open_searches = []
    for search, at_one, at_max in zip(searches, ends[:count], ends[count:], strict=True):
        if at_one:
            search.boundary = 1.0
        elif not at_max:
            search.boundary = math.inf
        else:
            search.low, search.high = 1.0, max_margin
            open_searches.append(search)
    while open_searches:
        mids = [math.sqrt(s.low * s.high) for s in open_searches]
        for search, mid, ok in zip(open_searches, mids, fly(list(zip(open_searches, mids, strict=True))), strict=True):
            if ok:
                search.high = mid
            else:
                search.low = mid
        still = []
        for search in open_searches:
            if search.high / search.low <= 1.0 + tolerance:
                search.boundary = search.high
            else:
                still.append(search)
        open_searches = still

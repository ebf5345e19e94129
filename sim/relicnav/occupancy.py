"""Occupancy grids of a floor plan and geodesic distance fields on them (pure numpy).

A grid covers the plane x-z (miniworld's floor; y is up) with square cells of `cell_m` metres; cell
`(i, j)` has its centre at `(x0 + (i + 0.5) cell_m, z0 + (j + 0.5) cell_m)`. A cell is free when a disc of
the agent's radius plus a clearance, centred on the cell centre, touches no wall and no obstacle.

Distance fields are shortest paths on the 8-connected graph of free cells (a straight step costs `cell_m`,
a diagonal one `sqrt(2) cell_m`; a diagonal step is allowed only when both straight cells beside it are
free, so that paths do not cut wall corners), seeded with a cost per source cell. They are computed by
relaxing all cells at once until nothing changes (Bellman-Ford on the grid), which needs as many numpy
sweeps as the longest path has cells: about 10 ms on a 56 x 56 grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MOVES: tuple[tuple[int, int, float], ...] = (
    (1, 0, 1.0),
    (-1, 0, 1.0),
    (0, 1, 1.0),
    (0, -1, 1.0),
    (1, 1, math.sqrt(2.0)),
    (1, -1, math.sqrt(2.0)),
    (-1, 1, math.sqrt(2.0)),
    (-1, -1, math.sqrt(2.0)),
)
"""The 8 grid moves (di, dj, length in cells)."""


@dataclass(frozen=True)
class GridFrame:
    """Where a grid lies: its lower corner `(x0, z0)` in metres, its cell size and its shape (nx, nz)."""

    x0: float
    z0: float
    cell_m: float
    shape: tuple[int, int]

    @classmethod
    def covering(cls, min_x: float, max_x: float, min_z: float, max_z: float, cell_m: float) -> GridFrame:
        """The grid of `cell_m` cells that covers the rectangle [min_x, max_x] x [min_z, max_z]."""
        nx = math.ceil((max_x - min_x) / cell_m - 1e-9)
        nz = math.ceil((max_z - min_z) / cell_m - 1e-9)
        return cls(min_x, min_z, cell_m, (nx, nz))

    def centres(self) -> np.ndarray:
        """The cell centres: an `nx x nz x 2` array of (x, z) in metres."""
        xs = self.x0 + (np.arange(self.shape[0]) + 0.5) * self.cell_m
        zs = self.z0 + (np.arange(self.shape[1]) + 0.5) * self.cell_m
        return np.stack(np.meshgrid(xs, zs, indexing="ij"), axis=-1)

    def centre(self, cell: tuple[int, int]) -> np.ndarray:
        """The centre (x, z) of one cell, in metres."""
        return np.array([self.x0 + (cell[0] + 0.5) * self.cell_m, self.z0 + (cell[1] + 0.5) * self.cell_m])


def segment_distances(points: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest segment.

    Args:
        points: an `n x 2` array of (x, z).
        segments: an `s x 2 x 2` array of segment end points (x, z).

    Returns:
        an `n`-vector of distances (inf when there are no segments).
    """
    if len(segments) == 0:
        return np.full(len(points), np.inf)
    a, b = segments[None, :, 0, :], segments[None, :, 1, :]
    ab = b - a
    length_sq = np.maximum(np.sum(ab * ab, axis=-1), 1e-12)
    t = np.clip(np.sum((points[:, None, :] - a) * ab, axis=-1) / length_sq, 0.0, 1.0)
    nearest = a + t[..., None] * ab
    return np.asarray(np.min(np.linalg.norm(points[:, None, :] - nearest, axis=-1), axis=1))


def inside_convex_polygons(points: np.ndarray, polygons: list[np.ndarray]) -> np.ndarray:
    """Whether each point lies inside at least one convex polygon.

    Args:
        points: an `n x 2` array of (x, z).
        polygons: convex outlines, each an `m x 2` array of (x, z), either winding.
    """
    inside = np.zeros(len(points), dtype=bool)
    for outline in polygons:
        edges = np.roll(outline, -1, axis=0) - outline
        rel = points[:, None, :] - outline[None, :, :]
        cross = edges[None, :, 0] * rel[..., 1] - edges[None, :, 1] * rel[..., 0]
        inside |= np.all(cross > 0, axis=1) | np.all(cross < 0, axis=1)
    return inside


def free_cells(
    frame: GridFrame,
    walls: np.ndarray,
    floors: list[np.ndarray],
    radius_m: float,
    obstacles: Sequence[tuple[float, float, float]] = (),
) -> np.ndarray:
    """The `nx x nz` boolean mask of cells where a disc of `radius_m` fits on the floor.

    Args:
        frame: the grid.
        walls: an `s x 2 x 2` array of wall segments (x, z).
        floors: the convex floor outlines (rooms, corridors), each `m x 2`.
        radius_m: the disc's radius (the agent's radius plus a clearance).
        obstacles: discs (x, z, radius) the disc may not overlap.
    """
    points = frame.centres().reshape(-1, 2)
    free = inside_convex_polygons(points, floors) & (segment_distances(points, walls) >= radius_m)
    for x, z, r in obstacles:
        free &= np.hypot(points[:, 0] - x, points[:, 1] - z) >= radius_m + r
    return free.reshape(frame.shape)


def _shifted(values: np.ndarray, di: int, dj: int, fill: float | bool) -> np.ndarray:
    """`out[i, j] = values[i + di, j + dj]`, and `fill` outside the grid."""
    padded = np.pad(values, 1, constant_values=fill)
    nx, nz = values.shape
    return padded[1 + di : 1 + di + nx, 1 + dj : 1 + dj + nz]


def _move_allowed(free: np.ndarray, di: int, dj: int) -> np.ndarray:
    """Whether the move from `(i, j)` to `(i + di, j + dj)` is allowed, for every cell."""
    allowed = free & _shifted(free, di, dj, False)
    if di != 0 and dj != 0:
        allowed &= _shifted(free, di, 0, False) & _shifted(free, 0, dj, False)
    return allowed


def distance_field(free: np.ndarray, source_costs: np.ndarray, cell_m: float) -> np.ndarray:
    """Shortest-path cost from every cell to the cheapest source, in metres (inf where unreachable).

    Args:
        free: the `nx x nz` mask of free cells.
        source_costs: an `nx x nz` array, the cost of ending at each cell (inf: not a source). A source
            that is not free still ends paths, but no path passes through it.
        cell_m: the cell size in metres.
    """
    dist = np.where(np.isfinite(source_costs), source_costs, np.inf).astype(np.float64)
    allowed = [(_move_allowed(free, di, dj), di, dj, step * cell_m) for di, dj, step in MOVES]
    while True:
        updated = dist.copy()
        for mask, di, dj, cost in allowed:
            candidate = _shifted(dist, di, dj, np.inf) + cost
            np.minimum(updated, np.where(mask, candidate, np.inf), out=updated)
        if np.array_equal(updated, dist):
            return dist
        dist = updated


def sample_field(frame: GridFrame, field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The field at points: bilinear between the finite values of the four nearest cell centres.

    Args:
        frame: the grid.
        field: an `nx x nz` field (inf where unreachable).
        points: an `n x 2` array of (x, z).

    Returns:
        an `n`-vector. Where none of a point's four cells is finite: the nearest finite cell's value plus the
        straight distance to its centre (inf if the field has no finite cell).
    """
    u = (points[:, 0] - frame.x0) / frame.cell_m - 0.5
    v = (points[:, 1] - frame.z0) / frame.cell_m - 0.5
    i0, j0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = u - i0, v - j0
    total = np.zeros(len(points))
    weight_sum = np.zeros(len(points))
    for di, dj, weight in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)), (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):
        i, j = i0 + di, j0 + dj
        inside = (i >= 0) & (i < field.shape[0]) & (j >= 0) & (j < field.shape[1])
        value = np.full(len(points), np.inf)
        value[inside] = field[i[inside], j[inside]]
        usable = np.isfinite(value) & (weight > 0)
        total += np.where(usable, weight * np.where(usable, value, 0.0), 0.0)
        weight_sum += np.where(usable, weight, 0.0)
    result = np.where(weight_sum > 1e-6, total / np.maximum(weight_sum, 1e-6), np.inf)
    stranded = np.flatnonzero(weight_sum <= 1e-6)
    finite = np.argwhere(np.isfinite(field))
    for k in stranded if len(finite) else ():
        gaps = np.hypot(
            frame.x0 + (finite[:, 0] + 0.5) * frame.cell_m - points[k, 0],
            frame.z0 + (finite[:, 1] + 0.5) * frame.cell_m - points[k, 1],
        )
        nearest = int(np.argmin(gaps))
        result[k] = field[finite[nearest, 0], finite[nearest, 1]] + gaps[nearest]
    return result

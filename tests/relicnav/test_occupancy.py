"""The occupancy grid and its distance fields, against closed forms and an independent Dijkstra."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest

from relicnav.occupancy import GridFrame, distance_field, free_cells, sample_field, segment_distances


def dijkstra(free: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """Textbook Dijkstra on the 8-connected grid (diagonals only between two free side cells), unit cells."""
    dist = np.full(free.shape, np.inf)
    dist[source] = 0.0
    queue = [(0.0, source)]
    while queue:
        d, (i, j) = heapq.heappop(queue)
        if d > dist[i, j]:
            continue
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                a, b = i + di, j + dj
                if (di, dj) == (0, 0) or not (0 <= a < free.shape[0] and 0 <= b < free.shape[1]) or not free[a, b]:
                    continue
                if di and dj and not (free[i + di, j] and free[i, j + dj]):
                    continue
                step = math.sqrt(2.0) if di and dj else 1.0
                if d + step < dist[a, b]:
                    dist[a, b] = d + step
                    heapq.heappush(queue, (d + step, (a, b)))
    return dist


def test_open_grid_distance_is_the_octile_distance() -> None:
    free = np.ones((9, 13), dtype=bool)
    costs = np.full(free.shape, np.inf)
    costs[2, 3] = 0.0
    field = distance_field(free, costs, cell_m=0.25)
    di, dj = np.abs(np.arange(9)[:, None] - 2), np.abs(np.arange(13)[None, :] - 3)
    octile = np.maximum(di, dj) - np.minimum(di, dj) + math.sqrt(2.0) * np.minimum(di, dj)
    np.testing.assert_allclose(field, 0.25 * octile, rtol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_distance_field_matches_dijkstra_on_random_maps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    free = rng.random((20, 17)) > 0.3
    free[4, 5] = True
    costs = np.full(free.shape, np.inf)
    costs[4, 5] = 0.0
    field = distance_field(free, costs, cell_m=1.0)
    expected = dijkstra(free, (4, 5))
    assert np.array_equal(np.isinf(field), np.isinf(expected))
    np.testing.assert_allclose(field[np.isfinite(field)], expected[np.isfinite(expected)], rtol=1e-12)


def test_a_wall_forces_the_path_through_its_gap() -> None:
    free = np.ones((7, 7), dtype=bool)
    free[3, :] = False
    free[3, 6] = True  # the gap
    costs = np.full(free.shape, np.inf)
    costs[0, 0] = 0.0
    field = distance_field(free, costs, cell_m=1.0)
    assert np.isinf(field[3, 0])
    # (0,0) -> (2,6) -> (3,6) -> (4,6) -> (6,0), no diagonal past the wall's end: 10 + 4 sqrt(2), not 6
    assert field[6, 0] == pytest.approx(10.0 + 4.0 * math.sqrt(2.0))


def test_free_cells_keep_the_disc_off_walls_and_obstacles() -> None:
    frame = GridFrame.covering(0.0, 4.0, 0.0, 4.0, cell_m=0.25)
    square = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]])
    walls = np.stack([square, np.roll(square, -1, axis=0)], axis=1)
    free = free_cells(frame, walls, [square], radius_m=0.5, obstacles=[(2.0, 2.0, 0.3)])
    centres = frame.centres()
    off_walls = np.all((centres >= 0.5) & (centres <= 3.5), axis=-1)
    off_obstacle = np.hypot(centres[..., 0] - 2.0, centres[..., 1] - 2.0) >= 0.8
    assert np.array_equal(free, off_walls & off_obstacle)
    outside = free_cells(GridFrame.covering(5.0, 6.0, 5.0, 6.0, 0.25), walls, [square], radius_m=0.1)
    assert not outside.any()


def test_segment_distance_closed_forms() -> None:
    segments = np.array([[[0.0, 0.0], [2.0, 0.0]]])
    points = np.array([[1.0, 1.5], [-3.0, 4.0], [2.0, 0.0]])
    np.testing.assert_allclose(segment_distances(points, segments), [1.5, 5.0, 0.0])


def test_sampling_is_exact_on_linear_fields_and_falls_back_off_the_map() -> None:
    frame = GridFrame(x0=-1.0, z0=2.0, cell_m=0.5, shape=(8, 6))
    centres = frame.centres()
    field = 3.0 * centres[..., 0] - 2.0 * centres[..., 1] + 20.0
    points = np.random.default_rng(0).uniform([-0.75, 2.25], [2.75, 4.75], size=(50, 2))
    np.testing.assert_allclose(sample_field(frame, field, points), 3.0 * points[:, 0] - 2.0 * points[:, 1] + 20.0)
    sparse = np.full(frame.shape, np.inf)
    sparse[0, 0] = 1.0  # centre (-0.75, 2.25)
    far = np.array([[2.25, 6.25]])
    assert sample_field(frame, sparse, far)[0] == pytest.approx(1.0 + 5.0)

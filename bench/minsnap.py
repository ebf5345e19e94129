"""Benchmark of the closed-form minimum-snap solve against generic QP solvers on the same problems.

Prints one JSON object to stdout (progress goes to stderr). In one run it measures:

* `solve_min_snap` on 10 waypoints (x, y, z, yaw) against OSQP on the same coefficient-space QP
  (monomial coefficients in local time, snap cost, equality constraints as in the dense KKT test),
  both timed end to end from waypoints and times to coefficients; OSQP gets tight tolerances and
  polishing, and the largest position difference between the two answers is reported;
* against RotorPy's `MinSnap` (dense cvxopt QPs) on the same waypoints with RotorPy's own segment
  times, its velocity inequality made inactive;
* the solve time for 10 .. 1000 segments with a log-log slope (1 = linear growth).

Usage: ``python bench/minsnap.py [--smoke]`` (or ``SMOKE_TEST=1``) ; the smoke run takes seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from math import factorial
from typing import Any

import bench_prelude  # noqa: F401  (first: one BLAS thread, and this folder off sys.path)
import numpy as np
import osqp
import scipy
import scipy.sparse as sparse
from numpy.typing import NDArray

from minsnap import EndpointState, Trajectory, solve_min_snap
from runkit.config import smoke_requested

NUM_COEFFS = 8
TARGET_SPEEDUP_VS_OSQP = 20.0
TARGET_MAX_DIFF_M = 1e-6
TARGET_SCALING_SLOPE_MAX = 1.2  # "linear": the fitted exponent of time vs segments must not exceed ~1
ROTORPY_AGREEMENT_M = 1e-6  # an agreement check, not a project target (cvxopt runs at its default tolerances)


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run."""

    smoke: bool
    """Shrink everything to finish in seconds (for tests)."""
    repeats_ours: int
    """Timed repeats of `solve_min_snap` on 10 waypoints."""
    repeats_osqp: int
    """Timed repeats of OSQP (build + setup + solve) on the same problem."""
    repeats_rotorpy: int
    """Timed repeats of RotorPy's `MinSnap` constructor."""
    scaling_segments: tuple[int, ...]
    """Segment counts of the scaling sweep."""
    scaling_min_time_s: float
    """Minimum total time spent per size in the sweep (repeats grow until it is reached)."""
    seed: int = 0


def make_config(smoke: bool) -> BenchConfig:
    """Full or smoke-sized configuration."""
    if smoke:
        return BenchConfig(True, 200, 20, 3, (10, 30, 100), 0.05)
    return BenchConfig(False, 3000, 300, 30, (10, 30, 100, 300, 1000), 0.5)


def log(message: str) -> None:
    """Progress to stderr, keeping stdout for the JSON result."""
    print(f"[bench/minsnap] {message}", file=sys.stderr, flush=True)


def timed(function: Callable[[], Any], repeats: int) -> tuple[NDArray[np.float64], Any]:
    """Run `function` `repeats` times (after one warm-up call); return the wall times in s and its last result."""
    result = function()
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        result = function()
        times[i] = time.perf_counter() - start
    return times, result


def summary_ms(times_s: NDArray[np.float64]) -> dict[str, float | int]:
    """Median and p99 in ms."""
    return {
        "median_ms": float(np.median(times_s) * 1e3),
        "p99_ms": float(np.percentile(times_s, 99) * 1e3),
        "repeats": int(times_s.shape[0]),
    }


def random_waypoints(rng: np.random.Generator, num_waypoints: int) -> NDArray[np.float64]:
    """`N x 4` waypoints: a random walk with 0.5..3 m steps and yaw steps below pi/2."""
    directions = rng.normal(size=(num_waypoints - 1, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    steps = directions * rng.uniform(0.5, 3.0, (num_waypoints - 1, 1))
    positions = np.vstack([np.zeros(3), np.cumsum(steps, axis=0)])
    yaw = np.concatenate([[0.0], np.cumsum(rng.uniform(-1.5, 1.5, num_waypoints - 1))])
    return np.hstack([positions, yaw[:, None]])


# ---------------------------------------------------------------------------------------------
# The same problem as a generic sparse QP (OSQP).


def _falling(n: int, k: int) -> float:
    return float(factorial(n) // factorial(n - k)) if k <= n else 0.0


_FALLING = np.array([[_falling(j, k) for j in range(NUM_COEFFS)] for k in range(NUM_COEFFS)])
_POWERS = np.arange(NUM_COEFFS)
_SNAP_POWERS = _POWERS[4:, None] + _POWERS[None, 4:] - 7  # exponent of T in the snap Gram entries (a, b >= 4)
_SNAP_FACTORS = 2.0 * np.outer(_FALLING[4, 4:], _FALLING[4, 4:]) / _SNAP_POWERS  # with OSQP's 1/2


def _derivative_rows(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """`K x 4 x 8`: rows giving derivatives 0..3 at local times t of ``sum_j c_j t^j``."""
    exponent = np.maximum(_POWERS[None, :] - np.arange(4)[:, None], 0)  # 4 x 8
    return _FALLING[None, :4, :] * t[:, None, None] ** exponent[None]


def coefficient_qp(
    waypoints: NDArray[np.float64], segment_times_s: NDArray[np.float64], start: NDArray[np.float64]
) -> tuple[sparse.csc_matrix, sparse.csc_matrix, NDArray[np.float64]]:
    """Snap-cost QP in monomial coefficients of all segments and axes; the end state is at rest.

    Variables: ``x[((axis * M) + segment) * 8 + power]``. Equality constraints per axis: position at
    both ends of every segment, continuity of derivatives 1..3 at interior waypoints, derivatives
    1..3 at the first (`start`, `3 x D`) and last waypoint (zero). Built with vectorised numpy.

    Returns:
        (P, A, b): upper-triangular P of the cost ``0.5 x^T P x`` (the integral of squared snap) and
        ``A x = b``.
    """
    num_segments = segment_times_s.shape[0]
    num_axes = waypoints.shape[1]
    seg = np.arange(num_segments)

    gram = _SNAP_FACTORS[None] * segment_times_s[:, None, None] ** _SNAP_POWERS[None]  # M x 4 x 4
    local = np.arange(4, NUM_COEFFS)
    gram_rows = (NUM_COEFFS * seg[:, None, None] + local[None, :, None]).repeat(4, axis=2)
    gram_cols = (NUM_COEFFS * seg[:, None, None] + local[None, None, :]).repeat(4, axis=1)
    size = NUM_COEFFS * num_segments
    p_axis = sparse.coo_matrix((gram.ravel(), (gram_rows.ravel(), gram_cols.ravel())), shape=(size, size))

    at_start = _derivative_rows(np.zeros(1))[0]  # 4 x 8
    at_end = _derivative_rows(segment_times_s)  # M x 4 x 8
    col = NUM_COEFFS * seg[:, None] + _POWERS[None, :]  # M x 8
    interior = seg[:-1]
    blocks = [  # (row values K x 8, columns K x 8), one row each
        (np.broadcast_to(at_start[0], (num_segments, NUM_COEFFS)), col),  # position at segment starts
        (at_end[:, 0], col),  # position at segment ends
    ]
    for order in (1, 2, 3):  # continuity: end of segment i minus start of segment i + 1
        values = np.hstack([at_end[interior, order], -np.broadcast_to(at_start[order], (interior.size, NUM_COEFFS))])
        blocks.append((values, np.hstack([col[interior], col[interior + 1]])))
    for order in (1, 2, 3):
        blocks.append((at_start[order][None], col[:1]))
        blocks.append((at_end[-1:, order], col[-1:]))
    values_parts, rows_parts, cols_parts = [], [], []
    num_rows = 0
    for values, cols in blocks:
        count, width = values.shape
        values_parts.append(values.ravel())
        rows_parts.append(np.repeat(np.arange(num_rows, num_rows + count), width))
        cols_parts.append(cols.ravel())
        num_rows += count
    a_axis = sparse.coo_matrix(
        (np.concatenate(values_parts), (np.concatenate(rows_parts), np.concatenate(cols_parts))),
        shape=(num_rows, size),
    )

    zeros = np.zeros((num_segments - 1, num_axes))
    rhs = np.vstack(
        [waypoints[:-1], waypoints[1:], zeros, zeros, zeros]
        + [np.vstack([start[order - 1], np.zeros(num_axes)]) for order in (1, 2, 3)]
    )  # num_rows x D, rows in the order of `blocks`
    identity = sparse.identity(num_axes, format="csc")
    p_matrix = sparse.triu(sparse.kron(identity, p_axis), format="csc")
    a_matrix = sparse.kron(identity, a_axis, format="csc")
    return p_matrix, a_matrix, rhs.T.ravel()


OSQP_SETTINGS: dict[str, Any] = {
    "verbose": False,
    # Tight, and polishing (a KKT solve on the active set, here every constraint) then makes the answer
    # exact; at 1e-10 ADMM stalls at max_iter on this problem without ever polishing.
    "eps_abs": 1e-8,
    "eps_rel": 1e-8,
    "max_iter": 100_000,
    "polishing": True,
    "polish_refine_iter": 10,
}


def solve_with_osqp(
    waypoints: NDArray[np.float64], segment_times_s: NDArray[np.float64], start: NDArray[np.float64]
) -> tuple[NDArray[np.float64], Any]:
    """Build the QP, set OSQP up and solve; return coefficients `M x 4 x 8` and OSQP's info."""
    p_matrix, a_matrix, b = coefficient_qp(waypoints, segment_times_s, start)
    solver = osqp.OSQP()
    solver.setup(p_matrix, np.zeros(p_matrix.shape[0]), a_matrix, b, b, **OSQP_SETTINGS)
    result = solver.solve()
    num_segments = segment_times_s.shape[0]
    coefficients = result.x.reshape(waypoints.shape[1], num_segments, NUM_COEFFS).transpose(1, 0, 2)
    return np.ascontiguousarray(coefficients), result.info


def max_position_difference(ours: Trajectory, coefficients: NDArray[np.float64], num_samples: int = 2000) -> float:
    """Largest |position difference| (m) between our trajectory and other coefficients on the same knots."""
    other = Trajectory(segment_times_s=ours.segment_times_s, coefficients=coefficients, waypoints=ours.waypoints)
    times = np.linspace(0.0, ours.duration_s, num_samples)
    return float(np.abs(ours.position(times) - other.position(times)).max())


def bench_vs_osqp(config: BenchConfig) -> dict[str, Any]:
    """Ours vs OSQP on 10 waypoints, replanning from a moving start.

    OSQP is timed three ways: end to end (build the sparse QP, set up, solve: what a replan with new
    waypoints and times costs, and what `solve_min_snap` does), setup + solve with the matrices
    prebuilt, and the solve (ADMM + polish) alone after setup. The headline speedup is end to end.
    """
    rng = np.random.default_rng(config.seed)
    waypoints = random_waypoints(rng, 10)
    times = rng.uniform(0.8, 2.5, 9)
    start = EndpointState(velocity=np.array([1.0, -0.5, 0.2]), acceleration=np.array([0.5, 0.0, -0.3]), yaw_rate=0.2)
    start_array = start.as_array()

    log(f"solve_min_snap, 10 waypoints, {config.repeats_ours} repeats")
    ours_times, ours = timed(lambda: solve_min_snap(waypoints, times, start=start), config.repeats_ours)
    log(f"OSQP end to end (build + setup + solve), {config.repeats_osqp} repeats")
    end_to_end_times, (osqp_coefficients, info) = timed(
        lambda: solve_with_osqp(waypoints, times, start_array), config.repeats_osqp
    )
    p_matrix, a_matrix, b = coefficient_qp(waypoints, times, start_array)
    q = np.zeros(p_matrix.shape[0])

    def set_up() -> Any:
        solver = osqp.OSQP()
        solver.setup(p_matrix, q, a_matrix, b, b, **OSQP_SETTINGS)
        return solver

    log(f"OSQP setup + solve with prebuilt matrices, {config.repeats_osqp} repeats")
    setup_solve_times, _ = timed(lambda: set_up().solve(), config.repeats_osqp)
    solve_only_times = np.empty(config.repeats_osqp)
    for k in range(config.repeats_osqp):
        solver = set_up()
        begin = time.perf_counter()
        solver.solve()
        solve_only_times[k] = time.perf_counter() - begin

    difference = max_position_difference(ours, osqp_coefficients)
    ours_ms = summary_ms(ours_times)
    osqp_ms = {
        "end_to_end": summary_ms(end_to_end_times),
        "setup_and_solve": summary_ms(setup_solve_times),
        "solve_only": summary_ms(solve_only_times),
    }
    reached = difference <= TARGET_MAX_DIFF_M
    return {
        "problem": "10 waypoints (x, y, z, yaw), 9 segments of 0.8..2.5 s, moving start, rest at the end",
        "ours": ours_ms,
        "osqp": {
            **osqp_ms,
            "status": str(info.status),
            "polish_status": int(info.status_polish),
            "iterations": int(info.iter),
            "settings": {key: value for key, value in OSQP_SETTINGS.items() if key != "verbose"},
            "variables": int(p_matrix.shape[0]),
            "equality_constraints": int(a_matrix.shape[0]),
        },
        "speedup_vs_osqp": osqp_ms["end_to_end"]["median_ms"] / ours_ms["median_ms"],
        "speedup_vs_osqp_setup_and_solve": osqp_ms["setup_and_solve"]["median_ms"] / ours_ms["median_ms"],
        "speedup_vs_osqp_solve_only": osqp_ms["solve_only"]["median_ms"] / ours_ms["median_ms"],
        "speedup_note": "speedup_vs_osqp is end to end (waypoints and times in, coefficients out) on both sides",
        "max_abs_diff_vs_osqp_m": difference,
        "osqp_reached_tolerance": bool(reached),
        "osqp_note": (
            f"OSQP's polished answer agrees to within {TARGET_MAX_DIFF_M} m"
            if reached
            else f"OSQP did not reach {TARGET_MAX_DIFF_M} m with these settings; achieved {difference:.3g} m"
        ),
    }


# ---------------------------------------------------------------------------------------------
# RotorPy's MinSnap (cvxopt).


def bench_vs_rotorpy(config: BenchConfig) -> dict[str, Any]:
    """Ours vs RotorPy's `MinSnap` with RotorPy's segment times and an inactive velocity bound."""
    from rotorpy.trajectories.minsnap import MinSnap

    rng = np.random.default_rng(config.seed + 1)
    waypoints = random_waypoints(rng, 10)
    v_start = np.array([0.5, 0.0, 0.0])
    v_max = 1e4  # RotorPy bounds velocity at segment midpoints; this high the bound is inactive
    yaw_rate_max = 1e4

    def rotorpy_solve() -> Any:
        return MinSnap(
            waypoints[:, :3],
            yaw_angles=waypoints[:, 3],
            yaw_rate_max=yaw_rate_max,
            v_max=v_max,
            v_avg=1.5,
            v_start=list(v_start),
            v_end=[0.0, 0.0, 0.0],
            verbose=False,
        )

    log(f"RotorPy MinSnap (cvxopt), {config.repeats_rotorpy} repeats")
    rotorpy_times, reference = timed(rotorpy_solve, config.repeats_rotorpy)
    segment_times = np.asarray(reference.delta_t, dtype=np.float64)
    start = EndpointState(velocity=v_start)
    log(f"solve_min_snap on RotorPy's segment times, {config.repeats_ours} repeats")
    ours_times, ours = timed(lambda: solve_min_snap(waypoints, segment_times, start=start), config.repeats_ours)

    sample_times = np.linspace(0.0, float(reference.t_keyframes[-1]), 400)
    theirs = np.array([reference.update(t)["x"] for t in sample_times])
    their_yaw = np.array([reference.update(t)["yaw"] for t in sample_times])
    values = ours.derivatives(sample_times, max_order=1)
    midpoint_speeds = np.linalg.norm(
        ours.derivatives(ours.knot_times_s[:-1] + 0.5 * ours.segment_times_s, max_order=1)[1, :, :3], axis=1
    )
    ours_summary = summary_ms(ours_times)
    rotorpy_summary = summary_ms(rotorpy_times)
    difference = float(np.abs(values[0, :, :3] - theirs).max())
    return {
        "problem": "10 waypoints (x, y, z, yaw), RotorPy's times from v_avg = 1.5 m/s, start at 0.5 m/s in x",
        "ours": ours_summary,
        "rotorpy": rotorpy_summary,
        "time_ratio_rotorpy_over_ours": rotorpy_summary["median_ms"] / ours_summary["median_ms"],
        "max_abs_diff_vs_rotorpy_m": difference,
        "max_abs_yaw_diff_vs_rotorpy_rad": float(np.abs(values[0, :, 3] - their_yaw).max()),
        "velocity_bound_inactive": bool(midpoint_speeds.max() < v_max),
        "rotorpy_segment_times_s": segment_times.tolist(),
        "differences_between_the_problems": [
            "RotorPy allocates segment times as distance / v_avg; ours is given the same times",
            "RotorPy adds midpoint velocity inequalities (v_max, yaw_rate_max); set to 1e4 they are inactive",
            "RotorPy also imposes snap continuity, which the unconstrained optimum satisfies anyway",
            "boundary conditions agree here: RotorPy fixes velocity (v_start, v_end) and zero acceleration and "
            "jerk at both ends, and zero yaw rate; ours is given the same EndpointState (it also allows "
            "non-zero acceleration, jerk and yaw rates, which RotorPy cannot express)",
            "RotorPy does not unwrap yaw; the yaw steps here are below pi/2 so unwrapping changes nothing",
            "RotorPy drops waypoints closer than 0.1 m; here all are 0.5 m or more apart",
            "RotorPy solves four dense QPs with cvxopt's interior-point method and default tolerances, "
            "so agreement is to cvxopt's accuracy, not to rounding",
        ],
    }


# ---------------------------------------------------------------------------------------------
# Scaling with the number of segments.


def bench_scaling(config: BenchConfig) -> dict[str, Any]:
    """Median solve time per segment count, and the log-log slope."""
    rng = np.random.default_rng(config.seed + 2)
    medians = []
    for segments in config.scaling_segments:
        waypoints = random_waypoints(rng, segments + 1)
        times = rng.uniform(0.5, 2.0, segments)
        solve_min_snap(waypoints, times)
        begin = time.perf_counter()
        samples: list[float] = []
        while len(samples) < 5 or time.perf_counter() - begin < config.scaling_min_time_s:
            start = time.perf_counter()
            solve_min_snap(waypoints, times)
            samples.append(time.perf_counter() - start)
        medians.append(float(np.median(samples)))
        log(f"scaling: {segments} segments, median {medians[-1] * 1e3:.3f} ms over {len(samples)} repeats")
    segments_array = np.array(config.scaling_segments, dtype=np.float64)
    medians_array = np.array(medians)
    slope = float(np.polyfit(np.log(segments_array), np.log(medians_array), 1)[0])
    large = segments_array >= 100
    slope_large = (
        float(np.polyfit(np.log(segments_array[large]), np.log(medians_array[large]), 1)[0])
        if large.sum() >= 2
        else None
    )
    return {
        "segments": list(config.scaling_segments),
        "median_ms": (medians_array * 1e3).tolist(),
        "us_per_segment": (medians_array / segments_array * 1e6).tolist(),
        "scaling_slope": slope,
        "scaling_slope_100_segments_and_up": slope_large,
        "note": "slope of log(time) against log(segments); per-call overhead makes it below 1 at small sizes",
    }


def run(config: BenchConfig) -> dict[str, Any]:
    """Run every part and assemble the result with targets and pass flags."""
    osqp_part = bench_vs_osqp(config)
    rotorpy_part = bench_vs_rotorpy(config)
    scaling_part = bench_scaling(config)
    return {
        "benchmark": "minsnap",
        "smoke": config.smoke,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "threads": "BLAS/OpenMP limited to 1 thread",
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "osqp": getattr(osqp, "__version__", "unknown"),
        },
        "solve_10_waypoints_ms": osqp_part["ours"],
        "speedup_vs_osqp": osqp_part["speedup_vs_osqp"],
        "max_abs_diff_vs_osqp_m": osqp_part["max_abs_diff_vs_osqp_m"],
        "time_ratio_rotorpy_over_ours": rotorpy_part["time_ratio_rotorpy_over_ours"],
        "max_abs_diff_vs_rotorpy_m": rotorpy_part["max_abs_diff_vs_rotorpy_m"],
        "scaling_slope": scaling_part["scaling_slope"],
        "vs_osqp": osqp_part,
        "vs_rotorpy": rotorpy_part,
        "scaling": scaling_part,
        "targets": {
            "speedup_vs_osqp_min": TARGET_SPEEDUP_VS_OSQP,
            "max_abs_diff_vs_osqp_m_max": TARGET_MAX_DIFF_M,
            "scaling_slope_max": TARGET_SCALING_SLOPE_MAX,  # both the full fit and the fit from 100 segments up
            "max_abs_diff_vs_rotorpy_m_max": ROTORPY_AGREEMENT_M,
        },
        "pass": {
            "speedup_vs_osqp": osqp_part["speedup_vs_osqp"] >= TARGET_SPEEDUP_VS_OSQP,
            "max_abs_diff_vs_osqp_m": osqp_part["max_abs_diff_vs_osqp_m"] <= TARGET_MAX_DIFF_M,
            "scaling_slope": all(
                slope <= TARGET_SCALING_SLOPE_MAX
                for slope in (scaling_part["scaling_slope"], scaling_part["scaling_slope_100_segments_and_up"])
                if slope is not None
            ),
            "max_abs_diff_vs_rotorpy_m": rotorpy_part["max_abs_diff_vs_rotorpy_m"] <= ROTORPY_AGREEMENT_M,
        },
    }


def main() -> None:
    """Parse the command line, run, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="shrink the run to a few seconds (also SMOKE_TEST=1)")
    args = parser.parse_args()
    smoke = smoke_requested(args.smoke)
    started = time.perf_counter()
    result = run(make_config(smoke))
    result["wall_time_s"] = time.perf_counter() - started
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

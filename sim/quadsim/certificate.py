"""A safety certificate for a minimum-snap trajectory: bounds that hold over whole segments, not at samples.

Speed, acceleration, the excursion outside the waypoints' box, the ground clearance and the geofence are
convex functions of the position's derivatives: `minsnap.bounds` bounds them over every segment exactly
(convex hull of the Bernstein control points, with adaptive halving). The rotor speeds are not polynomial
(differential flatness: `quadsim.flatness`), so `rotor_speed_bounds` samples them densely and adds a margin
for what can happen between samples, under the assumption stated in its docstring. A trajectory passes when
every bound is inside its limit; otherwise each broken limit is reported with its value and time.

The thrust never vanishes and the heading is always defined where the vertical acceleration stays above
-g (the thrust then points upwards), and that is certified over whole segments too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from minsnap import Trajectory
from minsnap.basis import NUM_COEFFS
from minsnap.bounds import ConvexFunction, bernstein_control_points, max_convex_bounds
from quadsim.flatness import flat_rotor_thrusts
from quadsim.geofence import Geofence
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

_DERIVATIVE_FACTORS = np.array(
    [[math.perm(j, k) for j in range(NUM_COEFFS)] for k in range(5)], dtype=np.float64
)  # [k, j]: factor of t^(j-k) in the k-th derivative of t^j


@dataclass(frozen=True)
class SafetyLimits:
    """What a trajectory must respect to be certified.

    Attributes:
        max_speed_m_s: speed limit; None takes the vehicle's `max_speed_m_s`, and a value may only be lower.
        max_acceleration_m_s2: acceleration limit; None takes the vehicle's, and a value may only be lower.
        max_tilt_deg: limit of the thrust axis's tilt from vertical (the attitude the trajectory asks for, by
            differential flatness); None takes the vehicle's, and a value may only be lower.
        max_excursion_m: how far the trajectory may go outside the axis-aligned box of the region points
            (by default its waypoints, the first being the start).
        ground_clearance_m: the lowest height allowed.
        geofence: the volume the trajectory must stay inside; None: no geofence.
        rotor_limits: check every rotor's required speed against the vehicle's range.
    """

    max_speed_m_s: float | None = None
    max_acceleration_m_s2: float | None = None
    max_tilt_deg: float | None = None
    max_excursion_m: float = 2.0
    ground_clearance_m: float = 0.03
    geofence: Geofence | None = None
    rotor_limits: bool = True

    def __post_init__(self) -> None:
        if self.max_tilt_deg is not None and not 0 < self.max_tilt_deg < 90:
            raise ValueError(f"max_tilt_deg must be in (0, 90) (or None for the vehicle's), got {self.max_tilt_deg}")
        for name in ("max_speed_m_s", "max_acceleration_m_s2"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 (or None for the vehicle's), got {value}")
        if not self.max_excursion_m >= 0:
            raise ValueError(f"max_excursion_m must be >= 0, got {self.max_excursion_m}")
        if not math.isfinite(self.ground_clearance_m):
            raise ValueError(f"ground_clearance_m must be finite, got {self.ground_clearance_m}")


_UNITS = {
    "speed": ("m/s", ">"),
    "acceleration": ("m/s^2", ">"),
    "tilt": ("deg", ">"),
    "excursion": ("m", ">"),
    "ground clearance": ("m", "<"),
    "geofence": ("m", ">"),
    "rotor speed max": ("rad/s", ">"),
    "rotor speed min": ("rad/s", "<"),
    "singular": ("m/s^2", "<"),
}


@dataclass(frozen=True)
class Violation:
    """One limit the trajectory breaks, or cannot be proved to keep.

    Attributes:
        constraint: "speed", "acceleration", "excursion", "ground clearance", "geofence", "rotor speed max",
            "rotor speed min", "singular" or "non-finite".
        value: the certified bound of the quantity (>= the worst value it takes); for "geofence" the distance
            outside the fence, for "singular" the lowest vertical acceleration plus g.
        limit: the limit it breaks.
        time_s: where its worst value was found (trajectory time).
    """

    constraint: str
    value: float
    limit: float
    time_s: float

    def describe(self) -> str:
        """One line, e.g. "speed 9.5 m/s > limit 6.0 m/s at t=1.23 s"."""
        if self.constraint == "non-finite":
            return "non-finite coefficients or segment times"
        unit, relation = _UNITS[self.constraint]
        prefix = "singular (thrust may vanish: vertical acceleration + g" if self.constraint == "singular" else ""
        name = f"{prefix} {self.value:.4g} {unit})" if prefix else f"{self.constraint} {self.value:.4g} {unit}"
        return f"{name} {relation} limit {self.limit:.4g} {unit} at t={self.time_s:.3f} s"


@dataclass(frozen=True)
class CertificateResult:
    """Outcome of `TrajectoryCertificate.check`.

    Attributes:
        passed: every limit is certified to hold over the whole trajectory.
        violations: each limit broken (or not provably kept), in the order of the checks.
        bounds: the certified bound of each quantity: "max_speed_m_s", "max_acceleration_m_s2",
            "max_excursion_m", "min_z_m", "geofence_excess_m" (<= 0: inside), "min_vertical_accel_plus_g_m_s2",
            "max_rotor_speed_rad_s", "min_rotor_speed_rad_s" (margin for the gaps between samples included).
        wall_time_s: time the check took.
    """

    passed: bool
    violations: tuple[Violation, ...]
    bounds: dict[str, float]
    wall_time_s: float

    @property
    def reason(self) -> str:
        """The empty string when passed; otherwise every violation, described, joined by "; "."""
        return "; ".join(v.describe() for v in self.violations)

    @property
    def constraint(self) -> str:
        """The empty string when passed; otherwise the first violation's constraint."""
        return self.violations[0].constraint if self.violations else ""


@dataclass(frozen=True)
class RotorSpeedBounds:
    """Certified range of every rotor's required speed along a trajectory, and the samples behind it.

    Attributes:
        max_rad_s, min_rad_s: bounds of the signed rotor speeds over the whole trajectory, margin included.
        max_time_s, min_time_s: where the highest and lowest bounds were found.
        times_s: `K` sample times (sorted; a knot appears once per segment that ends or starts there).
        thrusts_n: `K x 4` sampled rotor thrusts (signed); `speeds_rad_s` gives the speeds.
        thrust_coeff: the vehicle's thrust coefficient k (thrust = k w^2), for `speeds_rad_s`.
        singular: `K` flags where thrust vanishes or the heading is undefined.
        heights_m: `K` sampled heights.
    """

    max_rad_s: float
    min_rad_s: float
    max_time_s: float
    min_time_s: float
    times_s: NDArray[np.float64]
    thrusts_n: NDArray[np.float64]
    thrust_coeff: float
    singular: NDArray[np.bool_]
    heights_m: NDArray[np.float64]

    @property
    def speeds_rad_s(self) -> NDArray[np.float64]:
        """`K x 4` sampled rotor speeds (signed: negative where thrust would be negative)."""
        return _speed(self.thrusts_n, self.thrust_coeff)


def _shifted_coefficients(trajectory: Trajectory) -> NDArray[np.float64]:
    """`M x 20 x 8`: [m, 4 d + a, j] is the coefficient of t^j in the d-th derivative of segment m's axis a."""
    coefficients = trajectory.coefficients
    shifted = np.zeros((coefficients.shape[0], 5, 4, NUM_COEFFS))
    for k in range(5):
        shifted[:, k, :, : NUM_COEFFS - k] = coefficients[:, :, k:] * _DERIVATIVE_FACTORS[k, k:]
    return shifted.reshape(coefficients.shape[0], 20, NUM_COEFFS)


def _derivatives_at(
    shifted: NDArray[np.float64], segments: NDArray[np.intp], local_s: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Axis-major derivatives `5 x 4 x K` (order 0..4, axis, sample) of the given segments at local times (no
    clamping to a segment). Many samples: `segments` must be sorted (one product per segment); few: any order."""
    k = local_s.shape[0]
    powers = np.empty((NUM_COEFFS, k))  # 8 x K: row j holds t^j (a running product, as np.vander takes it)
    powers[0] = 1.0
    powers[1] = local_s
    for j in range(2, NUM_COEFFS):
        np.multiply(powers[j - 1], local_s, out=powers[j])
    if k <= 256:
        return np.einsum("kdj,jk->dk", shifted[segments], powers).reshape(5, 4, k)
    out = np.empty((20, k))
    edges = np.searchsorted(segments, np.arange(shifted.shape[0] + 1))
    for m in np.flatnonzero(edges[1:] > edges[:-1]):
        rows = slice(edges[m], edges[m + 1])
        np.matmul(shifted[m], powers[:, rows], out=out[:, rows])
    return out.reshape(5, 4, k)


def _segment_derivatives(
    trajectory: Trajectory, segments: NDArray[np.intp], local_s: NDArray[np.float64]
) -> NDArray[np.float64]:
    """`5 x K x 4` derivatives 0..4 of the given segments' polynomials at local times (no clamping to a segment);
    `segments` must be sorted."""
    derivatives = _derivatives_at(_shifted_coefficients(trajectory), segments, local_s)
    return np.ascontiguousarray(derivatives.transpose(0, 2, 1))


def _hull_max_norm(points: NDArray[np.float64], slack: NDArray[np.float64], axes: slice) -> NDArray[np.float64]:
    """Upper bound of the Euclidean norm over `axes` of a vector polynomial on each piece: the largest norm of
    its Bernstein control points (the values lie in their convex hull), plus the rounding slack."""
    chosen, pad = points[:, axes, :], slack[:, axes, :]
    return np.asarray(np.sqrt(np.square(np.abs(chosen) + pad).sum(axis=1)).max(axis=1), dtype=np.float64)


def rotor_thrust_envelope(
    trajectory: Trajectory,
    vehicle: VehicleParams,
    segments: NDArray[np.intp],
    starts: NDArray[np.float64],
    widths: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sound lower and upper bounds (`P x 4` each) of every rotor's thrust on pieces of segments, from Bernstein
    bounds of the flat outputs' derivatives alone (no sampling, no assumption).

    Pieces: `segments`, `starts`, `widths` (fractions of the segment). On a piece, the Bernstein hulls give
    (every value attained on the piece lies in the convex hull of the control points, rounding slack included):
    ``C+ >= |c|`` and ``C- <= |c|`` (c = a + g e3: hull norm, and distance of the axis box to the origin),
    ``Cz- <= c_z`` (must be > 0, else the piece gets infinite bounds), ``H >= |c_xy|``, ``J >= |j|``,
    ``S >= |s|``, ``Y1 >= |yaw'|``, ``Y2 >= |yaw''|``. With z = c/|c|, x_c = (cos yaw, sin yaw, 0),
    u = z x x_c, beta = z.x_c (so |u|^2 = 1 - beta^2), the exact formulas of `quadsim.flatness` give:

    * z' = P j / |c| (P = I - z z^T): ``|z'| <= Z1 = J / C-``; (p, q) = (-z'.y_b, z'.x_b) and z' is orthogonal
      to z, so ``|(p, q)| = |z'| <= Z1``.
    * |beta| <= |c_xy| / |c| <= ``B = min(1, H / C-)``; beta^2 <= 1 - z_3^2, so ``|u| >= z_3 >= U = Cz- / C+``.
    * x_c lies in the plane of x_b and z: x_c = |u| x_b + beta z. From r = -u'.x_b / |u| and
      u' = z' x x_c + yaw' z x y_c this gives ``r = (beta / |u|) p + yaw' z_3 / |u|^2``, so
      ``|r| <= R = (B / U) Z1 + Y1 / z_3 <= (B / U) Z1 + Y1 C+ / Cz-``.
    * z'' = (P s - z (z'.j) - 2 z' (z.j)) / |c|: ``|z''| <= Z2 = (S + 3 Z1 J) / C-``.
    * p' = -z''.y_b + r q, q' = z''.x_b - r p: ``|(p', q')| <= A = Z2 + R Z1``.
    * beta' = z'.x_c + yaw' z.y_c: ``|beta'| <= D = Z1 + Y1 B``; |z_3'| <= Z1. With g1 = beta / |u|
      (g1' = beta' / |u|^3) and g2 = z_3 / |u|^2 (g2' = z_3' / |u|^2 + 2 z_3 beta beta' / |u|^4, and
      z_3 <= |u|): r' = g1' p + g1 p' + g2' yaw' + g2 yaw'', so
      ``|r'| <= Ar = D Z1 / U^3 + (B / U) A + Y1 (Z1 / U^2 + 2 B D / U^3) + Y2 C+ / Cz-``.
    * Torques tau = I alpha + omega x I omega (I = diag(Ix, Iy, Iz)): tau_x = Ix p' + (Iz - Iy) q r,
      tau_y = Iy q' + (Ix - Iz) r p, tau_z = Iz r' + (Iy - Ix) p q; so
      ``|(tau_x, tau_y)| <= max(Ix, Iy) A + max(|Iz - Iy|, |Ix - Iz|) R Z1`` and
      ``|tau_z| <= Iz Ar + |Iy - Ix| Z1^2 / 2``.
    * Rotor i: f_i = M_i0 T + M_i1 tau_x + M_i2 tau_y + M_i3 tau_z (M the mixer), T = m |c| in [m C-, m C+];
      by Cauchy-Schwarz on the (tau_x, tau_y) pair, f_i lies within ``|(M_i1, M_i2)| |(tau_x, tau_y)| +
      |M_i3| |tau_z|`` of the interval of M_i0 T.

    Each step bounds a quantity by the worst case of its parts over the piece, so the envelope is loose by a
    factor that shrinks with the piece (cut segments finer for tighter envelopes); it is meant to clear pieces
    far from the limits. The final bounds are widened by 1e-9 relative for the rounding of this arithmetic.
    """
    order2, slack2 = bernstein_control_points(trajectory, 2, segments, starts, widths)
    order2 = order2.copy()
    order2[:, 2, :] += GRAVITY_M_S2  # Bernstein weights sum to 1: adding g to every control point adds g to a_z
    order1, slack1 = bernstein_control_points(trajectory, 1, segments, starts, widths)
    order3, slack3 = bernstein_control_points(trajectory, 3, segments, starts, widths)
    order4, slack4 = bernstein_control_points(trajectory, 4, segments, starts, widths)
    c_high = _hull_max_norm(order2, slack2, slice(0, 3))
    c_xy = _hull_max_norm(order2, slack2, slice(0, 2))
    box_low = (order2[:, :3, :] - slack2[:, :3, :]).min(axis=2)
    box_high = (order2[:, :3, :] + slack2[:, :3, :]).max(axis=2)
    c_z = box_low[:, 2]
    c_low = np.sqrt(np.square(np.maximum(np.maximum(box_low, -box_high), 0.0)).sum(axis=1))
    jerk = _hull_max_norm(order3, slack3, slice(0, 3))
    snap = _hull_max_norm(order4, slack4, slice(0, 3))
    yaw1 = (np.abs(order1[:, 3, :]) + slack1[:, 3, :]).max(axis=1)
    yaw2 = (np.abs(order2[:, 3, :]) + slack2[:, 3, :]).max(axis=1)
    valid = c_z > 1e-6
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        c_low = np.where(valid, np.maximum(c_low, c_z), np.nan)
        z1 = jerk / c_low
        tilt = np.minimum(1.0, c_xy / c_low)
        u_low = c_z / c_high
        g1 = tilt / u_low
        g2 = c_high / c_z
        rate = g1 * z1 + g2 * yaw1
        z2 = (snap + 3.0 * z1 * jerk) / c_low
        accel_pq = z2 + rate * z1
        beta_dot = z1 + yaw1 * tilt
        u3 = u_low**3
        accel_r = beta_dot * z1 / u3 + g1 * accel_pq + yaw1 * (z1 / u_low**2 + 2.0 * tilt * beta_dot / u3) + g2 * yaw2
        jx, jy, jz = (float(i) for i in vehicle.inertia_kg_m2)
        tau_xy = max(jx, jy) * accel_pq + max(abs(jz - jy), abs(jx - jz)) * rate * z1
        tau_z = jz * accel_r + abs(jy - jx) * 0.5 * z1 * z1
        mixer = vehicle.mixer_matrix
        spread = (
            np.hypot(mixer[:, 1], mixer[:, 2])[None, :] * tau_xy[:, None]
            + np.abs(mixer[:, 3])[None, :] * tau_z[:, None]
        )
        thrust_low, thrust_high = vehicle.mass_kg * c_low, vehicle.mass_kg * c_high
        collective_a, collective_b = mixer[None, :, 0] * thrust_low[:, None], mixer[None, :, 0] * thrust_high[:, None]
        high = np.maximum(collective_a, collective_b) + spread
        low = np.minimum(collective_a, collective_b) - spread
    bad = ~(np.isfinite(high) & np.isfinite(low))
    high[bad], low[bad] = np.inf, -np.inf
    pad = 1e-9 * (np.abs(high) + np.abs(low) + 1.0)
    pad[bad] = 0.0
    return low - pad, high + pad


def rotor_speed_bounds(
    trajectory: Trajectory,
    vehicle: VehicleParams,
    max_step_s: float = 0.01,
    samples_per_segment: int = 32,
    safety: float = 2.0,
    tolerance_rad_s: float = 0.5,
    max_rounds: int = 6,
    pieces_per_segment: int = 4,
    prescreen: bool = False,
) -> RotorSpeedBounds:
    """Certified bounds of the rotor speeds along the whole trajectory.

    Each segment is cut into `pieces_per_segment` equal pieces. With `prescreen`, every piece first gets a
    sound envelope of its rotor thrusts from the Bernstein bounds of the derivatives (`rotor_thrust_envelope`:
    no sampling, no assumption), and the flatness is evaluated at the ends and the middle of every piece.
    A piece whose envelope can neither cross a limit (where no sample has) nor move the reported extremes by
    more than `tolerance_rad_s` beyond the highest and lowest of those samples is certified by its envelope
    and not sampled further. The others (all pieces without `prescreen`), merged into runs of consecutive
    pieces, are sampled densely:

    Each run is sampled with at least `samples_per_segment` intervals a segment and a step of at most
    `max_step_s`; the rotor thrusts `f` come from differential flatness at every sample. Between two samples h
    apart, a C^2 function departs from its linear interpolation by at most ``M2 h^2 / 8``, M2 the largest |f''|
    on the interval: that margin is added (above and below), and intervals whose margin could move the extremes
    by more than `tolerance_rad_s` (or across a limit) are halved, up to `max_rounds` times. Speeds follow from
    thrusts through the monotone map ``w = sign(f) sqrt(|f| / k)``.

    Assumption (what makes the sampled bound sound): on every sample interval, |f''| is at most `safety` (2)
    times the estimate ``max |D2| + 2 h max |D3|`` taken from the divided differences D2 (second) and D3 (third)
    of the samples around it within its run. It holds when f'' changes little over a few steps (rotor thrusts
    vary on the time scale of the trajectory's snap, tens of milliseconds or more, against steps of at most
    `max_step_s`, and less after halving); it can fail for a feature far narrower than the step, which no
    finite sampling excludes. Singular samples (thrust pointing sideways or down) void it: callers treat them
    as failures (`TrajectoryCertificate` certifies the thrust upwards over whole segments). Pieces certified
    by their envelope need no assumption.

    The returned samples are the dense ones and, on pieces certified by their envelope, the three samples of
    the pre-screen (`prescreen=False` gives dense samples everywhere).
    """
    m = trajectory.num_segments
    durations = trajectory.segment_times_s
    shifted = _shifted_coefficients(trajectory)
    k_f = vehicle.thrust_coeff_n_per_rad2_s2
    thrust_max = k_f * vehicle.rotor_speed_max_rad_s**2
    thrust_min = k_f * vehicle.rotor_speed_min_rad_s**2
    pieces = max(1, int(pieces_per_segment)) if prescreen else 1
    piece_seg = np.repeat(np.arange(m), pieces)
    piece_start = np.tile(np.arange(pieces) / pieces, m)
    piece_width = 1.0 / pieces
    per_piece = np.maximum(
        -(-samples_per_segment // pieces), np.ceil(durations[piece_seg] * piece_width / max_step_s).astype(np.intp)
    )
    top, bottom = -np.inf, np.inf
    skipped = np.zeros(piece_seg.shape[0], dtype=bool)
    skip_high = skip_low = np.zeros((0, 4))
    if prescreen:
        envelope_low, envelope_high = rotor_thrust_envelope(
            trajectory, vehicle, piece_seg, piece_start, np.full(piece_seg.shape, piece_width)
        )
        coarse_seg = np.repeat(piece_seg, 3)
        coarse_local = (piece_start[:, None] + piece_width * np.array([0.0, 0.5, 1.0])) * durations[piece_seg, None]
        coarse_local = coarse_local.ravel()
        coarse_derivatives = _derivatives_at(shifted, coarse_seg, coarse_local)
        coarse_thrusts, coarse_singular = flat_rotor_thrusts(coarse_derivatives, vehicle)
        coarse_thrusts = coarse_thrusts.T
        top, bottom = float(coarse_thrusts.max()), float(coarse_thrusts.min())
        high_ok = _thrust(float(_speed(top, k_f)) + tolerance_rad_s, k_f)
        low_ok = _thrust(float(_speed(bottom, k_f)) - tolerance_rad_s, k_f)
        need = (envelope_high > high_ok) | ((envelope_high > thrust_max) & (top <= thrust_max))
        need |= (envelope_low < low_ok) | ((envelope_low < thrust_min) & (bottom >= thrust_min))
        need_piece = need.any(axis=1) | coarse_singular.reshape(-1, 3).any(axis=1)
        skipped = np.asarray(~need_piece, dtype=bool)
        skip_high, skip_low = envelope_high[skipped], envelope_low[skipped]
    # Runs of consecutive pieces of one segment to sample densely.
    dense = ~skipped
    first = dense & np.concatenate([[True], ~dense[:-1] | (piece_seg[1:] != piece_seg[:-1])])
    run_of_piece = np.cumsum(first) - 1
    run_seg = piece_seg[first]
    run_start = piece_start[first]
    run_counts = np.bincount(run_of_piece[dense], weights=per_piece[dense], minlength=run_seg.shape[0]).astype(np.intp)
    run_pieces = np.bincount(run_of_piece[dense], minlength=run_seg.shape[0])
    group = np.repeat(np.arange(run_seg.shape[0]), run_counts + 1)
    offsets = np.concatenate([[0], np.cumsum(run_counts + 1)[:-1]])
    fraction = run_start[group] + (np.arange(group.shape[0]) - offsets[group]) / run_counts[group] * (
        run_pieces[group] * piece_width
    )
    seg = run_seg[group]
    local = fraction * durations[seg]
    if group.shape[0]:
        derivatives = _derivatives_at(shifted, seg, local)
        thrusts, singular = flat_rotor_thrusts(derivatives, vehicle)  # 4 x K: rotor-major until the loop ends
        heights = derivatives[0, 2]
        for round_index in range(max_rounds + 1):
            upper, lower = _interval_bounds(local, thrusts, group, safety)
            same = group[:-1] == group[1:]
            top, bottom = max(float(thrusts.max()), top), min(float(thrusts.min()), bottom)
            high_ok = _thrust(float(_speed(top, k_f)) + tolerance_rad_s, k_f)
            low_ok = _thrust(float(_speed(bottom, k_f)) - tolerance_rad_s, k_f)
            # Loose: an interval whose margin could move the extremes by more than the tolerance, or cross a
            # limit that no sample has (the speed map is monotone: compare thrusts).
            high_limit = min(high_ok, thrust_max) if top <= thrust_max else high_ok
            low_limit = max(low_ok, thrust_min) if bottom >= thrust_min else low_ok
            high, low = upper.max(axis=0), lower.min(axis=0)
            high[~same], low[~same] = -np.inf, np.inf  # intervals between two runs bound nothing
            refine = ((high > high_limit) | (low < low_limit)) & same
            if round_index == max_rounds or not refine.any():
                break
            new_group, new_seg = group[:-1][refine], seg[:-1][refine]
            new_local = 0.5 * (local[:-1][refine] + local[1:][refine])
            new_derivatives = _derivatives_at(shifted, new_seg, new_local)
            new_thrusts, new_singular = flat_rotor_thrusts(new_derivatives, vehicle)
            order = np.lexsort((np.concatenate([local, new_local]), np.concatenate([group, new_group])))
            group = np.concatenate([group, new_group])[order]
            seg = np.concatenate([seg, new_seg])[order]
            local = np.concatenate([local, new_local])[order]
            thrusts = np.concatenate([thrusts, new_thrusts], axis=1)[:, order]
            singular = np.concatenate([singular, new_singular])[order]
            heights = np.concatenate([heights, new_derivatives[0, 2]])[order]
        thrusts = thrusts.T  # K x 4 from here on
    else:
        thrusts, singular, heights = np.zeros((0, 4)), np.zeros(0, dtype=bool), np.zeros(0)
        high = low = np.zeros(0)
    times = trajectory.knot_times_s[seg] + local
    # The highest and lowest bounds: sampled intervals, then pieces certified by their envelope.
    i_high, i_low = (int(np.argmax(high)), int(np.argmin(low))) if high.shape[0] else (0, 0)
    best_high = float(high[i_high]) if high.shape[0] else -np.inf
    best_low = float(low[i_low]) if low.shape[0] else np.inf
    max_time = float(0.5 * (times[i_high] + times[i_high + 1])) if high.shape[0] else math.nan
    min_time = float(0.5 * (times[i_low] + times[i_low + 1])) if low.shape[0] else math.nan
    if skipped.any():
        mid_times = (
            trajectory.knot_times_s[piece_seg[skipped]]
            + (piece_start[skipped] + 0.5 * piece_width) * (durations[piece_seg[skipped]])
        )
        piece_high, piece_low = skip_high.max(axis=1), skip_low.min(axis=1)
        j_high, j_low = int(np.argmax(piece_high)), int(np.argmin(piece_low))
        if piece_high[j_high] > best_high:
            best_high, max_time = float(piece_high[j_high]), float(mid_times[j_high])
        if piece_low[j_low] < best_low:
            best_low, min_time = float(piece_low[j_low]), float(mid_times[j_low])
        kept = np.repeat(skipped, 3)
        extra_times = trajectory.knot_times_s[coarse_seg[kept]] + coarse_local[kept]
        order = np.argsort(np.concatenate([times, extra_times]), kind="stable")
        times = np.concatenate([times, extra_times])[order]
        thrusts = np.concatenate([thrusts, coarse_thrusts[kept]])[order]
        singular = np.concatenate([singular, coarse_singular[kept]])[order]
        heights = np.concatenate([heights, coarse_derivatives[0, 2][kept]])[order]
    if best_high < top:
        best_high, max_time = top, float(times[int(np.argmax(thrusts.max(axis=1)))])
    if best_low > bottom:
        best_low, min_time = bottom, float(times[int(np.argmin(thrusts.min(axis=1)))])
    return RotorSpeedBounds(
        max_rad_s=float(_speed(best_high, k_f)),
        min_rad_s=float(_speed(best_low, k_f)),
        max_time_s=max_time,
        min_time_s=min_time,
        times_s=times,
        thrusts_n=thrusts,
        thrust_coeff=k_f,
        singular=singular,
        heights_m=heights,
    )


def _speed(thrust_n: NDArray[np.float64] | float, k_f: float) -> NDArray[np.float64]:
    """Signed rotor speed of a signed rotor thrust (monotone)."""
    return np.asarray(np.sign(thrust_n) * np.sqrt(np.abs(thrust_n) / k_f), dtype=np.float64)


def _thrust(speed_rad_s: float, k_f: float) -> float:
    """Signed rotor thrust of a signed rotor speed (the inverse of `_speed`)."""
    return float(math.copysign(k_f * speed_rad_s * speed_rad_s, speed_rad_s))


def _interval_bounds(
    local: NDArray[np.float64], thrusts: NDArray[np.float64], group: NDArray[np.intp], safety: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Upper and lower bounds (`4 x (K-1)`) of each rotor thrust (`thrusts`: `4 x K`, rotor-major, so every
    operation runs along contiguous rows) on each sample interval (see `rotor_speed_bounds`); intervals that
    straddle two runs get meaningless values (masked by the caller).

    |f''| is estimated at each sample from the second divided difference of it and its neighbours, and on
    each interval from the third divided difference of the two samples either side; an estimate whose stencil
    leaves the run counts as 0 (the largest over the stencils that stay inside is taken)."""
    width, k = thrusts.shape
    h = np.diff(local)
    d1 = np.diff(thrusts, axis=1) / h
    same = group[:-1] == group[1:]
    same3 = same[:-1] & same[1:]
    padded2 = np.zeros((width, k + 2))  # |D2| at samples, with a zero either side: samples -1..k
    signed2 = 2.0 * (d1[:, 1:] - d1[:, :-1]) / (local[2:] - local[:-2])  # K-2: samples 1..K-2
    if k >= 3:
        padded2[:, 2:-2] = np.where(same3, np.abs(signed2), 0.0)
    # Samples i-1, i, i+1, i+2 around interval i (samples i, i+1) are columns i..i+3 of padded2.
    second_max = np.maximum(np.maximum(padded2[:, :-3], padded2[:, 1:-2]), np.maximum(padded2[:, 2:-1], padded2[:, 3:]))
    padded3 = np.zeros((width, k + 1))  # |D3| on intervals, with a zero either side: intervals -1..k-1
    if k >= 4:
        same4 = same3[:-1] & same3[1:]
        third = 3.0 * (signed2[:, 1:] - signed2[:, :-1]) / (local[3:] - local[:-3])
        padded3[:, 2:-2] = np.where(same4, np.abs(third), 0.0)
    third_max = np.maximum(np.maximum(padded3[:, :-2], padded3[:, 1:-1]), padded3[:, 2:])
    margin = (safety / 8.0) * (second_max + 2.0 * h * third_max) * (h * h)
    upper = np.maximum(thrusts[:, :-1], thrusts[:, 1:]) + margin
    lower = np.minimum(thrusts[:, :-1], thrusts[:, 1:]) - margin
    return upper, lower


def _norm_xyz(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Euclidean norm of the x, y, z components."""
    return np.asarray(np.sqrt(np.square(values[..., :3]).sum(axis=-1)), dtype=np.float64)


def _negative_z(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """-z (its upper bound is minus the lowest z)."""
    return np.asarray(-values[..., 2], dtype=np.float64)


class TrajectoryCertificate:
    """Certifies trajectories against a vehicle's limits and a set of safety limits (see the module docstring).

    Cost: about a millisecond or two for a 10-segment trajectory.
    """

    def __init__(self, vehicle: VehicleParams | None = None, limits: SafetyLimits | None = None) -> None:
        self.vehicle = vehicle or VehicleParams()
        self.limits = limits or SafetyLimits()
        for name in ("max_speed_m_s", "max_acceleration_m_s2", "max_tilt_deg"):
            asked, allowed = getattr(self.limits, name), getattr(self.vehicle, name)
            if asked is not None and asked > allowed:
                raise ValueError(
                    f"SafetyLimits.{name}={asked} is above the vehicle's {name}={allowed}: a certificate may only "
                    "tighten the vehicle's limits"
                )

    @property
    def max_speed_m_s(self) -> float:
        """The speed limit in force."""
        return self.limits.max_speed_m_s or self.vehicle.max_speed_m_s

    @property
    def max_acceleration_m_s2(self) -> float:
        """The acceleration limit in force."""
        return self.limits.max_acceleration_m_s2 or self.vehicle.max_acceleration_m_s2

    @property
    def max_tilt_deg(self) -> float:
        """The tilt limit in force."""
        return self.limits.max_tilt_deg or self.vehicle.max_tilt_deg

    def check(self, trajectory: Trajectory, region_points: NDArray[np.float64] | None = None) -> CertificateResult:
        """Certify `trajectory`.

        Args:
            trajectory: the trajectory.
            region_points: `P x 3` points whose axis-aligned box the excursion is measured from
                (default: the trajectory's waypoints).
        """
        began = time.perf_counter()
        finite = np.isfinite(trajectory.coefficients).all() and np.isfinite(trajectory.segment_times_s).all()
        if not finite:
            violation = Violation("non-finite", math.nan, math.nan, math.nan)
            return CertificateResult(False, (violation,), {}, time.perf_counter() - began)
        violations: list[Violation] = []
        bounds: dict[str, float] = {}

        def record(name: str, key: str, values: NDArray[np.float64], times: NDArray[np.float64], limit: float) -> None:
            worst = int(np.argmax(values))
            bounds[key] = float(values[worst])
            if values[worst] > limit:
                violations.append(Violation(name, float(values[worst]), limit, float(times[worst])))

        speed_limit, accel_limit = self.max_speed_m_s, self.max_acceleration_m_s2
        ((speed, speed_at),) = max_convex_bounds(trajectory, 1, [(_norm_xyz, speed_limit)])
        theta = math.radians(self.max_tilt_deg)
        cos_t, sin_t = math.cos(theta), math.sin(theta)

        def tilt_excess(values: NDArray[np.float64]) -> NDArray[np.float64]:
            """cos(theta) |a_xy| - sin(theta) (a_z + g): <= 0 exactly when the tilt is within theta (convex and
            1-Lipschitz in the acceleration)."""
            return np.asarray(
                cos_t * np.hypot(values[..., 0], values[..., 1]) - sin_t * (values[..., 2] + GRAVITY_M_S2),
                dtype=np.float64,
            )

        # Acceleration, tilt and the singular bound (a_z + g > 0, as -a_z < g) share the acceleration's hulls.
        (accel, accel_at), (tilt, tilt_at), (sink, sink_at) = max_convex_bounds(
            trajectory, 2, [(_norm_xyz, accel_limit), (tilt_excess, 0.0), (_negative_z, GRAVITY_M_S2)]
        )
        points = trajectory.waypoints[:, :3] if region_points is None else np.asarray(region_points)[:, :3]
        low, high = points.min(axis=0), points.max(axis=0)

        def box_distance(values: NDArray[np.float64]) -> NDArray[np.float64]:
            """Distance from the box of the region points (0 inside)."""
            outside = np.maximum(np.maximum(low - values[..., :3], values[..., :3] - high), 0.0)
            return np.asarray(np.sqrt(np.square(outside).sum(axis=-1)), dtype=np.float64)

        clearance, fence = self.limits.ground_clearance_m, self.limits.geofence
        positional: list[tuple[ConvexFunction, float | None]] = [
            (box_distance, self.limits.max_excursion_m),
            (_negative_z, -clearance),
        ]
        if fence is not None:
            positional.append((fence.excess_m, 0.0))
        position_bounds = max_convex_bounds(trajectory, 0, positional)

        record("speed", "max_speed_m_s", speed, speed_at, speed_limit)
        record("acceleration", "max_acceleration_m_s2", accel, accel_at, accel_limit)
        self._record_tilt(trajectory, tilt, tilt_at, bounds, violations)
        excursion, at = position_bounds[0]
        record("excursion", "max_excursion_m", excursion, at, self.limits.max_excursion_m)
        self._record_lower("ground clearance", "min_z_m", position_bounds[1], clearance, 0.0, bounds, violations)
        if fence is not None:
            excess, at = position_bounds[2]
            record("geofence", "geofence_excess_m", excess, at, 0.0)
        self._record_lower(
            "singular", "min_vertical_accel_plus_g_m_s2", (sink, sink_at), 0.0, GRAVITY_M_S2, bounds, violations
        )
        if self.limits.rotor_limits and not any(v.constraint == "singular" for v in violations):
            self._check_rotors(trajectory, bounds, violations)
        return CertificateResult(not violations, tuple(violations), bounds, time.perf_counter() - began)

    def _record_tilt(
        self,
        trajectory: Trajectory,
        excess: NDArray[np.float64],
        at: NDArray[np.float64],
        bounds: dict[str, float],
        violations: list[Violation],
    ) -> None:
        """Tilt of the thrust axis (along a + g e_z) within the limit over whole segments, from the bound of
        cos(theta) |a_xy| - sin(theta) (a_z + g) (<= 0 exactly when the tilt is within theta). The reported value
        is the tilt at that bound's worst attained sample when it fails, and the limit otherwise
        (`bounds["tilt_excess_m_s2"]` holds the bound)."""
        worst = int(np.argmax(excess))
        bounds["tilt_excess_m_s2"] = float(excess[worst])
        if excess[worst] > 0.0:
            a = trajectory.derivatives([float(at[worst])], max_order=2)[2, 0, :3]
            tilt = math.degrees(math.atan2(math.hypot(a[0], a[1]), a[2] + GRAVITY_M_S2))
            violations.append(Violation("tilt", max(tilt, self.max_tilt_deg), self.max_tilt_deg, float(at[worst])))

    @staticmethod
    def _record_lower(
        name: str,
        key: str,
        negated: tuple[NDArray[np.float64], NDArray[np.float64]],
        limit: float,
        offset: float,
        bounds: dict[str, float],
        violations: list[Violation],
    ) -> None:
        """A lower bound (the negated upper bound of -z or -a_z) plus `offset`, which must stay >= `limit`
        (> for the singular bound)."""
        upper, at = negated
        worst = int(np.argmax(upper))
        value = float(-upper[worst] + offset)
        bounds[key] = value
        broken = value <= limit if name == "singular" else value < limit
        if broken:
            violations.append(Violation(name, value, limit, float(at[worst])))

    def _check_rotors(self, trajectory: Trajectory, bounds: dict[str, float], violations: list[Violation]) -> None:
        rotors = rotor_speed_bounds(trajectory, self.vehicle)
        v = self.vehicle
        bounds["max_rotor_speed_rad_s"] = rotors.max_rad_s
        bounds["min_rotor_speed_rad_s"] = rotors.min_rad_s
        if rotors.singular.any():
            first = int(np.argmax(rotors.singular))
            violations.append(Violation("singular", 0.0, 0.0, float(rotors.times_s[first])))
        top, bottom = v.rotor_speed_max_rad_s, v.rotor_speed_min_rad_s
        if rotors.max_rad_s > top:
            violations.append(Violation("rotor speed max", rotors.max_rad_s, top, rotors.max_time_s))
        if rotors.min_rad_s < bottom:
            violations.append(Violation("rotor speed min", rotors.min_rad_s, bottom, rotors.min_time_s))

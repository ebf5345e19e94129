"""Benchmark of the learned tracking controllers against the geometric controller, at MuJoCo and RotorPy fidelity.

Prints one JSON object to stdout (progress goes to stderr); `--out FILE` also writes it atomically.
On held-out references (random minimum-snap trajectories of the tracking env's distribution, drawn
from a seed that training never uses) every controller flies from the reference's first state for
the reference's duration plus one second, and the figure is the RMS position error over the flight.

Controllers:

* `geometric_se3`: the project's geometric SE(3) controller (rotor thrusts with full flatness
  feed-forward, 250 Hz on MuJoCo, 200 Hz on RotorPy): the evaluators `MujocoEvaluator` and
  `RotorPyEvaluator` of the MFRL fidelities, i.e. the baseline the learned controllers replace;
* `geometric_ctbr`: the same position and attitude loops as a CTBR policy of the tracking env's
  interface (`quadsim.tracking_env.GeometricCTBRPolicy`), flown exactly like the learned ones;
* each policy checkpoint given (default: every `*_tracking.pt` in learning/policyopt/checkpoints/).

MuJoCo: the tracking env itself (policy at 50 Hz, body-rate loop at 250 Hz, physics 500 Hz).
RotorPy: its `Multirotor` (rotor drag, inflow, motor dynamics) with Dryden gusts and motion-capture
noise (`quadsim.rotorpy_flight.FlightConditions` defaults), commanded through rotor speeds
(`cmd_motor_speeds`): the policy acts at 50 Hz on the noisy state, the project's body-rate loop
runs at 200 Hz, its rotor thrusts become speeds sqrt(T / k_eta). Every controller sees the same
wind and noise seed per trajectory. A flight that leaves the reference by more than the env's
`max_position_error_m` (1.5 m) or hits the ground counts as failed; its RMSE is over what it flew.
Some random references are beyond the vehicle (every controller fails them), so the figures are also
given over the references that every controller flew to the end (`rmse_m_mean_common`).

Usage: ``python bench/tracking.py [--smoke] [--trajectories N] [--checkpoints A.pt B.pt] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import bench_prelude  # noqa: F401  (first: one BLAS thread, and this folder off sys.path)
import numpy as np
from numpy.typing import NDArray
from rotorpy.vehicles.multirotor import Multirotor

from minsnap import Trajectory
from quadsim.evaluation import FeasibilityCriteria
from quadsim.mujoco_flight import MujocoEvaluator
from quadsim.rate_controller import RateController
from quadsim.rotorpy_flight import (
    FlightConditions,
    RotorPyEvaluator,
    dryden_gust,
    matrix_to_quat_xyzw,
    quat_xyzw_to_matrix,
    rotation_from_vector,
    seeded_global_numpy_rng,
)
from quadsim.tracking_env import (
    GeometricCTBRPolicy,
    QuadrotorTrackingEnv,
    TrackingEnvConfig,
    action_to_ctbr,
    random_reference,
    reference_samples,
    tracking_observation,
)
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams
from runkit import to_jsonable, write_text_atomic
from runkit.config import smoke_requested

HELD_OUT_SEED = 7_700_001
"""References are drawn from this seed (training draws from its own run seeds, small integers)."""
HOLD_AFTER_END_S = 1.0
ROTORPY_RATE_HZ = 200.0
DEFAULT_CHECKPOINTS = Path(__file__).resolve().parents[1] / "learning" / "policyopt" / "checkpoints"


class Policy(Protocol):
    """A CTBR policy of the tracking env's interface."""

    def act(self, obs: NDArray[np.float32]) -> NDArray[Any]:
        """Action (`4`) for one observation."""
        ...


@dataclass(frozen=True)
class Flight:
    """One flight's figures."""

    rmse_m: float
    max_error_m: float
    completed: bool
    wall_s: float


def held_out_references(count: int, config: TrackingEnvConfig) -> list[Trajectory]:
    """`count` references of the env's distribution from the held-out seed."""
    rng = np.random.default_rng(HELD_OUT_SEED)
    return [random_reference(rng, config) for _ in range(count)]


def _flight(errors: list[float], completed: bool, started: float) -> Flight:
    e = np.asarray(errors)
    return Flight(float(np.sqrt(np.mean(e**2))), float(e.max()), completed, time.perf_counter() - started)


def fly_mujoco_policy(policy: Policy, trajectory: Trajectory, env: QuadrotorTrackingEnv) -> Flight:
    """A CTBR policy in the tracking env on a given reference, from its first state."""
    started = time.perf_counter()
    options = {"trajectory": trajectory, "start_noise": False, "duration_s": trajectory.duration_s + HOLD_AFTER_END_S}
    obs, info = env.reset(seed=0, options=options)
    errors = [info["position_error_m"]]
    while True:
        obs, _, terminated, truncated, info = env.step(np.asarray(policy.act(obs), dtype=np.float32))
        errors.append(info["position_error_m"])
        if terminated or truncated:
            return _flight(errors, not terminated, started)


def fly_mujoco_se3(trajectory: Trajectory, vehicle: VehicleParams, limit_m: float) -> Flight:
    """The geometric SE(3) controller on MuJoCo (the MFRL medium fidelity's flight)."""
    started = time.perf_counter()
    criteria = FeasibilityCriteria(settle_time_s=HOLD_AFTER_END_S, divergence_error_m=limit_m)
    log = MujocoEvaluator(vehicle, criteria).fly(trajectory)
    return _flight(list(log.position_error_m), not log.failure, started)


def fly_rotorpy_se3(trajectory: Trajectory, vehicle: VehicleParams, limit_m: float, seed: int) -> Flight:
    """The geometric SE(3) controller on RotorPy (the MFRL high fidelity's flight)."""
    started = time.perf_counter()
    criteria = FeasibilityCriteria(settle_time_s=HOLD_AFTER_END_S, divergence_error_m=limit_m)
    log = RotorPyEvaluator(vehicle, criteria, control_rate_hz=ROTORPY_RATE_HZ, seed=seed).fly(trajectory)
    return _flight(list(log.position_error_m), not log.failure, started)


def fly_rotorpy_policy(
    policy: Policy, trajectory: Trajectory, vehicle: VehicleParams, config: TrackingEnvConfig, seed: int
) -> Flight:
    """A CTBR policy on RotorPy: policy at the env's rate on noisy states, body-rate loop at 200 Hz, rotor speeds."""
    with seeded_global_numpy_rng(seed):
        return _fly_rotorpy_policy(policy, trajectory, vehicle, config, np.random.default_rng(seed))


def _fly_rotorpy_policy(
    policy: Policy,
    trajectory: Trajectory,
    vehicle: VehicleParams,
    config: TrackingEnvConfig,
    rng: np.random.Generator,
) -> Flight:
    started = time.perf_counter()
    dt = 1.0 / ROTORPY_RATE_HZ
    per_action = round(ROTORPY_RATE_HZ / config.policy_rate_hz)
    evaluator = RotorPyEvaluator(vehicle, control_rate_hz=ROTORPY_RATE_HZ)
    conditions = FlightConditions()
    actions = round((trajectory.duration_s + HOLD_AFTER_END_S) * config.policy_rate_hz)
    lookahead = np.asarray(config.lookahead_steps)
    reference = reference_samples(trajectory, config.policy_dt_s, actions + int(lookahead.max()) + 1)
    fine = reference_samples(trajectory, dt, actions * per_action + 1)
    hover_speed = vehicle.hover_rotor_speed_rad_s
    state: dict[str, Any] = {
        "x": reference[0, 0, :3].copy(),
        "v": reference[1, 0, :3].copy(),
        "q": matrix_to_quat_xyzw(_yaw_matrix(float(reference[0, 0, 3]))),
        "w": np.zeros(3),
        "wind": np.asarray(conditions.mean_wind_m_s, dtype=np.float64),
        "rotor_speeds": np.full(4, hover_speed),
    }
    multirotor = Multirotor(
        vehicle.to_rotorpy(),
        initial_state=state,
        control_abstraction="cmd_motor_speeds",
        aero=True,
        enable_ground=False,
        integrator_kwargs=evaluator.integrator_kwargs(),
    )
    wind = dryden_gust(conditions, dt, rng)
    noise_std = conditions.measurement_noise_std(ROTORPY_RATE_HZ)
    rate_controller = RateController(vehicle)
    k_eta = vehicle.thrust_coeff_n_per_rad2_s2
    errors: list[float] = []
    thrust, rates = vehicle.mass_kg * GRAVITY_M_S2, np.zeros(3)
    for k in range(actions * per_action + 1):
        if not all(math.isfinite(float(state[key].sum())) for key in ("x", "v", "q", "w")):
            return _flight(errors or [math.inf], False, started)
        error = float(np.linalg.norm(state["x"] - fine[0, k, :3]))
        errors.append(error)
        if error > config.max_position_error_m or state["x"][2] < config.min_altitude_m:
            return _flight(errors, False, started)
        if k == actions * per_action:
            break
        noise = noise_std * rng.standard_normal(12)
        measured_rates = state["w"] + noise[9:12]
        if k % per_action == 0:
            i = k // per_action
            obs = tracking_observation(
                state["x"] + noise[0:3],
                state["v"] + noise[3:6],
                quat_xyzw_to_matrix(state["q"]) @ rotation_from_vector(noise[6:9]),
                measured_rates,
                reference[:, i, :],
                reference[0, i + lookahead, :3],
            )
            thrust, rates = action_to_ctbr(np.asarray(policy.act(obs)), vehicle, config)
        thrusts = rate_controller.rotor_thrusts(thrust, rates, measured_rates)
        state["wind"] = wind.update(k * dt, state["x"])
        state = multirotor.step(state, {"cmd_motor_speeds": np.sqrt(thrusts / k_eta)}, dt)
    return _flight(errors, True, started)


def _yaw_matrix(yaw_rad: float) -> NDArray[np.float64]:
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _summary(flights: list[Flight]) -> dict[str, Any]:
    rmse = np.array([f.rmse_m for f in flights])
    completed = [f for f in flights if f.completed]
    return {
        "rmse_m_mean": float(rmse.mean()),
        "rmse_m_median": float(np.median(rmse)),
        "rmse_m_mean_completed": float(np.mean([f.rmse_m for f in completed])) if completed else None,
        "max_error_m": float(max(f.max_error_m for f in flights)),
        "completed_fraction": len(completed) / len(flights),
        "rmse_m_per_trajectory": rmse.tolist(),
        "completed_per_trajectory": [f.completed for f in flights],
        "wall_s_per_flight": float(np.mean([f.wall_s for f in flights])),
    }


def _load(checkpoint: Path) -> Policy:
    from policyopt.checkpoint import load_policy  # torch only when a learned controller is benchmarked

    policy: Policy = load_policy(checkpoint)
    return policy


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fly every controller on every held-out reference at each fidelity; return the figures."""
    config, vehicle = TrackingEnvConfig(), VehicleParams()
    references = held_out_references(args.trajectories, config)
    checkpoints = [Path(p) for p in args.checkpoints] if args.checkpoints is not None else []
    if args.checkpoints is None and DEFAULT_CHECKPOINTS.is_dir():
        checkpoints = sorted(DEFAULT_CHECKPOINTS.glob("*_tracking.pt"))
    policies: dict[str, Policy] = {"geometric_ctbr": GeometricCTBRPolicy(vehicle, config)}
    for path in checkpoints:
        policies[path.stem] = _load(path)
    env = QuadrotorTrackingEnv(config, vehicle)
    limit = config.max_position_error_m
    results: dict[str, dict[str, Any]] = {}
    completed_by_all: dict[str, list[int]] = {}
    for fidelity in args.fidelities:
        flights: dict[str, list[Flight]] = {name: [] for name in ["geometric_se3", *policies]}
        for index, trajectory in enumerate(references):
            print(f"{fidelity}: reference {index + 1}/{len(references)}", file=sys.stderr, flush=True)
            seed = HELD_OUT_SEED + index
            if fidelity == "mujoco":
                flights["geometric_se3"].append(fly_mujoco_se3(trajectory, vehicle, limit))
            else:
                flights["geometric_se3"].append(fly_rotorpy_se3(trajectory, vehicle, limit, seed))
            for name, policy in policies.items():
                if fidelity == "mujoco":
                    flights[name].append(fly_mujoco_policy(policy, trajectory, env))
                else:
                    flights[name].append(fly_rotorpy_policy(policy, trajectory, vehicle, config, seed))
        summaries = {name: _summary(f) for name, f in flights.items()}
        # References that every controller flew to the end (some random references are beyond the vehicle).
        common = [i for i in range(len(references)) if all(f[i].completed for f in flights.values())]
        for name, summary in summaries.items():
            common_rmse = [flights[name][i].rmse_m for i in common]
            summary["rmse_m_mean_common"] = float(np.mean(common_rmse)) if common else None
        baseline = summaries["geometric_se3"]
        for summary in summaries.values():
            summary["rmse_ratio_to_geometric_se3"] = summary["rmse_m_mean"] / baseline["rmse_m_mean"]
            if common:
                summary["rmse_ratio_to_geometric_se3_common"] = (
                    summary["rmse_m_mean_common"] / baseline["rmse_m_mean_common"]
                )
        results[fidelity] = summaries
        completed_by_all[fidelity] = common
    return {
        "smoke": args.smoke,
        "config": {
            "trajectories": len(references),
            "held_out_seed": HELD_OUT_SEED,
            "durations_s": [t.duration_s for t in references],
            "checkpoints": [str(p) for p in checkpoints],
            "fidelities": list(args.fidelities),
            "env": config,
            "rotorpy_conditions": FlightConditions(),
        },
        "results": results,
        "references_completed_by_all": completed_by_all,
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print (and write) the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one reference, for tests")
    parser.add_argument("--trajectories", type=int, default=20, help="held-out references per fidelity")
    parser.add_argument("--checkpoints", nargs="*", default=None, help="policy files (default: the shipped ones)")
    parser.add_argument("--fidelities", nargs="+", default=["mujoco", "rotorpy"], choices=["mujoco", "rotorpy"])
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    args.smoke = smoke_requested(args.smoke)
    if args.smoke:
        args.trajectories = min(args.trajectories, 1)
    result = run(args)
    text = json.dumps(to_jsonable(result), indent=2)
    print(text)
    if args.out is not None:
        write_text_atomic(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

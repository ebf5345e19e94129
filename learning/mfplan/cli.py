"""The `mfrl` command: train, distill, calibrate, eval and plan.

mfrl train [--smoke] [--run-dir runs/mfrl/seed0] [--resume]   co-train policy and reward estimator
mfrl distill [--smoke] [--run-dir runs/mfrl_distill/seed0]    warm-start the policy on the reference optimiser
mfrl calibrate --checkpoint P                                 safety margin for 99 % feasibility at RotorPy
mfrl eval [--checkpoint P] [--out-dir runs/mfrl_eval] [--smoke]  compare with heuristic and baseline
mfrl plan --waypoints course.csv [--out plan.json]            plan one course (JSON out)

--smoke (or SMOKE_TEST=1) shrinks only the sizes left at their defaults.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from mfplan.configs import CalibrateConfig, DistillConfig, EvalConfig, PlanConfig, TrainConfig
from minsnap import EndpointState, TrajectoryInputError
from minsnap.waypoint_files import load_waypoints
from runkit import run_cli, to_jsonable, write_json_atomic


def plan_command(config: PlanConfig) -> int:
    """Plan and print (or write) the JSON result; exit status 0 when a feasible plan was found."""
    from mfplan.planner import CertifiedPlanner

    waypoints = load_waypoints(config.waypoints)
    planner = CertifiedPlanner.from_checkpoint(config.checkpoint)
    start = EndpointState(
        velocity=np.asarray(config.start_velocity, dtype=float),
        acceleration=np.asarray(config.start_acceleration, dtype=float),
    )
    result = planner.plan(waypoints, start=start)
    payload = to_jsonable(result.to_dict())
    if config.out is not None:
        write_json_atomic(config.out, payload)
        print(f"wrote {config.out}: {result.total_time_s:.3f} s, feasible={result.feasible}", file=sys.stderr)
    else:
        print(json.dumps(payload, indent=2))
    return 0 if result.feasible else 1


USER_ERRORS = (TrajectoryInputError,)
"""Errors that are the user's to fix (reported on one line, exit status 2), besides runkit's `UserError`s: a
missing or corrupt checkpoint (`mfplan.policy.PolicyCheckpointError`, `mfplan.trainer.TrainerCheckpointError`),
a run folder that does not fit the request (`runkit.RunDirectoryError`), a damaged evaluation data set
(`mfplan.dataset.DatasetCorruptError`). Every other error keeps its traceback."""


def run_command(command: TrainConfig | DistillConfig | CalibrateConfig | EvalConfig | PlanConfig) -> int:
    """Run one parsed subcommand; return the exit status."""
    if isinstance(command, TrainConfig):
        from mfplan.trainer import train

        print(json.dumps(to_jsonable(train(command)), indent=2))
        return 0
    if isinstance(command, DistillConfig):
        from mfplan.distill import distill

        print(json.dumps(to_jsonable(distill(command)), indent=2))
        return 0
    if isinstance(command, CalibrateConfig):
        from mfplan.calibration import calibrate

        calibration = calibrate(command)
        print(json.dumps(to_jsonable({k: v for k, v in calibration.items() if k != "boundaries"}), indent=2))
        return 0
    if isinstance(command, EvalConfig):
        from mfplan.evaluation import run_evaluation

        run_evaluation(command)
        return 0
    return plan_command(command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (`mfrl`). SIGTERM unwinds like Ctrl-C, so worker processes are shut down."""
    commands = {
        "train": TrainConfig,
        "distill": DistillConfig,
        "calibrate": CalibrateConfig,
        "eval": EvalConfig,
        "plan": PlanConfig,
    }
    raise SystemExit(run_cli(commands, run_command, argv=argv, description=__doc__, user_errors=USER_ERRORS))


if __name__ == "__main__":
    main()

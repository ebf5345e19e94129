"""The `mfrl` command: train, eval and plan.

mfrl train [--smoke] [--out-dir runs/mfrl] [--resume]     co-train policy and reward estimator
mfrl calibrate --checkpoint P                             safety margin for 99 % feasibility at RotorPy
mfrl eval [--checkpoint P] [--smoke]                      compare with heuristic and baseline
mfrl plan --waypoints course.csv [--out plan.json]        plan one course (JSON out)
"""

from __future__ import annotations

import json
import signal
import sys

import numpy as np
import tyro

from flightkit import to_jsonable, write_json_atomic
from mfplan.configs import CalibrateConfig, EvalConfig, PlanConfig, TrainConfig
from minsnap import EndpointState, TrajectoryInputError
from minsnap.waypoint_files import load_waypoints


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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point (`mfrl`). SIGTERM unwinds like Ctrl-C, so worker processes are shut down."""
    signal.signal(signal.SIGTERM, _interrupt)

    command = tyro.extras.subcommand_cli_from_dict(
        {"train": TrainConfig, "calibrate": CalibrateConfig, "eval": EvalConfig, "plan": PlanConfig},
        args=argv,
        description=__doc__,
    )
    try:
        if isinstance(command, TrainConfig):
            from mfplan.trainer import train

            summary = train(command)
            print(json.dumps(to_jsonable(summary), indent=2))
            status = 0
        elif isinstance(command, CalibrateConfig):
            from mfplan.calibration import calibrate

            calibration = calibrate(command)
            print(json.dumps(to_jsonable({k: v for k, v in calibration.items() if k != "boundaries"}), indent=2))
            status = 0
        elif isinstance(command, EvalConfig):
            from mfplan.evaluation import run_evaluation

            run_evaluation(command)
            status = 0
        else:
            status = plan_command(command)
    except TrajectoryInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 2
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 2
    raise SystemExit(status)


if __name__ == "__main__":
    main()

"""Start a graph without ROS 2's `launch`: one process per node, Ctrl-C forwarded, a node that dies reported.

    mfrl-launch replanner                 # replanner + MuJoCo quadrotor + tracker, sim time
    mfrl-launch replanner --mode vehicle --vehicle-url /dev/ttyTHS1:921600   # PX4 over MAVLink
    mfrl-launch replanner --mode external # replanner only, odometry from another node
    mfrl-launch demo --course 0 0 1 2 1 1.5 4 0 1   # with the demo's mission
    mfrl-launch relic_nav --relic-policy policy.pt  # ReLIC navigation: relic_world + relic_nav

Each node runs as `python -m mfrl.<executable> --ros-args ...` (the same arguments `ros2 launch`
gives it). The runner stops every node (SIGINT, then SIGTERM, then SIGKILL) when it gets Ctrl-C or
SIGTERM, when a node marked `ends_graph` finishes, or when any other node ends (it died, or exited after a
lifecycle shutdown), and says which and how.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Literal

import numpy as np
import tyro

from mfrl_graph.graph import GraphOptions, GraphSpec, NodeSpec, build_graph, ros_arguments
from minsnap import TrajectoryInputError
from minsnap.validation import as_waypoints
from runkit import UserError, as_user_error, get_logger, run_cli

LOG = get_logger("mfrl_graph.runner")
STOP_GRACE_S = 5.0


@dataclass
class Outcome:
    """How a graph run ended: exit code 0 (finished or stopped) or 1 (a node died), and why."""

    code: int
    reason: str
    exit_codes: dict[str, int | None] = field(default_factory=dict)


def node_command(spec: NodeSpec, params_file: Path) -> list[str]:
    """The command line of one node process."""
    return [sys.executable, "-m", f"mfrl.{spec.executable}", *ros_arguments(spec, params_file)]


class GraphProcesses:
    """The processes of a running graph.

    Args:
        graph: what to start.
        env: environment of the node processes (default: this process's).
        log_dir: write each node's output to `<log_dir>/<node>.log` instead of this terminal.
    """

    def __init__(self, graph: GraphSpec, env: dict[str, str] | None = None, log_dir: Path | None = None) -> None:
        self.graph = graph
        self.env = dict(os.environ if env is None else env)
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self._stop_requested = ""

    def start(self) -> None:
        """Start every node, each in its own process group (Ctrl-C reaches them through the runner only)."""
        if not self.graph.params_file.is_file():
            raise FileNotFoundError(f"parameter file {self.graph.params_file} does not exist")
        for spec in self.graph.nodes:
            output: IO[bytes] | None = None
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                output = open(self.log_dir / f"{spec.name}.log", "wb")  # noqa: SIM115 - closed in stop()
                self._logs.append(output)
            self.processes[spec.name] = subprocess.Popen(
                node_command(spec, self.graph.params_file),
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                start_new_session=True,
            )
            LOG.info("started %s (pid %d)", spec.name, self.processes[spec.name].pid)

    def request_stop(self, reason: str) -> None:
        """Ask `wait` to stop the graph (safe to call from a signal handler)."""
        self._stop_requested = reason

    def wait(self, timeout_s: float | None = None) -> Outcome:
        """Watch the nodes until the graph ends, a node dies, a stop is asked for or `timeout_s` passes; stop all."""
        began = time.monotonic()
        outcome: Outcome | None = None
        while outcome is None:
            if self._stop_requested:
                outcome = Outcome(0, f"stopped: {self._stop_requested}")
                break
            for spec in self.graph.nodes:
                code = self.processes[spec.name].poll()
                if code is None:
                    continue
                if spec.ends_graph and code == 0:
                    outcome = Outcome(0, f"{spec.name} finished")
                elif code == 0:  # e.g. a lifecycle shutdown: the graph is not whole any more
                    outcome = Outcome(1, f"node {spec.name} exited (exit code 0) while the graph ran")
                elif code < 0:
                    outcome = Outcome(1, f"node {spec.name} died with exit code {code} ({_signal_name(-code)})")
                else:
                    outcome = Outcome(1, f"node {spec.name} died with exit code {code}")
                break
            if outcome is None and timeout_s is not None and time.monotonic() - began > timeout_s:
                outcome = Outcome(1, f"timed out after {timeout_s} s")
            if outcome is None:
                time.sleep(0.05)
        outcome.exit_codes = self.stop()
        return outcome

    def stop(self) -> dict[str, int | None]:
        """Stop every node still running: SIGINT, then SIGTERM, then SIGKILL; return their exit codes."""
        for sig, grace in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            alive = [p for p in self.processes.values() if p.poll() is None]
            if not alive:
                break
            for process in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(p.poll() is None for p in alive):
                time.sleep(0.05)
        for log in self._logs:
            log.close()
        return {name: p.poll() for name, p in self.processes.items()}


def _signal_name(number: int) -> str:
    try:
        return f"killed by {signal.Signals(number).name}"
    except ValueError:
        return f"killed by signal {number}"


def run_graph(
    graph: GraphSpec, env: dict[str, str] | None = None, log_dir: Path | None = None, timeout_s: float | None = None
) -> Outcome:
    """Start a graph, forward SIGINT/SIGTERM to it, and return how it ended."""
    processes = GraphProcesses(graph, env, log_dir)
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: processes.request_stop(signal.Signals(signum).name))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        processes.start()
        outcome = processes.wait(timeout_s)
    finally:
        processes.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    (LOG.info if outcome.code == 0 else LOG.error)(
        "graph %s: %s; exit codes %s", graph.name, outcome.reason, outcome.exit_codes
    )
    return outcome


@dataclass(frozen=True)
class LaunchArgs:
    """Start one of the stack's graphs (`replanner`, `demo` or `relic_nav`) with one process per node."""

    graph: Annotated[Literal["replanner", "demo", "relic_nav"], tyro.conf.Positional]
    """Which graph."""
    options: Annotated[GraphOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=GraphOptions)
    """The launch arguments."""
    log_dir: Path | None = None
    """Write each node's output to <log_dir>/<node>.log (default: this terminal)."""


class LaunchArgumentError(UserError):
    """A launch argument that a node would refuse, found before any process starts; the message names it."""


def check_launch_options(options: GraphOptions) -> None:
    """Raise `LaunchArgumentError` for an option that a node would refuse only once the graph is up.

    The nodes validate their parameters again (`mfrl.configs`); this catches what a user types before
    five processes start and one of them dies.
    """
    if options.course:
        if len(options.course) % 3:
            raise LaunchArgumentError(f"--course: {len(options.course)} numbers; give three per waypoint (x y z)")
        try:
            as_waypoints(np.reshape(options.course, (-1, 3)))
        except TrajectoryInputError as exc:
            raise LaunchArgumentError(f"--course: {exc}") from None
    if options.replan_count < 0:
        raise LaunchArgumentError(f"--replan-count must be >= 0, got {options.replan_count}")
    if not (math.isfinite(options.real_time_factor) and options.real_time_factor >= 0.0):
        raise LaunchArgumentError(f"--real-time-factor must be finite and >= 0, got {options.real_time_factor}")
    if not options.mission_timeout_s > 0.0:
        raise LaunchArgumentError(f"--mission-timeout-s must be > 0, got {options.mission_timeout_s}")
    if not 0 <= options.foxglove_port <= 65535:
        raise LaunchArgumentError(f"--foxglove-port must be in 0..65535, got {options.foxglove_port}")
    for flag, path in (
        ("--checkpoint", options.checkpoint),
        ("--controller-checkpoint", options.controller_checkpoint),
        ("--relic-policy", options.relic_policy),
    ):
        if path and not Path(path).is_file():
            raise LaunchArgumentError(f"{flag}: no such file {path}")


def checked_graph(name: str, options: GraphOptions) -> GraphSpec:
    """The graph `name` for `options`, every launch argument checked (`LaunchArgumentError`) before anything starts."""
    check_launch_options(options)
    with as_user_error(ValueError):  # build_graph's refusals: an unknown graph, a demo without course or vehicle
        graph = build_graph(name, options)
    if not graph.params_file.is_file():
        raise LaunchArgumentError(f"parameter file {graph.params_file} does not exist")
    return graph


def launch_command(args: LaunchArgs) -> int:
    """Check the arguments, then run the graph; return its exit code (0 finished or stopped, 1 a node died)."""
    return run_graph(checked_graph(args.graph, args.options), log_dir=args.log_dir).code


def main(argv: list[str] | None = None) -> int:
    """Entry point of `mfrl-launch`: a bad argument ends in one line and exit status 2, before any node starts."""
    return run_cli(LaunchArgs, launch_command, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())

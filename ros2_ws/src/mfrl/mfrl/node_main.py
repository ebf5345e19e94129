"""Run one node in its own process: init, spin an executor, shut down cleanly on Ctrl-C or SIGTERM.

The process handles SIGINT and SIGTERM itself (rclpy's own handlers are off): the first one asks the
spin loop to stop, which it does within one spin period, after the callback that is running; the node
is then closed and destroyed and rclpy shut down, in that order, so no callback meets a context that is
already gone (that was rclpy's RuntimeError on Ctrl-C). A second SIGINT during the clean-up is ignored
(a terminal's Ctrl-C reaches a node twice under `ros2 launch`); a SIGTERM then ends the process at once,
so a clean-up that hangs never leaves a process that ignores every signal but SIGKILL.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

SPIN_PERIOD_S = 0.1
"""Longest wait of one spin; a stop request is seen within it (plus the callback that is running)."""


class _StopRequest:
    """SIGINT/SIGTERM handler: the first signal asks the loop to stop; a SIGTERM after that exits at once."""

    def __init__(self) -> None:
        self.signal_name = ""

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal_name and signum == signal.SIGTERM:
            os._exit(128 + signum)  # the clean-up hangs: do not outlive a second request
        self.signal_name = self.signal_name or signal.Signals(signum).name


def run_node(make_node: Callable[[], Node], args: Sequence[str] | None = None, threads: int = 1) -> int:
    """Spin the node until shutdown (Ctrl-C, SIGTERM or the node's own request); return the exit code.

    A node asks to end by setting its `exit_code` attribute (the loop stops and this returns it; a
    lifecycle node sets it on the shutdown transition). `threads` > 1 spins a multi-threaded executor,
    for a node whose slow callbacks (a service that waits on a vehicle) sit in a callback group of their
    own and must not stop its other callbacks.
    """
    stop = _StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=list(args) if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    node: Node | None = None
    executor: Executor | None = None
    code = 0
    try:
        try:
            node = make_node()
        except ValueError as exc:  # invalid parameters: the node has logged which one
            print(f"error: {exc}", file=sys.stderr)
            return 2  # (the finally clause shuts rclpy down)
        executor = SingleThreadedExecutor() if threads <= 1 else MultiThreadedExecutor(threads)
        executor.add_node(node)
        while not stop.signal_name and rclpy.ok() and getattr(node, "exit_code", None) is None:
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
        code = int(getattr(node, "exit_code", None) or 0)
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 0
    except RuntimeError:
        if rclpy.ok() and not stop.signal_name:
            raise
        code = 0  # a take interrupted by the shutdown itself (rclpy raises from the middleware then)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # see the module docstring
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            node.destroy_node()
        rclpy.try_shutdown()
        signal.signal(signal.SIGTERM, previous[signal.SIGTERM])
    return code

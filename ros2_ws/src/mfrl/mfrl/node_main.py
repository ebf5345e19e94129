"""Run one node in its own process: init, spin a single-threaded executor, shut down cleanly on Ctrl-C."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], args: Sequence[str] | None = None, threads: int = 1) -> int:
    """Spin the node until shutdown (Ctrl-C, SIGTERM or the node's own request); return the exit code.

    A node asks to end by setting its `exit_code` attribute (the loop stops and this returns it).
    `threads` > 1 spins a multi-threaded executor, for a node whose slow callbacks (a service that
    waits on a vehicle) sit in a callback group of their own and must not stop its other callbacks.
    """
    rclpy.init(args=list(args) if args is not None else sys.argv)
    node: Node | None = None
    code = 0
    try:
        try:
            node = make_node()
        except ValueError as exc:  # invalid parameters: the node has logged which one
            print(f"error: {exc}", file=sys.stderr)
            return 2  # (the finally clause shuts rclpy down)
        executor: Executor = SingleThreadedExecutor() if threads <= 1 else MultiThreadedExecutor(threads)
        executor.add_node(node)
        while rclpy.ok() and getattr(node, "exit_code", None) is None:
            executor.spin_once(timeout_sec=0.1)
        code = int(getattr(node, "exit_code", None) or 0)
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 0
    except RuntimeError:
        if rclpy.ok():
            raise
        code = 0  # a take interrupted by the shutdown itself (rclpy raises from the middleware then)
    finally:
        # A terminal's Ctrl-C reaches the node twice under `ros2 launch` (the process group, then launch
        # forwarding it): the second one must not interrupt the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code

"""The trajectory a controller node has been sent, held until odometry gives the time to start it."""

from __future__ import annotations

from mfrl.trajectory_wire import WireFormatError, read_trajectory
from quadsim.follower import TrajectoryFollower
from quadsim.sampled_trajectory import SampledTrajectory


class PlanInbox:
    """Reads trajectory messages (raw CDR bytes) for a follower and counts the plans taken and refused."""

    def __init__(self, follower: TrajectoryFollower) -> None:
        self.follower = follower
        self.pending: tuple[SampledTrajectory, int] | None = None
        self.plans = 0
        self.refused = 0

    def receive(self, data: bytes, now_ns: int) -> str:
        """Keep a new plan (handed over at once when the time is known); the reason it was refused, else ""."""
        try:
            wire = read_trajectory(data)
        except (WireFormatError, ValueError) as exc:
            self.refused += 1
            return f"trajectory refused: {exc}"
        self.pending = (wire.sampled, wire.stamp_ns)
        return self.hand_over(now_ns) if now_ns else ""

    def hand_over(self, now_ns: int) -> str:
        """Give the pending plan to the follower; the reason a stale one was refused (the vehicle holds), else ""."""
        if self.pending is None:
            return ""
        plan, start_ns = self.pending
        self.pending = None
        reason = self.follower.accept(plan, start_ns * 1e-9, now_ns * 1e-9)
        if reason:
            self.refused += 1
        else:
            self.plans += 1
        return reason

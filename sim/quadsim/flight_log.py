"""The record of one simulated flight, shared by every simulating fidelity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quadsim.reference import ReferenceTrack


@dataclass(frozen=True)
class FlightLog:
    """Samples of a flight at the controller rate (`K` samples).

    Attributes:
        times_s: `K` sample times from the start of the trajectory.
        positions_m: `K x 3` flown positions (world ENU).
        yaws_rad: `K` flown headings.
        ref_positions_m: `K x 3` reference positions.
        ref_yaws_rad: `K` reference headings.
        rotor_speed_cmd_rad_s: `K x 4` rotor speeds the controller asked for before clipping to limits
            (negative where it asked for negative thrust).
        failure: empty if the flight ran to the end; otherwise why it was stopped.
    """

    times_s: np.ndarray
    positions_m: np.ndarray
    yaws_rad: np.ndarray
    ref_positions_m: np.ndarray
    ref_yaws_rad: np.ndarray
    rotor_speed_cmd_rad_s: np.ndarray
    failure: str = ""

    @classmethod
    def from_track(
        cls,
        track: ReferenceTrack,
        positions_m: np.ndarray,
        yaws_rad: np.ndarray,
        rotor_speed_cmd_rad_s: np.ndarray,
        num_samples: int,
        failure: str,
    ) -> FlightLog:
        """A log of the first `num_samples` samples of a flight that followed `track`."""
        n = num_samples
        return cls(
            times_s=track.times_s[:n],
            positions_m=positions_m[:n],
            yaws_rad=yaws_rad[:n],
            ref_positions_m=track.derivatives[0, :n, :3],
            ref_yaws_rad=track.derivatives[0, :n, 3],
            rotor_speed_cmd_rad_s=rotor_speed_cmd_rad_s[:n],
            failure=failure,
        )

    @property
    def position_error_m(self) -> np.ndarray:
        """`K` position error norms."""
        return np.linalg.norm(self.positions_m - self.ref_positions_m, axis=1)

    @property
    def yaw_error_rad(self) -> np.ndarray:
        """`K` absolute heading errors, wrapped to [0, pi]."""
        return np.abs((self.yaws_rad - self.ref_yaws_rad + np.pi) % (2.0 * np.pi) - np.pi)

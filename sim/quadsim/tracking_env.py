"""Gymnasium environment: track a random minimum-snap reference with the MuJoCo quadrotor through CTBR commands.

Each episode draws a minimum-snap reference through a few random waypoints (seeded by
`reset(seed=...)`) and starts the vehicle near its first state. The policy acts at
`policy_rate_hz` (50 Hz by default) with a normalised collective thrust and body-rate command
(CTBR, `action_to_ctbr`); between two actions the body-rate loop (`quadsim.rate_controller`) runs
at `rate_loop_hz` (250 Hz, the rate of the ROS graph's simulator and of `MujocoEvaluator`) on the
MuJoCo physics (500 Hz, rotor thrust limits and motor lag) with the aerodynamic wrench of `quadsim.aero`
(rotor drag, inflow, translational lift, parasitic drag; RotorPy's model in still air) updated at every
rate-loop step, as `MujocoEvaluator` flies it; the ROS graph's `MujocoQuadrotor` updates it at every
physics step. `TrackingEnvConfig(aerodynamics=False)` is the drag-free env that the shipped tracking
controllers were trained in (before 2026-12-07 the env had no aerodynamics).

Observation (`tracking_observation`, shared with the ROS `policy_controller` node): every vector
is expressed in the vehicle's heading frame (world axes turned by the vehicle's yaw), so the
policy is invariant to heading and to the position of the course:

    position error (3), velocity error (3), reference acceleration (3),
    reference positions 0.1 / 0.3 / 0.6 s ahead relative to the vehicle (9),
    tilt as the first two columns of the heading-frame attitude (6),
    sin / cos of the yaw error (2), body rates (3)            -> 29 numbers.

Reward per step: `alive_bonus` minus a weighted sum of the position error, velocity error, yaw
error, squared action (distance from hover, taken before clipping so that a Gaussian policy's mean
stays inside the bounds instead of banging between them, where the trainer passes actions unclipped;
policyopt's on-policy trainers clip them first) and squared body rates; the bonus keeps it positive
while tracking, so a crash (termination) loses future reward. The episode terminates when the
vehicle is more than `max_position_error_m` from the reference, hits the ground or its state is
not finite, and is truncated after `episode_duration_s`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from numpy.typing import NDArray

from minsnap import Trajectory, solve_min_snap
from minsnap.allocation import constant_speed_times
from quadsim.aero import AeroModel
from quadsim.frames import wrap_angle, yaw_of
from quadsim.mujoco_model import PHYSICS_TIMESTEP_S, apply_aero_wrench, build_model
from quadsim.rate_controller import RateController, RateControllerGains
from quadsim.rotations import cross3, matrix_to_quat_wxyz, vee
from quadsim.vehicle import GRAVITY_M_S2, VehicleParams

ENV_ID = "QuadrotorTracking-v0"
OBSERVATION_SIZE = 29
"""Length of `tracking_observation`'s output."""


def _default_max_rates() -> tuple[float, float, float]:
    return (6.0, 6.0, 3.0)


def _default_lookahead() -> tuple[int, int, int]:
    return (5, 15, 30)


@dataclass(frozen=True)
class TrackingEnvConfig:
    """The task: references, control rates, action scaling, reward and episode limits.

    Attributes:
        policy_rate_hz: rate of the policy's actions (the ROS node acts at the same rate).
        rate_loop_hz: rate of the body-rate loop between actions (divides the 500 Hz physics).
        episode_duration_s: an episode is truncated after this long.
        num_waypoints: fewest and most waypoints of a random reference (the start included).
        segment_length_m: shortest and longest distance between consecutive waypoints.
        altitude_m: waypoints' heights are kept inside this range.
        mean_speed_m_s: slowest and fastest average speed of a reference (drawn per episode).
        max_yaw_step_rad: largest heading change between two waypoints.
        start_position_noise_m: standard deviation of the start position's offset from the reference.
        start_velocity_noise_m_s: same for the start velocity.
        start_tilt_noise_rad: same for the start roll and pitch (and yaw offset).
        thrust_range: the thrust action a0 in [-1, 1] gives hover thrust * (1 + thrust_range * a0).
        max_rates_rad_s: body rates that the rate actions +-1 ask for (roll, pitch, yaw).
        lookahead_steps: policy steps ahead at which reference positions enter the observation.
        alive_bonus: reward per step before the costs.
        position_weight: cost per metre of position error.
        velocity_weight: cost per m/s of velocity error.
        yaw_weight: cost per radian of heading error.
        action_weight: cost per unit of squared action norm, unclipped (zero action = hover, no rotation).
        rate_weight: cost per (rad/s)^2 of body rates.
        max_position_error_m: the episode terminates beyond this distance from the reference.
        min_altitude_m: ... or below this height (the frame rests at 0.01 m).
        aerodynamics: fly `quadsim.aero`'s wrench (the physics of every other MuJoCo flight here); False
            leaves only ideal thrust and gravity.
    """

    policy_rate_hz: float = 50.0
    rate_loop_hz: float = 250.0
    episode_duration_s: float = 6.0
    num_waypoints: tuple[int, int] = (3, 5)
    segment_length_m: tuple[float, float] = (1.0, 3.0)
    altitude_m: tuple[float, float] = (1.0, 2.5)
    mean_speed_m_s: tuple[float, float] = (0.5, 2.0)
    max_yaw_step_rad: float = math.pi / 4
    start_position_noise_m: float = 0.1
    start_velocity_noise_m_s: float = 0.1
    start_tilt_noise_rad: float = 0.05
    thrust_range: float = 1.0
    max_rates_rad_s: tuple[float, float, float] = field(default_factory=_default_max_rates)
    lookahead_steps: tuple[int, int, int] = field(default_factory=_default_lookahead)
    alive_bonus: float = 2.0
    position_weight: float = 2.0
    velocity_weight: float = 0.1
    yaw_weight: float = 0.2
    action_weight: float = 0.02
    rate_weight: float = 0.01
    max_position_error_m: float = 1.5
    min_altitude_m: float = 0.05
    aerodynamics: bool = True

    def __post_init__(self) -> None:
        physics_hz = 1.0 / PHYSICS_TIMESTEP_S
        checks = {
            "rate_loop_hz divides the physics rate": _divides(self.rate_loop_hz, physics_hz),
            "policy_rate_hz divides rate_loop_hz": _divides(self.policy_rate_hz, self.rate_loop_hz),
            "episode_duration_s > 0": self.episode_duration_s > 0,
            "2 <= num_waypoints[0] <= num_waypoints[1]": 2 <= self.num_waypoints[0] <= self.num_waypoints[1],
            "0 < segment_length_m[0] <= [1]": 0 < self.segment_length_m[0] <= self.segment_length_m[1],
            "0 < mean_speed_m_s[0] <= [1]": 0 < self.mean_speed_m_s[0] <= self.mean_speed_m_s[1],
            "0 < thrust_range": self.thrust_range > 0,
            "max_rates_rad_s > 0": min(self.max_rates_rad_s) > 0,
            "lookahead_steps >= 1": len(self.lookahead_steps) == 3 and min(self.lookahead_steps) >= 1,
            "max_position_error_m > 0": self.max_position_error_m > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid tracking env config: need {bad}; got {self}")

    @property
    def policy_dt_s(self) -> float:
        """Time between two actions."""
        return 1.0 / self.policy_rate_hz

    @property
    def episode_steps(self) -> int:
        """Actions per episode (truncation)."""
        return round(self.episode_duration_s * self.policy_rate_hz)


def _divides(rate_hz: float, of_hz: float) -> bool:
    ratio = of_hz / rate_hz if rate_hz > 0 else 0.0
    return rate_hz > 0 and ratio >= 1.0 and abs(ratio - round(ratio)) < 1e-9


def heading_frame(rotation: NDArray[np.float64]) -> NDArray[np.float64]:
    """`3 x 3` world axes turned by the vehicle's yaw (`quadsim.frames.yaw_of`)."""
    yaw = yaw_of(rotation)
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def tracking_observation(
    position_m: NDArray[np.float64],
    velocity_m_s: NDArray[np.float64],
    rotation: NDArray[np.float64],
    body_rates_rad_s: NDArray[np.float64],
    reference: NDArray[np.float64],
    ahead_positions_m: NDArray[np.float64],
) -> NDArray[np.float32]:
    """The policy's observation (module docstring): `29` float32.

    Args:
        position_m, velocity_m_s: world (ENU) position and velocity of the vehicle.
        rotation: `3 x 3` body-to-world attitude.
        body_rates_rad_s: angular velocity in the body (FLU) frame.
        reference: `3 x 4` reference position, velocity, acceleration (rows) of x, y, z, yaw (columns) now.
        ahead_positions_m: `3 x 3` reference positions at the `lookahead_steps` (rows).
    """
    heading = heading_frame(rotation)
    to_heading = heading.T
    yaw_error = float(reference[0, 3]) - yaw_of(rotation)
    tilt = to_heading @ rotation
    obs = np.empty(OBSERVATION_SIZE, dtype=np.float32)
    obs[0:3] = to_heading @ (position_m - reference[0, :3])
    obs[3:6] = to_heading @ (velocity_m_s - reference[1, :3])
    obs[6:9] = to_heading @ reference[2, :3]
    obs[9:18] = ((ahead_positions_m - position_m) @ heading).reshape(-1)
    obs[18:24] = tilt[:, :2].reshape(-1)
    obs[24] = math.sin(yaw_error)
    obs[25] = math.cos(yaw_error)
    obs[26:29] = body_rates_rad_s
    return obs


def action_to_ctbr(
    action: NDArray[np.floating[Any]], vehicle: VehicleParams, config: TrackingEnvConfig
) -> tuple[float, NDArray[np.float64]]:
    """Collective thrust (N) and body-rate command (rad/s) of a normalised action (clipped to [-1, 1])."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    hover_n = vehicle.mass_kg * GRAVITY_M_S2
    return hover_n * (1.0 + config.thrust_range * float(a[0])), a[1:4] * np.asarray(config.max_rates_rad_s)


def ctbr_to_action(
    thrust_n: float, rates_rad_s: NDArray[np.float64], vehicle: VehicleParams, config: TrackingEnvConfig
) -> NDArray[np.float32]:
    """The normalised action (clipped to [-1, 1]) of a collective thrust and body-rate command."""
    hover_n = vehicle.mass_kg * GRAVITY_M_S2
    action = np.empty(4)
    action[0] = (thrust_n / hover_n - 1.0) / config.thrust_range
    action[1:4] = rates_rad_s / np.asarray(config.max_rates_rad_s)
    return np.clip(action, -1.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class GeometricCTBRPolicy:
    """The geometric controller (Lee et al.'s position and attitude loops) as a policy of this env's interface.

    From the observation alone: the acceleration command of the position loop gives the collective
    thrust and the desired attitude; the attitude error (on SO(3)) times `k_attitude` is the body-rate
    command. It is the baseline that a learned policy is compared with, and it checks that the
    observation holds what tracking needs.

    Attributes:
        kp_position: position gain (1/s^2).
        kd_position: velocity gain (1/s).
        k_attitude: attitude gain (1/s): body-rate command per radian of attitude error.
    """

    vehicle: VehicleParams = field(default_factory=VehicleParams)
    config: TrackingEnvConfig = field(default_factory=TrackingEnvConfig)
    kp_position: float = 16.0
    kd_position: float = 8.0
    k_attitude: float = 20.0

    def act(self, obs: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
        """Action for one observation (`29`)."""
        o = np.asarray(obs, dtype=np.float64)
        accel = -self.kp_position * o[0:3] - self.kd_position * o[3:6] + o[6:9]
        force = self.vehicle.mass_kg * (accel + np.array([0.0, 0.0, GRAVITY_M_S2]))
        tilt = np.column_stack([o[18:24:2], o[19:24:2], cross3(o[18:24:2], o[19:24:2])])  # heading-frame attitude
        thrust = float(force @ tilt[:, 2])
        b3 = force / max(float(np.linalg.norm(force)), 1e-9)
        yaw_error = math.atan2(o[24], o[25])
        b1_c = np.array([math.cos(yaw_error), math.sin(yaw_error), 0.0])
        b2 = cross3(b3, b1_c)
        b2 /= max(float(np.linalg.norm(b2)), 1e-9)
        desired = np.column_stack([cross3(b2, b3), b2, b3])
        error = 0.5 * vee(desired.T @ tilt - tilt.T @ desired)
        return ctbr_to_action(thrust, -self.k_attitude * error, self.vehicle, self.config)


def random_reference(rng: np.random.Generator, config: TrackingEnvConfig) -> Trajectory:
    """A minimum-snap reference, rest to rest, through random waypoints drawn from `rng`."""
    low_n, high_n = config.num_waypoints
    count = int(rng.integers(low_n, high_n + 1))
    z_low, z_high = config.altitude_m
    points = np.zeros((count, 4))
    points[0] = [0.0, 0.0, rng.uniform(z_low, z_high), rng.uniform(-math.pi, math.pi)]
    for i in range(1, count):
        direction = rng.normal(size=3)
        direction /= max(float(np.linalg.norm(direction)), 1e-9)
        step = direction * rng.uniform(*config.segment_length_m)
        points[i, :3] = points[i - 1, :3] + step
        points[i, 2] = min(max(points[i, 2], z_low), z_high)
        points[i, 3] = points[i - 1, 3] + rng.uniform(-1.0, 1.0) * config.max_yaw_step_rad
    speed = rng.uniform(*config.mean_speed_m_s)
    return solve_min_snap(points, constant_speed_times(points, speed, min_time_s=0.3))


def reference_samples(trajectory: Trajectory, dt_s: float, count: int) -> NDArray[np.float64]:
    """`3 x count x 4` position, velocity, acceleration every `dt_s` from 0; after the end, the end point at rest."""
    times = np.arange(count) * dt_s
    samples = trajectory.derivatives(np.minimum(times, trajectory.duration_s), max_order=2)
    samples[1:, times > trajectory.duration_s, :] = 0.0
    return np.asarray(samples)


def _rotation_of(quaternion_wxyz: NDArray[np.float64]) -> NDArray[np.float64]:
    flat = np.empty(9)
    mujoco.mju_quat2Mat(flat, quaternion_wxyz)
    return flat.reshape(3, 3)


def _tilted_attitude(yaw_rad: float, roll_rad: float, pitch_rad: float) -> NDArray[np.float64]:
    cy, sy = math.cos(yaw_rad), math.sin(yaw_rad)
    cr, sr = math.cos(roll_rad), math.sin(roll_rad)
    cp, sp = math.cos(pitch_rad), math.sin(pitch_rad)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return rz @ ry @ rx


class QuadrotorTrackingEnv(gym.Env[NDArray[np.float32], NDArray[np.float32]]):
    """See the module docstring.

    `reset(options={"trajectory": t, "start_noise": False})` flies a given reference (a
    `minsnap.Trajectory`) from exactly its first state, for held-out evaluations; the episode then
    lasts the reference plus one second, or `options["duration_s"]` if given.
    `info` carries `position_error_m`, `yaw_error_rad` and `time_s` at every step.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(
        self,
        config: TrackingEnvConfig | None = None,
        vehicle: VehicleParams | None = None,
        rate_gains: RateControllerGains | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"QuadrotorTracking-v0 has no render modes, got render_mode={render_mode!r}")
        self.config = config or TrackingEnvConfig()
        self.vehicle = vehicle or VehicleParams()
        self.rate_controller = RateController(self.vehicle, rate_gains)
        self.model = build_model(self.vehicle, PHYSICS_TIMESTEP_S)
        self.data = mujoco.MjData(self.model)
        self._aero = AeroModel(self.vehicle) if self.config.aerodynamics else None
        cfg = self.config
        self._rate_steps = round(cfg.rate_loop_hz / cfg.policy_rate_hz)
        self._physics_steps = round(1.0 / (cfg.rate_loop_hz * PHYSICS_TIMESTEP_S))
        self._lookahead = np.asarray(cfg.lookahead_steps)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBSERVATION_SIZE,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._reference = np.zeros((3, 1, 4))
        self._steps = 0
        self._episode_steps = cfg.episode_steps

    # Gymnasium API -----------------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Draw a reference (or take `options["trajectory"]`) and place the vehicle near its start."""
        super().reset(seed=seed)
        options = options or {}
        cfg, rng = self.config, self.np_random
        trajectory = options.get("trajectory")
        if trajectory is None:
            trajectory = random_reference(rng, cfg)
            self._episode_steps = cfg.episode_steps
        else:
            duration = float(options.get("duration_s", trajectory.duration_s + 1.0))
            self._episode_steps = max(1, round(duration * cfg.policy_rate_hz))
        self.trajectory: Trajectory = trajectory
        count = self._episode_steps + int(self._lookahead.max()) + 1
        self._reference = reference_samples(trajectory, cfg.policy_dt_s, count)
        noisy = bool(options.get("start_noise", True))
        scale = 1.0 if noisy else 0.0
        ref0 = self._reference[:, 0, :]
        tilt = rng.normal(scale=cfg.start_tilt_noise_rad, size=3) * scale
        data = self.data
        mujoco.mj_resetData(self.model, data)
        data.qpos[:3] = ref0[0, :3] + rng.normal(scale=cfg.start_position_noise_m, size=3) * scale
        data.qpos[3:7] = matrix_to_quat_wxyz(_tilted_attitude(float(ref0[0, 3]) + tilt[2], tilt[0], tilt[1]))
        data.qvel[:3] = ref0[1, :3] + rng.normal(scale=cfg.start_velocity_noise_m_s, size=3) * scale
        hover = np.full(4, self.vehicle.mass_kg * GRAVITY_M_S2 / 4.0)
        data.act[:] = hover
        data.ctrl[:] = hover
        mujoco.mj_forward(self.model, data)
        self._steps = 0
        return self._observation(), self._info()

    def step(self, action: NDArray[np.float32]) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """Hold the CTBR command for one policy period (rate loop at `rate_loop_hz`), then observe and score."""
        raw = np.asarray(action, dtype=np.float64)
        thrust, rates_cmd = action_to_ctbr(raw, self.vehicle, self.config)  # clipped to [-1, 1] there
        data, model, aero = self.data, self.model, self._aero
        for _ in range(self._rate_steps):
            data.ctrl[:] = self.rate_controller.rotor_thrusts(thrust, rates_cmd, data.qvel[3:6])
            if aero is not None:
                apply_aero_wrench(model, data, aero)
            mujoco.mj_step(model, data, nstep=self._physics_steps)
        self._steps += 1
        finite = bool(np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all())
        if not finite:
            obs = np.zeros(OBSERVATION_SIZE, dtype=np.float32)
            return obs, 0.0, True, False, {"position_error_m": math.inf, "yaw_error_rad": math.pi, "failure": "NaN"}
        obs = self._observation()
        info = self._info()
        reward = self._reward(obs, raw)
        failure = ""
        if info["position_error_m"] > self.config.max_position_error_m:
            failure = "too far from the reference"
        elif data.qpos[2] < self.config.min_altitude_m:
            failure = "hit the ground"
        info["failure"] = failure
        return obs, reward, bool(failure), self._steps >= self._episode_steps, info

    # Pieces ------------------------------------------------------------------------------------------------
    def _observation(self) -> NDArray[np.float32]:
        data = self.data
        k = self._steps
        reference = self._reference[:, k, :]
        ahead = self._reference[0, k + self._lookahead, :3]
        rotation = _rotation_of(data.qpos[3:7])
        return tracking_observation(data.qpos[:3], data.qvel[:3], rotation, data.qvel[3:6], reference, ahead)

    def _info(self) -> dict[str, Any]:
        ref = self._reference[:, self._steps, :]
        rotation = _rotation_of(self.data.qpos[3:7])
        yaw_error = wrap_angle(float(ref[0, 3]) - yaw_of(rotation))
        return {
            "position_error_m": float(np.linalg.norm(self.data.qpos[:3] - ref[0, :3])),
            "yaw_error_rad": abs(yaw_error),
            "time_s": self._steps * self.config.policy_dt_s,
        }

    def _reward(self, obs: NDArray[np.float32], action: NDArray[np.float64]) -> float:
        cfg = self.config
        cost = (
            cfg.position_weight * float(np.linalg.norm(obs[0:3]))
            + cfg.velocity_weight * float(np.linalg.norm(obs[3:6]))
            + cfg.yaw_weight * abs(math.atan2(float(obs[24]), float(obs[25])))
            + cfg.action_weight * float(action @ action)
            + cfg.rate_weight * float(obs[26:29] @ obs[26:29])
        )
        return cfg.alive_bonus - cost

    def vehicle_position_m(self) -> NDArray[np.float64]:
        """The vehicle's world position now."""
        return np.asarray(self.data.qpos[:3].copy())

    def reference_position_m(self) -> NDArray[np.float64]:
        """The reference position at the current step."""
        return np.asarray(self._reference[0, self._steps, :3].copy())


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="quadsim.tracking_env:QuadrotorTrackingEnv")

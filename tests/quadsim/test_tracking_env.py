"""The tracking environment: Gymnasium API, seeding, heading invariance, and a reward that ranks controllers."""

from __future__ import annotations

import math
import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from minsnap import solve_min_snap
from quadsim.aero import AeroModel
from quadsim.tracking_env import (
    ENV_ID,
    OBSERVATION_SIZE,
    GeometricCTBRPolicy,
    QuadrotorTrackingEnv,
    TrackingEnvConfig,
    action_to_ctbr,
    ctbr_to_action,
    tracking_observation,
)
from quadsim.vehicle import VehicleParams


def _rollout(env: gym.Env, seed: int, policy: str) -> tuple[float, list[float], int]:
    geometric = GeometricCTBRPolicy()
    obs, _ = env.reset(seed=seed)
    total, errors, done = 0.0, [], False
    while not done:
        action = geometric.act(obs) if policy == "geometric" else np.zeros(4, dtype=np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        errors.append(info["position_error_m"])
        done = terminated or truncated
    return total, errors, len(errors)


def test_env_passes_gymnasium_checker() -> None:
    env = QuadrotorTrackingEnv()
    check_env(env, skip_render_check=True)


def test_make_by_module_id() -> None:
    env = gym.make(f"quadsim.tracking_env:{ENV_ID}")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (OBSERVATION_SIZE,)
    assert obs.dtype == np.float32


def test_same_seed_same_episode_and_different_seed_different_reference() -> None:
    env = QuadrotorTrackingEnv()
    actions = np.random.default_rng(0).uniform(-0.3, 0.3, size=(50, 4)).astype(np.float32)

    def run(seed: int) -> np.ndarray:
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in actions:
            obs, *_ = env.step(a)
            out.append(obs)
        return np.array(out)

    first, second = run(3), run(3)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first[0], run(4)[0])


def test_geometric_controller_gets_a_good_return_and_hover_does_not() -> None:
    config = TrackingEnvConfig()
    env = QuadrotorTrackingEnv(config)
    best = config.alive_bonus * config.episode_steps
    for seed in range(3):
        geometric_return, errors, steps = _rollout(env, seed, "geometric")
        assert steps == config.episode_steps, "the geometric controller must fly the whole episode"
        assert geometric_return > 0.85 * best
        assert math.sqrt(np.mean(np.square(errors))) < 0.2
        hover_return, _, _ = _rollout(env, seed, "hover")
        assert hover_return < 0.5 * geometric_return


def test_episode_terminates_when_far_and_truncates_at_its_length() -> None:
    config = TrackingEnvConfig(episode_duration_s=1.0)
    env = QuadrotorTrackingEnv(config)
    env.reset(seed=0)
    falling = np.array([-1.0, 0.0, 0.0, 0.0], dtype=np.float32)  # no thrust: falls
    terminated = False
    for _ in range(config.episode_steps):
        _, _, terminated, truncated, info = env.step(falling)
        if terminated:
            break
    assert terminated
    assert info["failure"]
    env.reset(seed=0)
    geometric = GeometricCTBRPolicy(config=config)
    obs, _ = env.reset(seed=1)
    for step in range(config.episode_steps):
        obs, _, terminated, truncated, _ = env.step(geometric.act(obs))
        assert not terminated
        assert truncated == (step == config.episode_steps - 1)


def test_given_trajectory_is_flown_from_its_start() -> None:
    trajectory = solve_min_snap(np.array([[0.0, 0.0, 1.0, 0.0], [2.0, 1.0, 1.5, 1.0]]), [2.0])
    env = QuadrotorTrackingEnv()
    obs, info = env.reset(seed=0, options={"trajectory": trajectory, "start_noise": False})
    assert info["position_error_m"] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(obs[0:6], 0.0, atol=1e-6)
    steps = 0
    done = False
    geometric = GeometricCTBRPolicy()
    while not done:
        obs, _, terminated, truncated, _ = env.step(geometric.act(obs))
        done = terminated or truncated
        steps += 1
    assert steps == round((trajectory.duration_s + 1.0) * 50)


def test_observation_is_heading_invariant() -> None:
    rng = np.random.default_rng(1)
    position, velocity, rates = rng.normal(size=3), rng.normal(size=3), rng.normal(size=3)
    reference = rng.normal(size=(3, 4))
    ahead = rng.normal(size=(3, 3))
    tilt = 0.3
    rotation = np.array([[1.0, 0, 0], [0, math.cos(tilt), -math.sin(tilt)], [0, math.sin(tilt), math.cos(tilt)]])
    base = tracking_observation(position, velocity, rotation, rates, reference, ahead)
    for yaw in (0.7, -2.5):
        turn = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1.0]])
        shift = np.array([5.0, -3.0, 0.0])
        turned_ref = reference.copy()
        turned_ref[:, :3] = reference[:, :3] @ turn.T
        turned_ref[0, :3] += shift
        turned_ref[0, 3] += yaw
        turned = tracking_observation(
            turn @ position + shift, turn @ velocity, turn @ rotation, rates, turned_ref, ahead @ turn.T + shift
        )
        np.testing.assert_allclose(turned, base, atol=1e-5)


def test_action_and_ctbr_round_trip() -> None:
    vehicle, config = VehicleParams(), TrackingEnvConfig()
    action = np.array([0.2, -0.5, 0.9, -0.1], dtype=np.float32)
    thrust, rates = action_to_ctbr(action, vehicle, config)
    np.testing.assert_allclose(ctbr_to_action(thrust, rates, vehicle, config), action, atol=1e-6)
    thrust0, rates0 = action_to_ctbr(np.zeros(4), vehicle, config)
    assert thrust0 == pytest.approx(vehicle.mass_kg * 9.81)
    np.testing.assert_array_equal(rates0, 0.0)


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="policy_rate_hz divides rate_loop_hz"):
        TrackingEnvConfig(policy_rate_hz=60.0)


def test_steps_per_second() -> None:
    env = QuadrotorTrackingEnv()
    env.reset(seed=0)
    action = np.zeros(4, dtype=np.float32)
    start = time.process_time()  # CPU time: the machine may be shared
    for _ in range(500):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    rate = 500 / (time.process_time() - start)
    assert rate > 1000, f"{rate:.0f} steps/s"  # about 4000-6000 per core


def test_action_beyond_bounds_flies_as_clipped_but_costs_more() -> None:
    env = QuadrotorTrackingEnv()
    env.reset(seed=2)
    obs_in, reward_in, *_ = env.step(np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32))
    env.reset(seed=2)
    obs_out, reward_out, *_ = env.step(np.array([0.0, 3.0, 0.0, 0.0], dtype=np.float32))
    np.testing.assert_array_equal(obs_in, obs_out)
    assert reward_out < reward_in


def _coast(config: TrackingEnvConfig, speed_m_s: float, steps: int) -> tuple[float, float]:
    """Start level at 2 m with `speed_m_s` along world x, hold hover (action 0) for `steps` policy steps;
    return the x speed after the first step and at the end."""
    env = QuadrotorTrackingEnv(config)
    env.reset(seed=0, options={"start_noise": False})
    data = env.data
    data.qpos[:3] = [0.0, 0.0, 2.0]
    data.qpos[3:7] = [1.0, 0.0, 0.0, 0.0]
    data.qvel[:] = 0.0
    data.qvel[0] = speed_m_s
    speeds = []
    for _ in range(steps):
        env.step(np.zeros(4, dtype=np.float32))
        speeds.append(float(data.qvel[0]))
    return speeds[0], speeds[-1]


def test_env_flies_rotor_drag_as_the_aero_model_predicts() -> None:
    # The graph's simulator and the MuJoCo evaluator fly quadsim.aero; a controller trained here must feel it.
    vehicle, speed = VehicleParams(), 4.0
    hover_rad_s = math.sqrt(vehicle.mass_kg * 9.81 / 4.0 / vehicle.thrust_coeff_n_per_rad2_s2)
    force, _ = AeroModel(vehicle).wrench_body(np.array([speed, 0.0, 0.0]), np.zeros(3), np.full(4, hover_rad_s))
    predicted = speed + force[0] / vehicle.mass_kg * TrackingEnvConfig().policy_dt_s
    first, last = _coast(TrackingEnvConfig(), speed, 25)
    assert force[0] < 0.0
    assert first == pytest.approx(predicted, abs=0.05 * (speed - predicted))  # the first 20 ms: 0.039 m/s lost
    assert last < speed - 10 * (speed - predicted)  # and it keeps slowing down over half a second
    first_free, last_free = _coast(TrackingEnvConfig(aerodynamics=False), speed, 25)
    assert first_free == pytest.approx(speed, abs=1e-6)
    assert last_free == pytest.approx(speed, abs=0.02)

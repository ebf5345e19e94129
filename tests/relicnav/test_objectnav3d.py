"""ObjectNav3D on miniworld: trial structure, observations, rewards and the shortest-path expert."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from relicnav import TrialEnv, trial_seeds
from relicnav.objectnav3d import MOVE_FORWARD, OBJECTS, STOP, TURN_LEFT, TURN_RIGHT, ObjectNav3D

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def env() -> Iterator[ObjectNav3D]:
    environment = ObjectNav3D()
    yield environment
    environment.close()


def run_expert(env: ObjectNav3D) -> tuple[bool, list[float], list[dict]]:
    env.reset()
    rewards, infos, done = [], [], False
    while not done:
        _, reward, terminated, truncated, info = env.step(env.expert_action())
        rewards.append(reward)
        infos.append(info)
        done = terminated or truncated
    return bool(infos[-1]["success"]), rewards, infos


def test_objects_stay_put_in_a_trial_and_move_across_trials(env: ObjectNav3D) -> None:
    env.new_trial(11)
    layout = env.object_positions
    first_view = env.reset()["image"]
    for _ in range(3):
        env.reset()
        for action in (MOVE_FORWARD, TURN_LEFT, MOVE_FORWARD):
            env.step(action)
        assert np.array_equal(env.object_positions, layout)
    env.new_trial(12)
    assert np.min(np.linalg.norm(env.object_positions - layout, axis=1)) > 0.01
    env.new_trial(11)
    assert np.array_equal(env.object_positions, layout)
    assert np.array_equal(env.reset()["image"], first_view)


def test_held_out_layouts_differ_from_training_layouts(env: ObjectNav3D) -> None:
    layouts = {}
    for split in ("train", "eval"):
        for seed in trial_seeds("objectnav3d", split, 4):  # type: ignore[arg-type]
            env.new_trial(seed)
            layouts[(split, seed)] = env.object_positions
    for (split_a, a), place_a in layouts.items():
        for (split_b, b), place_b in layouts.items():
            if split_a == "train" and split_b == "eval":
                assert not np.allclose(place_a, place_b, atol=0.5), (a, b)


def test_episodes_start_at_random_poses_with_random_targets(env: ObjectNav3D) -> None:
    env.new_trial(3)
    starts, targets = set(), set()
    for _ in range(12):
        obs = env.reset()
        x, z, heading = env.agent_pose
        starts.add((round(x, 3), round(z, 3), round(heading, 3)))
        targets.add(env.target)
        assert np.array_equal(np.flatnonzero(obs["vector"]), [env.target])
        _, _, terminated, _, info = env.step(TURN_LEFT)
        assert not info["success"], "an episode started at its target"
        assert not terminated
    assert len(starts) == 12
    assert len(targets) >= 4


def test_observations_lie_in_their_spaces() -> None:
    small = ObjectNav3D(obs_size=32, stop_action=True)
    try:
        assert isinstance(small, TrialEnv)
        small.new_trial(0)
        obs = small.reset()
        assert obs["image"].shape == (32, 32, 3)
        assert obs["image"].dtype == np.uint8
        assert obs["vector"].shape == (len(OBJECTS),)
        assert obs["vector"].dtype == np.float32
        rng = np.random.default_rng(0)
        for _ in range(20):
            assert small.observation_space.contains(obs)
            obs, _, _terminated, _truncated, info = small.step(int(rng.integers(3)))
            assert isinstance(info["success"], bool)
        assert obs["image"].std() > 5  # a rendered view, not a blank frame
    finally:
        small.close()


@pytest.mark.slow
@pytest.mark.parametrize("stop_action", [False, True])
def test_the_expert_reaches_the_target(stop_action: bool) -> None:
    env = ObjectNav3D(stop_action=stop_action)
    try:
        outcomes = []
        for seed in trial_seeds("objectnav3d", "eval", 4):
            env.new_trial(seed)
            for _ in range(5):
                success, rewards, _infos = run_expert(env)
                outcomes.append(success)
                assert len(rewards) < 150
                if stop_action:
                    assert env.expert_action() == STOP
        assert np.mean(outcomes) >= 0.95, outcomes
    finally:
        env.close()


def test_rewards_are_slack_shaping_and_success(env: ObjectNav3D) -> None:
    env.new_trial(4)
    success, rewards, infos = run_expert(env)
    assert success
    assert rewards[-1] > 2.0 - 0.001
    distances = [info["distance_m"] for info in infos]
    assert distances[0] - distances[-1] > 0.5
    # each step pays the slack and the metres closed, so the return telescopes to the distance closed
    closed = distances[0] - distances[-1]
    assert sum(rewards[1:]) == pytest.approx(2.0 - 0.001 * (len(rewards) - 1) + closed, abs=1e-9)
    env.reset()
    for action in (TURN_LEFT, TURN_RIGHT, TURN_LEFT):
        _, reward, terminated, _, info = env.step(action)
        assert reward == pytest.approx(-0.001)
        assert not terminated
        assert not info["success"]


def test_geodesic_distance_goes_around_walls(env: ObjectNav3D) -> None:
    env.new_trial(8)
    rng = np.random.default_rng(1)
    detours = []
    for _ in range(3):
        env.reset()
        for _ in range(40):
            _, _, terminated, _, info = env.step(int(rng.integers(3)))
            x, z, _ = env.agent_pose
            straight = float(np.linalg.norm(env.object_positions[env.target] - np.array([x, z])))
            detours.append(info["distance_m"] - straight)
            if terminated:
                break
    assert min(detours) >= -0.2  # never shorter than the straight line (up to the grid's interpolation)
    assert max(detours) > 1.0  # and longer where a wall stands between


def test_without_shaping_rewards_are_sparse() -> None:
    sparse = ObjectNav3D(distance_shaping=0.0)
    try:
        sparse.new_trial(4)
        success, rewards, _ = run_expert(sparse)
        assert success
        assert rewards[:-1] == [pytest.approx(-0.001)] * (len(rewards) - 1)
        assert rewards[-1] == pytest.approx(2.0 - 0.001)
    finally:
        sparse.close()


def test_stop_away_from_the_target_fails_and_ends_the_episode() -> None:
    env = ObjectNav3D(stop_action=True)
    try:
        env.new_trial(2)
        env.reset()
        _, reward, terminated, truncated, info = env.step(STOP)
        assert terminated
        assert not truncated
        assert not info["success"]
        assert reward < 0
        with pytest.raises(RuntimeError, match="reset"):
            env.step(TURN_LEFT)
    finally:
        env.close()


def test_episodes_truncate_at_max_episode_steps() -> None:
    env = ObjectNav3D(max_episode_steps=5)
    try:
        env.new_trial(1)
        env.reset()
        flags = [env.step(TURN_LEFT)[2:4] for _ in range(5)]
        assert flags == [(False, False)] * 4 + [(False, True)]
    finally:
        env.close()


def test_reset_before_a_trial_and_bad_actions_raise(env: ObjectNav3D) -> None:
    fresh = ObjectNav3D()
    try:
        with pytest.raises(RuntimeError, match="new_trial"):
            fresh.reset()
    finally:
        fresh.close()
    env.new_trial(0)
    env.reset()
    for action in (3, -1, 1.0, None):  # 3 is stop, which this env (stop_action=False) does not have
        with pytest.raises(ValueError, match="action"):
            env.step(action)  # type: ignore[arg-type]


def test_two_environments_in_one_process_render_their_own_scenes(env: ObjectNav3D) -> None:
    env.new_trial(21)
    alone = env.reset()["image"]
    other = ObjectNav3D()
    try:
        other.new_trial(22)
        other.reset()
        env.step(TURN_LEFT)
        again = env.step(TURN_RIGHT)[0]["image"]  # back to the first pose, after the other env drew its scene
        assert np.array_equal(again, alone)
    finally:
        other.close()

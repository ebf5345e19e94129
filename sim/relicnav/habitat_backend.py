"""The trial interface over habitat-lab's object navigation, for users who have habitat-sim.

habitat-sim has no pip wheel for this project's Python; it comes from conda:

    conda install habitat-sim -c conda-forge -c aihabitat
    pip install habitat-lab

so habitat is imported only when a `HabitatObjectNav` is built, and building one without it raises
`HabitatUnavailableError` (a `runkit.UserError`: one line, naming that install route).

What it does with habitat-lab's API (`habitat.get_config`, `habitat.Env`):

- The config is an object-navigation task config (e.g. habitat-lab's `benchmark/nav/objectnav/...yaml`)
  with an RGB sensor ("rgb") and the object-goal sensor ("objectgoal", a category id); observations map to
  `{"image": rgb uint8 (H, W, 3), "vector": one-hot of the category, float32 (categories,)}`.
- Actions: 0 turn left, 1 turn right, 2 move forward, 3 stop (the order of `ObjectNav3D(stop_action=True)`),
  sent as the task's `turn_left`, `turn_right`, `move_forward` and `stop`. Success is habitat's `success`
  measure (stop called near a view point of a goal object); the episode terminates on stop.
- Reward: slack -0.001 per step, +2.0 on success, plus `distance_shaping` x the decrease of habitat's
  `distance_to_goal` (geodesic metres), as in `ObjectNav3D`.
- `new_trial(seed)` picks one scene of the config's dataset split from `seed` and keeps it for the trial
  (its objects stay put); each `reset()` plays a random episode of that scene (from the trial's generator):
  the dataset's start pose and target category. Held-out layouts are the dataset's held-out scenes: build
  the evaluation env from a config whose dataset split is `val`.
- `expert_action()` is habitat's `ShortestPathFollower` toward the goal view point nearest (by geodesic
  distance) to the episode's start.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np

from relicnav.trial import check_action, seed_split
from runkit import UserError
from runkit.cli import one_line

INSTALL_ROUTE = "conda install habitat-sim -c conda-forge -c aihabitat, then pip install habitat-lab"
TURN_LEFT, TURN_RIGHT, MOVE_FORWARD, STOP = 0, 1, 2, 3
ACTION_NAMES = ("turn_left", "turn_right", "move_forward", "stop")
"""The habitat task action behind each of this environment's actions."""


class HabitatUnavailableError(UserError):
    """habitat-lab or habitat-sim cannot be imported; the message names the install route."""


def _import_habitat() -> tuple[Any, Any, Any]:
    """The modules `habitat`, its shortest-path follower's and `omegaconf`; HabitatUnavailableError without them."""
    try:
        habitat = importlib.import_module("habitat")
        follower = importlib.import_module("habitat.tasks.nav.shortest_path_follower")
        omegaconf = importlib.import_module("omegaconf")
    except ImportError as error:
        raise HabitatUnavailableError(
            f"HabitatObjectNav needs habitat-sim and habitat-lab ({one_line(error)}): install them with "
            f"`{INSTALL_ROUTE}`"
        ) from error
    return habitat, follower, omegaconf


class HabitatObjectNav:
    """habitat-lab object navigation as a `TrialEnv`; see the module docstring."""

    def __init__(
        self,
        config_path: str,
        overrides: Sequence[str] = (),
        distance_shaping: float = 1.0,
        success_reward: float = 2.0,
        slack_reward: float = -0.001,
        rgb_key: str = "rgb",
        goal_key: str = "objectgoal",
    ) -> None:
        habitat, follower_module, omegaconf = _import_habitat()
        config = habitat.get_config(config_path, overrides=list(overrides))
        self._env = habitat.Env(config=config)
        spaces = self._env.observation_space.spaces
        for key in (rgb_key, goal_key):
            if key not in spaces:
                raise UserError(f"{config_path} gives no {key!r} observation (it gives {', '.join(sorted(spaces))})")
        height, width = spaces[rgb_key].shape[:2]
        self._categories = int(np.max(spaces[goal_key].high)) + 1
        self.observation_space = gymnasium.spaces.Dict(
            {
                "image": gymnasium.spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8),
                "vector": gymnasium.spaces.Box(0.0, 1.0, shape=(self._categories,), dtype=np.float32),
            }
        )
        self.action_space = gymnasium.spaces.Discrete(len(ACTION_NAMES))
        self.max_episode_steps = int(omegaconf.OmegaConf.select(config, "habitat.environment.max_episode_steps"))
        self.distance_shaping = distance_shaping
        self.success_reward = success_reward
        self.slack_reward = slack_reward
        self._rgb_key, self._goal_key = rgb_key, goal_key
        success_distance = omegaconf.OmegaConf.select(
            config, "habitat.task.measurements.success.success_distance", default=0.1
        )
        self._follower = follower_module.ShortestPathFollower(
            self._env.sim, goal_radius=float(success_distance), return_one_hot=False
        )
        sim_actions = importlib.import_module("habitat.sims.habitat_simulator.actions").HabitatSimActions
        self._from_sim_action = {
            sim_actions.turn_left: TURN_LEFT,
            sim_actions.turn_right: TURN_RIGHT,
            sim_actions.move_forward: MOVE_FORWARD,
            sim_actions.stop: STOP,
        }
        self._scenes = sorted({episode.scene_id for episode in self._env.episodes})
        self._trial_episodes: list[Any] = []
        self._episode_rng = np.random.default_rng(0)
        self._goal_position: np.ndarray | None = None
        self._distance_m = 0.0
        self._steps = 0
        self._over = True

    def new_trial(self, seed: int) -> None:
        """Pick the trial's scene from `seed` (and seed the episodes' draws)."""
        seed_split(seed)
        scene = self._scenes[int(np.random.default_rng(seed).integers(len(self._scenes)))]
        self._trial_episodes = [episode for episode in self._env.episodes if episode.scene_id == scene]
        self._episode_rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        self._env.seed(seed)
        self._over = True

    def reset(self) -> dict[str, np.ndarray]:
        """Play a random episode of the trial's scene."""
        if not self._trial_episodes:
            raise RuntimeError("HabitatObjectNav.reset() before new_trial(seed): a trial fixes the scene first")
        episode = self._trial_episodes[int(self._episode_rng.integers(len(self._trial_episodes)))]
        self._env.current_episode = episode
        observations = self._env.reset()
        self._goal_position = self._nearest_goal(episode)
        self._distance_m = float(self._env.get_metrics()["distance_to_goal"])
        self._steps = 0
        self._over = False
        return self._observation(observations)

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Send the action to habitat; reward from its `distance_to_goal` and `success` measures."""
        index = check_action(action, len(ACTION_NAMES))
        if self._over:
            raise RuntimeError("HabitatObjectNav.step() outside an episode: call reset() first")
        observations = self._env.step({"action": ACTION_NAMES[index]})
        self._steps += 1
        metrics = self._env.get_metrics()
        distance_m = float(metrics["distance_to_goal"])
        success = bool(metrics["success"])
        reward = self.slack_reward + self.distance_shaping * (self._distance_m - distance_m)
        reward += self.success_reward if success else 0.0
        self._distance_m = distance_m
        terminated = index == STOP
        truncated = not terminated and (self._env.episode_over or self._steps >= self.max_episode_steps)
        self._over = terminated or truncated
        info = {"success": success, "distance_m": distance_m}
        return self._observation(observations), reward, terminated, truncated, info

    def expert_action(self) -> int:
        """habitat's shortest-path follower's action toward the episode's nearest goal view point."""
        if self._goal_position is None:
            raise RuntimeError("HabitatObjectNav.expert_action() before reset()")
        sim_action = self._follower.get_next_action(self._goal_position)
        return STOP if sim_action is None else self._from_sim_action.get(int(sim_action), STOP)

    def close(self) -> None:
        """Close habitat's simulator."""
        self._env.close()

    def _nearest_goal(self, episode: Any) -> np.ndarray:
        """The goal view point (or goal position, where a goal has none) nearest to the agent by geodesic distance."""
        points = [
            np.asarray(view.agent_state.position) for goal in episode.goals for view in (goal.view_points or [])
        ] or [np.asarray(goal.position) for goal in episode.goals]
        start = self._env.sim.get_agent_state().position
        distances = [self._env.sim.geodesic_distance(start, point) for point in points]
        return points[int(np.argmin(distances))]

    def _observation(self, observations: dict[str, Any]) -> dict[str, np.ndarray]:
        one_hot = np.zeros(self._categories, dtype=np.float32)
        one_hot[int(np.asarray(observations[self._goal_key]).reshape(-1)[0])] = 1.0
        image = np.asarray(observations[self._rgb_key])[..., :3].astype(np.uint8)
        return {"image": image, "vector": one_hot}

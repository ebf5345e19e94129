"""ObjectNav3D: first-person multi-object navigation in miniworld's four rooms, as a `TrialEnv`.

The map is miniworld's FourRooms (four 6 m x 6 m rooms joined by 2 m wide openings, 14 m x 14 m in all).
Six objects of distinct colour and shape (`OBJECTS`: red box, green ball, blue key, yellow box, purple
ball, grey key) stand in the rooms at places drawn from the trial seed: they stay put for every episode of
a trial and move when the trial changes (ReLIC's ExtObjNav, where the scene's objects are fixed for a
trial and the agent is asked for one of them per episode). A layout is redrawn until every object can be
reached from the area where episodes start (an object in a doorway would cut the map in two).

Each episode starts the agent at a random free place and heading (from the trial's own generator, seeded
by `new_trial`'s seed, at least 1.5 m by path from the target) and names a random target object.

- Observation: "image", uint8 `(obs_size, obs_size, 3)`, the agent's first-person RGB view (the only thing
  rendered, once per step; miniworld's camera at 1.5 m, 60 deg vertical field of view, so objects closer
  than 1-2 m drop below the view), and "vector", float32 `(6,)`, the one-hot target (index in `OBJECTS`).
- Actions: 0 turn left 30 deg, 1 turn right 30 deg, 2 move forward 0.25 m (the authors' ExtObjNav turn and
  step sizes; miniworld's defaults are 15 deg and 0.15 m), and with `stop_action=True` a fourth, 3 stop.
  Default `stop_action=False`: the episode succeeds (and terminates) as soon as the agent is within
  miniworld's `near` distance of the target (agent radius + object radius + 1.1 x the 0.25 m step). With
  `stop_action=True` the agent must call stop there, as ExtObjNav requires (`must_call_stop`); a stop
  anywhere else ends the episode as a failure.
- Reward: slack -0.001 every step, +2.0 on success (the authors' values), plus `distance_shaping` x the
  decrease of the geodesic distance to the target (metres, on the occupancy grid below). Default 1.0, the
  authors' `dist_reward`: over a 250-step episode in a 14 m map the sparse +2.0 alone is rarely found by
  an untrained policy, and the shaping only says "closer", not where the target is, so the place still has
  to be remembered in context. Set it to 0 for a purely sparse task.
- Truncation after `max_episode_steps` (default 250).

`expert_action()` is a shortest-path follower on an occupancy grid of 0.25 m cells (cells where the
agent's disc fits; one geodesic distance field per target, from a Dijkstra-equivalent sweep, see
`relicnav.occupancy`). The agent can only face 12 headings 30 deg apart (from its random start heading),
so the expert does not steer at a waypoint: it tries each heading (turns, then up to 4 forward steps, the
sequence cut where miniworld's collision test would block a move) and takes the first action of the
sequence that closes the most geodesic distance per action; within `near` it calls stop (without a stop
action the episode is already over there). It reaches the target in 100 % of 300 episodes (30 held-out
layouts x 10 episodes, with the stop action), in 44 steps on average.

Speed at 64 x 64 on one core of this 2-core machine (software OpenGL: Mesa llvmpipe): about 850 steps/s
with random actions, render included (the render is about 80 % of it); 510-550 steps/s when the expert picks
the actions; `new_trial` 0.1 s. While other jobs loaded both cores, the same run gave 430 and 300 steps/s.
Measured with `nice .venv/bin/python -m relicnav.objectnav3d` (about 35 s; prints these figures).

Importing this module imports miniworld and pyglet; it sets `PYGLET_HEADLESS=true` first (unless the
variable is set already) so that it renders without a display. `import relicnav` does not import it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np

from relicnav.occupancy import GridFrame, distance_field, free_cells, sample_field, segment_distances
from relicnav.trial import check_action, seed_split, trial_seeds

os.environ.setdefault("PYGLET_HEADLESS", "true")

from miniworld.entity import Ball, Box, Key
from miniworld.miniworld import MiniWorldEnv
from miniworld.params import DEFAULT_PARAMS

OBJECTS: tuple[tuple[str, str], ...] = (
    ("box", "red"),
    ("ball", "green"),
    ("key", "blue"),
    ("box", "yellow"),
    ("ball", "purple"),
    ("key", "grey"),
)
"""The objects (shape, colour), in the order of the target one-hot."""

TURN_LEFT, TURN_RIGHT, MOVE_FORWARD, STOP = 0, 1, 2, 3
"""The actions (STOP only with `stop_action=True`); the first three are miniworld's own numbers."""
TURN_DEG = 30.0
FORWARD_M = 0.25
CELL_M = 0.25
"""The occupancy grid's cell size."""
GRID_MARGIN_M = 0.02
"""Added to the agent's radius when a cell's centre is tested against walls and objects."""
MIN_START_DISTANCE_M = 1.5
"""An episode starts at least this far (geodesic) from its target."""
LOOKAHEAD_STEPS = 4
"""Forward steps the expert looks ahead along each heading."""
_HEADINGS = round(360 / TURN_DEG)
_MAX_LAYOUT_TRIES = 50
_EPISODE_STREAM = _MAX_LAYOUT_TRIES
"""The trial seed's sub-stream for episode draws (layout draws use sub-streams 0 .. _MAX_LAYOUT_TRIES - 1)."""
_MAX_START_TRIES = 1000
_DISPLAY_LIST_OWNER = [0]
"""id() of the world whose static scene is in OpenGL display list 1 (miniworld compiles every world's
scene into list 1, and pyglet's contexts share display lists, so two worlds in one process take turns)."""


class _StaticBox(Box):
    """A box that never moves, so that miniworld draws it from the static display list."""

    @property
    def is_static(self) -> bool:
        return True


def _make_object(shape: str, colour: str) -> Any:
    """A static miniworld entity of `shape` ("box", "ball", "key") and `colour`."""
    if shape == "box":
        return _StaticBox(color=colour)
    entity = Ball(color=colour) if shape == "ball" else Key(color=colour)
    entity.static = True  # drawn once per trial into the display list, not every frame
    return entity


class FourRoomsWorld(MiniWorldEnv):
    """miniworld's FourRooms map with the six objects; `reset(seed=...)` draws their places."""

    def __init__(self, obs_size: int) -> None:
        params = DEFAULT_PARAMS.no_random()
        params.set("forward_step", FORWARD_M)
        params.set("turn_step", TURN_DEG)
        self.objects: list[Any] = []
        super().__init__(
            max_episode_steps=2**31 - 1,
            obs_width=obs_size,
            obs_height=obs_size,
            window_width=obs_size,
            window_height=obs_size,
            params=params,
            domain_rand=False,
        )

    def _gen_world(self) -> None:
        rooms = [
            self.add_rect_room(min_x=-7, max_x=-1, min_z=1, max_z=7),
            self.add_rect_room(min_x=1, max_x=7, min_z=1, max_z=7),
            self.add_rect_room(min_x=1, max_x=7, min_z=-7, max_z=-1),
            self.add_rect_room(min_x=-7, max_x=-1, min_z=-7, max_z=-1),
        ]
        self.connect_rooms(rooms[0], rooms[1], min_z=3, max_z=5, max_y=2.2)
        self.connect_rooms(rooms[1], rooms[2], min_x=3, max_x=5, max_y=2.2)
        self.connect_rooms(rooms[2], rooms[3], min_z=-5, max_z=-3, max_y=2.2)
        self.connect_rooms(rooms[3], rooms[0], min_x=-5, max_x=-3, max_y=2.2)
        self.objects = [
            self.place_entity(_make_object(shape, colour), room=rooms[int(self.np_random.integers(len(rooms)))])
            for shape, colour in OBJECTS
        ]
        self.place_agent()

    def _render_static(self) -> None:
        super()._render_static()
        _DISPLAY_LIST_OWNER[0] = id(self)

    def render_view(self) -> np.ndarray:
        """The agent's first-person view, an `H x W x 3` uint8 array."""
        if _DISPLAY_LIST_OWNER[0] != id(self):
            self.shadow_window.switch_to()
            self._render_static()
        image: np.ndarray = self.render_obs()
        return image


@dataclass(frozen=True)
class _Layout:
    """What the expert and the reward know of one trial's map: distance fields, start cells, walls, objects."""

    frame: GridFrame
    fields: list[np.ndarray]
    """Per target: geodesic distance (m) from each cell to the target's centre, around walls and the other
    objects (inf where the agent's centre cannot be)."""
    spawn: np.ndarray
    """A `k x 2` array of the cells where episodes may start (the largest free area)."""
    walls: np.ndarray
    """The wall segments, `s x 2 x 2` (x, z)."""
    discs: np.ndarray
    """The objects' footprints, `6 x 3` (x, z, radius)."""


def _near_m(world: FourRoomsWorld, entity: Any) -> float:
    """miniworld's `near` distance between the agent and `entity`."""
    return float(world.agent.radius + entity.radius + 1.1 * world.max_forward_step)


def _plan_layout(world: FourRoomsWorld) -> _Layout | None:
    """The grid and distance fields of the world's current layout; None when some object is unreachable."""
    frame = GridFrame.covering(world.min_x, world.max_x, world.min_z, world.max_z, CELL_M)
    walls = np.asarray(world.wall_segs)[:, :, [0, 2]]
    floors = [np.asarray(room.outline)[:, [0, 2]] for room in world.rooms]
    radius = world.agent.radius + GRID_MARGIN_M
    open_floor = free_cells(frame, walls, floors, radius)
    centres = frame.centres()
    gaps = [np.hypot(centres[..., 0] - o.pos[0], centres[..., 1] - o.pos[2]) for o in world.objects]
    blocked = [gap < radius + o.radius for gap, o in zip(gaps, world.objects, strict=True)]
    everywhere_free = open_floor & ~np.any(blocked, axis=0)
    spawn = _largest_region(everywhere_free)
    if spawn is None:
        return None
    fields = []
    for k, obj in enumerate(world.objects):
        free_k = open_floor & ~np.any([b for m, b in enumerate(blocked) if m != k], axis=0)
        source_k = free_k & (gaps[k] < _near_m(world, obj) - CELL_M / math.sqrt(2.0))
        field = distance_field(free_k, np.where(source_k, gaps[k], np.inf), CELL_M)
        if not source_k.any() or not np.isfinite(field[spawn[0, 0], spawn[0, 1]]):
            return None
        fields.append(field)
    discs = np.array([[o.pos[0], o.pos[2], o.radius] for o in world.objects])
    return _Layout(frame, fields, spawn, walls, discs)


def _largest_region(free: np.ndarray, min_share: float = 0.95) -> np.ndarray | None:
    """The cells (`k x 2`) of the largest 8-connected free region; None if it holds under `min_share` of them."""
    unlabelled = free.copy()
    best = np.zeros((0, 2), dtype=np.int64)
    while unlabelled.any():
        seed = np.argwhere(unlabelled)[0]
        costs = np.full(free.shape, np.inf)
        costs[seed[0], seed[1]] = 0.0
        region = np.isfinite(distance_field(free, costs, 1.0))
        unlabelled &= ~region
        if region.sum() > len(best):
            best = np.argwhere(region)
    return best if len(best) >= min_share * free.sum() else None


class ObjectNav3D:
    """The miniworld object-navigation trial environment; see the module docstring."""

    def __init__(
        self,
        obs_size: int = 64,
        max_episode_steps: int = 250,
        distance_shaping: float = 1.0,
        stop_action: bool = False,
        success_reward: float = 2.0,
        slack_reward: float = -0.001,
    ) -> None:
        if obs_size < 8 or max_episode_steps < 1:
            raise ValueError(f"need obs_size >= 8 and max_episode_steps >= 1, got {obs_size}, {max_episode_steps}")
        self.max_episode_steps = max_episode_steps
        self.distance_shaping = distance_shaping
        self.stop_action = stop_action
        self.success_reward = success_reward
        self.slack_reward = slack_reward
        self.observation_space = gymnasium.spaces.Dict(
            {
                "image": gymnasium.spaces.Box(0, 255, shape=(obs_size, obs_size, 3), dtype=np.uint8),
                "vector": gymnasium.spaces.Box(0.0, 1.0, shape=(len(OBJECTS),), dtype=np.float32),
            }
        )
        self.action_space = gymnasium.spaces.Discrete(4 if stop_action else 3)
        self._world = FourRoomsWorld(obs_size)
        self._layout: _Layout | None = None
        self._episode_rng = np.random.default_rng(0)
        self.target = 0
        self._steps = 0
        self._distance_m = math.inf
        self._over = True

    @property
    def object_positions(self) -> np.ndarray:
        """The objects' places (x, z) in metres, a `6 x 2` array in the order of `OBJECTS`."""
        return np.array([[o.pos[0], o.pos[2]] for o in self._world.objects])

    @property
    def agent_pose(self) -> tuple[float, float, float]:
        """The agent's (x, z) in metres and heading in radians (0 faces +x; positive turns left)."""
        agent = self._world.agent
        return float(agent.pos[0]), float(agent.pos[2]), float(agent.dir)

    def new_trial(self, seed: int) -> None:
        """Draw the objects' places from `seed` (and the episodes' start poses and targets that follow)."""
        seed_split(seed)
        for attempt in range(_MAX_LAYOUT_TRIES):
            world_seed = int(np.random.SeedSequence([seed, attempt]).generate_state(1)[0])
            self._world.shadow_window.switch_to()
            self._world.reset(seed=world_seed)
            layout = _plan_layout(self._world)
            if layout is not None:
                break
        else:
            raise RuntimeError(f"no layout with every object reachable in {_MAX_LAYOUT_TRIES} draws of seed {seed}")
        self._layout = layout
        self._episode_rng = np.random.default_rng(np.random.SeedSequence([seed, _EPISODE_STREAM]))
        self._over = True

    def reset(self) -> dict[str, np.ndarray]:
        """Start an episode: a random start pose and a random target, in the trial's layout."""
        layout = self._require_layout()
        rng = self._episode_rng
        self.target = int(rng.integers(len(OBJECTS)))
        field = layout.fields[self.target]
        starts = layout.spawn[field[layout.spawn[:, 0], layout.spawn[:, 1]] >= MIN_START_DISTANCE_M]
        agent = self._world.agent
        for _ in range(_MAX_START_TRIES):
            i, j = starts[rng.integers(len(starts))]
            x, z = layout.frame.centre((int(i), int(j))) + rng.uniform(-CELL_M / 2, CELL_M / 2, size=2)
            position = np.array([x, 0.0, z])
            if not self._world.intersect(agent, position, agent.radius):
                break
        else:
            raise RuntimeError(f"found no free start pose in {_MAX_START_TRIES} draws")
        agent.pos = position
        agent.dir = float(rng.uniform(-math.pi, math.pi))
        self._steps = 0
        self._distance_m = self._geodesic_m()
        self._over = False
        return self._observation()

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Turn, move forward (blocked by walls and objects) or stop; reward as in the module docstring."""
        index = check_action(action, int(self.action_space.n))
        if self._over:
            raise RuntimeError("ObjectNav3D.step() outside an episode: call reset() first")
        self._steps += 1
        if index == TURN_LEFT:
            self._world.turn_agent(TURN_DEG)
        elif index == TURN_RIGHT:
            self._world.turn_agent(-TURN_DEG)
        elif index == MOVE_FORWARD:
            self._world.move_agent(FORWARD_M, 0.0)
        near = bool(self._world.near(self._world.objects[self.target]))
        distance_m = self._geodesic_m()
        reward = self.slack_reward + self.distance_shaping * (self._distance_m - distance_m)
        self._distance_m = distance_m
        terminated = index == STOP if self.stop_action else near
        success = terminated and near
        if success:
            reward += self.success_reward
        truncated = not terminated and self._steps >= self.max_episode_steps
        self._over = terminated or truncated
        info = {"success": success, "distance_m": distance_m, "target": self.target}
        return self._observation(), reward, terminated, truncated, info

    def expert_action(self) -> int:
        """The shortest-path follower's action (see the module docstring)."""
        layout = self._require_layout()
        if self._world.near(self._world.objects[self.target]):
            return STOP if self.stop_action else MOVE_FORWARD
        x, z, heading = self.agent_pose
        turns = np.arange(-(_HEADINGS // 2) + 1, _HEADINGS // 2 + 1)
        headings = heading + np.radians(TURN_DEG) * turns
        reach = FORWARD_M * np.arange(1, LOOKAHEAD_STEPS + 1)
        ends = np.stack([x + np.cos(headings)[:, None] * reach, z - np.sin(headings)[:, None] * reach], axis=-1)
        ends = ends.reshape(-1, 2)
        radius = self._world.agent.radius
        blocked = segment_distances(ends, layout.walls) < radius
        for ox, oz, o_radius in layout.discs:
            blocked |= np.hypot(ends[:, 0] - ox, ends[:, 1] - oz) < radius + o_radius
        reachable = ~np.logical_or.accumulate(blocked.reshape(len(turns), len(reach)), axis=1)
        field = layout.fields[self.target]
        gain = self._geodesic_m() - sample_field(layout.frame, field, ends).reshape(len(turns), len(reach))
        rate = np.where(reachable, gain, -np.inf) / (np.abs(turns)[:, None] + np.arange(1, len(reach) + 1))
        best_turns = int(turns[np.unravel_index(np.argmax(rate), rate.shape)[0]])
        if best_turns == 0:
            return MOVE_FORWARD
        return TURN_LEFT if best_turns > 0 else TURN_RIGHT

    def close(self) -> None:
        """Close miniworld's hidden window."""
        self._world.close()
        self._world.shadow_window.close()

    def _require_layout(self) -> _Layout:
        if self._layout is None:
            raise RuntimeError("ObjectNav3D needs new_trial(seed) before reset(), step() or expert_action()")
        return self._layout

    def _geodesic_m(self) -> float:
        layout = self._require_layout()
        x, z, _ = self.agent_pose
        return float(sample_field(layout.frame, layout.fields[self.target], np.array([[x, z]]))[0])

    def _observation(self) -> dict[str, np.ndarray]:
        one_hot = np.zeros(len(OBJECTS), dtype=np.float32)
        one_hot[self.target] = 1.0
        return {"image": self._world.render_view(), "vector": one_hot}


def _measure(trials: int = 30, episodes: int = 10, random_steps: int = 5000) -> dict[str, float]:
    """The docstring's figures: steps/s (random and expert actions), `new_trial` time, expert success.

    The expert is measured with `stop_action=True`: it acts as without a stop action up to the target, so
    its success there is its success in both protocols.
    """
    env = ObjectNav3D(stop_action=True)
    rng = np.random.default_rng(0)
    env.new_trial(0)
    env.reset()
    started = time.perf_counter()
    for _ in range(random_steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(3)))
        if terminated or truncated:
            env.reset()
    random_sps = random_steps / (time.perf_counter() - started)
    successes, steps, expert_s, trial_s = 0, 0, 0.0, 0.0
    for seed in trial_seeds("objectnav3d", "eval", trials):
        started = time.perf_counter()
        env.new_trial(seed)
        trial_s += time.perf_counter() - started
        for _ in range(episodes):
            env.reset()
            started = time.perf_counter()
            terminated = truncated = False
            while not (terminated or truncated):
                _, _, terminated, truncated, info = env.step(env.expert_action())
                steps += 1
            expert_s += time.perf_counter() - started
            successes += int(info["success"])
    env.close()
    return {
        "random_steps_per_s": random_sps,
        "expert_steps_per_s": steps / expert_s,
        "new_trial_s": trial_s / trials,
        "expert_success_rate": successes / (trials * episodes),
        "expert_mean_steps": steps / (trials * episodes),
    }


if __name__ == "__main__":
    for name, value in _measure().items():
        print(f"{name}: {value:.3f}")

"""The trial interface every ReLIC environment implements, the held-out layout seeds, and the env factory.

ReLIC (in-context RL) runs an agent through a *trial*: many episodes in one fixed layout (a goal cell, a
rewarded arm, a set of objects at fixed places), with the policy's memory kept across the episodes of the
trial, so that it can learn the layout in context. A `TrialEnv` therefore has two resets:

- `new_trial(seed)` draws a new layout from `seed` (the same seed always gives the same layout, and the
  same sequence of episode start states);
- `reset()` starts a new episode inside the current layout.

Held-out layouts: `trial_seeds(name, "train", ...)` and `trial_seeds(name, "eval", ...)` return disjoint
seeds. Train seeds are `0, 1, 2, ...`; eval seeds are `EVAL_SEED_OFFSET + 0, + 1, ...`. Environments whose
layouts are continuous draws (objectnav3d) get layouts that differ with the seed; Darkroom maps a train
seed to one of its 80 training goals and an eval seed to one of its 20 held-out goals (see `darkroom.py`);
CueBandit has only `arms` layouts, so its train and eval trials share layouts and differ only in seed;
the habitat backend draws scenes of its configured dataset split (use a `val` config for held-out scenes).
"""

from __future__ import annotations

import importlib
from typing import Any, Literal, Protocol, runtime_checkable

import gymnasium
import numpy as np

ENV_NAMES: tuple[str, ...] = ("darkroom", "darkroom-6x6", "cuebandit", "objectnav3d", "habitat")
"""The names `make_trial_env` and `trial_seeds` know."""

EVAL_SEED_OFFSET = 1 << 30
"""Seeds at or above this value are evaluation (held-out) layouts; seeds below it are training layouts."""

_CLASSES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "darkroom": ("relicnav.darkroom", "Darkroom", {}),
    "darkroom-6x6": ("relicnav.darkroom", "Darkroom", {"dim": 6, "horizon": 20}),
    "cuebandit": ("relicnav.cuebandit", "CueBandit", {}),
    "objectnav3d": ("relicnav.objectnav3d", "ObjectNav3D", {}),
    "habitat": ("relicnav.habitat_backend", "HabitatObjectNav", {}),
}
"""Module, class and preset keyword arguments of each name. darkroom-6x6 is Darkroom scaled to a laptop: a
6 x 6 grid (28 training goals, 8 held out) and 20-step episodes. One episode visits at most 21 of the 36
cells, so a policy without memory of earlier episodes finds at most 21 of the 28 training goals, and its
success is the same in every episode of a trial; every cell is within 10 steps of the start, so one that
remembers where the goal was can reach it in every episode after the first."""


@runtime_checkable
class TrialEnv(Protocol):
    """An environment of layouts (trials) made of episodes; see the module docstring."""

    observation_space: gymnasium.spaces.Dict
    """Key "vector": Box float32 `(k,)`, always; key "image": Box uint8 `(H, W, 3)`, for visual envs."""
    action_space: gymnasium.spaces.Discrete
    max_episode_steps: int

    def new_trial(self, seed: int) -> None:
        """Draw a new layout from `seed` (same seed, same layout)."""
        ...

    def reset(self) -> dict[str, np.ndarray]:
        """Start a new episode in the current layout; RuntimeError before the first `new_trial`."""
        ...

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Observation, reward, terminated, truncated, info (info["success"]: bool, at every step)."""
        ...

    def expert_action(self) -> int:
        """The shortest-path expert's action from the current state."""
        ...

    def close(self) -> None:
        """Release what the environment holds (windows, simulators)."""
        ...


def _check_name(name: str) -> None:
    if name not in ENV_NAMES:
        raise ValueError(f"unknown environment {name!r}: expected one of {', '.join(ENV_NAMES)}")


def trial_seeds(env_name: str, split: Literal["train", "eval"], count: int, start: int = 0) -> list[int]:
    """`count` layout seeds of `split`, from the `start`-th one on; train and eval seeds never meet.

    Train seeds are `start, ..., start + count - 1`; eval seeds are the same plus `EVAL_SEED_OFFSET`.
    """
    _check_name(env_name)
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    if count < 0 or start < 0 or start + count > EVAL_SEED_OFFSET:
        raise ValueError(f"need start >= 0, count >= 0 and start + count <= {EVAL_SEED_OFFSET}, got {start}, {count}")
    offset = 0 if split == "train" else EVAL_SEED_OFFSET
    return [offset + start + k for k in range(count)]


def seed_split(seed: int) -> tuple[Literal["train", "eval"], int]:
    """The split a layout seed belongs to and its index in that split (the inverse of `trial_seeds`)."""
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or not 0 <= seed < 2 * EVAL_SEED_OFFSET:
        raise ValueError(f"a trial seed is an int in [0, {2 * EVAL_SEED_OFFSET}), got {seed!r}")
    seed = int(seed)
    return ("train", seed) if seed < EVAL_SEED_OFFSET else ("eval", seed - EVAL_SEED_OFFSET)


def check_action(action: object, count: int) -> int:
    """`action` as an int in `[0, count)`; ValueError (saying what is allowed) for anything else."""
    if isinstance(action, bool) or not isinstance(action, int | np.integer):
        raise ValueError(f"an action is an int in [0, {count}), got {action!r} of type {type(action).__name__}")
    if not 0 <= int(action) < count:
        raise ValueError(f"action {int(action)} is out of range: expected an int in [0, {count})")
    return int(action)


def make_trial_env(name: str, **kwargs: Any) -> TrialEnv:
    """The environment called `name` (one of `ENV_NAMES`), built with its preset and `kwargs` (which win)."""
    _check_name(name)
    module_name, class_name, preset = _CLASSES[name]
    env_class = getattr(importlib.import_module(module_name), class_name)
    env: TrialEnv = env_class(**{**preset, **kwargs})
    return env

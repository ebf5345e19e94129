"""Vector environments for policyopt: gymnasium 1.x `SyncVectorEnv` with normalisation done once per batch.

Autoreset: the vector environment runs in gymnasium's default NEXT_STEP mode. When sub-environment i
ends at step t (terminated or truncated), `step` returns its final observation at t; the *next*
`step` call ignores i's action, resets it and returns the first observation with reward 0 and both
flags False. That step is not a transition and must not be trained on: `autoreset_mask(done_prev)`
marks it. Because the final observation stays in the observation stream, the value of a truncated
episode's last state is the value of the observation stored at t + 1 (no `final_obs` lookup).

Observation and reward normalisation are vector wrappers (one numpy operation per step for all
sub-environments). The observation statistics are an `ObservationNormalizer`, saved in checkpoints
and applied unchanged at deployment (`observation_normalizer(envs)` finds it).

Checkpoints store the vector environment's numeric state (`capture_env_state`: tensors, numbers and
lists, never pickled objects) and write it back into freshly built environments (`restore_env_state`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv, VectorWrapper

OBS_CLIP = 10.0
"""Normalised observations and rewards are clipped to [-10, 10] (as CleanRL and SB3 do)."""


class RunningMeanStd:
    """Running mean and variance of batches of vectors (parallel algorithm of Chan et al.)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, batch: np.ndarray) -> None:
        """Fold in `batch`: an `n x *shape` array."""
        if batch.shape[0] == 0:
            return
        batch_mean = batch.mean(axis=0)
        batch_var = batch.var(axis=0)
        n = float(batch.shape[0])
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + np.square(delta) * self.count * n / total
        self.var = m2 / total
        self.count = total


class ObservationNormalizer:
    """Maps raw observations to (obs - mean) / sqrt(var + eps), clipped to [-clip, clip], as float32."""

    def __init__(self, shape: tuple[int, ...], epsilon: float = 1e-8, clip: float = OBS_CLIP) -> None:
        self.rms = RunningMeanStd(shape)
        self.epsilon = float(epsilon)
        self.clip = float(clip)

    def update(self, obs: np.ndarray) -> None:
        """Fold a batch of raw observations (`n x obs_dim`) into the statistics."""
        self.rms.update(np.asarray(obs, dtype=np.float64))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Normalise raw observations of shape `... x obs_dim` (statistics unchanged)."""
        scaled = (np.asarray(obs, dtype=np.float64) - self.rms.mean) / np.sqrt(self.rms.var + self.epsilon)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """float64 tensors and floats: what a checkpoint stores (loadable with `torch.load(weights_only=True)`)."""
        return {
            "mean": torch.from_numpy(self.rms.mean.copy()),
            "var": torch.from_numpy(self.rms.var.copy()),
            "count": float(self.rms.count),
            "epsilon": self.epsilon,
            "clip": self.clip,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore statistics written by `state_dict` (tensors, arrays or lists)."""
        self.rms.mean = _float64_array(state["mean"])
        self.rms.var = _float64_array(state["var"])
        self.rms.count = float(state["count"])
        self.epsilon = float(state["epsilon"])
        self.clip = float(state["clip"])

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ObservationNormalizer:
        """A normaliser with the statistics of `state`."""
        normalizer = cls(_float64_array(state["mean"]).shape)
        normalizer.load_state_dict(state)
        return normalizer


def _float64_array(values: Any) -> np.ndarray:
    """A float64 copy of a tensor, an array or a (nested) list."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.array(values, dtype=np.float64)


class NormalizeObservationVector(VectorWrapper):
    """Normalises the observations of all sub-environments with one shared `ObservationNormalizer`."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        shape = env.single_observation_space.shape
        assert shape is not None
        self.normalizer = ObservationNormalizer(tuple(shape))
        self.update_statistics = True
        """Set False to freeze the statistics (evaluation)."""
        self.single_observation_space = gym.spaces.Box(-OBS_CLIP, OBS_CLIP, shape, np.float32)
        self.observation_space = gym.spaces.Box(-OBS_CLIP, OBS_CLIP, (env.num_envs, *shape), np.float32)

    def _normalize(self, obs: np.ndarray) -> np.ndarray:
        if self.update_statistics:
            self.normalizer.update(obs)
        return self.normalizer(obs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        """Reset and normalise the first observations."""
        obs, info = self.env.reset(seed=seed, options=options)
        return self._normalize(obs), info

    def step(self, actions: Any) -> Any:
        """Step and normalise (the final observation of an ending episode included)."""
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return self._normalize(obs), reward, terminated, truncated, info


class NormalizeRewardVector(VectorWrapper):
    """Divides rewards by the running standard deviation of the discounted return, then clips them.

    The running return restarts after an episode ends; autoreset steps (reward 0, not transitions)
    neither change it nor enter the statistics.
    """

    def __init__(self, env: VectorEnv, gamma: float, epsilon: float = 1e-8, clip: float = OBS_CLIP) -> None:
        super().__init__(env)
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        self.clip = float(clip)
        self.return_rms = RunningMeanStd(())
        self.returns = np.zeros(env.num_envs, dtype=np.float64)
        self.done_prev = np.zeros(env.num_envs, dtype=bool)
        self.update_statistics = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        """Reset every sub-environment and the running returns."""
        self.returns[:] = 0.0
        self.done_prev[:] = False
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: Any) -> Any:
        """Step and scale the rewards."""
        obs, reward, terminated, truncated, info = self.env.step(actions)
        live = ~self.done_prev
        self.returns = np.where(live, self.returns * self.gamma + reward, 0.0)
        if self.update_statistics:
            self.return_rms.update(self.returns[live])
        scaled = np.clip(reward / np.sqrt(self.return_rms.var + self.epsilon), -self.clip, self.clip)
        self.done_prev = np.logical_or(terminated, truncated)
        self.returns[self.done_prev] = 0.0
        return obs, scaled, terminated, truncated, info


def autoreset_mask(done_prev: np.ndarray) -> np.ndarray:
    """True where this step is an autoreset step (the sub-environment ended at the previous step).

    `done_prev`: `num_envs` booleans, terminated | truncated of the previous step. Those steps carry
    the reset observation, reward 0, and an ignored action: never use them as transitions.
    """
    return np.asarray(done_prev, dtype=bool)


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """One `env_id` as every policy here sees it: gym.make, with Dict and Tuple observations flattened."""
    env = gym.make(env_id, **(env_kwargs or {}))
    if isinstance(env.observation_space, gym.spaces.Dict | gym.spaces.Tuple):
        env = gym.wrappers.FlattenObservation(env)
    return env


def _make_single(env_id: str, env_kwargs: dict[str, Any]) -> Callable[[], gym.Env]:
    return lambda: make_env(env_id, env_kwargs)


def make_vector_env(
    env_id: str,
    num_envs: int,
    seed: int,
    *,
    normalize_observation: bool = False,
    normalize_reward: bool = False,
    gamma: float = 0.99,
    clip_action: bool = True,
    env_kwargs: dict[str, Any] | None = None,
) -> VectorEnv:
    """A `SyncVectorEnv` of `num_envs` copies of `env_id` with episode statistics and normalisation.

    `env_id`: a registered id or "module:EnvId" (gymnasium imports the module first). Wrappers, inner
    to outer: RecordEpisodeStatistics (raw returns in `info["episode"]`), ClipAction (Box actions),
    observation normalisation, reward normalisation. Action and observation spaces are seeded from
    `seed`; call `envs.reset(seed=seed)` to seed the sub-environments (seed, seed + 1, ...).
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    kwargs = dict(env_kwargs or {})
    envs: VectorEnv = gym.vector.SyncVectorEnv(
        [_make_single(env_id, kwargs) for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP
    )
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    if clip_action and isinstance(envs.single_action_space, gym.spaces.Box):
        envs = gym.wrappers.vector.ClipAction(envs)
    if normalize_observation:
        envs = NormalizeObservationVector(envs)
    if normalize_reward:
        envs = NormalizeRewardVector(envs, gamma)
    envs.action_space.seed(seed)
    envs.single_action_space.seed(seed)
    envs.observation_space.seed(seed)
    return envs


def _wrappers(envs: VectorEnv) -> list[VectorEnv]:
    chain = [envs]
    while isinstance(chain[-1], VectorWrapper):
        chain.append(chain[-1].env)
    return chain


def observation_normalizer(envs: VectorEnv) -> ObservationNormalizer | None:
    """The observation normaliser inside `envs` (None when observations are not normalised)."""
    for layer in _wrappers(envs):
        if isinstance(layer, NormalizeObservationVector):
            return layer.normalizer
    return None


def set_statistics_frozen(envs: VectorEnv, frozen: bool) -> None:
    """Freeze (evaluation) or unfreeze (training) the observation and reward statistics of `envs`."""
    for layer in _wrappers(envs):
        if isinstance(layer, NormalizeObservationVector | NormalizeRewardVector):
            layer.update_statistics = not frozen


def episode_returns(info: dict[str, Any]) -> list[tuple[float, int]]:
    """(raw return, length) of every episode that ended at this step, from RecordEpisodeStatistics' info."""
    episode = info.get("episode")
    if episode is None:
        return []
    mask = info.get("_episode", np.ones(len(episode["r"]), dtype=bool))
    return [(float(r), int(n)) for r, n, m in zip(episode["r"], episode["l"], mask, strict=True) if m]


ENV_STATE_VERSION = 1
"""Version of `capture_env_state`'s layout (restore refuses others)."""

_NOT_STATE = frozenset({"env", "envs", "env_fns", "model", "data", "spec", "metadata", "mujoco_renderer"})
"""Attributes that are structure, configuration or simulator objects, never saved as numeric state."""

_STATE_OBJECTS = (RunningMeanStd, ObservationNormalizer)
"""Objects of this module that hold statistics: saved attribute by attribute."""

_UNSTORABLE = object()


def _storable(value: Any) -> Any:
    """`value` as checkpoint data (tensors, numbers, lists, dicts), or `_UNSTORABLE`.

    Arrays and numpy scalars become tensors, deques and tuples lists, a numpy `Generator` the plain
    dict of its bit generator's state. Strings (configuration, not state), spaces, functions and
    other objects are not stored.
    """
    if isinstance(value, np.ndarray | np.generic):  # before float: np.float64 is a float
        try:
            return torch.from_numpy(np.array(value, copy=True))
        except TypeError:  # object, string and other dtypes torch has no tensor for
            return _UNSTORABLE
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, np.random.Generator):
        return dict(value.bit_generator.state)
    if isinstance(value, list | tuple | deque):
        items = [_storable(item) for item in value]
        return _UNSTORABLE if any(item is _UNSTORABLE for item in items) else items
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return _UNSTORABLE
        entries = {key: _storable(item) for key, item in value.items()}
        return _UNSTORABLE if any(item is _UNSTORABLE for item in entries.values()) else entries
    if isinstance(value, _STATE_OBJECTS):
        return _attributes_state(value)
    return _UNSTORABLE


def _attributes_state(obj: object) -> dict[str, Any]:
    """The storable attributes of `obj` (its instance dictionary), by name."""
    state: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if name in _NOT_STATE:
            continue
        stored = _storable(value)
        if stored is not _UNSTORABLE:
            state[name] = stored
    return state


def _restored(saved: Any, current: Any) -> Any:
    """`saved` (written by `_storable`) in the form of `current`, the attribute's value in the fresh environment.

    Only plain values, arrays and generator states come out: nothing in `saved` chooses a type.
    """
    if isinstance(current, np.random.Generator):
        if not isinstance(saved, dict):
            raise ValueError(f"expected a random generator's state, got {type(saved).__name__}")
        current.bit_generator.state = saved  # numpy checks the generator's kind and fields
        return current
    if isinstance(current, _STATE_OBJECTS):
        _restore_attributes(current, saved)
        return current
    if isinstance(current, deque) and isinstance(saved, list):
        return deque((_restored(item, None) for item in saved), maxlen=current.maxlen)
    if isinstance(current, list | tuple) and isinstance(saved, list):
        templates = list(current) if len(current) == len(saved) else [None] * len(saved)
        items = [_restored(item, template) for item, template in zip(saved, templates, strict=True)]
        return tuple(items) if isinstance(current, tuple) else items
    if isinstance(saved, torch.Tensor):
        array = saved.numpy().copy()
        scalar = isinstance(current, np.generic) or (not isinstance(current, np.ndarray) and array.ndim == 0)
        return array[()] if scalar else array
    if isinstance(saved, dict):
        current_entries = current if isinstance(current, dict) else {}
        return {key: _restored(item, current_entries.get(key)) for key, item in saved.items()}
    if isinstance(saved, list):
        return [_restored(item, None) for item in saved]
    if saved is None or isinstance(saved, bool | int | float):
        return saved
    raise ValueError(f"unexpected {type(saved).__name__} in a saved environment state")


def _restore_attributes(obj: object, saved: Any) -> None:
    """Set the attributes of `obj` that `saved` names and `obj` already has (no new attribute is made)."""
    if not isinstance(saved, dict):
        raise ValueError(f"expected the attributes of a {type(obj).__name__}, got {type(saved).__name__}")
    present = vars(obj)
    for name, value in saved.items():
        if isinstance(name, str) and name in present and name not in _NOT_STATE:
            setattr(obj, name, _restored(value, present[name]))


def _env_chain(env: gym.Env) -> list[Any]:
    """A sub-environment's wrappers, outer to inner, then the environment itself."""
    chain: list[Any] = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def _type_name(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _layers_state(layers: list[Any]) -> list[dict[str, Any]]:
    return [{"type": _type_name(layer), "attributes": _attributes_state(layer)} for layer in layers]


def _restore_layers(layers: list[Any], saved: Any, where: str) -> None:
    if not isinstance(saved, list) or len(saved) != len(layers):
        raise ValueError(f"the saved {where} has another number of wrappers than this one")
    for layer, entry in zip(layers, saved, strict=True):
        if not isinstance(entry, dict) or entry.get("type") != _type_name(layer):
            found = entry.get("type") if isinstance(entry, dict) else type(entry).__name__
            raise ValueError(f"the saved {where} has {found!r} where this one has {_type_name(layer)!r}")
        _restore_attributes(layer, entry.get("attributes"))


def _is_mujoco(env: Any) -> bool:
    return hasattr(env, "data") and hasattr(env, "model") and hasattr(env, "set_state")


def _mujoco_state(env: Any) -> torch.Tensor | None:
    """The simulator's full integration state (`mjSTATE_INTEGRATION`) of a MuJoCo environment, else None."""
    if not _is_mujoco(env):
        return None
    import mujoco  # only MuJoCo sub-environments need it

    state = np.empty(mujoco.mj_stateSize(env.model, mujoco.mjtState.mjSTATE_INTEGRATION), dtype=np.float64)
    mujoco.mj_getState(env.model, env.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    return torch.from_numpy(state)


def _restore_mujoco(env: Any, saved: Any) -> None:
    if saved is None and not _is_mujoco(env):
        return
    if not isinstance(saved, torch.Tensor) or not _is_mujoco(env):
        raise ValueError("the saved simulator state does not match the environment (MuJoCo or not)")
    import mujoco

    state = saved.numpy().astype(np.float64)
    expected = mujoco.mj_stateSize(env.model, mujoco.mjtState.mjSTATE_INTEGRATION)
    if state.shape != (expected,):
        raise ValueError(f"the saved MuJoCo state has {state.size} numbers, this model's has {expected}")
    mujoco.mj_setState(env.model, env.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)


def capture_env_state(envs: VectorEnv) -> dict[str, Any]:
    """The vector environment's numeric state, as tensors, numbers, lists and dicts (nothing pickled).

    For every wrapper of the vector environment and of each sub-environment, and for each
    sub-environment itself: the attributes that hold numbers, arrays, deques of numbers or a numpy
    random generator (its bit generator's state), e.g. CartPole's `state`, a `TimeLimit`'s elapsed
    steps, `RecordEpisodeStatistics`' counters, the normalisers' statistics, the autoreset flags. MuJoCo
    environments add the simulator's integration state (`mjSTATE_INTEGRATION`: time, qpos, qvel, act,
    warm start, controls, applied forces, ...). Not saved: spaces' sampling generators, strings,
    functions and other objects (configuration that rebuilding the environment gives back).
    `restore_env_state` writes it into a vector environment built the same way.
    """
    layers = _wrappers(envs)
    sub_envs = getattr(layers[-1], "envs", None)
    if sub_envs is None:
        raise TypeError(f"expected a SyncVectorEnv at the bottom of {envs}, got {type(layers[-1]).__name__}")
    return {
        "version": ENV_STATE_VERSION,
        "vector": _layers_state(layers),
        "sub_envs": [_layers_state(_env_chain(env)) for env in sub_envs],
        "mujoco": [_mujoco_state(env.unwrapped) for env in sub_envs],
    }


def restore_env_state(envs: VectorEnv, state: dict[str, Any]) -> None:
    """Put back a state taken by `capture_env_state` into a vector environment built the same way.

    Only attributes the fresh environment already has are set, to values of the kind they hold; a
    state of another layout or wrapper stack raises ValueError.
    """
    if not isinstance(state, dict) or state.get("version") != ENV_STATE_VERSION:
        found = state.get("version") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"environment state version {found!r}; this version reads {ENV_STATE_VERSION}")
    layers = _wrappers(envs)
    sub_envs = getattr(layers[-1], "envs", None)
    if sub_envs is None:
        raise TypeError(f"expected a SyncVectorEnv at the bottom of {envs}, got {type(layers[-1]).__name__}")
    saved_envs, saved_mujoco = state.get("sub_envs"), state.get("mujoco")
    if not isinstance(saved_envs, list) or not isinstance(saved_mujoco, list):
        raise ValueError("environment state without its sub-environments")
    if not len(saved_envs) == len(saved_mujoco) == len(sub_envs):
        raise ValueError(f"the saved state has {len(saved_envs)} sub-environments, this one {len(sub_envs)}")
    _restore_layers(layers, state.get("vector"), "vector environment")
    for index, (env, saved_chain, saved_sim) in enumerate(zip(sub_envs, saved_envs, saved_mujoco, strict=True)):
        _restore_layers(_env_chain(env), saved_chain, f"sub-environment {index}")
        _restore_mujoco(env.unwrapped, saved_sim)


__all__ = [
    "ENV_STATE_VERSION",
    "NormalizeObservationVector",
    "NormalizeRewardVector",
    "ObservationNormalizer",
    "RunningMeanStd",
    "autoreset_mask",
    "capture_env_state",
    "episode_returns",
    "make_env",
    "make_vector_env",
    "observation_normalizer",
    "restore_env_state",
    "set_statistics_frozen",
]

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
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
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
        """Plain arrays and floats: what a checkpoint stores."""
        return {
            "mean": self.rms.mean.copy(),
            "var": self.rms.var.copy(),
            "count": self.rms.count,
            "epsilon": self.epsilon,
            "clip": self.clip,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore statistics written by `state_dict`."""
        self.rms.mean = np.array(state["mean"], dtype=np.float64)
        self.rms.var = np.array(state["var"], dtype=np.float64)
        self.rms.count = float(state["count"])
        self.epsilon = float(state["epsilon"])
        self.clip = float(state["clip"])

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ObservationNormalizer:
        """A normaliser with the statistics of `state`."""
        normalizer = cls(tuple(np.shape(state["mean"])))
        normalizer.load_state_dict(state)
        return normalizer


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


def _make_single(env_id: str, env_kwargs: dict[str, Any]) -> Callable[[], gym.Env]:
    def thunk() -> gym.Env:
        env = gym.make(env_id, **env_kwargs)
        if isinstance(env.observation_space, gym.spaces.Dict | gym.spaces.Tuple):
            env = gym.wrappers.FlattenObservation(env)
        return env

    return thunk


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


def _picklable_vars(layer: VectorEnv) -> dict[str, Any]:
    """A wrapper's attributes that hold state (statistics, running returns), not its functions."""
    import pickle

    kept: dict[str, Any] = {}
    for name, value in vars(layer).items():
        if name == "env" or inspect.isroutine(value):
            continue
        try:
            pickle.dumps(value)
        except Exception:  # functions inside containers and the like: not state
            continue
        kept[name] = value
    return kept


def capture_env_state(envs: VectorEnv) -> dict[str, Any]:
    """The vector environment's state for a checkpoint: sub-environments, wrapper state, MuJoCo data.

    Sub-environments are pickled (pure-Python environments such as CartPole restore exactly); for
    MuJoCo environments, which pickle as their constructor arguments, the simulator data and the
    random generator are stored as well. `restore_env_state` puts it back.
    """
    import pickle

    layers = _wrappers(envs)
    base = layers[-1]
    sub_envs = getattr(base, "envs", None)
    if sub_envs is None:
        raise TypeError(f"expected a SyncVectorEnv at the bottom of {envs}, got {type(base).__name__}")
    mujoco_states: list[dict[str, Any] | None] = []
    for env in sub_envs:
        raw = env.unwrapped
        if hasattr(raw, "data") and hasattr(raw, "model") and hasattr(raw, "set_state"):
            mujoco_states.append({"data": pickle.dumps(raw.data), "np_random": raw.np_random.bit_generator.state})
        else:
            mujoco_states.append(None)
    wrapper_states = [_picklable_vars(layer) for layer in layers[:-1]]
    base_state = {
        k: v
        for k, v in vars(base).items()
        if k.startswith("_") and isinstance(v, np.ndarray | list | tuple | bool | int | float)
    }
    return {
        "sub_envs": pickle.dumps(list(sub_envs)),
        "mujoco": mujoco_states,
        "wrappers": pickle.dumps(wrapper_states),
        "base": pickle.dumps(base_state),
    }


def restore_env_state(envs: VectorEnv, state: dict[str, Any]) -> None:
    """Put back a state taken by `capture_env_state` into a vector environment built the same way."""
    import pickle

    layers = _wrappers(envs)
    base = layers[-1]
    for env in base.envs:  # type: ignore[attr-defined]
        env.close()
    sub_envs = pickle.loads(state["sub_envs"])
    for env, saved in zip(sub_envs, state["mujoco"], strict=True):
        if saved is not None:
            import mujoco  # only MuJoCo sub-environments need it

            raw = env.unwrapped
            data = pickle.loads(saved["data"])
            mujoco.mj_copyData(raw.data, raw.model, data)
            raw.np_random.bit_generator.state = saved["np_random"]
    base.envs = sub_envs  # type: ignore[attr-defined]
    for name, value in pickle.loads(state["base"]).items():
        setattr(base, name, value)
    for layer, saved_vars in zip(layers[:-1], pickle.loads(state["wrappers"]), strict=True):
        for name, value in saved_vars.items():
            setattr(layer, name, value)


__all__ = [
    "NormalizeObservationVector",
    "NormalizeRewardVector",
    "ObservationNormalizer",
    "RunningMeanStd",
    "autoreset_mask",
    "capture_env_state",
    "episode_returns",
    "make_vector_env",
    "observation_normalizer",
    "restore_env_state",
    "set_statistics_frozen",
]

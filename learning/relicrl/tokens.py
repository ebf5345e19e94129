"""From environment observations to the policy's step inputs, one step of B environments at a time.

`EpisodeTracker` keeps, for each environment, what the next token needs besides the observation: the
previous action and reward, the boundary flag and the step's index inside the episode. At an episode's
first step the previous action and reward are those of the last step of the episode before (as RL^2
feeds them), so the reward that ended an episode is seen. The authors' environments report a zero
reward and no action at a reset instead; that loses the outcome of every episode that ends on its
reward (a one-step bandit's whole signal, ObjectNav's success), so this is a deliberate difference.
The trainer, the evaluator and the ROS node all build their tokens here, so the three cannot
disagree about what a token holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from relicrl.model import ModelSpec, StepInputs

NO_ACTION = -1
"""`prev_action` of a trial's first step."""


def observation_arrays(
    observations: Sequence[Mapping[str, np.ndarray]], spec: ModelSpec
) -> tuple[np.ndarray, np.ndarray | None]:
    """The `vector` (`B x vector_dim` float32) and `image` (`B x H x W x 3` uint8, or None) of B observations.

    Raises:
        ValueError: an observation without the parts the policy reads, of the wrong shape, or not finite.
    """
    vectors = []
    images = []
    for observation in observations:
        vector = np.asarray(observation["vector"], dtype=np.float32).reshape(-1)
        if vector.shape != (spec.vector_dim,):
            raise ValueError(f"observation 'vector' has {vector.size} values, the policy reads {spec.vector_dim}")
        if not np.all(np.isfinite(vector)):
            raise ValueError("observation 'vector' holds NaN or infinite values")
        vectors.append(vector)
        if spec.image_shape is not None:
            if "image" not in observation:
                raise ValueError(f"the policy reads an image of shape {spec.image_shape}; the observation has none")
            image = np.asarray(observation["image"])
            if image.shape != spec.image_shape or image.dtype != np.uint8:
                raise ValueError(
                    f"observation 'image' is {image.dtype} {image.shape}, the policy reads uint8 {spec.image_shape}"
                )
            images.append(image)
    return np.stack(vectors), (np.stack(images) if images else None)


class EpisodeTracker:
    """Per-environment previous action and reward, boundary flag and in-episode step for B environments."""

    def __init__(self, batch: int) -> None:
        self.prev_action = np.full(batch, NO_ACTION, dtype=np.int64)
        self.prev_reward = np.zeros(batch, dtype=np.float32)
        self.first = np.ones(batch, dtype=bool)
        self.episode_step = np.zeros(batch, dtype=np.int64)

    def inputs(self, vector: np.ndarray, image: np.ndarray | None) -> StepInputs:
        """The step inputs (T = 1) of B observations' arrays."""
        return StepInputs(
            vector=torch.from_numpy(vector).unsqueeze(1),
            prev_action=torch.from_numpy(self.prev_action.copy()).unsqueeze(1),
            prev_reward=torch.from_numpy(self.prev_reward.copy()).unsqueeze(1),
            first=torch.from_numpy(self.first.copy()).unsqueeze(1),
            episode_step=torch.from_numpy(self.episode_step.copy()).unsqueeze(1),
            image=None if image is None else torch.from_numpy(image).unsqueeze(1),
        )

    def advance(self, actions: np.ndarray, rewards: np.ndarray, episode_over: np.ndarray) -> None:
        """Move on after the environments stepped; an environment whose episode ended starts a new one."""
        over = np.asarray(episode_over, dtype=bool)
        self.prev_action = np.asarray(actions, dtype=np.int64).copy()
        self.prev_reward = np.asarray(rewards, dtype=np.float32).copy()
        self.first = over.copy()
        self.episode_step = np.where(over, 0, self.episode_step + 1)


__all__ = ["NO_ACTION", "EpisodeTracker", "observation_arrays"]

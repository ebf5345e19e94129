"""The keyframe set with the authors' update policy: least-used eviction and usage counts halved on insertion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Keyframe:
    """A frame kept as a high-quality reference: its index in the stream, image and (68,2) landmarks."""

    index: int
    image: np.ndarray
    landmarks: np.ndarray


class KeyframeSet:
    """At most `max_size` keyframes; `choose` picks the one whose landmarks are nearest and counts its use."""

    def __init__(self, max_size: int = 5) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        self.max_size = max_size
        self._keyframes: list[Keyframe] = []
        self._usage: list[float] = []

    def add(self, keyframe: Keyframe) -> None:
        """Append `keyframe` (usage 0), evicting the least used (earliest on ties) when full; halve all usage."""
        if len(self._keyframes) >= self.max_size:
            victim = int(np.argmin(self._usage))  # argmin takes the first (earliest added) on ties
            del self._keyframes[victim]
            del self._usage[victim]
        self._keyframes.append(keyframe)
        self._usage.append(0.0)
        self._usage = [count / 2 for count in self._usage]

    def choose(self, landmarks: np.ndarray) -> Keyframe:
        """The keyframe whose landmarks are nearest (Euclidean over all coordinates); its usage count += 1."""
        if not self._keyframes:
            raise LookupError("the keyframe set is empty: add a keyframe before choosing one")
        target = np.asarray(landmarks, dtype=np.float64).ravel()
        distances = [
            float(np.sqrt(((np.asarray(k.landmarks, dtype=np.float64).ravel() - target) ** 2).sum()))
            for k in self._keyframes
        ]
        best = int(np.argmin(distances))
        self._usage[best] += 1
        return self._keyframes[best]

    @property
    def keyframes(self) -> tuple[Keyframe, ...]:
        return tuple(self._keyframes)

    @property
    def usage(self) -> np.ndarray:
        return np.asarray(self._usage, dtype=np.float64)

    def __len__(self) -> int:
        return len(self._keyframes)

"""kfgan.keyframes: least-used eviction (earliest on ties), usage halved on insertion, nearest choice."""

from __future__ import annotations

import numpy as np
import pytest

from kfgan.keyframes import Keyframe, KeyframeSet


def _keyframe(index: int, offset: float = 0.0) -> Keyframe:
    landmarks = np.full((68, 2), float(index) * 10 + offset, dtype=np.float32)
    return Keyframe(index, np.zeros((4, 4, 3), dtype=np.uint8), landmarks)


def test_max_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_size"):
        KeyframeSet(0)


def test_choosing_from_an_empty_set_says_it_is_empty() -> None:
    with pytest.raises(LookupError, match="empty"):
        KeyframeSet().choose(np.zeros((68, 2)))


def test_choose_picks_the_nearest_landmarks_and_counts_its_use() -> None:
    keyframes = KeyframeSet(3)
    for index in range(3):
        keyframes.add(_keyframe(index))
    chosen = keyframes.choose(np.full((68, 2), 11.0))
    assert chosen.index == 1
    np.testing.assert_array_equal(keyframes.usage, [0.0, 1.0, 0.0])


def test_usage_is_halved_on_every_insertion() -> None:
    keyframes = KeyframeSet(5)
    keyframes.add(_keyframe(0))
    for _ in range(4):
        keyframes.choose(_keyframe(0).landmarks)
    keyframes.add(_keyframe(1))
    np.testing.assert_array_equal(keyframes.usage, [2.0, 0.0])
    keyframes.add(_keyframe(2))
    np.testing.assert_array_equal(keyframes.usage, [1.0, 0.0, 0.0])


def test_a_full_set_evicts_the_least_used_keyframe() -> None:
    keyframes = KeyframeSet(3)
    for index in range(3):
        keyframes.add(_keyframe(index))
    keyframes.choose(_keyframe(0).landmarks)
    keyframes.choose(_keyframe(2).landmarks)
    keyframes.add(_keyframe(3))
    assert [k.index for k in keyframes.keyframes] == [0, 2, 3]
    np.testing.assert_array_equal(keyframes.usage, [0.5, 0.5, 0.0])


def test_eviction_ties_go_to_the_earliest_added() -> None:
    keyframes = KeyframeSet(2)
    keyframes.add(_keyframe(0))
    keyframes.add(_keyframe(1))
    keyframes.add(_keyframe(2))
    assert [k.index for k in keyframes.keyframes] == [1, 2]


def test_size_never_exceeds_the_maximum() -> None:
    keyframes = KeyframeSet(4)
    rng = np.random.default_rng(0)
    for index in range(30):
        keyframes.add(_keyframe(index))
        keyframes.choose(rng.uniform(0, 300, size=(68, 2)))
        assert len(keyframes) == min(index + 1, 4)
        assert len(keyframes.usage) == len(keyframes)

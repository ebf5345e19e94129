"""The generator's per-frame guidance: landmarks, the keyframe set as the stream goes, the warped reference.

Follows the authors' inference loop (`video_inference.py`): frames are taken in stream order; each I-frame
joins the keyframe set (at most 5, least-frequently-used replacement, usage counts halved on each insertion);
each frame picks the keyframe whose landmarks are nearest to its own, and that keyframe is warped onto the
frame's landmarks by a moving-least-squares affine deformation. Landmarks are found on the compressed
frames (as the authors do).

Which image an I-frame contributes is the caller's choice: the paper assumes I-frames arrive in high
quality, and the authors' code takes the original frame at those positions (`keyframe_images` = the
pristine clip); a receiver that only has the compressed stream passes nothing and uses its decoded I-frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kfgan.faces import LandmarkDetector, landmark_image, mls_affine_warp, track_landmarks
from kfgan.keyframes import Keyframe, KeyframeSet
from kfgan.video import Video
from runkit.metrics import progress_bar

MAX_KEYFRAMES = 5
"""The authors' keyframe-set size."""


@dataclass(frozen=True)
class Guidance:
    """The generator's inputs besides the compressed frames, one per frame."""

    references: np.ndarray
    """(T,H,W,3) uint8: the chosen keyframe warped onto each frame's landmarks (the frame itself without keyframes)."""
    landmark_images: np.ndarray
    """(T,H,W) float32 in [0,1]: a blob at each landmark."""
    landmarks: np.ndarray
    """(T,68,2) float32: the tracked landmarks (x, y)."""
    found: np.ndarray
    """(T,) bool: whether the face was found in that frame (others keep the last landmarks)."""
    chosen: np.ndarray
    """(T,) int: the stream index of the keyframe each frame used (-1 without keyframes)."""


def compute_guidance(
    compressed: Video,
    detector: LandmarkDetector,
    *,
    keyframes: bool = True,
    keyframe_images: np.ndarray | None = None,
    max_keyframes: int = MAX_KEYFRAMES,
    tracked: tuple[np.ndarray, np.ndarray] | None = None,
    progress: bool = False,
) -> Guidance:
    """The guidance of every frame of `compressed`, in stream order.

    Args:
        compressed: the decoded stream with its I-frame flags.
        detector: the landmark detector.
        keyframes: False gives the ablation's guidance (reference = the compressed frame itself).
        keyframe_images: (T,H,W,3) images an I-frame contributes (the pristine clip under the paper's
            assumption); default: the decoded I-frames.
        max_keyframes: the keyframe set's size.
        tracked: the frames' (landmarks, found) from `track_landmarks` when already known (not tracked again).
        progress: show a progress bar.
    """
    frames = compressed.frames
    if keyframe_images is not None and keyframe_images.shape != frames.shape:
        raise ValueError(f"keyframe images {keyframe_images.shape} do not match the frames {frames.shape}")
    landmarks, found = tracked if tracked is not None else track_landmarks(frames, detector, progress=progress)
    height, width = frames.shape[1:3]
    images = np.stack([landmark_image(points, height, width) for points in landmarks])
    if not keyframes:
        return Guidance(frames.copy(), images, landmarks, found, np.full(len(frames), -1))
    source = frames if keyframe_images is None else keyframe_images
    keyframe_set = KeyframeSet(max_keyframes)
    references = np.empty_like(frames)
    chosen = np.empty(len(frames), dtype=np.int64)
    with progress_bar(len(frames), "keyframes", progress, unit="frame") as bar:
        for t in range(len(frames)):
            if compressed.keyframe[t] or len(keyframe_set) == 0:
                keyframe_set.add(Keyframe(t, source[t], landmarks[t]))
            keyframe = keyframe_set.choose(landmarks[t])
            references[t] = mls_affine_warp(keyframe.image, keyframe.landmarks, landmarks[t])
            chosen[t] = keyframe.index
            bar.update(1)
    return Guidance(references, images, landmarks, found, chosen)

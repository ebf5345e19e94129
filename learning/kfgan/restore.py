"""Restore frames with a trained generator: the library call behind `kfgan restore` and the report.

A receiver has only the compressed stream, so `restore_file` builds the keyframe set from the stream's own
decoded I-frames. The report also scores the paper's setting, where I-frames arrive in high quality
(`restore_frames` with guidance from `kfgan.guidance.compute_guidance(keyframe_images=...)`).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kfgan.data import landmark_tensor, to_frames, to_tensor
from kfgan.faces import LandmarkDetector
from kfgan.guidance import Guidance, compute_guidance
from kfgan.network import Generator
from kfgan.train import load_generator
from kfgan.video import read_video, write_video
from runkit import write_bytes_atomic
from runkit.metrics import progress_bar

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def shipped_generator(keyframes: bool = True) -> Path:
    """The committed generator (seed 0; see learning/kfgan/checkpoints/README.md for the command that made it)."""
    name = "generator_keyframes.pt" if keyframes else "generator_no_keyframes.pt"
    return CHECKPOINTS / name


def restore_frames(
    generator: Generator,
    compressed: np.ndarray,
    guidance: Guidance,
    indices: np.ndarray | None = None,
    *,
    progress: bool = False,
) -> np.ndarray:
    """Restored (N,H,W,3) uint8 frames of `compressed` (all frames, or those at `indices`), one at a time."""
    selected = np.arange(len(compressed)) if indices is None else np.asarray(indices)
    out = np.empty((len(selected), *compressed.shape[1:]), dtype=np.uint8)
    with torch.no_grad(), progress_bar(len(selected), "restore", progress, unit="frame") as bar:
        for i, t in enumerate(selected):
            restored = generator(
                to_tensor(compressed[t : t + 1]),
                to_tensor(guidance.references[t : t + 1]),
                landmark_tensor(guidance.landmark_images[t : t + 1]),
            )
            out[i] = to_frames(restored)[0]
            bar.update(1)
    return out


@dataclass(frozen=True)
class Restored:
    """What `restore_file` wrote and measured."""

    output: Path
    side_by_side_video: Path | None
    side_by_side_png: Path | None
    frames: int
    fps: float
    keyframes_used: int
    faces_found: int
    guidance_seconds: float
    network_seconds: float

    @property
    def frames_per_second(self) -> float:
        """Throughput of the whole restoration (landmarks, keyframes, warping and network) on this CPU."""
        return self.frames / max(self.guidance_seconds + self.network_seconds, 1e-9)


def restore_file(
    input_path: Path,
    output_path: Path,
    *,
    generator_path: Path | None = None,
    side_by_side: bool = True,
    crf: int = 10,
    progress: bool = True,
) -> Restored:
    """Restore every frame of a video file; write the result (same frame count, size and fps).

    With `side_by_side`, also `<output>.side_by_side.mp4` (input | restored) and `<output>.side_by_side.png`
    (the middle frame, input | restored, enlarged 2x). Raises VideoError (bad input), NoFaceError (no face in
    any frame), CheckpointError (bad generator file).
    """
    generator, metadata = load_generator(generator_path or shipped_generator())
    video = read_video(input_path)
    started = time.perf_counter()
    guidance = compute_guidance(video, LandmarkDetector(), keyframes=bool(metadata["keyframes"]), progress=progress)
    guidance_seconds = time.perf_counter() - started
    started = time.perf_counter()
    restored = restore_frames(generator, video.frames, guidance, progress=progress)
    network_seconds = time.perf_counter() - started
    output = write_video(output_path, restored, video.fps, crf=crf)
    sbs_video = sbs_png = None
    if side_by_side:
        stem = output.with_suffix("")
        pairs = np.concatenate([video.frames, restored], axis=2)
        sbs_video = write_video(stem.with_name(stem.name + ".side_by_side.mp4"), pairs, video.fps, crf=crf)
        sbs_png = save_png(stem.with_name(stem.name + ".side_by_side.png"), pairs[len(pairs) // 2], scale=2)
    return Restored(
        output=output,
        side_by_side_video=sbs_video,
        side_by_side_png=sbs_png,
        frames=len(restored),
        fps=float(video.fps),
        keyframes_used=len(set(guidance.chosen.tolist()) - {-1}),
        faces_found=int(guidance.found.sum()),
        guidance_seconds=guidance_seconds,
        network_seconds=network_seconds,
    )


def save_png(path: Path, image: np.ndarray, scale: int = 1) -> Path:
    """Write an (H,W,3) uint8 image as PNG atomically, enlarged `scale` times (nearest neighbour)."""
    from PIL import Image

    enlarged = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1) if scale > 1 else image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(enlarged)).save(buffer, format="PNG")
    return write_bytes_atomic(path, buffer.getvalue())

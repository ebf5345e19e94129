"""Read, compress (libx264 at a CRF, one I-frame a second) and write video with PyAV.

A decoded frame is an I-frame when PyAV reports `pict_type` I; `Video.keyframe` holds these flags.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av  # type: ignore[import-untyped,unused-ignore]
import numpy as np

from runkit.atomic import write_bytes_atomic
from runkit.cli import UserError


class VideoError(UserError):
    """A missing, unreadable, corrupt or non-video file."""


@dataclass(frozen=True)
class Video:
    """Decoded frames (T,H,W,3) uint8 RGB, the frame rate, and which frames are I-frames."""

    frames: np.ndarray
    fps: Fraction
    keyframe: np.ndarray

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class Compressed:
    """A video after an H.264 round trip, with its CRF, stream size and bitrate."""

    video: Video
    crf: int
    size_bytes: int
    kbit_per_s: float


def _decode(source: str | io.BytesIO, name: str) -> Video:
    """Every frame of the first video stream of `source` (a path or bytes); VideoError naming `name`."""
    try:
        container = av.open(source, mode="r")
    except FileNotFoundError as exc:
        raise VideoError(f"{name}: no such file") from exc
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{name}: not a readable video container ({_short(exc)})") from exc
    frames: list[np.ndarray] = []
    keys: list[bool] = []
    try:
        with container:
            if not container.streams.video:
                raise VideoError(f"{name}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            try:
                for frame in container.decode(stream):
                    frames.append(frame.to_ndarray(format="rgb24"))
                    keys.append(frame.pict_type == av.video.frame.PictureType.I)
            except (av.FFmpegError, OSError, ValueError) as exc:
                if not frames:
                    raise VideoError(f"{name}: corrupt video ({_short(exc)})") from exc
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(f"{name}: unreadable video ({_short(exc)})") from exc
    if not frames:
        raise VideoError(f"{name}: no decodable frames (truncated or corrupt)")
    fps = Fraction(rate) if rate else Fraction(25)
    return Video(np.stack(frames), fps, np.asarray(keys, dtype=bool))


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def read_video(path: str | Path) -> Video:
    """Decode every frame of the video file at `path` as RGB; VideoError when it is missing or not a video."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    return _decode(str(path), str(path))


def encode_h264(frames: np.ndarray, fps: Fraction | float, crf: int, gop: int | None = None) -> bytes:
    """An MP4 (libx264 at `crf`, an I-frame every `gop` frames, default one a second) in memory."""
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be in 0..51, got {crf}")
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be (T,H,W,3) uint8 with T >= 1, got {frames.shape} {frames.dtype}")
    rate = Fraction(fps).limit_denominator(100000)
    gop = round(rate) if gop is None else gop
    if gop < 1:
        raise ValueError(f"gop must be >= 1, got {gop}")
    height, width = frames.shape[1:3]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv444p" if height % 2 or width % 2 else "yuv420p"
        stream.time_base = 1 / rate
        stream.codec_context.time_base = 1 / rate
        stream.options = {
            "crf": str(crf),
            "threads": "1",
            "x264-params": f"keyint={gop}:min-keyint={gop}",
        }
        stream.thread_count = 1
        for t, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = t
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def compress(video: Video, crf: int, gop: int | None = None) -> Compressed:
    """Encode `video` with libx264 at `crf` and decode it back from memory, with its size and bitrate."""
    data = encode_h264(video.frames, video.fps, crf, gop)
    decoded = _decode(io.BytesIO(data), f"<H.264 at CRF {crf}>")
    duration = len(video) / float(video.fps)
    return Compressed(decoded, crf, len(data), len(data) * 8 / duration / 1000)


def write_video(path: str | Path, frames: np.ndarray, fps: Fraction | float, crf: int = 10) -> Path:
    """Write `frames` to an MP4 at `path` (libx264 at `crf`) atomically; parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(path, encode_h264(frames, fps, crf))

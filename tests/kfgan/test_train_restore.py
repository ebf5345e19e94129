"""Training (checkpoints, resume, bad files), restoring a video file end to end, the command line, the report."""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import kfgan.train as train_module
from kfgan.cli import main
from kfgan.data import load_carphone
from kfgan.restore import restore_file, shipped_generator
from kfgan.train import TrainConfig, load_generator, train
from kfgan.video import VideoError, encode_h264, read_video
from runkit.checkpoint import CheckpointError
from runkit.metrics import read_scalars
from runkit.testing import run_console_script

QUICK = TrainConfig(
    iterations=6, checkpoint_every=2, crfs=(42,), crop=48, batch=2, width=8, discriminator_width=8,
    adversarial_start=3, tensorboard=False, progress=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def call_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 45 frames of carphone as a call sends them (H.264 at CRF 42, an I-frame a second)."""
    pristine = load_carphone()
    path = tmp_path_factory.mktemp("call") / "call.mp4"
    path.write_bytes(encode_h264(pristine.frames[:45], pristine.fps, crf=42))
    return path


def test_resume_after_an_interruption_equals_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = train(replace(QUICK, run_dir=tmp_path / "whole"))
    calls = {"n": 0}
    real_sample = train_module.sample_batch

    def interrupted(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 5:  # after the checkpoint of step 4
            raise KeyboardInterrupt
        return real_sample(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(train_module, "sample_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(replace(QUICK, run_dir=tmp_path / "parts"))
    assert not (tmp_path / "parts" / "generator.pt").exists()
    monkeypatch.setattr(train_module, "sample_batch", real_sample)
    parts = train(replace(QUICK, run_dir=tmp_path / "parts", resume=True))
    first, second = load_generator(whole)[0].state_dict(), load_generator(parts)[0].state_dict()
    for name, value in first.items():
        assert torch.equal(value, second[name]), name
    assert read_scalars(tmp_path / "whole") == read_scalars(tmp_path / "parts")


def test_a_fresh_run_never_overwrites_an_earlier_one_and_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("earlier run")
    with pytest.raises(Exception, match="holds an earlier run"):
        train(replace(QUICK, run_dir=tmp_path / "old"))
    with pytest.raises(Exception, match="nothing to resume"):
        train(replace(QUICK, run_dir=tmp_path / "empty", resume=True))


def test_foreign_truncated_and_pickled_generator_files_are_refused(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(shipped_generator().read_bytes()[:1000])
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "kfgan.generator/1", "object": Fraction(1, 2)}, pickled)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path in (truncated, pickled, foreign, tmp_path / "missing.pt"):
        with pytest.raises(CheckpointError, match=path.name):
            load_generator(path)


def test_the_shipped_generators_load_and_say_whether_they_use_keyframes() -> None:
    with_keyframes, meta = load_generator(shipped_generator(True))
    assert meta["keyframes"] is True
    assert not with_keyframes.training
    assert load_generator(shipped_generator(False))[1]["keyframes"] is False


def test_restored_video_has_the_inputs_frame_count_size_and_frame_rate(call_file: Path, tmp_path: Path) -> None:
    source = read_video(call_file)
    result = restore_file(call_file, tmp_path / "out" / "restored.mp4", progress=False)
    restored = read_video(result.output)
    assert len(restored) == len(source) == 45
    assert (restored.height, restored.width) == (source.height, source.width)
    assert restored.fps == source.fps
    assert result.keyframes_used == int(source.keyframe.sum()) == 2  # I-frames 0 and 30
    assert result.side_by_side_video is not None
    assert result.side_by_side_png is not None
    side = read_video(result.side_by_side_video)
    assert side.width == 2 * source.width
    assert len(side) == len(source)
    from PIL import Image

    assert Image.open(result.side_by_side_png).size == (4 * source.width, 2 * source.height)
    # Restoration changes the frames, and the result stays close to the input (no garbage).
    difference = np.abs(restored.frames.astype(float) - source.frames.astype(float)).mean()
    assert 0.1 < difference < 20


def test_the_command_line_restores_and_names_bad_files_in_one_line(
    call_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = run_console_script("kfgan", ["restore", str(call_file), str(tmp_path / "r.mp4"), "--no-progress"])
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["frames"] == 45
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(call_file.read_bytes()[:2000])
    capsys.readouterr()
    for bad in (tmp_path / "missing.mp4", text, truncated):
        with pytest.raises(SystemExit) as exit_info:
            main(["restore", str(bad), str(tmp_path / "x.mp4"), "--no-progress"])
        assert exit_info.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1
        assert bad.name in lines[0]
        assert not (tmp_path / "x.mp4").exists()


def test_a_video_without_a_face_is_refused_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grey = tmp_path / "grey.mp4"
    grey.write_bytes(encode_h264(np.full((10, 64, 64, 3), 128, dtype=np.uint8), Fraction(25), crf=30))
    with pytest.raises(SystemExit) as exit_info:
        main(["restore", str(grey), str(tmp_path / "x.mp4"), "--no-progress"])
    assert exit_info.value.code == 2
    assert "no face" in capsys.readouterr().err


def test_compress_command_sends_an_i_frame_a_second(tmp_path: Path, call_file: Path) -> None:
    result = run_console_script("kfgan", ["compress", str(call_file), str(tmp_path / "c.mp4"), "--crf", "45"])
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["i_frames"] == [0, 30]
    assert figures["frames"] == 45
    with pytest.raises(VideoError):
        read_video(tmp_path / "nothing.mp4")


@pytest.mark.slow
def test_report_smoke_writes_every_method_and_figure(tmp_path: Path) -> None:
    result = run_console_script("kfgan", ["report", "--runs-dir", str(tmp_path / "runs"), "--no-progress"])
    assert result.returncode == 0, result.stderr
    out = tmp_path / "runs" / "smoke" / "report"
    results = json.loads((out / "results.json").read_text())
    methods = results["crfs"]["42"]["methods"]
    assert set(methods) == {"compressed", "no_keyframes", "keyframes_decoded", "keyframes_hq"}
    assert 20 < methods["compressed"]["frame"]["psnr"]["mean"] < 30
    assert results["throughput"]["frames_per_second"] > 0
    assert 90 not in results["crfs"]["42"]["scored_frames"]
    assert (out / "metrics.png").stat().st_size > 1000
    assert (out / "examples.png").stat().st_size > 1000
    assert "CRF 42" in (out / "report.md").read_text()

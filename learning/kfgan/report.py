"""`kfgan report`: train what is missing, score every method at two compression levels, write the report.

For each seed, the keyframe-guided generator and the ablation without keyframes are trained (or resumed)
with `kfgan.train`; then the evaluation frames of carphone (see `kfgan.data`: frames 84-119 without the
I-frame) are restored at CRF 37 and 42 and scored against the pristine frames, on the whole frame and on a
112x112 box around the face:

- compressed input (no restoration);
- no keyframes: the ablation network;
- keyframes, decoded I-frames: what a receiver that has only the stream does (`kfgan restore`);
- keyframes, high-quality I-frames: the paper's assumption and the authors' code (pristine frames at the
  I-frame positions feed the keyframe set).

Figures are means over seeds with 95 % t-intervals; the keyframes-minus-ablation difference is paired by
seed. Throughput (frames per second on this CPU, one thread) and landmark stability are measured too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kfgan.data import EVAL_CRFS, TRAIN_END, Stream, load_carphone, scored_frames, to_tensor
from kfgan.faces import LandmarkDetector, landmark_stability, track_landmarks
from kfgan.guidance import compute_guidance
from kfgan.metrics import HIGHER_IS_BETTER, METRICS, frame_metrics
from kfgan.restore import restore_frames, save_png
from kfgan.train import GENERATOR_FILE, TrainConfig, load_generator, train
from kfgan.video import compress
from runkit import format_table, save_figure, write_json_atomic, write_text_atomic
from runkit.config import require_config, smoke_requested
from runkit.reports import mean_t_interval, to_jsonable

METHODS = ("compressed", "no_keyframes", "keyframes_decoded", "keyframes_hq")
LABELS = {
    "compressed": "compressed input",
    "no_keyframes": "no keyframes (ablation)",
    "keyframes_decoded": "keyframes: decoded I-frames",
    "keyframes_hq": "keyframes: high-quality I-frames (paper)",
}
FACE_BOX = 112
"""Side of the face box scored besides the whole frame (MS-SSIM needs at least 97)."""


@dataclass
class ReportConfig:
    """Train (or resume) both networks for each seed, evaluate all methods, write the report."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds."""
    runs_dir: Path = Path("runs/kfgan")
    """Where the runs are (runs_dir/keyframes/seed<N>, runs_dir/no_keyframes/seed<N>)."""
    out_dir: Path = Path("learning/kfgan/results/carphone")
    """Where the report goes (report.md, results.json, figures)."""
    iterations: int = 3000
    """Generator steps of each training run."""
    smoke: bool = False
    """Tiny runs (seconds) into runs_dir/smoke: checks the pipeline, not the method."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        require_config(len(self.seeds) >= 1, "seeds", self.seeds, "at least one seed")
        require_config(self.iterations >= 1, "iterations", self.iterations, ">= 1")


def _face_box(landmarks: np.ndarray, height: int, width: int) -> tuple[slice, slice]:
    """A FACE_BOX square centred on the landmarks' centre, moved inside the frame."""
    cx, cy = landmarks.mean(axis=0)
    side_y, side_x = min(FACE_BOX, height), min(FACE_BOX, width)
    top = int(np.clip(round(cy - side_y / 2), 0, height - side_y))
    left = int(np.clip(round(cx - side_x / 2), 0, width - side_x))
    return slice(top, top + side_y), slice(left, left + side_x)


def score(frames: np.ndarray, stream: Stream, indices: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean of each metric over the scored frames, on the whole frame and the face box."""
    target = stream.pristine.frames[indices]
    whole = {k: float(v.mean()) for k, v in frame_metrics(to_tensor(frames), to_tensor(target)).items()}
    boxes = [_face_box(stream.guidance.landmarks[t], stream.pristine.height, stream.pristine.width) for t in indices]
    face_x = np.stack([f[ys, xs] for f, (ys, xs) in zip(frames, boxes, strict=True)])
    face_y = np.stack([f[ys, xs] for f, (ys, xs) in zip(target, boxes, strict=True)])
    face = {k: float(v.mean()) for k, v in frame_metrics(to_tensor(face_x), to_tensor(face_y)).items()}
    return {"frame": whole, "face": face}


def _ensure_trained(config: ReportConfig, keyframes: bool, seed: int) -> Path:
    variant = "keyframes" if keyframes else "no_keyframes"
    root = config.runs_dir / "smoke" if config.smoke else config.runs_dir
    run_dir = root / variant / f"seed{seed}"
    generator = run_dir / GENERATOR_FILE
    if generator.is_file():
        return generator
    resume = (run_dir / "checkpoint.pt").is_file()
    train_config = TrainConfig(
        seed=seed,
        run_dir=run_dir,
        resume=resume,
        keyframes=keyframes,
        iterations=config.iterations,
        smoke=config.smoke,
        progress=config.progress,
    )
    return train(train_config)


def build_report(config: ReportConfig) -> dict[str, Any]:
    """Run the whole report; return its figures (also written to out_dir/results.json)."""
    if smoke_requested(config.smoke):
        config = replace(config, smoke=True, seeds=config.seeds[:1], out_dir=config.runs_dir / "smoke" / "report")
    generators = {(kf, seed): _ensure_trained(config, kf, seed) for seed in config.seeds for kf in (True, False)}
    torch.set_num_threads(1)
    detector = LandmarkDetector()
    pristine = load_carphone()
    crfs = EVAL_CRFS[-1:] if config.smoke else EVAL_CRFS
    results: dict[str, Any] = {"crfs": {}, "seeds": list(config.seeds)}
    examples: dict[int, dict[str, np.ndarray]] = {}
    timing: dict[str, float] = {}
    tracked_by_crf: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for crf in crfs:
        compressed = compress(pristine, crf)
        started = time.perf_counter()
        decoded = compute_guidance(compressed.video, detector, progress=config.progress)
        timing_guidance = (time.perf_counter() - started) / len(compressed.video)
        tracked = (decoded.landmarks, decoded.found)
        tracked_by_crf[crf] = tracked
        guides = {
            "keyframes_decoded": decoded,
            "keyframes_hq": compute_guidance(
                compressed.video, detector, keyframe_images=pristine.frames, tracked=tracked
            ),
            "no_keyframes": compute_guidance(compressed.video, detector, keyframes=False, tracked=tracked),
        }
        stream = Stream(crf, compressed.kbit_per_s, compressed.video, pristine, guides["keyframes_hq"])
        indices = scored_frames(stream)
        per_method: dict[str, list[dict[str, dict[str, float]]]] = {
            "compressed": [score(compressed.video.frames[indices], stream, indices)]
        }
        example_t = int(indices[len(indices) // 2])
        examples[crf] = {"pristine": pristine.frames[example_t], "compressed": compressed.video.frames[example_t]}
        for method in METHODS[1:]:
            per_method[method] = []
            for seed in config.seeds:
                generator, _ = load_generator(generators[(method != "no_keyframes", seed)])
                started = time.perf_counter()
                restored = restore_frames(generator, compressed.video.frames, guides[method], indices)
                if crf == crfs[-1] and method == "keyframes_decoded" and seed == config.seeds[0]:
                    timing = {
                        "guidance_ms_per_frame": 1000 * timing_guidance,
                        "network_ms_per_frame": 1000 * (time.perf_counter() - started) / len(indices),
                    }
                per_method[method].append(score(restored, stream, indices))
                if seed == config.seeds[0]:
                    examples[crf][method] = restored[list(indices).index(example_t)]
        results["crfs"][str(crf)] = {
            "kbit_per_s": compressed.kbit_per_s,
            "scored_frames": [int(t) for t in indices],
            "i_frames": [int(t) for t in np.flatnonzero(compressed.video.keyframe)],
            "example_frame": example_t,
            "methods": {m: _summarise(per_method[m]) for m in METHODS},
            "keyframes_minus_ablation": _paired(per_method["keyframes_hq"], per_method["no_keyframes"]),
            "decoded_keyframes_minus_ablation": _paired(per_method["keyframes_decoded"], per_method["no_keyframes"]),
        }
    total_ms = timing["guidance_ms_per_frame"] + timing["network_ms_per_frame"]
    results["throughput"] = {**timing, "frames_per_second": 1000 / total_ms, "threads": 1}
    landmarks, found = track_landmarks(pristine.frames, detector)
    landmarks_c, found_c = tracked_by_crf[EVAL_CRFS[-1]]
    results["landmarks"] = {
        "pristine": landmark_stability(landmarks, found),
        f"crf{EVAL_CRFS[-1]}": landmark_stability(landmarks_c, found_c),
        "displacement_pristine_vs_compressed_px": float(
            np.linalg.norm(landmarks[found & found_c] - landmarks_c[found & found_c], axis=-1).mean()
        ),
    }
    results["split"] = {"train_frames": [0, TRAIN_END - 1], "eval_frames": [TRAIN_END, len(pristine) - 1]}
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", to_jsonable(results))
    _plot_metrics(results, out / "metrics.png")
    _example_grid(examples, out / "examples.png")
    write_text_atomic(out / "report.md", render_markdown(results, config))
    return results


def _summarise(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for region in ("frame", "face"):
        summary[region] = {}
        for metric in METRICS:
            mean, half = mean_t_interval([run[region][metric] for run in runs])
            summary[region][metric] = {"mean": mean, "ci95": half}
    return summary


def _paired(a: list[dict[str, dict[str, float]]], b: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """a - b per seed, mean and 95 % t-interval, for each region and metric."""
    paired: dict[str, Any] = {}
    for region in ("frame", "face"):
        paired[region] = {}
        for metric in METRICS:
            diffs = [x[region][metric] - y[region][metric] for x, y in zip(a, b, strict=True)]
            mean, half = mean_t_interval(diffs)
            paired[region][metric] = {"mean": mean, "ci95": half, "per_seed": diffs}
    return paired


def render_markdown(results: dict[str, Any], config: ReportConfig) -> str:
    """The report as Markdown (tables of every metric, the paired differences, throughput, landmarks)."""
    seeds = " ".join(str(s) for s in config.seeds)
    lines = [
        "# Keyframe-guided restoration of carphone (kfgan report)",
        "",
        f"Made by `kfgan report --seeds {seeds} --iterations {config.iterations}"
        + (" --smoke" if config.smoke else "")
        + f"`: {len(config.seeds)} training seed(s) per network, means with 95 % t-intervals over seeds.",
        f"Training frames 0-{TRAIN_END - 1}; scored: frames {TRAIN_END}-119 except I-frames. "
        "HaarPSI and GMSD stand in for LPIPS (no downloadable weights; see `kfgan.metrics`).",
        "",
    ]
    for crf, entry in results["crfs"].items():
        for region in ("frame", "face"):
            lines.append(f"## CRF {crf} ({entry['kbit_per_s']:.1f} kbit/s), {region}")
            lines.append("")
            headers = ["method", *[m + ("" if HIGHER_IS_BETTER[m] else " (lower better)") for m in METRICS]]
            rows = []
            for method in METHODS:
                cells = entry["methods"][method][region]
                rows.append([LABELS[method], *[f"{cells[m]['mean']:.4f} ± {cells[m]['ci95']:.4f}" for m in METRICS]])
            for key, label in (
                ("keyframes_minus_ablation", "HQ keyframes - ablation (paired)"),
                ("decoded_keyframes_minus_ablation", "decoded keyframes - ablation (paired)"),
            ):
                cells = entry[key][region]
                rows.append([label, *[f"{cells[m]['mean']:+.4f} ± {cells[m]['ci95']:.4f}" for m in METRICS]])
            lines += ["```", format_table(headers, rows), "```", ""]
    throughput = results["throughput"]
    lines += [
        "## Throughput and landmarks",
        "",
        f"CPU, one thread: guidance (landmarks, keyframe set, warp) {throughput['guidance_ms_per_frame']:.1f} ms a "
        f"frame, network {throughput['network_ms_per_frame']:.1f} ms a frame: "
        f"{throughput['frames_per_second']:.1f} frames per second.",
        "",
        "Landmark stability (dlib HOG detector + 68-point predictor):",
        "",
        "```",
        format_table(
            ["video", *sorted(results["landmarks"]["pristine"])],
            [
                [name, *[figures[k] for k in sorted(figures)]]
                for name, figures in results["landmarks"].items()
                if isinstance(figures, dict)
            ],
        ),
        "```",
        "",
        "Mean landmark displacement, compressed vs pristine frames: "
        f"{results['landmarks']['displacement_pristine_vs_compressed_px']:.2f} px.",
        "",
        "![metrics](metrics.png)",
        "",
        "![examples](examples.png)",
        "",
    ]
    return "\n".join(lines)


def _plot_metrics(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ("psnr", "ssim", "haarpsi", "gmsd")
    crfs = list(results["crfs"])
    figure, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.6))
    width = 0.8 / len(METHODS)
    for ax, metric in zip(axes, shown, strict=True):
        for i, method in enumerate(METHODS):
            means = [results["crfs"][c]["methods"][method]["face"][metric]["mean"] for c in crfs]
            errors = [results["crfs"][c]["methods"][method]["face"][metric]["ci95"] for c in crfs]
            x = np.arange(len(crfs)) + (i - (len(METHODS) - 1) / 2) * width
            ax.bar(x, means, width, yerr=errors, label=LABELS[method], capsize=2)
        ax.set_xticks(np.arange(len(crfs)), [f"CRF {c}" for c in crfs])
        ax.set_title(f"face box: {metric}" + ("" if HIGHER_IS_BETTER[metric] else " (lower better)"))
        values = [results["crfs"][c]["methods"][m]["face"][metric]["mean"] for c in crfs for m in METHODS]
        spread = max(values) - min(values)
        ax.set_ylim(min(values) - spread * 0.5, max(values) + spread * 0.5)
    axes[0].legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def _example_grid(examples: dict[int, dict[str, np.ndarray]], path: Path) -> None:
    """Rows: CRFs; columns: pristine, compressed, ablation, decoded keyframes, HQ keyframes (2x enlarged)."""
    columns = ("pristine", *METHODS)
    rows = [np.concatenate([examples[crf][c] for c in columns if c in examples[crf]], axis=1) for crf in examples]
    save_png(path, np.concatenate(rows, axis=0), scale=2)

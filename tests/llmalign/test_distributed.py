"""`llmalign sft` under `accelerate launch` with two CPU processes (DDP over gloo).

Each test launches the real command as a user does: `accelerate launch --multi_gpu --num_processes 2` with
`ACCELERATE_USE_CPU=true` (accelerate 1.16 starts a single process for `--cpu --num_processes 2` unless
mpirun is used; `--multi_gpu` runs torchrun, and ACCELERATE_USE_CPU makes each process a MULTI_CPU rank on
gloo). Everything is given on the command line; HF_HOME points to a temporary folder so that no accelerate
config file of the user's is read. With `LLMALIGN_RANK_DIGEST_DIR` set, every rank writes the sha256 of
its weights at the start and the end (`llmalign.sft.weights_digest`) to `<dir>/rank<index>.json`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import llmalign.sft as sft_module
from llmalign.configs import SFTConfig
from llmalign.model import load_model
from llmalign.sft import DIGEST_ENV, train_sft, weights_digest
from runkit.config import SMOKE_ENV
from runkit.metrics import read_scalars

PROCESSES = 2
LAUNCH_TIMEOUT_S = 300.0
_DISTRIBUTED_ENV = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _launch_sft(args: list[str], tmp_path: Path, digest_dir: Path) -> subprocess.CompletedProcess[str]:
    """`accelerate launch` two CPU ranks of `llmalign sft --smoke <args>`; the exit status is not checked."""
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", str(PROCESSES), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
        "--module", "llmalign.cli", "sft", "--smoke", "--no-progress", *args,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_") and k not in _DISTRIBUTED_ENV}
    env.update({
        "ACCELERATE_USE_CPU": "true", "CUDA_VISIBLE_DEVICES": "", "HF_HOME": str(tmp_path / "hf_home"),
        "OMP_NUM_THREADS": "1", SMOKE_ENV: "1", DIGEST_ENV: str(digest_dir),
    })  # fmt: skip
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S, check=False, cwd=tmp_path
    )


def _json_documents(text: str) -> list[Any]:
    """The JSON documents printed one after another."""
    decoder, documents, position = json.JSONDecoder(), [], 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
    return documents


def _rank_records(digest_dir: Path) -> list[dict[str, Any]]:
    files = sorted(digest_dir.glob("rank*.json"))
    assert [f.name for f in files] == [f"rank{r}.json" for r in range(PROCESSES)]
    return [json.loads(f.read_text()) for f in files]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(run_dir / "model")
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.slow
def test_two_cpu_ranks_end_with_identical_weights_and_one_run_folder(tmp_path: Path) -> None:
    run_dir, digest_dir = tmp_path / "ddp", tmp_path / "digests"
    done = _launch_sft(["--run-dir", str(run_dir)], tmp_path, digest_dir)
    assert done.returncode == 0, done.stderr[-4000:]

    ranks = _rank_records(digest_dir)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["processes"] == PROCESSES and r["distributed_type"].endswith("MULTI_CPU") for r in ranks)
    assert all(r["steps"] == 4 for r in ranks)  # smoke: 64 examples in global batches of 16, one epoch
    assert ranks[0]["start"] == ranks[1]["start"]
    assert ranks[0]["end"] == ranks[1]["end"], "the ranks' weights differ: gradients were not synchronised"
    assert ranks[0]["end"] != ranks[0]["start"], "training did not move the weights"

    # The run folder was written once, by the main process.
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint", "model", "scalars.jsonl", "summary.json"]
    assert [step for step, _ in read_scalars(run_dir)["losses/sft"]] == [1, 2, 3, 4]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 4
    assert summary["processes"] == PROCESSES
    printed = _json_documents(done.stdout)
    assert len(printed) == 1, "the summary is printed once, by the main process"
    assert printed[0]["final_loss"] == summary["final_loss"]
    saved = load_model(run_dir / "model")[0]
    assert weights_digest(saved) == ranks[0]["end"]
    checkpointed = load_model(run_dir / "checkpoint")[0]
    assert weights_digest(checkpointed) == ranks[0]["end"]

    # The global batch does not depend on the number of processes: one process reaches the same weights.
    train_sft(SFTConfig(smoke=True, run_dir=tmp_path / "one", progress=False))
    difference = _max_difference(_weights(tmp_path / "one"), _weights(run_dir))
    assert difference < 1e-6, f"two processes end {difference:.3g} from one process"


@pytest.mark.slow
def test_a_run_cut_in_one_process_resumes_under_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def config(name: str, **overrides: Any) -> SFTConfig:
        return SFTConfig(
            smoke=True, epochs=2, checkpoint_every_steps=2, progress=False, run_dir=tmp_path / name, **overrides
        )

    train_sft(config("whole"))
    save = sft_module.save_training_checkpoint
    calls: list[Path] = []

    def save_then_crash(*args: Any, **kwargs: Any) -> Path:
        folder = save(*args, **kwargs)
        calls.append(folder)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed right after the checkpoint of step 4 of 8
        return folder

    with monkeypatch.context() as patch:
        patch.setattr(sft_module, "save_training_checkpoint", save_then_crash)
        with pytest.raises(KeyboardInterrupt):
            train_sft(config("cut"))

    digest_dir = tmp_path / "digests"
    args = ["--run-dir", str(tmp_path / "cut"), "--epochs", "2", "--checkpoint-every-steps", "2", "--resume"]
    done = _launch_sft(args, tmp_path, digest_dir)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = _rank_records(digest_dir)
    assert ranks[0]["start"] == ranks[1]["start"]
    assert ranks[0]["end"] == ranks[1]["end"]
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["resumed"] is True
    assert summary["steps"] == 8
    assert [step for step, _ in read_scalars(tmp_path / "cut")["losses/sft"]] == list(range(1, 9))
    difference = _max_difference(_weights(tmp_path / "whole"), _weights(tmp_path / "cut"))
    assert difference < 1e-6, f"the resumed run ends {difference:.3g} from the uninterrupted one"

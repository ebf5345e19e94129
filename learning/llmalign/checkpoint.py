"""A training checkpoint: the model as a Hugging Face folder (safetensors), the trainer's state in runkit's envelope.

    <run_dir>/checkpoint/   config.json, model.safetensors, tokenizer.json   (the model, `load_model` reads it)
                            trainer_state.pt   (format llmalign.trainer/1: step, optimiser, random generators)

A checkpoint is written into `checkpoint.new/` and swapped in by renames, so a crash leaves the previous
complete checkpoint (or the new one) and never a mix: `checkpoint.old/` is kept until the swap is done and
is read if `checkpoint/` is missing. Nothing is unpickled: the weights are safetensors, the state is read
with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from llmalign.model import load_model, save_model
from runkit.checkpoint import Envelope, load_envelope, save_envelope
from runkit.seeding import capture_rng

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.pt"
STATE_FORMAT = "llmalign.trainer/1"


@dataclass
class TrainingCheckpoint:
    """What a resumed run continues from."""

    model: LlamaForCausalLM
    tokenizer: PreTrainedTokenizerFast
    envelope: Envelope


def checkpoint_folder(run_dir: Path) -> Path:
    """The folder a resumed run reads (`checkpoint/`, or `checkpoint.old/` when a swap was cut short)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    old = folder.with_name(f"{CHECKPOINT_DIR}.old")
    return old if not folder.exists() and old.exists() else folder


def has_checkpoint(run_dir: Path) -> bool:
    """True when the run folder holds a complete checkpoint."""
    return (checkpoint_folder(run_dir) / STATE_FILE).is_file()


def save_training_checkpoint(
    run_dir: Path,
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    state: dict[str, Any],
    config: Any,
) -> Path:
    """Write the model and `state` (step, optimiser state dicts, ...) plus the random generators; returns the folder."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    new, old = folder.with_name(f"{CHECKPOINT_DIR}.new"), folder.with_name(f"{CHECKPOINT_DIR}.old")
    shutil.rmtree(new, ignore_errors=True)
    save_model(model, tokenizer, new)
    save_envelope(new / STATE_FILE, STATE_FORMAT, state, config=config, rng=capture_rng())
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
    new.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def load_training_checkpoint(run_dir: Path) -> TrainingCheckpoint:
    """The model, tokenizer and trainer state of the run's checkpoint (CheckpointError when unreadable)."""
    folder = checkpoint_folder(run_dir)
    envelope = load_envelope(folder / STATE_FILE, [STATE_FORMAT], "llmalign training checkpoint")
    model, tokenizer = load_model(folder)
    return TrainingCheckpoint(model, tokenizer, envelope)


__all__ = [
    "CHECKPOINT_DIR",
    "STATE_FORMAT",
    "TrainingCheckpoint",
    "checkpoint_folder",
    "has_checkpoint",
    "load_training_checkpoint",
    "save_training_checkpoint",
]

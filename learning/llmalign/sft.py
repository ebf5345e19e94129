"""Supervised fine-tuning: the reference policy every alignment trainer starts from.

`train_sft(config)` builds (or reads) a model, checks the whole data set, then minimises the mean
next-token cross-entropy over response tokens with AdamW (warm-up, cosine decay), checkpointing every
`checkpoint_every_steps` steps; `--resume` continues from the last checkpoint to the same weights an
uninterrupted run reaches (the data order of each epoch is a permutation drawn from seed and epoch). At the
end the model is saved to `<run_dir>/model/` and measured on held-out prompts (`evaluate.task_metrics`).
Metric names: `losses/sft`, `charts/learning_rate`, `charts/grad_norm`, `rollout/eval_<figure>`.

The same function runs as a plain process and under `accelerate launch` (DDP on GPUs, or on CPUs with gloo;
FSDP from an accelerate config file, a branch never run: accelerate enables it on GPUs only). Every rank
draws the same global batch of `batch_size` records and trains on its contiguous share of it; each rank's
loss is its tokens' summed negative log-likelihood times the number of processes over the global batch's
token count, so DDP's gradient average is the gradient of the global batch's mean: the result does not
depend on the number of processes (up to the order of floating-point sums). Training draws no random numbers
(the data order comes from seed and epoch), so every rank is seeded alike. Only the main process writes the
run folder (checkpoints, scalars, progress bar, model, summary) and evaluates; the others wait at barriers.
Every rank reads the checkpoint on `--resume`, so the run folder must be on a file system all of them see.

`LLMALIGN_RANK_DIGEST_DIR` (a debugging aid, used by the two-process test): when set, every rank writes
`<dir>/rank<index>.json` with the sha256 of its weights at the start and at the end (`weights_digest`).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import (
    DistributedType,
    InitProcessGroupKwargs,
    broadcast_object_list,
)
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from llmalign.checkpoint import has_checkpoint, load_training_checkpoint, save_training_checkpoint
from llmalign.configs import SFTConfig
from llmalign.data import Record, generate_records, read_records
from llmalign.evaluate import task_metrics
from llmalign.model import build_model, load_model, save_model
from llmalign.sequences import Batch, encode_responses, pack, response_token_logprobs
from llmalign.tokenizer import train_tokenizer
from runkit import get_logger, prepare_run_dir, write_json_atomic, write_summary
from runkit.checkpoint import CheckpointError
from runkit.metrics import RunLogger
from runkit.seeding import restore_rng, seed_everything

log = get_logger("llmalign.sft")
MODEL_DIR = "model"
WARMUP_FRACTION = 0.05
FINAL_LR_FRACTION = 0.1
DIGEST_ENV = "LLMALIGN_RANK_DIGEST_DIR"
"""Environment variable: a folder where every rank writes the digest of its weights (`rank<index>.json`)."""
PROCESS_GROUP_TIMEOUT = timedelta(hours=2)
"""How long the other ranks wait at a barrier (the main process evaluates and saves alone; NCCL's default is 10 min)."""
FSDP_OPTIMIZER_LAYOUT = "fsdp-full"
"""`state["optimizer_layout"]` of a checkpoint written under FSDP (the optimiser state keyed by parameter name)."""


def learning_rate_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 5 % of steps, then cosine decay to 10 % of the peak at the last step."""
    warmup = max(1, int(WARMUP_FRACTION * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def sft_loss(model: LlamaForCausalLM, batch: Batch) -> torch.Tensor:
    """Mean negative log-likelihood of the response tokens (and each response's end token)."""
    logps, mask = response_token_logprobs(model, batch)
    return -(logps * mask).sum() / mask.sum().clamp_min(1.0)


def share_loss(model: Any, batch: Batch, global_tokens: int, processes: int) -> torch.Tensor:
    """One rank's part of the global batch's `sft_loss`: its tokens' summed NLL x processes / the global token count.

    DDP averages the ranks' gradients, so the step follows the gradient of the global batch's mean; with one
    process this is `sft_loss` exactly.
    """
    logps, mask = response_token_logprobs(model, batch)
    loss = -(logps * mask).sum() / torch.tensor(float(max(global_tokens, 1)), device=logps.device)
    return loss * processes if processes != 1 else loss


def rank_share(chosen: np.ndarray, rank: int, processes: int) -> tuple[np.ndarray, float]:
    """Rank `rank`'s contiguous part of a global batch and its loss weight.

    A rank left without records (a last batch smaller than the number of processes) gets the batch's first
    record with weight 0: it still runs forward and backward, as DDP needs, and adds nothing.
    """
    share = np.array_split(chosen, processes)[rank]
    return (share, 1.0) if len(share) else (chosen[:1], 0.0)


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The order records are visited in during `epoch` (a fixed permutation per seed and epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over the state dict's names and values (as float32 bytes, in name order): equal weights, equal digest."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def starting_model(config: SFTConfig) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """The model fine-tuning starts from: the `init_model` folder, or one built here with a tokenizer trained here."""
    if config.init_model is not None:
        return load_model(config.init_model)
    tokenizer = train_tokenizer()
    return build_model(config.model, tokenizer, config.seed), tokenizer


def load_data(config: SFTConfig, tokenizer: PreTrainedTokenizerFast, max_positions: int) -> list[Record]:
    """The records to train on, every one checked before training starts."""
    if config.data_file is not None:
        return read_records(config.data_file, tokenizer, max_positions)
    return generate_records(config.task, config.examples, config.seed)


def _on_device(batch: Batch, device: torch.device) -> Batch:
    """`batch` with its tensors on `device`."""
    return Batch(batch.input_ids.to(device), batch.attention_mask.to(device), batch.response_mask.to(device))


def _plain_model(accelerator: Accelerator, model: Any) -> LlamaForCausalLM | None:
    """The trained model, unwrapped, on the main process (None on the others); every rank must call it.

    Under DDP or one process this is the trained module itself; under FSDP the full state dict is gathered
    and loaded into a fresh copy.
    """
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.distributed_type != DistributedType.FSDP:
        return unwrapped if accelerator.is_main_process else None
    state = accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        return None
    with torch.random.fork_rng(devices=[]):
        plain = LlamaForCausalLM(unwrapped.config)
    plain.load_state_dict(state)
    plain.generation_config = unwrapped.generation_config
    return plain


def _optimizer_state(accelerator: Accelerator, model: Any, optimizer: Any) -> dict[str, Any]:
    """The optimiser's state for a checkpoint (under FSDP gathered in full, keyed by name; every rank calls it)."""
    if accelerator.distributed_type != DistributedType.FSDP:
        return {"optimizer": optimizer.state_dict()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    full = get_optimizer_state_dict(model, optimizer.optimizer, options=options)
    return {"optimizer": full, "optimizer_layout": FSDP_OPTIMIZER_LAYOUT}


def _restore_optimizer(accelerator: Accelerator, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """Load a checkpoint's optimiser state into the prepared optimiser (refuses a layout of the other kind)."""
    fsdp = accelerator.distributed_type == DistributedType.FSDP
    layout = state.get("optimizer_layout")
    if fsdp != (layout == FSDP_OPTIMIZER_LAYOUT):
        raise CheckpointError(
            f"the checkpoint's optimiser state was written {'under' if layout else 'without'} FSDP; "
            f"resume it {'under' if layout else 'without'} FSDP"
        )
    if not fsdp:
        optimizer.load_state_dict(state["optimizer"])
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model, optimizer.optimizer, optim_state_dict=state["optimizer"], options=options)


def _write_rank_digest(accelerator: Accelerator, start: str, end: str, steps: int) -> None:
    """With LLMALIGN_RANK_DIGEST_DIR set, write this rank's weight digests to `<dir>/rank<index>.json`."""
    folder = os.environ.get(DIGEST_ENV)
    if not folder:
        return
    record = {
        "rank": accelerator.process_index,
        "processes": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type),
        "steps": steps,
        "start": start,
        "end": end,
    }
    write_json_atomic(Path(folder) / f"rank{accelerator.process_index}.json", record)


def train_sft(config: SFTConfig) -> dict[str, Any]:
    """Run (or resume) supervised fine-tuning; returns the summary (written to the run folder by the main process)."""
    accelerator = Accelerator(kwargs_handlers=[InitProcessGroupKwargs(timeout=PROCESS_GROUP_TIMEOUT)])
    main, rank, processes = accelerator.is_main_process, accelerator.process_index, accelerator.num_processes
    cfg = config.resolved()
    run_dir = cfg.run_path
    resumed = prepare_run_dir(run_dir, cfg.resume, run_dir / "checkpoint" / "trainer_state.pt")
    accelerator.wait_for_everyone()  # every rank has checked the folder before the main process writes to it
    seed_everything(cfg.seed, cfg.torch_deterministic, cfg.torch_threads)
    if resumed and has_checkpoint(run_dir):
        checkpoint = load_training_checkpoint(run_dir)
        model, tokenizer = checkpoint.model, checkpoint.tokenizer
    else:
        checkpoint = None
        model, tokenizer = starting_model(cfg)
    max_positions = int(model.config.max_position_embeddings)
    records = load_data(cfg, tokenizer, max_positions)
    responses = encode_responses(tokenizer, [r.response for r in records])
    prompts = [r.prompt for r in records]
    steps_per_epoch = math.ceil(len(records) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    start_digest = weights_digest(model) if os.environ.get(DIGEST_ENV) else ""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    fsdp = accelerator.distributed_type == DistributedType.FSDP
    step = 0
    if checkpoint is not None and not fsdp:
        _restore_optimizer(accelerator, model, optimizer, checkpoint.envelope.state)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    if checkpoint is not None:
        if fsdp:
            _restore_optimizer(accelerator, wrapped, optimizer, checkpoint.envelope.state)
        step = int(checkpoint.envelope.state["step"])
        if checkpoint.envelope.rng is not None:
            restore_rng(checkpoint.envelope.rng)
    logger = (
        RunLogger(
            run_dir, total_steps, desc=f"sft {cfg.task}", tensorboard=cfg.tensorboard, progress=cfg.progress,
            resume_step=step if resumed else None,
        )
        if main
        else None
    )  # fmt: skip
    started = time.perf_counter()
    figures: dict[str, float] = {}
    wrapped.train()
    try:
        while step < total_steps:
            epoch, index = divmod(step, steps_per_epoch)
            chosen = epoch_order(cfg.seed, epoch, len(records))[index * cfg.batch_size : (index + 1) * cfg.batch_size]
            share, weight = rank_share(chosen, rank, processes)
            batch = pack(tokenizer, [prompts[i] for i in share], [responses[i] for i in share])
            global_tokens = sum(len(responses[i]) for i in chosen)
            lr = learning_rate_at(step, total_steps, cfg.learning_rate)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = share_loss(wrapped, _on_device(batch, accelerator.device), global_tokens, processes)
            if weight != 1.0:
                loss = loss * weight
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            grad_norm = accelerator.clip_grad_norm_(wrapped.parameters(), cfg.max_grad_norm)
            optimizer.step()
            step += 1
            batch_loss = float(accelerator.reduce(loss.detach(), reduction="mean").item())
            if logger is not None:
                logger.scalars(
                    {"losses/sft": batch_loss, "charts/learning_rate": lr, "charts/grad_norm": float(grad_norm)}, step
                )
                logger.advance(1, loss=batch_loss)
            every = cfg.checkpoint_every_steps
            if (every and step % every == 0) or step == total_steps:
                plain = _plain_model(accelerator, wrapped)
                state = {"step": step, **_optimizer_state(accelerator, wrapped, optimizer)}
                if logger is not None and plain is not None:
                    logger.flush()
                    save_training_checkpoint(run_dir, plain, tokenizer, state, cfg)
                accelerator.wait_for_everyone()
        trained = _plain_model(accelerator, wrapped)
        if os.environ.get(DIGEST_ENV):
            _write_rank_digest(accelerator, start_digest, weights_digest(accelerator.unwrap_model(wrapped)), step)
        if logger is not None and trained is not None:
            trained = trained.cpu()  # sampling builds its inputs on the CPU
            trained.eval()
            figures = task_metrics(cfg.task, trained, tokenizer, cfg.eval_problems, seed=cfg.seed)
            logger.scalars({f"rollout/eval_{name}": value for name, value in figures.items()}, step)
    finally:
        if logger is not None:
            logger.close()
    summary: dict[str, Any] | None = None
    if logger is not None and trained is not None:
        model_dir = save_model(trained, tokenizer, run_dir / MODEL_DIR)
        summary = {
            "algo": "sft",
            "task": cfg.task,
            "seed": cfg.seed,
            "steps": step,
            "examples": len(records),
            "resumed": resumed,
            "final_loss": logger.last.get("losses/sft"),
            "wall_s": time.perf_counter() - started,
            "model": str(model_dir),
            **figures,
        }
        if processes > 1:
            summary["processes"] = processes
        write_summary(run_dir, summary)
    shared = broadcast_object_list([summary])  # the others wait here for the main process's evaluation
    return dict(shared[0] or {})


__all__ = [
    "DIGEST_ENV",
    "MODEL_DIR",
    "epoch_order",
    "learning_rate_at",
    "rank_share",
    "sft_loss",
    "share_loss",
    "train_sft",
    "weights_digest",
]

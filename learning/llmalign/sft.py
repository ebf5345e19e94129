"""Supervised fine-tuning: the reference policy every alignment trainer starts from.

`train_sft(config)` builds (or reads) a model, checks the whole data set, then minimises the mean
next-token cross-entropy over response tokens with AdamW (warm-up, cosine decay), checkpointing every
`checkpoint_every_steps` steps; `--resume` continues from the last checkpoint to the same weights an
uninterrupted run reaches (the data order of each epoch is a permutation drawn from seed and epoch). At the
end the model is saved to `<run_dir>/model/` and measured on held-out prompts (`evaluate.task_metrics`).
Metric names: `losses/sft`, `charts/learning_rate`, `charts/grad_norm`, `rollout/eval_<figure>`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from llmalign.checkpoint import has_checkpoint, load_training_checkpoint, save_training_checkpoint
from llmalign.configs import SFTConfig
from llmalign.data import Record, generate_records, read_records
from llmalign.evaluate import task_metrics
from llmalign.model import build_model, load_model, save_model
from llmalign.sequences import Batch, encode_responses, pack, response_token_logprobs
from llmalign.tokenizer import train_tokenizer
from runkit import get_logger, prepare_run_dir, write_summary
from runkit.metrics import RunLogger
from runkit.seeding import restore_rng, seed_everything

log = get_logger("llmalign.sft")
MODEL_DIR = "model"
WARMUP_FRACTION = 0.05
FINAL_LR_FRACTION = 0.1


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


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The order records are visited in during `epoch` (a fixed permutation per seed and epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(count)


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


def train_sft(config: SFTConfig) -> dict[str, Any]:
    """Run (or resume) supervised fine-tuning; returns the summary (also written to the run folder)."""
    cfg = config.resolved()
    run_dir = cfg.run_path
    resumed = prepare_run_dir(run_dir, cfg.resume, run_dir / "checkpoint" / "trainer_state.pt")
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
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    step = 0
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint.envelope.state["optimizer"])
        step = int(checkpoint.envelope.state["step"])
        if checkpoint.envelope.rng is not None:
            restore_rng(checkpoint.envelope.rng)
    logger = RunLogger(
        run_dir, total_steps, desc=f"sft {cfg.task}", tensorboard=cfg.tensorboard, progress=cfg.progress,
        resume_step=step if resumed else None,
    )  # fmt: skip
    started = time.perf_counter()
    model.train()
    try:
        while step < total_steps:
            epoch, index = divmod(step, steps_per_epoch)
            chosen = epoch_order(cfg.seed, epoch, len(records))[index * cfg.batch_size : (index + 1) * cfg.batch_size]
            batch = pack(tokenizer, [prompts[i] for i in chosen], [responses[i] for i in chosen])
            lr = learning_rate_at(step, total_steps, cfg.learning_rate)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = sft_loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            step += 1
            logger.scalars(
                {"losses/sft": loss.item(), "charts/learning_rate": lr, "charts/grad_norm": float(grad_norm)}, step
            )
            logger.advance(1, loss=loss.item())
            every = cfg.checkpoint_every_steps
            if (every and step % every == 0) or step == total_steps:
                logger.flush()
                state = {"step": step, "optimizer": optimizer.state_dict()}
                save_training_checkpoint(run_dir, model, tokenizer, state, cfg)
        model.eval()
        figures = task_metrics(cfg.task, model, tokenizer, cfg.eval_problems, seed=cfg.seed)
        logger.scalars({f"rollout/eval_{name}": value for name, value in figures.items()}, step)
    finally:
        logger.close()
    model_dir = save_model(model, tokenizer, run_dir / MODEL_DIR)
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
    write_summary(run_dir, summary)
    return summary


__all__ = ["MODEL_DIR", "epoch_order", "learning_rate_at", "sft_loss", "train_sft"]

"""`llmalign judge`: train a learned judge from the hidden judge's labels, measure it, save it.

The judge is trained on comparisons of the training prompts and measured on the held-out prompts:
agreement with the hidden judge's preferred response, the error of its probabilities, and the fraction of
style cycles it reproduces (0 for a Bradley-Terry reward, by construction). Saved to `<run_dir>/judge/`.
Metric names: `losses/judge`, `rollout/eval_<figure>`.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from llmalign.configs import JudgeConfig
from llmalign.preference_model import (
    PairwisePreferenceModel,
    RewardModel,
    comparison_pairs,
    cycle_agreement,
    judge_agreement,
    save_judge,
    train_judge,
)
from llmalign.preference_task import split_prompts
from llmalign.tokenizer import train_tokenizer
from runkit import prepare_run_dir, write_summary
from runkit.metrics import RunLogger
from runkit.seeding import seed_everything

JUDGE_DIR = "judge"


def run_judge(config: JudgeConfig) -> dict[str, Any]:
    """Train, measure and save one learned judge; returns the summary (also written to the run folder)."""
    cfg = config.resolved()
    run_dir = cfg.run_path
    prepare_run_dir(run_dir, resume=False, checkpoint=run_dir / JUDGE_DIR / "judge.safetensors")
    seed_everything(cfg.seed, cfg.torch_deterministic, cfg.torch_threads)
    tokenizer = train_tokenizer()
    kind = PairwisePreferenceModel if cfg.kind == "pairwise" else RewardModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = kind(cfg.model, tokenizer)
    train_prompts, held_out = split_prompts()
    pairs = comparison_pairs(train_prompts, cfg.pairs, seed=cfg.seed, style_contrast=cfg.style_contrast)
    started = time.perf_counter()
    losses = train_judge(model, pairs, cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.seed)
    figures = judge_agreement(model, comparison_pairs(held_out, cfg.eval_pairs, seed=cfg.seed + 1))
    figures["cycle_agreement"] = cycle_agreement(model, held_out, seed=cfg.seed)
    logger = RunLogger(run_dir, len(losses), desc="judge", tensorboard=False, progress=False)
    try:
        for step, loss in enumerate(losses, start=1):
            logger.scalar("losses/judge", loss, step)
        logger.scalars({f"rollout/eval_{k}": v for k, v in figures.items()}, len(losses))
    finally:
        logger.close()
    folder = save_judge(model, run_dir / JUDGE_DIR, figures)
    summary = {"kind": cfg.kind, "seed": cfg.seed, "steps": len(losses), "wall_s": time.perf_counter() - started,
               "judge": str(folder), **figures}  # fmt: skip
    write_summary(run_dir, summary)
    return summary


__all__ = ["JUDGE_DIR", "run_judge"]

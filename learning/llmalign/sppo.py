"""Iterative self-play preference optimisation: SPPO, and iterative DPO and IPO in the same loop.

One iteration t, as the authors' pipeline runs it (`uclaml/SPPO`: generate, rank, compute_prob, train):

1. sample K responses per prompt from pi_t (temperature 0.7);
2. the pairwise judge gives the K x K matrix P(y_i beats y_j); each response's win rate is its row mean
   with 1/2 on the diagonal (`losses.win_rates`);
3. chosen = the highest win rate, rejected = the lowest (groups whose responses all tie are dropped);
4. a copy of pi_t is trained with pi_t as the reference: SPPO's square loss on the win rates, or DPO's or
   IPO's loss on the same pairs, with a fresh AdamW;
5. the new policy is measured against the SFT model on the held-out prompts: the hidden judge's mean
   P(policy's response beats the SFT model's) (`evaluate.win_rate`).

The run checkpoints after every iteration; `--resume` continues at the next one and ends with the weights
of an uninterrupted run (each iteration's sampling and data order are drawn from seed and iteration).
Metric names: `losses/<loss>`, `rollout/win_rate_vs_sft`, `rollout/judge_score`, `rollout/pairs`,
`rollout/chosen_win_rate`, `rollout/rejected_win_rate`.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from llmalign.checkpoint import has_checkpoint, load_training_checkpoint, save_training_checkpoint
from llmalign.configs import SPPOConfig
from llmalign.evaluate import judge_score, win_rate
from llmalign.losses import dpo_loss, ipo_loss, sequence_logprob, sppo_loss, win_rates
from llmalign.model import load_model, save_model
from llmalign.preference_model import PairwisePreferenceModel, load_judge
from llmalign.preference_task import split_prompts
from llmalign.sequences import SAMPLE_BATCH, Samples, pack, response_token_logprobs, sample_in_batches
from runkit import UserError, prepare_run_dir, write_summary
from runkit.metrics import RunLogger
from runkit.seeding import seed_everything

Pair = tuple[str, list[int], list[int], float, float]
"""(prompt, chosen response ids, rejected response ids, chosen's win rate, rejected's win rate)."""
MODEL_DIR = "model"


def preference_matrices(judge: PairwisePreferenceModel, samples: Samples) -> torch.Tensor:
    """P(y_i beats y_j) for every ordered pair of each prompt's K responses: `P x K x K` (diagonal left at 1/2)."""
    k = samples.k
    groups = len(samples.texts) // k
    matrices = torch.full((groups, k, k), 0.5)
    pairs = [(g, i, j) for g in range(groups) for i in range(k) for j in range(i + 1, k)]
    with torch.no_grad():
        for start in range(0, len(pairs), 256):
            chunk = pairs[start : start + 256]
            prompts = [samples.prompts[g * k] for g, _, _ in chunk]
            first = [samples.texts[g * k + i] for g, i, _ in chunk]
            second = [samples.texts[g * k + j] for g, _, j in chunk]
            probability = judge.probability(prompts, first, second)
            for (g, i, j), p in zip(chunk, probability.tolist(), strict=True):
                matrices[g, i, j], matrices[g, j, i] = p, 1.0 - p
    return matrices


def select_pairs(samples: Samples, rates: torch.Tensor) -> list[Pair]:
    """(prompt, chosen ids, rejected ids, chosen's win rate, rejected's) per prompt: the best and worst by win rate."""
    k = samples.k
    pairs = []
    for g in range(rates.shape[0]):
        best, worst = int(rates[g].argmax()), int(rates[g].argmin())
        if rates[g, best] <= rates[g, worst]:
            continue  # every response ties: nothing to learn from this prompt
        chosen, rejected = samples.response_ids[g * k + best], samples.response_ids[g * k + worst]
        pairs.append((samples.prompts[g * k], chosen, rejected, float(rates[g, best]), float(rates[g, worst])))
    return pairs


def pair_loss(
    config: SPPOConfig,
    policy: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    batch: list[Pair],
    reference: torch.Tensor,
) -> torch.Tensor:
    """The configured loss on a batch of pairs; `reference`: `B x 2` log pi_t of (chosen, rejected)."""
    prompts = [p for p, *_ in batch]
    packed = pack(tokenizer, prompts + prompts, [c for _, c, *_ in batch] + [r for _, _, r, *_ in batch])
    logps, mask = response_token_logprobs(policy, packed)
    sequence = sequence_logprob(logps, mask)
    n = len(batch)
    h_w, h_l = sequence[:n] - reference[:, 0], sequence[n:] - reference[:, 1]
    if config.loss == "sppo":
        p_w = torch.tensor([b[3] for b in batch])
        p_l = torch.tensor([b[4] for b in batch])
        return sppo_loss(h_w, h_l, p_w, p_l, config.beta).mean()
    if config.loss == "dpo":
        return dpo_loss(h_w, h_l, config.beta).mean()
    tokens = mask.sum(dim=-1)
    return ipo_loss(h_w, h_l, tokens[:n], tokens[n:], config.beta).mean()


def reference_logprobs(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    pairs: list[Pair],
) -> torch.Tensor:
    """log pi_t of each pair's chosen and rejected response: `B x 2`."""
    out = []
    with torch.no_grad():
        for start in range(0, len(pairs), SAMPLE_BATCH):
            chunk = pairs[start : start + SAMPLE_BATCH]
            prompts = [p for p, *_ in chunk]
            packed = pack(tokenizer, prompts + prompts, [c for _, c, *_ in chunk] + [r for _, _, r, *_ in chunk])
            logps, mask = response_token_logprobs(model, packed)
            sequence = sequence_logprob(logps, mask)
            out.append(torch.stack([sequence[: len(chunk)], sequence[len(chunk) :]], dim=-1))
    return torch.cat(out)


def measure(
    config: SPPOConfig,
    policy: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    sft_texts: list[str],
    prompts: list[str],
) -> dict[str, float]:
    """Win rate against the SFT model's responses to the same held-out prompts, and the judge's mean score."""
    samples = sample_in_batches(
        policy, tokenizer, prompts, 1, config.max_new_tokens, config.temperature, seed=config.seed + 7_777
    )
    scores = [judge_score(p, t) for p, t in zip(prompts, samples.texts, strict=True)]
    valid = [s for s in scores if s is not None]
    return {
        "win_rate_vs_sft": win_rate(prompts, samples.texts, sft_texts),
        "judge_score": float(np.mean(valid)) if valid else float("nan"),
        "scorable_fraction": len(valid) / len(scores),
    }


def starting_point(
    config: SPPOConfig, judge_path: Path, sft_path: Path
) -> tuple[PairwisePreferenceModel, LlamaForCausalLM, PreTrainedTokenizerFast, list[str], list[str]]:
    """The pairwise judge, the SFT model (in eval mode) and its tokenizer, the held-out evaluation prompts
    (cycled to `eval_samples`) and the SFT model's responses to them: the baseline of every win rate."""
    judge = load_judge(judge_path)
    if not isinstance(judge, PairwisePreferenceModel):
        raise UserError(
            f"{judge_path} is a {judge.kind} judge; SPPO needs a pairwise one (`llmalign judge --kind pairwise`)"
        )
    sft, tokenizer = load_model(sft_path)
    sft.eval()
    _, held_out = split_prompts()
    prompts = [held_out[i % len(held_out)].text for i in range(config.eval_samples)]
    sft_texts = sample_in_batches(
        sft, tokenizer, prompts, 1, config.max_new_tokens, config.temperature, seed=config.seed + 7_777
    ).texts
    return judge, sft, tokenizer, prompts, sft_texts


def best_of_k_win_rates(config: SPPOConfig, k: int = 5) -> dict[str, float]:
    """How far a policy that only re-ranks the SFT model's samples gets: on the held-out prompts, K samples each
    from the SFT model, the best by the hidden judge's score (an oracle) and the best by the learned judge's win
    rates (the response SPPO's data calls chosen), each scored as `measure` scores a policy (win rate against the
    SFT model's own responses, same prompts and sampling seed)."""
    cfg = config.resolved()
    if cfg.sft_model is None or cfg.judge is None:
        raise UserError("best_of_k_win_rates needs sft_model and judge")
    seed_everything(cfg.seed, cfg.torch_deterministic, cfg.torch_threads)
    judge, sft, tokenizer, prompts, sft_texts = starting_point(cfg, cfg.judge, cfg.sft_model)
    samples = sample_in_batches(sft, tokenizer, prompts, k, cfg.max_new_tokens, cfg.temperature, cfg.seed + 8_888)
    learned = win_rates(preference_matrices(judge, samples))
    by_oracle, by_judge = [], []
    for g, prompt in enumerate(prompts):
        texts = samples.texts[g * k : (g + 1) * k]
        scores = [judge_score(prompt, t) for t in texts]
        by_oracle.append(texts[int(np.argmax([-np.inf if s is None else s for s in scores]))])
        by_judge.append(texts[int(learned[g].argmax())])
    return {
        "k": float(k),
        "hidden_judge_best_of_k": win_rate(prompts, by_oracle, sft_texts),
        "learned_judge_best_of_k": win_rate(prompts, by_judge, sft_texts),
    }


def train_sppo(config: SPPOConfig) -> dict[str, Any]:
    """Run (or resume) the iterations; returns the summary (also written to the run folder)."""
    cfg = config.resolved()
    if cfg.sft_model is None or cfg.judge is None:
        raise UserError("--sft-model and --judge are required (see `llmalign sft --task preference`, `llmalign judge`)")
    run_dir = cfg.run_path
    resumed = prepare_run_dir(run_dir, cfg.resume, run_dir / "checkpoint" / "trainer_state.pt")
    seed_everything(cfg.seed, cfg.torch_deterministic, cfg.torch_threads)
    judge, sft, tokenizer, eval_prompts, sft_texts = starting_point(cfg, cfg.judge, cfg.sft_model)
    train_prompts, _ = split_prompts()
    policy, iteration = sft, 0
    history: list[dict[str, float]] = []
    if resumed and has_checkpoint(run_dir):
        checkpoint = load_training_checkpoint(run_dir)
        policy, iteration = checkpoint.model, int(checkpoint.envelope.state["iteration"])
        history = list(checkpoint.envelope.state["history"])
    logger = RunLogger(
        run_dir, cfg.iterations, desc=f"{cfg.loss} iterations", unit="iteration", tensorboard=cfg.tensorboard,
        progress=cfg.progress, resume_step=iteration if resumed else None,
    )  # fmt: skip
    started = time.perf_counter()
    try:
        if iteration == 0 and not resumed:
            history.append({"iteration": 0.0, **measure(cfg, sft, tokenizer, sft_texts, eval_prompts)})
            logger.scalars({f"rollout/{k}": v for k, v in history[-1].items() if k != "iteration"}, 0)
        while iteration < cfg.iterations:
            iteration += 1
            policy = run_iteration(cfg, policy, tokenizer, judge, train_prompts, iteration, logger)
            figures = measure(cfg, policy, tokenizer, sft_texts, eval_prompts)
            history.append({"iteration": float(iteration), **figures})
            logger.scalars({f"rollout/{k}": v for k, v in figures.items()}, iteration)
            logger.advance(1, win_rate=figures["win_rate_vs_sft"])
            logger.flush()
            save_training_checkpoint(run_dir, policy, tokenizer, {"iteration": iteration, "history": history}, cfg)
    finally:
        logger.close()
    model_dir = save_model(policy, tokenizer, run_dir / MODEL_DIR)
    summary = {"loss": cfg.loss, "seed": cfg.seed, "iterations": iteration, "resumed": resumed,
               "wall_s": time.perf_counter() - started, "model": str(model_dir), "history": history}  # fmt: skip
    write_summary(run_dir, summary)
    return summary


def run_iteration(
    cfg: SPPOConfig,
    current: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    judge: PairwisePreferenceModel,
    train_prompts: list[Any],
    iteration: int,
    logger: RunLogger,
) -> LlamaForCausalLM:
    """One self-play iteration from pi_t (`current`, the reference); returns pi_{t+1}."""
    rng = np.random.default_rng([cfg.seed, iteration])
    order = rng.permutation(len(train_prompts))
    prompts = [train_prompts[order[i % len(order)]].text for i in range(cfg.prompts_per_iteration)]
    current.eval()
    samples = sample_in_batches(
        current, tokenizer, prompts, cfg.k, cfg.max_new_tokens, cfg.temperature, cfg.seed * 1_000 + iteration * 100_003
    )
    rates = win_rates(preference_matrices(judge, samples))
    pairs = select_pairs(samples, rates)
    if not pairs:
        raise UserError(
            f"iteration {iteration}: every prompt's {cfg.k} responses tie under the judge; nothing to train on"
        )
    reference = reference_logprobs(current, tokenizer, pairs)
    policy = copy.deepcopy(current)
    policy.train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    losses = []
    for epoch in range(cfg.epochs):
        batch_order = np.random.default_rng([cfg.seed, iteration, epoch]).permutation(len(pairs))
        for start in range(0, len(pairs), cfg.batch_size):
            index = batch_order[start : start + cfg.batch_size]
            loss = pair_loss(cfg, policy, tokenizer, [pairs[i] for i in index], reference[torch.as_tensor(index)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
    policy.eval()
    logger.scalars(
        {
            f"losses/{cfg.loss}": float(np.mean(losses)),
            "rollout/pairs": float(len(pairs)),
            "rollout/chosen_win_rate": float(np.mean([p[3] for p in pairs])),
            "rollout/rejected_win_rate": float(np.mean([p[4] for p in pairs])),
        },
        iteration,
    )
    return policy


__all__ = ["best_of_k_win_rates", "preference_matrices", "select_pairs", "train_sppo"]

"""P3O (pairwise proximal policy optimisation, Wu et al. 2023) and its PPO baseline on the preference task.

Both start from the SFT policy and are trained against the learned Bradley-Terry reward model
(`llmalign judge --kind reward`), never the hidden judge. One update:

1. draw `prompts_per_update` training prompts and sample 2 responses to each from pi_old (the current
   policy) at `temperature`; score each with the reward model and compute log pi_old and log pi_SFT;
2. **P3O**: each response's reward is r_i = RM(x, y_i) - kl_coef (log pi_old(y_i|x) - log pi_SFT(y_i|x))
   (sequence level); the pair's advantage is A = (r_1 - r_2) / 2 and the loss is `losses.p3o_loss` with
   joint (V2, the default) or separate (V1) clipping of the sequence ratios. No value function.
   **PPO** (RLHF's, as Ziegler/Stiennon and TRL's PPOTrainer shape it): every response token gets the
   reward -kl_coef (log pi_old - log pi_SFT) of that token, the last one adds RM(x, y); a value head (one
   linear layer on the policy's last hidden state, sharing the policy's backbone, zero-initialised, as
   TRL's older `AutoModelForCausalLMWithValueHead`) gives GAE (gamma 1, lambda 0.95) advantages,
   whitened over the rollout; the loss is `losses.ppo_clip_token_loss` + value_coef x the clipped value
   loss. Both methods see the same 2 samples per prompt per update (equal samples).
3. `epochs` passes over the rollout in minibatches of `minibatch` prompts (both responses of a prompt
   together), AdamW (no weight decay, kept across updates), gradient norm clipped.

Every `eval_every` updates and at the end the policy answers held-out prompts (one sample each, at
`temperature`, the same seed every time): `rollout/judge_score` (the hidden judge's mean score),
`rollout/rm_score`, `rollout/kl_to_sft` (mean log pi(y|x) - log pi_SFT(y|x) over the samples, a
Monte-Carlo KL(pi || pi_SFT)), `rollout/win_rate_vs_sft`: the points of a KL-reward frontier.

The run checkpoints every `checkpoint_every` updates and at the end (policy as safetensors, optimiser and
value head in the trainer state); `--resume` ends with the weights of an uninterrupted run: each update's
prompts and sampling seed are drawn from (seed, update), each epoch's minibatch order from
(seed, update, epoch). Run it with `llmalign p3o --sft-model ... --reward-model ... [--method ppo]`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save
from torch import nn
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from llmalign.checkpoint import TrainingCheckpoint, has_checkpoint, load_training_checkpoint, save_training_checkpoint
from llmalign.configs import P3OConfig
from llmalign.evaluate import held_out_prompts, judge_score, win_rate
from llmalign.losses import (
    kl_penalised_reward,
    masked_mean,
    masked_whiten,
    p3o_loss,
    ppo_clip_token_loss,
    sequence_logprob,
    token_logprobs,
)
from llmalign.model import ModelFolderError, load_model, save_model
from llmalign.preference_model import RewardModel, load_judge
from llmalign.preference_task import PreferencePrompt, split_prompts
from llmalign.sequences import SAMPLE_BATCH, Batch, pack, sample_in_batches
from runkit import UserError, prepare_run_dir, write_summary
from runkit.atomic import write_bytes_atomic
from runkit.metrics import RunLogger
from runkit.seeding import restore_rng, seed_everything

MODEL_DIR = "model"
VALUE_HEAD_FILE = "value_head.safetensors"
EVAL_SEED_OFFSET = 7_777


# ------------------------------------------------------------------------------------------- the pieces


@dataclass(frozen=True)
class Rollout:
    """One update's samples, frozen: 2 responses per prompt, prompt i's at rows 2i and 2i + 1.

    Token tensors are `B x T-1`, aligned with input_ids[:, 1:] (`losses.token_logprobs`).
    """

    batch: Batch
    old_logps: torch.Tensor
    """log pi_old of each token (the policy that sampled)."""
    sft_logps: torch.Tensor
    """log pi_SFT of each token."""
    mask: torch.Tensor
    """1 on response tokens."""
    scores: torch.Tensor
    """RM(x, y) per response: `B`."""
    rewards: torch.Tensor
    """P3O's KL-penalised sequence reward per response: `B`."""
    old_values: torch.Tensor
    """PPO: the value head's predictions at sampling time (zeros for P3O)."""
    advantages: torch.Tensor
    """PPO: whitened GAE advantages (zeros for P3O)."""
    returns: torch.Tensor
    """PPO: advantages (before whitening) + old values, the value head's targets (zeros for P3O)."""

    @property
    def pairs(self) -> int:
        """Number of prompts (pairs of responses)."""
        return len(self.batch) // 2


def make_value_head(policy: LlamaForCausalLM) -> nn.Linear:
    """PPO's value head: one zero-initialised linear layer on the policy's last hidden state (V = 0 at first)."""
    head = nn.Linear(int(policy.config.hidden_size), 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def policy_forward(
    model: LlamaForCausalLM, batch: Batch, temperature: float, value_head: nn.Module | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log pi of each token from logits / temperature, value of each state or None): both `B x T-1`.

    The value at position t is V of the state that predicts token t + 1, so it lines up with the log-probs.
    """
    hidden = model.model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
    ).last_hidden_state
    logps = token_logprobs(model.lm_head(hidden) / temperature, batch.input_ids)
    values = value_head(hidden[:, :-1]).squeeze(-1) if value_head is not None else None
    return logps, values


def last_token_mask(mask: torch.Tensor) -> torch.Tensor:
    """1 at each row's last masked position, 0 elsewhere (`B x T`; an all-zero row stays zero)."""
    positions = torch.arange(mask.shape[1]).expand_as(mask)
    last = torch.where(mask > 0, positions, torch.full_like(positions, -1)).max(dim=-1).values
    return ((positions == last.unsqueeze(-1)) & (last >= 0).unsqueeze(-1)).to(mask.dtype)


def token_rewards(
    scores: torch.Tensor, old_logps: torch.Tensor, sft_logps: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """PPO's per-token reward: -kl_coef (log pi_old - log pi_SFT) on every response token, + RM score on the last."""
    penalty = -kl_coef * (old_logps - sft_logps) * mask
    return penalty + scores.unsqueeze(-1) * last_token_mask(mask)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns (advantages + values) over each row's masked tokens.

    All `B x T`. delta_t = r_t + gamma V_{t+1} - V_t with V = 0 after the last response token;
    A_t = delta_t + gamma lam A_{t+1}. Both outputs are 0 off the mask.
    """
    steps = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(steps - 1, -1, -1):
        next_value = values[:, t + 1] * mask[:, t + 1] if t + 1 < steps else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float
) -> torch.Tensor:
    """PPO's value loss: 1/2 mean over masked tokens of max((V - R)^2, (V_old + clip(V - V_old, +-clip) - R)^2)."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def build_rollout(
    cfg: P3OConfig,
    batch: Batch,
    old_logps: torch.Tensor,
    sft_logps: torch.Tensor,
    old_values: torch.Tensor | None,
    scores: torch.Tensor,
) -> Rollout:
    """The rollout's rewards (and PPO's advantages and returns) from its log-probs, values and RM scores."""
    mask = batch.response_mask[:, 1:]
    rewards = kl_penalised_reward(
        scores, sequence_logprob(old_logps, mask), sequence_logprob(sft_logps, mask), cfg.kl_coef
    )
    zeros = torch.zeros_like(old_logps)
    if cfg.method == "ppo":
        values = (old_values if old_values is not None else zeros) * mask
        per_token = token_rewards(scores, old_logps, sft_logps, mask, cfg.kl_coef)
        advantages, returns = gae(per_token, values, mask, cfg.gamma, cfg.lam)
        advantages = masked_whiten(advantages, mask)
    else:
        values, advantages, returns = zeros, zeros, zeros
    return Rollout(batch, old_logps, sft_logps, mask, scores, rewards, values, advantages, returns)


@torch.no_grad()
def rm_scores(reward_model: RewardModel, prompts: list[str], texts: list[str]) -> torch.Tensor:
    """RM(x, y) for each response, SAMPLE_BATCH at a time: `B`."""
    parts = [
        reward_model.reward(prompts[s : s + SAMPLE_BATCH], texts[s : s + SAMPLE_BATCH])
        for s in range(0, len(prompts), SAMPLE_BATCH)
    ]
    return torch.cat(parts).float()


@torch.no_grad()
def collect_rollout(
    cfg: P3OConfig,
    policy: LlamaForCausalLM,
    value_head: nn.Module | None,
    sft: LlamaForCausalLM,
    reward_model: RewardModel,
    tokenizer: PreTrainedTokenizerFast,
    prompts: list[str],
    seed: int,
) -> Rollout:
    """Sample 2 responses per prompt from the policy (pi_old) and score them: the update's frozen rollout."""
    policy.eval()
    samples = sample_in_batches(policy, tokenizer, prompts, 2, cfg.max_new_tokens, cfg.temperature, seed)
    batch = pack(tokenizer, samples.prompts, samples.response_ids)
    old_logps, old_values = policy_forward(policy, batch, cfg.temperature, value_head)
    sft_logps, _ = policy_forward(sft, batch, cfg.temperature)
    scores = rm_scores(reward_model, samples.prompts, samples.texts)
    return build_rollout(cfg, batch, old_logps, sft_logps, old_values, scores)


def _rows(batch: Batch, rows: torch.Tensor) -> Batch:
    """The rows of a packed batch (its width kept, so log-probs match the rollout's)."""
    return Batch(batch.input_ids[rows], batch.attention_mask[rows], batch.response_mask[rows])


def pair_rows(pairs: torch.Tensor) -> torch.Tensor:
    """Rows 2i, 2i + 1 of each pair i, in pair order."""
    return torch.stack([2 * pairs, 2 * pairs + 1], dim=1).reshape(-1)


def p3o_batch_loss(
    cfg: P3OConfig, policy: LlamaForCausalLM, rollout: Rollout, pairs: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """P3O's loss (mean over the pairs) on the rollout's pairs `pairs`, and figures about it."""
    rows = pair_rows(pairs)
    logps, _ = policy_forward(policy, _rows(rollout.batch, rows), cfg.temperature)
    mask = rollout.mask[rows]
    sequence = sequence_logprob(logps, mask).view(-1, 2)
    old = sequence_logprob(rollout.old_logps[rows], mask).view(-1, 2)
    reward = rollout.rewards[rows].view(-1, 2)
    joint = cfg.clip == "joint"
    losses = p3o_loss(
        sequence[:, 0], sequence[:, 1], old[:, 0], old[:, 1], reward[:, 0], reward[:, 1], cfg.clip_eps, joint
    )
    with torch.no_grad():
        log_rho = sequence - old
        ratio = torch.exp(log_rho[:, 0] - log_rho[:, 1]) if joint else torch.exp(log_rho).reshape(-1)
        figures = {
            "approx_kl": float((-log_rho).mean()),
            "clipfrac": float(((ratio - 1).abs() > cfg.clip_eps).float().mean()),
        }
    return losses.mean(), figures


def ppo_batch_loss(
    cfg: P3OConfig, policy: LlamaForCausalLM, value_head: nn.Module, rollout: Rollout, rows: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's loss on the rollout's rows `rows`: token clip loss + value_coef x clipped value loss; and figures."""
    logps, values = policy_forward(policy, _rows(rollout.batch, rows), cfg.temperature, value_head)
    assert values is not None
    mask, old = rollout.mask[rows], rollout.old_logps[rows]
    policy_loss = ppo_clip_token_loss(logps, old, rollout.advantages[rows], mask, cfg.clip_eps)
    value_loss = clipped_value_loss(values, rollout.old_values[rows], rollout.returns[rows], mask, cfg.value_clip)
    with torch.no_grad():
        figures = {
            "policy_loss": float(policy_loss),
            "value_loss": float(value_loss),
            "approx_kl": float(masked_mean(old - logps, mask)),
            "clipfrac": float(masked_mean(((torch.exp(logps - old) - 1).abs() > cfg.clip_eps).float(), mask)),
        }
    return policy_loss + cfg.value_coef * value_loss, figures


def trainable(policy: LlamaForCausalLM, value_head: nn.Module | None) -> list[nn.Parameter]:
    """The parameters the optimiser steps: the policy's, and the value head's for PPO."""
    return [*policy.parameters(), *(value_head.parameters() if value_head is not None else [])]


def make_optimizer(cfg: P3OConfig, policy: LlamaForCausalLM, value_head: nn.Module | None) -> torch.optim.AdamW:
    """AdamW over the policy (and PPO's value head): constant rate, no weight decay, kept for the whole run."""
    return torch.optim.AdamW(trainable(policy, value_head), lr=cfg.learning_rate, weight_decay=0.0)


def run_update(
    cfg: P3OConfig,
    policy: LlamaForCausalLM,
    value_head: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    update: int,
) -> dict[str, float]:
    """`epochs` passes of minibatch steps over the rollout (orders drawn from seed, update, epoch); mean figures."""
    parameters = trainable(policy, value_head)
    policy.train()
    collected: dict[str, list[float]] = {}
    for epoch in range(cfg.epochs):
        order = np.random.default_rng([cfg.seed, update, epoch]).permutation(rollout.pairs)
        for start in range(0, rollout.pairs, cfg.minibatch):
            pairs = torch.as_tensor(order[start : start + cfg.minibatch])
            if cfg.method == "ppo":
                assert value_head is not None
                loss, figures = ppo_batch_loss(cfg, policy, value_head, rollout, pair_rows(pairs))
            else:
                loss, figures = p3o_batch_loss(cfg, policy, rollout, pairs)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, cfg.max_grad_norm)
            optimizer.step()
            for name, value in {**figures, "loss": loss.item(), "grad_norm": float(grad_norm)}.items():
                collected.setdefault(name, []).append(value)
    policy.eval()
    return {name: float(np.mean(values)) for name, values in collected.items()}


@torch.no_grad()
def evaluate_policy(
    cfg: P3OConfig,
    policy: LlamaForCausalLM,
    sft: LlamaForCausalLM,
    reward_model: RewardModel,
    tokenizer: PreTrainedTokenizerFast,
    prompts: list[str],
    sft_texts: list[str],
) -> dict[str, float]:
    """Held-out figures of the policy's sampled responses: hidden judge, RM, KL to the SFT policy, win rate."""
    policy.eval()
    samples = sample_in_batches(
        policy, tokenizer, prompts, 1, cfg.max_new_tokens, cfg.temperature, cfg.seed + EVAL_SEED_OFFSET
    )
    scores = [judge_score(p, t) for p, t in zip(prompts, samples.texts, strict=True)]
    valid = [s for s in scores if s is not None]
    log_ratios = []
    for s in range(0, len(prompts), SAMPLE_BATCH):
        batch = pack(tokenizer, prompts[s : s + SAMPLE_BATCH], samples.response_ids[s : s + SAMPLE_BATCH])
        mask = batch.response_mask[:, 1:]
        mine, _ = policy_forward(policy, batch, cfg.temperature)
        theirs, _ = policy_forward(sft, batch, cfg.temperature)
        log_ratios.append(sequence_logprob(mine, mask) - sequence_logprob(theirs, mask))
    return {
        "judge_score": float(np.mean(valid)) if valid else float("nan"),
        "scorable_fraction": len(valid) / len(scores),
        "rm_score": float(rm_scores(reward_model, prompts, samples.texts).mean()),
        "kl_to_sft": float(torch.cat(log_ratios).mean()),
        "win_rate_vs_sft": win_rate(prompts, samples.texts, sft_texts),
        "response_words": float(np.mean([len(t.split()) for t in samples.texts])),
    }


def update_prompts(cfg: P3OConfig, train_prompts: list[PreferencePrompt], update: int) -> tuple[list[str], int]:
    """The update's prompts (a permutation of the training prompts, cycled) and sampling seed, from (seed, update)."""
    rng = np.random.default_rng([cfg.seed, update])
    order = rng.permutation(len(train_prompts))
    prompts = [train_prompts[order[i % len(order)]].text for i in range(cfg.prompts_per_update)]
    return prompts, int(rng.integers(2**30))


def load_reward_model(folder: Path) -> RewardModel:
    """The Bradley-Terry reward model in `folder` (UserError for a pairwise judge)."""
    judge = load_judge(folder)
    if not isinstance(judge, RewardModel):
        raise UserError(
            f"{folder} is a {judge.kind} judge; P3O and PPO need a reward one (`llmalign judge --kind reward`)"
        )
    judge.requires_grad_(False)
    return judge


# ------------------------------------------------------------------------------------------- the trainer


def train_p3o(config: P3OConfig) -> dict[str, Any]:
    """Run (or resume) P3O or PPO; returns the summary (also written to the run folder)."""
    cfg = config.resolved()
    if cfg.sft_model is None or cfg.reward_model is None:
        raise UserError(
            "--sft-model and --reward-model are required (see `llmalign sft --task preference`, "
            "`llmalign judge --kind reward`)"
        )
    reward_model = load_reward_model(cfg.reward_model)  # a bad folder fails before the run folder is touched
    sft, tokenizer = load_model(cfg.sft_model)
    run_dir = cfg.run_path
    resumed = prepare_run_dir(run_dir, cfg.resume, run_dir / "checkpoint" / "trainer_state.pt")
    seed_everything(cfg.seed, cfg.torch_deterministic, cfg.torch_threads)
    sft.eval().requires_grad_(False)
    train_prompts, _ = split_prompts()
    eval_prompts = held_out_prompts("preference", cfg.eval_samples, cfg.seed)
    sft_texts = sample_in_batches(
        sft, tokenizer, eval_prompts, 1, cfg.max_new_tokens, cfg.temperature, cfg.seed + EVAL_SEED_OFFSET
    ).texts
    update, history = 0, list[dict[str, float]]()
    checkpoint: TrainingCheckpoint | None = None
    if resumed and has_checkpoint(run_dir):
        checkpoint = load_training_checkpoint(run_dir)
        policy = checkpoint.model
        update, history = int(checkpoint.envelope.state["update"]), list(checkpoint.envelope.state["history"])
    else:
        policy, _ = load_model(cfg.sft_model)
    policy.eval()
    value_head = make_value_head(policy) if cfg.method == "ppo" else None
    optimizer = make_optimizer(cfg, policy, value_head)
    if checkpoint is not None:
        saved = checkpoint.envelope.state
        if value_head is not None:
            if "value_head" not in saved:
                raise ModelFolderError(f"{run_dir}/checkpoint holds no value head: not a PPO run's checkpoint")
            value_head.load_state_dict(saved["value_head"])
        optimizer.load_state_dict(saved["optimizer"])
        if checkpoint.envelope.rng is not None:
            restore_rng(checkpoint.envelope.rng)
    name = f"{cfg.method}-{cfg.clip}" if cfg.method == "p3o" else "ppo"
    logger = RunLogger(
        run_dir, cfg.updates, desc=f"{name} kl{cfg.kl_coef:g}", unit="update", tensorboard=cfg.tensorboard,
        progress=cfg.progress, resume_step=update if resumed else None,
    )  # fmt: skip
    started = time.perf_counter()

    def evaluate(at: int) -> None:
        figures = evaluate_policy(cfg, policy, sft, reward_model, tokenizer, eval_prompts, sft_texts)
        history.append({"update": float(at), **figures})
        logger.scalars({f"rollout/{k}": v for k, v in figures.items()}, at)

    try:
        if update == 0 and not resumed:
            evaluate(0)
        while update < cfg.updates:
            update += 1
            tick = time.perf_counter()
            prompts, sampling_seed = update_prompts(cfg, train_prompts, update)
            rollout = collect_rollout(cfg, policy, value_head, sft, reward_model, tokenizer, prompts, sampling_seed)
            figures = run_update(cfg, policy, value_head, optimizer, rollout, update)
            kl = sequence_logprob(rollout.old_logps - rollout.sft_logps, rollout.mask)
            logger.scalars({f"losses/{k}": v for k, v in figures.items() if k != "grad_norm"}, update)
            logger.scalars(
                {
                    "rollout/train_rm_score": float(rollout.scores.mean()),
                    "rollout/train_kl_to_sft": float(kl.mean()),
                    "rollout/train_reward": float(rollout.rewards.mean()),
                    "rollout/train_response_tokens": float(rollout.mask.sum(dim=-1).mean()),
                    "charts/grad_norm": figures["grad_norm"],
                    "charts/learning_rate": cfg.learning_rate,
                    "charts/update_seconds": time.perf_counter() - tick,
                },
                update,
            )
            if update % cfg.eval_every == 0 or update == cfg.updates:
                evaluate(update)
            logger.advance(1, rm=float(rollout.scores.mean()), kl=float(kl.mean()))
            if update % cfg.checkpoint_every == 0 or update == cfg.updates:
                logger.flush()
                state: dict[str, Any] = {"update": update, "history": history, "optimizer": optimizer.state_dict()}
                if value_head is not None:
                    state["value_head"] = {k: v.detach().clone() for k, v in value_head.state_dict().items()}
                save_training_checkpoint(run_dir, policy, tokenizer, state, cfg)
    finally:
        logger.close()
    model_dir = save_model(policy, tokenizer, run_dir / MODEL_DIR)
    if value_head is not None:
        tensors = {k: v.contiguous() for k, v in value_head.state_dict().items()}
        write_bytes_atomic(run_dir / VALUE_HEAD_FILE, save(tensors))
    summary = {
        "method": cfg.method, "clip": cfg.clip if cfg.method == "p3o" else None, "kl_coef": cfg.kl_coef,
        "seed": cfg.seed, "updates": update, "samples_per_update": 2 * cfg.prompts_per_update, "resumed": resumed,
        "wall_s": time.perf_counter() - started, "model": str(model_dir), "final": history[-1] if history else {},
        "history": history,
    }  # fmt: skip
    write_summary(run_dir, summary)
    return summary


__all__ = [
    "P3OConfig",
    "Rollout",
    "build_rollout",
    "clipped_value_loss",
    "collect_rollout",
    "evaluate_policy",
    "gae",
    "last_token_mask",
    "make_optimizer",
    "make_value_head",
    "p3o_batch_loss",
    "policy_forward",
    "ppo_batch_loss",
    "run_update",
    "token_rewards",
    "train_p3o",
]

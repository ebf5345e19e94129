"""PRIME (implicit process rewards, online) and its outcome-only RLOO baseline, on the arithmetic task.

One step, as the authors' loop runs it (`PRIME-RL/PRIME`, `training/verl`: `ray_trainer.py`, `dp_prime.py`,
`core_algos.py`; read, not copied):

1. draw training problems and sample K = 4 responses to each from the policy at temperature 1; the
   verifier marks each response right or wrong;
2. keep only the prompts whose K responses are right 20 % to 80 % of the time (1 to 3 of 4); draw more
   prompts (up to `sampling_rounds` batches) until `prompts_per_step` are kept, surplus dropped;
3. PRIME only: the implicit PRM (a causal LM initialised from the SFT model) scores every token,
   q_t = log pi_prm - log pi_ref (pi_ref: the frozen SFT model), and takes one pass of mini-batch steps on
   BCE(sigmoid(beta_train sum_t q_t), correct). `prm_update` picks which q the advantages use, as the
   authors' ``update`` setting does: ``after`` (default) records each mini-batch's q *before* the PRM's step
   on it; ``before`` lets the PRM take all its steps on the rollout batch first, then scores the whole
   batch again with the updated PRM;
4. advantages (`losses.prime_advantages`): the process rewards divided by the batch's largest |return|,
   leave-one-out baselines for the outcome and for the process rewards, returns-to-go (gamma 1), a 1:1 sum,
   whitened over the batch; RLOO is the same with the process rewards set to 0;
5. one pass of PPO's token-level clipped loss (clip 0.2, no KL, no entropy term) over shuffled mini-batches.

Every step's problems, sampling seed and mini-batch order are drawn from (seed, step), so `--resume` from a
checkpoint ends with the weights of an uninterrupted run. The checkpoint holds the policy (`checkpoint/`,
`llmalign.checkpoint`) and, for PRIME, the PRM in its own model folder `prm_step<N>/` that the policy
checkpoint names; a newer PRM folder is written first and older ones are removed only after the policy
checkpoint that names the new one is in place, so a crash never pairs a policy with the wrong PRM.

Metric names: `losses/policy_loss`, `losses/prm_loss`, `charts/clip_fraction`, `charts/approx_kl`,
`charts/learning_rate`, `rollout/train_accuracy`, `rollout/kept_fraction`, `rollout/prm_ranking_accuracy`,
`rollout/heldout_accuracy` (greedy), `rollout/heldout_accuracy_sampled`, `rollout/heldout_step_accuracy`,
`rollout/sampled_responses` (every response sampled in the step, kept or not), `rollout/kept_rollouts` (those
the step trained on). The summary's `samples` totals the last two over the run (`sampled_responses`,
`trained_rollouts`): what a comparison "at the same number of samples" checks.
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from llmalign.arithmetic_task import ArithmeticProblem, is_correct, sample_problem
from llmalign.checkpoint import (
    checkpoint_folder,
    has_checkpoint,
    load_training_checkpoint,
    save_training_checkpoint,
)
from llmalign.configs import PRIME_UPDATES, PRIMEConfig
from llmalign.evaluate import arithmetic_metrics, held_out_prompts
from llmalign.losses import implicit_prm_loss, implicit_process_rewards, ppo_clip_token_loss, prime_advantages
from llmalign.model import load_model, save_model
from llmalign.sequences import (
    Batch,
    Samples,
    pack,
    prompt_ids,
    response_token_logprobs,
    sample_in_batches,
)
from runkit import UserError, prepare_run_dir, write_summary
from runkit.config import require_config
from runkit.metrics import RunLogger
from runkit.seeding import restore_rng, seed_everything

MODEL_DIR = "model"
PRM_DIR = "prm"
PRM_CHECKPOINT_PREFIX = "prm_step"
GAMMA = 1.0
"""Discount of both returns-to-go (the authors' verifier_gamma and reward_model_gamma)."""
POLICY_GRAD_CLIP = 1.0
PRM_GRAD_CLIP = 10.0
"""Gradient norm clips (the authors' scripts: actor 1.0, PRM 10.0)."""


# ------------------------------------------------------------------------------------------ pure pieces


def group_accuracy(correct: torch.Tensor, k: int) -> torch.Tensor:
    """Mean accuracy of each prompt's K responses: `B` (a prompt's samples adjacent) -> `B / K`."""
    return correct.float().view(-1, k).mean(dim=-1)


def accuracy_filter(correct: torch.Tensor, k: int, lower: float, upper: float) -> torch.Tensor:
    """Which prompts the authors' filter keeps: mean accuracy in [lower, upper] (`B` -> bool `B / K`)."""
    accuracy = group_accuracy(correct, k)
    return (accuracy >= lower - 1e-9) & (accuracy <= upper + 1e-9)


def ranking_accuracy(scores: torch.Tensor, correct: torch.Tensor, k: int) -> float:
    """The authors' `dpo_acc`: within each prompt, how often the higher summed q belongs to the right response.

    scores: `B` (sum_t q_t per response); correct: `B` in {0, 1}. Over each prompt's pairs with different
    outcomes; a prompt with none counts 1/2; the mean over prompts.
    """
    per_prompt = []
    for score, label in zip(scores.view(-1, k), correct.float().view(-1, k), strict=True):
        i, j = torch.triu_indices(k, k, offset=1)
        label_diff, score_diff = label[i] - label[j], score[i] - score[j]
        weight = label_diff.abs()
        if weight.sum() == 0:
            per_prompt.append(0.5)
        else:
            agree = ((score_diff > 0) == (label_diff > 0)).float()
            per_prompt.append(float((agree * weight).sum() / weight.sum()))
    return float(np.mean(per_prompt)) if per_prompt else float("nan")


def select_rows(batch: Batch, rows: torch.Tensor) -> Batch:
    """The rows `rows` of a packed batch (padding columns kept: trailing pads change no response log-prob)."""
    return Batch(batch.input_ids[rows], batch.attention_mask[rows], batch.response_mask[rows])


# ---------------------------------------------------------------------------------------------- updates


def prm_update(
    prm: LlamaForCausalLM,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    ref_logps: torch.Tensor,
    correct: torch.Tensor,
    order: np.ndarray,
    minibatch_size: int,
    beta_train: float,
    mode: str = "after",
) -> tuple[torch.Tensor, list[float]]:
    """One pass of the PRM over `batch` in mini-batches; returns the token rewards q (`B x T-1`) and the losses.

    mode "after" (the authors' ``update: after``): each mini-batch's q is recorded before the PRM's step on
    it. mode "before" (``update: before``): the PRM takes every step first, then q of the whole batch is
    computed afresh with the updated PRM. ref_logps: the frozen reference's response token log-probs
    (`B x T-1`); correct: `B`.
    """
    if mode not in PRIME_UPDATES:
        raise ValueError(f"unknown PRM update mode {mode!r}; expected one of {PRIME_UPDATES}")
    prm.train()
    rewards = torch.zeros_like(ref_logps)
    losses = []
    for start in range(0, len(order), minibatch_size):
        rows = torch.as_tensor(order[start : start + minibatch_size])
        logps, mask = response_token_logprobs(prm, select_rows(batch, rows))
        q = implicit_process_rewards(logps, ref_logps[rows], mask)
        rewards[rows] = q.detach()
        loss = implicit_prm_loss(q, mask, correct[rows], beta_train)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prm.parameters(), PRM_GRAD_CLIP)
        optimizer.step()
        losses.append(loss.item())
    prm.eval()
    if mode == "before":  # score the batch again with the PRM its steps produced
        logps = token_logprobs_of(prm, batch)
        rewards = implicit_process_rewards(logps, ref_logps, batch.response_mask[:, 1:].to(logps.dtype)).detach()
    return rewards, losses


def policy_update(
    policy: LlamaForCausalLM,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    order: np.ndarray,
    minibatch_size: int,
    clip_eps: float,
) -> dict[str, float]:
    """One pass of PPO's token-level clipped loss over `batch` in mini-batches; returns the mean figures."""
    policy.train()
    losses, clipped, kls = [], [], []
    for start in range(0, len(order), minibatch_size):
        rows = torch.as_tensor(order[start : start + minibatch_size])
        logps, mask = response_token_logprobs(policy, select_rows(batch, rows))
        loss = ppo_clip_token_loss(logps, old_logps[rows], advantages[rows], mask, clip_eps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), POLICY_GRAD_CLIP)
        optimizer.step()
        with torch.no_grad():
            log_ratio = logps - old_logps[rows]
            outside = ((log_ratio.exp() - 1.0).abs() > clip_eps).float()
            tokens = mask.sum().clamp_min(1.0)
            clipped.append(float((outside * mask).sum() / tokens))
            kls.append(float((-log_ratio * mask).sum() / tokens))
        losses.append(loss.item())
    policy.eval()
    return {"policy_loss": float(np.mean(losses)), "clip_fraction": float(np.mean(clipped)),
            "approx_kl": float(np.mean(kls))}  # fmt: skip


@torch.no_grad()
def token_logprobs_of(model: LlamaForCausalLM, batch: Batch, chunk: int = 64) -> torch.Tensor:
    """Response token log-probs of `batch` under `model` (`B x T-1`), without gradients, `chunk` rows at a time."""
    model.eval()
    parts = [
        response_token_logprobs(model, select_rows(batch, torch.arange(s, min(s + chunk, len(batch)))))[0]
        for s in range(0, len(batch), chunk)
    ]
    return torch.cat(parts)


# ---------------------------------------------------------------------------------------------- rollouts


@dataclass(frozen=True)
class Rollouts:
    """A step's kept rollouts (a prompt's K responses adjacent) and what the sampling saw."""

    samples: Samples
    correct: torch.Tensor
    """`B` in {0, 1}: the verifier's outcome."""
    sampled_accuracy: float
    """Accuracy over every sampled response (kept or not)."""
    kept_fraction: float
    """Fraction of the sampled prompts the filter kept."""
    sampled_responses: int = 0
    """Responses sampled in the step (every round's, kept or not)."""


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of a step's problems and sampling seeds (a function of seed and step only)."""
    return np.random.default_rng([seed, step])


def collect_rollouts(
    cfg: PRIMEConfig, policy: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, step: int
) -> Rollouts:
    """Sample, verify and filter until `prompts_per_step` prompts are kept or `sampling_rounds` are spent."""
    rng = step_rng(cfg.seed, step)
    kept_prompts: list[str] = []
    kept_ids: list[list[int]] = []
    kept_texts: list[str] = []
    kept_correct: list[float] = []
    right = total = groups = kept_groups = 0
    for _round in range(cfg.sampling_rounds):
        problems = [sample_problem(rng, held_out=False) for _ in range(cfg.prompts_per_step)]
        seed = int(rng.integers(2**31 - 1))
        samples = sample_in_batches(
            policy, tokenizer, [p.text for p in problems], cfg.k, cfg.max_new_tokens, cfg.temperature, seed
        )
        correct = torch.tensor([float(is_correct(problems[i // cfg.k], text)) for i, text in enumerate(samples.texts)])
        keep = accuracy_filter(correct, cfg.k, cfg.accuracy_lower, cfg.accuracy_upper)
        right, total = right + int(correct.sum()), total + len(correct)
        groups, kept_groups = groups + len(problems), kept_groups + int(keep.sum())
        for g in torch.nonzero(keep).flatten().tolist():
            if len(kept_prompts) // cfg.k >= cfg.prompts_per_step:
                break  # surplus prompts are dropped (the authors buffer them)
            rows = range(g * cfg.k, (g + 1) * cfg.k)
            kept_prompts += [samples.prompts[r] for r in rows]
            kept_ids += [samples.response_ids[r] for r in rows]
            kept_texts += [samples.texts[r] for r in rows]
            kept_correct += [float(correct[r]) for r in rows]
        if len(kept_prompts) // cfg.k >= cfg.prompts_per_step:
            break
    return Rollouts(
        Samples(kept_prompts, kept_ids, kept_texts, cfg.k),
        torch.tensor(kept_correct),
        right / total,
        kept_groups / groups,
        total,
    )


# ------------------------------------------------------------------------------------------------ models


@dataclass
class Models:
    """What the loop trains and reads: the policy, and for PRIME the PRM and the frozen reference."""

    policy: LlamaForCausalLM
    policy_optimizer: torch.optim.Optimizer
    prm: LlamaForCausalLM | None
    prm_optimizer: torch.optim.Optimizer | None
    reference: LlamaForCausalLM | None


def make_models(
    cfg: PRIMEConfig, policy: LlamaForCausalLM, prm: LlamaForCausalLM | None, reference: LlamaForCausalLM | None
) -> Models:
    """Models with fresh AdamW optimisers (weight decay 0; constant learning rates)."""
    if reference is not None:
        reference.eval().requires_grad_(False)
    policy_optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    prm_optimizer = None
    if prm is not None:
        prm_optimizer = torch.optim.AdamW(prm.parameters(), lr=cfg.prm_learning_rate, weight_decay=0.0)
    return Models(policy, policy_optimizer, prm, prm_optimizer, reference)


def train_step(cfg: PRIMEConfig, models: Models, tokenizer: PreTrainedTokenizerFast, step: int) -> dict[str, float]:
    """One rollout-and-update step (see the module's description); returns the step's figures."""
    rollouts = collect_rollouts(cfg, models.policy, tokenizer, step)
    figures = {
        "rollout/train_accuracy": rollouts.sampled_accuracy,
        "rollout/kept_fraction": rollouts.kept_fraction,
        "rollout/sampled_responses": float(rollouts.sampled_responses),
    }
    if not rollouts.samples.texts:
        return figures  # no prompt passed the filter: nothing to learn from this step
    return {**figures, **update_on(cfg, models, tokenizer, rollouts, step)}


def update_on(
    cfg: PRIMEConfig, models: Models, tokenizer: PreTrainedTokenizerFast, rollouts: Rollouts, step: int
) -> dict[str, float]:
    """The PRM's pass (PRIME), the advantages and the policy's pass on a step's kept rollouts."""
    samples = rollouts.samples
    batch = pack(tokenizer, samples.prompts, samples.response_ids)
    old_logps = token_logprobs_of(models.policy, batch)
    mask = batch.response_mask[:, 1:]
    order_rng = np.random.default_rng([cfg.seed, step, 1])
    figures: dict[str, float] = {}
    if cfg.method == "prime":
        if models.prm is None or models.prm_optimizer is None or models.reference is None:
            raise ValueError("PRIME needs a PRM, its optimiser and the reference model")
        ref_logps = token_logprobs_of(models.reference, batch)
        process, prm_losses = prm_update(
            models.prm, models.prm_optimizer, batch, ref_logps, rollouts.correct,
            order_rng.permutation(len(batch)), cfg.minibatch_size, cfg.beta_train, cfg.prm_update,
        )  # fmt: skip
        figures["losses/prm_loss"] = float(np.mean(prm_losses))
        figures["rollout/prm_ranking_accuracy"] = ranking_accuracy(process.sum(dim=-1), rollouts.correct, cfg.k)
    else:
        process = torch.zeros_like(old_logps)
    advantages = prime_advantages(rollouts.correct, process, mask, cfg.k, GAMMA)
    stats = policy_update(
        models.policy, models.policy_optimizer, batch, old_logps, advantages,
        order_rng.permutation(len(batch)), cfg.minibatch_size, cfg.clip_eps,
    )  # fmt: skip
    figures["losses/policy_loss"] = stats["policy_loss"]
    figures["charts/clip_fraction"] = stats["clip_fraction"]
    figures["charts/approx_kl"] = stats["approx_kl"]
    figures["rollout/kept_rollouts"] = float(len(batch))
    return figures


# -------------------------------------------------------------------------------------------- checkpoints


def prm_checkpoint_dir(run_dir: Path, step: int) -> Path:
    """The PRM folder a policy checkpoint of `step` names."""
    return Path(run_dir) / f"{PRM_CHECKPOINT_PREFIX}{step:06d}"


def save_checkpoint(
    run_dir: Path, cfg: PRIMEConfig, models: Models, tokenizer: PreTrainedTokenizerFast, state: dict[str, Any]
) -> None:
    """The PRM's folder first (written aside, renamed in), then the policy checkpoint naming it, then cleanup."""
    step = int(state["step"])
    prm_folder: Path | None = None
    if models.prm is not None and models.prm_optimizer is not None:
        prm_folder = prm_checkpoint_dir(run_dir, step)
        staging = prm_folder.with_name(prm_folder.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        save_model(models.prm, tokenizer, staging)
        shutil.rmtree(prm_folder, ignore_errors=True)
        staging.rename(prm_folder)
        state = {**state, "prm_folder": prm_folder.name, "prm_optimizer": models.prm_optimizer.state_dict()}
    state = {**state, "optimizer": models.policy_optimizer.state_dict()}
    save_training_checkpoint(run_dir, models.policy, tokenizer, state, cfg)
    for stale in Path(run_dir).glob(f"{PRM_CHECKPOINT_PREFIX}*"):
        if prm_folder is None or stale.name != prm_folder.name:
            shutil.rmtree(stale, ignore_errors=True)


def load_checkpoint(run_dir: Path, cfg: PRIMEConfig) -> tuple[Models, dict[str, Any]]:
    """The models, optimisers and trainer state of the run's checkpoint (random generators restored)."""
    checkpoint = load_training_checkpoint(run_dir)
    state = checkpoint.envelope.state
    prm = reference = None
    if cfg.method == "prime":
        if "prm_folder" not in state:
            raise UserError(f"{checkpoint_folder(run_dir)} holds no PRM: was it written by an rloo run?")
        prm, _ = load_model(Path(run_dir) / str(state["prm_folder"]))
        reference, _ = load_model(require_sft(cfg))
    models = make_models(cfg, checkpoint.model, prm, reference)
    models.policy_optimizer.load_state_dict(state["optimizer"])
    if models.prm_optimizer is not None:
        models.prm_optimizer.load_state_dict(state["prm_optimizer"])
    if checkpoint.envelope.rng is not None:
        restore_rng(checkpoint.envelope.rng)
    return models, dict(state)


def require_sft(cfg: PRIMEConfig) -> Path:
    """The SFT model folder (a UserError when none was given)."""
    if cfg.sft_model is None:
        raise UserError("--sft-model is required (see `llmalign sft --task arithmetic`)")
    return cfg.sft_model


# ------------------------------------------------------------------------------------------------- loop


def evaluate(cfg: PRIMEConfig, policy: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast) -> dict[str, float]:
    """Held-out accuracy, greedy and sampled, and step accuracy (the same problems and seed as the SFT run's)."""
    prompts = held_out_prompts("arithmetic", cfg.eval_problems, seed=cfg.seed)
    figures = arithmetic_metrics(policy, tokenizer, prompts, seed=cfg.seed)
    return {
        "rollout/heldout_accuracy": figures["accuracy_greedy"],
        "rollout/heldout_accuracy_sampled": figures["accuracy_sampled"],
        "rollout/heldout_step_accuracy": figures["step_accuracy_greedy"],
    }


def train_prime(config: PRIMEConfig) -> dict[str, Any]:
    """Run (or resume) PRIME or RLOO; returns the summary (also written to the run folder)."""
    cfg = config.resolved()
    sft_path = require_sft(cfg)
    run_dir = cfg.run_path
    resumed = prepare_run_dir(run_dir, cfg.resume, run_dir / "checkpoint" / "trainer_state.pt")
    seed_everything(cfg.seed, cfg.torch_deterministic, cfg.torch_threads)
    history: list[dict[str, float]] = []
    samples = {"sampled_responses": 0, "trained_rollouts": 0}
    step = 0
    if resumed and has_checkpoint(run_dir):
        models, state = load_checkpoint(run_dir, cfg)
        _, tokenizer = load_model(sft_path)
        step, history = int(state["step"]), list(state["history"])
        samples = {**samples, **state.get("samples", {})}
    else:
        policy, tokenizer = load_model(sft_path)
        prm = reference = None
        if cfg.method == "prime":
            prm, reference = copy.deepcopy(policy), copy.deepcopy(policy)
        models = make_models(cfg, policy, prm, reference)
    models.policy.eval()
    _check_lengths(cfg, models.policy, tokenizer)
    logger = RunLogger(
        run_dir, cfg.steps, desc=f"{cfg.method} steps", tensorboard=cfg.tensorboard, progress=cfg.progress,
        resume_step=step if resumed else None,
    )  # fmt: skip
    started = time.perf_counter()

    def evaluate_now(at: int) -> None:
        if cfg.eval_problems:
            figures = evaluate(cfg, models.policy, tokenizer)
            history.append({"step": float(at), **{k.removeprefix("rollout/"): v for k, v in figures.items()}})
            logger.scalars(figures, at)

    try:
        if step == 0 and not resumed:
            evaluate_now(0)
            logger.scalars({"charts/learning_rate": cfg.learning_rate}, 0)
        while step < cfg.steps:
            step += 1
            tick = time.perf_counter()
            figures = train_step(cfg, models, tokenizer, step)
            figures["charts/step_seconds"] = time.perf_counter() - tick
            samples["sampled_responses"] += int(figures["rollout/sampled_responses"])
            samples["trained_rollouts"] += int(figures.get("rollout/kept_rollouts", 0))
            logger.scalars(figures, step)
            if (cfg.eval_every_steps and step % cfg.eval_every_steps == 0) or step == cfg.steps:
                evaluate_now(step)
            logger.advance(1, acc=figures["rollout/train_accuracy"], kept=figures["rollout/kept_fraction"])
            every = cfg.checkpoint_every_steps
            if (every and step % every == 0) or step == cfg.steps:
                logger.flush()
                save_checkpoint(
                    run_dir, cfg, models, tokenizer, {"step": step, "history": history, "samples": dict(samples)}
                )
    finally:
        logger.close()
    model_dir = save_model(models.policy, tokenizer, run_dir / MODEL_DIR)
    prm_dir = save_model(models.prm, tokenizer, run_dir / PRM_DIR) if models.prm is not None else None
    summary = {
        "algo": "prime", "method": cfg.method, "prm_update": cfg.prm_update if cfg.method == "prime" else None,
        "seed": cfg.seed, "steps": step, "samples": dict(samples), "resumed": resumed,
        "wall_s": time.perf_counter() - started, "model": str(model_dir),
        "prm": str(prm_dir) if prm_dir is not None else None, "sft_model": str(sft_path),
        "initial": history[0] if history and history[0]["step"] == 0 else None,
        "final": history[-1] if history else None, "history": history,
    }  # fmt: skip
    write_summary(run_dir, summary)
    return summary


def _check_lengths(cfg: PRIMEConfig, policy: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast) -> None:
    """Refuse a max_new_tokens that would run past the model's positions on the longest prompt."""
    longest_prompt = len(prompt_ids(tokenizer, ArithmeticProblem((49, 49, 49, 49), ("+", "+", "+")).text))
    limit = int(policy.config.max_position_embeddings)
    require_config(
        longest_prompt + cfg.max_new_tokens <= limit,
        "max_new_tokens",
        cfg.max_new_tokens,
        f"<= {limit - longest_prompt} (the model reads {limit} positions)",
    )


__all__ = [
    "Models",
    "Rollouts",
    "accuracy_filter",
    "collect_rollouts",
    "group_accuracy",
    "make_models",
    "policy_update",
    "prm_update",
    "ranking_accuracy",
    "token_logprobs_of",
    "train_prime",
    "train_step",
    "update_on",
]

"""Prompt-response sequences as tensors: sampling responses, packing pairs, scoring them under a model.

A sequence is ``<bos> prompt <sep> response <eos>`` (the tokenizer module's layout). Sampling left-pads
the prompts (generation continues from the right edge); training batches are right-padded, with a
`response_mask` that is 1 on the response's tokens and its ``<eos>``. Both give each real token the
same position, so a response's log-probability is the same whichever way it was batched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from llmalign.losses import token_logprobs
from llmalign.tokenizer import decode_response


@dataclass(frozen=True)
class Batch:
    """Right-padded sequences: input_ids, attention_mask and response_mask, each `B x T`."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass(frozen=True)
class Samples:
    """K sampled responses per prompt, a prompt's samples adjacent (prompt i's k-th at i * K + k)."""

    prompts: list[str]
    """One per response (each prompt repeated K times)."""
    response_ids: list[list[int]]
    """Generated ids, up to and including ``<eos>`` (without it when the length limit cut the response)."""
    texts: list[str]
    """Decoded responses."""
    k: int


def prompt_ids(tokenizer: PreTrainedTokenizerFast, prompt: str) -> list[int]:
    """``<bos> prompt <sep>``."""
    return [tokenizer.bos_token_id, *tokenizer.encode(prompt, add_special_tokens=False), tokenizer.sep_token_id]


def pack(tokenizer: PreTrainedTokenizerFast, prompts: list[str], responses: list[list[int]]) -> Batch:
    """Right-padded batch of prompt + response ids (responses as generated or encoded, ``<eos>`` included)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts for {len(responses)} responses")
    rows, masks = [], []
    for prompt, response in zip(prompts, responses, strict=True):
        head = prompt_ids(tokenizer, prompt)
        rows.append(head + list(response))
        masks.append([0] * len(head) + [1] * len(response))
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long)
    response_mask = torch.tensor([m + [0] * (width - len(m)) for m in masks], dtype=torch.float32)
    return Batch(input_ids, attention, response_mask)


def encode_responses(tokenizer: PreTrainedTokenizerFast, responses: list[str]) -> list[list[int]]:
    """Response texts as ids ending with ``<eos>`` (what a model should have generated)."""
    return [[*tokenizer.encode(text, add_special_tokens=False), tokenizer.eos_token_id] for text in responses]


def response_token_logprobs(model: LlamaForCausalLM, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(log pi(token) of each response token, mask): both `B x T-1`, aligned with input_ids[:, 1:]."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return token_logprobs(logits, batch.input_ids), batch.response_mask[:, 1:]


@torch.no_grad()
def sample_responses(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    prompts: list[str],
    k: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
) -> Samples:
    """K responses per prompt sampled from `model` at `temperature` (no top-k or top-p), reproducible from `seed`.

    temperature 0 decodes greedily. The special tokens other than ``<eos>`` are never produced.
    """
    repeated = [p for p in prompts for _ in range(k)]
    heads = [prompt_ids(tokenizer, p) for p in repeated]
    width = max(len(h) for h in heads)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(h)) + h for h in heads], dtype=torch.long)
    attention = torch.tensor([[0] * (width - len(h)) + [1] * len(h) for h in heads], dtype=torch.long)
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        output = model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_k=0 if temperature > 0 else None,
            top_p=1.0 if temperature > 0 else None,
            max_new_tokens=max_new_tokens,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
            suppress_tokens=[pad, tokenizer.bos_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id],
        )
    model.train(was_training)
    responses: list[list[int]] = []
    for row in output[:, width:].tolist():
        kept: list[int] = []
        for token in row:
            kept.append(token)
            if token == tokenizer.eos_token_id:
                break
        responses.append(kept)  # padding only ever follows <eos>: the specials are suppressed while sampling
    texts = [decode_response(tokenizer, r) for r in responses]
    return Samples(repeated, responses, texts, k)


SAMPLE_BATCH = 64
"""Prompts sampled together by `sample_in_batches`."""


def sample_in_batches(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    prompts: list[str],
    k: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
) -> Samples:
    """`sample_responses` SAMPLE_BATCH prompts at a time (batch starting at prompt s seeded seed + s), joined."""
    parts = [
        sample_responses(model, tokenizer, prompts[s : s + SAMPLE_BATCH], k, max_new_tokens, temperature, seed + s)
        for s in range(0, len(prompts), SAMPLE_BATCH)
    ]
    return Samples(
        [p for part in parts for p in part.prompts],
        [r for part in parts for r in part.response_ids],
        [t for part in parts for t in part.texts],
        k,
    )


__all__ = [
    "SAMPLE_BATCH",
    "Batch",
    "Samples",
    "encode_responses",
    "pack",
    "prompt_ids",
    "response_token_logprobs",
    "sample_in_batches",
    "sample_responses",
]

"""PRIME and RLOO: the accuracy filter, the advantages, every weight learning, exact resume, the smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import llmalign.prime as prime_module
from llmalign.arithmetic_task import ArithmeticProblem
from llmalign.configs import PRIMEConfig
from llmalign.losses import prime_advantages
from llmalign.model import TinyLMConfig, build_model, load_model, save_model
from llmalign.prime import (
    Rollouts,
    accuracy_filter,
    collect_rollouts,
    make_models,
    prm_update,
    ranking_accuracy,
    token_logprobs_of,
    train_prime,
    update_on,
)
from llmalign.sequences import Samples, encode_responses, pack
from llmalign.tokenizer import train_tokenizer
from runkit import UserError
from runkit.config import SMOKE_ENV
from runkit.metrics import read_scalars
from runkit.testing import assert_every_parameter_changes, assert_resume_matches

SMALL = TinyLMConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64)


def fake_verifier(problem: ArithmeticProblem, response: str) -> bool:
    """Right when the response's length is even: mixed outcomes from an untrained model (a real one gets 0 %)."""
    return len(response) % 2 == 0


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model folder standing in for the SFT model."""
    tokenizer = train_tokenizer()
    return save_model(build_model(SMALL, tokenizer, seed=0), tokenizer, tmp_path_factory.mktemp("sft") / "model")


def _config(sft: Path, run_dir: Path | None = None, **extra: Any) -> PRIMEConfig:
    values: dict[str, Any] = {
        "sft_model": sft, "run_dir": run_dir, "steps": 3, "prompts_per_step": 3, "sampling_rounds": 2,
        "minibatch_size": 6, "eval_every_steps": 2, "eval_problems": 3, "checkpoint_every_steps": 1,
        "max_new_tokens": 12, "learning_rate": 1e-3, "prm_learning_rate": 1e-3, "progress": False,
    }  # fmt: skip
    values.update(extra)
    return PRIMEConfig(**values)


def test_the_filter_drops_all_correct_and_all_wrong_prompts() -> None:
    correct = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0], dtype=torch.float32)
    assert accuracy_filter(correct, 4, 0.2, 0.8).tolist() == [False, False, True, True, True]
    assert accuracy_filter(correct, 4, 0.3, 0.7).tolist() == [False, False, False, False, True]
    assert accuracy_filter(correct, 4, 0.0, 1.0).all()


def test_collected_rollouts_hold_only_mixed_prompts(sft_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prime_module, "is_correct", fake_verifier)
    policy, tokenizer = load_model(sft_model)
    cfg = _config(sft_model, prompts_per_step=6, sampling_rounds=1)
    rollouts = collect_rollouts(cfg, policy, tokenizer, step=1)
    kept = rollouts.correct.view(-1, cfg.k).mean(dim=-1)
    assert 0 < len(kept) < 6  # some prompts were dropped, some kept
    assert ((kept >= 0.25) & (kept <= 0.75)).all()
    assert rollouts.kept_fraction == pytest.approx(len(kept) / 6)
    expected = [float(fake_verifier(ArithmeticProblem.parse(p), t)) for p, t in zip(*_texts(rollouts), strict=True)]
    assert rollouts.correct.tolist() == expected
    again = collect_rollouts(cfg, policy, tokenizer, step=1)  # a step's rollouts depend on (seed, step) only
    assert again.samples.texts == rollouts.samples.texts
    assert collect_rollouts(cfg, policy, tokenizer, step=2).samples.texts != rollouts.samples.texts


def _texts(rollouts: Rollouts) -> tuple[list[str], list[str]]:
    return rollouts.samples.prompts, rollouts.samples.texts


def test_zero_process_rewards_give_outcome_only_rloo_advantages() -> None:
    k = 4
    outcome = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    lengths = [3, 5, 2, 4, 6, 1, 3, 5]
    mask = torch.tensor([[0.0] * 2 + [1.0] * n + [0.0] * (6 - n) for n in lengths])
    advantages = prime_advantages(outcome, torch.zeros_like(mask), mask, k)
    # by hand: r_i - mean of the other K-1 rewards of its prompt, on every token (gamma 1), then whitened
    groups = outcome.view(-1, k)
    loo = (groups - (groups.sum(dim=-1, keepdim=True) - groups) / (k - 1)).flatten()
    tokens = torch.cat([loo[i].repeat(n) for i, n in enumerate(lengths)])
    whitened = (tokens - tokens.mean()) / tokens.std(unbiased=True)
    assert torch.allclose(advantages[mask > 0], whitened, atol=1e-5)
    assert torch.equal(advantages[mask == 0], torch.zeros(int((mask == 0).sum())))
    with_process = prime_advantages(outcome, torch.rand_like(mask), mask, k)
    assert not torch.allclose(with_process, advantages, atol=1e-3)  # process rewards do enter PRIME's


def test_ranking_accuracy_counts_pairs_with_different_outcomes() -> None:
    correct = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    scores = torch.tensor([2.0, 1.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0])
    # prompt 1: pairs (0,1) right, (0,2) wrong, (1,3) right, (2,3) right -> 0.75; prompt 2: no pair -> 0.5
    assert ranking_accuracy(scores, correct, 4) == pytest.approx(0.625)
    assert ranking_accuracy(torch.tensor([3.0, 1.0, 0.0, 2.0]), correct[:4], 4) == pytest.approx(1.0)
    assert ranking_accuracy(torch.tensor([0.0, 1.0, 3.0, -1.0]), correct[:4], 4) == pytest.approx(0.0)


def _rollouts() -> Rollouts:
    tokenizer = train_tokenizer()
    texts = ["1 + 2 = 3 ; answer 3", "1 + 2 = 4 ; answer 4", "1 + 2 = 3 ; answer 4", "answer 3"] * 2
    prompts = ["1 + 2 ="] * 4 + ["5 - 1 ="] * 4
    return Rollouts(
        Samples(prompts, encode_responses(tokenizer, texts), texts, 4),
        torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]),
        0.375,
        1.0,
    )


@pytest.mark.parametrize("method", ["prime", "rloo"])
def test_one_step_moves_every_parameter_of_the_policy_and_the_prm(
    method: str, sft_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy, tokenizer = load_model(sft_model)
    prm = reference = None
    if method == "prime":
        prm, reference = load_model(sft_model)[0], load_model(sft_model)[0]
    cfg = _config(sft_model, method=method, minibatch_size=4)
    models = make_models(cfg, policy, prm, reference)
    seen: dict[str, torch.Tensor] = {}

    def spy(outcome: torch.Tensor, process: torch.Tensor, mask: torch.Tensor, k: int, gamma: float) -> torch.Tensor:
        seen["process"] = process
        return prime_advantages(outcome, process, mask, k, gamma)

    monkeypatch.setattr(prime_module, "prime_advantages", spy)
    prm_before = {n: p.detach().clone() for n, p in prm.named_parameters()} if prm is not None else {}
    reference_before = [p.detach().clone() for p in reference.parameters()] if reference is not None else []
    figures: dict[str, float] = {}

    def step() -> None:
        figures.update(update_on(cfg, models, tokenizer, _rollouts(), step=1))

    assert_every_parameter_changes(policy, step)
    if prm is not None and reference is not None:
        unchanged = [n for n, p in prm.named_parameters() if torch.equal(p.detach(), prm_before[n])]
        assert not unchanged, f"PRM parameters unchanged by a step: {unchanged}"
        assert all(torch.equal(p, q) for p, q in zip(reference.parameters(), reference_before, strict=True))
        # two mini-batches: the second's rewards come from the PRM after its step on the first
        assert seen["process"].abs().sum() > 0
        assert 0.0 <= figures["rollout/prm_ranking_accuracy"] <= 1.0
        assert "losses/prm_loss" in figures
    else:
        assert torch.equal(seen["process"], torch.zeros_like(seen["process"]))  # outcome-only
        assert "losses/prm_loss" not in figures


def test_the_prm_rewards_are_recorded_before_its_step_on_them(sft_model: Path) -> None:
    prm, tokenizer = load_model(sft_model)
    reference, _ = load_model(sft_model)
    rollouts = _rollouts()
    batch = pack(tokenizer, rollouts.samples.prompts, rollouts.samples.response_ids)
    ref_logps = token_logprobs_of(reference, batch)
    optimizer = torch.optim.AdamW(prm.parameters(), lr=1e-3)
    order = np.arange(len(batch))
    # one mini-batch: the PRM still equals its reference when it scores, so every q is 0 ("update: after")
    first, _ = prm_update(prm, optimizer, batch, ref_logps, rollouts.correct, order, len(batch), 0.05)
    assert torch.equal(first, torch.zeros_like(first))
    second, _ = prm_update(prm, optimizer, batch, ref_logps, rollouts.correct, order, len(batch), 0.05)
    assert second.abs().sum() > 0  # the next pass sees the stepped PRM
    scores = second.sum(dim=-1).view(-1, 4)
    labels = rollouts.correct.view(-1, 4).bool()
    assert (scores[labels].mean() > scores[~labels].mean()).item()  # its step raised the right responses' q


def _prm_pass(sft_model: Path, mode: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fresh PRM's pass over the test rollouts in two mini-batches: (recorded q, q of the PRM before any step,
    q of a fresh forward of the PRM after the pass)."""
    prm, tokenizer = load_model(sft_model)
    reference, _ = load_model(sft_model)
    with torch.no_grad():  # move the PRM off its reference, so its q is not 0 before the pass
        for parameter in prm.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)))
    rollouts = _rollouts()
    batch = pack(tokenizer, rollouts.samples.prompts, rollouts.samples.response_ids)
    ref_logps = token_logprobs_of(reference, batch)
    mask = batch.response_mask[:, 1:]
    start = (token_logprobs_of(prm, batch) - ref_logps) * mask
    optimizer = torch.optim.AdamW(prm.parameters(), lr=1e-2)
    order = np.array([3, 0, 6, 1, 7, 2, 5, 4])
    recorded, losses = prm_update(prm, optimizer, batch, ref_logps, rollouts.correct, order, 4, 0.05, mode)
    assert len(losses) == 2
    return recorded, start, (token_logprobs_of(prm, batch) - ref_logps) * mask


def test_with_update_before_the_advantages_read_the_prm_after_all_its_steps(sft_model: Path) -> None:
    recorded, start, end = _prm_pass(sft_model, "before")
    assert not torch.allclose(start, end, atol=1e-4)  # the steps did move the PRM
    torch.testing.assert_close(recorded, end, rtol=0, atol=1e-6)  # a fresh forward of the updated PRM
    assert recorded.requires_grad is False


def test_with_update_after_each_minibatch_is_read_before_the_prm_steps_on_it(sft_model: Path) -> None:
    recorded, start, end = _prm_pass(sft_model, "after")
    first = torch.tensor([3, 0, 6, 1])  # the first mini-batch: scored by the PRM before any step
    torch.testing.assert_close(recorded[first], start[first], rtol=0, atol=1e-6)
    second = torch.tensor([7, 2, 5, 4])  # the second: after the first step only, so neither the start nor the end
    assert not torch.allclose(recorded[second], start[second], atol=1e-4)
    assert not torch.allclose(recorded[second], end[second], atol=1e-4)


def test_the_prm_update_mode_is_checked(sft_model: Path) -> None:
    with pytest.raises(ValueError, match="prm_update"):
        PRIMEConfig(prm_update="during")
    with pytest.raises(ValueError, match="PRM update mode"):
        _prm_pass(sft_model, "during")


@pytest.mark.parametrize("mode", ["after", "before"])
def test_a_step_feeds_the_configured_prm_scores_to_the_advantages(
    mode: str, sft_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy, tokenizer = load_model(sft_model)
    prm, reference = load_model(sft_model)[0], load_model(sft_model)[0]
    cfg = _config(sft_model, minibatch_size=8, prm_update=mode)  # one mini-batch
    models = make_models(cfg, policy, prm, reference)
    seen: dict[str, torch.Tensor] = {}

    def spy(outcome: torch.Tensor, process: torch.Tensor, mask: torch.Tensor, k: int, gamma: float) -> torch.Tensor:
        seen["process"] = process
        return prime_advantages(outcome, process, mask, k, gamma)

    monkeypatch.setattr(prime_module, "prime_advantages", spy)
    update_on(cfg, models, tokenizer, _rollouts(), step=1)
    # one mini-batch and a PRM equal to its reference: q is 0 before its step, not after it
    assert (seen["process"].abs().sum() > 0) == (mode == "before")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(folder)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("method", "mode"), [("prime", "after"), ("prime", "before"), ("rloo", "after")])
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(
    method: str, mode: str, tmp_path: Path, sft_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prime_module, "is_correct", fake_verifier)
    folders = ["model", "prm"] if method == "prime" else ["model"]
    counts: dict[str, Any] = {}

    def whole() -> dict[str, torch.Tensor]:
        summary = train_prime(_config(sft_model, tmp_path / "whole", method=method, prm_update=mode))
        assert [h["step"] for h in summary["history"]] == [0.0, 2.0, 3.0]
        counts["whole"] = summary["samples"]
        return {f"{f}.{k}": v for f in folders for k, v in _weights(tmp_path / "whole" / f).items()}

    def interrupted_then_resumed() -> dict[str, torch.Tensor]:
        save = prime_module.save_checkpoint
        calls: list[int] = []

        def save_then_crash(*args: Any, **kwargs: Any) -> None:
            save(*args, **kwargs)
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt  # killed right after step 2's checkpoint

        with monkeypatch.context() as patch:
            patch.setattr(prime_module, "save_checkpoint", save_then_crash)
            with pytest.raises(KeyboardInterrupt):
                train_prime(_config(sft_model, tmp_path / "cut", method=method, prm_update=mode))
        prm_folders = sorted(p.name for p in (tmp_path / "cut").glob("prm_step*"))
        assert prm_folders == (["prm_step000002"] if method == "prime" else [])
        summary = train_prime(_config(sft_model, tmp_path / "cut", method=method, prm_update=mode, resume=True))
        assert summary["resumed"]
        counts["cut"] = summary["samples"]
        assert [h["step"] for h in summary["history"]] == [0.0, 2.0, 3.0]
        return {f"{f}.{k}": v for f in folders for k, v in _weights(tmp_path / "cut" / f).items()}

    assert_resume_matches(whole, interrupted_then_resumed)
    assert counts["cut"] == counts["whole"]  # the sample counts carry over the resume too
    scalars_whole = read_scalars(tmp_path / "whole")
    assert counts["whole"]["sampled_responses"] == sum(v for _, v in scalars_whole["rollout/sampled_responses"])
    assert counts["whole"]["trained_rollouts"] == sum(v for _, v in scalars_whole.get("rollout/kept_rollouts", []))
    assert counts["whole"]["sampled_responses"] >= 3 * 3 * 4  # 3 steps of >= one round of 3 prompts x K = 4
    trained, start = _weights(tmp_path / "whole" / "model"), _weights(sft_model)
    assert any(not torch.equal(trained[k], start[k]) for k in start)  # the steps changed the policy
    if method == "prime":
        prm = _weights(tmp_path / "whole" / "prm")
        assert any(not torch.equal(prm[k], start[k]) for k in start)
        assert not any(p.name.endswith(".new") for p in (tmp_path / "whole").iterdir())
    scalars = read_scalars(tmp_path / "cut")
    assert [s for s, _ in scalars["rollout/train_accuracy"]] == [1, 2, 3]  # the resumed log reads as one run


@pytest.mark.slow
@pytest.mark.parametrize("method", ["prime", "rloo"])
def test_the_smoke_run_ends_to_end_from_the_command_line(method: str, tmp_path: Path, sft_model: Path) -> None:
    run_dir = tmp_path / method
    done = subprocess.run(
        [sys.executable, "-m", "llmalign.cli", "prime", "--sft-model", str(sft_model), "--method", method,
         "--run-dir", str(run_dir), "--no-progress"],
        env={**_environment(), SMOKE_ENV: "1"}, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["method"] == method
    assert summary["steps"] == 2
    assert [h["step"] for h in summary["history"]] == [0.0, 1.0, 2.0]
    assert all(0.0 <= h["heldout_accuracy"] <= 1.0 for h in summary["history"])
    assert (run_dir / "model" / "model.safetensors").is_file()
    assert (run_dir / "prm" / "model.safetensors").is_file() == (method == "prime")
    assert len(list(run_dir.glob("prm_step*"))) == (1 if method == "prime" else 0)
    names = set(read_scalars(run_dir))
    assert {"rollout/heldout_accuracy", "rollout/heldout_accuracy_sampled", "rollout/train_accuracy",
            "rollout/kept_fraction"} <= names  # fmt: skip
    assert all(n.startswith(("losses/", "rollout/", "charts/")) for n in names)
    again = subprocess.run(
        [sys.executable, "-m", "llmalign.cli", "prime", "--sft-model", str(sft_model), "--run-dir", str(run_dir)],
        env={**_environment(), SMOKE_ENV: "1"}, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert again.returncode == 2
    assert "holds an earlier run" in again.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "llmalign.cli", "prime", "--run-dir", str(tmp_path / "none")],
        env=_environment(), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "--sft-model is required" in missing.stderr


def test_a_run_without_an_sft_model_is_refused_before_touching_the_run_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--sft-model is required"):
        train_prime(PRIMEConfig(run_dir=tmp_path / "r", progress=False))
    assert not (tmp_path / "r").exists()


def test_the_config_checks_its_values() -> None:
    with pytest.raises(ValueError, match="method"):
        PRIMEConfig(method="ppo")
    with pytest.raises(ValueError, match="accuracy_lower"):
        PRIMEConfig(accuracy_lower=0.9, accuracy_upper=0.1)
    with pytest.raises(ValueError, match="k"):
        PRIMEConfig(k=1)
    assert PRIMEConfig(method="rloo", seed=3).resolved().run_path == Path("runs/llmalign/rloo/seed3")
    smoke = PRIMEConfig(smoke=True).resolved()
    assert smoke.steps == 2
    assert smoke.eval_problems == 4


def _environment() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != SMOKE_ENV}

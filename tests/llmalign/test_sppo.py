"""Self-play iterations: the win-rate matrix, the pairs it picks, every weight learning, resume, the CLI's guards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import llmalign.sppo as sppo_module
from llmalign.configs import JudgeConfig, SFTConfig, SPPOConfig
from llmalign.judge import run_judge
from llmalign.losses import win_rates
from llmalign.model import TinyLMConfig, build_model, load_model
from llmalign.preference_model import PairwisePreferenceModel
from llmalign.sequences import Samples, encode_responses
from llmalign.sft import train_sft
from llmalign.sppo import pair_loss, preference_matrices, select_pairs, train_sppo
from llmalign.tokenizer import train_tokenizer
from runkit.testing import assert_every_parameter_changes, assert_resume_matches, run_console_script

SMALL = TinyLMConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64)
PROMPT = "describe ocean for child with reef"


def _samples(texts: list[str], k: int) -> Samples:
    tokenizer = train_tokenizer()
    return Samples([PROMPT] * len(texts), encode_responses(tokenizer, texts), texts, k)


def test_the_judge_matrix_is_complementary_with_a_half_on_the_diagonal() -> None:
    torch.manual_seed(0)
    judge = PairwisePreferenceModel(SMALL, train_tokenizer()).eval()
    matrices = preference_matrices(judge, _samples(["reef wave", "sand", "reef simply the", "the a", "tide"], k=5))
    assert matrices.shape == (1, 5, 5)
    torch.testing.assert_close(matrices + matrices.transpose(1, 2), torch.ones(1, 5, 5))
    torch.testing.assert_close(torch.diagonal(matrices, dim1=1, dim2=2), torch.full((1, 5), 0.5))


def test_the_best_and_worst_responses_by_win_rate_make_the_pair_and_ties_are_dropped() -> None:
    samples = _samples(["a", "reef", "the", "wave", "sand", "tide"], k=3)
    rates = torch.tensor([[0.5, 0.7, 0.3], [0.5, 0.5, 0.5]])
    (pair,) = select_pairs(samples, rates)
    prompt, chosen, rejected, rate_chosen, rate_rejected = pair
    assert prompt == PROMPT
    assert (chosen, rejected) == (samples.response_ids[1], samples.response_ids[2])
    assert (rate_chosen, rate_rejected) == pytest.approx((0.7, 0.3))
    # win rates as the authors compute them: the row mean, the response itself counted at 1/2
    assert win_rates(torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])).tolist() == [[0.75, 0.25]]


@pytest.mark.parametrize("loss", ["sppo", "dpo", "ipo"])
def test_one_step_of_each_loss_moves_every_parameter(loss: str) -> None:
    tokenizer = train_tokenizer()
    policy = build_model(SMALL, tokenizer, seed=0)
    ids = encode_responses(tokenizer, ["reef wave tide", "sand the"])
    batch = [(PROMPT, ids[0], ids[1], 0.8, 0.2)] * 2
    reference = torch.tensor([[-5.0, -4.0], [-5.0, -4.0]])
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    config = SPPOConfig(loss=loss, sft_model=Path("unused"), judge=Path("unused"))

    def step() -> None:
        optimizer.zero_grad()
        pair_loss(config, policy, tokenizer, batch, reference).backward()
        optimizer.step()

    assert_every_parameter_changes(policy, step)


@pytest.fixture(scope="module")
def starting_point(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A smoke-sized SFT model of the preference task and a pairwise judge."""
    root = tmp_path_factory.mktemp("start")
    train_sft(SFTConfig(task="preference", run_dir=root / "sft", smoke=True, progress=False))
    run_judge(JudgeConfig(kind="pairwise", run_dir=root / "judge", smoke=True, progress=False))
    return root / "sft" / "model", root / "judge" / "judge"


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(folder)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_a_run_resumed_after_an_iteration_ends_with_the_uninterrupted_weights(
    tmp_path: Path, starting_point: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sft_model, judge = starting_point

    def config(name: str, **extra: Any) -> SPPOConfig:
        return SPPOConfig(
            sft_model=sft_model, judge=judge, run_dir=tmp_path / name, smoke=True, progress=False, **extra
        )

    def whole() -> dict[str, torch.Tensor]:
        summary = train_sppo(config("whole"))
        assert [h["iteration"] for h in summary["history"]] == [0.0, 1.0, 2.0]
        return _weights(tmp_path / "whole" / "model")

    def interrupted_then_resumed() -> dict[str, torch.Tensor]:
        save = sppo_module.save_training_checkpoint

        def save_then_crash(*args: Any, **kwargs: Any) -> Path:
            save(*args, **kwargs)
            raise KeyboardInterrupt  # killed right after iteration 1's checkpoint

        with monkeypatch.context() as patch:
            patch.setattr(sppo_module, "save_training_checkpoint", save_then_crash)
            with pytest.raises(KeyboardInterrupt):
                train_sppo(config("cut"))
        summary = train_sppo(config("cut", resume=True))
        assert [h["iteration"] for h in summary["history"]] == [0.0, 1.0, 2.0]
        return _weights(tmp_path / "cut" / "model")

    assert_resume_matches(whole, interrupted_then_resumed)
    trained, start = _weights(tmp_path / "whole" / "model"), _weights(sft_model)
    assert any(not torch.equal(trained[k], start[k]) for k in start)  # the iterations changed the policy


@pytest.mark.slow
def test_the_cli_runs_each_loss_and_refuses_a_reward_judge(tmp_path: Path, starting_point: tuple[Path, Path]) -> None:
    sft_model, judge = starting_point
    for loss in ("sppo", "dpo", "ipo"):
        done = run_console_script(
            "llmalign", ["sppo", "--sft-model", str(sft_model), "--judge", str(judge), "--loss", loss,
                         "--run-dir", str(tmp_path / loss), "--no-progress"],
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        history = json.loads(done.stdout)["history"]
        assert len(history) == 3
        assert all(0.0 <= h["win_rate_vs_sft"] <= 1.0 for h in history)
    reward_dir = tmp_path / "reward"
    run_judge(JudgeConfig(kind="reward", run_dir=reward_dir, smoke=True, progress=False))
    refused = run_console_script(
        "llmalign",
        ["sppo", "--sft-model", str(sft_model), "--judge", str(reward_dir / "judge"), "--run-dir", str(tmp_path / "r")],
    )
    assert refused.returncode == 2
    assert "needs a pairwise one" in refused.stderr
    missing = run_console_script("llmalign", ["sppo", "--run-dir", str(tmp_path / "m")])
    assert missing.returncode == 2
    assert "--sft-model and --judge are required" in missing.stderr

"""P3O and its PPO baseline: PPO's reward, GAE and value pieces by hand, every weight learning, P3O's invariance to a
per-prompt reward shift through the trainer's loss path, exact resume, and a smoke run of the command."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import llmalign.p3o as p3o_module
from llmalign.cli import main
from llmalign.configs import P3OConfig
from llmalign.losses import masked_whiten
from llmalign.model import TinyLMConfig, build_model, load_model, save_model
from llmalign.p3o import (
    Rollout,
    build_rollout,
    clipped_value_loss,
    collect_rollout,
    gae,
    last_token_mask,
    make_optimizer,
    make_value_head,
    p3o_batch_loss,
    run_update,
    token_rewards,
    train_p3o,
)
from llmalign.preference_model import PairwisePreferenceModel, RewardModel, save_judge
from llmalign.preference_task import split_prompts
from llmalign.sequences import Batch
from llmalign.tokenizer import train_tokenizer
from runkit.config import SMOKE_ENV, ConfigValueError
from runkit.testing import assert_every_parameter_changes, assert_resume_matches

SMALL = TinyLMConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64)
UNUSED = Path("unused")


def _config(**extra: Any) -> P3OConfig:
    return P3OConfig(sft_model=UNUSED, reward_model=UNUSED, **extra)


# ----------------------------------------------------------------------------------- PPO's pieces by hand

# Two rows of 4 token positions (aligned with input_ids[:, 1:]): position 0 is the prompt's <sep>; row 0 has 3
# response tokens, row 1 has 2 and one padding position.
MASK = torch.tensor([[0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]])


def test_ppo_token_rewards_put_the_kl_penalty_on_every_token_and_the_score_on_the_last() -> None:
    old = torch.tensor([[-9.0, -1.0, -2.0, -0.5], [-9.0, -0.5, -1.0, -3.0]])
    sft = torch.tensor([[-1.0, -1.2, -1.8, -0.5], [-1.0, -0.7, -1.0, -9.0]])
    rewards = token_rewards(torch.tensor([2.0, -1.0]), old, sft, MASK, kl_coef=0.5)
    expected = torch.tensor([[0.0, -0.1, 0.1, 2.0], [0.0, -0.1, -1.0, 0.0]])
    torch.testing.assert_close(rewards, expected)


def test_gae_with_gamma_one_and_lambda_095_matches_hand_values() -> None:
    rewards = torch.tensor([[0.0, 0.1, -0.2, 1.5], [0.0, 0.3, -1.0, 0.0]])
    values = torch.tensor([[9.0, 0.5, 0.2, -0.3], [7.0, 0.4, 0.1, 5.0]])  # 9, 7, 5: prompt and padding, ignored
    advantages, returns = gae(rewards, values, MASK, gamma=1.0, lam=0.95)
    # row 0: d3 = 1.5 + 0.3 = 1.8; d2 = -0.2 - 0.3 - 0.2 = -0.7; d1 = 0.1 + 0.2 - 0.5 = -0.2
    #        A3 = 1.8, A2 = -0.7 + 0.95 * 1.8 = 1.01, A1 = -0.2 + 0.95 * 1.01 = 0.7595
    # row 1: d2 = -1.0 - 0.1 (V after the last token is 0, not the padding's 5) = -1.1; d1 = 0.3 + 0.1 - 0.4 = 0
    #        A2 = -1.1, A1 = 0 + 0.95 * -1.1 = -1.045
    expected = torch.tensor([[0.0, 0.7595, 1.01, 1.8], [0.0, -1.045, -1.1, 0.0]])
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, torch.tensor([[0.0, 1.2595, 1.21, 1.5], [0.0, -0.645, -1.0, 0.0]]))
    # a discount enters both the bootstrap and the trace: gamma 0.5, lambda 1 on row 1
    discounted, _ = gae(rewards[1:], values[1:], MASK[1:], gamma=0.5, lam=1.0)
    # d2 = -1.1, d1 = 0.3 + 0.5 * 0.1 - 0.4 = -0.05, A1 = -0.05 + 0.5 * -1.1 = -0.6
    torch.testing.assert_close(discounted, torch.tensor([[0.0, -0.6, -1.1, 0.0]]))


def test_the_value_loss_is_clipped_around_the_rollouts_values() -> None:
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    old, new = torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([[0.5, -0.1, 3.0]])
    returns = torch.tensor([[1.0, 1.0, 0.0]])
    # token 1: max((0.5 - 1)^2, (0 + 0.2 - 1)^2) = 0.64 (the clipped one is worse); token 2: (-0.1 - 1)^2 = 1.21
    assert float(clipped_value_loss(new, old, returns, mask, clip=0.2)) == pytest.approx(0.5 * (0.64 + 1.21) / 2)


def test_a_ppo_rollout_whitens_gae_of_its_token_rewards_and_values() -> None:
    old = torch.tensor([[-9.0, -1.0, -2.0, -0.5], [-9.0, -0.5, -1.0, -3.0]])
    sft = torch.tensor([[-1.0, -1.2, -1.8, -0.5], [-1.0, -0.7, -1.0, -9.0]])
    values = torch.tensor([[9.0, 0.5, 0.2, -0.3], [7.0, 0.4, 0.1, 5.0]])
    response_mask = torch.cat([torch.zeros(2, 1), MASK], dim=1)
    batch = Batch(torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long), response_mask)
    scores = torch.tensor([2.0, -1.0])
    rollout = build_rollout(_config(method="ppo", kl_coef=0.5), batch, old, sft, values, scores)
    # token rewards [[0, -0.1, 0.1, 2.0], [0, -0.1, -1.0, 0]]; GAE by hand as above
    # row 0: d = (-0.1 + 0.2 - 0.5, 0.1 - 0.3 - 0.2, 2.0 + 0.3) = (-0.4, -0.4, 2.3)
    #        A3 = 2.3, A2 = -0.4 + 0.95 * 2.3 = 1.785, A1 = -0.4 + 0.95 * 1.785 = 1.29575
    # row 1: d = (-0.1 + 0.1 - 0.4, -1.0 - 0.1) = (-0.4, -1.1); A2 = -1.1, A1 = -0.4 - 1.045 = -1.445
    raw = torch.tensor([[0.0, 1.29575, 1.785, 2.3], [0.0, -1.445, -1.1, 0.0]])
    torch.testing.assert_close(rollout.returns, (raw + values) * MASK)
    torch.testing.assert_close(rollout.advantages, masked_whiten(raw, MASK))
    assert float(rollout.advantages[MASK > 0].mean()) == pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(rollout.old_values, values * MASK)
    # P3O's sequence reward from the same numbers: RM - kl_coef (sum old - sum sft) over the response tokens
    torch.testing.assert_close(rollout.rewards, torch.tensor([2.0 - 0.5 * 0.0, -1.0 - 0.5 * 0.2]))


def test_the_config_checks_its_values_and_names_its_run_folder() -> None:
    with pytest.raises(ConfigValueError, match="method"):
        _config(method="grpo")
    with pytest.raises(ConfigValueError, match="clip"):
        _config(clip="both")
    assert _config(kl_coef=0.05, seed=3).default_run_dir() == Path("runs/llmalign/p3o/kl0.05/seed3")
    assert _config(method="ppo", kl_coef=0.2).default_run_dir() == Path("runs/llmalign/ppo/kl0.2/seed0")
    assert _config(clip="separate").default_run_dir() == Path("runs/llmalign/p3o-separate/kl0.05/seed0")


# ------------------------------------------------------------------------------- rollouts of tiny models


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, nn.Module, RewardModel]:
    """A tokenizer, a random tiny policy (also the SFT model) and a random tiny reward model."""
    tokenizer = train_tokenizer()
    torch.manual_seed(0)
    return tokenizer, build_model(SMALL, tokenizer, seed=0), RewardModel(SMALL, tokenizer).eval()


def _rollout(cfg: P3OConfig, tiny: tuple[Any, Any, RewardModel], policy: Any, head: nn.Module | None) -> Rollout:
    tokenizer, sft, reward_model = tiny
    prompts = [p.text for p in split_prompts()[0][:3]]
    return collect_rollout(cfg, policy, head, sft, reward_model, tokenizer, prompts, seed=5)


@pytest.mark.parametrize(("method", "clip"), [("p3o", "joint"), ("p3o", "separate"), ("ppo", "joint")])
def test_one_update_moves_every_trainable_parameter(method: str, clip: str, tiny: tuple[Any, Any, RewardModel]) -> None:
    cfg = _config(method=method, clip=clip, epochs=1, minibatch=3, learning_rate=1e-3)
    policy = copy.deepcopy(tiny[1])
    head = make_value_head(policy) if method == "ppo" else None
    rollout = _rollout(cfg, tiny, policy, head)
    assert rollout.pairs == 3
    assert len(set(rollout.scores.tolist())) == 6  # distinct rewards: every pair has an advantage
    modules = nn.ModuleDict({"policy": policy, **({"value_head": head} if head is not None else {})})
    optimizer = make_optimizer(cfg, policy, head)  # the trainer's: no weight decay to move a weight without a gradient

    def step() -> None:
        figures = run_update(cfg, policy, head, optimizer, rollout, update=1)
        assert figures["grad_norm"] > 0

    assert_every_parameter_changes(modules, step)


def _gradient(cfg: P3OConfig, policy: Any, rollout: Rollout) -> torch.Tensor:
    policy.zero_grad(set_to_none=True)
    loss, _ = p3o_batch_loss(cfg, policy, rollout, torch.arange(rollout.pairs))
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for p in policy.parameters() if p.grad is not None])


@pytest.mark.parametrize("clip", ["joint", "separate"])
def test_a_per_prompt_reward_shift_leaves_the_p3o_gradient_unchanged(
    clip: str, tiny: tuple[Any, Any, RewardModel]
) -> None:
    cfg = _config(clip=clip, kl_coef=0.3)
    policy = copy.deepcopy(tiny[1])
    rollout = _rollout(cfg, tiny, policy, None)
    # make pi_old differ from the policy, so that the ratios are not 1: in range (pair 0) or past the clip
    offsets = torch.tensor([0.05, -0.05, 0.5, -0.5, -0.4, 0.3]).unsqueeze(-1) * last_token_mask(rollout.mask)
    old_logps = rollout.old_logps + offsets

    def rebuilt(scores: torch.Tensor) -> Rollout:  # the trainer's own path from RM scores to rewards
        return build_rollout(cfg, rollout.batch, old_logps, rollout.sft_logps, None, scores)

    _, figures = p3o_batch_loss(cfg, policy, rebuilt(rollout.scores), torch.arange(rollout.pairs))
    assert 0 < figures["clipfrac"] < 1
    base = _gradient(cfg, policy, rebuilt(rollout.scores))
    assert base.abs().sum() > 0
    shift = torch.tensor([5.0, -3.0, 40.0]).repeat_interleave(2)  # one shift per prompt, both responses
    torch.testing.assert_close(_gradient(cfg, policy, rebuilt(rollout.scores + shift)), base)
    one_sided = torch.tensor([5.0, 0.0, -3.0, 0.0, 40.0, 0.0])  # shifting one response of a pair is not a prompt shift
    assert not torch.allclose(_gradient(cfg, policy, rebuilt(rollout.scores + one_sided)), base)


# ------------------------------------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def starting_point(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random tiny SFT model and reward model, saved as the trainer reads them."""
    root = tmp_path_factory.mktemp("start")
    tokenizer = train_tokenizer()
    save_model(build_model(SMALL, tokenizer, seed=0), tokenizer, root / "sft")
    torch.manual_seed(0)
    save_judge(RewardModel(SMALL, tokenizer), root / "rm", {})
    return root / "sft", root / "rm"


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(run_dir / "model")
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if (run_dir / p3o_module.VALUE_HEAD_FILE).exists():
        weights |= {f"value_head.{k}": v for k, v in load_file(str(run_dir / p3o_module.VALUE_HEAD_FILE)).items()}
    return weights


@pytest.mark.parametrize("method", ["p3o", "ppo"])
def test_a_run_resumed_after_an_update_ends_with_the_uninterrupted_weights(
    method: str, tmp_path: Path, starting_point: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sft_model, reward_model = starting_point

    def config(name: str, **extra: Any) -> P3OConfig:
        return P3OConfig(
            sft_model=sft_model, reward_model=reward_model, method=method, run_dir=tmp_path / name, smoke=True,
            progress=False, learning_rate=1e-2, **extra,
        )  # fmt: skip

    def whole() -> dict[str, torch.Tensor]:
        summary = train_p3o(config("whole"))
        assert [h["update"] for h in summary["history"]] == [0.0, 1.0, 2.0]
        return _final_weights(tmp_path / "whole")

    def interrupted_then_resumed() -> dict[str, torch.Tensor]:
        save = p3o_module.save_training_checkpoint

        def save_then_crash(*args: Any, **kwargs: Any) -> Path:
            save(*args, **kwargs)
            raise KeyboardInterrupt  # killed right after update 1's checkpoint

        with monkeypatch.context() as patch:
            patch.setattr(p3o_module, "save_training_checkpoint", save_then_crash)
            with pytest.raises(KeyboardInterrupt):
                train_p3o(config("cut"))
        summary = train_p3o(config("cut", resume=True))
        assert summary["resumed"]
        assert [h["update"] for h in summary["history"]] == [0.0, 1.0, 2.0]
        return _final_weights(tmp_path / "cut")

    assert_resume_matches(whole, interrupted_then_resumed)
    trained, (start, _) = _final_weights(tmp_path / "whole"), load_model(sft_model)
    assert any(not torch.equal(trained[k], v) for k, v in start.state_dict().items())  # the updates moved the policy


def _command(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, SMOKE_ENV: ""}
    return subprocess.run(
        [sys.executable, "-m", "llmalign.cli", "p3o", *args], cwd=tmp_path, env=environment, capture_output=True,
        text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_the_smoke_command_runs_each_method_and_refuses_a_pairwise_judge(
    tmp_path: Path, starting_point: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sft_model, reward_model = starting_point
    for method, clip in (("ppo", "joint"), ("p3o", "joint"), ("p3o", "separate")):
        run_dir = tmp_path / f"{method}-{clip}"
        args = ["--smoke", "--no-progress", "--method", method, "--clip", clip, "--sft-model", str(sft_model),
                "--reward-model", str(reward_model), "--run-dir", str(run_dir)]  # fmt: skip
        if method == "ppo":  # as a user runs it: a new interpreter
            done = _command(args, tmp_path)
            assert done.returncode == 0, done.stderr[-2000:]
            output = done.stdout
        else:  # the same entry point in this process (a new interpreter costs ~15 s of imports)
            with pytest.raises(SystemExit) as exit_status:
                main(["p3o", *args])
            assert exit_status.value.code == 0
            output = capsys.readouterr().out
        summary = json.loads(output)
        assert summary["updates"] == 2
        assert summary["samples_per_update"] == 8
        assert [h["update"] for h in summary["history"]] == [0.0, 1.0, 2.0]
        assert summary["history"][0]["kl_to_sft"] == pytest.approx(0.0, abs=1e-5)  # the SFT policy itself
        rows = [json.loads(line) for line in (run_dir / "scalars.jsonl").read_text().splitlines()]
        names = {r["name"] for r in rows}
        assert all(n.startswith(("losses/", "rollout/", "charts/")) for n in names)
        assert {"rollout/judge_score", "rollout/rm_score", "rollout/kl_to_sft", "losses/loss"} <= names
        assert ("losses/value_loss" in names) == (method == "ppo")
        assert (run_dir / "checkpoint" / "model.safetensors").is_file()
    save_judge(PairwisePreferenceModel(SMALL, train_tokenizer()), tmp_path / "pairwise", {})
    with pytest.raises(SystemExit) as refused:
        main(["p3o", "--sft-model", str(sft_model), "--reward-model", str(tmp_path / "pairwise"),
                         "--run-dir", str(tmp_path / "r")])  # fmt: skip
    assert refused.value.code == 2
    assert "need a reward one" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before the run folder was made

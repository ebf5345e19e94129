"""Supervised fine-tuning: every weight learns, a resumed run equals an uninterrupted one, the CLI guards the user."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import llmalign.sft as sft_module
from llmalign.configs import SFTConfig
from llmalign.model import TinyLMConfig, build_model, load_model
from llmalign.sequences import encode_responses, pack
from llmalign.sft import learning_rate_at, sft_loss, train_sft
from llmalign.tokenizer import train_tokenizer
from runkit.metrics import read_scalars
from runkit.testing import assert_every_parameter_changes, assert_resume_matches, run_console_script

SMALL = TinyLMConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64)


def _config(run_dir: Path, **overrides: Any) -> SFTConfig:
    values: dict[str, Any] = {
        "run_dir": run_dir, "examples": 48, "epochs": 2, "batch_size": 16, "eval_problems": 2, "model": SMALL,
        "checkpoint_every_steps": 2, "progress": False,
    }  # fmt: skip
    values.update(overrides)
    return SFTConfig(**values)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(run_dir / "model")
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def test_one_step_moves_every_parameter() -> None:
    tokenizer = train_tokenizer()
    model = build_model(SMALL, tokenizer, seed=0)
    batch = pack(tokenizer, ["1 + 2 ="] * 4, encode_responses(tokenizer, ["1 + 2 = 3 ; answer 3"] * 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad()
        sft_loss(model, batch).backward()
        optimizer.step()

    assert_every_parameter_changes(model, step)


def test_the_schedule_warms_up_then_decays_to_a_tenth() -> None:
    assert learning_rate_at(0, 100, 1.0) == pytest.approx(0.2)  # warm-up over 5 steps
    assert learning_rate_at(4, 100, 1.0) == pytest.approx(1.0)
    assert learning_rate_at(99, 100, 1.0) == pytest.approx(0.1, abs=1e-3)
    assert all(learning_rate_at(s + 1, 100, 1.0) <= learning_rate_at(s, 100, 1.0) for s in range(5, 99))


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def whole() -> dict[str, torch.Tensor]:
        train_sft(_config(tmp_path / "whole"))
        return _weights(tmp_path / "whole")

    def interrupted_then_resumed() -> dict[str, torch.Tensor]:
        save = sft_module.save_training_checkpoint
        calls = []

        def save_then_crash(*args: Any, **kwargs: Any) -> Path:
            folder = save(*args, **kwargs)
            calls.append(folder)
            if len(calls) == 2:
                raise KeyboardInterrupt  # killed right after the checkpoint of step 4 of 6
            return folder

        with monkeypatch.context() as patch:
            patch.setattr(sft_module, "save_training_checkpoint", save_then_crash)
            with pytest.raises(KeyboardInterrupt):
                train_sft(_config(tmp_path / "cut"))
        assert not (tmp_path / "cut" / "model").exists()
        summary = train_sft(_config(tmp_path / "cut", resume=True))
        assert summary["resumed"] is True
        assert summary["steps"] == 6
        steps = [step for step, _ in read_scalars(tmp_path / "cut")["losses/sft"]]
        assert steps == [1, 2, 3, 4, 5, 6]  # the log continues without gaps or repeats
        return _weights(tmp_path / "cut")

    assert_resume_matches(whole, interrupted_then_resumed)


@pytest.mark.slow
def test_the_cli_trains_and_a_bad_data_file_changes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = run_console_script("llmalign", ["sft", "--task", "preference", "--run-dir", str(run_dir), "--no-progress"])
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["steps"] == 4  # the smoke sizes: 64 examples in batches of 16, one epoch
    assert 0.0 <= summary["scorable_fraction"] <= 1.0
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "describe ocean for child with reef", "response": "reef"}\n{"prompt": "x"}\n')
    refused = run_console_script(
        "llmalign", ["sft", "--task", "preference", "--run-dir", str(run_dir), "--resume", "--data-file", str(bad)]
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].endswith(f"{bad}:2: missing field 'response'")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before

    again = run_console_script("llmalign", ["sft", "--task", "preference", "--run-dir", str(run_dir)])
    assert again.returncode == 2
    assert "resume" in again.stderr

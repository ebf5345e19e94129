"""`bench/relic.py`: the ReLIC policy acting with its KV cache and training with SDPA against dense attention.

Timings are reported, never held to the targets here (the machines are shared and noisy). What is asserted: the
dense and masked baselines compute the model's own attention (same loss, same outputs), acting cost does not
grow quadratically with the context, the cache's bytes are linear in it, SDPA's peak memory is well below
dense's, dense's measured peak is what the bench predicts for the contexts it skips, and a smoke run never
writes into bench/results/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .script_loader import load_bench_script, run_bench_script

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "relic.py"
COMMITTED = REPO_ROOT / "bench" / "results" / "relic.json"


def _load_script() -> ModuleType:
    return load_bench_script(SCRIPT, "bench_relic")


def _smoke(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", *extra],
        capture_output=True, text=True, timeout=300, env=dict(os.environ), cwd=REPO_ROOT, check=False,
    )  # fmt: skip


def test_dense_and_masked_baselines_compute_the_models_attention() -> None:
    import torch

    bench = _load_script()
    torch.manual_seed(0)
    policy = bench.TransformerPolicy(bench.model_spec(64))
    with torch.no_grad():  # a non-zero sink, so that it takes part
        for layer in policy.layers:
            layer.attention.sink_key.normal_()
            layer.attention.sink_value.normal_()
    inputs = bench.synthetic_inputs(2, 37, torch.Generator().manual_seed(1))
    original = bench.SinkAttention.forward
    logits, values = policy(inputs)
    for kind in ("dense", "sdpa_mask"):
        with bench.attention_kind(kind):
            assert bench.SinkAttention.forward is not original
            other_logits, other_values = policy(inputs)
        assert bench.SinkAttention.forward is original
        torch.testing.assert_close(other_logits, logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(other_values, values, atol=1e-5, rtol=1e-5)


def test_dense_prediction_and_the_largest_context_it_allows_agree() -> None:
    bench = _load_script()
    spec = bench.model_spec(64)
    # 2 layers' softmax weights kept, the gradients of weights and scores, 8 heads, float32; and the mask.
    assert bench.dense_prediction_bytes(16384, spec) == 4 * 16385**2 * 8 * 4 + 16385**2 * 4
    budget = 16 * 1024**3
    largest = bench.largest_dense_context(spec, budget)
    assert bench.dense_prediction_bytes(largest, spec) <= budget < bench.dense_prediction_bytes(largest + 1, spec)
    assert 8192 < largest < 16384


@pytest.mark.bench
def test_smoke_run_reports_acting_and_training_against_dense() -> None:
    committed_before = COMMITTED.stat().st_mtime_ns if COMMITTED.exists() else None
    result = run_bench_script(SCRIPT, "--smoke")
    assert result["smoke"] is True
    assert "bench/relic.py" in result["command"]
    assert "--smoke" in result["command"]
    assert (COMMITTED.stat().st_mtime_ns if COMMITTED.exists() else None) == committed_before

    acting = result["acting"]
    assert set(acting) == {"d64_256", "d64_1024", "d128_1024"}
    for row in acting.values():
        assert 0.0 < row["p50_ms"] <= row["p99_ms"]
        assert row["steps_per_s"] > 0.0
        # keys and values of 2 layers, float32, one slot per step plus the sink
        assert row["cache_bytes_per_step"] == 2 * 2 * row["d_model"] * 4
        assert row["cache_bytes"] == row["cache_bytes_per_step"] * (row["cache_capacity_steps"] + 1)
        assert row["cache_capacity_steps"] >= row["context"] + row["samples"]
    # 4x the context: far below the 16x a quadratic cost would take (a step reads the cache once).
    assert acting["d64_1024"]["p50_ms"] < 8.0 * acting["d64_256"]["p50_ms"]

    training = result["training"]
    assert {"sdpa_d64_1024", "sdpa_d128_1024", "sdpa_mask_d64_1024", "dense_d64_1024"} <= set(training)
    sdpa, dense, masked = training["sdpa_d64_1024"], training["dense_d64_1024"], training["sdpa_mask_d64_1024"]
    for row in (sdpa, dense, masked):
        assert row["fits"] is True
        assert row["time_s"] > 0.0
        assert row["peak_rss_growth_mib"] > 0.0
    # the same inputs and weights through three attentions: the same loss
    assert dense["loss"] == pytest.approx(sdpa["loss"], abs=1e-4)
    assert masked["loss"] == pytest.approx(sdpa["loss"], abs=1e-4)
    assert 0.7 < dense["predicted_mib"] / dense["peak_rss_growth_mib"] < 1.3
    comparison = result["comparison"]
    assert comparison["context"] == 1024
    assert comparison["dense_peak_source"] == "measured"
    assert comparison["memory_ratio"] > 3.0, comparison
    assert result["mask_cost"]["sdpa_mask_peak_mib"] == masked["peak_rss_growth_mib"]
    assert result["dense_fit"]["largest_context_fitting_available"] > 1024
    assert set(result["pass"]) == {"act_64k_steps_per_s", "memory_ratio_at_16k"}
    assert result["machine"]["cpu_count"] >= 1


@pytest.mark.bench
def test_a_smoke_run_is_never_written_into_bench_results(tmp_path: Path) -> None:
    completed = _smoke("--out", str(REPO_ROOT / "bench" / "results" / "relic_smoke.json"))
    assert completed.returncode != 0
    assert "smoke" in completed.stderr
    assert not (REPO_ROOT / "bench" / "results" / "relic_smoke.json").exists()

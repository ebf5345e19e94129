"""Benchmark of the ReLIC policy's attention at long contexts: acting with the KV cache, and training with SDPA
against dense (materialised) attention, measured in the same run.

The policy is `relicrl.model.TransformerPolicy` (Sink-KV in every layer), batch 1, blind (vector_dim 2, 5
actions): the authors' tiny policy (d_model 64, 2 layers, 8 heads, MLP 256) and, for scale, d_model 128 (8
heads, MLP 512). Everything runs on ONE torch thread. Each case runs in a fresh process (this script with
`--case`), so that its peak resident memory (`ru_maxrss` after the case minus before it; tracemalloc does not
see torch's allocations) is its own.

* acting: a `ContextCache` already holding `context` steps (keys and values filled with random numbers: the
  cost of a step does not depend on them; capacity reserved so that it does not double while timed), then
  `policy.step` called `--act-steps` times after a few untimed ones: p50/p99 ms, steps/s, the cache's bytes and
  the process's peak RSS growth (cache included). Target: 64k steps of context at >= 20 steps/s on one core.
* training: one forward+backward of the whole context (`policy(inputs)`, a loss on the logits and values,
  `backward()`), after an untimed one at 256 steps: time and peak RSS growth. Three attentions, each a drop-in
  replacement of `SinkAttention.forward` swapped in for the case (model.py is not edited):
  `sdpa` (the model's own: `scaled_dot_product_attention(..., is_causal=True)`, no mask tensor), `sdpa_mask`
  (the same call with an explicit boolean causal mask, built per call as a caller would) and `dense` (scores
  q k^T, an additive causal mask, softmax, @ v: the T x T matrices are materialised). All three place the sink
  as the model does (a first token with a zero query, its output dropped). Dense cases whose predicted peak
  (see `dense_prediction_bytes`) exceeds the memory the machine has free (at most `DENSE_CAP_GIB`) are not
  run: they are reported as "does not fit: needs N GiB". Target: at 16k steps, SDPA's peak memory at least
  10x below dense's.

Usage: ``python bench/relic.py [--smoke] [--out PATH]`` (or ``SMOKE_TEST=1``); smoke takes seconds and writes
no file unless `--out` names one outside bench/results/. A full run writes bench/results/relic.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bench_prelude  # noqa: F401  (first: one BLAS thread, and this folder off sys.path)
import numpy as np
import torch
from torch import Tensor
from torch.nn import functional

from relicrl.model import ContextCache, ModelSpec, SinkAttention, StepInputs, TransformerPolicy
from runkit import write_json_atomic
from runkit.config import smoke_requested

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
DEFAULT_OUT = RESULTS_DIR / "relic.json"

TARGET_ACT_CONTEXT = 65536
TARGET_ACT_STEPS_PER_S = 20.0
TARGET_MEMORY_RATIO = 10.0
COMPARE_CONTEXT = 16384
DENSE_CAP_GIB = 16.0
"""Dense cases are never run past this predicted peak (nor past 80 % of the memory available)."""
WARMUP_TRAIN_CONTEXT = 256
WARMUP_ACT_STEPS = 5
EPISODE_STEPS = 500
"""Episode length of the synthetic inputs (the in-episode position embedding has 512 rows)."""
ATTENTIONS = ("sdpa", "sdpa_mask", "dense")
GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Case:
    """One measurement, run in its own process."""

    kind: str
    """"act" or "train"."""
    context: int
    """Steps in the cache (act) or in the trained sequence (train)."""
    d_model: int = 64
    attention: str = "sdpa"
    """Training only: one of `ATTENTIONS`."""
    steps: int = 0
    """Acting only: timed `policy.step` calls."""
    seed: int = 0

    @property
    def key(self) -> str:
        """Its name in the result's `acting` or `training` table."""
        if self.kind == "act":
            return f"d{self.d_model}_{self.context}"
        return f"{self.attention}_d{self.d_model}_{self.context}"


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run."""

    smoke: bool
    act_contexts: tuple[int, ...]
    """Contexts acted on by the tiny policy."""
    act_contexts_wide: tuple[int, ...]
    """Contexts acted on by the d_model 128 policy."""
    act_steps: int
    train_contexts: tuple[int, ...]
    """SDPA training contexts (tiny policy); the longest is the 'longest context that fits' figure."""
    train_contexts_wide: tuple[int, ...]
    dense_contexts: tuple[int, ...]
    """Dense training contexts tried (those predicted not to fit are reported, not run)."""
    compare_context: int
    """The context of the SDPA-vs-dense figure and of the boolean-mask figure."""
    case_timeout_s: float


def make_config(smoke: bool) -> BenchConfig:
    """Full or smoke-sized configuration."""
    if smoke:
        return BenchConfig(
            smoke=True,
            act_contexts=(256, 1024),
            act_contexts_wide=(1024,),
            act_steps=20,
            train_contexts=(1024,),
            train_contexts_wide=(1024,),
            dense_contexts=(1024,),
            compare_context=1024,
            case_timeout_s=120.0,
        )
    return BenchConfig(
        smoke=False,
        act_contexts=(1024, 8192, 16384, 65536),
        act_contexts_wide=(1024, 8192, 16384, 65536),
        act_steps=200,
        train_contexts=(4096, 8192, 16384, 65536),
        train_contexts_wide=(16384,),
        dense_contexts=(4096, 8192, 16384, 65536),
        compare_context=COMPARE_CONTEXT,
        case_timeout_s=1800.0,
    )


def log(message: str) -> None:
    """Progress to stderr, keeping stdout for the JSON result."""
    print(f"[bench/relic] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ model


def model_spec(d_model: int) -> ModelSpec:
    """The blind policy of the figures: 2 layers, 8 heads, MLP 4 x d_model (the authors' tiny one at 64)."""
    return ModelSpec(vector_dim=2, num_actions=5, d_model=d_model, n_layers=2, n_heads=8, d_mlp=4 * d_model)


def dense_forward(self: SinkAttention, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """`SinkAttention.forward` with materialised attention: scores, additive causal mask, softmax, @ v.

    The sink is placed as the model places it (a first token, zero query, output dropped). The scale is folded
    into q and the mask added in place, so that the T x T tensors are only the ones a dense layer cannot avoid:
    the scores (freed after the softmax) and the softmax weights (kept for backward).
    """
    q, k, v = self._split(x)
    if self.sink:
        q, k, v = self._with_sink(q, k, v)
    n = q.shape[2]
    causal = torch.full((n, n), float("-inf"), dtype=q.dtype, device=q.device).triu_(1)
    scores = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-1, -2)
    scores += causal
    y = scores.softmax(-1) @ v
    if self.sink:
        y = y[:, :, 1:]
    return self._merge(y), k, v


def masked_sdpa_forward(self: SinkAttention, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """`SinkAttention.forward` with an explicit boolean causal mask instead of `is_causal=True`."""
    q, k, v = self._split(x)
    if self.sink:
        q, k, v = self._with_sink(q, k, v)
    n = q.shape[2]
    mask = torch.ones(n, n, dtype=torch.bool, device=q.device).tril_()
    y = functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if self.sink:
        y = y[:, :, 1:]
    return self._merge(y), k, v


_FORWARDS: dict[str, Callable[[SinkAttention, Tensor], tuple[Tensor, Tensor, Tensor]] | None] = {
    "sdpa": None,
    "sdpa_mask": masked_sdpa_forward,
    "dense": dense_forward,
}


@contextmanager
def attention_kind(kind: str) -> Iterator[None]:
    """Every `SinkAttention` runs `kind`'s forward inside the block (`sdpa`: the model's own)."""
    replacement = _FORWARDS[kind]
    original = SinkAttention.forward
    if replacement is not None:
        SinkAttention.forward = replacement  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        SinkAttention.forward = original  # type: ignore[method-assign]


def dense_prediction_bytes(context: int, spec: ModelSpec) -> int:
    """Predicted peak of dense attention's T x T tensors in one forward+backward (T' = context + 1, the sink).

    Forward, each layer keeps its softmax weights for backward (n_layers tensors of T'^2 x heads floats); the
    peak comes in the last layer's backward, which holds besides them the weights' gradient and the scores'
    gradient: (n_layers + 2) x T'^2 x heads x 4 bytes, plus the causal mask (T'^2 floats, shared by the heads).
    The linear-in-T activations (a few MiB at 16k) are left out.
    """
    n = context + 1
    return (spec.n_layers + 2) * n * n * spec.n_heads * 4 + n * n * 4


def largest_dense_context(spec: ModelSpec, budget_bytes: float) -> int:
    """The longest context whose predicted dense peak fits in `budget_bytes`."""
    per_square = (spec.n_layers + 2) * spec.n_heads * 4 + 4
    context = int(math.sqrt(budget_bytes / per_square)) - 1
    while dense_prediction_bytes(context + 1, spec) <= budget_bytes:
        context += 1
    while context > 0 and dense_prediction_bytes(context, spec) > budget_bytes:
        context -= 1
    return context


def synthetic_inputs(batch: int, steps: int, generator: torch.Generator, start: int = 0) -> StepInputs:
    """Random observations, actions and rewards of `steps` steps, episodes of `EPISODE_STEPS` steps."""
    index = torch.arange(start, start + steps).expand(batch, steps)
    episode_step = index.remainder(EPISODE_STEPS)
    first = episode_step == 0
    prev_action = torch.randint(0, 5, (batch, steps), generator=generator)
    return StepInputs(
        vector=torch.randn(batch, steps, 2, generator=generator),
        prev_action=torch.where(first, -1, prev_action),
        prev_reward=torch.randn(batch, steps, generator=generator),
        first=first,
        episode_step=episode_step,
    )


# ------------------------------------------------------------------------------------------------ cases


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def summary_ms(times_s: list[float]) -> dict[str, float | int]:
    """Median, p99 and mean in ms, and steps per second over the timed calls."""
    array = np.asarray(times_s)
    return {
        "p50_ms": float(np.median(array) * 1e3),
        "p99_ms": float(np.percentile(array, 99) * 1e3),
        "mean_ms": float(np.mean(array) * 1e3),
        "steps_per_s": float(array.shape[0] / np.sum(array)),
        "samples": int(array.shape[0]),
    }


def fill_context(policy: TransformerPolicy, steps: int, extra: int, generator: torch.Generator) -> ContextCache:
    """A cache holding `steps` steps (random keys and values after the sink), room for `extra` more."""
    cache = policy.new_context(1, steps + extra)
    for store in (cache.keys, cache.values):
        for tensor in store:
            tensor[:, :, cache.offset : cache.offset + steps].normal_(generator=generator)  # in place: no copy
    cache.length = steps
    return cache


def run_act_case(case: Case) -> dict[str, Any]:
    """Time `case.steps` acting steps against a cache holding `case.context` steps; its memory."""
    torch.manual_seed(case.seed)
    generator = torch.Generator().manual_seed(case.seed)
    spec = model_spec(case.d_model)
    policy = TransformerPolicy(spec).eval()
    total = WARMUP_ACT_STEPS + case.steps
    inputs = [synthetic_inputs(1, 1, generator, start=case.context + i) for i in range(total)]
    warm = fill_context(policy, 16, total, generator)  # load the kernels before the baseline
    for step in inputs:
        policy.step(step, warm)
    del warm
    before = peak_rss_bytes()
    cache = fill_context(policy, case.context, total, generator)
    times = []
    for index, step in enumerate(inputs):
        start = time.perf_counter()
        policy.step(step, cache)
        if index >= WARMUP_ACT_STEPS:
            times.append(time.perf_counter() - start)
    growth = peak_rss_bytes() - before
    assert cache.length == case.context + total
    cache_bytes = sum(t.numel() * t.element_size() for store in (cache.keys, cache.values) for t in store)
    per_step = 2 * spec.n_layers * spec.d_model * 4
    return {
        **summary_ms(times),
        "context": case.context,
        "d_model": case.d_model,
        "cache_bytes": int(cache_bytes),
        "cache_mib": cache_bytes / MIB,
        "cache_bytes_per_step": per_step,
        "cache_capacity_steps": int(cache.keys[0].shape[2] - cache.offset),
        "peak_rss_growth_mib": growth / MIB,
    }


def train_step(policy: TransformerPolicy, inputs: StepInputs) -> tuple[float, float, float]:
    """One forward+backward: (forward seconds, backward seconds, loss)."""
    start = time.perf_counter()
    logits, values = policy(inputs)
    loss = logits.logsumexp(-1).mean() + values.square().mean()
    middle = time.perf_counter()
    loss.backward()
    end = time.perf_counter()
    return middle - start, end - middle, float(loss.detach())


def run_train_case(case: Case) -> dict[str, Any]:
    """One forward+backward of `case.context` steps with `case.attention`: time and peak RSS growth."""
    torch.manual_seed(case.seed)
    generator = torch.Generator().manual_seed(case.seed)
    spec = model_spec(case.d_model)
    policy = TransformerPolicy(spec).train()
    inputs = synthetic_inputs(1, case.context, generator)
    warm = synthetic_inputs(1, min(WARMUP_TRAIN_CONTEXT, case.context), generator)
    with attention_kind(case.attention):
        train_step(policy, warm)  # load the kernels before the baseline
        policy.zero_grad(set_to_none=True)
        before = peak_rss_bytes()
        forward_s, backward_s, loss = train_step(policy, inputs)
        growth = peak_rss_bytes() - before
    if not math.isfinite(loss):
        raise RuntimeError(f"{case.key}: the loss is {loss}")
    grad_norm = math.sqrt(sum(float(p.grad.square().sum()) for p in policy.parameters() if p.grad is not None))
    row: dict[str, Any] = {
        "attention": case.attention,
        "context": case.context,
        "d_model": case.d_model,
        "fits": True,
        "time_s": forward_s + backward_s,
        "forward_s": forward_s,
        "backward_s": backward_s,
        "steps_per_s": case.context / (forward_s + backward_s),
        "peak_rss_growth_mib": growth / MIB,
        "loss": loss,
        "grad_norm": grad_norm,
    }
    if case.attention == "dense":
        row["predicted_mib"] = dense_prediction_bytes(case.context, spec) / MIB
    return row


def run_case(case: Case) -> dict[str, Any]:
    """Run one case in this process (the child side of `--case`)."""
    torch.set_num_threads(1)
    if case.kind == "act":
        return run_act_case(case)
    if case.kind == "train":
        return run_train_case(case)
    raise ValueError(f"unknown case kind {case.kind!r}")


def run_case_in_subprocess(case: Case, timeout_s: float) -> dict[str, Any]:
    """Run one case in a fresh interpreter (its peak RSS is its own) and return its JSON."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--case", json.dumps(asdict(case))]
    started = time.perf_counter()
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"case {case.key} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    result["process_wall_s"] = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------------------------------ run


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (free pages where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def total_memory_bytes() -> int:
    """Physical memory."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def dense_budget_bytes() -> float:
    """What a dense case may be predicted to use: 80 % of the memory available now, at most `DENSE_CAP_GIB`."""
    return min(DENSE_CAP_GIB * GIB, 0.8 * available_memory_bytes())


def command_line() -> str:
    """The command that produced this run (with its `nice` level), as typed from the repository's root."""
    python = Path(sys.executable)
    if python.is_relative_to(REPO_ROOT):
        python = python.relative_to(REPO_ROOT)
    script = Path(sys.argv[0]).resolve()
    shown = str(script.relative_to(REPO_ROOT)) if script.is_relative_to(REPO_ROOT) else str(script)
    niceness = os.nice(0)
    prefix = f"nice -n {niceness} " if niceness else ""
    return prefix + shlex.join([str(python), shown, *sys.argv[1:]])


def machine() -> dict[str, Any]:
    """The machine, as the other benches record it (plus its memory, which decides what dense fits)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "memory_total_gib": total_memory_bytes() / GIB,
        "memory_available_gib_at_start": available_memory_bytes() / GIB,
        "threads": "torch, BLAS and OpenMP limited to 1 thread",
        "numpy": np.__version__,
        "torch": torch.__version__,
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, None when either is missing."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def compare(sdpa: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """`other` (dense or masked SDPA) against SDPA at the same context: memory and time ratios (other / SDPA)."""
    other_mib = other["peak_rss_growth_mib"] if other["fits"] else other["predicted_mib"]
    return {
        "context": sdpa["context"],
        "sdpa_peak_mib": sdpa["peak_rss_growth_mib"],
        "sdpa_time_s": sdpa["time_s"],
        f"{other['attention']}_peak_mib": other_mib,
        f"{other['attention']}_peak_source": "measured" if other["fits"] else "predicted (does not fit)",
        f"{other['attention']}_time_s": other.get("time_s"),
        "memory_ratio": ratio(other_mib, sdpa["peak_rss_growth_mib"]),
        "time_ratio": ratio(other.get("time_s"), sdpa["time_s"]),
        "loss_abs_difference": abs(other["loss"] - sdpa["loss"]) if other["fits"] else None,
    }


def run(config: BenchConfig) -> dict[str, Any]:
    """Every case, each in its own process, and the figures built from them."""
    tiny, wide = model_spec(64), model_spec(128)
    acting: dict[str, dict[str, Any]] = {}
    act_cases = [Case("act", c, 64, steps=config.act_steps) for c in config.act_contexts]
    act_cases += [Case("act", c, 128, steps=config.act_steps) for c in config.act_contexts_wide]
    for case in act_cases:
        log(f"acting {case.key}: {config.act_steps} steps")
        row = run_case_in_subprocess(case, config.case_timeout_s)
        log(f"  p50 {row['p50_ms']:.3f} ms, p99 {row['p99_ms']:.3f} ms, {row['steps_per_s']:.0f} steps/s")
        acting[case.key] = row

    training: dict[str, dict[str, Any]] = {}
    train_cases = [Case("train", c, 64, "sdpa") for c in config.train_contexts]
    train_cases += [Case("train", c, 128, "sdpa") for c in config.train_contexts_wide]
    train_cases += [Case("train", config.compare_context, 64, "sdpa_mask")]
    train_cases += [Case("train", c, 64, "dense") for c in config.dense_contexts]
    if config.compare_context not in config.train_contexts:
        train_cases.insert(0, Case("train", config.compare_context, 64, "sdpa"))
    for case in train_cases:
        if case.attention == "dense":
            need, budget = dense_prediction_bytes(case.context, tiny), dense_budget_bytes()
            if need > budget:
                note = f"does not fit: needs {need / GIB:.1f} GiB (budget {budget / GIB:.1f} GiB)"
                log(f"training {case.key}: {note}")
                training[case.key] = {
                    "attention": "dense",
                    "context": case.context,
                    "d_model": case.d_model,
                    "fits": False,
                    "predicted_mib": need / MIB,
                    "budget_mib": budget / MIB,
                    "note": note,
                }
                continue
        log(f"training {case.key}: one forward+backward")
        row = run_case_in_subprocess(case, config.case_timeout_s)
        log(f"  {row['time_s']:.2f} s, peak RSS growth {row['peak_rss_growth_mib']:.0f} MiB")
        training[case.key] = row

    at = config.compare_context
    sdpa_at, dense_at = training[f"sdpa_d64_{at}"], training[f"dense_d64_{at}"]
    measured_dense = [r for r in training.values() if r["attention"] == "dense" and r["fits"]]
    largest_measured = max((r["context"] for r in measured_dense), default=None)
    comparison_measured = None
    if largest_measured is not None and f"sdpa_d64_{largest_measured}" in training:
        comparison_measured = compare(
            training[f"sdpa_d64_{largest_measured}"], training[f"dense_d64_{largest_measured}"]
        )
    available = available_memory_bytes()
    longest_sdpa = max(config.train_contexts)
    act_target = acting.get(f"d64_{TARGET_ACT_CONTEXT}")
    comparison = compare(sdpa_at, dense_at)
    mask_cost = compare(sdpa_at, training[f"sdpa_mask_d64_{at}"])
    memory_ratio = comparison["memory_ratio"]
    return {
        "benchmark": "relic",
        "smoke": config.smoke,
        "command": command_line(),
        "model": {
            "tiny": asdict(tiny),
            "wide": asdict(wide),
            "parameters": {
                "tiny": sum(p.numel() for p in TransformerPolicy(tiny).parameters()),
                "wide": sum(p.numel() for p in TransformerPolicy(wide).parameters()),
            },
            "batch": 1,
        },
        "acting": acting,
        "training": training,
        "act_at_target_context": act_target,
        "comparison": comparison,
        "comparison_measured": comparison_measured,
        "mask_cost": mask_cost,
        "longest_training_context": {
            "context": longest_sdpa,
            "time_s": training[f"sdpa_d64_{longest_sdpa}"]["time_s"],
            "peak_rss_growth_mib": training[f"sdpa_d64_{longest_sdpa}"]["peak_rss_growth_mib"],
        },
        "dense_fit": {
            "memory_available_gib": available / GIB,
            "largest_context_fitting_available": largest_dense_context(tiny, available),
            "largest_context_within_cap": largest_dense_context(tiny, min(DENSE_CAP_GIB * GIB, 0.8 * available)),
            "cap_gib": DENSE_CAP_GIB,
            "prediction": "(n_layers + 2) x (T+1)^2 x heads x 4 bytes + (T+1)^2 x 4 bytes (the causal mask)",
            "predicted_over_measured": {
                str(r["context"]): ratio(r["predicted_mib"], r["peak_rss_growth_mib"]) for r in measured_dense
            },
        },
        "targets": {
            "act_context": TARGET_ACT_CONTEXT,
            "act_steps_per_s_min": TARGET_ACT_STEPS_PER_S,
            "memory_ratio_dense_over_sdpa_min": TARGET_MEMORY_RATIO,
            "memory_ratio_context": COMPARE_CONTEXT,
        },
        "pass": {
            "act_64k_steps_per_s": None if act_target is None else act_target["steps_per_s"] >= TARGET_ACT_STEPS_PER_S,
            "memory_ratio_at_16k": None
            if at != COMPARE_CONTEXT or memory_ratio is None
            else memory_ratio >= TARGET_MEMORY_RATIO,
        },
        "notes": [
            "one torch thread; each case in a fresh process; peak = ru_maxrss after the case minus before it",
            "acting: the cache is filled with random keys and values (a step's cost does not depend on them) and "
            "reserved so that it does not grow while timed; steps_per_s = timed steps / their total time",
            "training: one forward+backward after an untimed one at 256 steps; loss = mean logsumexp(logits) + "
            "mean value^2",
            "ratios are other / SDPA at the same context; a dense peak that does not fit is the prediction",
        ],
        "machine": machine(),
    }


def main() -> None:
    """Parse the command line, run (or run one case, with --case), print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="shrink the run to seconds (also SMOKE_TEST=1)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"write the JSON here too (default: {DEFAULT_OUT.relative_to(REPO_ROOT)} for a full run, none for smoke)",
    )
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:
        print(json.dumps(run_case(Case(**json.loads(args.case)))))
        return
    smoke = smoke_requested(args.smoke)
    out = args.out if args.out is not None else (None if smoke else DEFAULT_OUT)
    if smoke and out is not None and out.resolve().is_relative_to(RESULTS_DIR):
        parser.error(f"a smoke run is not written under {RESULTS_DIR.relative_to(REPO_ROOT)}/ (committed full runs)")
    started = time.perf_counter()
    result = run(make_config(smoke))
    result["wall_time_s"] = time.perf_counter() - started
    if out is not None:
        write_json_atomic(out, result)
        log(f"wrote {out}")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

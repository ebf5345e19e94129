"""Co-training: a smoke run produces a usable policy, a data set at every fidelity, the project's metrics and
summary.json; a killed run resumes from its last checkpoint without losing evaluations, and its metrics read
like an uninterrupted run's; a short run improves what the trainer rewards for the policy's own proposals."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mfplan.dataset import EvaluationDataset
from mfplan.planner import CertifiedPlanner
from mfplan.policy import TimeAllocationPolicy, read_policy
from mfplan.trainer import (
    DATASET_FILE,
    POLICY_CHECKPOINT,
    TRAINER_CHECKPOINT,
    UNCERTIFIABLE_TIME_RATIO,
    TrainConfig,
    Trainer,
)
from runkit import SUMMARY_FILE
from runkit.metrics import METRIC_PREFIXES, SCALARS_FILE, read_scalars
from runkit.testing import run_console_script

pytestmark = [pytest.mark.slow, pytest.mark.sim]


def _train_args(run_dir: Path, *extra: str) -> list[str]:
    return ["train", "--run-dir", str(run_dir), "--num-workers", "1", "--no-progress", *extra]


def test_smoke_training_writes_a_usable_policy_metrics_and_multi_fidelity_data(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_console_script("mfrl", _train_args(run_dir), timeout_s=300)  # SMOKE_TEST=1, as CI runs it
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    iterations = TrainConfig(smoke=True).resolved().iterations
    assert summary["iterations"] == iterations
    assert summary["resumed"] is False
    assert json.loads(result.stdout) == summary
    counts = EvaluationDataset(run_dir / DATASET_FILE, read_only=True).counts()
    assert counts.get("analytic", 0) > 0
    assert counts.get("mujoco", 0) > 0
    assert counts.get("rotorpy", 0) > 0
    # Every RotorPy flight of the run had its own wind, numbered from the run's seed; other fidelities have none.
    records = EvaluationDataset(run_dir / DATASET_FILE, read_only=True).records
    winds = [r.wind_seed for r in records if r.fidelity == "rotorpy"]
    assert winds == list(range(len(winds)))
    assert all(r.wind_seed is None for r in records if r.fidelity != "rotorpy")
    # Metrics: scalars.jsonl and TensorBoard, in the project's naming, one row per iteration and name.
    scalars = read_scalars(run_dir)
    assert all(name.startswith(METRIC_PREFIXES) for name in scalars)
    for name in ("charts/SPS", "losses/policy_loss", "losses/approx_kl", "rollout/reward_mean"):
        assert [step for step, _ in scalars[name]] == list(range(1, iterations + 1)), name
    assert any((run_dir / "tensorboard").iterdir())
    # The policy file: the current format, the run's config, plain metadata; it plans.
    written = read_policy(run_dir / POLICY_CHECKPOINT)
    assert written.config["iterations"] == iterations
    assert written.config["run_dir"] == str(run_dir)
    assert written.metadata["command"].startswith(f"mfrl train --run-dir {run_dir}")
    plan = CertifiedPlanner.from_checkpoint(run_dir / POLICY_CHECKPOINT).plan(
        np.array([[0, 0, 1, 0], [3, 1, 1.5, 0.3], [5, 4, 2, 0.6], [2, 6, 1.2, 1.0]])
    )
    assert plan.total_time_s > 0


def test_killed_run_resumes_keeps_every_evaluation_and_its_metrics_read_like_one_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "mfplan.cli", *_train_args(run_dir, "--smoke", "--iterations", "12")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = run_dir / TRAINER_CHECKPOINT
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert checkpoint.exists(), "no checkpoint was written"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = EvaluationDataset(run_dir / DATASET_FILE).records
    assert before, "the data set should hold the initial design"

    refused = run_console_script("mfrl", _train_args(run_dir, "--iterations", "12"), timeout_s=300)
    assert refused.returncode == 2, refused.stderr[-3000:]  # a fresh run never mixes with the killed one
    assert "pass --resume" in refused.stderr

    result = run_console_script("mfrl", _train_args(run_dir, "--iterations", "12", "--resume"), timeout_s=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert summary["resumed"] is True
    assert summary["iterations"] == 12
    assert 0 < summary["iterations_this_session"] < 12
    after = EvaluationDataset(run_dir / DATASET_FILE).records
    assert [r.index for r in after[: len(before)]] == [r.index for r in before]
    assert [r.index for r in after] == list(range(len(after)))
    winds = [r.wind_seed for r in after if r.fidelity == "rotorpy"]
    assert len(set(winds)) == len(winds), "a resumed run must not fly the same wind again"
    # Rows the killed run logged after its checkpoint were dropped: every (name, step) once, every step there.
    rows = [json.loads(line) for line in (run_dir / SCALARS_FILE).read_text().splitlines()]
    repeated = [key for key, count in Counter((r["name"], r["step"]) for r in rows).items() if count > 1]
    assert not repeated, repeated
    assert [step for step, _ in read_scalars(run_dir)["rollout/reward_mean"]] == list(range(1, 13))


@pytest.mark.learning
def test_short_training_improves_the_reward_of_the_policys_own_proposals(tmp_path: Path) -> None:
    """Single-fidelity ablation (analytic reward). What the trainer optimises is the time the planner delivers
    from the policy's proposal: the proposal, certified by the time-scale search alone (no repair), over the
    course's reference time, and `UNCERTIFIABLE_TIME_RATIO` times the reference when no scale certifies it.
    This test scores the policy's own mean proposals (the planner's input, before certification) that way on the
    training courses, before and after 20 iterations.

    The reward also charges the time scale the certificate adds to a proposal (`certification_penalty`), so
    the proposals themselves move towards the boundary instead of drifting ever faster below it (where the
    search slows each one down to the same plan and the reward would be flat).

    (Measured, seed 3: time 2.25 -> 1.82 of the reference, certifiable 6 -> 10 of 12 courses, mean log scale
    the certificate adds 1.42 -> 0.89. Without the certification term: 2.25 -> 1.70, but 1.42 -> 1.14, and
    over a long run the proposals drift below the boundary and the scale added grows instead.)
    """
    config = TrainConfig(
        run_dir=tmp_path / "run",
        reward_source="analytic",
        iterations=20,
        train_courses=12,
        courses_per_iteration=12,
        samples_per_course=8,
        checkpoint_every=20,
        num_workers=1,
        seed=3,
        progress=False,
    )
    trainer = Trainer(config)

    def score(policy: TimeAllocationPolicy) -> tuple[float, int, float]:
        """Mean time ratio the trainer's reward charges for the policy's mean proposals; courses certified; mean
        log time scale the certificate added to the proposals."""
        samples = [trainer.make_sample(c, policy.mean_log_factors(c.encoding)) for c in trainer.courses]
        for sample in samples:
            if not sample.certified:
                assert sample.time_ratio == pytest.approx(UNCERTIFIABLE_TIME_RATIO)
        added = [np.log(s.segment_times_s.sum() / s.proposed_times_s.sum()) for s in samples]
        return float(np.mean([s.time_ratio for s in samples])), sum(s.certified for s in samples), float(np.mean(added))

    untrained = copy.deepcopy(trainer.policy)
    before, certified_before, added_before = score(untrained)
    trainer.train()
    after, certified_after, added_after = score(trainer.policy)
    assert after < 0.85 * before, (before, after)
    assert certified_after >= certified_before, (certified_before, certified_after)
    assert added_after < 0.72 * added_before, (added_before, added_after)


def test_fine_tuning_starts_from_the_named_checkpoints_weights_and_says_so(tmp_path: Path) -> None:
    """`--init-checkpoint`: the run's policy starts as that checkpoint's (not a fresh initialisation), its policy
    file and command name it; a checkpoint of another network, or none at all, is refused in one line."""
    import torch

    from mfplan.configs import PolicyConfig
    from mfplan.planner import DEFAULT_CHECKPOINT
    from mfplan.policy import MissingCheckpointError, PolicyCheckpointError, load_policy

    shipped, _ = load_policy(DEFAULT_CHECKPOINT)
    tuned = Trainer(TrainConfig(run_dir=tmp_path / "tuned", smoke=True, init_checkpoint=DEFAULT_CHECKPOINT))
    fresh = Trainer(TrainConfig(run_dir=tmp_path / "fresh", smoke=True))
    weights = shipped.state_dict()
    assert all(torch.equal(value, weights[name]) for name, value in tuned.policy.state_dict().items())
    assert not all(torch.equal(value, weights[name]) for name, value in fresh.policy.state_dict().items())
    metadata = tuned.policy_metadata()
    assert metadata["init_checkpoint"] == str(DEFAULT_CHECKPOINT)
    assert f"--init-checkpoint {DEFAULT_CHECKPOINT}" in metadata["command"]
    assert fresh.policy_metadata()["init_checkpoint"] is None
    with pytest.raises(PolicyCheckpointError, match=r"d_model 64 \(this run: 32\)"):
        Trainer(
            TrainConfig(
                run_dir=tmp_path / "other",
                smoke=True,
                init_checkpoint=DEFAULT_CHECKPOINT,
                policy=PolicyConfig(d_model=32),
            )
        )
    with pytest.raises(MissingCheckpointError):
        Trainer(TrainConfig(run_dir=tmp_path / "missing", smoke=True, init_checkpoint=tmp_path / "no_such_policy.pt"))

"""The evaluation dataset: durable appends, resume, torn-line recovery, training tensors."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from mfplan.dataset import DatasetCorruptError, EvaluationDataset, EvaluationRecord
from mfplan.fidelities import FIDELITY_NAMES, UnknownFidelityError
from quadsim.evaluation import EvaluationResult
from runkit import UserError
from runkit.jsonlines import JsonLinesCorruptError

D = 3


def record(i: int, fidelity: str = "analytic") -> EvaluationRecord:
    score = 0.1 * i - 0.5
    return EvaluationRecord(
        features=(0.1 * i, 1.0 / 3.0, float(i)),
        fidelity=fidelity,
        score=score,
        feasible=score <= 0.0,
        wall_time_s=0.001 * (i + 1),
        course_id=f"train-{i // 4}",
        course_seed=1000 + i,
        segment_times_s=(1.25, 0.75 + i),
    )


def capture_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """Let caplog see the warnings of the torn-line recovery (runkit.jsonlines reads and repairs the file)."""
    caplog.set_level(logging.WARNING, logger="runkit.jsonlines")


def test_append_then_reload_gives_equal_records(tmp_path: Path) -> None:
    path = tmp_path / "evals.jsonl"
    dataset = EvaluationDataset(path, num_features=D)
    stored = [dataset.append(record(0))[0], *dataset.append([record(i, "mujoco") for i in range(1, 5)])]
    assert [r.index for r in stored] == [0, 1, 2, 3, 4]
    assert all(r.timestamp is not None for r in stored)

    reloaded = EvaluationDataset(path, num_features=D)
    assert reloaded.records == tuple(stored)
    assert reloaded.records[3].features == (0.30000000000000004, 1.0 / 3.0, 3.0)  # floats round-trip exactly
    assert reloaded.counts() == {"analytic": 1, "mujoco": 4, "rotorpy": 0}


def test_reopening_continues_the_record_index(tmp_path: Path) -> None:
    path = tmp_path / "evals.jsonl"
    EvaluationDataset(path, num_features=D).append([record(0), record(1)])
    resumed = EvaluationDataset(path, num_features=D)
    assert resumed.next_index == 2
    assert [r.index for r in resumed.append([record(2), record(3)])] == [2, 3]
    assert [r.index for r in EvaluationDataset(path, num_features=D)] == [0, 1, 2, 3]


def test_torn_last_line_is_skipped_cut_off_and_later_appends_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "evals.jsonl"
    EvaluationDataset(path, num_features=D).append([record(0), record(1)])
    intact = path.read_bytes()
    torn = record(2).to_json().encode()
    with path.open("ab") as handle:  # kill -9 in the middle of a write
        handle.write(torn[: len(torn) // 2])
    capture_warnings(caplog)

    dataset = EvaluationDataset(path, num_features=D)
    assert len(dataset) == 2
    assert "torn" in caplog.text
    assert path.read_bytes() == intact  # cut back to the last complete line

    dataset.append(record(5))
    again = EvaluationDataset(path, num_features=D)
    assert [r.index for r in again] == [0, 1, 2]
    assert again[-1].features == record(5).features


def test_complete_json_without_its_newline_counts_as_torn(tmp_path: Path) -> None:
    path = tmp_path / "evals.jsonl"
    EvaluationDataset(path, num_features=D).append(record(0))
    with path.open("ab") as handle:
        handle.write(json.dumps(json.loads(EvaluationDataset(path, num_features=D)[0].to_json())).encode())
    assert len(EvaluationDataset(path, num_features=D)) == 1
    assert path.read_bytes().endswith(b"\n")


def test_read_only_skips_a_torn_line_without_touching_the_file(tmp_path: Path) -> None:
    path = tmp_path / "evals.jsonl"
    EvaluationDataset(path, num_features=D).append(record(0))
    with path.open("ab") as handle:
        handle.write(b'{"index": 1, "fea')
    before = path.read_bytes()
    reader = EvaluationDataset(path, num_features=D, read_only=True)
    assert len(reader) == 1
    assert path.read_bytes() == before
    with pytest.raises(PermissionError):
        reader.append(record(1))


def test_a_bad_line_before_good_ones_is_corruption_not_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "evals.jsonl"
    EvaluationDataset(path, num_features=D).append(record(0))
    with path.open("ab") as handle:
        handle.write(b"not json\n")
    good = record(1)
    with path.open("ab") as handle:
        handle.write((EvaluationRecord(**{**good.__dict__, "index": 1, "timestamp": 0.0}).to_json() + "\n").encode())
    with pytest.raises(DatasetCorruptError, match=":2:") as error:
        EvaluationDataset(path, num_features=D)
    assert isinstance(error.value, JsonLinesCorruptError)  # runkit's damage error ...
    assert isinstance(error.value, UserError)  # ... a user's error: one line, exit status 2 under `mfrl`


def test_a_line_that_is_json_but_not_a_record_or_out_of_order_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "evals.jsonl"
    EvaluationDataset(path, num_features=D).append([record(0), record(1)])
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"index": 2}\n')
    with pytest.raises(DatasetCorruptError, match="record 3: not an evaluation record"):
        EvaluationDataset(path, num_features=D)
    first, second = intact.splitlines(keepends=True)
    path.write_bytes(second + first)
    with pytest.raises(DatasetCorruptError, match="record index 0 does not follow 1"):
        EvaluationDataset(path, num_features=D)


def test_as_tensors_shapes_dtypes_and_fidelity_column(tmp_path: Path) -> None:
    dataset = EvaluationDataset(tmp_path / "evals.jsonl", num_features=D)
    X, Y = dataset.as_tensors()
    assert X.shape == (0, D + 1)
    assert Y.shape == (0, 1)
    dataset.append([record(i, FIDELITY_NAMES[i % 3]) for i in range(6)])
    X, Y = dataset.as_tensors()
    assert X.shape == (6, D + 1)
    assert Y.shape == (6, 1)
    assert X.dtype == torch.double
    assert Y.dtype == torch.double
    assert X[:, -1].tolist() == [0.0, 0.5, 1.0, 0.0, 0.5, 1.0]
    assert Y[:, 0].tolist() == pytest.approx([0.1 * i - 0.5 for i in range(6)])
    X_target, _ = dataset.as_tensors(fidelities=["rotorpy"])
    assert X_target.shape == (2, D + 1)
    assert (X_target[:, -1] == 1.0).all()
    assert dataset.as_tensors(dtype=torch.float32)[0].dtype == torch.float32


def test_invalid_records_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    dataset = EvaluationDataset(tmp_path / "evals.jsonl", num_features=D)
    with pytest.raises(UnknownFidelityError, match="expected one of"):
        EvaluationRecord((0.0,) * D, "gazebo", 0.0, True, 0.1)
    with pytest.raises(ValueError, match="non-finite"):
        EvaluationRecord((0.0,) * D, "analytic", float("nan"), True, 0.1)
    with pytest.raises(ValueError, match="features"):
        dataset.append(EvaluationRecord((0.0,) * (D + 1), "analytic", 0.0, True, 0.1))
    assert len(dataset) == 0
    assert not dataset.path.exists()


def test_record_from_an_evaluator_result_carries_score_and_verdict() -> None:
    result = EvaluationResult(
        fidelity="mujoco",
        feasible=False,
        max_position_error_m=0.4,
        max_yaw_error_rad=0.01,
        max_rotor_speed_rad_s=800.0,
        rotor_speed_limit_rad_s=1000.0,
        min_rotor_speed_rad_s=300.0,
        wall_time_s=0.2,
        reason="position error 0.40 m > 0.2 m",
    )
    rec = EvaluationRecord.from_result(torch.arange(D).double().numpy(), result, [1.0, 2.0], "c7", 7)
    assert rec.fidelity == "mujoco"
    assert not rec.feasible
    assert rec.score == pytest.approx(float(torch.log(torch.tensor(2.0))))  # 0.4 m of a 0.2 m bound
    assert rec.features == (0.0, 1.0, 2.0)
    assert rec.segment_times_s == (1.0, 2.0)
    assert rec.reason.startswith("position error")


CHILD = textwrap.dedent(
    """
    import sys
    from mfplan.dataset import EvaluationDataset, EvaluationRecord
    dataset = EvaluationDataset(sys.argv[1], num_features=3)
    for i in range(100000):
        times = (1.0,) * 50
        dataset.append(EvaluationRecord((0.5, 1.0, float(i)), "analytic", -0.5, True, 0.001, segment_times_s=times))
        print(i, flush=True)
    """
)


@pytest.mark.slow
def test_kill_9_while_appending_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "evals.jsonl"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    acknowledged = -1
    deadline = time.monotonic() + 60.0
    while acknowledged < 200 and time.monotonic() < deadline:
        acknowledged = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    dataset = EvaluationDataset(path, num_features=D)
    assert len(dataset) >= acknowledged + 1
    assert [r.index for r in dataset] == list(range(len(dataset)))
    dataset.append(record(0))
    assert len(EvaluationDataset(path, num_features=D)) == len(dataset)

"""runkit's run conventions, as a package's trainer and CLI rely on them."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from runkit.atomic import atomic_stream, write_summary
from runkit.checkpoint import CheckpointError, MissingCheckpointError, load_envelope, save_envelope
from runkit.cli import UserError
from runkit.config import RunConfig, RunDirectoryError, prepare_run_dir, smoke_requested
from runkit.jsonlines import JsonLinesCorruptError, append_json_lines, read_json_lines
from runkit.metrics import RunLogger, read_scalars
from runkit.seeding import capture_rng, restore_rng, seed_everything
from runkit.testing import assert_every_parameter_changes, assert_same_seed_same_result


@dataclass
class ToyConfig(RunConfig):
    courses: int = 100
    iterations: int = 300

    def smoke_sizes(self) -> dict[str, object]:
        return {"courses": 3, "iterations": 2}


def test_smoke_shrinks_only_what_the_user_left_at_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMOKE_TEST", raising=False)
    config = ToyConfig(courses=10, smoke=True).resolved()
    assert (config.courses, config.iterations) == (10, 2)
    assert ToyConfig(courses=10).resolved().iterations == 300


@pytest.mark.parametrize(("value", "smoke"), [("1", True), ("yes", True), ("0", False), ("", False), ("no", False)])
def test_smoke_test_in_the_environment_means_smoke(monkeypatch: pytest.MonkeyPatch, value: str, smoke: bool) -> None:
    monkeypatch.setenv("SMOKE_TEST", value)
    assert smoke_requested() is smoke
    config = ToyConfig().resolved()
    assert config.smoke is smoke
    assert config.iterations == (2 if smoke else 300)


def test_a_typo_in_smoke_sizes_is_an_error() -> None:
    @dataclass
    class Typo(RunConfig):
        courses: int = 1

        def smoke_sizes(self) -> dict[str, object]:
            return {"coursez": 0}

    with pytest.raises(ValueError, match="coursez"):
        Typo(smoke=True).resolved()


def test_the_default_run_folder_names_the_seed() -> None:
    assert ToyConfig(seed=7).resolved().run_dir == Path("runs/toyconfig/seed7")
    assert ToyConfig(run_dir=Path("x")).resolved().run_dir == Path("x")


def test_a_fresh_run_in_a_used_folder_is_refused_and_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert prepare_run_dir(run, resume=False, checkpoint=run / "checkpoint.pt") is False
    assert run.is_dir()
    (run / "scalars.jsonl").write_text("")
    with pytest.raises(RunDirectoryError, match="pass --resume") as refused:
        prepare_run_dir(run, resume=False, checkpoint=run / "checkpoint.pt")
    assert isinstance(refused.value, UserError)
    with pytest.raises(RunDirectoryError, match="nothing to resume"):
        prepare_run_dir(tmp_path / "empty", resume=True, checkpoint=tmp_path / "empty" / "checkpoint.pt")
    (run / "checkpoint.pt").write_bytes(b"x")
    assert prepare_run_dir(run, resume=True, checkpoint=run / "checkpoint.pt") is True


def test_an_envelope_round_trips_tensors_arrays_and_plain_values(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    state = {"weights": torch.arange(3.0), "buffer": np.eye(2), "step": 5, "nested": {"scale": np.float64(1.5)}}
    save_envelope(path, "toy.checkpoint/1", state, config=ToyConfig(seed=3), rng=capture_rng(), metadata={"by": "t"})
    envelope = load_envelope(path, ("toy.checkpoint/1",), "toy checkpoint")
    assert torch.equal(envelope.state["weights"], torch.arange(3.0))
    np.testing.assert_array_equal(envelope.state["buffer"], np.eye(2))
    assert envelope.state["nested"]["scale"] == 1.5
    assert isinstance(envelope.state["nested"]["scale"], np.float64)
    assert envelope.config["seed"] == 3
    assert envelope.config["run_dir"] is None
    assert envelope.metadata == {"by": "t"}


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this ran",))


def test_a_crafted_pickle_or_another_format_is_refused_in_one_line(tmp_path: Path) -> None:
    crafted = tmp_path / "crafted.pt"
    torch.save({"format": "toy.checkpoint/1", "x": _Payload()}, crafted)
    with pytest.raises(CheckpointError) as refused:
        load_envelope(crafted, ("toy.checkpoint/1",), "toy checkpoint")
    assert "\n" not in str(refused.value)
    assert str(crafted) in str(refused.value)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"format": "toy.checkpoint/1"}))
    with pytest.raises(CheckpointError, match="not a readable toy checkpoint"):
        load_envelope(plain, ("toy.checkpoint/1",), "toy checkpoint")
    other = tmp_path / "other.pt"
    save_envelope(other, "toy.policy/1", {})
    with pytest.raises(CheckpointError, match=r"format 'toy\.policy/1'"):
        load_envelope(other, ("toy.checkpoint/1",), "toy checkpoint")
    with pytest.raises(CheckpointError, match="re-export"):
        load_envelope(other, ("toy.checkpoint/2",), "toy checkpoint", retired={"toy.policy/1": "re-export it"})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(other.read_bytes()[:100])
    with pytest.raises(CheckpointError):
        load_envelope(truncated, ("toy.policy/1",), "toy checkpoint")
    with pytest.raises(MissingCheckpointError):
        load_envelope(tmp_path / "none.pt", ("toy.policy/1",), "toy checkpoint")


def test_restoring_the_generators_replays_the_same_numbers() -> None:
    seed_everything(4)
    saved = capture_rng()
    first = (np.random.rand(3), torch.rand(3))  # noqa: NPY002
    restore_rng(saved)
    again = (np.random.rand(3), torch.rand(3))  # noqa: NPY002
    np.testing.assert_array_equal(first[0], again[0])
    assert torch.equal(first[1], again[1])


def test_json_lines_survive_a_torn_last_line_but_not_damage_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    append_json_lines(path, [{"i": 0}, {"i": 1}])
    with path.open("ab") as handle:
        handle.write(b'{"i": 2, "tor')  # a crash in the middle of a write
    assert read_json_lines(path) == [{"i": 0}, {"i": 1}]
    assert read_json_lines(path, repair=True) == [{"i": 0}, {"i": 1}]
    append_json_lines(path, [{"i": 2}])
    assert [row["i"] for row in read_json_lines(path)] == [0, 1, 2]
    path.write_text('{"i": 0}\nnot json\n{"i": 2}\n')
    with pytest.raises(JsonLinesCorruptError, match=":2:"):
        read_json_lines(path)


def test_a_resumed_log_drops_what_was_logged_after_the_checkpoint(tmp_path: Path) -> None:
    with RunLogger(tmp_path, 10, tensorboard=False, progress=False) as log:
        for step in range(1, 6):
            log.scalar("charts/SPS", float(step), step)
    with RunLogger(tmp_path, 10, tensorboard=False, progress=False, resume_step=3) as log:
        log.scalar("charts/SPS", 40.0, 4)
    assert read_scalars(tmp_path)["charts/SPS"] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
    with pytest.raises(ValueError, match="must start with"), RunLogger(tmp_path, 1, tensorboard=False) as log:
        log.scalar("sps", 1.0, 1)


def test_a_stream_that_fails_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "video.bin"
    target.write_bytes(b"old")

    def encode_and_die() -> None:
        with atomic_stream(target) as handle:
            handle.write(b"new part")
            raise RuntimeError("encoder died")

    with pytest.raises(RuntimeError, match="encoder died"):
        encode_and_die()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["video.bin"]
    with atomic_stream(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"
    assert write_summary(tmp_path, {"x": np.float64(1.0)}).read_text().strip() == '{\n  "x": 1.0\n}'


def test_the_test_helpers_catch_an_unused_seed_and_a_frozen_parameter() -> None:
    assert_same_seed_same_result(lambda seed: np.random.default_rng(seed).random(3))
    with pytest.raises(AssertionError, match="is the seed used"):
        assert_same_seed_same_result(lambda seed: np.ones(3))
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1)

    def step() -> None:
        optimiser.zero_grad()
        net(torch.ones(4, 2)).sum().backward()
        optimiser.step()

    assert_every_parameter_changes(net, step)
    optimiser = torch.optim.SGD(net[0].parameters(), lr=0.1)  # the second layer is left out by mistake
    with pytest.raises(AssertionError, match=r"1\.weight"):
        assert_every_parameter_changes(net, step)

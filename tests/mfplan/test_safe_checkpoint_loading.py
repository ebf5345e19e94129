"""mfplan reads its policy and trainer checkpoints without unpickling: bad files raise the typed error, run nothing."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from mfplan.policy import PolicyCheckpointError, TimeAllocationPolicy, load_policy, save_policy
from mfplan.trainer import TRAINER_CHECKPOINT, TRAINER_FORMAT, TrainConfig, Trainer, TrainerCheckpointError
from policyopt.checkpoint import POLICY_FORMAT, save_policy_file
from policyopt.networks import Actor, PolicySpec
from runkit.checkpoint import CheckpointError

SHIPPED = Path(__file__).resolve().parents[2] / "learning" / "mfplan" / "checkpoints" / "mfrl_policy.pt"


class _OpensAFile:
    """Unpickling this object would call `open(marker, "w")`: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


class _TouchesAFile:
    """Unpickling this object would call `Path.touch(marker)`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _bad_files(folder: Path, marker: Path) -> dict[str, Path]:
    """Crafted pickles (they would create `marker`), a truncated, a text and a policyopt file."""
    folder.mkdir(parents=True, exist_ok=True)
    names = ("open", "touch", "plain", "disguised", "retired", "truncated", "text")
    files = {name: folder / f"{name}.pt" for name in names}
    torch.save(_OpensAFile(marker), files["open"])
    torch.save(_TouchesAFile(marker), files["touch"])
    files["plain"].write_bytes(pickle.dumps({"format": "mfplan.policy/2", "state": _OpensAFile(marker)}, 2))
    torch.save({"format": TRAINER_FORMAT, "state": {"policy": _TouchesAFile(marker)}}, files["disguised"])
    torch.save({"format": "mfplan.policy/1", "state_dict": _OpensAFile(marker)}, files["retired"])
    files["truncated"].write_bytes(SHIPPED.read_bytes()[:4096])
    files["text"].write_text("not a checkpoint\n")
    spec = PolicySpec(obs_dim=3, action_dim=2, discrete=False)
    files["policyopt"] = save_policy_file(
        folder / "policyopt.pt", {"spec": spec.to_dict(), "actor": Actor(spec).state_dict(), "obs_normalizer": None}, {}
    )
    return files


def test_the_crafted_payloads_would_run_if_unpickled(tmp_path: Path) -> None:
    pickle.loads(pickle.dumps(_OpensAFile(tmp_path / "a"))).close()
    pickle.loads(pickle.dumps(_TouchesAFile(tmp_path / "b")))
    assert (tmp_path / "a").exists()
    assert (tmp_path / "b").exists()


def test_load_policy_refuses_bad_files_with_one_line_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    for name, path in _bad_files(tmp_path / "files", marker).items():
        with pytest.raises(PolicyCheckpointError) as error:
            load_policy(path)
        assert str(path) in str(error.value), name
        assert "\n" not in str(error.value), name
        assert not marker.exists(), f"load_policy ran the code in {name}"
        assert isinstance(error.value, CheckpointError), name
    with pytest.raises(PolicyCheckpointError, match=POLICY_FORMAT):
        load_policy(tmp_path / "files" / "policyopt.pt")
    with pytest.raises(PolicyCheckpointError, match=r"retired format 'mfplan\.policy/1'.*checkpoints/upgrade\.py"):
        load_policy(tmp_path / "files" / "retired.pt")


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Trainer:
    """A smoke-sized trainer (nothing trained): its courses take a second or two to prepare."""
    return Trainer(TrainConfig(smoke=True, run_dir=tmp_path_factory.mktemp("mfrl"), progress=False))


def test_trainer_checkpoint_is_a_weights_only_envelope_and_resumes_the_generators(trainer: Trainer) -> None:
    trainer.iteration = 3
    path = trainer.save_checkpoint()
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == TRAINER_FORMAT
    assert payload["config"]["run_dir"] == str(trainer.run_dir)
    assert set(payload["rng"]) == {"python", "numpy", "torch"}
    draws = (trainer.rng.random(), torch.randn(2, generator=trainer.torch_generator), torch.randn(2))
    trainer.iteration = 0
    assert trainer.load_checkpoint()
    assert trainer.iteration == 3
    again = (trainer.rng.random(), torch.randn(2, generator=trainer.torch_generator), torch.randn(2))
    assert draws[0] == again[0]
    assert torch.equal(draws[1], again[1])
    assert torch.equal(draws[2], again[2])


def test_trainer_resume_refuses_bad_files_with_one_line_and_runs_nothing(trainer: Trainer, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    target = trainer.run_dir / TRAINER_CHECKPOINT
    files = _bad_files(tmp_path / "files", marker)
    files["mfplan policy"] = save_policy(tmp_path / "policy.pt", TimeAllocationPolicy(), {})
    for name, path in files.items():
        target.write_bytes(path.read_bytes())
        with pytest.raises(TrainerCheckpointError) as error:
            trainer.load_checkpoint()
        assert str(target) in str(error.value), name
        assert "\n" not in str(error.value), name
        assert not marker.exists(), f"resume ran the code in {name}"
        assert isinstance(error.value, CheckpointError)  # runkit's family: a user's error, one line, exit 2
    target.unlink()
    assert trainer.load_checkpoint() is False

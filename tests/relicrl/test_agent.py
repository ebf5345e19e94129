"""The deployable agent: acts like the batch policy, keeps its context across episodes, refuses bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from relicrl.agent import InContextAgent
from relicrl.checkpoint import load_policy, save_policy
from relicrl.model import ModelSpec, StepInputs, build_policy
from runkit.checkpoint import CheckpointError

SPEC = ModelSpec(vector_dim=6, num_actions=3, image_shape=(32, 32, 3))


def _observation(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "vector": np.eye(6, dtype=np.float32)[rng.integers(6)],
        "image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
    }


def test_the_agent_acts_on_the_same_tokens_as_a_full_forward_over_its_history() -> None:
    """Step by step with boundaries and rewards, the agent's logits are the policy's over the whole history."""
    torch.manual_seed(0)
    policy = build_policy(SPEC).eval()
    agent = InContextAgent(policy, greedy=True)
    rng = np.random.default_rng(0)
    observations, actions, rewards, firsts = [], [], [], []
    reward = 0.0
    for t in range(12):
        if t == 5:
            agent.mark_episode_boundary()
        observation = _observation(rng)
        action = agent.act(observation, reward)
        observations.append(observation)
        firsts.append(t in (0, 5))
        rewards.append(reward)
        actions.append(action)
        reward = float(t % 3)
    prev_action = [-1, *actions[:-1]]
    episode_step = [t if t < 5 else t - 5 for t in range(12)]
    inputs = StepInputs(
        vector=torch.from_numpy(np.stack([o["vector"] for o in observations]))[None],
        prev_action=torch.tensor(prev_action)[None],
        prev_reward=torch.tensor(rewards)[None],
        first=torch.tensor(firsts)[None],
        episode_step=torch.tensor(episode_step)[None],
        image=torch.from_numpy(np.stack([o["image"] for o in observations]))[None],
    )
    with torch.no_grad():
        logits, _ = policy(inputs)
    assert actions == logits[0].argmax(-1).tolist()
    assert agent.context_length == 12


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image": np.zeros((16, 32, 3), dtype=np.uint8)}, "image"),
        ({"image": np.zeros((32, 32, 3), dtype=np.float32)}, "image"),
        ({"vector": np.full(6, np.nan, dtype=np.float32)}, "NaN"),
        ({"vector": np.zeros(5, dtype=np.float32)}, "vector"),
    ],
)
def test_a_bad_observation_is_refused_and_the_context_is_kept(change: dict[str, np.ndarray], message: str) -> None:
    agent = InContextAgent(build_policy(SPEC))
    rng = np.random.default_rng(1)
    agent.act(_observation(rng))
    with pytest.raises(ValueError, match=message):
        agent.act({**_observation(rng), **change})
    assert agent.context_length == 1
    agent.act(_observation(rng))
    assert agent.context_length == 2


def test_boundaries_keep_the_context_a_reset_empties_it_and_a_full_context_starts_over() -> None:
    agent = InContextAgent(build_policy(SPEC), max_context=5)
    rng = np.random.default_rng(2)
    for _ in range(3):
        agent.act(_observation(rng))
    agent.mark_episode_boundary()
    agent.act(_observation(rng), reward=1.0)
    assert agent.context_length == 4
    agent.reset_context()
    assert agent.context_length == 0
    for _ in range(6):
        agent.act(_observation(rng))
    assert agent.context_resets == 1
    assert agent.context_length == 1
    with pytest.raises(ValueError, match="reward"):
        agent.act(_observation(rng), reward=float("inf"))


def test_policy_files_round_trip_and_foreign_or_pickled_files_are_refused(tmp_path: Path) -> None:
    policy = build_policy(SPEC)
    path = save_policy(tmp_path / "policy.pt", policy, metadata={"note": "test"})
    loaded, metadata = load_policy(path)
    assert metadata == {"note": "test"}
    for a, b in zip(policy.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "relicrl.policy/1", "x": Path("/")}))
    with pytest.raises(CheckpointError):
        load_policy(evil)
    torch.save({"format": "other/1", "config": {}, "state": {}, "rng": None, "metadata": {}}, tmp_path / "o.pt")
    with pytest.raises(CheckpointError, match="not a ReLIC policy"):
        load_policy(tmp_path / "o.pt")
    with pytest.raises(CheckpointError, match="no ReLIC policy"):
        InContextAgent.load(tmp_path / "missing.pt")

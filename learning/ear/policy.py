"""EAR's policy network, its imitation of the max-entropy rule and its REINFORCE training, as the authors do it.

1. Imitation: `pretrain_episodes` max-entropy conversations on training positives (the authors use their
   train list here), (state, action) pairs recorded, cross-entropy for `pretrain_epochs` (Adam, lr 1e-3,
   batches of 64; the authors hold out 30 % for validation, here every pair trains).
2. REINFORCE: `episodes` conversations on the validation positives (shuffled, cycled), reflection off as the
   authors train; returns G_t = r_t + gamma G_{t+1}, loss -sum_t log pi(a_t|s_t) G_t, no baseline, plain SGD,
   one update per conversation. Actions are sampled from the distribution with the asked questions masked
   out and the log-probability is the masked one (the authors resample and use the unmasked one). Actions
   are chosen with the network in eval mode (dropout off), as the authors do; the loss is computed the same
   way.

The network follows the authors' `pn.py`, final Dropout and ReLU on the outputs included (non-negative
logits). Checkpoints every `checkpoint_every` conversations; `--resume` continues from the last one and the
run equals an uninterrupted one (each conversation draws from a generator of (seed, conversation index)).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from ear.configs import ConversationConfig, PolicyConfig
from ear.conversation import Context, Episode, MaxEntropy, NetworkPolicy, StateKind, run_episode, state_size
from ear.data import Dataset, dataset_of_model
from runkit import write_summary
from runkit.checkpoint import CheckpointError, load_envelope, require, save_envelope
from runkit.config import prepare_run_dir
from runkit.metrics import RunLogger
from runkit.seeding import capture_rng, restore_rng, seed_everything

CHECKPOINT_FILE = "checkpoint.pt"
POLICY_FILE = "policy.pt"
POLICY_FORMAT = "ear.policy/1"
TRAINING_FORMAT = "ear.policy-training/1"
LOG_WINDOW = 100
"""Conversations per logged average."""
PRETRAIN_LEARNING_RATE = 1e-3
PRETRAIN_BATCH = 64


class PolicyNetwork(nn.Module):
    """Linear -> Dropout(0.2) -> ReLU -> Linear -> Dropout(0.2) -> ReLU: the authors' PN, logits >= 0."""

    def __init__(self, n_inputs: int, n_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.n_inputs, self.n_actions, self.hidden = int(n_inputs), int(n_actions), int(hidden)
        self.fc1 = nn.Linear(self.n_inputs, self.hidden)
        self.dropout1 = nn.Dropout(0.2)
        self.fc2 = nn.Linear(self.hidden, self.n_actions)
        self.dropout2 = nn.Dropout(0.2)

    def forward(self, state: Tensor) -> Tensor:
        """Action logits (batch x n_actions), non-negative."""
        hidden = torch.relu(self.dropout1(self.fc1(state)))
        return torch.relu(self.dropout2(self.fc2(hidden)))


def masked_log_probs(network: PolicyNetwork, states: Tensor, masks: Tensor) -> Tensor:
    """log pi(.|s) of the distribution with masked actions (asked questions) removed (batch x n_actions)."""
    logits = network(states).masked_fill(masks, float("-inf"))
    return torch.log_softmax(logits, dim=-1)


def discounted_returns(rewards: list[float], gamma: float) -> NDArray[np.float64]:
    """G_t = r_t + gamma G_{t+1}."""
    returns = np.zeros(len(rewards))
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def reinforce_loss(network: PolicyNetwork, episode: Episode, gamma: float) -> Tensor:
    """-sum_t log pi(a_t|s_t) G_t over one conversation (network in eval mode, as the actions were chosen)."""
    states = torch.from_numpy(np.stack(episode.states))
    masks = torch.from_numpy(np.stack(episode.masks))
    actions = torch.tensor(episode.actions, dtype=torch.long)
    returns = torch.from_numpy(discounted_returns(episode.rewards, gamma)).float()
    log_probs = masked_log_probs(network, states, masks).gather(1, actions[:, None])[:, 0]
    return -(log_probs * returns).sum()


def imitation_data(
    dataset: Dataset,
    context: Context,
    kind: StateKind,
    pairs: NDArray[np.int64],
    seed: int,
    config: ConversationConfig | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """(state, action) pairs of max-entropy conversations on `pairs` (default conversation: reflection off)."""
    config = config if config is not None else ConversationConfig(reflection=False)
    states: list[NDArray[np.float32]] = []
    actions: list[int] = []
    rule = MaxEntropy()
    for i, (user, target) in enumerate(pairs):
        episode = run_episode(
            dataset,
            context.base_fm,
            rule,
            int(user),
            int(target),
            config,
            np.random.default_rng([seed, 1, i]),
            kind,
            context=context,
        )
        states.extend(episode.states)
        actions.extend(episode.actions)
    return np.stack(states).astype(np.float32), np.asarray(actions, dtype=np.int64)


def imitate(
    network: PolicyNetwork, states: NDArray[np.float32], actions: NDArray[np.int64], epochs: int, seed: int
) -> float:
    """Cross-entropy on the (ReLU) outputs, Adam lr 1e-3, batches of 64; returns the last epoch's mean loss."""
    optimizer = torch.optim.Adam(network.parameters(), lr=PRETRAIN_LEARNING_RATE)
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(states), torch.from_numpy(actions)
    network.train()
    mean = float("nan")
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(x), PRETRAIN_BATCH):
            batch = order[start : start + PRETRAIN_BATCH]
            loss = nn.functional.cross_entropy(network(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            count += len(batch)
        mean = total / max(count, 1)
    network.eval()
    return mean


class PolicyTrainer:
    """One policy training run: data, FM, network, optimiser, counters; `run()` trains to `episodes`."""

    def __init__(self, config: PolicyConfig) -> None:
        from ear.fm import load_fm

        self.config = config.resolved()
        self.run_dir = self.config.run_path
        self.checkpoint_path = self.run_dir / CHECKPOINT_FILE
        resumed = prepare_run_dir(self.run_dir, self.config.resume, self.checkpoint_path)
        seed_everything(self.config.seed, self.config.torch_deterministic, self.config.torch_threads)
        self.fm, self.fm_meta = load_fm(self.config.fm)
        self.dataset = dataset_of_model(self.fm_meta)
        self.context = Context(self.dataset, self.fm)
        self.kind: StateKind = self.config.kind
        n_actions = self.dataset.scenario.n_questions + 1
        self.network = PolicyNetwork(state_size(self.dataset, self.kind), n_actions, self.config.hidden)
        self.network.eval()
        self.optimizer = torch.optim.SGD(self.network.parameters(), lr=self.config.learning_rate)
        valid = self.dataset.interactions.valid
        self.order = valid[np.random.default_rng([self.config.seed, 3]).permutation(len(valid))]
        self.train_conversation = ConversationConfig(**{**asdict(self.config.conversation), "reflection": False})
        self.episodes_done = 0
        self.pretrain_loss = float("nan")
        self.window: dict[str, list[float]] = {"success": [], "turns": [], "return": [], "loss": []}
        self.totals = {"success": 0.0, "turns": 0.0, "return": 0.0}
        if resumed:
            self._restore()
        else:
            self._pretrain()

    def _pretrain(self) -> None:
        config = self.config
        if config.pretrain_episodes == 0:
            return
        train = self.dataset.interactions.train
        rng = np.random.default_rng([config.seed, 4])
        pairs = train[
            rng.choice(len(train), size=config.pretrain_episodes, replace=len(train) < config.pretrain_episodes)
        ]
        states, actions = imitation_data(
            self.dataset, self.context, self.kind, pairs, config.seed, self.train_conversation
        )
        self.pretrain_loss = imitate(self.network, states, actions, config.pretrain_epochs, config.seed)

    def _restore(self) -> None:
        envelope = load_envelope(self.checkpoint_path, [TRAINING_FORMAT], "EAR policy training checkpoint")
        state = envelope.state
        shape = [self.network.n_inputs, self.network.n_actions, self.network.hidden]
        require(list(state.get("shape", [])) == shape, envelope, "its network does not match this run's config")
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.episodes_done = int(state["episodes_done"])
        self.pretrain_loss = float(state["pretrain_loss"])
        self.window = {k: [float(v) for v in values] for k, values in state["window"].items()}
        self.totals = {k: float(v) for k, v in state["totals"].items()}
        if envelope.rng is not None:
            restore_rng(envelope.rng)

    def save(self) -> None:
        """Write the training checkpoint (atomically)."""
        state = {
            "shape": [self.network.n_inputs, self.network.n_actions, self.network.hidden],
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "episodes_done": self.episodes_done,
            "pretrain_loss": self.pretrain_loss,
            "window": self.window,
            "totals": self.totals,
        }
        metadata = {"scenario": self.dataset.scenario.name, "kind": self.kind, "fm": str(self.config.fm)}
        save_envelope(
            self.checkpoint_path, TRAINING_FORMAT, state, config=self.config, rng=capture_rng(), metadata=metadata
        )

    def episode(self, index: int) -> tuple[Episode, float]:
        """REINFORCE conversation `index` and its update; (episode, loss)."""
        user, target = self.order[index % len(self.order)]
        episode = run_episode(
            self.dataset,
            self.fm,
            NetworkPolicy(self.network, sample=True),
            int(user),
            int(target),
            self.train_conversation,
            np.random.default_rng([self.config.seed, 2, index]),
            self.kind,
            context=self.context,
        )
        self.network.eval()  # the loss sees the network as the actions were chosen (dropout off)
        loss = reinforce_loss(self.network, episode, self.config.gamma)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return episode, float(loss.item())

    def _log_window(self, logger: RunLogger) -> None:
        if not self.window["success"]:
            return
        for name, key in (
            ("rollout/success", "success"),
            ("rollout/turns", "turns"),
            ("rollout/return", "return"),
            ("losses/policy", "loss"),
        ):
            logger.scalar(name, float(np.mean(self.window[key])), self.episodes_done)
        self.window = {k: [] for k in self.window}

    def run(self, stop_at: int | None = None) -> Path:
        """Train to `episodes` conversations (or stop after the checkpoint at `stop_at`, for tests); the
        final policy's path (the checkpoint's when stopped early)."""
        config = self.config
        started = time.perf_counter()
        first = self.episodes_done
        with RunLogger(
            self.run_dir,
            config.episodes,
            desc="reinforce",
            unit="conv",
            tensorboard=config.tensorboard,
            progress=config.progress,
            resume_step=self.episodes_done if config.resume else None,
        ) as logger:
            if first == 0 and not config.resume:
                logger.scalar("losses/imitation", self.pretrain_loss, 0)
            while self.episodes_done < config.episodes:
                episode, loss = self.episode(self.episodes_done)
                self.episodes_done += 1
                values = {
                    "success": float(episode.success),
                    "turns": float(episode.turns),
                    "return": episode.total_reward,
                    "loss": loss,
                }
                for key, value in values.items():
                    self.window[key].append(value)
                for key in self.totals:
                    self.totals[key] += values[key]
                logger.advance(1)
                if self.episodes_done % LOG_WINDOW == 0 or self.episodes_done == config.episodes:
                    self._log_window(logger)
                if self.episodes_done % config.checkpoint_every == 0 or self.episodes_done == config.episodes:
                    self.save()
                    if stop_at is not None and self.episodes_done >= stop_at:
                        return self.checkpoint_path
            seconds = time.perf_counter() - started
            logger.scalar(
                "charts/conversations_per_second", (self.episodes_done - first) / max(seconds, 1e-9), self.episodes_done
            )
        return self.finish()

    def finish(self) -> Path:
        """Write policy.pt and summary.json; the policy's path."""
        n = max(self.episodes_done, 1)
        figures = {
            "episodes": self.episodes_done,
            "pretrain_loss": self.pretrain_loss,
            "train_success": self.totals["success"] / n,
            "train_turns": self.totals["turns"] / n,
            "train_return": self.totals["return"] / n,
        }
        path = save_policy(
            self.run_dir / POLICY_FILE,
            self.network,
            kind=self.kind,
            scenario=self.dataset.scenario.name,
            fm=Path(self.config.fm),
            metadata=figures,
            config=self.config,
        )
        write_summary(
            self.run_dir,
            {"policy": str(path), "kind": self.kind, "scenario": self.dataset.scenario.name, **figures},
        )
        return path


def train_policy(config: PolicyConfig) -> Path:
    """Imitation then REINFORCE (see the module docstring); the path of the final policy.pt."""
    return PolicyTrainer(config).run()


def save_policy(
    path: Path,
    network: PolicyNetwork,
    *,
    kind: StateKind,
    scenario: str,
    fm: Path,
    metadata: dict[str, Any] | None = None,
    config: Any = None,
) -> Path:
    """Write a deployable policy (format ear.policy/1)."""
    state = {
        "model": network.state_dict(),
        "kind": kind,
        "n_inputs": network.n_inputs,
        "n_actions": network.n_actions,
        "hidden": network.hidden,
        "scenario": scenario,
        "fm": str(fm),
    }
    return save_envelope(path, POLICY_FORMAT, state, config=config, metadata=dict(metadata or {}))


def load_policy(path: str | Path) -> tuple[PolicyNetwork, dict[str, Any]]:
    """A saved policy in eval mode and its metadata (kind, scenario, fm, sizes and training figures).

    Raises:
        CheckpointError: a missing, corrupt or foreign file, or one whose weights do not fit its sizes.
    """
    envelope = load_envelope(path, [POLICY_FORMAT], "EAR policy")
    state = envelope.state
    for key in ("model", "kind", "n_inputs", "n_actions", "hidden", "scenario", "fm"):
        require(key in state, envelope, f"lacks the entry {key!r} of an {POLICY_FORMAT} file")
    require(state["kind"] in ("ear", "crm"), envelope, f"unknown policy kind {state['kind']!r}")
    sizes = [state["n_inputs"], state["n_actions"], state["hidden"]]
    require(all(isinstance(v, int) and v >= 1 for v in sizes), envelope, f"bad network sizes {sizes}")
    network = PolicyNetwork(*sizes)
    try:
        network.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{envelope.path}: weights do not fit a {sizes} policy network ({exc})") from None
    network.eval()
    meta = {key: state[key] for key in ("kind", "scenario", "fm", "n_inputs", "n_actions", "hidden")}
    return network, {**envelope.metadata, **meta}


__all__ = [
    "POLICY_FORMAT",
    "PolicyNetwork",
    "PolicyTrainer",
    "discounted_returns",
    "imitate",
    "imitation_data",
    "load_policy",
    "masked_log_probs",
    "reinforce_loss",
    "save_policy",
    "train_policy",
]

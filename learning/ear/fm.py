"""Estimation: EAR's attribute-aware factorisation machine, its BPR training, its file and Reflection.

As the authors' code does it (`FM_old.py`, `FM_old_train.py`, `agent.py:mini_update_FM`):

- score y(u, v, P) = sum(Dropout_0.5(u*v + Σ_p u*p + Σ_p v*p)) + b, the u·p terms included (they are the
  same for every item); dropout only in training; embeddings and the bias drawn from N(0, 0.01);
- BPR summed over the batch, P a random non-empty subset of the positive item's attributes, one random
  non-interacted negative and (attribute-aware) a second negative that has every attribute of P; L2 on the
  embeddings of the positive and first-negative rows; SGD on the embeddings, SGD with weight decay 0.1 on
  the bias;
- attribute-aware: after each BPR step, a separate SGD step on the attribute embeddings only, a set-level
  BPR of P (plus the detached user) towards the item's other attributes and away from as many attributes
  it lacks.

Differences: the negatives are drawn afresh each epoch from the seed (the authors pre-sampled 50 epoch
files); the second negative is any item with every attribute of P (theirs came from simulated candidate
lists); the attributes the item lacks (C) are drawn with replacement; validation ranks held-out positives
against random items and the whole catalogue with no attribute known, and, one attribute known, against
random items that have it (see `evaluate_ranking`). Reflection does not add random items to the positives
(see `reflect`).

Each epoch logs losses/bpr, losses/attribute, charts/valid_auc, charts/valid_hit10, charts/valid_auc_known
and charts/epoch_seconds, and writes checkpoint.pt; `--resume` continues from it and ends as an
uninterrupted run does (tests check it).
"""

from __future__ import annotations

import bisect
import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from torch.nn.functional import logsigmoid

from ear.configs import ConversationConfig, FMConfig
from ear.data import Dataset, load_dataset
from runkit import write_summary
from runkit.checkpoint import CheckpointError, Envelope, load_envelope, require, save_envelope
from runkit.config import prepare_run_dir
from runkit.metrics import RunLogger
from runkit.seeding import capture_rng, restore_rng, seed_everything

FM_FORMAT = "ear.fm/1"
CHECKPOINT_FORMAT = "ear.fm-checkpoint/1"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "fm.pt"
BIAS_WEIGHT_DECAY = 0.1
"""The authors' hard-coded weight decay of the bias's SGD."""
INIT_STD = 0.01
AUC_NEGATIVES = 100
HIT_K = 10
_EVAL_STREAM = 1_000_003
"""Second seed word of the validation users' and negatives' generator (the same every epoch)."""


class AttributeFM(torch.nn.Module):
    """FM over a user, an item and the known (preferred) attributes P; attribute `n_attributes` is padding."""

    def __init__(self, n_users: int, n_items: int, n_attributes: int, dim: int = 64, dropout: float = 0.5) -> None:
        super().__init__()
        self.n_users, self.n_items, self.n_attributes = int(n_users), int(n_items), int(n_attributes)
        self.dim, self.dropout_rate = int(dim), float(dropout)
        self.user_emb = torch.nn.Embedding(self.n_users, self.dim)
        self.item_emb = torch.nn.Embedding(self.n_items, self.dim)
        self.attr_emb = torch.nn.Embedding(self.n_attributes + 1, self.dim, padding_idx=self.n_attributes)
        self.bias = torch.nn.Parameter(torch.zeros(1))
        self.dropout = torch.nn.Dropout(self.dropout_rate)
        with torch.no_grad():
            for table in (self.user_emb, self.item_emb, self.attr_emb):
                table.weight.normal_(0.0, INIT_STD)
            self.attr_emb.weight[self.n_attributes].zero_()
            self.bias.normal_(0.0, INIT_STD)

    @property
    def padding(self) -> int:
        """The padding attribute index (its embedding is zero)."""
        return self.n_attributes

    def interaction(self, users: Tensor, items: Tensor, known: Tensor) -> Tensor:
        """The pairwise-interaction vector u*v + Σ_p u*p + Σ_p v*p, B x dim (before dropout)."""
        u, v = self.user_emb(users), self.item_emb(items)
        p = self.attr_emb(known).sum(dim=1)
        return u * v + u * p + v * p

    def forward(self, users: Tensor, items: Tensor, known: Tensor) -> Tensor:
        """Scores (B) of users (B), items (B) and known attributes (B x K, padded with `n_attributes`)."""
        return self.dropout(self.interaction(users, items, known)).sum(dim=1) + self.bias

    def _known(self, known: Sequence[int], rows: int) -> Tensor:
        values = [int(a) for a in known] or [self.padding]
        return torch.tensor(values, dtype=torch.long).unsqueeze(0).expand(rows, -1)

    @torch.no_grad()
    def score_items(self, user: int, items: NDArray[np.int64], known: Sequence[int]) -> NDArray[np.float64]:
        """Scores of `items` for `user` given the known attributes (no dropout)."""
        index = torch.as_tensor(np.asarray(items, dtype=np.int64))
        users = torch.full_like(index, int(user))
        scores = self.interaction(users, index, self._known(known, len(index))).sum(dim=1) + self.bias
        return scores.double().numpy()

    @torch.no_grad()
    def attribute_scores(self, user: int, known: Sequence[int]) -> NDArray[np.float64]:
        """The FM's preference of every attribute p: u·p + Σ_{p_i in known} p·p_i."""
        query = self.user_emb.weight[int(user)] + self.attr_emb.weight[self._known(known, 1)[0]].sum(dim=0)
        return (self.attr_emb.weight[: self.n_attributes] @ query).double().numpy()

    @torch.no_grad()
    def embeddings(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """User, item and attribute embeddings (the padding row left out)."""
        return (
            self.user_emb.weight.double().numpy().copy(),
            self.item_emb.weight.double().numpy().copy(),
            self.attr_emb.weight[: self.n_attributes].double().numpy().copy(),
        )

    def sizes(self) -> dict[str, Any]:
        """What rebuilds the model: n_users, n_items, n_attributes, dim, dropout."""
        return {
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_attributes": self.n_attributes,
            "dim": self.dim,
            "dropout": self.dropout_rate,
        }


def copy_for_conversation(model: AttributeFM) -> AttributeFM:
    """A copy that one conversation's Reflection may update (the authors' per-episode deepcopy), in eval mode."""
    duplicate = copy.deepcopy(model)
    duplicate.eval()
    return duplicate


# ----------------------------------------------------------------------------------------------- sampling


class _Sampler:
    """Per-item attribute sets, per-attribute item sets and the users' training positives, for fast draws."""

    def __init__(self, dataset: Dataset) -> None:
        scenario = dataset.scenario
        self.n_items, self.n_attributes = dataset.n_items, scenario.n_attributes
        self.pad = self.n_attributes
        self.counts = np.array([len(a) for a in scenario.item_attributes], dtype=np.int64)
        width = max(1, int(self.counts.max()))
        self.item_attrs = np.full((self.n_items, width), self.pad, dtype=np.int64)
        for item, attrs in enumerate(scenario.item_attributes):
            self.item_attrs[item, : len(attrs)] = attrs
        self.has = scenario.item_attribute_matrix()
        self.items_of = [np.flatnonzero(self.has[:, a]) for a in range(self.n_attributes)]
        self.train = dataset.interactions.train
        self.interacted = np.zeros((dataset.n_users, self.n_items), dtype=bool)
        self.interacted[self.train[:, 0], self.train[:, 1]] = True
        self._candidates: dict[tuple[int, ...], list[int]] = {}

    def non_interacted(self, users: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.int64]:
        """One random item per user that is not among the user's training positives."""
        items = rng.integers(0, self.n_items, len(users))
        bad = np.flatnonzero(self.interacted[users, items])
        while len(bad):
            items[bad] = rng.integers(0, self.n_items, len(bad))
            bad = bad[self.interacted[users[bad], items[bad]]]
        return items

    def candidates(self, known: tuple[int, ...]) -> list[int]:
        """Sorted items that have every attribute of `known` (cached)."""
        found = self._candidates.get(known)
        if found is None:
            smallest = min(known, key=lambda a: len(self.items_of[a]))
            items = self.items_of[smallest]
            items = items[self.has[np.ix_(items, np.asarray(known))].all(axis=1)]
            found = self._candidates[known] = items.tolist()
        return found

    def epoch(self, rng: np.random.Generator, attribute_aware: bool) -> dict[str, NDArray[np.int64]]:
        """One epoch's shuffled rows: users, pos, neg1, neg2, known P, the other attributes B and lacking C."""
        order = rng.permutation(len(self.train))
        users, pos = self.train[order, 0], self.train[order, 1]
        n = self.counts[pos]
        size = np.where(n > 0, rng.integers(1, np.maximum(n, 1) + 1), 0)
        width = self.item_attrs.shape[1]
        slot = np.arange(width)[None, :]
        keys = np.where(slot < n[:, None], rng.random((len(pos), width)), 2.0)
        shuffled = np.take_along_axis(self.item_attrs[pos], np.argsort(keys, axis=1), axis=1)
        in_known = slot < size[:, None]
        lacks_some = (n < self.n_attributes)[:, None]  # C needs an attribute the item lacks
        in_other = (slot >= size[:, None]) & (slot < n[:, None]) & lacks_some
        known = np.where(in_known, shuffled, self.pad)
        neg1 = self.non_interacted(users, rng)
        rows = {"users": users, "pos": pos, "neg1": neg1, "known": known}
        if not attribute_aware:
            return rows
        rows["other"] = np.where(in_other, shuffled, self.pad)
        lacking = rng.integers(0, self.n_attributes, known.shape)
        bad = np.argwhere(in_other & self.has[pos[:, None], lacking])
        while len(bad):
            lacking[bad[:, 0], bad[:, 1]] = rng.integers(0, self.n_attributes, len(bad))
            bad = bad[self.has[pos[bad[:, 0]], lacking[bad[:, 0], bad[:, 1]]]]
        rows["lacking"] = np.where(in_other, lacking, self.pad)
        rows["neg2"] = self._second_negatives(known, size, pos, neg1, rng.random(len(pos)))
        return rows

    def _second_negatives(
        self,
        known: NDArray[np.int64],
        size: NDArray[np.int64],
        pos: NDArray[np.int64],
        neg1: NDArray[np.int64],
        draws: NDArray[np.float64],
    ) -> NDArray[np.int64]:
        """Per row a random item other than the positive with every known attribute (else the first negative)."""
        out = neg1.copy()
        known_rows, sizes, positives, uniforms = known.tolist(), size.tolist(), pos.tolist(), draws.tolist()
        for i, k in enumerate(sizes):
            if k == 0:
                continue
            items = self.candidates(tuple(sorted(known_rows[i][:k])))
            at = bisect.bisect_left(items, positives[i])
            present = at < len(items) and items[at] == positives[i]
            choices = len(items) - int(present)
            if choices <= 0:
                continue
            j = min(int(uniforms[i] * choices), choices - 1)
            out[i] = items[j + 1 if present and j >= at else j]
        return out


# --------------------------------------------------------------------------------------------- evaluation


def evaluate_ranking(
    model: AttributeFM, dataset: Dataset, split: Literal["valid", "test"], users: int, seed: int
) -> dict[str, float]:
    """AUC and hit@10 of held-out positives (no known attributes), over `users` random users with some.

    auc: each held-out positive against `AUC_NEGATIVES` random items that are none of the user's positives
    (ties count half). hit10: whether the positive is among the top 10 of all items that are not the user's
    training positives (the user's other held-out positives compete too). auc_known (close to the authors'
    validation and to a conversation's ranking): P = one random attribute of the positive (the user's opening
    turn), the positive against `AUC_NEGATIVES` random items with that attribute that are none of the user's
    positives. Means over positives."""
    held = getattr(dataset.interactions, split)
    if len(held) == 0:
        return {"auc": float("nan"), "hit10": float("nan"), "auc_known": float("nan"), "users": 0.0, "positives": 0.0}
    rng = np.random.default_rng([seed, _EVAL_STREAM])
    candidates = np.unique(held[:, 0])
    chosen = np.sort(rng.choice(candidates, size=min(users, len(candidates)), replace=False))
    interactions = dataset.interactions
    liked = np.zeros((dataset.n_users, dataset.n_items), dtype=bool)
    for pairs in (interactions.train, interactions.valid, interactions.test):
        liked[pairs[:, 0], pairs[:, 1]] = True
    in_train = np.zeros_like(liked)
    in_train[interactions.train[:, 0], interactions.train[:, 1]] = True
    order = np.argsort(held[:, 0], kind="stable")
    starts = np.searchsorted(held[order, 0], chosen)
    ends = np.searchsorted(held[order, 0], chosen, side="right")
    everything = np.arange(dataset.n_items, dtype=np.int64)
    aucs: list[float] = []
    hits: list[float] = []
    known_aucs: list[float] = []
    known_rng = np.random.default_rng([seed, _EVAL_STREAM, 1])
    item_attributes = dataset.scenario.item_attributes
    items_with = [np.flatnonzero(column) for column in dataset.scenario.item_attribute_matrix().T]
    user_emb, item_emb, attr_emb = model.embeddings()
    bias = float(model.bias.detach())
    for user, start, end in zip(chosen.tolist(), starts.tolist(), ends.tolist(), strict=True):
        positives = held[order[start:end], 1]
        scores = model.score_items(user, everything, ())
        pool = np.flatnonzero(~liked[user])
        negatives = pool[rng.integers(0, len(pool), (len(positives), AUC_NEGATIVES))]
        mine, theirs = scores[positives][:, None], scores[negatives]
        aucs.extend(((mine > theirs).mean(axis=1) + 0.5 * (mine == theirs).mean(axis=1)).tolist())
        ranked = scores[~in_train[user]]
        above = (ranked[None, :] > scores[positives][:, None]).sum(axis=1)
        hits.extend((above < HIT_K).astype(float).tolist())
        for item in positives.tolist():
            attrs = item_attributes[item]
            if len(attrs) == 0:
                continue
            attribute = int(attrs[known_rng.integers(len(attrs))])
            pool = items_with[attribute][~liked[user, items_with[attribute]]]
            if len(pool) == 0:
                continue
            ranked_items = np.concatenate([[item], pool[known_rng.integers(0, len(pool), AUC_NEGATIVES)]])
            u, v, a = user_emb[user], item_emb[ranked_items], attr_emb[attribute]
            known_scores = v @ (u + a) + u @ a + bias
            known_aucs.append(
                float((known_scores[0] > known_scores[1:]).mean() + 0.5 * (known_scores[0] == known_scores[1:]).mean())
            )
    return {
        "auc": float(np.mean(aucs)),
        "hit10": float(np.mean(hits)),
        "auc_known": float(np.mean(known_aucs)) if known_aucs else float("nan"),
        "users": float(len(chosen)),
        "positives": float(len(aucs)),
    }


# ----------------------------------------------------------------------------------------------- training


class _Training:
    """The model, its three SGD optimisers and one epoch of the authors' alternating updates."""

    def __init__(self, model: AttributeFM, config: FMConfig) -> None:
        self.model, self.config = model, config
        self.bias_opt = torch.optim.SGD([model.bias], lr=config.learning_rate, weight_decay=BIAS_WEIGHT_DECAY)
        tables = [model.user_emb.weight, model.item_emb.weight, model.attr_emb.weight]
        self.emb_opt = torch.optim.SGD(tables, lr=config.learning_rate)
        self.attr_opt = torch.optim.SGD([model.attr_emb.weight], lr=config.attribute_learning_rate)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by name (for the checkpoint)."""
        return {"bias": self.bias_opt, "embeddings": self.emb_opt, "attributes": self.attr_opt}

    def epoch(self, rows: dict[str, NDArray[np.int64]]) -> dict[str, float]:
        """One pass over the rows; mean BPR loss (per positive, without L2) and mean attribute loss (per row)."""
        model, config = self.model, self.config
        aware = config.attribute_aware
        data = {name: torch.from_numpy(values) for name, values in rows.items()}
        n = len(rows["users"])
        bpr_sum = attr_sum = 0.0
        attr_rows = 0
        model.train()
        for start in range(0, n, config.batch_size):
            batch = {name: values[start : start + config.batch_size] for name, values in data.items()}
            users, known = batch["users"], batch["known"]
            items = [batch["pos"], batch["neg1"]] + ([batch["neg2"]] if aware else [])
            b = len(users)
            scores = model(users.repeat(len(items)), torch.cat(items), known.repeat(len(items), 1)).view(len(items), b)
            bpr = -logsigmoid(scores[0] - scores[1]).sum()
            if aware:
                bpr = bpr - logsigmoid(scores[0] - scores[2]).sum()
            u = model.user_emb(users)
            norms = (
                2 * u.pow(2).sum()
                + model.item_emb(batch["pos"]).pow(2).sum()
                + model.item_emb(batch["neg1"]).pow(2).sum()
                + 2 * model.attr_emb(known).pow(2).sum()
            )
            loss = bpr + config.l2 * norms
            self.bias_opt.zero_grad(set_to_none=True)
            self.emb_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.bias_opt.step()
            self.emb_opt.step()
            bpr_sum += float(bpr.detach())
            if aware:
                attr_loss, rows_used = self._attribute_step(batch)
                attr_sum += attr_loss
                attr_rows += rows_used
        model.eval()
        return {"bpr": bpr_sum / max(1, n), "attribute": attr_sum / max(1, attr_rows)}

    def _attribute_step(self, batch: dict[str, Tensor]) -> tuple[float, int]:
        """The set-level attribute BPR on the attribute embeddings only; (summed loss, rows with some B)."""
        model = self.model
        other = batch["other"]
        keep = other.ne(model.padding).any(dim=1)
        rows = int(keep.sum())
        if rows == 0:
            return 0.0, 0
        table = model.attr_emb
        anchor = table(batch["known"]).sum(dim=1) + model.user_emb.weight[batch["users"]].detach()
        gap = (anchor * (table(other).sum(dim=1) - table(batch["lacking"]).sum(dim=1))).sum(dim=1)
        loss = -logsigmoid(gap[keep]).sum()
        self.attr_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.attr_opt.step()
        return float(loss.detach()), rows


def _model_for(dataset: Dataset, config: FMConfig) -> AttributeFM:
    return AttributeFM(dataset.n_users, dataset.n_items, dataset.scenario.n_attributes, config.dim, config.dropout)


def train_fm(config: FMConfig, progress_desc: str = "fm") -> Path:
    """Train (or resume) the estimation model; write checkpoint.pt each epoch, then fm.pt and summary.json.

    Returns the path of fm.pt. Raises DataError (bad data), RunDirectoryError, CheckpointError (resume)."""
    config = config.resolved()
    run_dir = config.run_path
    checkpoint_path = run_dir / CHECKPOINT_FILE
    seed_everything(config.seed, config.torch_deterministic, config.torch_threads)
    dataset = load_dataset(config.scenario, config.data_dir, config.min_items)
    resumed = prepare_run_dir(run_dir, config.resume, checkpoint_path)
    model = _model_for(dataset, config)
    model.eval()
    training = _Training(model, config)
    sampler = _Sampler(dataset)
    epochs_done = 0
    history: list[dict[str, float]] = []
    if resumed:
        epochs_done, history = _restore(checkpoint_path, training)
    with RunLogger(
        run_dir,
        config.epochs,
        desc=progress_desc,
        unit="epoch",
        tensorboard=config.tensorboard,
        progress=config.progress,
        resume_step=epochs_done if resumed else None,
    ) as logger:
        while epochs_done < config.epochs:
            started = time.perf_counter()
            rows = sampler.epoch(np.random.default_rng([config.seed, epochs_done]), config.attribute_aware)
            losses = training.epoch(rows)
            valid = evaluate_ranking(model, dataset, "valid", config.eval_users, config.seed)
            epochs_done += 1
            figures = {
                "losses/bpr": losses["bpr"],
                "charts/valid_auc": valid["auc"],
                "charts/valid_hit10": valid["hit10"],
                "charts/valid_auc_known": valid["auc_known"],
                "charts/epoch_seconds": time.perf_counter() - started,
            }
            if config.attribute_aware:
                figures["losses/attribute"] = losses["attribute"]
            logger.scalars(figures, epochs_done)
            history.append({name.split("/", 1)[1]: value for name, value in figures.items()})
            _save_checkpoint(checkpoint_path, training, config, epochs_done, history)
            logger.flush()
            logger.advance(1, auc=valid["auc"], bpr=losses["bpr"])
    test = evaluate_ranking(model, dataset, "test", config.eval_users, config.seed)
    last = history[-1] if history else {}
    figures = {
        "epochs": epochs_done,
        "valid_auc": last.get("valid_auc", float("nan")),
        "valid_hit10": last.get("valid_hit10", float("nan")),
        "valid_auc_known": last.get("valid_auc_known", float("nan")),
        "test_auc": test["auc"],
        "test_hit10": test["hit10"],
        "test_auc_known": test["auc_known"],
        "bpr": last.get("bpr", float("nan")),
    }
    metadata = {
        "scenario": config.scenario,
        "min_items": config.min_items,
        "attribute_aware": config.attribute_aware,
        "data": dataset.summary(),
        "figures": figures,
    }
    model_path = save_envelope(
        run_dir / MODEL_FILE,
        FM_FORMAT,
        {"model": model.state_dict(), "sizes": model.sizes()},
        config=config,
        metadata=metadata,
    )
    write_summary(run_dir, {**metadata, "model": str(model_path), "history": history})
    return model_path


def _save_checkpoint(
    path: Path, training: _Training, config: FMConfig, epochs_done: int, history: list[dict[str, float]]
) -> None:
    state = {
        "model": training.model.state_dict(),
        "sizes": training.model.sizes(),
        "optimizers": {name: opt.state_dict() for name, opt in training.optimizers().items()},
        "epoch": epochs_done,
        "history": history,
    }
    metadata = {"scenario": config.scenario, "min_items": config.min_items}
    save_envelope(path, CHECKPOINT_FORMAT, state, config=config, rng=capture_rng(), metadata=metadata)


def _restore(path: Path, training: _Training) -> tuple[int, list[dict[str, float]]]:
    envelope = load_envelope(path, (CHECKPOINT_FORMAT,), "EAR estimation checkpoint")
    state = envelope.state
    require({"model", "sizes", "optimizers", "epoch"} <= set(state), envelope, "lacks the model or the optimisers")
    require(state["sizes"] == training.model.sizes(), envelope, f"its model {state['sizes']} does not fit this run")
    _load_weights(training.model, state["model"], envelope)
    try:
        for name, optimizer in training.optimizers().items():
            optimizer.load_state_dict(state["optimizers"][name])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: optimiser states do not fit ({exc})") from None
    if envelope.rng is not None:
        restore_rng(envelope.rng)
    return int(state["epoch"]), [dict(row) for row in state.get("history", [])]


def _load_weights(model: AttributeFM, weights: Any, envelope: Envelope) -> None:
    require(isinstance(weights, dict), envelope, "its weights are not a state dict")
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{envelope.path}: weights do not fit the model ({str(exc).splitlines()[0]})") from None


def load_fm(path: str | Path) -> tuple[AttributeFM, dict[str, Any]]:
    """The estimation model (eval mode) and its metadata (scenario, min_items, data, figures) from fm.pt.

    Raises:
        CheckpointError: the file is missing, damaged, of another kind, or its weights do not fit its sizes.
    """
    envelope = load_envelope(path, (FM_FORMAT,), "EAR estimation model")
    state, metadata = envelope.state, envelope.metadata
    require("model" in state and isinstance(state.get("sizes"), dict), envelope, "lacks the model's sizes or weights")
    require({"scenario", "min_items"} <= set(metadata), envelope, "lacks the scenario in its metadata")
    sizes = state["sizes"]
    try:
        model = AttributeFM(
            int(sizes["n_users"]),
            int(sizes["n_items"]),
            int(sizes["n_attributes"]),
            int(sizes["dim"]),
            float(sizes["dropout"]),
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{envelope.path}: bad model sizes {sizes} ({exc})") from None
    _load_weights(model, state["model"], envelope)
    model.eval()
    return model, dict(metadata)


# --------------------------------------------------------------------------------------------- reflection


def reflect(
    model: AttributeFM,
    user: int,
    rejected: Sequence[int],
    positives: NDArray[np.int64],
    known: Sequence[int],
    n_items: int,
    rng: np.random.Generator,
    config: ConversationConfig,
) -> None:
    """Reflection: update `model` in place (pass `copy_for_conversation`'s copy) after a rejected list.

    `config.reflection_steps` passes of BPR as the authors' `mini_update_FM`: every positive (the user's
    training positives) is repeated ⌊batch/|pos|⌋ + 1 times, each copy paired with a random negative, the
    pairs shuffled and cut into ⌊pairs/batch⌋ batches; negatives are the rejected items plus as many random
    items the user has not interacted with. BPR with P = `known`, L2 `reflection_l2` on the pairs'
    embeddings, plain SGD on every parameter, dropout on (its mask drawn from `rng`, so the update depends
    only on `rng`). Unlike the authors' code, random items are *not* added to the positives (theirs are, under
    a comment calling them negatives: a bug). The model is left in eval mode."""
    pos_items = np.asarray(positives, dtype=np.int64)
    rejected_items = np.asarray(list(rejected), dtype=np.int64)
    if config.reflection_steps == 0 or len(pos_items) == 0 or len(rejected_items) == 0:
        model.eval()
        return
    blocked = np.zeros(n_items, dtype=bool)
    blocked[pos_items] = True
    blocked[rejected_items] = True
    free = np.flatnonzero(~blocked)
    random_items = free[rng.integers(0, len(free), len(rejected_items))] if len(free) else rejected_items
    negatives = np.concatenate([rejected_items, random_items])
    batch_size = config.reflection_batch_size
    repeats = batch_size // len(pos_items) + 1
    known_index = torch.tensor([int(a) for a in known if int(a) != model.padding], dtype=torch.long)
    keep = 1.0 - model.dropout_rate
    model.train()
    for _ in range(config.reflection_steps):
        pair_pos = np.tile(pos_items, repeats)
        pair_neg = negatives[rng.integers(0, len(negatives), len(pair_pos))]
        order = rng.permutation(len(pair_pos))
        pair_pos, pair_neg = pair_pos[order], pair_neg[order]
        for start in range(0, len(pair_pos) - batch_size + 1, batch_size):
            mask = None
            if model.dropout_rate > 0:
                mask = torch.from_numpy(rng.random((2 * batch_size, model.dim)) < keep).float() / keep
            batch = slice(start, start + batch_size)
            _reflection_step(model, int(user), pair_pos[batch], pair_neg[batch], known_index, mask, config)
    model.eval()


def _reflection_step(
    model: AttributeFM,
    user: int,
    positives: NDArray[np.int64],
    negatives: NDArray[np.int64],
    known: Tensor,
    mask: Tensor | None,
    config: ConversationConfig,
) -> None:
    """One SGD step of BPR on (user, positive, negative) pairs, its gradient written out (autograd costs more
    than the step): only the touched rows change, as plain SGD on every parameter would change them."""
    items = torch.from_numpy(np.concatenate([positives, negatives]))
    b = len(positives)
    rate, l2 = config.reflection_learning_rate, config.reflection_l2
    with torch.no_grad():
        u = model.user_emb.weight[user]
        v = model.item_emb.weight[items]
        p = model.attr_emb.weight[known]
        p_sum = p.sum(dim=0)
        keep = mask if mask is not None else torch.ones_like(v)
        scores = (keep * (u * v + u * p_sum + v * p_sum)).sum(dim=1).view(2, b) + model.bias
        # loss = -Σ log σ(y⁺ - y⁻) + l2 (2b‖u‖² + Σ‖v‖² + 2b‖P‖²); the bias cancels in y⁺ - y⁻ (its gradient is
        # 0). d loss / d y per row:
        slope = -torch.sigmoid(scores[1] - scores[0])
        per_row = (torch.cat([slope, -slope]).unsqueeze(1) * keep).to(v.dtype)
        grad_u = (per_row * (v + p_sum)).sum(dim=0) + 4 * b * l2 * u
        grad_v = per_row * (u + p_sum) + 2 * l2 * v
        grad_p = (per_row * (u + v)).sum(dim=0) + 4 * b * l2 * p
        model.user_emb.weight[user] -= rate * grad_u
        model.item_emb.weight.index_add_(0, items, grad_v, alpha=-rate)
        model.attr_emb.weight.index_add_(0, known, grad_p, alpha=-rate)


__all__ = [
    "CHECKPOINT_FORMAT",
    "FM_FORMAT",
    "AttributeFM",
    "copy_for_conversation",
    "evaluate_ranking",
    "load_fm",
    "reflect",
    "train_fm",
]

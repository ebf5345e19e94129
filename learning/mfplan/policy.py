"""The planning policy: a small transformer over a course's segments that outputs segment-time allocations.

A course of `N` waypoints has `M = N - 1` segments. Each segment becomes a token of normalised
features (`encode_course`); one more token carries the course's global features (start state,
segment count, total length). Two pre-norm transformer blocks (d = 64) mix them, and two heads read
the result: a global log-scale `g` from the global token and a per-segment correction `r_i` from
each segment token. The action is the vector of log-time factors ``a_i = g + r_i`` with a Gaussian
of learned, state-independent standard deviation around it; a segment's time is

    T_i = clip(length_i / v_ref * exp(clip(a_i)), min_segment_time_s, max_segment_time_s),

always positive and finite. The mean of `a_i` is soft-clamped (a scaled tanh), so no input and no
weights can push the deterministic action outside a sane range.

A single course takes a fast path (`act`): no padding mask, no autograd. Batches of courses
(`collate`) carry a padding mask; padded segments contribute nothing to log-probabilities or entropy.

One checkpoint format (`save_policy` / `read_policy` / `load_policy`, `CHECKPOINT_FORMAT`): a runkit
envelope (`runkit.checkpoint`) whose state holds the weights, the model configuration and the feature
names, whose config is the training run's and whose metadata holds plain values (the command that made
it, the calibration); written atomically, read with `weights_only=True` (a crafted file is refused,
never executed). Files of the retired format `mfplan.policy/1` are refused with the command that
re-exports them (`UPGRADE_COMMAND`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from scipy.special import erf
from torch import nn
from torch.nn import functional

from mfplan.configs import PolicyConfig
from minsnap.validation import as_vector, as_waypoints
from runkit import checkpoint as runkit_checkpoint
from runkit import to_jsonable, write_bytes_atomic
from runkit.checkpoint import CheckpointError, envelope_bytes, load_envelope, require
from runkit.cli import typed_one_line

SEGMENT_FEATURE_NAMES = (
    "dx",
    "dy",
    "dz",
    "length",
    "log_length",
    "yaw_change",
    "cos_turn_previous",
    "cos_turn_next",
    "relative_index",
)
GLOBAL_FEATURE_NAMES = (
    "start_vx",
    "start_vy",
    "start_vz",
    "start_ax",
    "start_ay",
    "start_az",
    "start_speed_along_first_segment",
    "num_segments",
    "total_length",
    "log_total_length",
)
NUM_SEGMENT_FEATURES = len(SEGMENT_FEATURE_NAMES)
NUM_GLOBAL_FEATURES = len(GLOBAL_FEATURE_NAMES)

LENGTH_SCALE_M = 3.0
"""Lengths are divided by this (a typical segment of the 9 x 9 x 3 m courses is 1.5 to 10 m)."""
SPEED_SCALE_M_S = 3.0
ACCELERATION_SCALE_M_S2 = 5.0
SEGMENT_COUNT_SCALE = 10.0
FEATURE_CLIP = 10.0
"""Every feature is clipped to [-FEATURE_CLIP, FEATURE_CLIP]: far-out inputs cannot blow up activations."""

CHECKPOINT_FORMAT = "mfplan.policy/2"
"""A runkit envelope (`runkit.checkpoint`): state = weights, policy config and feature names; config = the
training run's; metadata = plain values (what made the file, the calibration)."""
POLICY_KIND = "mfplan policy checkpoint"
"""What errors call a policy file."""
RETIRED_FORMATS = ("mfplan.policy/1",)
"""Refused with the command that re-exports the file (`UPGRADE_COMMAND`)."""
UPGRADE_COMMAND = "python learning/mfplan/checkpoints/upgrade.py"
"""Re-exports an `mfplan.policy/1` file as `mfplan.policy/2` (see learning/mfplan/checkpoints/README.md)."""


# ---------------------------------------------------------------------------------------------
# Course encoding.


@dataclass(frozen=True)
class CourseEncoding:
    """The policy's view of one course.

    Attributes:
        segment_features: `M x NUM_SEGMENT_FEATURES` float32, O(1) (see `SEGMENT_FEATURE_NAMES`).
        global_features: `NUM_GLOBAL_FEATURES` float32, O(1) (see `GLOBAL_FEATURE_NAMES`).
        segment_lengths_m: `M` float64 straight-line segment lengths (finite, > 0).
    """

    segment_features: NDArray[np.float32]
    global_features: NDArray[np.float32]
    segment_lengths_m: NDArray[np.float64]

    @property
    def num_segments(self) -> int:
        """Number of segments `M`."""
        return int(self.segment_lengths_m.shape[0])


def encode_course(
    waypoints: ArrayLike, start_velocity: ArrayLike | None = None, start_acceleration: ArrayLike | None = None
) -> CourseEncoding:
    """Features of a course (`N x 3` or `N x 4` waypoints, ENU m and rad) flown from the given start state.

    Raises `minsnap.TrajectoryInputError` for waypoints or start vectors that cannot define a trajectory.
    """
    points = as_waypoints(waypoints)
    velocity = np.zeros(3) if start_velocity is None else as_vector(start_velocity, "start velocity", 3)
    acceleration = np.zeros(3) if start_acceleration is None else as_vector(start_acceleration, "start acceleration", 3)
    return encode_validated_course(points, velocity, acceleration)


_LARGE_COORDINATE_M = 1e150
"""Up to this, squared segment lengths cannot overflow; beyond it positions are measured in scaled units."""
_FLOAT_MAX = float(np.finfo(np.float64).max)
_FLOAT_TINY = float(np.finfo(np.float64).tiny)


def encode_validated_course(
    points: NDArray[np.float64], start_velocity: NDArray[np.float64], start_acceleration: NDArray[np.float64]
) -> CourseEncoding:
    """`encode_course` for inputs already checked: `N x 4` finite waypoints with distinct consecutive positions
    (as `minsnap.validation.as_waypoints` returns them) and two finite 3-vectors."""
    positions = points[:, :3]
    peak = float(np.abs(positions).max())
    scale = 1.0 if peak < _LARGE_COORDINATE_M else peak
    steps = positions[1:] - positions[:-1] if scale == 1.0 else positions[1:] / scale - positions[:-1] / scale
    unit_lengths = np.maximum(np.sqrt(np.einsum("ij,ij->i", steps, steps)), _FLOAT_TINY)  # M, units of `scale`
    directions = steps / unit_lengths[:, None]
    lengths = np.minimum(unit_lengths, _FLOAT_MAX / scale) * scale
    num_segments = steps.shape[0]
    features = np.zeros((num_segments, NUM_SEGMENT_FEATURES))
    step_clip = FEATURE_CLIP * LENGTH_SCALE_M / scale  # clip before scaling up: no overflow
    features[:, 0:3] = _clip(steps, step_clip) * (scale / LENGTH_SCALE_M)
    features[:, 3] = np.minimum(unit_lengths, step_clip) * (scale / LENGTH_SCALE_M)
    features[:, 4] = np.log(lengths * (1.0 / LENGTH_SCALE_M))
    yaw = points[:, 3] % (2.0 * np.pi)  # first into [0, 2 pi): a step between huge yaws cannot overflow
    features[:, 5] = ((yaw[1:] - yaw[:-1] + np.pi) % (2.0 * np.pi) - np.pi) * (1.0 / np.pi)
    cos_turns = np.einsum("ij,ij->i", directions[:-1], directions[1:])
    features[1:, 6] = cos_turns
    features[:-1, 7] = cos_turns
    features[:, 8] = np.arange(num_segments) * (1.0 / max(num_segments - 1, 1))
    total_length = float(unit_lengths.sum()) * scale  # a Python float: overflows to inf without a warning
    global_features = np.empty(NUM_GLOBAL_FEATURES)
    global_features[0:3] = _clip(start_velocity * (1.0 / SPEED_SCALE_M_S), FEATURE_CLIP)
    global_features[3:6] = start_acceleration * (1.0 / ACCELERATION_SCALE_M_S2)
    global_features[6] = float(directions[0] @ global_features[0:3])
    global_features[7] = num_segments / SEGMENT_COUNT_SCALE
    global_features[8] = total_length / (SEGMENT_COUNT_SCALE * LENGTH_SCALE_M)
    global_features[9] = math.log(total_length / LENGTH_SCALE_M)
    _clip(features, FEATURE_CLIP, out=features)
    _clip(global_features, FEATURE_CLIP, out=global_features)
    return CourseEncoding(features.astype(np.float32), global_features.astype(np.float32), lengths)


def _clip(values: NDArray[np.float64], bound: float, out: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """`values` clipped to [-bound, bound] (`np.clip` without its per-call overhead; NaN stays NaN)."""
    clipped: NDArray[np.float64] = np.minimum(np.maximum(values, -bound, out=out), bound, out=out)
    return clipped


@dataclass(frozen=True)
class CourseBatch:
    """Courses of different lengths padded to the longest (`B` courses, at most `M` segments).

    Attributes:
        segment_features: `B x M x NUM_SEGMENT_FEATURES` float32 (zeros where padded).
        global_features: `B x NUM_GLOBAL_FEATURES` float32.
        mask: `B x M` bool, True for a real segment.
        segment_lengths_m: `B x M` float64 (ones where padded).
    """

    segment_features: torch.Tensor
    global_features: torch.Tensor
    mask: torch.Tensor
    segment_lengths_m: torch.Tensor

    @property
    def num_segments(self) -> torch.Tensor:
        """`B` segment counts (int64)."""
        return self.mask.sum(dim=1)


def collate(encodings: Sequence[CourseEncoding]) -> CourseBatch:
    """Batch variable-length courses with a padding mask."""
    if not encodings:
        raise ValueError("collate needs at least one course encoding")
    count = len(encodings)
    longest = max(e.num_segments for e in encodings)
    segment_features = np.zeros((count, longest, NUM_SEGMENT_FEATURES), dtype=np.float32)
    lengths = np.ones((count, longest))
    mask = np.zeros((count, longest), dtype=bool)
    for b, encoding in enumerate(encodings):
        m = encoding.num_segments
        segment_features[b, :m] = encoding.segment_features
        lengths[b, :m] = encoding.segment_lengths_m
        mask[b, :m] = True
    return CourseBatch(
        segment_features=torch.from_numpy(segment_features),
        global_features=torch.from_numpy(np.stack([e.global_features for e in encodings])),
        mask=torch.from_numpy(mask),
        segment_lengths_m=torch.from_numpy(lengths),
    )


# ---------------------------------------------------------------------------------------------
# The model.


class _Dense(nn.Module):
    """Affine map ``y = x W + b`` with `W` stored `in x out`, so that numpy reads it contiguously (fast path)."""

    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default initialisation
        self.weight = nn.Parameter(torch.empty(fan_in, fan_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(fan_out).uniform_(-bound, bound))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """`... x in` to `... x out`."""
        return functional.linear(values, self.weight.t(), self.bias)


class _Block(nn.Module):
    """Pre-norm transformer block: masked multi-head self-attention, then a feed-forward layer."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        d = config.d_model
        self.num_heads = config.num_heads
        self.attention_norm = nn.LayerNorm(d)
        self.qkv = _Dense(d, 3 * d)
        self.attention_out = _Dense(d, d)
        self.feedforward_norm = nn.LayerNorm(d)
        self.feedforward_in = _Dense(d, config.ff_hidden)
        self.feedforward_out = _Dense(config.ff_hidden, d)

    def forward(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """`B x L x d` tokens; `attention_mask` is `B x 1 x 1 x L` bool (True: may be attended to) or None."""
        batch, length, width = tokens.shape
        qkv = self.qkv(self.attention_norm(tokens)).view(batch, length, 3, self.num_heads, -1)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each B x H x L x d/H
        attended = functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        tokens = tokens + self.attention_out(attended.transpose(1, 2).reshape(batch, length, width))
        return tokens + self.feedforward_out(functional.gelu(self.feedforward_in(self.feedforward_norm(tokens))))


class TimeAllocationPolicy(nn.Module):
    """Gaussian policy over per-segment log-time factors (see the module docstring)."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        super().__init__()
        self.config = config or PolicyConfig()
        d = self.config.d_model
        self.segment_embedding = _Dense(NUM_SEGMENT_FEATURES, d)
        self.global_embedding = _Dense(NUM_GLOBAL_FEATURES, d)
        self.blocks = nn.ModuleList(_Block(self.config) for _ in range(self.config.num_layers))
        self.final_norm = nn.LayerNorm(d)
        self.global_head = _Dense(d, 1)
        self.segment_head = _Dense(d, 1)
        self.value_head = _Dense(d, 1)
        self.log_std = nn.Parameter(torch.tensor([self.config.init_log_std]))
        with torch.no_grad():
            for head in (self.global_head, self.segment_head):
                head.weight.normal_(0.0, self.config.head_init_std)
                head.bias.zero_()
        self._numpy_view: _NumpyForward | None = None

    def _trunk(
        self, segment_features: torch.Tensor, global_features: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean log-time factors `B x M` (0 where padded) and values `B` from `B x M x F` and `B x G` features."""
        tokens = torch.cat(
            [self.global_embedding(global_features).unsqueeze(1), self.segment_embedding(segment_features)], dim=1
        )
        attention_mask = None
        if mask is not None:
            attention_mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)[:, None, None, :]
        for block in self.blocks:
            tokens = block(tokens, attention_mask)
        tokens = self.final_norm(tokens)
        raw = self.global_head(tokens[:, :1]).squeeze(-1) + self.segment_head(tokens[:, 1:]).squeeze(-1)
        limit = self.config.mean_log_factor_limit
        mean = limit * torch.tanh(torch.nan_to_num(raw, nan=0.0) / limit)
        if mask is not None:
            mean = mean.masked_fill(~mask, 0.0)
        value = self.value_head(tokens[:, 0]).squeeze(-1)
        return mean, value

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """As `nn.Module.load_state_dict` (and the numpy fast path re-reads the weights)."""
        self._numpy_view = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _apply(self, fn: Any, recurse: bool = True) -> TimeAllocationPolicy:
        self._numpy_view = None  # `.to()`, `.double()` and friends may give the parameters new storage
        return super()._apply(fn, recurse)

    def forward(self, batch: CourseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean actions `B x M` (0 where padded) and value estimates `B`."""
        return self._trunk(batch.segment_features, batch.global_features, batch.mask)

    @property
    def action_std(self) -> torch.Tensor:
        """The state-independent standard deviation of every action (a 1-element tensor)."""
        return torch.exp(self.log_std.clamp(-7.0, 2.0))

    def distribution(self, batch: CourseBatch) -> torch.distributions.Normal:
        """Independent Normal over the `B x M` actions; padded entries are N(0, std) and must be masked."""
        mean, _ = self.forward(batch)
        return torch.distributions.Normal(mean, self.action_std.expand_as(mean))

    def log_prob(self, batch: CourseBatch, actions: torch.Tensor) -> torch.Tensor:
        """Log-density `B` of `B x M` actions, summed over each course's real segments (padding ignored)."""
        per_segment = self.distribution(batch).log_prob(torch.where(batch.mask, actions, 0.0))
        return torch.where(batch.mask, per_segment, 0.0).sum(dim=1)

    def entropy(self, batch: CourseBatch) -> torch.Tensor:
        """Entropy `B` of each course's action distribution (summed over its real segments)."""
        per_segment = 0.5 * math.log(2.0 * math.pi * math.e) + self.log_std.clamp(-7.0, 2.0)
        return per_segment * batch.num_segments.to(per_segment.dtype)

    def value(self, batch: CourseBatch) -> torch.Tensor:
        """Value estimate `B` (the trainer may use it as a baseline; untrained it means nothing)."""
        return self.forward(batch)[1]

    def segment_times(self, batch: CourseBatch, actions: torch.Tensor) -> torch.Tensor:
        """Segment times `B x M` (float64 s) of `B x M` actions; padded entries are 0."""
        limit = self.config.action_log_factor_limit
        factors = torch.nan_to_num(actions.detach().to(torch.float64), nan=0.0).clamp(-limit, limit)
        capped = batch.segment_lengths_m.clamp(max=self.config.max_segment_time_s * self.config.reference_speed_m_s)
        times = (capped / self.config.reference_speed_m_s * torch.exp(factors)).clamp(
            self.config.min_segment_time_s, self.config.max_segment_time_s
        )
        return torch.where(batch.mask, times, 0.0)

    def mean_log_factors(self, encoding: CourseEncoding) -> NDArray[np.float64]:
        """Deterministic actions `M` of one course (the fast path: numpy, no padding, no autograd).

        Computes what `forward` computes for a batch of this one course, to float32 rounding.
        """
        view = self._numpy_view
        if view is None or not view.is_current():
            view = self._numpy_view = _NumpyForward(self)
        return view.mean_log_factors(encoding.segment_features, encoding.global_features)

    def act(
        self, encoding: CourseEncoding, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> NDArray[np.float64]:
        """Segment times `M` (s, positive and finite) for one course: the mean action, or a sample."""
        log_factors = self.mean_log_factors(encoding)
        if not deterministic:
            noise = torch.randn(log_factors.shape, generator=generator, dtype=torch.float64).numpy()
            log_factors = log_factors + float(self.action_std.detach()) * noise
        return segment_times_from_log_factors(encoding.segment_lengths_m, log_factors, self.config)


class _NumpyForward:
    """The forward pass of one course in numpy, on zero-copy views of the policy's weights.

    PyTorch spends microseconds on every operator call, and one 10-waypoint course is a few dozen tiny
    matrix products: numpy does the same arithmetic in about half the time. The arrays share memory with
    the parameters, so in-place updates (optimiser steps, `load_state_dict`) show at once; a parameter that
    got new storage (`.to()`, `.data = ...`) is noticed through its data pointer and the views are rebuilt.
    """

    def __init__(self, policy: TimeAllocationPolicy) -> None:
        self.parameters = tuple(policy.parameters())
        self.pointers = self._pointers()
        self.config = policy.config

        def dense(layer: _Dense) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
            return _numpy_view(layer.weight), _numpy_view(layer.bias)

        def norm(layer: nn.LayerNorm) -> tuple[NDArray[np.floating], NDArray[np.floating], float]:
            assert layer.weight is not None
            assert layer.bias is not None
            return _numpy_view(layer.weight), _numpy_view(layer.bias), float(layer.eps)

        self.segment_embedding = dense(policy.segment_embedding)
        self.global_embedding = dense(policy.global_embedding)
        self.blocks = [
            (
                norm(block.attention_norm),
                dense(block.qkv),
                dense(block.attention_out),
                norm(block.feedforward_norm),
                dense(block.feedforward_in),
                dense(block.feedforward_out),
            )
            for block in policy.blocks
            if isinstance(block, _Block)
        ]
        self.final_norm = norm(policy.final_norm)
        self.global_head = dense(policy.global_head)
        self.segment_head = dense(policy.segment_head)

    def _pointers(self) -> tuple[int, ...]:
        return tuple(parameter.data_ptr() for parameter in self.parameters)

    def is_current(self) -> bool:
        """Whether every parameter still has the storage these views read."""
        return self._pointers() == self.pointers

    def mean_log_factors(self, segment_features: NDArray[np.float32], global_features: NDArray[np.float32]) -> Any:
        """Mean actions `M` (float64) from `M x NUM_SEGMENT_FEATURES` and `NUM_GLOBAL_FEATURES` features."""
        num_tokens = segment_features.shape[0] + 1
        width = self.config.d_model
        heads = self.config.num_heads
        tokens = np.empty((num_tokens, width), dtype=self.segment_embedding[0].dtype)
        tokens[0] = global_features @ self.global_embedding[0]
        tokens[0] += self.global_embedding[1]
        tokens[1:] = segment_features @ self.segment_embedding[0]
        tokens[1:] += self.segment_embedding[1]
        inverse_sqrt_head = 1.0 / math.sqrt(width // heads)
        with np.errstate(over="ignore", invalid="ignore"):  # extreme weights: a non-finite mean becomes 0 below
            for attention_norm, qkv, attention_out, feedforward_norm, feedforward_in, feedforward_out in self.blocks:
                projected = _layer_norm(tokens, *attention_norm) @ qkv[0] + qkv[1]
                query, key, value = projected.reshape(num_tokens, 3, heads, -1).transpose(1, 2, 0, 3)
                scores = (query * inverse_sqrt_head) @ key.transpose(0, 2, 1)  # H x L x L
                scores -= np.maximum.reduce(scores, axis=2, keepdims=True)
                np.exp(scores, out=scores)
                scores /= np.add.reduce(scores, axis=2, keepdims=True)
                attended = (scores @ value).transpose(1, 0, 2).reshape(num_tokens, width)
                tokens = tokens + (attended @ attention_out[0] + attention_out[1])
                hidden = _gelu(_layer_norm(tokens, *feedforward_norm) @ feedforward_in[0] + feedforward_in[1])
                tokens = tokens + (hidden @ feedforward_out[0] + feedforward_out[1])
            final = _layer_norm(tokens, *self.final_norm)
            raw = (final[1:] @ self.segment_head[0])[:, 0] + (final[0] @ self.global_head[0] + self.global_head[1])
            raw = raw.astype(np.float64) + float(self.segment_head[1][0])
        raw[np.isnan(raw)] = 0.0
        limit = self.config.mean_log_factor_limit
        return limit * np.tanh(raw * (1.0 / limit))


def _numpy_view(parameter: torch.Tensor) -> NDArray[np.floating]:
    view: NDArray[np.floating] = parameter.detach().numpy()
    return view


def _layer_norm(values: Any, weight: Any, bias: Any, eps: float) -> Any:
    """LayerNorm over the last axis (as `torch.nn.LayerNorm`)."""
    inverse_width = 1.0 / values.shape[-1]
    centred = values - np.add.reduce(values, axis=-1, keepdims=True) * inverse_width
    variance = np.add.reduce(centred * centred, axis=-1, keepdims=True) * inverse_width
    return centred / np.sqrt(variance + eps) * weight + bias


def _gelu(values: Any) -> Any:
    """Exact (erf) GELU, as `torch.nn.functional.gelu`."""
    half = 0.5 * values
    return half + half * erf(values * _SQRT_HALF)


_SQRT_HALF = math.sqrt(0.5)


def segment_times_from_log_factors(
    segment_lengths_m: NDArray[np.float64], log_factors: ArrayLike, config: PolicyConfig
) -> NDArray[np.float64]:
    """``T_i = clip(length_i / v_ref * exp(clip(a_i)), floor, ceiling)``: positive and finite for any input."""
    limit = config.action_log_factor_limit
    factors = np.array(log_factors, dtype=np.float64)
    factors[np.isnan(factors)] = 0.0
    np.clip(factors, -limit, limit, out=factors)
    capped = np.minimum(segment_lengths_m, config.max_segment_time_s * config.reference_speed_m_s)
    times = capped * (1.0 / config.reference_speed_m_s) * np.exp(factors)
    return np.clip(times, config.min_segment_time_s, config.max_segment_time_s)


# ---------------------------------------------------------------------------------------------
# Checkpoints.


class PolicyCheckpointError(CheckpointError):
    """A policy checkpoint is missing, unreadable, of another format, or does not fit the model (one line)."""


class MissingCheckpointError(PolicyCheckpointError, runkit_checkpoint.MissingCheckpointError):
    """No policy checkpoint at the given path."""


@dataclass(frozen=True)
class PolicyFile:
    """A policy checkpoint as read: the policy (in eval mode), its metadata, and the training run's config."""

    path: Path
    policy: TimeAllocationPolicy
    metadata: dict[str, Any]
    """Plain values about the file: what made it (`command`, `iteration`, `evaluations`), `calibration`."""
    config: dict[str, Any]
    """The training run's configuration as JSON values ({} when not known)."""


def feature_names() -> dict[str, list[str]]:
    """The names of the features the policy reads (stored in every checkpoint, checked when one is read)."""
    return {"segment": list(SEGMENT_FEATURE_NAMES), "global": list(GLOBAL_FEATURE_NAMES)}


def retired_formats(path: Path) -> dict[str, str]:
    """What to do about a file of a retired format (the advice `runkit.checkpoint.load_envelope` gives)."""
    return {
        "mfplan.policy/1": f"re-export it with `{UPGRADE_COMMAND} {path}`",
        "mfplan.trainer/1": f"this version cannot resume it (start a new run in another folder); "
        f"re-export the run's policy with `{UPGRADE_COMMAND} {path.parent / 'policy.pt'}`",
    }


def policy_state(policy: TimeAllocationPolicy) -> dict[str, Any]:
    """The `state` of a policy file: the weights and everything needed to rebuild the model around them."""
    return {
        "model": {name: tensor.detach().cpu().clone() for name, tensor in policy.state_dict().items()},
        "policy_config": dataclasses.asdict(policy.config),
        "features": feature_names(),
    }


def policy_file_bytes(
    policy: TimeAllocationPolicy, metadata: Mapping[str, Any] | None = None, config: Any = None
) -> bytes:
    """The bytes of a policy file (format `CHECKPOINT_FORMAT`): what `save_policy` writes."""
    return envelope_bytes(CHECKPOINT_FORMAT, policy_state(policy), config=config, metadata=to_jsonable(metadata or {}))


def save_policy(
    path: str | Path, policy: TimeAllocationPolicy, metadata: Mapping[str, Any] | None = None, config: Any = None
) -> Path:
    """Write `policy` to `path` atomically, as a runkit envelope of format `CHECKPOINT_FORMAT`.

    Args:
        metadata: plain values about the file (numpy values are converted; non-finite floats become None).
        config: the training run's configuration (a dataclass or a mapping), stored as JSON values.
    """
    return write_bytes_atomic(path, policy_file_bytes(policy, metadata, config))


def read_policy(path: str | Path) -> PolicyFile:
    """Read a policy checkpoint safely (`weights_only=True`: a crafted file is refused, never executed).

    Raises:
        MissingCheckpointError: no file at `path`.
        PolicyCheckpointError: the file is not a readable policy checkpoint of this format (one line, naming the
            file); a /1 file is refused with the command that re-exports it.
    """
    source = Path(path)
    if not source.is_file():
        raise MissingCheckpointError(
            f"no policy checkpoint at {source}; train one with `mfrl train` (it writes one in its run folder)"
        )
    try:
        envelope = load_envelope(source, (CHECKPOINT_FORMAT,), POLICY_KIND, retired=retired_formats(source))
        state = envelope.state
        missing = [key for key in ("model", "policy_config", "features") if key not in state]
        require(not missing, envelope, f"lacks the entries {missing} of a {CHECKPOINT_FORMAT} checkpoint")
        require(
            state["features"] == feature_names(),
            envelope,
            f"trained on features {state['features']}, but this version computes {feature_names()}; "
            "retrain the policy with `mfrl train`",
        )
    except CheckpointError as exc:
        raise PolicyCheckpointError(str(exc)) from None
    try:
        policy = TimeAllocationPolicy(PolicyConfig(**state["policy_config"]))
        policy.load_state_dict(state["model"])
    except (TypeError, ValueError, RuntimeError, AttributeError, KeyError) as exc:
        raise PolicyCheckpointError(f"{source}: the stored model does not fit: {typed_one_line(exc)}") from None
    bad = [name for name, tensor in policy.state_dict().items() if not torch.isfinite(tensor).all()]
    if bad:
        raise PolicyCheckpointError(f"{source}: non-finite weights in {bad}")
    return PolicyFile(source, policy.eval(), dict(envelope.metadata), dict(envelope.config))


def load_policy(path: str | Path) -> tuple[TimeAllocationPolicy, dict[str, Any]]:
    """The policy (in eval mode) and the metadata of a checkpoint written by `save_policy` (see `read_policy`).

    Raises:
        MissingCheckpointError: no file at `path`.
        PolicyCheckpointError: the file is not a readable policy checkpoint of this format (one line).
    """
    loaded = read_policy(path)
    return loaded.policy, loaded.metadata

"""A causal transformer policy over a whole trial's history, with Sink-KV in every layer (ReLIC).

One token per environment step. A token is the sum of embeddings of what the agent saw and did:
the observation (an MLP of the `vector` part, plus a small CNN of the `image` part when there is one),
the previous action (a learned "none" at the first step of a trial), the previous reward, the
episode-boundary flag and the step's index inside its episode (learned, clamped at
`max_episode_steps - 1`). Attention runs over every earlier step of the trial, across episodes.

Sink-KV, as the authors' code does it: every attention layer has a learned key (zero at the start)
and a value (zero, and by default not trained) that sit before the first step; every query attends to
them, so a head can give its weight to "nothing" instead of spreading it over steps it does not need.
A test reads the softmax weights and shows the real steps' weights summing to less than one.

Attention goes through `torch.nn.functional.scaled_dot_product_attention` with `is_causal=True` and no
mask tensor: no T x T matrix is built, so memory grows linearly with the context. The sink is placed
as a first token (its query is zero and its output dropped), which keeps the causal kernel's
top-left alignment exact. Acting step by step uses a KV cache (one query against the cached keys, no
mask needed); `ContextCache` keeps keys and values in preallocated tensors with the sink at index 0,
so a step writes one slot instead of copying the whole cache.

Differences from the reference: position inside an episode is a learned embedding and the episode's
index in the trial is not embedded (the authors add RoPE over episode indices); the causal order
itself tells the model which episode came first.

Shapes: B environments (batch), T steps, H heads, D model width, A actions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional


@dataclass(frozen=True)
class ModelSpec:
    """The architecture of a policy: what it reads and how big it is (stored in every checkpoint)."""

    vector_dim: int
    """Width of the observation's `vector` part."""
    num_actions: int
    """Number of discrete actions."""
    image_shape: tuple[int, int, int] | None = None
    """(H, W, 3) of the observation's `image` part (uint8), or None for a blind agent."""
    d_model: int = 64
    """Token width (the authors' tiny policy: 64)."""
    n_layers: int = 2
    """Transformer layers."""
    n_heads: int = 8
    """Attention heads per layer."""
    d_mlp: int = 256
    """Hidden width of each layer's MLP."""
    max_episode_steps: int = 512
    """Rows of the in-episode position embedding (later steps share the last row)."""
    sink_kv: bool = True
    """A learned sink key and value in every attention layer (False: the no-sink ablation)."""
    sink_value_trainable: bool = False
    """Train the sink's value too (the authors' default keeps it at zero)."""
    architecture: str = "transformer"
    """"transformer", or "lstm" for the RL^2-style recurrent baseline (same token embedding)."""

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if self.architecture not in ("transformer", "lstm"):
            raise ValueError(f"architecture must be 'transformer' or 'lstm', got {self.architecture!r}")
        if self.vector_dim < 1 or self.num_actions < 1:
            raise ValueError("vector_dim and num_actions must be >= 1")


@dataclass
class StepInputs:
    """What the policy reads at each of T steps of B environments.

    vector: `B x T x vector_dim` float; image: `B x T x H x W x 3` uint8 or None; prev_action: `B x T`
    long (-1 at a trial's first step); prev_reward: `B x T` float; first: `B x T` bool (first step of
    an episode); episode_step: `B x T` long (index inside the episode).
    """

    vector: Tensor
    prev_action: Tensor
    prev_reward: Tensor
    first: Tensor
    episode_step: Tensor
    image: Tensor | None = None

    def slice(self, envs: slice | Tensor, steps: slice) -> StepInputs:
        """The inputs of some environments over a range of steps."""
        image = None if self.image is None else self.image[envs, steps]
        return StepInputs(
            vector=self.vector[envs, steps],
            prev_action=self.prev_action[envs, steps],
            prev_reward=self.prev_reward[envs, steps],
            first=self.first[envs, steps],
            episode_step=self.episode_step[envs, steps],
            image=image,
        )


class ObservationEncoder(nn.Module):
    """Observation, previous action, previous reward, boundary flag and in-episode step -> one token."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        d = spec.d_model
        self.spec = spec
        self.vector = nn.Sequential(nn.Linear(spec.vector_dim, d), nn.GELU(), nn.Linear(d, d))
        self.image: nn.Module | None = None
        if spec.image_shape is not None:
            h, w, c = spec.image_shape
            conv = nn.Sequential(
                nn.Conv2d(c, 16, kernel_size=8, stride=4), nn.ReLU(), nn.Conv2d(16, 32, kernel_size=4, stride=2)
            )
            with torch.no_grad():
                flat = conv(torch.zeros(1, c, h, w)).numel()
            self.image = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(flat, d))
        self.prev_action = nn.Embedding(spec.num_actions + 1, d)  # row num_actions: "no previous action"
        self.prev_reward = nn.Linear(1, d)
        self.first = nn.Embedding(2, d)
        self.position = nn.Embedding(spec.max_episode_steps, d)

    def forward(self, inputs: StepInputs) -> Tensor:
        """`B x T x D` tokens."""
        token = self.vector(inputs.vector.float())
        if self.image is not None:
            if inputs.image is None:
                raise ValueError("this policy reads images: StepInputs.image is None")
            b, t = inputs.image.shape[:2]
            pixels = inputs.image.reshape(b * t, *inputs.image.shape[2:]).permute(0, 3, 1, 2).float() / 255.0
            token = token + self.image(pixels).reshape(b, t, -1)
        action = torch.where(inputs.prev_action < 0, self.spec.num_actions, inputs.prev_action)
        token = token + self.prev_action(action.long())
        token = token + self.prev_reward(inputs.prev_reward.float().unsqueeze(-1))
        token = token + self.first(inputs.first.long())
        position = inputs.episode_step.long().clamp(0, self.spec.max_episode_steps - 1)
        return token + self.position(position)


class ContextCache:
    """Keys and values of every layer for B environments, in preallocated `B x H x capacity x Dh` tensors.

    With Sink-KV, slot 0 holds each layer's sink and the steps follow; `length` counts steps only.
    The capacity doubles when a step would not fit.
    """

    def __init__(self, keys: list[Tensor], values: list[Tensor], length: int, offset: int) -> None:
        self.keys = keys
        self.values = values
        self.length = length
        self.offset = offset

    @property
    def used(self) -> int:
        """Slots in use (sink included)."""
        return self.offset + self.length

    def reserve(self, slots: int) -> None:
        """Make room for `slots` more steps."""
        need = self.used + slots
        capacity = self.keys[0].shape[2]
        if need <= capacity:
            return
        grown = max(need, 2 * capacity)
        for i in range(len(self.keys)):
            for store in (self.keys, self.values):
                old = store[i]
                new = old.new_zeros(old.shape[0], old.shape[1], grown, old.shape[3])
                new[:, :, : self.used] = old[:, :, : self.used]
                store[i] = new


class SinkAttention(nn.Module):
    """Multi-head causal self-attention with an optional learned sink key and value."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.heads = spec.n_heads
        self.head_dim = spec.d_model // spec.n_heads
        self.qkv = nn.Linear(spec.d_model, 3 * spec.d_model, bias=False)
        self.out = nn.Linear(spec.d_model, spec.d_model, bias=False)
        self.sink = spec.sink_kv
        if self.sink:
            self.sink_key = nn.Parameter(torch.zeros(self.heads, 1, self.head_dim))
            self.sink_value = nn.Parameter(
                torch.zeros(self.heads, 1, self.head_dim), requires_grad=spec.sink_value_trainable
            )

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return q, k, v

    def _merge(self, y: Tensor) -> Tensor:
        b, _, t, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))

    def _with_sink(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v with the sink placed as a first token (zero query; its output is dropped)."""
        b = q.shape[0]
        zero_query = q.new_zeros(b, self.heads, 1, self.head_dim)
        sink_k = self.sink_key.to(k.dtype).expand(b, -1, -1, -1)
        sink_v = self.sink_value.to(v.dtype).expand(b, -1, -1, -1)
        return torch.cat([zero_query, q], 2), torch.cat([sink_k, k], 2), torch.cat([sink_v, v], 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Causal attention over all T steps of `x` (`B x T x D`); returns (output, keys, values).

        Keys and values are `B x H x T' x Dh` with the sink first when there is one (T' = T + 1), as
        a `ContextCache` stores them.
        """
        q, k, v = self._split(x)
        if self.sink:
            q, k, v = self._with_sink(q, k, v)
        y = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        if self.sink:
            y = y[:, :, 1:]
        return self._merge(y), k, v

    def step(self, x: Tensor, layer: int, cache: ContextCache) -> Tensor:
        """One new step (`B x 1 x D`) attending to the cache; its key and value are written into the cache."""
        q, k, v = self._split(x)
        slot = cache.used
        cache.keys[layer][:, :, slot : slot + 1] = k
        cache.values[layer][:, :, slot : slot + 1] = v
        keys = cache.keys[layer][:, :, : slot + 1]
        values = cache.values[layer][:, :, : slot + 1]
        return self._merge(functional.scaled_dot_product_attention(q, keys, values))

    def attention_weights(self, x: Tensor) -> Tensor:
        """The softmax weights (`B x H x T x T'`, sink column first when there is one), computed densely.

        For tests and inspection on short sequences only: it builds the T x T' matrix.
        """
        q, k, v = self._split(x)
        if self.sink:
            q, k, v = self._with_sink(q, k, v)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        n = scores.shape[-1]
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        weights = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        return weights[:, :, 1:] if self.sink else weights


class TransformerLayer(nn.Module):
    """Pre-norm layer: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(spec.d_model)
        self.attention = SinkAttention(spec)
        self.norm2 = nn.LayerNorm(spec.d_model)
        self.mlp = nn.Sequential(nn.Linear(spec.d_model, spec.d_mlp), nn.GELU(), nn.Linear(spec.d_mlp, spec.d_model))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(output, keys, values) over all steps of `x`."""
        attended, k, v = self.attention(self.norm1(x))
        x = x + attended
        return x + self.mlp(self.norm2(x)), k, v

    def step(self, x: Tensor, layer: int, cache: ContextCache) -> Tensor:
        """One step against the cache."""
        x = x + self.attention.step(self.norm1(x), layer, cache)
        return x + self.mlp(self.norm2(x))


class TransformerPolicy(nn.Module):
    """Actor-critic over a trial's history: tokens -> causal transformer -> action logits and a value."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.encoder = ObservationEncoder(spec)
        self.layers = nn.ModuleList([TransformerLayer(spec) for _ in range(spec.n_layers)])
        self.norm = nn.LayerNorm(spec.d_model)
        self.actor = nn.Linear(spec.d_model, spec.num_actions)
        self.critic = nn.Linear(spec.d_model, 1)

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.norm(x)
        return self.actor(x), self.critic(x).squeeze(-1)

    def forward(self, inputs: StepInputs) -> tuple[Tensor, Tensor]:
        """Action logits (`B x T x A`) and values (`B x T`) at every step, each seeing only earlier steps."""
        x = self.encoder(inputs)
        for layer in self.layers:
            x, _, _ = layer(x)
        return self._heads(x)

    def new_context(self, batch: int, capacity: int) -> ContextCache:
        """An empty context for `batch` environments, room for `capacity` steps (it grows when needed)."""
        offset = 1 if self.spec.sink_kv else 0
        param = self.actor.weight
        head_dim = self.spec.d_model // self.spec.n_heads
        shape = (batch, self.spec.n_heads, offset + max(capacity, 1), head_dim)
        keys = [param.new_zeros(shape) for _ in self.layers]
        values = [param.new_zeros(shape) for _ in self.layers]
        if offset:
            for i, layer in enumerate(self.layers):
                attention = layer.attention
                assert isinstance(attention, SinkAttention)
                keys[i][:, :, 0] = attention.sink_key.detach().squeeze(1)
                values[i][:, :, 0] = attention.sink_value.detach().squeeze(1)
        return ContextCache(keys, values, length=0, offset=offset)

    @torch.no_grad()
    def rebuild_context(self, inputs: StepInputs, capacity: int) -> ContextCache:
        """The context of all steps of `inputs`, recomputed with the current parameters (after an update)."""
        batch, steps = inputs.vector.shape[:2]
        cache = self.new_context(batch, max(capacity, steps))
        x = self.encoder(inputs)
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x)
            cache.keys[i][:, :, : k.shape[2]] = k
            cache.values[i][:, :, : v.shape[2]] = v
        cache.length = steps
        return cache

    @torch.no_grad()
    def step(self, inputs: StepInputs, cache: Context) -> tuple[Tensor, Tensor]:
        """Logits (`B x A`) and values (`B`) of one new step (`inputs` with T = 1); appended to `cache`."""
        if not isinstance(cache, ContextCache):
            raise TypeError(f"a transformer acts on a ContextCache, got {type(cache).__name__}")
        cache.reserve(1)
        x = self.encoder(inputs)
        for i, layer in enumerate(self.layers):
            assert isinstance(layer, TransformerLayer)
            x = layer.step(x, i, cache)
        cache.length += 1
        logits, values = self._heads(x)
        return logits[:, 0], values[:, 0]


class RecurrentContext:
    """An LSTM's state for B environments (the RL^2 baseline's "context")."""

    def __init__(self, state: tuple[Tensor, Tensor], length: int = 0) -> None:
        self.state = state
        self.length = length


class RecurrentPolicy(nn.Module):
    """RL^2-style baseline: the same tokens through an LSTM whose state is kept across a trial's episodes."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.encoder = ObservationEncoder(spec)
        self.lstm = nn.LSTM(spec.d_model, spec.d_model, num_layers=spec.n_layers, batch_first=True)
        self.norm = nn.LayerNorm(spec.d_model)
        self.actor = nn.Linear(spec.d_model, spec.num_actions)
        self.critic = nn.Linear(spec.d_model, 1)

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.norm(x)
        return self.actor(x), self.critic(x).squeeze(-1)

    def forward(self, inputs: StepInputs) -> tuple[Tensor, Tensor]:
        """Logits (`B x T x A`) and values (`B x T`) from the start of the trial."""
        x, _ = self.lstm(self.encoder(inputs))
        return self._heads(x)

    def new_context(self, batch: int, capacity: int) -> RecurrentContext:
        """A zero state."""
        zeros = self.actor.weight.new_zeros(self.spec.n_layers, batch, self.spec.d_model)
        return RecurrentContext((zeros, zeros.clone()))

    @torch.no_grad()
    def rebuild_context(self, inputs: StepInputs, capacity: int) -> RecurrentContext:
        """The state after all steps of `inputs` under the current parameters."""
        _, state = self.lstm(self.encoder(inputs))
        return RecurrentContext(state, inputs.vector.shape[1])

    @torch.no_grad()
    def step(self, inputs: StepInputs, context: Context) -> tuple[Tensor, Tensor]:
        """Logits (`B x A`) and values (`B`) of one step; the state moves on."""
        if not isinstance(context, RecurrentContext):
            raise TypeError(f"an LSTM acts on a RecurrentContext, got {type(context).__name__}")
        x, context.state = self.lstm(self.encoder(inputs), context.state)
        context.length += 1
        logits, values = self._heads(x)
        return logits[:, 0], values[:, 0]


Context = ContextCache | RecurrentContext
"""What a policy keeps between steps: a transformer's KV cache, or an LSTM's state."""
ContextPolicy = TransformerPolicy | RecurrentPolicy
"""A policy the trainer, evaluator and node can drive: forward, new_context, rebuild_context, step."""


def build_policy(spec: ModelSpec) -> ContextPolicy:
    """The policy that `spec` describes."""
    return TransformerPolicy(spec) if spec.architecture == "transformer" else RecurrentPolicy(spec)


__all__ = [
    "Context",
    "ContextCache",
    "ContextPolicy",
    "ModelSpec",
    "RecurrentContext",
    "RecurrentPolicy",
    "SinkAttention",
    "StepInputs",
    "TransformerPolicy",
    "build_policy",
]

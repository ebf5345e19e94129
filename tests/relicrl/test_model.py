"""The policy: Sink-KV takes attention mass, the KV-cached step equals a full forward, the kernel has no mask."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from relicrl.model import ModelSpec, SinkAttention, StepInputs, TransformerPolicy, build_policy


def _inputs(batch: int, steps: int, spec: ModelSpec, seed: int = 0) -> StepInputs:
    g = torch.Generator().manual_seed(seed)
    image = None
    if spec.image_shape is not None:
        image = torch.randint(0, 256, (batch, steps, *spec.image_shape), generator=g, dtype=torch.uint8)
    first = torch.rand(batch, steps, generator=g) < 0.1
    first[:, 0] = True
    return StepInputs(
        vector=torch.randn(batch, steps, spec.vector_dim, generator=g),
        prev_action=torch.randint(-1, spec.num_actions, (batch, steps), generator=g),
        prev_reward=torch.randn(batch, steps, generator=g),
        first=first,
        episode_step=torch.randint(0, 40, (batch, steps), generator=g),
        image=image,
    )


def _randomise_sinks(policy: torch.nn.Module) -> None:
    """Give the sinks non-zero keys (they start at zero, which would hide a wrong placement)."""
    for module in policy.modules():
        if isinstance(module, SinkAttention) and module.sink:
            module.sink_key.data.normal_(0, 2.0)


SPECS = [
    pytest.param(ModelSpec(vector_dim=3, num_actions=4), id="transformer-sink"),
    pytest.param(ModelSpec(vector_dim=3, num_actions=4, sink_kv=False), id="transformer-no-sink"),
    pytest.param(ModelSpec(vector_dim=6, num_actions=3, image_shape=(32, 32, 3)), id="transformer-image"),
    pytest.param(ModelSpec(vector_dim=3, num_actions=4, architecture="lstm"), id="lstm"),
]


@pytest.mark.parametrize("spec", SPECS)
def test_cached_step_by_step_acting_equals_one_full_forward(spec: ModelSpec) -> None:
    torch.manual_seed(0)
    policy = build_policy(spec).eval()
    _randomise_sinks(policy)
    inputs = _inputs(2, 41, spec)
    with torch.no_grad():
        logits, values = policy(inputs)
    context = policy.new_context(2, capacity=4)  # grows while acting
    stepped = [policy.step(inputs.slice(slice(None), slice(t, t + 1)), context) for t in range(41)]
    step_logits = torch.stack([s[0] for s in stepped], 1)
    step_values = torch.stack([s[1] for s in stepped], 1)
    torch.testing.assert_close(step_logits, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step_values, values, atol=1e-5, rtol=1e-5)
    assert context.length == 41


@pytest.mark.parametrize("spec", SPECS)
def test_context_rebuilt_after_an_update_continues_like_the_full_forward(spec: ModelSpec) -> None:
    torch.manual_seed(1)
    policy = build_policy(spec).eval()
    _randomise_sinks(policy)
    inputs = _inputs(3, 30, spec, seed=1)
    with torch.no_grad():
        logits, _ = policy(inputs)
    context = policy.rebuild_context(inputs.slice(slice(None), slice(0, 20)), capacity=20)
    for t in range(20, 30):
        step_logits, _ = policy.step(inputs.slice(slice(None), slice(t, t + 1)), context)
        torch.testing.assert_close(step_logits, logits[:, t], atol=1e-5, rtol=1e-5)


def test_the_sink_takes_attention_mass_so_real_steps_weigh_less_than_one() -> None:
    torch.manual_seed(2)
    spec = ModelSpec(vector_dim=3, num_actions=4)
    policy = TransformerPolicy(spec).eval()
    attention = policy.layers[0].attention
    x = torch.randn(1, 1, spec.d_model).expand(1, 16, -1)  # one query repeated: every step asks the same
    with torch.no_grad():
        attention.sink_key.data.zero_()
        weights = attention.attention_weights(x)  # B x H x T x (T + 1): sink column first
        real = weights[..., 1:].sum(-1)
        assert torch.allclose(weights.sum(-1), torch.ones_like(real))
        assert (real < 1.0).all(), "with a sink every query must give it some weight"
        # a sink key aligned with the queries takes most of the mass: heads can attend to "nothing"
        q, k, _ = (part[0, :, :1] for part in attention._split(x))  # H x 1 x Dh: the one query and key
        scale = attention.head_dim**0.5
        real_logit = (q * k).sum(-1, keepdim=True) / scale
        # a sink key whose logit is 10 above the real steps' one
        attention.sink_key.data.copy_(q * (real_logit + 10.0) * scale / q.pow(2).sum(-1, keepdim=True))
        sunk = attention.attention_weights(x)[..., 1:].sum(-1)
    assert sunk.max() < 0.1, (
        f"an aligned sink key should take > 90 % of every query's weight, real steps kept {sunk.max():.2f}"
    )


def test_no_sink_ablation_gives_real_steps_all_the_weight() -> None:
    spec = ModelSpec(vector_dim=3, num_actions=4, sink_kv=False)
    attention = TransformerPolicy(spec).layers[0].attention
    with torch.no_grad():
        weights = attention.attention_weights(torch.randn(1, 9, spec.d_model))
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, spec.n_heads, 9))


def test_the_causal_kernel_matches_dense_attention_with_the_sink_and_never_sees_the_future() -> None:
    torch.manual_seed(3)
    spec = ModelSpec(vector_dim=3, num_actions=4)
    attention = TransformerPolicy(spec).layers[0].attention
    attention.sink_key.data.normal_()
    attention.sink_value.data.normal_()
    x = torch.randn(2, 12, spec.d_model)
    with torch.no_grad():
        fast, _, _ = attention(x)
        q, k, v = attention._split(x)
        q, k, v = attention._with_sink(q, k, v)
        dense = attention.attention_weights(x) @ v  # rows of the real steps against sink + steps
        expected = attention._merge(dense)
        torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-5)
        changed = x.clone()
        changed[:, 7:] += 5.0
        later, _, _ = attention(changed)
    torch.testing.assert_close(later[:, :7], fast[:, :7])


def test_attention_passes_no_mask_tensor_to_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    real = functional.scaled_dot_product_attention

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(functional, "scaled_dot_product_attention", spy)
    spec = ModelSpec(vector_dim=3, num_actions=4)
    policy = TransformerPolicy(spec).eval()
    inputs = _inputs(1, 10, spec)
    with torch.no_grad():
        policy(inputs)
        policy.step(inputs.slice(slice(None), slice(0, 1)), policy.new_context(1, 4))
    assert calls, "attention must go through scaled_dot_product_attention"
    assert all(call.get("attn_mask") is None for call in calls)
    assert calls[0].get("is_causal") is True


def test_a_spec_that_cannot_be_built_is_refused_with_its_reason() -> None:
    with pytest.raises(ValueError, match="multiple of n_heads"):
        ModelSpec(vector_dim=3, num_actions=4, d_model=30, n_heads=8)
    with pytest.raises(ValueError, match="architecture"):
        ModelSpec(vector_dim=3, num_actions=4, architecture="gru")

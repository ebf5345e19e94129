"""The planning policy: always positive finite times, masked batches, the fast path, checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from mfplan.configs import TrainConfig
from mfplan.courses import course_set
from mfplan.policy import (
    CHECKPOINT_FORMAT,
    GLOBAL_FEATURE_NAMES,
    NUM_GLOBAL_FEATURES,
    NUM_SEGMENT_FEATURES,
    SEGMENT_FEATURE_NAMES,
    MissingCheckpointError,
    PolicyCheckpointError,
    PolicyConfig,
    TimeAllocationPolicy,
    collate,
    encode_course,
    load_policy,
    read_policy,
    save_policy,
    segment_times_from_log_factors,
)
from minsnap import TrajectoryInputError
from runkit.checkpoint import CheckpointError, load_envelope

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COURSES = course_set(6, seed=3)


def _random_policy(seed: int, weight_std: float = 0.3, config: PolicyConfig | None = None) -> TimeAllocationPolicy:
    """A policy with every weight drawn at random (heads included), so outputs differ between courses."""
    torch.manual_seed(seed)
    policy = TimeAllocationPolicy(config)
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.normal_(0.0, weight_std)
    return policy


def _batched_means(policy: TimeAllocationPolicy, courses: list[NDArray[np.float64]]) -> list[NDArray[np.float64]]:
    encodings = [encode_course(c) for c in courses]
    with torch.no_grad():
        mean, _ = policy(collate(encodings))
    return [mean[b, : e.num_segments].numpy().astype(np.float64) for b, e in enumerate(encodings)]


# ---------------------------------------------------------------------------------------------
# Encoding.


def test_encoding_features_are_order_one_and_describe_the_course() -> None:
    waypoints = np.array(
        [[0.0, 0.0, 1.0, 0.0], [3.0, 0.0, 1.0, np.pi / 2], [3.0, 3.0, 1.0, np.pi], [6, 3, 1, -np.pi / 2]]
    )
    encoding = encode_course(waypoints, start_velocity=[3.0, 0.0, 0.0], start_acceleration=[0.0, 5.0, 0.0])
    features = dict(zip(SEGMENT_FEATURE_NAMES, encoding.segment_features.T, strict=True))
    glob = dict(zip(GLOBAL_FEATURE_NAMES, encoding.global_features, strict=True))
    assert encoding.segment_features.shape == (3, NUM_SEGMENT_FEATURES)
    assert encoding.global_features.shape == (NUM_GLOBAL_FEATURES,)
    assert encoding.segment_features.dtype == np.float32
    np.testing.assert_allclose(encoding.segment_lengths_m, [3.0, 3.0, 3.0])
    np.testing.assert_allclose(features["dx"], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(features["log_length"], [0.0, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(features["yaw_change"], [0.5, 0.5, 0.5], atol=1e-7)  # pi to -pi/2: the short way
    np.testing.assert_allclose(features["cos_turn_previous"], [0.0, 0.0, 0.0], atol=1e-7)  # right angles; 0 at start
    np.testing.assert_allclose(features["relative_index"], [0.0, 0.5, 1.0])
    assert glob["start_vx"] == pytest.approx(1.0)
    assert glob["start_ay"] == pytest.approx(1.0)
    assert glob["start_speed_along_first_segment"] == pytest.approx(1.0)
    assert glob["num_segments"] == pytest.approx(0.3)


def test_straight_line_turn_cosines_are_one_inside_and_zero_at_the_ends() -> None:
    encoding = encode_course(np.array([[0, 0, 1], [1, 0, 1], [3, 0, 1], [4, 0, 1]], dtype=float))
    cosines = encoding.segment_features[:, [6, 7]]
    np.testing.assert_allclose(cosines, [[0, 1], [1, 1], [1, 0]], atol=1e-7)


@pytest.mark.parametrize(
    ("waypoints", "match"),
    [
        ([[0.0, 0.0, 1.0]], "at least 2 waypoints"),
        ([[0, 0, 1], [0, 0, 1]], "same position"),
        ([[0, 0, 1], [np.nan, 0, 1]], "non-finite"),
        ([[0, 0], [1, 1]], "N x 3"),
    ],
)
def test_bad_waypoints_raise_the_solver_error(waypoints: list[list[float]], match: str) -> None:
    with pytest.raises(TrajectoryInputError, match=match):
        encode_course(np.asarray(waypoints, dtype=float))


def test_bad_start_state_raises() -> None:
    with pytest.raises(TrajectoryInputError, match="start velocity"):
        encode_course(COURSES[0], start_velocity=[np.inf, 0.0, 0.0])


# ---------------------------------------------------------------------------------------------
# Always positive and finite.


@st.composite
def _any_course(draw: st.DrawFn) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """2..30 waypoints with spacing from micrometres to 100 km, any yaw, and start states up to 1e4 m/s."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    count = draw(st.sampled_from([2, 3, 10, 30]))
    log_spacing = draw(st.floats(-5.0, 5.0))
    steps = rng.normal(size=(count - 1, 3)) * 10.0**log_spacing
    steps[np.linalg.norm(steps, axis=1) < 1e-5] = 1e-5  # as_waypoints needs distinct consecutive points
    offset = draw(st.sampled_from([0.0, 1e3, -1e6]))
    points = np.vstack([np.zeros(3), np.cumsum(steps, axis=0)]) + offset
    yaw = rng.uniform(-20.0, 20.0, (count, 1)) * draw(st.sampled_from([1.0, 1e300]))
    speed = draw(st.sampled_from([0.0, 1.0, 1e2, 1e4]))
    return np.hstack([points, yaw]), rng.normal(size=3) * speed, rng.normal(size=3) * speed


@PROPERTY_SETTINGS
@given(course=_any_course(), weight_scale=st.sampled_from([1.0, 100.0]), head_bias=st.sampled_from([-1e3, 0.0, 1e3]))
def test_times_are_always_positive_and_finite(
    course: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]], weight_scale: float, head_bias: float
) -> None:
    """Any course, any start state, weights scaled x100 and absurd head biases: times stay in the configured range."""
    waypoints, velocity, acceleration = course
    policy = _random_policy(seed=1, weight_std=0.3 * weight_scale)
    with torch.no_grad():
        policy.global_head.bias.fill_(head_bias)
    encoding = encode_course(waypoints, velocity, acceleration)
    assert np.isfinite(encoding.segment_features).all()
    assert np.isfinite(encoding.global_features).all()
    config = policy.config
    for deterministic in (True, False):
        times = policy.act(encoding, deterministic=deterministic, generator=torch.Generator().manual_seed(0))
        assert times.shape == (waypoints.shape[0] - 1,)
        assert np.isfinite(times).all()
        assert (times >= config.min_segment_time_s).all()
        assert (times <= config.max_segment_time_s).all()
    batch = collate([encoding])
    with torch.no_grad():
        batch_times = policy.segment_times(batch, policy.distribution(batch).sample())
    assert torch.isfinite(batch_times).all()
    assert (batch_times > 0).all()


def test_astronomical_coordinates_still_give_finite_features_and_times() -> None:
    waypoints = np.array([[1e200, 0, 0, 1e308], [-1e200, 0, 0, -1e308], [-1e200, 1, 0, 0], [0, 0, 1e300, 1e308]])
    policy = _random_policy(seed=2)
    encoding = encode_course(waypoints, [1e300, -1e300, 1e300], [0.0, 0.0, 0.0])
    assert np.isfinite(encoding.segment_features).all()
    assert np.isfinite(encoding.global_features).all()
    times = policy.act(encoding)
    assert np.isfinite(times).all()
    assert (times > 0).all()


@pytest.mark.parametrize("log_factor", [-np.inf, -100.0, 0.0, 100.0, np.inf, np.nan])
def test_times_from_any_log_factor_stay_in_range(log_factor: float) -> None:
    config = PolicyConfig()
    times = segment_times_from_log_factors(np.array([1e-6, 3.0, 1e300]), np.full(3, log_factor), config)
    assert np.isfinite(times).all()
    assert (times >= config.min_segment_time_s).all()
    assert (times <= config.max_segment_time_s).all()


def test_a_new_policy_flies_near_the_reference_speed() -> None:
    policy = TimeAllocationPolicy()
    encoding = encode_course(COURSES[0])
    speeds = encoding.segment_lengths_m / policy.act(encoding)
    np.testing.assert_allclose(speeds, policy.config.reference_speed_m_s, rtol=0.3)


# ---------------------------------------------------------------------------------------------
# Batches, masks and the single-course fast path.


def test_single_course_fast_path_matches_the_batched_forward() -> None:
    """Batching (with padding) changes nothing: each course's actions equal its fast-path actions."""
    policy = _random_policy(seed=3)
    courses = [*COURSES, COURSES[0][:2]]  # includes a 1-segment course
    for course, batched in zip(courses, _batched_means(policy, courses), strict=True):
        single = policy.mean_log_factors(encode_course(course))
        np.testing.assert_allclose(single, batched, rtol=1e-5, atol=1e-5)
        assert single.size == 1 or np.ptp(single) > 1e-3  # the comparison is not between constants


def test_fast_path_follows_weight_updates() -> None:
    """After an optimiser step, an in-place edit through `.data` and `.double()`, `act` uses the new weights."""
    policy = _random_policy(seed=4)
    encoding = encode_course(COURSES[1])
    before = policy.mean_log_factors(encoding)
    optimiser = torch.optim.SGD(policy.parameters(), lr=0.1)
    loss = -policy.log_prob(collate([encoding]), torch.ones(1, encoding.num_segments)).sum()
    loss.backward()
    optimiser.step()
    after_step = policy.mean_log_factors(encoding)
    assert not np.allclose(before, after_step)
    np.testing.assert_allclose(after_step, _batched_means(policy, [COURSES[1]])[0], rtol=1e-5, atol=1e-5)
    policy.segment_head.weight.data.mul_(-1.0)
    np.testing.assert_allclose(
        policy.mean_log_factors(encoding), _batched_means(policy, [COURSES[1]])[0], rtol=1e-5, atol=1e-5
    )
    policy.double()
    encoding64 = encode_course(COURSES[1])
    with torch.no_grad():
        batch = collate([encoding64])
        mean, _ = policy._trunk(batch.segment_features.double(), batch.global_features.double(), batch.mask)
    np.testing.assert_allclose(policy.mean_log_factors(encoding64), mean[0].numpy(), rtol=1e-5, atol=1e-5)


def test_log_prob_and_entropy_ignore_padding() -> None:
    policy = _random_policy(seed=5)
    short, long = COURSES[0][:4], COURSES[1]
    batch = collate([encode_course(short), encode_course(long)])
    assert batch.mask.shape == (2, long.shape[0] - 1)
    assert batch.mask[0].sum() == 3
    actions = torch.randn(batch.mask.shape, generator=torch.Generator().manual_seed(0))
    distribution = policy.distribution(batch)
    assert distribution.mean.shape == batch.mask.shape
    assert (distribution.mean[0, 3:] == 0).all()
    log_prob = policy.log_prob(batch, actions)
    assert log_prob.shape == (2,)
    garbage = actions.clone()
    garbage[0, 3:] = torch.nan  # padded entries may hold anything
    torch.testing.assert_close(policy.log_prob(batch, garbage), log_prob)
    alone = policy.log_prob(collate([encode_course(short)]), actions[:1, :3])
    torch.testing.assert_close(alone, log_prob[:1], rtol=1e-5, atol=1e-5)
    expected = distribution.log_prob(actions)[0, :3].sum()
    torch.testing.assert_close(log_prob[0], expected)
    entropy = policy.entropy(batch)
    torch.testing.assert_close(entropy, distribution.entropy()[:, 0] * batch.mask.sum(dim=1))
    times = policy.segment_times(batch, actions)
    assert (times[0, 3:] == 0).all()
    assert (times[batch.mask] > 0).all()


def test_log_prob_gradient_reaches_every_trainable_parameter() -> None:
    policy = _random_policy(seed=6)
    batch = collate([encode_course(c) for c in COURSES[:3]])
    actions = policy.distribution(batch).sample()
    loss = -(policy.log_prob(batch, actions) + policy.value(batch)).sum()
    loss.backward()
    missing = [name for name, p in policy.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_sampled_times_are_reproducible_with_a_generator() -> None:
    policy = _random_policy(seed=7)
    encoding = encode_course(COURSES[2])
    first = policy.act(encoding, deterministic=False, generator=torch.Generator().manual_seed(42))
    second = policy.act(encoding, deterministic=False, generator=torch.Generator().manual_seed(42))
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, policy.act(encoding))


# ---------------------------------------------------------------------------------------------
# Checkpoints.


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    config = PolicyConfig(d_model=32, num_heads=2, num_layers=1, ff_hidden=48, reference_speed_m_s=2.5)
    policy = _random_policy(seed=8, config=config)
    path = save_policy(tmp_path / "sub" / "policy.pt", policy, {"iteration": 3, "score": np.float64(0.5)})
    loaded, metadata = load_policy(path)
    assert metadata == {"iteration": 3, "score": 0.5}
    assert loaded.config == config
    assert not loaded.training
    for course in COURSES[:3]:
        encoding = encode_course(course)
        np.testing.assert_array_equal(loaded.act(encoding), policy.act(encoding))
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["policy.pt"]  # no temporary file left


def test_default_checkpoint_is_small(tmp_path: Path) -> None:
    path = save_policy(tmp_path / "policy.pt", TimeAllocationPolicy(), {})
    assert path.stat().st_size < 400_000


def test_missing_checkpoint_says_how_to_train_one(tmp_path: Path) -> None:
    with pytest.raises(MissingCheckpointError, match="mfrl train"):
        load_policy(tmp_path / "nothing.pt")


def _corrupt_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = save_policy(tmp_path / "good.pt", TimeAllocationPolicy(), {})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    payload = torch.load(good, weights_only=True)
    state = payload["state"]

    def variant(name: str, **changes: object) -> Path:
        path = tmp_path / f"{name}.pt"
        torch.save({**payload, **changes}, path)
        return path

    model = dict(state["model"])
    model["log_std"] = torch.tensor([math.nan])
    return {
        "truncated": (truncated, "not a readable mfplan policy checkpoint"),
        "text": (text, "not a readable mfplan policy checkpoint"),
        "foreign": (foreign, "is not a mfplan policy checkpoint"),
        "old": (variant("old", format="mfplan.policy/0"), "expected mfplan.policy/2"),
        "retired": (variant("retired", format="mfplan.policy/1"), "checkpoints/upgrade.py"),
        "no model": (variant("no model", state={k: v for k, v in state.items() if k != "model"}), "lacks"),
        "shapes": (
            variant("shapes", state={**state, "policy_config": {**state["policy_config"], "d_model": 32}}),
            "does not fit",
        ),
        "unknown": (
            variant("unknown", state={**state, "policy_config": {**state["policy_config"], "colour": "red"}}),
            "does not fit",
        ),
        "features": (variant("features", state={**state, "features": {"segment": ["dx"], "global": []}}), "features"),
        "nan": (variant("nan", state={**state, "model": model}), "non-finite weights"),
    }


def test_corrupt_or_foreign_checkpoints_raise_the_typed_error(tmp_path: Path) -> None:
    for name, (path, message) in _corrupt_files(tmp_path).items():
        with pytest.raises(PolicyCheckpointError, match=message) as error:
            load_policy(path)
        assert str(path) in str(error.value), name
        assert "\n" not in str(error.value), name
        assert isinstance(error.value, CheckpointError), name  # runkit's family: one line, exit status 2
    with pytest.raises(PolicyCheckpointError, match=CHECKPOINT_FORMAT):
        load_policy(tmp_path / "old.pt")


def test_the_file_is_a_runkit_envelope_with_the_config_and_plain_metadata(tmp_path: Path) -> None:
    config = TrainConfig(iterations=7)
    path = save_policy(tmp_path / "policy.pt", TimeAllocationPolicy(), {"command": "mfrl train"}, config=config)
    envelope = load_envelope(path, (CHECKPOINT_FORMAT,), "test")
    assert set(envelope.state) == {"model", "policy_config", "features"}
    assert envelope.config["iterations"] == 7
    assert envelope.metadata == {"command": "mfrl train"}
    loaded = read_policy(path)
    assert loaded.config == envelope.config
    assert loaded.metadata == {"command": "mfrl train"}


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="multiple of num_heads"):
        PolicyConfig(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="min_segment_time_s"):
        PolicyConfig(min_segment_time_s=0.0)

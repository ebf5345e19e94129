"""The generator and discriminator: shapes and ranges through the network, learning, the losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kfgan.data import landmark_tensor, to_frames, to_tensor
from kfgan.network import (
    Generator,
    GeneratorSizes,
    MultiScaleDiscriminator,
    adain,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from kfgan.train import TrainConfig, _Training
from runkit.testing import assert_every_parameter_changes


def _inputs(n: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, 3, height, width, generator=g),
        torch.rand(n, 3, height, width, generator=g),
        (torch.rand(n, 3, height, width, generator=g) > 0.99).float(),
    )


@pytest.mark.parametrize(("height", "width"), [(144, 176), (50, 70), (16, 16)])
def test_the_restored_frame_has_the_input_size_at_any_size(height: int, width: int) -> None:
    generator = Generator(GeneratorSizes(8)).eval()
    with torch.no_grad():
        out = generator(*_inputs(2, height, width))
    assert out.shape == (2, 3, height, width)
    assert torch.isfinite(out).all()


def test_features_halve_at_each_of_four_scales_and_the_output_is_a_residual_near_the_input() -> None:
    generator = Generator(GeneratorSizes(8))
    compressed, reference, landmarks = _inputs(2, 144, 176)
    with torch.no_grad():  # one training-mode pass: spectral normalisation's power iteration estimates the norms
        generator(compressed, reference, landmarks)
    generator.eval()
    features = generator.encoder(compressed)
    assert [tuple(f.shape[1:]) for f in features] == [(8, 72, 88), (16, 36, 44), (32, 18, 22), (32, 9, 11)]
    with torch.no_grad():
        out = generator(compressed, reference, landmarks)
    # An untrained network adds a small correction to the compressed frame (the output is a residual).
    assert float((out - compressed).abs().mean()) < 0.5


def test_frames_survive_the_tensor_round_trip_and_outputs_are_clipped_to_bytes() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (2, 9, 11, 3), dtype=np.uint8)
    assert np.array_equal(to_frames(to_tensor(frames)), frames)
    assert to_frames(torch.full((1, 3, 2, 2), 1.7)).max() == 255
    assert to_frames(torch.full((1, 3, 2, 2), -0.3)).min() == 0
    images = landmark_tensor(np.zeros((2, 9, 11), dtype=np.float32))
    assert images.shape == (2, 3, 9, 11)


def test_the_reference_only_matters_through_the_fusion() -> None:
    """Changing the reference changes the output (the keyframe guidance is used)."""
    generator = Generator(GeneratorSizes(8)).eval()
    compressed, reference, landmarks = _inputs(1, 48, 48)
    with torch.no_grad():
        a = generator(compressed, reference, landmarks)
        b = generator(compressed, torch.rand_like(reference), landmarks)
    assert not torch.allclose(a, b)


def test_adain_gives_the_reference_the_compressed_features_statistics() -> None:
    content = torch.randn(2, 4, 8, 8) * 3 + 1
    style = torch.randn(2, 4, 8, 8) * 0.2 - 5
    out = adain(content, style)
    assert torch.allclose(out.mean(dim=(2, 3)), content.mean(dim=(2, 3)), atol=1e-4)
    assert torch.allclose(out.std(dim=(2, 3), correction=0), content.std(dim=(2, 3), correction=0), atol=1e-3)


def test_the_discriminator_scores_three_scales() -> None:
    discriminator = MultiScaleDiscriminator(width=8)
    scores = discriminator(torch.rand(2, 3, 96, 96))
    assert len(scores) == 3
    assert [s.shape[-1] for s in scores] == [12, 6, 3]


def test_hinge_losses_vanish_beyond_the_margin_and_push_the_other_way_inside_it() -> None:
    weights = (4.0, 2.0, 1.0)
    confident_real, confident_fake = [torch.full((1, 1, 2, 2), 2.0)] * 3, [torch.full((1, 1, 2, 2), -2.0)] * 3
    assert float(hinge_discriminator_loss(confident_real, confident_fake, weights)) == 0.0
    unsure = [torch.zeros(1, 1, 2, 2)] * 3
    assert float(hinge_discriminator_loss(unsure, unsure, weights)) == pytest.approx(2.0)
    assert float(hinge_generator_loss(confident_fake, weights)) == pytest.approx(2.0)


def test_every_trainable_parameter_of_both_networks_changes_after_a_training_step() -> None:
    config = TrainConfig(width=8, discriminator_width=8, crop=48, iterations=10)
    training = _Training(config)
    g = torch.Generator().manual_seed(1)
    batch = tuple(torch.rand(2, 3, 48, 48, generator=g) for _ in range(4))

    def step() -> None:
        training.step(batch, config, adversarial=True)

    both = torch.nn.ModuleDict({"g": training.generator, "d": training.discriminator})
    assert_every_parameter_changes(both, step)


def test_training_steps_lower_the_pixel_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    config = TrainConfig(width=8, discriminator_width=8, crop=32, iterations=1000, lr=1e-3)
    training = _Training(config)
    g = torch.Generator().manual_seed(2)
    target = torch.rand(2, 3, 32, 32, generator=g)
    compressed = (target + 0.1 * torch.randn(2, 3, 32, 32, generator=g)).clamp(0, 1)
    batch = (compressed, target, torch.zeros_like(target), target)
    first = training.step(batch, config, adversarial=False)["losses/pixel_mse"]
    for _ in range(30):
        last = training.step(batch, config, adversarial=False)["losses/pixel_mse"]
    assert last < 0.7 * first

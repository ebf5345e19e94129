"""Train the keyframe-guided generator (or the ablation without keyframes) against a multi-scale discriminator.

Losses, after the authors' training options (`train_DMSASFFNet.yml`): pixel MSE x 300, a structural term, and
the hinge adversarial loss x 2 (discriminator scales weighted 4, 2, 1), Adam (betas 0.9, 0.99) for both
networks, one discriminator step per generator step. Where this differs and why:

- the authors' perceptual and style losses on VGG-19 features need downloaded weights: a structural term,
  10 x (1 - SSIM), takes their place;
- 3,000 steps on CPU instead of 400,000 on a GPU, so the learning rate is 2e-4 (theirs 1e-4) halved at 60 %
  and 85 % of the run, and the adversarial term starts after `adversarial_start` steps (the generator first
  learns to restore from the pixel and structural terms alone; theirs starts at once).

A checkpoint (both networks, both optimisers, the step, the generators' state) is written every
`checkpoint_every` steps and at the end; `--resume` continues from it. The trained generator is written
to `generator.pt` (the file `kfgan restore` loads).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from kfgan.data import TRAIN_CRFS, build_streams, load_carphone, sample_batch
from kfgan.faces import LandmarkDetector
from kfgan.metrics import ssim
from kfgan.network import (
    Generator,
    GeneratorSizes,
    MultiScaleDiscriminator,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from runkit import RunConfig, write_summary
from runkit.checkpoint import CheckpointError, Envelope, load_envelope, require, save_envelope
from runkit.config import prepare_run_dir, require_config
from runkit.metrics import RunLogger
from runkit.seeding import capture_rng, restore_rng, seed_everything

CHECKPOINT_FILE = "checkpoint.pt"
GENERATOR_FILE = "generator.pt"
CHECKPOINT_FORMAT = "kfgan.checkpoint/1"
GENERATOR_FORMAT = "kfgan.generator/1"


@dataclass
class TrainConfig(RunConfig):
    """Train the restoration network on carphone's training frames (see `kfgan.data` for the split)."""

    keyframes: bool = True
    """Guide restoration by the keyframe set; False trains the ablation (reference = the compressed frame)."""
    iterations: int = 3000
    """Generator steps."""
    batch: int = 4
    """Crops per step (the authors' batch per GPU is 4)."""
    crop: int = 96
    """Side of the random training crops (at most 144, the clip's height; a multiple of 16)."""
    width: int = 16
    """Generator channels at 1/2 scale."""
    discriminator_width: int = 16
    """Discriminator channels of its first layer."""
    lr: float = 2e-4
    """Adam's learning rate of both networks (halved at 60 % and 85 % of the run)."""
    pixel_weight: float = 300.0
    """Weight of the pixel MSE (the authors': 300)."""
    structural_weight: float = 10.0
    """Weight of 1 - SSIM (in place of the authors' VGG perceptual loss, weight 10)."""
    adversarial_weight: float = 2.0
    """Weight of the generator's hinge loss (the authors': 2)."""
    adversarial_start: int = 500
    """Steps of pixel and structural losses only before the adversarial term joins."""
    crfs: tuple[int, ...] = TRAIN_CRFS
    """Compression levels of the training streams."""
    checkpoint_every: int = 250
    """Steps between checkpoints."""
    tensorboard: bool = True
    """Also write TensorBoard events."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_config(self.iterations >= 1, "iterations", self.iterations, ">= 1")
        require_config(self.batch >= 2, "batch", self.batch, ">= 2 (batch normalisation)")
        require_config(16 <= self.crop <= 144 and self.crop % 16 == 0, "crop", self.crop, "a multiple of 16 in 16..144")
        require_config(self.width >= 4, "width", self.width, ">= 4")
        require_config(self.discriminator_width >= 4, "discriminator_width", self.discriminator_width, ">= 4")
        require_config(self.lr > 0, "lr", self.lr, "> 0")
        require_config(len(self.crfs) >= 1 and all(0 <= c <= 51 for c in self.crfs), "crfs", self.crfs, "CRFs in 0..51")
        require_config(self.checkpoint_every >= 1, "checkpoint_every", self.checkpoint_every, ">= 1")

    def smoke_sizes(self) -> dict[str, Any]:
        return {"iterations": 4, "crfs": (42,), "crop": 64, "checkpoint_every": 2, "adversarial_start": 2}

    def default_run_dir(self) -> Path:
        variant = "keyframes" if self.keyframes else "no_keyframes"
        return Path("runs") / "kfgan" / variant / f"seed{self.seed}"


class _Training:
    """The two networks, their optimisers and schedules."""

    def __init__(self, config: TrainConfig) -> None:
        self.generator = Generator(GeneratorSizes(config.width))
        self.discriminator = MultiScaleDiscriminator(config.discriminator_width)
        betas = (0.9, 0.99)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)
        self.milestones = (int(0.6 * config.iterations), int(0.85 * config.iterations))
        self.base_lr = config.lr

    def set_learning_rate(self, step: int) -> float:
        """The learning rate at `step` (halved at each milestone passed), set on both optimisers."""
        lr = self.base_lr * 0.5 ** sum(step >= m for m in self.milestones)
        for optimizer in (self.opt_g, self.opt_d):
            for group in optimizer.param_groups:
                group["lr"] = lr
        return lr

    def step(self, batch: tuple[torch.Tensor, ...], config: TrainConfig, adversarial: bool) -> dict[str, float]:
        """One generator step (and one discriminator step once the adversarial term is on)."""
        compressed, reference, landmarks, target = batch
        weights = self.discriminator.weights
        self.generator.train()
        restored = self.generator(compressed, reference, landmarks)
        pixel = functional.mse_loss(restored, target)
        structural = 1 - ssim(restored.clamp(0, 1), target)
        loss = config.pixel_weight * pixel + config.structural_weight * structural
        figures = {"losses/pixel_mse": pixel.item(), "losses/structural": structural.item()}
        if adversarial:
            for p in self.discriminator.parameters():
                p.requires_grad_(False)
            g_adv = hinge_generator_loss(self.discriminator(restored), weights)
            for p in self.discriminator.parameters():
                p.requires_grad_(True)
            loss = loss + config.adversarial_weight * g_adv
            figures["losses/generator_adversarial"] = g_adv.item()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        if adversarial:
            d_loss = hinge_discriminator_loss(
                self.discriminator(target), self.discriminator(restored.detach()), weights
            )
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            figures["losses/discriminator"] = d_loss.item()
        figures["losses/generator_total"] = loss.item()
        return figures

    def state(self) -> dict[str, Any]:
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }

    def load(self, state: dict[str, Any], envelope: Envelope) -> None:
        try:
            self.generator.load_state_dict(state["generator"])
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{envelope.path} does not fit this run ({str(exc).splitlines()[0]})") from None


def train(config: TrainConfig) -> Path:
    """Train (or resume); write checkpoint.pt as it goes, then generator.pt and summary.json. Returns generator.pt."""
    config = config.resolved()
    run_dir = config.run_path
    checkpoint_path = run_dir / CHECKPOINT_FILE
    seed_everything(config.seed, config.torch_deterministic, config.torch_threads)
    resumed = prepare_run_dir(run_dir, config.resume, checkpoint_path)
    training = _Training(config)
    step = 0
    if resumed:
        envelope = load_envelope(checkpoint_path, (CHECKPOINT_FORMAT,), "kfgan training checkpoint")
        require({"step", "generator", "discriminator"} <= set(envelope.state), envelope, "lacks the networks or step")
        require(envelope.config.get("keyframes") == config.keyframes, envelope, "was trained with other guidance")
        training.load(envelope.state, envelope)
        step = int(envelope.state["step"])
        if envelope.rng is not None:
            restore_rng(envelope.rng)
    started = time.perf_counter()
    streams = build_streams(
        load_carphone(), config.crfs, LandmarkDetector(), keyframes=config.keyframes, progress=config.progress
    )
    preparation_seconds = time.perf_counter() - started
    with RunLogger(
        run_dir,
        config.iterations,
        desc="kfgan" if config.keyframes else "kfgan (no keyframes)",
        tensorboard=config.tensorboard,
        progress=config.progress,
        resume_step=step if resumed else None,
    ) as logger:
        while step < config.iterations:
            batch = sample_batch(streams, config.batch, config.crop, np.random.default_rng([config.seed, step]))
            lr = training.set_learning_rate(step)
            figures = training.step(batch, config, adversarial=step >= config.adversarial_start)
            step += 1
            figures["charts/learning_rate"] = lr
            if step % 10 == 0 or step == config.iterations:
                logger.scalars(figures, step)
            if step % config.checkpoint_every == 0 or step == config.iterations:
                _save_checkpoint(checkpoint_path, training, config, step)
                logger.flush()
            logger.advance(1, mse=figures["losses/pixel_mse"])
    path = save_generator(run_dir / GENERATOR_FILE, training.generator, config)
    write_summary(
        run_dir,
        {
            "generator": str(path),
            "keyframes": config.keyframes,
            "iterations": step,
            "streams": [{"crf": s.crf, "kbit_per_s": s.kbit_per_s} for s in streams],
            "preparation_seconds": preparation_seconds,
        },
    )
    return path


def _save_checkpoint(path: Path, training: _Training, config: TrainConfig, step: int) -> None:
    save_envelope(path, CHECKPOINT_FORMAT, {**training.state(), "step": step}, config=config, rng=capture_rng())


def save_generator(path: Path, generator: Generator, config: TrainConfig) -> Path:
    """Write the generator file `kfgan restore` loads."""
    return save_envelope(
        path,
        GENERATOR_FORMAT,
        {"generator": generator.state_dict(), "width": generator.sizes.width},
        config=config,
        metadata={"keyframes": config.keyframes, "iterations": config.iterations, "seed": config.seed},
    )


def load_generator(path: Path) -> tuple[Generator, dict[str, Any]]:
    """A trained generator (in eval mode) and its metadata (keyframes: whether it expects keyframe guidance)."""
    envelope = load_envelope(path, (GENERATOR_FORMAT,), "kfgan generator")
    state = envelope.state
    require(isinstance(state.get("width"), int) and "generator" in state, envelope, "lacks the generator or its width")
    require(isinstance(envelope.metadata.get("keyframes"), bool), envelope, "does not say whether it uses keyframes")
    generator = Generator(GeneratorSizes(int(state["width"])))
    try:
        generator.load_state_dict(state["generator"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the generator ({str(exc).splitlines()[0]})") from None
    generator.eval()
    return generator, dict(envelope.metadata)

"""The keyframe-guided generator and the multi-scale discriminator (after the authors' DMSASFFNet).

Generator, as the authors' `DMSASFFNet` builds it, with one change forced by this project's rule that no
weights are downloaded:

- multi-scale features (1/2, 1/4, 1/8, 1/16 of the frame) of the compressed frame, of the reference
  (the chosen keyframe warped onto the frame's landmarks) and of the landmark image, from one shared
  encoder. The authors use a frozen ImageNet VGG-19 (relu2_2, relu3_4, relu4_4, conv5_4); here the encoder is
  a small convolutional one trained with the rest;
- the reference's features are re-normalised to the compressed frame's statistics (AdaIN), then each scale
  is fused by an adaptive spatial feature fusion block: an attention mask computed from the three feature maps
  blends the reference's features into the compressed frame's (`FusionBlock`, their ModifiedASFFBlock);
- the deepest compressed features go through a multi-scale dilation block, then a decoder climbs back to
  full resolution, each step modulated by the fused features of its scale through a spatial feature
  transform (scale and shift, `SFTUpBlock`); the output is added to the compressed frame (a residual).

`keyframes=False` is the ablation: the same network given the compressed frame in place of the reference.
Frame sides must be multiples of 16 (`pad_to_multiple` pads and `Generator.forward` crops back).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional
from torch.nn.utils import spectral_norm

SCALES = 4
"""Feature scales: 1/2, 1/4, 1/8, 1/16 of the frame."""
MULTIPLE = 2**SCALES


@dataclass(frozen=True)
class GeneratorSizes:
    """Widths of the generator (the authors' VGG widths are 128, 256, 512, 512)."""

    width: int = 32
    """Channels at 1/2 scale; 2x at 1/4 and 4x at 1/8 and 1/16."""

    def channels(self) -> tuple[int, int, int, int]:
        """Channels at each scale."""
        w = self.width
        return (w, 2 * w, 4 * w, 4 * w)


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, padding=dilation * (kernel // 2), dilation=dilation)


class Encoder(nn.Module):
    """Features at 1/2, 1/4, 1/8 and 1/16 of a 3-channel image (shared by all three inputs)."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        cin = 3
        for cout in channels:
            stages.append(
                nn.Sequential(_conv(cin, cout, stride=2), nn.LeakyReLU(0.2), _conv(cout, cout), nn.LeakyReLU(0.2))
            )
            cin = cout
        self.stages = nn.ModuleList(stages)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = image * 2 - 1
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """`style`'s features re-normalised to the per-channel mean and deviation of `content` (AdaIN)."""
    c_mean, c_std = content.mean(dim=(2, 3), keepdim=True), content.std(dim=(2, 3), keepdim=True, correction=0) + eps
    s_mean, s_std = style.mean(dim=(2, 3), keepdim=True), style.std(dim=(2, 3), keepdim=True, correction=0) + eps
    return c_std * (style - s_mean) / s_std + c_mean


class FusionBlock(nn.Module):
    """Adaptive spatial feature fusion: compressed + mask * (reference - compressed), the mask from all three."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = max(channels // 2, 1)
        self.squeeze = nn.ModuleList([nn.Conv2d(channels, half, 1) for _ in range(3)])
        self.mask = nn.Sequential(
            _conv(3 * half, channels),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(0.2),
            _conv(channels, channels),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(0.2),
        )
        self.compressed = nn.Sequential(
            _conv(channels, channels), nn.BatchNorm2d(channels), nn.LeakyReLU(0.2), nn.Conv2d(channels, channels, 1)
        )
        self.reference = nn.Sequential(
            _conv(channels, channels), nn.BatchNorm2d(channels), nn.LeakyReLU(0.2), nn.Conv2d(channels, channels, 1)
        )

    def forward(self, compressed: torch.Tensor, reference: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        squeezed = [conv(x) for conv, x in zip(self.squeeze, (compressed, reference, landmarks), strict=True)]
        mask = self.mask(torch.cat(squeezed, dim=1))
        c, r = self.compressed(compressed), self.reference(reference)
        return c + mask * (r - c)


class DilationBlock(nn.Module):
    """Parallel dilated convolutions (dilations 4, 3, 2, 1), fused and added back (the authors' MSDilationBlock)."""

    def __init__(self, channels: int, dilations: tuple[int, ...] = (4, 3, 2, 1)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [nn.Sequential(_conv(channels, channels, dilation=d), nn.LeakyReLU(0.2)) for d in dilations]
        )
        self.fuse = _conv(channels * len(dilations), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))


class SFTUpBlock(nn.Module):
    """Convolution, spatial feature transform by the fused features (scale, sigmoid shift), then upsample 2x."""

    def __init__(self, cin: int, cout: int, condition: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(spectral_norm(_conv(cin, cout)), nn.LeakyReLU(0.2))
        self.scale = nn.Sequential(spectral_norm(_conv(condition, cout)), nn.LeakyReLU(0.2), _conv(cout, cout))
        self.shift = nn.Sequential(
            spectral_norm(_conv(condition, cout)), nn.LeakyReLU(0.2), _conv(cout, cout), nn.Sigmoid()
        )
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            spectral_norm(_conv(cout, cout)),
            nn.LeakyReLU(0.2),
        )

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.up(self.conv(x) * self.scale(condition) + self.shift(condition))


class Generator(nn.Module):
    """Restore a compressed frame from it, a warped reference and a landmark image (all (N,3,H,W) in [0,1])."""

    def __init__(self, sizes: GeneratorSizes | None = None) -> None:
        super().__init__()
        self.sizes = sizes or GeneratorSizes()
        ch = self.sizes.channels()
        self.encoder = Encoder(ch)
        self.fusion = nn.ModuleList([FusionBlock(c) for c in ch])
        self.dilation = DilationBlock(ch[-1])
        ups = []
        for i in reversed(range(SCALES)):
            cout = ch[i - 1] if i > 0 else ch[0]
            ups.append(SFTUpBlock(ch[i], cout, ch[i]))
        self.ups = nn.ModuleList(ups)
        self.head = nn.Sequential(
            spectral_norm(_conv(ch[0], ch[0])),
            nn.LeakyReLU(0.2),
            _conv(ch[0], ch[0]),
            nn.LeakyReLU(0.2),
            _conv(ch[0], 3),
        )

    def forward(self, compressed: torch.Tensor, reference: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        height, width = compressed.shape[-2:]
        compressed_p, reference_p, landmarks_p = (pad_to_multiple(x) for x in (compressed, reference, landmarks))
        fc = self.encoder(compressed_p)
        fr = self.encoder(reference_p)
        fl = self.encoder(landmarks_p)
        fused = [block(c, adain(c, r), lm) for block, c, r, lm in zip(self.fusion, fc, fr, fl, strict=True)]
        x = self.dilation(fc[-1])
        for up, condition in zip(self.ups, reversed(fused), strict=True):
            x = up(x, condition)
        out = compressed_p + self.head(x)
        return out[..., :height, :width]


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """`x` padded (replicating its edges) at the bottom and right to sides that are multiples of `multiple`."""
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


class PatchDiscriminator(nn.Module):
    """A PatchGAN discriminator: strided spectral-normalised convolutions to a map of real/fake scores."""

    def __init__(self, width: int = 32, layers: int = 3) -> None:
        super().__init__()
        modules: list[nn.Module] = [spectral_norm(nn.Conv2d(3, width, 4, 2, 1)), nn.LeakyReLU(0.2)]
        cin = width
        for _ in range(layers - 1):
            cout = min(cin * 2, 8 * width)
            modules += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2)]
            cin = cout
        # No bias on the score: its gradient under the hinge loss is zero while every score is inside the margin.
        modules.append(spectral_norm(nn.Conv2d(cin, 1, 3, 1, 1, bias=False)))
        self.net = nn.Sequential(*modules)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image * 2 - 1)


class MultiScaleDiscriminator(nn.Module):
    """PatchGAN discriminators on the image and on 2x, 4x downsampled copies (the authors use 4 scales on 512x512
    crops with weights 4, 2, 1, 1; frames here are 176x144, so 3 scales with weights 4, 2, 1)."""

    def __init__(self, width: int = 32, layers: int = 3, weights: tuple[float, ...] = (4.0, 2.0, 1.0)) -> None:
        super().__init__()
        self.weights = weights
        self.discriminators = nn.ModuleList([PatchDiscriminator(width, layers) for _ in weights])

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        scores = []
        x = image
        for i, discriminator in enumerate(self.discriminators):
            if i > 0:
                x = functional.avg_pool2d(x, 2)
            scores.append(discriminator(x))
        return scores


def hinge_discriminator_loss(
    real: list[torch.Tensor], fake: list[torch.Tensor], weights: tuple[float, ...]
) -> torch.Tensor:
    """The hinge loss of the discriminator, weighted over scales (normalised by the weights' sum)."""
    total = sum(
        w * (functional.relu(1 - r).mean() + functional.relu(1 + f).mean())
        for w, r, f in zip(weights, real, fake, strict=True)
    )
    return torch.as_tensor(total) / sum(weights)


def hinge_generator_loss(fake: list[torch.Tensor], weights: tuple[float, ...]) -> torch.Tensor:
    """The hinge loss of the generator (minus the discriminator's mean score), weighted over scales."""
    total = sum(-w * f.mean() for w, f in zip(weights, fake, strict=True))
    return torch.as_tensor(total) / sum(weights)

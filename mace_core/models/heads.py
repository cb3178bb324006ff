"""MACE heads (thesis §2.4.2–2.4.3): feature extractors, pooling, BN neck, classifiers.

* :class:`Extractor` — phi_V / phi_I / phi_S: 1×1 conv + BN + ReLU on the trunk feature map.
  phi_S is one module applied to both modalities (tied weights, eq 2).
* :class:`GeM` — generalised-mean pooling with a learnable exponent ``p``. timm 1.0 ships no GeM layer
  (its ``SelectAdaptivePool2d`` offers avg/max/avgmax/catavgmax only), so it is written here; it
  computes in float32 because ``x**p`` overflows half precision.
* :class:`BNNeck` — BatchNorm1d whose bias is frozen at zero (the AGW reference code's "BNNeck").
* classifiers W_V, W_I, W_S are bias-free linear layers (``make_classifier``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mace_core.errors import MaceError


class Extractor(nn.Sequential):
    """1×1 conv (no bias, BN follows) + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        super().__init__(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class GeM(nn.Module):
    """Generalised-mean pooling ``(mean x^p)^(1/p)`` over H×W; ``p`` is learnt (p=1 avg, p→∞ max)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.float()
        pooled = x.float().clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)
        return pooled.to(x.dtype)


class AvgPool(nn.Module):
    """Global average pooling to ``[B, C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def make_pool(kind: str, gem_p: float = 3.0) -> nn.Module:
    if kind == "avg":
        return AvgPool()
    if kind == "gem":
        return GeM(gem_p)
    raise MaceError(f"model.pooling {kind!r} is not known", "use avg or gem")


class BNNeck(nn.BatchNorm1d):
    """BatchNorm1d with the shift frozen at zero, so the neck only re-scales (AGW's BNNeck)."""

    def __init__(self, dim: int):
        super().__init__(dim)
        self.bias.requires_grad_(False)


def make_classifier(dim: int, num_classes: int) -> nn.Linear:
    """Bias-free identity classifier, small normal init (as the AGW reference code)."""
    fc = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(fc.weight, std=0.001)
    return fc


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, p=2, dim=1)

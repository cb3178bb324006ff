"""Tiny CPU-size MACE configurations shared by the model and loss tests (random init, no downloads)."""
from __future__ import annotations

import torch

from mace_core.config import ModelConfig
from mace_core.models import build_model

# One small member per family, narrowed further so a 64x32 forward takes milliseconds.
TINY_BACKBONES = {
    "resnet": ("resnet18", {"channels": [16, 32, 64, 128]}),
    "seresnet": ("seresnet18", {"channels": [16, 32, 64, 128]}),
    "efficientnet": ("efficientnet_b0", {}),
    "tresnet": ("tresnet_m", {"layers": [1, 1, 1, 1], "width_factor": 0.25}),
    "convnext": ("convnext_atto", {"dims": [16, 32, 64, 128], "depths": [1, 1, 1, 1]}),
}
HEIGHT, WIDTH = 64, 32


def tiny_config(family: str = "resnet", **overrides) -> ModelConfig:
    name, kwargs = TINY_BACKBONES[family]
    fields = {"backbone": name, "backbone_kwargs": dict(kwargs), "pretrained": "none", "head_dim": 32}
    fields.update(overrides)
    return ModelConfig(**fields)


def tiny_model(family: str = "resnet", num_classes: int = 6, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_model(tiny_config(family, **overrides), num_classes)


def images(batch: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, HEIGHT, WIDTH, generator=gen)

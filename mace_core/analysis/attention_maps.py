"""Spatial attention heatmaps over IR and RGB images, and channel weights, for experiment 2.

:func:`collect` runs ``MaceNet.attention_maps`` and returns plain numpy; :func:`heatmap_grid` draws
each image beside its spatial maps (one column per position, e.g. stem and pre-pool) upsampled to
the image size.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from mace_core.errors import MaceError


def as_rgb_uint8(image: Any) -> np.ndarray:
    """HWC uint8 for display from HWC/HW uint8, or CHW/HWC float in [0, 1] (tensor or array)."""
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.dtype != np.uint8:
        lo, hi = float(arr.min()), float(arr.max())
        # Normalised tensors are outside [0, 1]: stretch for display only.
        if lo < 0 or hi > 1:
            arr = (arr - lo) / max(hi - lo, 1e-8)
        arr = np.clip(arr * 255 + 0.5, 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise MaceError(f"cannot display an image of shape {arr.shape}", "pass HWC, HW or CHW arrays")
    return arr


def upsample(att: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a ``[h, w]`` map to ``[height, width]``."""
    att = np.asarray(att, dtype=np.float32)
    if att.ndim != 2:
        raise MaceError(f"a spatial attention map must be 2-D, got shape {att.shape}", "pass one map per image")
    return np.asarray(Image.fromarray(att, mode="F").resize((width, height), Image.BILINEAR))


def collect(model: Any, images: Any, modality: str) -> dict[str, dict[str, np.ndarray | None]]:
    """``{position: {"channel": [B, C] | None, "spatial": [B, h, w] | None}}`` as numpy arrays."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            maps = model.attention_maps(images, modality)
    finally:
        model.train(was_training)
    out: dict[str, dict[str, np.ndarray | None]] = {}
    for position, gates in maps.items():
        out[position] = {k: (None if v is None else v.detach().float().cpu().numpy()) for k, v in gates.items()}
    return out


def heatmap_grid(images: Sequence[Any], maps: Mapping[str, Sequence[np.ndarray]], labels: Sequence[str],
                 title: str = "", alpha: float = 0.5) -> plt.Figure:
    """Rows = images; columns = the image, then its spatial map per position overlaid (jet, 0-1)."""
    if not maps:
        raise MaceError("no spatial attention maps to draw", "use a SAM or DAM model")
    positions = list(maps)
    for pos in positions:
        if len(maps[pos]) != len(images):
            raise MaceError(f"{len(maps[pos])} '{pos}' maps for {len(images)} images", "pass one map per image")
    if len(labels) != len(images):
        raise MaceError(f"{len(labels)} labels for {len(images)} images", "pass one label per image")
    cols = 1 + len(positions)
    fig, axes = plt.subplots(len(images), cols, figsize=(1.6 * cols, 2.6 * len(images)), squeeze=False)
    mappable = None
    for row, (image, label) in enumerate(zip(images, labels)):
        rgb = as_rgb_uint8(image)
        axes[row, 0].imshow(rgb)
        axes[row, 0].set_ylabel(label, fontsize=8)
        for col, pos in enumerate(positions, start=1):
            heat = upsample(maps[pos][row], rgb.shape[0], rgb.shape[1])
            axes[row, col].imshow(rgb)
            mappable = axes[row, col].imshow(heat, cmap="jet", alpha=alpha, vmin=0, vmax=1)
            if row == 0:
                axes[row, col].set_title(pos, fontsize=9)
    axes[0, 0].set_title("image", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if mappable is not None:
        fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.6, label="attention")
    if title:
        fig.suptitle(title)
    return fig

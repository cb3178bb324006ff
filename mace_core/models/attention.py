"""Attention modules of experiment 2 (thesis §3.5) on timm's CBAM layers, with gate capture.

* ``cam`` — channel attention: avg- and max-pooled descriptors through one shared 2-layer MLP,
  summed, sigmoid (timm ``ChannelAttn``, reduction 1/16).
* ``sam`` — spatial attention: channel-wise avg and max maps, 7×7 conv (+BN), sigmoid
  (timm ``SpatialAttn``).
* ``dam`` — CAM then SAM (CBAM order).

Placement (``attention_positions``): ``stem`` = right after each modality's stem, one module per
modality (the thesis' "early modality-specific channel weighting"); ``prepool`` = on the shared
trunk output before the extractors and pooling, one module shared by both modalities.

To plot the learnt weights, :meth:`AttentionBlock.capturing` hooks the sigmoid gates for the
duration of a ``with`` block and stores the channel weights ``[B, C]`` and spatial maps ``[B, h, w]``
(values in (0, 1)); no hooks are attached during training.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from timm.layers.cbam import ChannelAttn, SpatialAttn
from torch import nn

from mace_core.errors import MaceError

KINDS = ("none", "cam", "sam", "dam")
POSITIONS = ("stem", "prepool")


class AttentionBlock(nn.Module):
    """CAM, SAM or DAM over ``channels`` feature maps."""

    def __init__(self, kind: str, channels: int):
        super().__init__()
        if kind not in ("cam", "sam", "dam"):
            raise MaceError(f"model.attention {kind!r} is not known", "use none, cam, sam or dam")
        self.kind = kind
        self.channel = ChannelAttn(channels) if kind in ("cam", "dam") else None
        self.spatial = SpatialAttn(kernel_size=7) if kind in ("sam", "dam") else None
        self.captured: dict[str, torch.Tensor | None] = {"channel": None, "spatial": None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel is not None:
            x = self.channel(x)
        if self.spatial is not None:
            x = self.spatial(x)
        return x

    @contextmanager
    def capturing(self) -> Iterator[dict[str, torch.Tensor | None]]:
        """Within the block, forwards store the gates in the yielded dict (detached)."""
        self.captured = {"channel": None, "spatial": None}
        handles = []

        def store(key: str):
            def hook(_module, _inputs, output):
                gate = output.detach()
                self.captured[key] = gate.flatten(1) if key == "channel" else gate[:, 0]
            return hook

        if self.channel is not None:
            handles.append(self.channel.gate.register_forward_hook(store("channel")))
        if self.spatial is not None:
            handles.append(self.spatial.gate.register_forward_hook(store("spatial")))
        try:
            yield self.captured
        finally:
            for handle in handles:
                handle.remove()


def check_attention(kind: str, positions: list[str]) -> None:
    if kind not in KINDS:
        raise MaceError(f"model.attention {kind!r} is not known", f"use one of {', '.join(KINDS)}")
    bad = [p for p in positions if p not in POSITIONS]
    if bad:
        raise MaceError(f"model.attention_positions has unknown position(s) {bad}",
                        f"use a list drawn from {list(POSITIONS)}")
    if kind != "none" and not positions:
        raise MaceError(f"model.attention is {kind!r} but model.attention_positions is empty",
                        "list at least one of stem, prepool (or set attention: none)")

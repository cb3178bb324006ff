"""The two-stream MACE network (thesis §2.4, eqs 1–6).

Layout::

    rgb ─► stem_V [─► attn_V] [─► stages 1..N]─┐                       ┌─► phi_V ─► pool ─► f_V  ─► BN ─► W_V ─► p_V
                                               ├─► shared trunk ─► [attn] ─► F ─┤─► phi_S ─► pool ─► f_VS/f_IS ─► BN ─► W_S ─► p_VS/p_IS
    ir  ─► stem_I [─► attn_I] [─► stages 1..N]─┘                       └─► phi_I ─► pool ─► f_I  ─► BN ─► W_I ─► p_I

* The modality-specific part is the backbone stem plus the first ``specific_stages`` stages, deep
  copied per modality after the pretrained weights are loaded (both start from the same weights).
* During training the two modalities pass the shared trunk as one joint batch of 2B images (RGB rows
  first), so shared BatchNorm statistics mix modalities as in the AGW two-stream reference code.
* phi_S, its BN neck and W_S are single modules applied to both modalities (tied weights).
* Ensemble prediction (eqs 5–6): ``p_V + p_VS`` for RGB, ``p_I + p_IS`` for IR.
* ``triplet_feat`` is the fused embedding *before* BN (see :mod:`mace_core.models.fusion`); for the
  baseline ``concat`` fusion this is ``[f_spec, f_shared]``, the pre-BN pooled feature.
* Retrieval feature (``cfg.retrieval_feature``): ``fused`` = fused embedding after BN (default),
  ``pool`` = fused embedding before BN, ``shared`` = the shared branch after its BN neck; L2-normalised
  when ``cfg.normalize_feature``. Dimensions with ``concat`` fusion: ``fused``/``pool`` 2D (4096 for
  ResNet-50: specific and shared halves), ``shared`` D (2048, the size of the pooled embedding of thesis
  §2.4.1). How the concatenation is batch-normalised is ``cfg.concat_bn`` (see
  :mod:`mace_core.models.fusion`).
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mace_core.config import ModelConfig
from mace_core.errors import MaceError
from mace_core.models.attention import AttentionBlock, check_attention
from mace_core.models.backbones import build_backbone, output_channels
from mace_core.models.fusion import make_fusion
from mace_core.models.heads import (
    BNNeck,
    Extractor,
    l2_normalize,
    make_classifier,
    make_pool,
)

MODALITIES = ("rgb", "ir")
RETRIEVAL_FEATURES = ("fused", "pool", "shared")


@dataclass
class ModelOutput:
    """Training outputs for a paired batch (B images per modality)."""

    logits_v: Tensor            # p_V  [B, C]  specific classifier on RGB
    logits_i: Tensor            # p_I  [B, C]  specific classifier on IR
    logits_vs: Tensor           # p_VS [B, C]  shared classifier on RGB
    logits_is: Tensor           # p_IS [B, C]  shared classifier on IR
    triplet_feat: Tensor        # [2B, D] fused embedding before BN, RGB rows first then IR
    fusion_weights: Tensor | None = None  # [2B, 2] (specific, shared) for adaptive fusion


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (each shared tensor counted once, frozen ones included)."""
    return sum(p.numel() for p in model.parameters())


def _check_config(cfg: ModelConfig, num_classes: int) -> None:
    if num_classes < 2:
        raise MaceError(f"num_classes={num_classes} is too small", "train on at least two identities")
    if cfg.specific_stages not in (0, 1, 2):
        raise MaceError(f"model.specific_stages={cfg.specific_stages} is not allowed",
                        "use 0 (stem only), 1 or 2")
    if cfg.retrieval_feature not in RETRIEVAL_FEATURES:
        raise MaceError(f"model.retrieval_feature {cfg.retrieval_feature!r} is not known",
                        f"use one of {', '.join(RETRIEVAL_FEATURES)}")
    if cfg.head_dim is not None and cfg.head_dim < 1:
        raise MaceError(f"model.head_dim={cfg.head_dim} must be positive", "give a channel count or null")
    check_attention(cfg.attention, list(cfg.attention_positions))


def _check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise MaceError(f"modality {modality!r} is not known", "use 'rgb' or 'ir'")
    return modality


class MaceNet(nn.Module):
    """Two-stream MACE network; see the module docstring for the layout."""

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        _check_config(cfg, num_classes)
        self.cfg = copy.deepcopy(cfg)
        self.num_classes = num_classes
        parts = build_backbone(cfg.backbone, cfg.pretrained, cfg.backbone_kwargs, cfg.last_stride1)
        self.family = parts.family
        self.pretrained_weights = parts.weights   # resolved tag / file hash / "none" (recorded by the trainer)
        n_specific = cfg.specific_stages
        if n_specific >= len(parts.stages):
            raise MaceError(f"model.specific_stages={n_specific} leaves no shared stage in {cfg.backbone}",
                            f"use at most {len(parts.stages) - 1}")
        use_attention = cfg.attention != "none"
        positions = set(cfg.attention_positions) if use_attention else set()

        layers: list[tuple[str, nn.Module]] = [("stem", parts.stem)]
        if "stem" in positions:
            layers.append(("attn", AttentionBlock(cfg.attention, output_channels(parts.stem))))
        layers += [(f"stage{k + 1}", parts.stages[k]) for k in range(n_specific)]
        rgb_part = nn.Sequential(OrderedDict(layers))
        self.specific = nn.ModuleDict({"rgb": rgb_part, "ir": copy.deepcopy(rgb_part)})
        self.trunk = nn.Sequential(*parts.stages[n_specific:], parts.tail)
        channels = parts.out_channels
        self.prepool_attn = AttentionBlock(cfg.attention, channels) if "prepool" in positions else None

        dim = cfg.head_dim or channels
        self.phi_v, self.phi_i, self.phi_s = Extractor(channels, dim), Extractor(channels, dim), Extractor(channels, dim)
        self.pool = make_pool(cfg.pooling, cfg.gem_p)
        self.neck_v, self.neck_i, self.neck_s = BNNeck(dim), BNNeck(dim), BNNeck(dim)
        self.cls_v = make_classifier(dim, num_classes)
        self.cls_i = make_classifier(dim, num_classes)
        self.cls_s = make_classifier(dim, num_classes)
        self.fusion = make_fusion(cfg.fusion, dim, cfg.concat_bn)
        self.embed_dim = dim
        self.feature_dim = dim if cfg.retrieval_feature == "shared" else self.fusion.out_dim

    # ------------------------------------------------------------------ building blocks
    @staticmethod
    def is_backbone_parameter(name: str) -> bool:
        """True for parameters that come from the timm backbone (stems, specific stages, trunk)."""
        return name.startswith(("specific.", "trunk.")) and ".attn." not in name

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters split into ``backbone`` (timm layers, pretrained) and ``head`` (new layers:
        attention, extractors, GeM p, necks, classifiers, fusion) for a backbone lr multiplier."""
        groups: dict[str, list[nn.Parameter]] = {"backbone": [], "head": []}
        for name, p in self.named_parameters():
            if p.requires_grad:
                groups["backbone" if self.is_backbone_parameter(name) else "head"].append(p)
        return groups

    def feature_map(self, x: Tensor, modality: str) -> Tensor:
        """Shared trunk output F (after the prepool attention) for one modality."""
        fmap = self.trunk(self.specific[_check_modality(modality)](x))
        return self.prepool_attn(fmap) if self.prepool_attn is not None else fmap

    def _branches(self, modality: str) -> tuple[nn.Module, nn.Module, nn.Module]:
        return (self.phi_v, self.neck_v, self.cls_v) if modality == "rgb" else (self.phi_i, self.neck_i, self.cls_i)

    def _embed(self, x: Tensor, modality: str):
        fmap = self.feature_map(x, modality)
        phi, neck, _ = self._branches(modality)
        spec, shared = self.pool(phi(fmap)), self.pool(self.phi_s(fmap))
        spec_bn, shared_bn = neck(spec), self.neck_s(shared)
        pre, post, weights = self.fusion(spec, shared, spec_bn, shared_bn)
        return pre, post, shared_bn, weights

    # ------------------------------------------------------------------ public API
    def forward(self, rgb: Tensor, ir: Tensor) -> ModelOutput:
        """Training forward on an index-paired batch: ``rgb[i]`` and ``ir[i]`` share an identity."""
        if rgb.shape[0] != ir.shape[0]:
            raise MaceError(f"paired batch sizes differ (rgb {rgb.shape[0]}, ir {ir.shape[0]})",
                            "give the same number of RGB and IR images per batch")
        b = rgb.shape[0]
        joint = torch.cat([self.specific["rgb"](rgb), self.specific["ir"](ir)], dim=0)
        fmap = self.trunk(joint)
        if self.prepool_attn is not None:
            fmap = self.prepool_attn(fmap)
        f_v, f_i = self.pool(self.phi_v(fmap[:b])), self.pool(self.phi_i(fmap[b:]))
        f_s = self.pool(self.phi_s(fmap))
        bn_v, bn_i, bn_s = self.neck_v(f_v), self.neck_i(f_i), self.neck_s(f_s)
        logits_s = self.cls_s(bn_s)
        pre, _post, weights = self.fusion(torch.cat([f_v, f_i]), f_s, torch.cat([bn_v, bn_i]), bn_s)
        return ModelOutput(logits_v=self.cls_v(bn_v), logits_i=self.cls_i(bn_i),
                           logits_vs=logits_s[:b], logits_is=logits_s[b:],
                           triplet_feat=pre, fusion_weights=weights)

    def extract(self, x: Tensor, modality: str) -> Tensor:
        """Retrieval feature ``[B, feature_dim]`` of one modality's images (call in eval mode)."""
        pre, post, shared_bn, _ = self._embed(x, modality)
        feat = {"fused": post, "pool": pre, "shared": shared_bn}[self.cfg.retrieval_feature]
        return l2_normalize(feat) if self.cfg.normalize_feature else feat

    def logits(self, x: Tensor, modality: str) -> Tensor:
        """Ensemble prediction p_specific + p_shared (eqs 5–6) for one modality."""
        fmap = self.feature_map(x, modality)
        phi, neck, cls = self._branches(modality)
        return cls(neck(self.pool(phi(fmap)))) + self.cls_s(self.neck_s(self.pool(self.phi_s(fmap))))

    @torch.no_grad()
    def attention_maps(self, x: Tensor, modality: str) -> dict[str, dict[str, Tensor | None]]:
        """Attention gates for the configured positions: ``{"stem"|"prepool": {"channel": [B, C] | None,
        "spatial": [B, h, w] | None}}``; values in (0, 1). Empty when ``attention: none``."""
        blocks: dict[str, AttentionBlock] = {}
        stem_attn = getattr(self.specific[_check_modality(modality)], "attn", None)
        if stem_attn is not None:
            blocks["stem"] = stem_attn
        if self.prepool_attn is not None:
            blocks["prepool"] = self.prepool_attn
        with ExitStack() as stack:
            captured = {pos: stack.enter_context(block.capturing()) for pos, block in blocks.items()}
            self.feature_map(x, modality)
            return {pos: dict(gates) for pos, gates in captured.items()}

    @torch.no_grad()
    def fusion_weights(self, x: Tensor, modality: str) -> Tensor | None:
        """Adaptive-fusion gate weights ``[B, 2]`` (specific, shared); ``None`` for other fusions."""
        if self.cfg.fusion != "adaptive":
            return None
        return self._embed(x, modality)[3]


def build_model(cfg: ModelConfig, num_classes: int) -> MaceNet:
    """MACE network for ``num_classes`` training identities (seed torch first for a reproducible init)."""
    return MaceNet(cfg, num_classes)

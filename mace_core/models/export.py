"""A trained MACE network's backbone as a plain timm state dict, loadable as ``model.pretrained: PATH``.

The smoke profile's stand-in for ImageNet weights is a backbone pretrained by the study itself on a
synthetic set of other identities (:mod:`mace_core.study.pretrain`). MACE keeps timm's own modules,
cut into stem / stages / tail (:func:`~mace_core.models.backbones.split_backbone`), so the export cuts
a fresh timm model the same way and copies each piece back: the stem (and any modality-specific
stages) from the RGB stream, as ImageNet weights are RGB weights that both streams start from, the
shared stages and tail from the trunk. Attention blocks, heads and classifiers are not backbone weights
and are left out. The result has exactly the keys that
:func:`~mace_core.models.backbones.load_weights_file` loads strictly.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mace_core.errors import MaceError
from mace_core.models.backbones import create_timm_model, remove_last_stride, split_backbone


def backbone_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """The timm-format state dict (no classifier) of ``net``'s backbone: RGB stem and specific stages,
    shared stages and tail. Tensors are CPU copies in contiguous memory format."""
    cfg = net.cfg
    if cfg.last_stride1 and net.family == "convnext":
        # last stride 1 wraps ConvNeXt's patchify convolution (new keys), which a plain timm model lacks
        raise MaceError("a ConvNeXt backbone with model.last_stride1 cannot be exported as timm weights",
                        "pretrain with model.last_stride1=false")
    model = create_timm_model(cfg.backbone, "none", cfg.backbone_kwargs)
    parts = split_backbone(model, net.family)
    if cfg.last_stride1:   # strides only (no new keys for these families): the copy below then fits
        remove_last_stride(parts.stages)
    rgb = net.specific["rgb"]
    n_specific = cfg.specific_stages
    pieces: list[tuple[nn.Module, nn.Module]] = [(parts.stem, rgb.stem)]
    pieces += [(parts.stages[k], getattr(rgb, f"stage{k + 1}")) for k in range(n_specific)]
    shared = list(net.trunk)   # the shared stages, then the tail
    pieces += list(zip(parts.stages[n_specific:] + [parts.tail], shared))
    if len(shared) != len(parts.stages) - n_specific + 1:
        raise MaceError(f"the network's trunk has {len(shared)} pieces, the backbone {cfg.backbone} "
                        f"{len(parts.stages) - n_specific + 1}", "export a network built by build_model")
    with torch.no_grad():
        for target, source in pieces:
            target.load_state_dict(source.state_dict())   # strict: same timm modules, same keys
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_backbone(net: nn.Module, path: str | Path) -> Path:
    """Write :func:`backbone_state_dict` as safetensors (temp file, then rename: never half-written)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    save_file(backbone_state_dict(net), str(tmp))
    tmp.replace(path)
    return path

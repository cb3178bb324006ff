"""timm backbones split into stem / stages / tail for the two-stream MACE network.

MACE (thesis §2.4.1) gives each modality its own input layers and shares the rest. Every backbone
family names those parts differently, so a small adapter per family returns the same three pieces:

==============  ==================================  ==========================  =====================
family          stem (modality-specific)            stages                      tail (shared, last)
==============  ==================================  ==========================  =====================
resnet*         conv1, bn1, act1, maxpool           layer1..layer4              (none)
seresnet*       same as resnet (SE inside blocks)   layer1..layer4              (none)
efficientnet_*  conv_stem, bn1                      blocks[0..6] (7 stages)     conv_head, bn2
tresnet_*       body.s2d (SpaceToDepth), conv1      body.layer1..body.layer4    (none)
convnext*       stem (4x4 patchify conv, LayerNorm) stages[0..3]                norm_pre (identity)
==============  ==================================  ==========================  =====================

ConvNeXt is not in the thesis; it is supported so that a user's own backbone variant (README,
"Working interactively") can be any of the field's current CNNs. Its pooled features go to the same
BN necks as every family (timm's head LayerNorm is not used).

``specific_stages`` (0/1/2) moves the first N stages into the modality-specific part as well.

Last stride 1 (the AGW reference code's re-ID trick, on by default) removes the downsampling of the last stage
that still downsamples: every stride-2 convolution becomes stride 1, a stride-2 average/max pool
becomes identity and TResNet's anti-alias BlurPool keeps its blur but stops subsampling. Paddings of
these layers are stride-independent for odd kernels, so output sizes simply double. An even-kernel
"patchify" downsampling (ConvNeXt's 2x2, stride 2) gets stride 1 and one row and column of zero
padding at the bottom/right, so its output size doubles too (the weights are unchanged).

CPU-size mapping
----------------
Paper-size backbones are too slow for CPU profiles. :data:`CPU_EQUIVALENTS` maps each to the
smallest member of its family that keeps the family's defining mechanism:

* ``resnet50``        → ``resnet18`` at half width (basic blocks, same stem/stage layout)
* ``seresnet50``      → ``seresnet18`` at half width (SE blocks kept)
* ``efficientnet_b3`` → ``tinynet_e`` (EfficientNet-B0's MBConv + SE blocks at ~0.5x width, ~0.6x depth;
  the smoke profile trains it at 128x64: from scratch at 64x32 the MBConv stacks stayed at chance)
* ``tresnet_m``       → ``tresnet_m`` with ``layers=[1, 1, 1, 1]``, ``width_factor=0.5``
  (SpaceToDepth stem, anti-alias downsampling and SE kept)

Pretrained weights (``model.pretrained``): a timm *tag* ``<architecture>.<tag>`` loads exactly those
weights (e.g. ``resnet50.tv_in1k``, torchvision's original ImageNet weights, the starting point of the
AGW/DDAG/CAJ reference code; the architecture part must be the backbone); ``imagenet`` loads timm's
*default* tag for the backbone (for ``resnet50`` that is ``resnet50.a1_in1k``, the "ResNet strikes back"
recipe, not the torchvision weights); a PATH loads a local ``.safetensors``/``.pth`` with timm's reader
(``weights_only=True``); ``none`` is random init. Every weighted load is strict (every backbone tensor
must arrive; only the classifier is ignored) and any failure (offline hub included) is a
:class:`MaceError`: the network is never silently left (partly) at random init. What was loaded is
returned as :attr:`BackboneParts.weights` (the resolved tag, ``file <name> sha256:<hex>`` or ``none``)
and recorded in the run's results.json (``pretrained_weights``).
"""
from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from timm.layers import BlurPool2d
from timm.models import load_state_dict as timm_load_state_dict
from torch import nn

from mace_core.errors import MaceError

# Half-width ResNet-18s: full width trains too few steps in the smoke budget (synthetic calibration).
# The smoke profile's 01_backbones variants use exactly these (a test keeps them in step).
_HALF_WIDTH = {"channels": [32, 64, 128, 256], "stem_width": 32}
CPU_EQUIVALENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet50": ("resnet18", _HALF_WIDTH),
    "seresnet50": ("seresnet18", _HALF_WIDTH),
    "efficientnet_b3": ("tinynet_e", {}),
    "tresnet_m": ("tresnet_m", {"layers": [1, 1, 1, 1], "width_factor": 0.5}),
}

FAMILIES = ("resnet", "seresnet", "efficientnet", "tresnet", "convnext")


def cpu_equivalent(backbone: str) -> tuple[str, dict[str, Any]]:
    """The CPU-size stand-in ``(timm name, backbone_kwargs)`` for a paper-size backbone."""
    if backbone not in CPU_EQUIVALENTS:
        raise MaceError(f"model.backbone {backbone!r} has no CPU equivalent",
                        f"use one of {', '.join(CPU_EQUIVALENTS)}")
    name, kwargs = CPU_EQUIVALENTS[backbone]
    return name, copy.deepcopy(kwargs)


@dataclass
class BackboneParts:
    """A backbone cut into the pieces MACE recombines."""

    stem: nn.Module
    stages: list[nn.Module]
    tail: nn.Module
    out_channels: int          # channels of the tail output (input of phi_V/phi_I/phi_S)
    family: str
    weights: str = "none"      # what was loaded: timm tag, "file <name> sha256:<hex>" or "none"


def family_of(name: str) -> str:
    """Adapter family of a timm model name (``seresnet`` checked before ``resnet``)."""
    for family in ("seresnet", "resnet", "efficientnet", "tresnet", "convnext"):
        if name.startswith(family):
            return family
    if name.startswith("tinynet"):  # timm's TinyNets are EfficientNet-B0 scaled down (same class, same parts)
        return "efficientnet"
    raise MaceError(f"model.backbone {name!r} is not a supported family",
                    "use a resnet*, seresnet*, efficientnet_*, tresnet_* or convnext* model (e.g. resnet50, "
                    "seresnet50, efficientnet_b3, tresnet_m, convnext_tiny)")


_TAG = re.compile(r"[A-Za-z0-9_]+\.[A-Za-z0-9_]+")


def _is_timm_tag(text: str) -> bool:
    return bool(_TAG.fullmatch(text)) and bool(timm.list_pretrained(text))


def resolve_weights(name: str, pretrained: str) -> str:
    """The timm tag ``pretrained`` stands for on backbone ``name`` (``imagenet`` -> timm's default tag),
    ``none``, or ``file`` for a local weights file; raises :class:`MaceError` for anything else. No download."""
    if pretrained == "none":
        return "none"
    if pretrained == "synthetic":   # resolved by mace_core.study.pretrain into a weights file
        raise MaceError("model.pretrained 'synthetic' names a backbone that the study pretrains itself, and only the "
                        "study resolves it (mace study run, the notebooks, mace_core.study.api)",
                        "train through the study, or set model.pretrained=none (random init), imagenet, a timm tag "
                        "or a weights file")
    if pretrained == "imagenet":
        weights = timm.models.get_pretrained_cfg(name)
        if weights is None or not (weights.hf_hub_id or weights.url or weights.file):
            raise MaceError(f"timm has no ImageNet weights for {name}",
                            f"choose a backbone that has some (timm.list_pretrained('{family_of(name)}*')), "
                            "give a local file (model.pretrained=/path/to/weights.safetensors) or train from "
                            "random init (model.pretrained=none)")
        return f"{weights.architecture}.{weights.tag}"
    if _is_timm_tag(pretrained):
        architecture = pretrained.split(".", 1)[0]
        if architecture != name:
            raise MaceError(f"model.pretrained {pretrained!r} holds weights for {architecture}, but model.backbone "
                            f"is {name}", f"name a {name} tag (timm.list_pretrained('{name}.*')), imagenet for "
                            "timm's default tag, or none")
        return pretrained
    if Path(pretrained).expanduser().is_file():
        return "file"
    hint = f"timm.list_pretrained('{name}.*') lists the tags" if timm.is_model(name) else "check model.backbone"
    raise MaceError(f"model.pretrained {pretrained!r} is neither a timm weights tag, 'imagenet', 'none' nor an "
                    "existing file",
                    f"give a tag such as {name}.<tag> ({hint}), imagenet, none, or the path of a "
                    ".safetensors/.pth state dict for this backbone")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def create_timm_model(name: str, pretrained: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """timm model without classifier; ``pretrained`` is a timm tag | ``imagenet`` | ``none`` | a local path.

    Loading is strict in every weighted case: a key the backbone lacks or a file without some of the
    backbone's tensors is an error, never a partly random network. ``model.weights_loaded`` says what
    was loaded (see :func:`resolve_weights`).
    """
    kwargs = dict(kwargs or {})
    kwargs.pop("num_classes", None)
    if not timm.is_model(name):
        raise MaceError(f"model.backbone {name!r} is not a timm model", "check the name with timm.list_models()")
    resolved = resolve_weights(name, pretrained)
    if resolved == "none":
        model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    elif resolved == "file":
        path = Path(pretrained).expanduser()
        model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
        load_weights_file(model, path, name)
        resolved = f"file {path.name} sha256:{file_sha256(path)}"
    else:
        try:
            # Keep timm's classifier while loading so its load is strict, then drop it.
            model = timm.create_model(resolved, pretrained=True, **kwargs)
        except Exception as exc:  # noqa: BLE001 - offline hub, no weights for this name, shape-changing kwargs ...
            raise MaceError(
                f"could not load ImageNet weights {resolved} for {name} ({_first_line(exc)})",
                f"download them on a connected machine (timm.create_model('{resolved}', pretrained=True) caches "
                "them) or set model.pretrained to a local file, e.g. model.pretrained=/path/to/weights.safetensors "
                "(or .pth); model.pretrained=none trains from random init") from None
        model.reset_classifier(0)
    model.weights_loaded = resolved
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_weights_file(model: nn.Module, path: Path, name: str) -> None:
    """Strictly load a local state dict (timm's reader: safetensors or ``torch.load(weights_only=True)``,
    ``state_dict``/``model`` wrappers and ``module.`` prefixes handled); the classifier is ignored."""
    fix = "give a state dict saved from the same timm architecture and backbone_kwargs"
    try:
        state = timm_load_state_dict(str(path), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file becomes one clear error
        raise MaceError(f"weights file {path} could not be read ({_first_line(exc)})", fix) from None
    classifier = model.pretrained_cfg.get("classifier") or ()
    for prefix in (classifier,) if isinstance(classifier, str) else classifier:
        state = {k: v for k, v in state.items() if not k.startswith(prefix + ".")}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise MaceError(f"weights file {path} does not fit backbone {name} (shape mismatch: "
                        f"{_first_line(exc)[:300]})", fix) from None
    if result.missing_keys or result.unexpected_keys:
        raise MaceError(f"weights file {path} does not fit backbone {name} (missing: {result.missing_keys[:5]}, "
                        f"unexpected: {result.unexpected_keys[:5]})", fix)


def split_backbone(model: nn.Module, family: str) -> BackboneParts:
    """Cut a timm model into stem / stages / tail according to its family (see the module table)."""
    if family in ("resnet", "seresnet"):
        stem = nn.Sequential(model.conv1, model.bn1, model.act1, model.maxpool)
        stages = [model.layer1, model.layer2, model.layer3, model.layer4]
        tail: nn.Module = nn.Identity()
    elif family == "efficientnet":
        stem = nn.Sequential(model.conv_stem, model.bn1)
        stages = list(model.blocks)
        tail = nn.Sequential(model.conv_head, model.bn2)
    elif family == "tresnet":
        body = model.body
        stem = nn.Sequential(body.s2d, body.conv1)
        stages = [body.layer1, body.layer2, body.layer3, body.layer4]
        tail = nn.Identity()
    elif family == "convnext":
        stem = model.stem
        stages = list(model.stages)
        tail = model.norm_pre
    else:
        raise MaceError(f"backbone family {family!r} is not supported", f"use one of {', '.join(FAMILIES)}")
    return BackboneParts(stem=stem, stages=stages, tail=tail, out_channels=int(model.num_features), family=family,
                         weights=getattr(model, "weights_loaded", "none"))


def _downsamples(module: nn.Module) -> bool:
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and max(m.stride) > 1:
            return True
        if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) and _as_int(m.stride) > 1:
            return True
        if isinstance(m, BlurPool2d) and m.stride > 1:
            return True
    return False


def _as_int(stride: Any) -> int:
    return max(stride) if isinstance(stride, (tuple, list)) else int(stride or 1)


def remove_last_stride(stages: list[nn.Module]) -> int:
    """Make the last downsampling stage keep its resolution; returns that stage's index."""
    for index in range(len(stages) - 1, -1, -1):
        if _downsamples(stages[index]):
            _set_stride_one(stages[index])
            return index
    raise MaceError("model.last_stride1 is set but the backbone has no downsampling stage",
                    "set model.last_stride1=false")


def _set_stride_one(stage: nn.Module) -> None:
    for name, m in list(stage.named_modules()):
        if isinstance(m, nn.Conv2d) and max(m.stride) > 1:
            even = [k for k in m.kernel_size if k % 2 == 0]
            m.stride = (1, 1)
            if even and m.padding == (0, 0):   # patchify conv: pad bottom/right so the size doubles
                kh, kw = m.kernel_size
                parent_name, _, child = name.rpartition(".")
                parent = stage.get_submodule(parent_name) if parent_name else stage
                setattr(parent, child, nn.Sequential(nn.ZeroPad2d((0, kw - 1, 0, kh - 1)), m))
        elif isinstance(m, BlurPool2d) and m.stride > 1:
            m.stride = 1  # keep the anti-alias blur, drop the subsampling
        elif isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) and _as_int(m.stride) > 1:
            parent_name, _, child = name.rpartition(".")
            parent = stage.get_submodule(parent_name) if parent_name else stage
            setattr(parent, child, nn.Identity())


def build_backbone(name: str, pretrained: str, kwargs: dict[str, Any] | None,
                   last_stride1: bool) -> BackboneParts:
    """Create, load and split a backbone; applies last stride 1 when asked."""
    family = family_of(name)
    model = create_timm_model(name, pretrained, kwargs)
    parts = split_backbone(model, family)
    if last_stride1:
        remove_last_stride(parts.stages)
    return parts


@torch.no_grad()
def output_channels(module: nn.Module, in_channels: int = 3, size: tuple[int, int] = (64, 32)) -> int:
    """Channels a module produces, found by one tiny eval-mode forward (restores the train flag)."""
    was_training = module.training
    module.eval()
    try:
        ref = next(module.parameters(), None)
        x = torch.zeros(1, in_channels, *size, device=ref.device if ref is not None else "cpu")
        return int(module(x).shape[1])
    finally:
        module.train(was_training)

"""Train/test transforms (torchvision.transforms.v2) on uint8 CHW tensors from the cache.

Train follows the AGW reference code's recipe: pad 10, random crop back to size, horizontal flip; random
erasing and random grayscale are optional. ``extra`` is a hook for the occlusion augmentation: a
callable on the uint8 CHW tensor. The train transform stops at uint8: loader workers ship uint8
batches (4x less to move between processes and to the device) and the trainer normalises a
whole batch on the device with ``normalize_batch``. The test transform returns normalised float
images (same arithmetic as ``normalize_batch``, so the two agree bit for bit); evaluation uses only its
uint8 ``prepare`` step per image and normalises whole batches on the device, as training does.
"""
from __future__ import annotations

from typing import Callable

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _EnsureSize:
    """Resize only when the input is not already ``size`` (cached images normally are)."""

    def __init__(self, size):
        self.size = (int(size[0]), int(size[1]))
        self.resize = v2.Resize(self.size, antialias=True)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return img if tuple(img.shape[-2:]) == self.size else self.resize(img)


def _check(size):
    size = (int(size[0]), int(size[1]))
    if min(size) < 1:
        from mace_core.errors import MaceError

        raise MaceError(f"image size must be positive, got {size}", "use e.g. 288x144")
    return size


# (x/255 - mean)/std computed as (x - 255*mean) / (255*std): one subtract and one divide on the raw
# uint8 values, with no separate /255 pass.
_MEAN_255 = [255 * m for m in IMAGENET_MEAN]
_STD_255 = [255 * s for s in IMAGENET_STD]
# Random erasing fills with the ImageNet mean colour: it normalises to ~0, the value erasing after
# normalisation would write (|error| < 0.01 after normalisation).
ERASE_FILL = [round(m) for m in _MEAN_255]


def _normalise() -> list[Callable]:
    return [v2.ToDtype(torch.float32, scale=False), v2.Normalize(_MEAN_255, _STD_255)]


def normalize_batch(x: torch.Tensor, device=None, memory_format: torch.memory_format = torch.contiguous_format,
                    non_blocking: bool = True) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` batch → float32 ImageNet-normalised batch on ``device``.

    The uint8 batch moves first (4x fewer bytes than float), then one batched subtract/divide runs
    where it landed; ``memory_format`` (e.g. channels_last) is applied during the move and kept.
    """
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
        from mace_core.errors import MaceError

        raise MaceError(f"normalize_batch expects a uint8 (B, 3, H, W) batch, got {x.dtype} {tuple(x.shape)}",
                        "pass the loader's uint8 image batch (train_transform output, stacked)")
    x = x.to(x.device if device is None else device, non_blocking=non_blocking, memory_format=memory_format)
    mean, std = _stats(x.device)
    # same two float ops as v2.Normalize, so a batch matches test_transform per image exactly
    return x.to(torch.float32).sub_(mean).div_(std)


_STATS: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def _stats(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # built once per device: no small host->device copy on every step
    if device not in _STATS:
        _STATS[device] = (torch.tensor(_MEAN_255, dtype=torch.float32, device=device).view(1, 3, 1, 1),
                          torch.tensor(_STD_255, dtype=torch.float32, device=device).view(1, 3, 1, 1))
    return _STATS[device]


def train_transform(size, pad: int = 10, flip: bool = True, random_erasing: float = 0.0,
                    grayscale_p: float = 0.0, extra: Callable | None = None) -> Callable:
    size = _check(size)
    steps: list[Callable] = [_EnsureSize(size)]
    if pad:
        steps.append(v2.RandomCrop(size, padding=pad))  # zero-pad by `pad`, crop back to size
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    if grayscale_p > 0:
        steps.append(v2.RandomGrayscale(grayscale_p))
    if extra is not None:
        steps.append(extra)
    if random_erasing > 0:
        steps.append(v2.RandomErasing(random_erasing, value=ERASE_FILL))
    return v2.Compose(steps)  # uint8 out: normalize_batch finishes the job on the device


class EvalTransform(v2.Compose):
    """uint8 CHW image -> normalised float image at ``size``. ``prepare`` is its uint8 part (the size
    check): batched evaluation runs that in loader workers and ``normalize_batch`` on the device, with
    the same arithmetic as calling the transform per image."""

    def __init__(self, size):
        super().__init__([_EnsureSize(size), *_normalise()])
        self.image_size = tuple(size)

    def prepare(self, img: torch.Tensor) -> torch.Tensor:
        return self.transforms[0](img)


def test_transform(size) -> EvalTransform:
    return EvalTransform(_check(size))


# The name starts with "test": keep pytest from collecting it when a test module imports it.
test_transform.__test__ = False

"""Train/test transforms (torchvision.transforms.v2) on uint8 CHW tensors from the cache.

Train follows the reference recipe: pad 10, random crop back to size, horizontal flip, ImageNet
normalisation; random erasing and random grayscale are optional. ``extra`` is a hook for the
occlusion augmentation: a callable on the uint8 CHW tensor, applied before normalisation.
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


def _normalise() -> list[Callable]:
    # (x/255 - mean)/std as one float pass: Normalize with mean and std scaled by 255.
    return [v2.ToDtype(torch.float32, scale=False),
            v2.Normalize([255 * m for m in IMAGENET_MEAN], [255 * s for s in IMAGENET_STD])]


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
    steps += _normalise()
    if random_erasing > 0:
        steps.append(v2.RandomErasing(random_erasing))
    return v2.Compose(steps)


def test_transform(size) -> Callable:
    size = _check(size)
    return v2.Compose([_EnsureSize(size), *_normalise()])


# The name starts with "test": keep pytest from collecting it when a test module imports it.
test_transform.__test__ = False

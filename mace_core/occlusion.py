"""Synthetic occlusions: test-time corruption of IR queries and the training augmentation.

Types (thesis experiment 6 and its plan):

* ``random_rect``: a rectangle covering 20-40 % of the image (area uniform in that range,
  aspect ratio log-uniform in [1/2, 2] relative to a square), anywhere in the image;
* ``horizontal_band``: a full-width band of 20-40 % of the height, anywhere vertically;
* ``upper_body``: a full-width block from the top edge, 20-40 % of the height (head and torso
  of a pedestrian crop);
* ``lower_body``: a full-width block from the bottom edge, 20-40 % of the height (the legs);
* ``top_half``, ``bottom_half``, ``left_half``, ``right_half``: exactly half the image.

Fills: ``zero`` (black, the default: an opaque occluder, and IR background is dark),
``mean`` (the image's per-channel mean) or ``noise`` (uniform random pixels).

Images are uint8 tensors ``(C, H, W)`` (the form the transforms use); ``(H, W, C)`` NumPy arrays
are accepted and returned in the same form. Everything random comes from a NumPy generator: for
test-time occlusion each image gets ``np.random.default_rng([seed, index])``, so the corruption
of image ``index`` does not depend on batch order or on which other images are evaluated.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from mace_core.errors import MaceError

KINDS = ("random_rect", "horizontal_band", "upper_body", "lower_body",
         "top_half", "bottom_half", "left_half", "right_half")
FILLS = ("zero", "mean", "noise")
DEFAULT_FILL = "zero"
TRAIN_KINDS = ("random_rect", "horizontal_band")
AREA_RANGE = (0.2, 0.4)


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise MaceError(f"unknown occlusion type {kind!r}", f"use one of {', '.join(KINDS)}")
    return kind


def check_fill(fill: str) -> str:
    if fill not in FILLS:
        raise MaceError(f"unknown occlusion fill {fill!r}", f"use one of {', '.join(FILLS)}")
    return fill


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for image ``index`` of a seeded evaluation."""
    return np.random.default_rng([int(seed), int(index)])


def occlusion_box(height: int, width: int, kind: str, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``(top, left, box_height, box_width)`` of the occluded rectangle."""
    check_kind(kind)
    h, w = int(height), int(width)
    if kind == "top_half":
        return 0, 0, h // 2, w
    if kind == "bottom_half":
        return h - h // 2, 0, h // 2, w
    if kind == "left_half":
        return 0, 0, h, w // 2
    if kind == "right_half":
        return 0, w - w // 2, h, w // 2
    frac = rng.uniform(*AREA_RANGE)
    if kind == "random_rect":
        aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
        area = frac * h * w
        bh = min(h, max(1, round(math.sqrt(area * aspect))))
        bw = min(w, max(1, round(area / bh)))
        bh = min(h, max(1, round(area / bw)))   # if the width was clipped, grow the height back
        top = int(rng.integers(0, h - bh + 1))
        left = int(rng.integers(0, w - bw + 1))
        return top, left, bh, bw
    bh = min(h, max(1, round(frac * h)))
    if kind == "horizontal_band":
        return int(rng.integers(0, h - bh + 1)), 0, bh, w
    if kind == "upper_body":
        return 0, 0, bh, w
    return h - bh, 0, bh, w   # lower_body


def occlusion_mask(height: int, width: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the occluded pixels."""
    top, left, bh, bw = occlusion_box(height, width, kind, rng)
    mask = np.zeros((height, width), bool)
    mask[top:top + bh, left:left + bw] = True
    return mask


def _as_chw(img) -> tuple[torch.Tensor, bool]:
    if isinstance(img, np.ndarray):
        if img.ndim != 3:
            raise MaceError(f"occlusion expects an (H, W, C) image array, got shape {img.shape}",
                            "pass one image at a time")
        # a copy: cached images are read-only memory maps, which torch.from_numpy warns about
        return torch.from_numpy(np.array(img, order="C")).permute(2, 0, 1), True
    if not isinstance(img, torch.Tensor) or img.ndim != 3:
        raise MaceError("occlusion expects a (C, H, W) uint8 tensor or an (H, W, C) uint8 array",
                        "apply occlusion before normalisation, on the uint8 image")
    return img, False


def occlude(img, kind: str, fill: str = DEFAULT_FILL, rng: np.random.Generator | None = None,
            seed: int | None = None):
    """A copy of ``img`` with one occlusion of ``kind`` painted with ``fill``.

    Randomness comes from ``rng``, else from ``np.random.default_rng(seed)``.
    """
    check_kind(kind)
    check_fill(fill)
    if rng is None:
        rng = np.random.default_rng(seed)
    chw, was_hwc = _as_chw(img)
    if chw.dtype != torch.uint8:
        raise MaceError(f"occlusion expects uint8 pixels, got {chw.dtype}",
                        "apply occlusion before converting/normalising the image")
    c, h, w = chw.shape
    top, left, bh, bw = occlusion_box(h, w, kind, rng)
    out = chw.clone()
    if fill == "zero":
        value = torch.zeros((c, 1, 1), dtype=torch.uint8)
    elif fill == "mean":
        value = chw.float().mean(dim=(1, 2)).round().to(torch.uint8)[:, None, None]
    else:
        value = torch.from_numpy(rng.integers(0, 256, (c, bh, bw), dtype=np.uint8))
    out[:, top:top + bh, left:left + bw] = value
    return out.permute(1, 2, 0).numpy() if was_hwc else out


class OcclusionAugment:
    """Training augmentation: with probability ``p`` occlude the image with one of ``kinds``.

    Callable on a uint8 ``(C, H, W)`` tensor (the ``extra`` hook of the train transform). With
    ``seed=None`` each call draws its randomness from torch's global generator, so it follows the
    run's seeding and DataLoader workers (which torch seeds differently) do not repeat each other;
    with a ``seed`` it uses its own reproducible stream.
    """

    def __init__(self, p: float = 0.5, kinds=TRAIN_KINDS, fill: str = DEFAULT_FILL, seed: int | None = None):
        if not 0.0 <= float(p) <= 1.0:
            raise MaceError(f"occlusion probability must be in [0, 1], got {p}", "use e.g. p=0.5")
        kinds = tuple(kinds)
        if not kinds:
            raise MaceError("no occlusion types given", f"choose among {', '.join(KINDS)}")
        for k in kinds:
            check_kind(k)
        self.p, self.kinds, self.fill = float(p), kinds, check_fill(fill)
        self._rng = None if seed is None else np.random.default_rng(seed)

    def _next_rng(self) -> np.random.Generator:
        if self._rng is not None:
            return self._rng
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))

    def __call__(self, img):
        rng = self._next_rng()
        if rng.random() >= self.p:
            return img
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        return occlude(img, kind, self.fill, rng=rng)

    def __repr__(self) -> str:
        return f"OcclusionAugment(p={self.p}, kinds={self.kinds}, fill={self.fill!r})"


def occlusion_examples(image, kinds=KINDS, seed: int = 0, fill: str = DEFAULT_FILL) -> dict:
    """``{"clean": image, kind: occluded image, ...}`` for figures (same form as ``image``)."""
    out = {"clean": image}
    for i, kind in enumerate(kinds):
        out[kind] = occlude(image, kind, fill, rng=image_rng(seed, i))
    return out

"""Occlusion: covered fractions, determinism, fills, the training augmentation, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mace_core.errors import MaceError
from mace_core.occlusion import (
    KINDS,
    OcclusionAugment,
    image_rng,
    occlude,
    occlusion_examples,
    occlusion_mask,
)


def _image(h=288, w=144, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (3, h, w), dtype=torch.uint8, generator=g)   # no zero pixel


@pytest.mark.parametrize("size", [(288, 144), (64, 32), (50, 50)])
@pytest.mark.parametrize("kind", KINDS)
def test_covered_fraction(kind, size):
    h, w = size
    fractions = [occlusion_mask(h, w, kind, image_rng(0, i)).mean() for i in range(40)]
    if kind.endswith("_half"):
        assert all(f == pytest.approx(0.5, abs=1 / min(h, w)) for f in fractions)
    else:
        assert min(fractions) >= 0.2 - 0.02 and max(fractions) <= 0.4 + 0.02
        assert max(fractions) - min(fractions) > 0.05       # the size really varies


def test_regions_are_where_their_names_say():
    h, w = 100, 50
    up = occlusion_mask(h, w, "upper_body", image_rng(0, 0))
    low = occlusion_mask(h, w, "lower_body", image_rng(0, 0))
    band = occlusion_mask(h, w, "horizontal_band", image_rng(0, 3))
    assert up[0].all() and not up[-1].any() and low[-1].all() and not low[0].any()
    assert band.all(axis=1).sum() == band.any(axis=1).sum() > 0     # full-width rows only
    assert occlusion_mask(h, w, "left_half", None)[:, :25].all()
    assert not occlusion_mask(h, w, "right_half", None)[:, :25].any()
    assert occlusion_mask(h, w, "top_half", None)[:50].all() and not occlusion_mask(h, w, "bottom_half", None)[:50].any()


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_per_seed_and_index(kind):
    img = _image()
    a = occlude(img, kind, "noise", rng=image_rng(7, 3))
    b = occlude(img, kind, "noise", rng=image_rng(7, 3))
    assert torch.equal(a, b)
    assert torch.equal(img, _image())          # the input is untouched
    if kind in ("random_rect", "horizontal_band"):
        others = [occlude(img, kind, "zero", rng=image_rng(7, i)) for i in range(4)]
        assert any(not torch.equal(others[0], o) for o in others[1:])


def test_fills_and_forms():
    img = _image(40, 20)
    zero = occlude(img, "top_half", "zero")
    assert (zero[:, :20] == 0).all() and torch.equal(zero[:, 20:], img[:, 20:])
    mean = occlude(img, "top_half", "mean")
    expect = img.float().mean(dim=(1, 2)).round().to(torch.uint8)
    assert torch.equal(mean[:, 0, 0], expect) and (mean[:, :20] == expect[:, None, None]).all()
    noise = occlude(img, "top_half", "noise", seed=1)
    assert noise[:, :20].float().std() > 30
    hwc = img.permute(1, 2, 0).numpy().copy()
    out = occlude(hwc, "left_half", "zero")
    assert isinstance(out, np.ndarray) and out.shape == hwc.shape and (out[:, :10] == 0).all()
    assert np.array_equal(out, occlude(img, "left_half", "zero").permute(1, 2, 0).numpy())


def test_training_augmentation_probability_and_types():
    img = _image(64, 32)
    aug = OcclusionAugment(p=0.5, seed=0)
    outs = [aug(img) for _ in range(200)]
    changed = [not torch.equal(o, img) for o in outs]
    assert 70 < sum(changed) < 130
    full_rows = [bool(((o == 0).all(0)).all(1).any()) for o, c in zip(outs, changed) if c]
    assert any(full_rows) and not all(full_rows)    # both bands and rectangles occur
    assert all(torch.equal(OcclusionAugment(p=0.0, seed=1)(img), img) for _ in range(5))
    torch.manual_seed(3)
    a = [OcclusionAugment(p=1.0)(img) for _ in range(3)]
    torch.manual_seed(3)
    b = [OcclusionAugment(p=1.0)(img) for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))   # follows torch's seeding


def test_examples_for_figures():
    img = _image(32, 16)
    ex = occlusion_examples(img, seed=0)
    assert list(ex) == ["clean", *KINDS] and torch.equal(ex["clean"], img)
    assert all(not torch.equal(ex[k], img) for k in KINDS)


def test_bad_input():
    img = _image(8, 8)
    with pytest.raises(MaceError, match="random_rect"):
        occlude(img, "diagonal")
    with pytest.raises(MaceError, match="zero, mean, noise"):
        occlude(img, "top_half", "blur")
    with pytest.raises(MaceError, match="uint8"):
        occlude(img.float(), "top_half")
    with pytest.raises(MaceError, match="probability"):
        OcclusionAugment(p=1.5)
    with pytest.raises(MaceError, match="unknown occlusion type"):
        OcclusionAugment(kinds=("top_half", "nope"))

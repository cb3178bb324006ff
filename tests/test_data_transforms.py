"""Train/test transforms and the torch datasets over cached arrays."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _data_helpers import build_tiny_regdb, build_tiny_sysu
from mace_core.data.datasets import CrossModalTrainDataset, ImageArrayDataset, load_training_data
from mace_core.data.transforms import (
    ERASE_FILL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    normalize_batch,
    test_transform,
    train_transform,
)
from mace_core.errors import MaceError


def const(value, h=32, w=16):
    return torch.full((3, h, w), value, dtype=torch.uint8)


def test_test_transform_normalises_and_resizes():
    out = test_transform((32, 16))(const(255))
    assert out.dtype == torch.float32 and out.shape == (3, 32, 16)
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(out.mean(dim=(1, 2)), torch.tensor(expected), atol=1e-5)
    assert test_transform((64, 32))(const(255)).shape == (3, 64, 32)


def test_train_transform_pads_crops_and_flips():
    torch.manual_seed(0)
    img = torch.zeros((3, 32, 16), dtype=torch.uint8)
    img[:, :, :8] = 200  # left half bright: flips and crops move it
    t = train_transform((32, 16), pad=10, flip=True)
    outs = [t(img) for _ in range(20)]
    assert all(o.shape == (3, 32, 16) and o.dtype == torch.uint8 for o in outs)  # normalised later, per batch
    assert len({o.sum().item() for o in outs}) > 1
    assert any((o[0] == 0).float().mean() > 0.55 for o in outs)  # the zero padding shows
    assert any(torch.equal(o, img.flip(-1)) for o in outs)  # a pure flip: no crop offset
    torch.manual_seed(1)
    a = [t(img) for _ in range(3)]
    torch.manual_seed(1)
    assert all(torch.equal(x, y) for x, y in zip(a, [t(img) for _ in range(3)]))  # seeded


def test_extra_hook_runs_on_uint8_before_normalisation():
    seen = []

    def hook(x):
        seen.append((x.dtype, tuple(x.shape)))
        return torch.zeros_like(x)

    out = train_transform((32, 16), pad=0, flip=False, extra=hook)(const(255))
    assert seen == [(torch.uint8, (3, 32, 16))]
    assert out.dtype == torch.uint8 and not out.any()


def test_random_erasing_and_grayscale_are_optional():
    torch.manual_seed(0)
    img = torch.stack([const(250)[0], const(10)[0], const(100)[0]])
    gray = train_transform((32, 16), pad=0, flip=False, grayscale_p=1.0)(img)
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert train_transform((32, 16), pad=0, flip=False)(img).equal(img)  # nothing optional by default
    erased = train_transform((32, 16), pad=0, flip=False, random_erasing=1.0)(const(255))
    hole = (erased != 255).all(0)
    assert hole.any() and not hole.all()
    # the erased box holds the mean colour: ~0 once normalised, as erasing after normalisation would give
    assert erased[:, hole].unique(dim=1).tolist() == [[v] for v in ERASE_FILL]
    normalised = normalize_batch(erased[None])[0][:, hole]
    assert normalised.abs().max() < 0.01


def test_normalize_batch_matches_the_per_image_transform_exactly():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 32, 16), dtype=torch.uint8, generator=g)
    out = normalize_batch(x, "cpu")
    assert out.dtype == torch.float32 and out.shape == x.shape
    per_image = torch.stack([test_transform((32, 16))(img) for img in x])
    assert torch.equal(out, per_image)  # bit for bit: training and evaluation see the same numbers
    expected = (x[1, 2, 3, 4].item() / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]
    assert out[1, 2, 3, 4].item() == pytest.approx(expected, abs=1e-5)
    cl = normalize_batch(x, "cpu", torch.channels_last)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, out)
    with pytest.raises(MaceError, match="uint8"):
        normalize_batch(out)
    with pytest.raises(MaceError, match="uint8"):
        normalize_batch(x[0])


def test_bad_size_is_refused():
    with pytest.raises(MaceError):
        test_transform((0, 16))


def test_sysu_training_data_and_datasets(tmp_path):
    root = build_tiny_sysu(tmp_path / "s", ids=(1, 2, 3, 4, 5, 6), train=(1, 2, 3), val=(4,), test=(5, 6))
    td = load_training_data("sysu", root, (32, 16), cache_dir=tmp_path / "c")
    assert td.pids == [1, 2, 3, 4] and td.num_classes == 4
    assert td.rgb_images.shape == (4 * 4 * 3, 32, 16, 3) and td.ir_images.shape == (4 * 2 * 3, 32, 16, 3)
    assert sorted(set(td.rgb_labels)) == [0, 1, 2, 3] and set(td.ir_cams) == {3, 6}
    only_train = load_training_data("sysu", root, (32, 16), cache_dir=tmp_path / "c", include_val=False)
    assert only_train.pids == [1, 2, 3]
    half = load_training_data("sysu", root, (32, 16), cache_dir=tmp_path / "c", id_fraction=0.5, fraction_seed=1)
    assert half.num_classes == 2 and sorted(set(half.ir_labels)) == [0, 1] and set(half.pids) < {1, 2, 3, 4}

    plain = train_transform((32, 16), pad=0, flip=False)
    ds = CrossModalTrainDataset(td.rgb_images, td.rgb_labels, td.ir_images, td.ir_labels, plain, plain)
    rgb, ir, lr, li = ds[(5, 7)]
    assert rgb.dtype == ir.dtype == torch.uint8 and rgb.shape == ir.shape == (3, 32, 16)
    assert torch.equal(rgb, torch.from_numpy(np.array(td.rgb_images[5])).permute(2, 0, 1))
    assert (lr, li) == (td.rgb_labels[5], td.ir_labels[7])
    test_ds = ImageArrayDataset(td.ir_images, test_transform((32, 16)))
    x, i = test_ds[2]
    assert i == 2 and len(test_ds) == len(td.ir_images)
    assert torch.allclose(x, test_transform((32, 16))(torch.from_numpy(np.array(td.ir_images[2])).permute(2, 0, 1)))


def test_regdb_training_data(tmp_path):
    root = build_tiny_regdb(tmp_path / "r", ids=6, images=2)
    td = load_training_data("regdb", root, (16, 8), cache_dir=tmp_path / "c", trial=1)
    assert td.num_classes == 3 and set(td.rgb_cams) == {1} and set(td.ir_cams) == {2}
    assert len(td.rgb_labels) == len(td.ir_labels) == 6


def test_unknown_dataset_and_bad_fraction(tmp_path):
    with pytest.raises(MaceError, match="unknown dataset"):
        load_training_data("market", tmp_path, (16, 8))
    root = build_tiny_sysu(tmp_path / "s")
    with pytest.raises(MaceError, match="fraction"):
        load_training_data("sysu", root, (16, 8), cache_dir=tmp_path / "c", id_fraction=0)

"""Seeded batches: augmentation depends on (seed, epoch, batch, rank) only, not on workers or history."""
from __future__ import annotations

import pytest
import torch
from _train_helpers import tiny_config

from mace_core.engine.batches import SeededBatches, collate_items, derive_seed, make_loader
from mace_core.engine.device import DistInfo
from mace_core.engine.prepare import build_training_set


def _batches(cfg, workers: int, epoch: int = 0):
    _, dataset, sampler = build_training_set(cfg, DistInfo())
    sampler.set_epoch(epoch)
    loader, keys = make_loader(dataset, cfg.train.seed, 0, workers, False, False)
    keys.set(epoch, list(sampler))
    return list(loader)


def test_same_batches_with_and_without_workers_and_caller_rng_untouched(tiny_root):
    cfg = tiny_config(tiny_root)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    main = _batches(cfg, workers=0)
    assert torch.equal(torch.get_rng_state(), before)  # loading never consumes the caller's generator
    workers = _batches(cfg, workers=2)
    assert len(main) == len(workers) == 3
    rgb, ir, y_rgb, _ = workers[0]
    assert rgb.dtype == ir.dtype == torch.uint8 and rgb.shape[0] == ir.shape[0] == y_rgb.shape[0]  # normalised later
    for a, b in zip(main, workers):
        for ta, tb in zip(a, b):
            assert torch.equal(ta, tb)
    other_epoch = _batches(cfg, workers=0, epoch=1)
    assert not torch.equal(main[0][0], other_epoch[0][0])


def test_derive_seed_separates_its_inputs():
    seeds = {derive_seed(0, e, b, r) for e in range(4) for b in range(50) for r in range(2)}
    assert len(seeds) == 400
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3) != derive_seed(1, 3, 2)


def test_occlusion_and_identity_fraction_reach_the_batches(tiny_root):
    plain = tiny_config(tiny_root)
    occluded = tiny_config(tiny_root, ["data.occlusion_p=1.0", "data.occlusion_types=[horizontal_band]"])
    data_p, ds_p, sampler = build_training_set(plain, DistInfo())
    _, ds_o, _ = build_training_set(occluded, DistInfo())
    key = (0, 0, next(iter(sampler)))
    rgb_p, ir_p, y_p, _ = SeededBatches(ds_p, 0)[key]
    rgb_o, ir_o, y_o, _ = SeededBatches(ds_o, 0)[key]
    assert torch.equal(y_p, y_o)
    assert not torch.equal(ir_p, ir_o) and not torch.equal(rgb_p, rgb_o)  # both modalities are occluded
    half, _, _ = build_training_set(tiny_config(tiny_root, ["data.id_fraction=0.5"]), DistInfo())
    assert half.num_classes == data_p.num_classes // 2


def test_collate_items_stacks_images_into_one_block_and_labels_into_int64():
    g = torch.Generator().manual_seed(0)
    items = [(torch.randint(0, 256, (3, 4, 2), dtype=torch.uint8, generator=g),
              torch.randint(0, 256, (3, 4, 2), dtype=torch.uint8, generator=g), k, 10 + k) for k in range(5)]
    rgb, ir, y_rgb, y_ir = collate_items(items)
    assert torch.equal(rgb, torch.stack([i[0] for i in items])) and torch.equal(ir, torch.stack([i[1] for i in items]))
    assert rgb.untyped_storage().data_ptr() == ir.untyped_storage().data_ptr()  # one allocation per batch
    assert y_rgb.tolist() == list(range(5)) and y_ir.tolist() == list(range(10, 15)) and y_ir.dtype == torch.int64
    with pytest.raises(ValueError, match="differ"):
        collate_items([(items[0][0], items[0][1][:, :2], 0, 0)])

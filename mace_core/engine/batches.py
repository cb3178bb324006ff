"""Training batches whose randomness depends only on (seed, epoch, batch index, rank).

torchvision's v2 transforms draw from torch's global generator. In DataLoader workers that
generator is seeded per worker, so the augmentation a batch gets would depend on the worker count
and on where a run was resumed. Here each batch is one dataset item: the wrapper reseeds torch,
Python and NumPy from a seed derived from (seed, epoch, batch, rank) before building it, inside a
forked RNG so the caller's generators are untouched. The same batch therefore gets the same
augmentation with 0 or 8 workers, in one run or after a resume.

Batches stay uint8 (the trainer normalises on the device): ``collate_items`` copies every image of
a batch into one preallocated tensor, in shared memory when built in a worker, so a batch crosses
to the main process as a single segment of 1 byte per pixel value.
"""
from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (SplitMix64-style), stable across Python versions."""
    x = 0x9E3779B97F4A7C15
    for part in parts:
        x = (x ^ (int(part) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


class SeededBatches(Dataset):
    """Item ``(epoch, index, pairs)`` -> the collated batch of ``base[pair]`` for every pair."""

    def __init__(self, base: Dataset, seed: int, rank: int = 0):
        self.base = base
        self.seed = seed
        self.rank = rank

    def __getitem__(self, key: tuple[int, int, Sequence[Any]]):
        epoch, index, pairs = key
        seed = derive_seed(self.seed, epoch, index, self.rank)
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
            try:
                items = [self.base[tuple(p) if isinstance(p, list) else p] for p in pairs]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
        return collate_items(items)


def collate_items(items: Sequence[Sequence[Any]]) -> tuple:
    """Items ``(image, image, ..., int, ...)`` → ``(B, ...)`` tensors per field.

    All image fields share one preallocated storage (shared memory inside a worker, so the hand-over
    to the main process copies nothing); ints become an int64 tensor.
    """
    if not items:
        raise ValueError("collate_items needs at least one item")
    first = items[0]
    image_fields = [f for f, v in enumerate(first) if isinstance(v, torch.Tensor)]
    out: list[Any] = [None] * len(first)
    if image_fields:
        shape, dtype = first[image_fields[0]].shape, first[image_fields[0]].dtype
        if any(first[f].shape != shape or first[f].dtype != dtype for f in image_fields):
            raise ValueError("collate_items: the image fields of an item differ in shape or dtype")
        block = torch.empty((len(image_fields), len(items), *shape), dtype=dtype)
        if get_worker_info() is not None:
            block.share_memory_()  # before filling: moving an empty block is cheap, a filled one is not
        for slot, f in enumerate(image_fields):
            torch.stack([item[f] for item in items], out=block[slot])
            out[f] = block[slot]
    for f, v in enumerate(first):
        if out[f] is None:
            out[f] = torch.tensor([item[f] for item in items], dtype=torch.int64 if isinstance(v, int) else None)
    return tuple(out)


class EpochKeys(Sampler):
    """The current epoch's batch keys; swapped each epoch so persistent workers can stay alive."""

    def __init__(self):
        self.keys: list[tuple[int, int, Any]] = []

    def set(self, epoch: int, batches: Sequence[Any], start: int = 0) -> None:
        self.keys = [(epoch, i, batch) for i, batch in enumerate(batches)][start:]

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        return iter(list(self.keys))

    def __len__(self) -> int:
        return len(self.keys)


PREFETCH_FACTOR = 2  # batches each loader worker prepares ahead


def make_loader(base: Dataset, seed: int, rank: int, workers: int, pin_memory: bool,
                persistent_workers: bool) -> tuple[DataLoader, EpochKeys]:
    keys = EpochKeys()
    loader = DataLoader(SeededBatches(base, seed, rank), batch_size=None, sampler=keys, num_workers=workers,
                        pin_memory=pin_memory, persistent_workers=persistent_workers and workers > 0,
                        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
                        # a private generator for the loader's own base seed: the caller's stays untouched
                        generator=torch.Generator().manual_seed(seed))
    return loader, keys

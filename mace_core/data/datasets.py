"""Torch datasets over cached uint8 arrays, and the one call that prepares training data."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from mace_core.data.cache import cached_images, preflight
from mace_core.data.records import Record
from mace_core.data.sampler import identity_subset
from mace_core.errors import MaceError

DATASETS = ("sysu", "regdb", "llcm")


def to_chw(image: np.ndarray) -> torch.Tensor:
    """HWC uint8 array (possibly a read-only memmap row) → contiguous CHW uint8 tensor (one copy)."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.uint8))


class CrossModalTrainDataset(Dataset):
    """Indexed by ``(rgb_index, ir_index)`` pairs from the cross-modal sampler.

    Item: ``(rgb, ir, rgb_label, ir_label)``; with ``train_transform`` the images stay uint8 CHW
    (the trainer normalises whole batches on the device with ``normalize_batch``).
    """

    def __init__(self, rgb_images, rgb_labels, ir_images, ir_labels, rgb_transform, ir_transform):
        if len(rgb_images) != len(rgb_labels) or len(ir_images) != len(ir_labels):
            raise MaceError("image and label counts differ", "build the dataset from one load_training_data call")
        self.rgb_images, self.ir_images = rgb_images, ir_images
        self.rgb_labels = np.asarray(rgb_labels, dtype=np.int64)
        self.ir_labels = np.asarray(ir_labels, dtype=np.int64)
        self.rgb_transform, self.ir_transform = rgb_transform, ir_transform

    def __len__(self) -> int:
        return max(len(self.rgb_labels), len(self.ir_labels))

    def __getitem__(self, pair):
        i, j = pair
        return (self.rgb_transform(to_chw(self.rgb_images[i])), self.ir_transform(to_chw(self.ir_images[j])),
                int(self.rgb_labels[i]), int(self.ir_labels[j]))


class ImageArrayDataset(Dataset):
    """Test-time dataset over a cached uint8 array: ``(transformed CHW float tensor, index)``."""

    def __init__(self, images, transform: Callable):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(to_chw(self.images[index])), index


@dataclass
class TrainData:
    """Cached training images per modality with labels 0..C-1 and cameras; ``pids[label]`` = original id."""

    rgb_images: np.ndarray
    rgb_labels: np.ndarray
    rgb_cams: np.ndarray
    ir_images: np.ndarray
    ir_labels: np.ndarray
    ir_cams: np.ndarray
    num_classes: int
    pids: list[int]


def _records_for(dataset: str, root, include_val: bool, trial: int) -> tuple[list[Record], list[Record]]:
    if dataset == "sysu":
        from mace_core.data.sysu import training_set

        ts = training_set(root, include_val=include_val)
        return ts.rgb, ts.ir
    if dataset == "llcm":
        from mace_core.data.llcm import training_set as llcm_training_set

        ts = llcm_training_set(root)
        return ts.vis, ts.nir
    from mace_core.data.regdb import regdb_split

    return regdb_split(root, trial, "train")


def test_cache_groups(dataset: str, root, trial: int = 1) -> list[tuple[list[Record], str]]:
    """The ``(records, desc)`` of the test-time caches that evaluation builds (names as in
    :mod:`mace_core.engine.evaluate`), so their space is checked before training starts."""
    if dataset == "sysu":
        from mace_core.data import sysu

        return [(sysu.query_set(root), "sysu-query")] + [
            (sysu.gallery_candidates(root, mode), f"sysu-gallery-{mode}") for mode in sysu.MODES]
    if dataset == "llcm":
        from mace_core.data import llcm

        return [(llcm.test_images(root, m), f"llcm-test-{m}") for m in llcm.MODALITIES]
    from mace_core.data.regdb import regdb_split

    visible, thermal = regdb_split(root, trial, "test")
    return [(visible, f"regdb-visible-test-{trial}"), (thermal, f"regdb-thermal-test-{trial}")]


def _training_groups(dataset: str, root, include_val: bool, trial: int, id_fraction: float, fraction_seed: int):
    """(rgb records, ir records, training ids, cache tag, test cache groups) of a training run."""
    if dataset not in DATASETS:
        raise MaceError(f"unknown dataset {dataset!r}", "use sysu, regdb or llcm")
    rgb, ir = _records_for(dataset, root, include_val, trial)
    pids = sorted({r.pid for r in rgb} & {r.pid for r in ir})
    if id_fraction != 1.0:
        pids = identity_subset(pids, id_fraction, fraction_seed)
    keep = set(pids)
    rgb = [r for r in rgb if r.pid in keep]
    ir = [r for r in ir if r.pid in keep]
    tag = f"{dataset}-train{'+val' if include_val and dataset == 'sysu' else ''}"
    if dataset == "regdb":
        tag += f"-t{trial}"
    try:
        tests = test_cache_groups(dataset, root, trial)
    except MaceError:
        tests = []  # a broken test split is reported by the evaluation, in its own words
    return rgb, ir, pids, tag, tests


def build_caches(data) -> list[str]:
    """Every image cache a training run of ``data`` (a :class:`~mace_core.config.DataConfig`) reads,
    training and test, built now (reused when present): the study calls it once per distinct data
    setting before its worker pool starts, so parallel jobs never build the same cache twice."""
    size = (data.height, data.width)
    rgb, ir, _, tag, tests = _training_groups(data.dataset, data.root, data.include_val, data.trial,
                                              data.id_fraction, data.fraction_seed)
    groups = [(rgb, f"{tag}-rgb"), (ir, f"{tag}-ir"), *tests]
    preflight(groups, size, data.cache_dir)
    for records, desc in groups:
        if records:
            cached_images(records, size, data.cache_dir, desc=desc)
    return [desc for records, desc in groups if records]


def load_training_data(dataset: str, root, size, cache_dir=None, include_val: bool = True, trial: int = 1,
                       id_fraction: float = 1.0, fraction_seed: int = 0) -> TrainData:
    """Training records of ``dataset`` → cached arrays, optionally restricted to a nested id fraction.

    First checks that every cache of the run (training and test, both SYSU search modes) fits on
    disk and can be written: a run never fails for space after hours of training."""
    rgb, ir, pids, tag, tests = _training_groups(dataset, root, include_val, trial, id_fraction, fraction_seed)
    label_of = {p: i for i, p in enumerate(pids)}
    preflight([(rgb, f"{tag}-rgb"), (ir, f"{tag}-ir"), *tests], size, cache_dir)
    return TrainData(
        rgb_images=cached_images(rgb, size, cache_dir, desc=f"{tag}-rgb"),
        rgb_labels=np.array([label_of[r.pid] for r in rgb], dtype=np.int64),
        rgb_cams=np.array([r.cam for r in rgb], dtype=np.int64),
        ir_images=cached_images(ir, size, cache_dir, desc=f"{tag}-ir"),
        ir_labels=np.array([label_of[r.pid] for r in ir], dtype=np.int64),
        ir_cams=np.array([r.cam for r in ir], dtype=np.int64),
        num_classes=len(pids),
        pids=pids,
    )

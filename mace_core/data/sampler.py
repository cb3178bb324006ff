"""Cross-modal P×K identity batches and nested identity fractions.

Each batch holds P identities and K images per modality; position i of the RGB half and of the
IR half share an identity (the collaborative distillation pairs rely on this). Batches are a
pure function of (seed, epoch), so every rank of a distributed run can compute the same epoch
and take its own share.
"""
from __future__ import annotations

import math

import numpy as np

from mace_core.errors import MaceError


class CrossModalIdentitySampler:
    """Batch sampler yielding lists of ``(rgb_index, ir_index)`` pairs of length P·K.

    Identities are drawn without replacement within a batch; each identity's K images per
    modality are drawn without replacement when it has at least K, else with replacement.
    ``num_batches`` (all ranks together) defaults to ``max(#RGB, #IR) // (P·K)``, the AGW reference
    epoch length; rank r takes batches r, r + world_size, … of the first
    ``num_batches // world_size * world_size`` (equal counts per rank).
    """

    def __init__(self, rgb_labels, ir_labels, ids_per_batch: int = 8, images_per_id: int = 4, seed: int = 0,
                 num_batches: int | None = None, rank: int = 0, world_size: int = 1):
        rgb = np.asarray(rgb_labels).ravel()
        ir = np.asarray(ir_labels).ravel()
        if ids_per_batch < 1 or images_per_id < 1:
            raise MaceError(f"batch shape P={ids_per_batch} K={images_per_id} must be positive",
                            "use e.g. 8 identities × 4 images")
        if not 0 <= rank < world_size:
            raise MaceError(f"rank {rank} is outside world size {world_size}", "use 0 <= rank < world_size")
        self.ids = np.intersect1d(rgb, ir)
        if len(self.ids) < ids_per_batch:
            raise MaceError(f"only {len(self.ids)} identities have both RGB and IR images, fewer than "
                            f"{ids_per_batch} per batch", "lower ids_per_batch or use more identities")
        self.rgb_of = {int(p): np.flatnonzero(rgb == p) for p in self.ids}
        self.ir_of = {int(p): np.flatnonzero(ir == p) for p in self.ids}
        self.P, self.K = int(ids_per_batch), int(images_per_id)
        self.seed, self.epoch = int(seed), 0
        self.rank, self.world_size = int(rank), int(world_size)
        total = num_batches if num_batches is not None else max(len(rgb), len(ir)) // (self.P * self.K)
        self.total = max(int(total), 1) // self.world_size * self.world_size
        if self.total == 0:
            raise MaceError(f"{num_batches} batches cannot be split over {world_size} ranks",
                            "use at least world_size batches")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.total // self.world_size

    def _pick(self, rng, pool: np.ndarray) -> np.ndarray:
        return rng.choice(pool, self.K, replace=len(pool) < self.K)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        for b in range(self.total):
            # every rank draws every batch (same stream), keeps its own: shares are disjoint and complete
            pids = rng.choice(self.ids, self.P, replace=False)
            rgb = np.concatenate([self._pick(rng, self.rgb_of[int(p)]) for p in pids])
            ir = np.concatenate([self._pick(rng, self.ir_of[int(p)]) for p in pids])
            if b % self.world_size == self.rank:
                yield list(zip(rgb.tolist(), ir.tolist()))


def check_paired(rgb_labels, ir_labels) -> None:
    """Raise unless the RGB and IR halves of a batch are paired by identity, row by row (the
    distillation terms compare row i of each half). Call it on the host-side labels of a batch, before
    they move to the device, so the check costs no device sync."""
    rgb, ir = np.asarray(rgb_labels).ravel(), np.asarray(ir_labels).ravel()
    if rgb.shape != ir.shape or not np.array_equal(rgb, ir):
        raise MaceError("RGB and IR labels are not index-paired (distillation compares row i of each)",
                        "use the cross-modal identity sampler, which aligns RGB and IR rows by identity")


def identity_subset(pids, fraction: float, seed: int = 0) -> list[int]:
    """Sorted seeded subset of ``round(fraction·N)`` (≥ 1) identities; smaller fractions nest in larger."""
    try:
        f = float(fraction)
    except (TypeError, ValueError):
        f = math.nan
    if not 0 < f <= 1:  # also rejects NaN
        raise MaceError(f"identity fraction {fraction!r} is outside (0, 1]", "use e.g. 0.25, 0.5 or 1.0")
    pids = sorted(set(int(p) for p in pids))
    if not pids:
        raise MaceError("no identities to take a fraction of", "check the training split")
    order = np.random.default_rng([seed, 7]).permutation(len(pids))  # one order → prefixes nest
    n = max(1, int(math.floor(f * len(pids) + 0.5)))
    return sorted(pids[i] for i in order[:n])

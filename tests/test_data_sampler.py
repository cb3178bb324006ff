"""Cross-modal P×K sampler invariants and nested identity fractions."""
from __future__ import annotations

import numpy as np
import pytest

from mace_core.data.sampler import CrossModalIdentitySampler, identity_subset
from mace_core.errors import MaceError

RGB = np.repeat(np.arange(20), 6)       # 120 RGB images, 6 per id
IR = np.repeat(np.arange(20), [2, 5] * 10)  # 70 IR images, some ids with fewer than K


def batches(sampler, epoch=0):
    sampler.set_epoch(epoch)
    return [tuple(b) for b in sampler]


def test_batches_are_pk_and_index_aligned_by_identity():
    s = CrossModalIdentitySampler(RGB, IR, ids_per_batch=4, images_per_id=3, seed=1)
    out = batches(s)
    assert len(out) == len(s) == 120 // 12
    for b in out:
        assert len(b) == 12
        rgb_ids = [RGB[i] for i, _ in b]
        assert rgb_ids == [IR[j] for _, j in b]           # position i shares the identity
        assert len(set(rgb_ids)) == 4                     # P distinct identities ...
        assert all(rgb_ids.count(p) == 3 for p in set(rgb_ids))  # ... K images each
        groups = [tuple(i for i, _ in b[k:k + 3]) for k in range(0, 12, 3)]
        assert all(len(set(g)) == 3 for g in groups)      # 6 RGB images per id ≥ K: no repeats


def test_same_seed_same_batches_other_seed_or_epoch_differs():
    a = CrossModalIdentitySampler(RGB, IR, 4, 3, seed=5)
    b = CrossModalIdentitySampler(RGB, IR, 4, 3, seed=5)
    assert batches(a) == batches(b)
    assert batches(a, 1) != batches(a, 0)
    assert batches(a, 1) == batches(b, 1)                 # pure function of (seed, epoch)
    assert batches(CrossModalIdentitySampler(RGB, IR, 4, 3, seed=6)) != batches(a, 0)


def test_ranks_take_disjoint_complete_equal_shares():
    full = batches(CrossModalIdentitySampler(RGB, IR, 4, 3, seed=2, num_batches=9))
    shards = [batches(CrossModalIdentitySampler(RGB, IR, 4, 3, seed=2, num_batches=9, rank=r, world_size=2))
              for r in range(2)]
    assert [len(s) for s in shards] == [4, 4]            # 9 rounded down to a multiple of 2
    assert shards[0] == full[0:8:2] and shards[1] == full[1:8:2]
    assert len(CrossModalIdentitySampler(RGB, IR, 4, 3, num_batches=9, rank=1, world_size=2)) == 4


def test_identities_missing_a_modality_are_never_sampled():
    ir = np.where(IR == 3, 99, IR)   # id 3 has no IR, id 99 no RGB
    s = CrossModalIdentitySampler(RGB, ir, 4, 2, seed=0, num_batches=30)
    seen = {int(RGB[i]) for b in batches(s) for i, _ in b}
    assert 3 not in seen and 99 not in seen and seen <= set(range(20))


@pytest.mark.parametrize("kwargs", [dict(ids_per_batch=21), dict(ids_per_batch=0), dict(rank=2, world_size=2)])
def test_bad_batch_shapes_are_refused(kwargs):
    with pytest.raises(MaceError):
        CrossModalIdentitySampler(RGB, IR, **kwargs)


def test_identity_fractions_nest_and_are_seeded():
    pids = list(range(100, 500, 2))  # 200 ids
    q, h, full = (identity_subset(pids, f, seed=3) for f in (0.25, 0.5, 1.0))
    assert (len(q), len(h), len(full)) == (50, 100, 200)
    assert set(q) < set(h) < set(full) == set(pids)
    assert q == sorted(q) and q == identity_subset(pids, 0.25, seed=3)
    assert q != identity_subset(pids, 0.25, seed=4)
    assert len(identity_subset([7], 0.01)) == 1  # never empty


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5, float("nan"), "half"])
def test_fraction_outside_unit_interval_is_refused(fraction):
    with pytest.raises(MaceError, match="outside \\(0, 1\\]"):
        identity_subset(range(10), fraction)


def test_check_paired_accepts_identity_aligned_halves_only():
    from mace_core.data.sampler import check_paired

    s = CrossModalIdentitySampler(RGB, IR, ids_per_batch=4, images_per_id=3, seed=1)
    for b in batches(s):  # every sampler batch passes
        check_paired(RGB[[i for i, _ in b]], IR[[j for _, j in b]])
    with pytest.raises(MaceError, match="index-paired"):
        check_paired(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))  # same identities, other order
    with pytest.raises(MaceError, match="index-paired"):
        check_paired(np.array([0, 0, 1]), np.array([0, 0]))

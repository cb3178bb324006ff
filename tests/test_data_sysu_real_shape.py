"""The SYSU-MM01 reader and validator on a tree shaped exactly like the real release."""
from __future__ import annotations

import random

import numpy as np
import pytest

from _data_helpers import build_real_shape_sysu, fast_tmpdir, shared_file
from mace_core.data import sysu
from mace_core.data.check import check_sysu


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    shared_file("structure.json")  # skip before building anything when ../shared is absent
    yield from (build_real_shape_sysu(d) for d in fast_tmpdir(tmp_path_factory, "sysu-real-shape"))


def test_counts_match_the_release(real_root):
    report = check_sysu(real_root)
    assert any("rebuilt the val split" in n for n in report.notes)  # said, not silently done
    c = report.counts
    assert c["RGB images"] == 30071
    assert c["IR images"] == 15792
    assert c["identities with both modalities"] == 491
    assert (c["train identities"], c["val identities"], c["test identities"]) == (296, 99, 96)
    assert c["training identities (train+val)"] == 395
    assert (c["training RGB images"], c["training IR images"]) == (22258, 11909)
    assert c["queries (IR, test ids)"] == 3803
    assert (c["gallery all-search 1-shot"], c["gallery indoor-search 1-shot"]) == (301, 112)
    assert (c["gallery all-search 10-shot"], c["gallery indoor-search 10-shot"]) == (3010, 1120)
    assert report.problems == []


def test_rebuilt_val_equals_the_release_val(real_root):
    import json

    with pytest.warns(UserWarning):
        val = sysu.read_split(real_root, "val")
    assert val == sorted(json.loads(shared_file("structure.json").read_text())["val_id"])


def test_training_set_relabels_sorted_pids(real_root):
    ts = sysu.training_set(real_root, include_val=False)
    assert len(ts.pids) == 296 and ts.pids == sorted(ts.pids)
    assert [ts.label_of[p] for p in ts.pids] == list(range(296))
    assert {r.cam for r in ts.rgb} == set(sysu.RGB_CAMS) and {r.cam for r in ts.ir} == set(sysu.IR_CAMS)


def test_queries_are_the_same_in_both_modes(real_root):
    q_all, q_in = sysu.query_set(real_root, "all"), sysu.query_set(real_root, "indoor")
    assert q_all == q_in and len(q_all) == 3803
    keys = [(r.pid, r.cam, r.path) for r in q_all]
    assert keys == sorted(keys)


@pytest.mark.parametrize("method", ["agw", "official"])
@pytest.mark.parametrize("mode,shots,size", [("all", 1, 301), ("indoor", 1, 112), ("all", 10, 3010), ("indoor", 10, 1120)])
def test_gallery_sizes_and_trials(real_root, method, mode, shots, size):
    perm = shared_file("rand_perm_cam.mat") if method == "official" else None
    g0 = sysu.gallery_indices(real_root, mode, 0, shots, method, perm)
    assert len(g0) == size and len(set(g0.tolist())) == size
    assert np.array_equal(g0, sysu.gallery_indices(real_root, mode, 0, shots, method, perm))
    assert not np.array_equal(g0, sysu.gallery_indices(real_root, mode, 1, shots, method, perm))
    cands = sysu.gallery_candidates(real_root, mode)
    per_folder = {}
    for i in g0:
        per_folder[(cands[i].pid, cands[i].cam)] = per_folder.get((cands[i].pid, cands[i].cam), 0) + 1
    assert set(per_folder.values()) == {shots}


def _reference_agw_paths(root, mode, trial):
    """The reference code's gallery procedure, written out independently on the same tree."""
    import os

    cams = ["cam1", "cam2", "cam4", "cam5"] if mode == "all" else ["cam1", "cam2"]
    ids = ["%04d" % x for x in sysu.read_split(root, "test")]
    random.seed(trial)
    files = []
    for pid in sorted(ids):
        for cam in cams:
            d = os.path.join(root, cam, pid)
            if os.path.isdir(d):
                files.append(random.choice(sorted([d + "/" + i for i in os.listdir(d)])))
    return files


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_agw_picks_reproduce_the_reference_for_trials_0_to_9(real_root, mode):
    state = random.getstate()
    for trial in range(10):
        ours = [r.path for r in sysu.gallery_set(real_root, mode, trial)]
        assert ours == _reference_agw_paths(str(real_root), mode, trial)
    random.setstate(state)


def test_agw_leaves_global_random_state_alone(real_root):
    random.seed(123)
    expected = random.random()
    random.seed(123)
    sysu.gallery_indices(real_root, "all", 3)
    assert random.random() == expected


def test_official_picks_follow_the_permutation_rows(real_root):
    import scipy.io

    cells = scipy.io.loadmat(str(shared_file("rand_perm_cam.mat")))["rand_perm_cam"]
    cands = sysu.gallery_candidates(real_root, "all")
    gallery = sysu.gallery_set(real_root, "all", trial=4, shots=1, method="official",
                               perm_file=shared_file("rand_perm_cam.mat"))
    for r in gallery[:20]:
        row = cells[r.cam - 1, 0][r.pid - 1, 0][4]
        assert r.path.endswith(f"cam{r.cam}/{r.pid:04d}/{row[0]:04d}.jpg")
    assert set(gallery) <= set(cands)

"""Metrics: hand-computed cases, invariants, agreement with the reference algorithm, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from _metrics_helpers import reference_regdb, reference_sysu

from mace_core.errors import MaceError
from mace_core.metrics import (
    distance_matrix,
    evaluate_regdb,
    evaluate_regdb_features,
    evaluate_sysu,
    evaluate_sysu_features,
)


# ----------------------------------------------------------------------------- hand-computed
def test_cam3_query_ignores_cam2_items_and_dedups_identities():
    # Gallery by increasing distance: [pid 7 cam2, pid 5 cam1, pid 5 cam4, pid 1 cam1, pid 9 cam5]
    g_pids = np.array([7, 5, 5, 1, 9])
    g_cams = np.array([2, 1, 4, 1, 5])
    d = np.array([[0.1, 0.2, 0.3, 0.4, 0.5],     # cam3 query of pid 1: pid 7 (cam2) is dropped
                  [0.1, 0.2, 0.3, 0.4, 0.5]])    # cam6 query of pid 1: nothing dropped
    out = evaluate_sysu(d, [1, 1], g_pids, [3, 6], g_cams, max_rank=4)
    # cam3: kept ids [5, 5, 1, 9] -> dedup [5, 1, 9]: first match at identity rank 2
    #        kept list hit at position 3: AP = 1/3, INP = 1/3
    # cam6: ids [7, 5, 5, 1, 9] -> dedup [7, 5, 1, 9]: identity rank 3; list position 4: AP = INP = 1/4
    np.testing.assert_allclose(out["cmc"], [0, 0.5, 1, 1])
    assert out["mAP"] == pytest.approx((1 / 3 + 1 / 4) / 2)
    assert out["mINP"] == pytest.approx((1 / 3 + 1 / 4) / 2)


def test_ap_and_inp_with_several_matches():
    # ranked ids [3, 1, 3, 2, 3] for query pid 3: hits at 1, 3, 5
    g_pids = np.array([3, 1, 3, 2, 3])
    d = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    out = evaluate_regdb(d, [3], g_pids, max_rank=5)
    assert out["mAP"] == pytest.approx((1 / 1 + 2 / 3 + 3 / 5) / 3)
    assert out["mINP"] == pytest.approx(3 / 5)
    np.testing.assert_allclose(out["cmc"], [1, 1, 1, 1, 1])
    sysu = evaluate_sysu(d, [3], g_pids, [6], np.ones(5, int), max_rank=5)
    assert sysu["mAP"] == pytest.approx(out["mAP"])


def test_regdb_plain_cmc_counts_repeated_wrong_identities():
    # ranked ids [2, 2, 4, 1]: plain CMC first hit at 4, SYSU (dedup) at identity rank 3
    g_pids = np.array([2, 2, 4, 1])
    d = np.array([[0.1, 0.2, 0.3, 0.4]])
    np.testing.assert_allclose(evaluate_regdb(d, [1], g_pids)["cmc"], [0, 0, 0, 1])
    np.testing.assert_allclose(evaluate_sysu(d, [1], g_pids, [6], np.ones(4, int))["cmc"], [0, 0, 1, 1])


def test_queries_without_a_match_are_skipped():
    g_pids = np.array([1, 2])
    g_cams = np.array([2, 1])
    d = np.array([[0.1, 0.2],     # pid 1 from cam3: its only match is cam2 -> removed -> skipped
                  [0.3, 0.1],     # pid 2 from cam6: rank 1
                  [0.1, 0.2]])    # pid 5: absent -> skipped
    out = evaluate_sysu(d, [1, 2, 5], g_pids, [3, 6, 6], g_cams)
    assert out["num_valid_queries"] == 1 and out["num_queries"] == 3
    assert out["mAP"] == 1.0 and out["mINP"] == 1.0
    np.testing.assert_allclose(out["cmc"], [1, 1])   # max_rank clipped to the gallery size
    # per test identity (valid queries only): the unit of the two-level bootstrap
    assert out["per_identity"] == {"pid": [2], "queries": [1], "rank1_hits": [1]}


def test_per_identity_rank1_hits_add_up_to_rank1_over_chunks():
    rng = np.random.default_rng(3)
    d, qp, gp, qc, gc = _random_problem(rng, 120, 90, 15)
    for out in (evaluate_sysu(d, qp, gp, qc, gc, chunk_rows=17), evaluate_regdb(d, qp, gp, chunk_rows=17)):
        per = out["per_identity"]
        assert per["pid"] == sorted(per["pid"]) and sum(per["queries"]) == out["num_valid_queries"]
        assert sum(per["rank1_hits"]) / out["num_valid_queries"] == pytest.approx(out["cmc"][0])
        assert all(0 <= h <= q for h, q in zip(per["rank1_hits"], per["queries"]))


def test_ties_are_broken_by_gallery_index(rank_path):
    d = np.zeros((1, 4))
    # all equal: order is gallery order [9, 1, 9, 1]; first hit of pid 1 at 2 (identity rank 2)
    out = evaluate_regdb(d, [1], np.array([9, 1, 9, 1]))
    assert out["mAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert out["mINP"] == pytest.approx(2 / 4)
    sysu = evaluate_sysu(d, [1], np.array([9, 1, 9, 1]), [6], np.ones(4, int))
    np.testing.assert_allclose(sysu["cmc"], [0, 1, 1, 1])
    # partial tie: the match at index 0 ties with a wrong item at index 2
    d2 = np.array([[0.5, 0.1, 0.5, 0.9]])
    out2 = evaluate_regdb(d2, [1], np.array([1, 3, 4, 1]))   # ranked [3, 1(idx0), 4, 1]
    assert out2["mAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    sysu2 = evaluate_sysu(d2, [1], np.array([4, 3, 1, 1]), [6], np.ones(4, int))  # ranked [3, 4(idx0), 1, 1]
    np.testing.assert_allclose(sysu2["cmc"][:3], [0, 0, 1])


# ----------------------------------------------------------------------------- invariants
def _random_problem(rng, n_q, n_g, n_ids, dtype=np.float64):
    g_pids = rng.integers(0, n_ids, n_g)
    q_pids = rng.integers(0, n_ids + 3, n_q)          # a few identities missing from the gallery
    g_cams = rng.choice([1, 2, 4, 5], n_g)
    q_cams = rng.choice([3, 6], n_q)
    d = rng.random((n_q, n_g)).astype(dtype)
    return d, q_pids, g_pids, q_cams, g_cams


@pytest.fixture(params=["direct", "search", "candidates"])
def rank_path(request, monkeypatch):
    """Run a test through every way of ranking the true matches (candidates: in tiny steps)."""
    from mace_core import metrics
    monkeypatch.setattr(metrics, "_DIRECT_MAX_MATCHES", 10**6 if request.param == "direct" else 0)
    monkeypatch.setattr(metrics, "_SEARCH_SHARE", 0.0 if request.param == "search" else 2.0)
    monkeypatch.setattr(metrics, "_CANDIDATE_ENTRIES", 7)
    return request.param


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_reference_on_random_inputs(seed, rank_path):
    rng = np.random.default_rng(seed)
    d, qp, gp, qc, gc = _random_problem(rng, 200, 150, 25)
    ours = evaluate_sysu(d, qp, gp, qc, gc, chunk_rows=37)       # several chunks
    cmc, m_ap, m_inp = reference_sysu(d, qp, gp, qc, gc)
    np.testing.assert_allclose(ours["cmc"], cmc, atol=1e-6)
    assert abs(ours["mAP"] - m_ap) < 1e-6 and abs(ours["mINP"] - m_inp) < 1e-6
    ours_r = evaluate_regdb(d, qp, gp, chunk_rows=64)
    cmc_r, ap_r, inp_r = reference_regdb(d, qp, gp)
    np.testing.assert_allclose(ours_r["cmc"], cmc_r, atol=1e-6)
    assert abs(ours_r["mAP"] - ap_r) < 1e-6 and abs(ours_r["mINP"] - inp_r) < 1e-6


def test_equals_reference_float32_and_sysu_shape():
    rng = np.random.default_rng(5)
    d, qp, gp, qc, gc = _random_problem(rng, 300, 301, 96, dtype=np.float32)
    ours = evaluate_sysu(d, qp, gp, qc, gc)
    cmc, m_ap, m_inp = reference_sysu(d, qp, gp, qc, gc)
    np.testing.assert_allclose(ours["cmc"], cmc, atol=1e-6)
    assert abs(ours["mAP"] - m_ap) < 1e-6 and abs(ours["mINP"] - m_inp) < 1e-6


def test_ties_match_a_stable_sort_reference(rank_path):
    # With many exact ties the reference (argsort, quicksort) is undefined; a stable sort is our rule.
    rng = np.random.default_rng(3)
    d, qp, gp, qc, gc = _random_problem(rng, 120, 90, 12)
    d = np.round(d * 4) / 4          # 5 distinct values -> ties everywhere
    import _metrics_helpers as ref
    orig = ref.np.argsort
    ref.np.argsort = lambda a, *args, **kw: orig(a, kind="stable")
    try:
        cmc, m_ap, m_inp = reference_sysu(d, qp, gp, qc, gc)
        cmc_r, ap_r, inp_r = reference_regdb(d, qp, gp)
    finally:
        ref.np.argsort = orig
    ours = evaluate_sysu(d, qp, gp, qc, gc, chunk_rows=50)
    np.testing.assert_allclose(ours["cmc"], cmc, atol=1e-9)
    assert ours["mAP"] == pytest.approx(m_ap, abs=1e-9) and ours["mINP"] == pytest.approx(m_inp, abs=1e-9)
    ours_r = evaluate_regdb(d, qp, gp)
    np.testing.assert_allclose(ours_r["cmc"], cmc_r, atol=1e-9)
    assert ours_r["mAP"] == pytest.approx(ap_r, abs=1e-9) and ours_r["mINP"] == pytest.approx(inp_r, abs=1e-9)


def test_gallery_permutation_does_not_change_results():
    rng = np.random.default_rng(11)
    d, qp, gp, qc, gc = _random_problem(rng, 80, 120, 20)
    perm = rng.permutation(120)
    a = evaluate_sysu(d, qp, gp, qc, gc)
    b = evaluate_sysu(d[:, perm], qp, gp[perm], qc, gc[perm])
    np.testing.assert_allclose(a["cmc"], b["cmc"])
    assert a["mAP"] == pytest.approx(b["mAP"]) and a["mINP"] == pytest.approx(b["mINP"])


def test_perfect_features_score_one():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 16))
    gp = np.repeat(np.arange(10), 4)
    qp = np.repeat(np.arange(10), 3)
    gc = np.tile([1, 2, 4, 5], 10)
    qc = np.tile([3, 6, 6], 10)
    out = evaluate_sysu_features(centres[qp], centres[gp], qp, gp, qc, gc)
    np.testing.assert_allclose(out["cmc"], 1.0)
    assert out["mAP"] == pytest.approx(1.0) and out["mINP"] == pytest.approx(1.0)
    out_e = evaluate_regdb_features(centres[qp], centres[gp], qp, gp, distance="euclidean")
    assert out_e["mAP"] == pytest.approx(1.0) and out_e["cmc"][0] == 1.0


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_feature_path_equals_distmat_path(distance):
    rng = np.random.default_rng(4)
    qf, gf = rng.normal(size=(70, 8)).astype(np.float32), rng.normal(size=(90, 8)).astype(np.float32)
    _, qp, gp, qc, gc = _random_problem(rng, 70, 90, 15)
    a = evaluate_sysu_features(qf, gf, qp, gp, qc, gc, distance=distance, chunk_rows=16)
    b = evaluate_sysu(distance_matrix(qf, gf, distance), qp, gp, qc, gc)
    np.testing.assert_allclose(a["cmc"], b["cmc"])
    assert a["mAP"] == pytest.approx(b["mAP"]) and a["mINP"] == pytest.approx(b["mINP"])
    # and the ranking is the textbook one for that distance
    if distance == "cosine":
        qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
        gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
        ref = -(qn @ gn.T)
    else:
        ref = ((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)
    c = evaluate_sysu(ref, qp, gp, qc, gc)
    assert c["mAP"] == pytest.approx(a["mAP"], abs=1e-6)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_errors():
    d = np.zeros((2, 3))
    with pytest.raises(MaceError, match="q_pids has 3 entries"):
        evaluate_regdb(d, [1, 2, 3], [1, 2, 3])
    with pytest.raises(MaceError, match="g_cams"):
        evaluate_sysu(d, [1, 2], [1, 2, 3], [3, 3], [1, 2])
    with pytest.raises(MaceError, match="gallery is empty"):
        evaluate_regdb(np.zeros((2, 0)), [1, 2], [])
    with pytest.raises(MaceError, match="no query has a true match"):
        evaluate_regdb(d, [7, 8], [1, 2, 3])
    with pytest.raises(MaceError, match="2-D"):
        evaluate_regdb(np.zeros(3), [1], [1, 2, 3])
    with pytest.raises(MaceError, match="NaN"):
        evaluate_regdb(np.full((2, 3), np.nan), [1, 2], [1, 2, 3])
    with pytest.raises(MaceError, match="dimensions"):
        evaluate_regdb_features(np.zeros((2, 4)), np.zeros((3, 5)), [1, 2], [1, 2, 3])
    with pytest.raises(MaceError, match="unknown distance"):
        evaluate_regdb_features(np.ones((2, 4)), np.ones((3, 4)), [1, 2], [1, 2, 3], distance="l1")
    with pytest.raises(MaceError, match="max_rank"):
        evaluate_regdb(d, [1, 2], [1, 2, 3], max_rank=0)


def test_reverse_direction_same_room_rule():
    # RGB queries against an IR gallery (the non-standard reverse search): with same_room=(2, 3) a
    # camera-2 query ignores camera-3 items; a camera-1 query keeps everything; the default (3, 2)
    # rule removes nothing here (no camera-3 query).
    g_pids = np.array([7, 1, 1])
    g_cams = np.array([3, 3, 6])
    d = np.array([[0.1, 0.2, 0.3],       # cam2 query of pid 1: pid 7 and its own cam3 item are dropped
                  [0.1, 0.2, 0.3]])      # cam1 query of pid 1: ids [7, 1, 1]
    rev = evaluate_sysu(d, [1, 1], g_pids, [2, 1], g_cams, max_rank=2, same_room=(2, 3))
    # cam2: kept [pid 1 cam6]: rank 1, AP = INP = 1; cam1: identity rank 2, AP = (1/2 + 2/3) / 2, INP = 2/3
    np.testing.assert_allclose(rev["cmc"], [0.5, 1.0])
    assert rev["mAP"] == pytest.approx((1 + (1 / 2 + 2 / 3) / 2) / 2)
    assert rev["mINP"] == pytest.approx((1 + 2 / 3) / 2)
    std = evaluate_sysu(d, [1, 1], g_pids, [2, 1], g_cams, max_rank=2)
    np.testing.assert_allclose(std["cmc"], [0.0, 1.0])
    f = evaluate_sysu_features(np.eye(3)[:2], np.eye(3), [1, 1], g_pids, [2, 1], g_cams, same_room=(2, 3))
    assert f["num_valid_queries"] == 2
    with pytest.raises(MaceError, match="same_room"):
        evaluate_sysu(d, [1, 1], g_pids, [2, 1], g_cams, same_room=3)

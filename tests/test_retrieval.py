"""Feature-level protocols: multi-query pools and fusion, trials, summaries and the table."""
from __future__ import annotations

import numpy as np
import pytest

from mace_core.engine.retrieval import (
    EvalResult,
    format_table,
    fuse,
    multi_query_pools,
    pool_count,
    pooled_queries,
    regdb_trial,
    sysu_trials,
)
from mace_core.errors import MaceError
from mace_core.metrics import evaluate_sysu_features


def _groups():
    # pid 1: 5 images in cam3, 2 in cam6; pid 2: 3 in cam3
    pids = np.array([1, 1, 1, 1, 1, 1, 1, 2, 2, 2])
    cams = np.array([3, 3, 6, 3, 3, 6, 3, 3, 3, 3])
    return pids, cams


def test_pools_are_disjoint_full_and_within_one_camera():
    pids, cams = _groups()
    pools = multi_query_pools(pids, cams, 2, seed=0)
    # (1,3): 5 images -> 3 pools of 2 (last topped up); (1,6): 2 -> 1; (2,3): 3 -> 2
    assert [p.size for p in pools] == [2, 2, 2, 2, 2, 2]
    assert len(pools) == pool_count(5, 2) + pool_count(2, 2) + pool_count(3, 2)
    for p in pools:
        assert len(set(pids[p])) == 1 and len(set(cams[p])) == 1 and len(set(p.tolist())) == p.size
    used = np.concatenate(pools)
    assert set(used.tolist()) == set(range(10))                  # every image is used
    first_group = [p for p in pools if pids[p[0]] == 1 and cams[p[0]] == 3]
    assert len(set(np.concatenate(first_group[:2]).tolist())) == 4   # the full pools are disjoint


def test_small_groups_form_one_pool_and_seeding():
    pids, cams = _groups()
    pools = multi_query_pools(pids, cams, 10, seed=0)
    assert sorted(p.size for p in pools) == [2, 3, 5]
    a = multi_query_pools(pids, cams, 2, seed=4)
    b = multi_query_pools(pids, cams, 2, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not all(np.array_equal(x, y) for x, y in zip(multi_query_pools(pids, cams, 2, seed=s), a))
               for s in range(5, 10))
    singles = multi_query_pools(pids, cams, 1)
    assert all(p.size == 1 for p in singles) and sorted(int(p[0]) for p in singles) == list(range(10))


def test_fusion_rules():
    f = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    pools = [np.array([0, 1, 2])]
    np.testing.assert_allclose(fuse(f, pools, "avg"), [[2 / 3, 2 / 3]], rtol=1e-6)
    np.testing.assert_allclose(fuse(f, pools, "max"), [[1, 1]])
    mean = f.mean(0)
    sim = f @ mean / (np.linalg.norm(f, axis=1) * np.linalg.norm(mean))
    w = sim / sim.sum()
    np.testing.assert_allclose(fuse(f, pools, "weighted"), [w @ f], rtol=1e-6)
    # opposite members: the mean is zero, weights vanish -> the plain mean
    g = np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32)
    np.testing.assert_allclose(fuse(g, [np.array([0, 1])], "weighted"), [[0, 0]])
    with pytest.raises(MaceError, match="avg, max, weighted"):
        fuse(f, pools, "median")
    with pytest.raises(MaceError, match=">= 1"):
        multi_query_pools(*_groups(), 0)


def _problem(seed=0, n_ids=8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, 6))
    q_pids = np.repeat(np.arange(n_ids), 6)
    q_cams = np.tile([3, 3, 3, 6, 6, 6], n_ids)
    qf = centres[q_pids] + rng.normal(scale=1.5, size=(q_pids.size, 6))
    g_pids = np.repeat(np.arange(n_ids), 8)
    g_cams = np.tile([1, 1, 2, 2, 4, 4, 5, 5], n_ids)
    gf = centres[g_pids] + rng.normal(scale=1.5, size=(g_pids.size, 6))
    return qf, q_pids, q_cams, gf, g_pids, g_cams


def test_single_pools_equal_single_query_and_fusion_helps():
    qf, qp, qc, gf, gp, gc = _problem()
    galleries = {t: np.random.default_rng(t).choice(gp.size, 30, replace=False) for t in range(3)}
    plain = sysu_trials(qf, qp, qc, gf, gp, gc, galleries)
    f1, p1, c1 = pooled_queries(qf, qp, qc, 1)
    one = sysu_trials(f1, p1, c1, gf, gp, gc, galleries)
    assert plain.mean == pytest.approx(one.mean)
    f3, p3, c3 = pooled_queries(qf, qp, qc, 3, "avg")
    three = sysu_trials(f3, p3, c3, gf, gp, gc, galleries)
    assert three.trials[0]["num_queries"] == 16 and three.mean["mAP"] > plain.mean["mAP"]


def test_trials_summary_and_table():
    qf, qp, qc, gf, gp, gc = _problem(1)
    galleries = {0: np.arange(0, 64, 2), 1: np.arange(1, 64, 2)}
    res = sysu_trials(qf, qp, qc, gf, gp, gc, galleries, protocol={"name": "x"})
    direct = evaluate_sysu_features(qf, gf[galleries[1]], qp, gp[galleries[1]], qc, gc[galleries[1]])
    assert res.trials[1]["rank1"] == pytest.approx(direct["cmc"][0]) and res.trials[1]["gallery_size"] == 32
    vals = [t["mAP"] for t in res.trials]
    assert res.mean["mAP"] == pytest.approx(np.mean(vals)) and res.std["mAP"] == pytest.approx(np.std(vals, ddof=1))
    d = res.to_dict()
    import json
    assert json.loads(json.dumps(d))["rank1"]["mean"] == pytest.approx(res.mean["rank1"])
    table = format_table({"baseline": res})
    assert table.splitlines()[0].split() == ["R1", "R5", "R10", "R20", "mAP", "mINP"]
    assert f"{100 * res.mean['mAP']:.2f} ± {100 * res.std['mAP']:.2f}" in table
    with pytest.raises(MaceError, match="trial 3 is empty"):
        sysu_trials(qf, qp, qc, gf, gp, gc, {3: np.array([], int)})
    assert EvalResult({}, [dict(res.trials[0])]).std["rank1"] == 0.0


def test_regdb_directions_transpose():
    qf, qp, _, gf, gp, _ = _problem(2)
    v2t = regdb_trial(qf, qp, gf, gp, trial=1, direction="v2t")
    t2v = regdb_trial(qf, qp, gf, gp, trial=1, direction="t2v")
    assert v2t.trials[0]["num_queries"] == qp.size and t2v.trials[0]["num_queries"] == gp.size
    with pytest.raises(MaceError, match="direction"):
        regdb_trial(qf, qp, gf, gp, trial=1, direction="sideways")


def test_mean_pool_size_matches_the_pools_formed():
    from types import SimpleNamespace

    from mace_core.engine.evaluate import mean_pool_size

    # groups of 7, 3 and 12 images (identity, camera)
    groups = [(1, 3)] * 7 + [(1, 6)] * 3 + [(2, 3)] * 12
    queries = [SimpleNamespace(pid=p, cam=c) for p, c in groups]
    pids, cams = np.array([p for p, _ in groups]), np.array([c for _, c in groups])
    for n in (1, 2, 5, 10, 20):
        pools = multi_query_pools(pids, cams, n, seed=0)
        assert mean_pool_size(queries, n) == pytest.approx(np.mean([len(p) for p in pools])), n
    assert mean_pool_size(queries, None) == 1.0


def test_directions_per_dataset():
    from mace_core.engine.retrieval import DIRECTIONS, check_direction

    assert check_direction("sysu", None) == "ir2rgb" and check_direction("regdb", None) == "v2t"
    assert check_direction("sysu", "rgb2ir") == "rgb2ir" and check_direction("regdb", "t2v") == "t2v"
    with pytest.raises(MaceError, match="sysu does not define.*'v2t'") as err:
        check_direction("sysu", "v2t")
    assert "ir2rgb, rgb2ir" in str(err.value)
    with pytest.raises(MaceError, match="regdb does not define.*rgb2ir") as err:
        check_direction("regdb", "rgb2ir")
    assert "v2t, t2v" in str(err.value)
    assert all(len(v) >= 1 for v in DIRECTIONS.values())


def test_reranked_results_are_labelled_and_lambda_one_changes_nothing():
    import json

    qf, qp, qc, gf, gp, gc = _problem(3)
    galleries = {t: np.random.default_rng(t).choice(gp.size, 30, replace=False) for t in range(2)}
    plain = sysu_trials(qf, qp, qc, gf, gp, gc, galleries, distance="euclidean")
    same = sysu_trials(qf, qp, qc, gf, gp, gc, galleries, distance="euclidean",
                       rerank={"k1": 20, "k2": 6, "lambda": 1.0})
    # lambda = 1 keeps each query's ranking, so every protocol figure is unchanged
    for m in ("rank1", "rank5", "mAP", "mINP"):
        assert same.mean[m] == pytest.approx(plain.mean[m])
    rr = sysu_trials(qf, qp, qc, gf, gp, gc, galleries, distance="euclidean",
                     rerank={"k1": 20, "k2": 6, "lambda": 0.3})
    assert rr.mean["mAP"] != pytest.approx(plain.mean["mAP"])
    d = json.loads(json.dumps(rr.to_dict()))
    assert d["reranked"] is True and d["protocol"]["reranked"] is True and all(t["reranked"] for t in d["trials"])
    assert d["rerank"]["k1"] == 20 and d["rerank"]["lambda"] == 0.3 and "re-ranked" in d["metrics_note"]
    assert plain.to_dict()["reranked"] is False and "rerank" not in plain.to_dict()
    table = format_table({"ours": rr, "plain": plain})
    assert "ours [re-ranked (k1=20, k2=6, λ=0.3)]" in table and "plain [" not in table
    reg = regdb_trial(qf, qp, gf, gp, trial=1, direction="t2v", rerank={"k1": 5, "k2": 2, "lambda": 0.3})
    assert reg.to_dict()["reranked"] is True and reg.trials[0]["num_queries"] == gp.size

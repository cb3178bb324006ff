"""k-reciprocal re-ranking: a hand-worked case, a plain per-item transcription of the algorithm,
invariants and the memory refusal."""
import numpy as np
import pytest
import torch

from mace_core.errors import MaceError
from mace_core.metrics import evaluate_regdb, evaluate_sysu
from mace_core.rerank import (
    MAX_BYTES,
    _expansion_sets,
    _ranking,
    check_rerank,
    rerank_distance,
    rerank_memory_bytes,
)


def _plain_rerank(qf, gf, k1, k2, lam):
    """The algorithm of the module docstring written item by item (dense, loops, float64)."""
    x = np.concatenate([qf, gf]).astype(np.float64)
    n, nq = len(x), len(qf)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    d = d / d.max(1, keepdims=True)
    rank = np.argsort(d, axis=1, kind="stable")

    def recip(i, k):
        return [p for p in rank[i, :k + 1] if i in rank[p, :k + 1]]

    v = np.zeros((n, n))
    kh = int(np.around(k1 / 2))
    for i in range(n):
        r = recip(i, k1)
        expanded = set(r)
        for c in r:
            rc = recip(c, kh)
            if len(set(rc) & set(r)) > 2 / 3 * len(rc):
                expanded |= set(rc)
        idx = sorted(expanded)
        w = np.exp(-d[i, idx])
        v[i, idx] = w / w.sum()
    if k2 > 1:
        v = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    jac = np.zeros((nq, n - nq))
    for i in range(nq):
        for j in range(nq, n):
            jac[i, j - nq] = 1 - np.minimum(v[i], v[j]).sum() / np.maximum(v[i], v[j]).sum()
    return (1 - lam) * jac + lam * d[:nq, nq:]


# Five points on a line, query first: 0:q=0.0, 1:a=-0.45, 2:c=-0.52, 3:b=0.5, 4:e=0.55.
LINE_Q = np.array([[0.0]], np.float32)
LINE_G = np.array([[-0.45], [-0.52], [0.5], [0.55]], np.float32)


def test_k_reciprocal_sets_worked_by_hand():
    # k1 = 2: N(i, 2) is the item and its two nearest.
    #   N(q) = {q, a, b} (0.45, 0.5), N(a) = {a, c, q}, N(c) = {c, a, q}, N(b) = {b, e, q}, N(e) = {e, b, q}.
    #   R(q, 2) = {q, a, b} (q is in N(a) and N(b)); R(a, 2) = {a, c, q}; R(c, 2) = {c, a} (c not in N(q));
    #   R(b, 2) = {b, e, q}; R(e, 2) = {e, b}.
    # round(k1 / 2) = 1: R(q, 1) = {q} (a's nearest is c), R(a, 1) = R(c, 1) = {a, c}, R(b, 1) = R(e, 1) = {b, e}.
    # Expansion of q: R(a, 1) and R(b, 1) share 1 of 2 items with R(q, 2): not > 2/3, so R*(q) = {q, a, b}.
    # Expansion of a: R(a, 1) = {a, c} and R(c, 1) lie inside R(a, 2), R(q, 1) = {q} too: R*(a) = {a, c, q}.
    x = torch.from_numpy(np.concatenate([LINE_Q, LINE_G]))
    _, nbr = _ranking(x, (x * x).sum(1), 3, 2)
    assert nbr.tolist() == [[0, 1, 3], [1, 2, 0], [2, 1, 0], [3, 4, 0], [4, 3, 0]]
    indptr, members = _expansion_sets(nbr, 2)
    sets = [members[indptr[i]:indptr[i + 1]].tolist() for i in range(5)]
    assert sets == [[0, 1, 3], [0, 1, 2], [1, 2], [0, 3, 4], [3, 4]]


def test_jaccard_value_worked_by_hand():
    # 0:q=0.0, 1:g0=0.1, 2:g1=1.0, 3:g2=1.1 with k1 = 1 (k2 = 1, lambda = 0): R(q) = R(g0) = {q, g0},
    # R(g1) = R(g2) = {g1, g2}; round(1/2) = 0 adds nothing. Row maxima of the squared distances:
    # q: 1.21, g0: 1.0. V[q] = (1, e^-a) / (1 + e^-a) with a = 0.01 / 1.21; V[g0] = (e^-b, 1) / (1 + e^-b),
    # b = 0.01 / 1.0 (columns q, g0). dJ(q, g0) = 1 - sum min / sum max; g1, g2 share nothing with q: dJ = 1.
    qf = np.array([[0.0]], np.float32)
    gf = np.array([[0.1], [1.0], [1.1]], np.float32)
    a, b = 0.01 / 1.21, 0.01
    vq = np.array([1, np.exp(-a)]) / (1 + np.exp(-a))
    vg = np.array([np.exp(-b), 1]) / (1 + np.exp(-b))
    expected = 1 - np.minimum(vq, vg).sum() / np.maximum(vq, vg).sum()
    out = rerank_distance(qf, gf, k1=1, k2=1, lam=0.0, distance="euclidean")
    np.testing.assert_allclose(out, [[expected, 1.0, 1.0]], atol=1e-4)
    assert abs(expected - 0.00909) < 1e-4
    # lambda mixes in the row-scaled original distance: (0.01, 1.0, 1.21) / 1.21
    out = rerank_distance(qf, gf, k1=1, k2=1, lam=0.5, distance="euclidean")
    np.testing.assert_allclose(out, 0.5 * np.array([[expected, 1, 1]]) + 0.5 * np.array([[0.01, 1.0, 1.21]]) / 1.21,
                               atol=1e-4)


@pytest.mark.parametrize("nq,ng,k1,k2,lam", [(7, 11, 3, 2, 0.3), (12, 30, 5, 3, 0.0), (5, 9, 20, 6, 0.3),
                                             (20, 25, 4, 1, 0.7)])
def test_matches_plain_transcription(nq, ng, k1, k2, lam):
    rng = np.random.default_rng(nq * 100 + ng)
    centres = rng.normal(size=(4, 6))
    qf = (centres[rng.integers(0, 4, nq)] + 0.6 * rng.normal(size=(nq, 6))).astype(np.float32)
    gf = (centres[rng.integers(0, 4, ng)] + 0.6 * rng.normal(size=(ng, 6))).astype(np.float32)
    out = rerank_distance(qf, gf, k1, k2, lam, distance="euclidean")
    np.testing.assert_allclose(out, _plain_rerank(qf, gf, k1, k2, lam), atol=2e-5)
    # cosine = the same on L2-normalised features
    unit = lambda f: f / np.linalg.norm(f, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(rerank_distance(qf, gf, k1, k2, lam, distance="cosine"),
                               _plain_rerank(unit(qf), unit(gf), k1, k2, lam), atol=2e-5)


def test_exact_ties_rank_by_index():
    # duplicated images (equal distances everywhere): neighbours are taken in index order, as the
    # plain transcription's stable argsort does
    rng = np.random.default_rng(7)
    base = rng.normal(size=(6, 5)).astype(np.float32)
    qf = base[[0, 1, 1, 2, 3]]
    gf = base[[1, 0, 4, 4, 5, 2, 2, 3]]
    for k1, k2 in ((2, 2), (3, 1), (4, 3)):
        out = rerank_distance(qf, gf, k1, k2, 0.3, distance="euclidean")
        np.testing.assert_allclose(out, _plain_rerank(qf, gf, k1, k2, 0.3), atol=2e-5)


def _random(nq=15, ng=40, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(nq, dim)).astype(np.float32), rng.normal(size=(ng, dim)).astype(np.float32)


def test_lambda_one_keeps_the_original_ranking():
    qf, gf = _random()
    from mace_core.metrics import distance_matrix

    orig = distance_matrix(qf, gf, "cosine")
    out = rerank_distance(qf, gf, lam=1.0)
    assert (np.argsort(out, 1, kind="stable") == np.argsort(orig, 1, kind="stable")).all()
    # and a real change at the default lambda
    assert not (np.argsort(rerank_distance(qf, gf), 1) == np.argsort(orig, 1)).all()


def test_jaccard_part_is_symmetric_and_bounded():
    qf, gf = _random(10, 14)
    ab, ba = rerank_distance(qf, gf, lam=0.0), rerank_distance(gf, qf, lam=0.0)
    np.testing.assert_allclose(ab, ba.T, atol=1e-6)   # same items, same V rows: dJ(i, j) = dJ(j, i)
    assert ab.min() >= 0.0 and ab.max() <= 1.0 + 1e-6


def test_permuting_the_gallery_permutes_columns():
    qf, gf = _random(9, 21, seed=3)
    perm = np.random.default_rng(1).permutation(len(gf))
    np.testing.assert_allclose(rerank_distance(qf, gf[perm]), rerank_distance(qf, gf)[:, perm], atol=1e-6)


def test_deterministic_and_row_blocks_do_not_matter(monkeypatch):
    import mace_core.rerank as rr

    qf, gf = _random(30, 50, seed=5)
    full = rerank_distance(qf, gf)
    assert (full == rerank_distance(qf, gf)).all()
    monkeypatch.setattr(rr, "_BLOCK_ENTRIES", 7 * 80)   # 7-row blocks
    monkeypatch.setattr(rr, "_PAIR_ENTRIES", 13)        # many tiny Jaccard steps
    np.testing.assert_allclose(rerank_distance(qf, gf), full, atol=1e-6)
    monkeypatch.setattr(rr, "_KEEP_BYTES", 0)           # distances recomputed in pass 2, never held whole
    np.testing.assert_allclose(rerank_distance(qf, gf), full, atol=1e-6)


def test_any_protocol_scores_the_reranked_matrix():
    # two well separated identities, IR queries of cams 3/6, RGB gallery of cams 1/2
    rng = np.random.default_rng(0)
    centres = np.eye(4)[:2] * 5
    qp, gp = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    qf = (centres[qp] + 0.1 * rng.normal(size=(4, 4))).astype(np.float32)
    gf = (centres[gp] + 0.1 * rng.normal(size=(4, 4))).astype(np.float32)
    d = rerank_distance(qf, gf, k1=2, k2=1)
    sysu = evaluate_sysu(d, qp, gp, [3, 6, 3, 6], [1, 1, 4, 4])
    regdb = evaluate_regdb(d, qp, gp)
    assert sysu["cmc"][0] == 1.0 and regdb["mAP"] == 1.0


def test_refuses_a_10k_by_100k_case_before_allocating():
    need = rerank_memory_bytes(10_000, 100_000)
    assert need > MAX_BYTES
    # tiny feature arrays of the right length: the check fires before any distance is computed
    qf, gf = np.zeros((10_000, 1), np.float32), np.zeros((100_000, 1), np.float32)
    with pytest.raises(MaceError, match=r"10,000 queries x 100,000 gallery.*limit") as err:
        rerank_distance(qf, gf)
    assert "eval.rerank: false" in str(err.value)
    # the full SYSU all-search shape fits well within the default
    assert rerank_memory_bytes(3803, 301) < 1 << 30
    with pytest.raises(MaceError, match="limit"):
        rerank_distance(*_random(), max_bytes=1000)


def test_bad_settings_are_refused():
    assert check_rerank(20, 6, 0.3) == (20, 6, 0.3)
    with pytest.raises(MaceError, match="rerank_k1"):
        check_rerank(0, 6, 0.3)
    with pytest.raises(MaceError, match="rerank_k2"):
        check_rerank(20, 2.5, 0.3)
    with pytest.raises(MaceError, match="rerank_lambda"):
        check_rerank(20, 6, 1.5)
    with pytest.raises(MaceError, match="NaN"):
        rerank_distance(np.full((2, 3), np.nan, np.float32), np.ones((3, 3), np.float32))


def test_llcm_protocol_reranks_and_says_so():
    """LLCM is re-ranked like the others: λ = 1 keeps the original ranking (metrics unchanged), the
    result is labelled, and a real re-ranking (λ = 0.3) changes the distances it scores."""
    import numpy as np

    from mace_core.engine.retrieval import llcm_trials

    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(6), 4)
    cams = np.tile([1, 2, 4, 5], 6)
    vis, nir = rng.normal(size=(24, 8)) + pids[:, None], rng.normal(size=(24, 8)) + pids[:, None]
    galleries = {0: np.arange(0, 24, 4), 1: np.arange(1, 24, 4)}
    args = (vis, pids, cams, nir, pids, cams, galleries, galleries, "ir2vis")
    plain = llcm_trials(*args)
    same = llcm_trials(*args, rerank={"k1": 4, "k2": 2, "lambda": 1.0})
    assert [t["mAP"] for t in same.trials] == pytest.approx([t["mAP"] for t in plain.trials])
    assert same.to_dict()["reranked"] is True and plain.to_dict()["reranked"] is False
    # every trial row says it too, as for SYSU-MM01 and RegDB
    assert all(t["reranked"] for t in same.trials) and not any(t["reranked"] for t in plain.trials)
    other = llcm_trials(*args, rerank={"k1": 4, "k2": 2, "lambda": 0.3})
    assert other.to_dict()["rerank"]["lambda"] == 0.3

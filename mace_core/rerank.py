"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017): query and gallery features in, a re-ranked query x gallery distance out.

The result is an ordinary distance matrix, so every protocol of :mod:`mace_core.metrics`
(SYSU-MM01 all/indoor, RegDB, any other) scores it unchanged (``evaluate_sysu(distmat, ...)``).

The algorithm, over the ``n = q + g`` query and gallery items together:

1. ``d(i, p)``: squared Euclidean distance of the features (for ``distance="cosine"`` of the
   L2-normalised features, ``2 - 2 cos``: the cosine ranking), divided by the largest entry of
   row ``i`` (over all ``n`` items). ``d(i, i) = 0``. Each row ranks all items by it, ties by
   index (stable), so ``N(i, k)`` -- the first ``k + 1`` items -- starts with ``i`` itself.
2. k-reciprocal set ``R(i, k) = {p in N(i, k) : i in N(p, k)}``.
3. Expansion: ``R*(i) = R(i, k1)`` plus, for each ``c`` in it, ``R(c, round(k1 / 2))`` when more
   than two thirds of that set lies in ``R(i, k1)`` (strictly more, as the public code has it; the
   paper writes ">="). ``round`` rounds half to even (NumPy's ``around``, as the public code).
4. ``V[i, p] = exp(-d(i, p)) / sum_{p' in R*(i)} exp(-d(i, p'))`` for ``p`` in ``R*(i)``, else 0.
5. Local query expansion (``k2 > 1``): row ``i`` of ``V`` becomes the mean of the rows of its
   first ``k2`` ranked items (itself included).
6. Jaccard distance ``dJ(i, j) = 1 - sum_l min(V[i, l], V[j, l]) / sum_l max(V[i, l], V[j, l])``.
7. Result for query ``i`` and gallery item ``j``: ``(1 - lambda) * dJ(i, j) + lambda * d(i, j)``.
   ``lambda = 1`` therefore ranks every query's gallery exactly as the original distance does.

Facts taken from the public reference code (the ``re_ranking`` function widely copied into re-id
repositories; we read the copy in ``IAAI-CVResearchGroup/MVP-metric``, ``re_ranking_feature.py``):
the row normalisation of step 1, the strict ">" of step 3, the ``k2`` mean of step 5 and the
defaults ``k1 = 20, k2 = 6, lambda = 0.3``. Differences, all numerical: weights are float32, not
float16, the Jaccard denominator uses the rows' actual sums (they are 1 up to rounding, the code
assumes exactly 1), and ties are broken by index.

Memory. The ``n x n`` distance matrix is held only while it is small (up to 256 MiB, n <= 8,192;
the full SYSU-MM01 all-search trial has n = 4,104); otherwise it is computed in row blocks twice
(ranking, then the weights), keeping only each row's first ``k1 + 1`` neighbours; ``V`` is sparse
(SciPy), and the Jaccard sums are gathered through an inverted index of the gallery rows. What
stays is about ``q x g`` (the result, the scaled distances and the Jaccard sums) plus the sparse
rows. :func:`rerank_memory_bytes` estimates it before anything is allocated; above ``max_bytes``
(default :data:`MAX_BYTES`) :func:`rerank_distance` refuses with a :class:`MaceError`. The time is
still that of an ``n x n`` distance computation.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from mace_core.errors import MaceError

DEFAULT_K1 = 20
DEFAULT_K2 = 6
DEFAULT_LAMBDA = 0.3
MAX_BYTES = 8 << 30            # refuse estimates above this (8 GiB) unless the caller allows more
_BLOCK_ENTRIES = 1 << 23       # distance entries per row block (~100 MB with the sort's indices)
_PAIR_ENTRIES = 1 << 23        # (query entry, gallery entry) pairs per Jaccard step
_KEEP_BYTES = 256 << 20        # up to this size (n <= 8,192) the n x n distances are kept, not recomputed


def check_rerank(k1, k2, lam) -> tuple[int, int, float]:
    """Validated ``(k1, k2, lambda)``."""
    for name, k in (("rerank_k1", k1), ("rerank_k2", k2)):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise MaceError(f"eval.{name} must be an integer >= 1, got {k!r}",
                            f"use the field's defaults k1={DEFAULT_K1}, k2={DEFAULT_K2}")
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.floating)) or not 0.0 <= float(lam) <= 1.0:
        raise MaceError(f"eval.rerank_lambda must be a number in [0, 1], got {lam!r}",
                        f"use the field's default {DEFAULT_LAMBDA} (1 keeps the original ranking)")
    return int(k1), int(k2), float(lam)


def rerank_settings(enabled: bool, k1=DEFAULT_K1, k2=DEFAULT_K2, lam=DEFAULT_LAMBDA) -> dict | None:
    """``{"k1", "k2", "lambda"}`` (validated) when re-ranking is on, else None (``eval.rerank*``)."""
    if not isinstance(enabled, bool):
        raise MaceError(f"eval.rerank must be true or false, got {enabled!r}", "use true or false")
    if not enabled:
        return None
    k1, k2, lam = check_rerank(k1, k2, lam)
    return {"k1": k1, "k2": k2, "lambda": lam}


def _half(k1: int) -> int:
    return int(np.around(k1 / 2))


def _expansion_width(k1: int) -> int:
    return (k1 + 1) * (_half(k1) + 2)


def rerank_memory_bytes(n_query: int, n_gallery: int, k1: int = DEFAULT_K1, k2: int = DEFAULT_K2,
                        dim: int = 0) -> int:
    """Upper estimate of the memory :func:`rerank_distance` holds at once, in bytes.

    For comparison, the reference code's dense ``(q+g)^2`` matrices (distance, ranking, ``V``,
    its expansion) would take ``~ 18 (q+g)^2`` bytes; this implementation keeps only the
    ``q x g`` blocks, the neighbour tables and the sparse rows of ``V`` (each at most
    ``(k1+1)(round(k1/2)+2)`` entries, ``k2`` times that after the expansion), plus two float32
    copies of the ``dim``-dimensional features."""
    n = int(n_query) + int(n_gallery)
    qg = int(n_query) * int(n_gallery)
    width = _expansion_width(k1)
    tables = n * (max(k1 + 1, k2) * 8 + width * 8 * 3)        # neighbours, candidates, their sort
    sparse = n * width * (1 + max(k2, 1)) * 12                 # V and its expansion (value + index)
    block = _BLOCK_ENTRIES * 16                                # one distance block and its sort
    kept = 4 * n * n if 4 * n * n <= _KEEP_BYTES else 0         # small problems keep their distances
    features = 2 * n * int(dim) * 4
    return 4 * qg * 3 + 8 * qg + tables + sparse + block + kept + features  # result, scaled d, Jaccard sums


def _gb(n: int) -> str:
    return f"{n / 2 ** 30:.1f} GiB"


def _features(qf, gf, distance: str) -> tuple[torch.Tensor, int]:
    from mace_core.metrics import _prepare

    q, g = _prepare(qf, gf, distance)
    return torch.cat([q, g]).to(torch.float32), q.shape[0]


def _block_distance(x: torch.Tensor, sq: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Squared Euclidean distances of rows ``lo:hi`` to all items, the diagonal exactly 0."""
    d = torch.mm(x[lo:hi], x.T).mul_(-2.0)
    d += sq[lo:hi, None]
    d += sq[None, :]
    d.clamp_(min=0.0)
    idx = torch.arange(lo, hi)
    d[idx - lo, idx] = 0.0
    return d


def _ranking(x: torch.Tensor, sq: torch.Tensor, kmax: int, rows_per_block: int, keep: torch.Tensor | None = None):
    """Pass 1: each row's largest distance and its first ``kmax`` neighbours (ties by index);
    the distances are also written into ``keep`` (n x n) when given."""
    n = x.shape[0]
    rowmax = torch.empty(n, dtype=torch.float32)
    nbr = np.empty((n, kmax), np.int64)
    for lo in range(0, n, rows_per_block):
        hi = min(lo + rows_per_block, n)
        d = _block_distance(x, sq, lo, hi)
        if keep is not None:
            keep[lo:hi] = d
        rowmax[lo:hi] = d.max(1).values
        vals, idx = torch.topk(d, kmax, dim=1, largest=False, sorted=True)
        # topk's order among equal distances is unspecified: rows with a tie inside the kept
        # neighbours or at their boundary are re-sorted stably (ties by index).
        tied = ((d <= vals[:, -1:]).sum(1) > kmax) | (vals[:, 1:] == vals[:, :-1]).any(1)
        if bool(tied.any()):
            rows = torch.nonzero(tied)[:, 0]
            idx[rows] = torch.sort(d[rows], dim=1, stable=True).indices[:, :kmax]
        nbr[lo:hi] = idx.numpy()
    return torch.where(rowmax > 0, rowmax, torch.ones_like(rowmax)), nbr   # 0: all-identical features


def _reciprocal(nbr: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """(len(rows), k+1) mask: which of each row's first k+1 neighbours have the row among theirs."""
    fwd = nbr[rows, :k + 1]
    return (nbr[fwd, :k + 1] == rows[:, None, None]).any(-1)


def _expansion_sets(nbr: np.ndarray, k1: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR-like (indptr, members) of R*(i) for every item (step 3 of the module docstring)."""
    n = nbr.shape[0]
    kh = _half(k1)
    half_fwd = nbr[:, :kh + 1]
    half_ok = np.concatenate([_reciprocal(nbr, np.arange(lo, min(lo + 4096, n)), kh)
                              for lo in range(0, n, 4096)])
    half_size = half_ok.sum(1)
    counts, members = [], []
    step = max(1, (1 << 22) // ((k1 + 1) ** 2 * (kh + 1)))
    for lo in range(0, n, step):
        rows = np.arange(lo, min(lo + step, n))
        fwd = nbr[rows, :k1 + 1]                                   # (c, k1+1)
        ok = _reciprocal(nbr, rows, k1)                            # R(i, k1) as a mask over fwd
        cand = half_fwd[fwd]                                       # (c, k1+1, kh+1): R(c, kh) candidates
        cand_ok = half_ok[fwd]
        in_r = ((cand[..., None] == fwd[:, None, None, :]) & ok[:, None, None, :]).any(-1)
        inter = (in_r & cand_ok).sum(-1)                           # |R(c, kh) & R(i, k1)|
        accept = ok & (3 * inter > 2 * half_size[fwd])             # strictly more than 2/3, exactly
        take = cand_ok & accept[..., None]
        sentinel = n
        parts = np.concatenate([np.where(ok, fwd, sentinel),
                                np.where(take, cand, sentinel).reshape(rows.size, -1)], axis=1)
        parts.sort(axis=1)
        keep = parts != sentinel
        keep[:, 1:] &= parts[:, 1:] != parts[:, :-1]
        counts.append(keep.sum(1))
        members.append(parts[keep])
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    return indptr, np.concatenate(members).astype(np.int64)


def _jaccard_min_sums(vq: sp.csr_matrix, vg: sp.csc_matrix, n_g: int) -> np.ndarray:
    """``S[i, j] = sum_l min(vq[i, l], vg[j, l])`` through the inverted index of ``vg`` (the
    gallery rows as columns of a CSC matrix: column ``l`` lists the gallery items with ``l`` in
    their support). Summation order is fixed, so the result is deterministic."""
    vq = vq.tocoo()
    order = np.lexsort((vq.col, vq.row))
    qi, ql, qa = vq.row[order].astype(np.int64), vq.col[order].astype(np.int64), vq.data[order]
    start = vg.indptr[ql].astype(np.int64)
    cnt = vg.indptr[ql + 1].astype(np.int64) - start
    n_q = vq.shape[0]
    out = np.zeros(n_q * n_g, np.float64)
    ends = np.cumsum(cnt)
    lo = 0
    while lo < qi.size:
        # as many query entries as keep the expanded pairs under _PAIR_ENTRIES (at least one)
        base = ends[lo - 1] if lo else 0
        hi = max(lo + 1, int(np.searchsorted(ends, base + _PAIR_ENTRIES, side="right")))
        c = cnt[lo:hi]
        total = int(c.sum())
        if total:
            first = np.repeat(start[lo:hi] - (np.cumsum(c) - c), c)
            pos = first + np.arange(total)
            j = vg.indices[pos].astype(np.int64)
            m = np.minimum(np.repeat(qa[lo:hi], c), vg.data[pos])
            out += np.bincount(np.repeat(qi[lo:hi], c) * n_g + j, weights=m, minlength=out.size)
        lo = hi
    return out.reshape(n_q, n_g)


def rerank_distance(qf, gf, k1: int = DEFAULT_K1, k2: int = DEFAULT_K2, lam: float = DEFAULT_LAMBDA,
                    distance: str = "cosine", *, max_bytes: int | None = None) -> np.ndarray:
    """Re-ranked ``(queries, gallery)`` float32 distance matrix (module docstring); smaller = closer.

    Raises :class:`MaceError` before allocating when :func:`rerank_memory_bytes` exceeds
    ``max_bytes`` (default :data:`MAX_BYTES`)."""
    k1, k2, lam = check_rerank(k1, k2, lam)
    n_q, n_g = len(qf), len(gf)
    if n_q == 0 or n_g == 0:
        raise MaceError("re-ranking needs at least one query and one gallery image",
                        "check the evaluation split")
    limit = MAX_BYTES if max_bytes is None else int(max_bytes)
    dim = int(np.shape(qf)[1]) if np.ndim(qf) == 2 else 0
    need = rerank_memory_bytes(n_q, n_g, k1, k2, dim)
    if need > limit:
        n = n_q + n_g
        raise MaceError(f"k-reciprocal re-ranking of {n_q:,} queries x {n_g:,} gallery images would hold about "
                        f"{_gb(need)} (the dense (q+g)^2 = {n:,}^2 matrices of the reference code would take roughly "
                        f"{_gb(18 * n * n)}; this implementation works in row blocks but still keeps "
                        f"q x g matrices), over the limit of {_gb(limit)}",
                        "evaluate without re-ranking (eval.rerank: false), re-rank a smaller gallery "
                        "(e.g. the SYSU-MM01 trial galleries), or raise the limit (max_bytes=...)")
    x, _ = _features(qf, gf, distance)
    n = x.shape[0]
    sq = (x * x).sum(1)
    kmax = min(max(k1 + 1, k2), n)
    rows_per_block = max(1, _BLOCK_ENTRIES // n)

    # a small problem keeps its n x n distances for pass 2 instead of computing them twice
    keep = torch.empty((n, n), dtype=torch.float32) if 4 * n * n <= _KEEP_BYTES else None
    rowmax, nbr = _ranking(x, sq, kmax, rows_per_block, keep)
    indptr, members = _expansion_sets(nbr, k1)

    # Pass 2: the weights of step 4 and the scaled query x gallery distances.
    counts = np.diff(indptr)
    data = np.empty(members.size, np.float32)
    scaled = np.empty((n_q, n_g), np.float32)
    for lo in range(0, n, rows_per_block):
        hi = min(lo + rows_per_block, n)
        d = (keep[lo:hi] if keep is not None else _block_distance(x, sq, lo, hi)).div_(rowmax[lo:hi, None])
        if lo < n_q:
            scaled[lo:min(hi, n_q)] = d[:min(hi, n_q) - lo, n_q:].numpy()
        seg = slice(indptr[lo], indptr[hi])
        local = np.repeat(np.arange(hi - lo), counts[lo:hi])
        w = np.exp(-d.numpy()[local, members[seg]].astype(np.float64))
        sums = np.bincount(local, weights=w, minlength=hi - lo)
        data[seg] = (w / sums[local]).astype(np.float32)
    v = sp.csr_matrix((data, members, indptr), shape=(n, n))
    k2 = min(k2, n)   # fewer items than k2: the mean of all of them
    if k2 > 1:   # step 5: mean of the rows of the first k2 neighbours
        a = sp.csr_matrix((np.full(n * k2, 1.0 / k2, np.float32), nbr[:, :k2].ravel(),
                           np.arange(0, n * k2 + 1, k2)), shape=(n, n))
        v = (a @ v).tocsr()
    vq, vg = v[:n_q], v[n_q:].tocsc()
    s = _jaccard_min_sums(vq, vg, n_g)
    row_q = np.asarray(vq.sum(1), np.float64).ravel()
    row_g = np.asarray(vg.sum(1), np.float64).ravel()
    s_max = row_q[:, None] + row_g[None, :] - s
    jac = 1.0 - np.divide(s, s_max, out=np.zeros_like(s), where=s_max > 0)
    out = (1.0 - lam) * jac
    out += lam * scaled
    return out.astype(np.float32)

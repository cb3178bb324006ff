"""Retrieval metrics of the cross-modal re-identification literature: CMC, mAP and mINP.

Arrays in, a dict out; this module knows nothing about models or datasets.

Semantics (those of the reference AGW code, ``eval_sysu`` / ``eval_regdb``):

* ``distmat[i, j]`` is a distance: smaller means closer. Each query ranks the gallery by it.
  **Ties are broken by gallery index** (the lower index ranks first, i.e. a stable sort), so the
  results are a pure function of the inputs. Without ties this is the reference's ranking.
* SYSU-MM01 rule: a query from camera 3 ignores every gallery item from camera 2 (same room),
  whatever its identity. Nothing else is removed. The rule is the pair ``same_room=(3, 2)``
  (query camera, removed gallery camera); the reverse search direction passes ``(2, 3)``.
* CMC (SYSU): on the ranked identity list after that removal, each identity kept once at its
  first occurrence. CMC (RegDB): the plain ranked list.
* AP and INP use the kept, non-de-duplicated list: AP = mean over true matches of
  (matches so far / rank); INP = number of true matches / rank of the last one.
* Queries without a true match in the kept list are skipped; every figure is averaged over the
  remaining ("valid") queries. No valid query at all is an error.
* ``cmc`` has ``min(max_rank, gallery size)`` entries, as fractions; ``cmc[k]`` = share of valid
  queries whose first true match is within the top ``k + 1``.

How it is computed (no sort of the gallery, no Python loop over queries, NumPy only except the
GEMM and one fallback): queries are processed in chunks; each query's true matches (a handful)
are sorted. With few matches (SYSU single-/multi-shot) their ranks are counted by one broadcast
comparison against the row; with many, only the items up to the last match can precede one, so
just those are placed among the matches (a torch binary search over the whole row takes over
when a weak model leaves too many). The SYSU CMC rank is one plus the number of other
identities with a kept item closer than the first true match. Exact distance ties are rare and
are resolved by gallery index on the few affected entries. Small chunks stay single-threaded
NumPy on purpose: torch's intra-op threads slowed them ~10x when the cores were busy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mace_core.errors import MaceError

DISTANCES = ("cosine", "euclidean")
SYSU_SAME_ROOM = (3, 2)   # (query camera, gallery camera removed for it): IR cam 3 and RGB cam 2 share a room

# Distance entries handled per chunk: bounds the working memory (~20 bytes per entry).
_CHUNK_ENTRIES = 1 << 25


# --------------------------------------------------------------------------- input checks
def _ids(values, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise MaceError(f"{name} must be one-dimensional, got shape {arr.shape}",
                        f"pass one {name[2:]} per image as a flat array")
    if arr.size and not np.issubdtype(arr.dtype, np.integer) and not np.all(np.mod(arr, 1) == 0):
        raise MaceError(f"{name} must hold integers", f"pass integer {name[2:]}")
    arr = arr.astype(np.int64)
    if n is not None and arr.size != n:
        raise MaceError(f"{name} has {arr.size} entries but the distance matrix has {n} along that axis",
                        "pass ids/cameras in the same order and number as the distance matrix rows/columns")
    return arr


def _check_sizes(n_q: int, n_g: int, max_rank: int) -> None:
    if n_g == 0:
        raise MaceError("the gallery is empty", "evaluate against at least one gallery image")
    if n_q == 0:
        raise MaceError("there are no queries", "evaluate at least one query image")
    if int(max_rank) < 1:
        raise MaceError(f"max_rank must be >= 1, got {max_rank}", "use max_rank=20 (the field's default)")


def _check_distmat(distmat) -> np.ndarray:
    d = np.asarray(distmat)
    if d.ndim != 2:
        raise MaceError(f"the distance matrix must be 2-D (queries x gallery), got shape {d.shape}",
                        "pass distmat of shape (num_queries, num_gallery)")
    return d  # dtype and finiteness are checked chunk by chunk: a whole-matrix check would
    # allocate a full-size mask (1 GB at 10,000 x 100,000) or a float64 copy (8 GB)


# --------------------------------------------------------------------------- gallery layout
@dataclass
class _Gallery:
    """The gallery in identity-grouped column order (stable, so ties keep index order)."""

    order: np.ndarray       # sorted column -> original gallery index
    order_t: torch.Tensor
    uniq: np.ndarray        # identities, ascending
    start: np.ndarray       # first sorted column of each identity
    count: np.ndarray       # columns per identity
    cam2_cols: np.ndarray   # sorted columns holding camera-2 items
    pad_cols: np.ndarray | None  # (longest block, identities): k-th column of each identity (repeats
                                 # its first column when shorter, which leaves the minimum unchanged)
    is_sorted: bool         # the gallery already comes grouped by identity

    @classmethod
    def build(cls, g_pids: np.ndarray, g_cams: np.ndarray | None, removed_cam: int = 2) -> _Gallery:
        order = np.argsort(g_pids, kind="stable")
        sorted_pids = g_pids[order]
        uniq, start, count = np.unique(sorted_pids, return_index=True, return_counts=True)
        cam2 = np.empty(0, np.int64) if g_cams is None else np.flatnonzero(g_cams[order] == removed_cam)
        longest = int(count.max()) if count.size else 0
        pad_cols = None
        if uniq.size * longest <= 2 * g_pids.size:
            k = np.arange(longest)
            pad_cols = np.where(k[:, None] < count[None, :], start[None, :] + k[:, None], start[None, :])
        return cls(order, torch.from_numpy(order), uniq, start, count, cam2, pad_cols,
                   bool(np.all(order == np.arange(order.size))))


class _Totals:
    """Running sums over valid queries."""

    def __init__(self, max_rank: int):
        self.max_rank = max_rank
        self.rank_counts = np.zeros(max_rank + 2, np.int64)
        self.ap = 0.0
        self.inp = 0.0
        self.valid = 0
        self.pid_parts: list[tuple[np.ndarray, np.ndarray]] = []   # (query identity, hit at rank 1)

    def add(self, first_rank: np.ndarray, ap: np.ndarray, inp: np.ndarray, pids: np.ndarray | None = None) -> None:
        self.rank_counts += np.bincount(np.minimum(first_rank, self.max_rank + 1), minlength=self.max_rank + 2)
        if pids is not None:
            self.pid_parts.append((np.asarray(pids, np.int64), np.asarray(first_rank) == 1))
        self.ap += float(ap.sum(dtype=np.float64))
        self.inp += float(inp.sum(dtype=np.float64))
        self.valid += int(first_rank.size)

    def result(self, n_queries: int) -> dict:
        if self.valid == 0:
            raise MaceError("no query has a true match in the gallery",
                            "check that query and gallery identities overlap (same test split, "
                            "and in indoor mode at least some identities seen by cams 1/2)")
        cmc = np.cumsum(self.rank_counts[1:self.max_rank + 1]) / self.valid
        out = {"cmc": cmc, "mAP": self.ap / self.valid, "mINP": self.inp / self.valid,
               "num_valid_queries": self.valid, "num_queries": n_queries}
        if self.pid_parts:
            # per test identity: its valid queries and their Rank-1 hits (the unit of a two-level
            # bootstrap over training seeds and test identities, mace_core.analysis.findings)
            pids = np.concatenate([p for p, _ in self.pid_parts])
            hits = np.concatenate([h for _, h in self.pid_parts])
            uniq, inverse = np.unique(pids, return_inverse=True)
            out["per_identity"] = {"pid": uniq.tolist(),
                                   "queries": np.bincount(inverse, minlength=uniq.size).tolist(),
                                   "rank1_hits": np.bincount(inverse, weights=hits, minlength=uniq.size)
                                   .astype(np.int64).tolist()}
        return out


# --------------------------------------------------------------------------- the core

# Up to this many true matches per query, ranks are counted by direct comparison (cheaper than
# a binary search for the small single-/multi-shot SYSU galleries).
_DIRECT_MAX_MATCHES = 8
# Candidate-by-match comparisons per step on the many-matches path (bounds its memory).
_CANDIDATE_ENTRIES = 1 << 22
# Above this share of candidate entries, a full binary search beats the candidate comparisons.
_SEARCH_SHARE = 1 / 8


def _ranks_by_search(d, m, m_orig, m_valid, gal: _Gallery) -> np.ndarray:
    """Many matches, many candidates: torch's batched binary search of every item among the
    row's matches. place[i, j] = matches of query i ranked before item j."""
    nq, width = m.shape
    dist, mdist = torch.from_numpy(d), torch.from_numpy(m)
    valid_t, orig_t = torch.from_numpy(m_valid), torch.from_numpy(m_orig)
    place = torch.searchsorted(mdist, dist)                   # strict "<" part (lower bound)
    nan_pad = torch.full((nq, 1), float("nan"), dtype=dist.dtype)
    next_match = torch.cat([torch.where(valid_t, mdist, float("nan")), nan_pad], 1).gather(1, place)
    tie_r, tie_c = torch.nonzero(next_match == dist, as_tuple=True)
    del next_match
    if tie_r.numel():  # equal distances: matches with a lower gallery index come first
        same = mdist[tie_r] == dist[tie_r, tie_c][:, None]
        earlier = orig_t[tie_r] < gal.order_t[tie_c][:, None]
        place[tie_r, tie_c] += (same & earlier).sum(1)
    # Histogram of placements per query -> how many other items precede each true match.
    bins = width + 1
    place += torch.arange(nq, dtype=place.dtype)[:, None] * bins
    hist = torch.bincount(place.view(-1), minlength=nq * bins).view(nq, bins)[:, :width]
    del place
    hist -= valid_t.to(hist.dtype)                             # each match sits in its own bin
    kk = torch.arange(1, width + 1, dtype=torch.float64)
    return (kk[None, :] + torch.cumsum(hist, 1).to(torch.float64)).numpy()


def _match_ranks(d, m, m_orig, m_valid, gal: _Gallery):
    """Rank (1-based, float64) of each sorted true match among the kept items, ties by index; on
    the direct path also, as by-products for the identity CMC, the (chunk, gallery) mask of items
    strictly closer than the first match and the rows where another item ties with it."""
    nq, width = m.shape
    if width <= _DIRECT_MAX_MATCHES:
        # One broadcast comparison (chunk, width, gallery); narrow uint8->uint16 sums are fast.
        acc = np.uint16 if d.shape[1] < 65535 else np.int64
        # (width, chunk, gallery): match-major, so closer[0] is contiguous for the identity CMC.
        closer = d[None, :, :] < m.T[:, :, None]
        less = closer.view(np.uint8).sum(-1, dtype=acc).T.astype(np.int64)
        equal = (d[None, :, :] == m.T[:, :, None]).view(np.uint8).sum(-1, dtype=acc).T
        ranks = less + 1
        # A valid match equals only itself unless there is an exact tie: resolve those by index.
        for r, k in zip(*np.nonzero((equal > 1) & m_valid)):
            tied = d[r] == m[r, k]
            ranks[r, k] = less[r, k] + int(np.count_nonzero(tied & (gal.order <= int(m_orig[r, k]))))
        return ranks.astype(np.float64), closer[0], equal[:, 0] > 1
    # Many matches: only items up to the last valid match can precede one, and with a useful
    # model they are few. Place each such candidate among the row's matches (ties by index);
    # a per-row histogram of the places gives how many other items precede each match.
    last = np.where(m_valid.any(1), m[np.arange(nq), np.maximum(m_valid.sum(1) - 1, 0)], -np.inf)
    candidate = d <= last[:, None]
    if np.count_nonzero(candidate) > d.size * _SEARCH_SHARE:   # a weak model: binary search is cheaper
        return _ranks_by_search(d, m, m_orig, m_valid, gal), None, None
    rows, cols = np.nonzero(candidate)
    hist = np.zeros(nq * (width + 1), np.int64)
    step = max(1, _CANDIDATE_ENTRIES // width)       # bounds the (candidates, width) comparisons
    for lo in range(0, rows.size, step):
        r, c = rows[lo:lo + step], cols[lo:lo + step]
        v, v_orig = d[r, c][:, None], gal.order[c][:, None]
        mr = m[r]
        before = (mr < v) | ((mr == v) & (m_orig[r] < v_orig))   # matches ranked before the item
        hist += np.bincount(r * (width + 1) + before.sum(1), minlength=hist.size)
    hist = hist.reshape(nq, width + 1)[:, :width] - m_valid   # each match sits in its own bin
    return np.arange(1, width + 1, dtype=np.float64) + np.cumsum(hist, 1), None, None


def _identities_ahead(d: np.ndarray, d1: np.ndarray, closer, gal: _Gallery) -> np.ndarray:
    """(chunk,) number of identities with a kept item strictly closer than ``d1`` (removed items
    are +inf, so never closer; the query's own identity has none, ``d1`` being its closest)."""
    if closer is None:
        closer = d < d1[:, None]
    if gal.pad_cols is None:  # very uneven identity sizes: a segmented reduction
        return np.count_nonzero(np.logical_or.reduceat(closer, gal.start, axis=1), axis=1)
    hit = closer[:, gal.pad_cols[0]]
    for cols in gal.pad_cols[1:]:   # element-wise "or" over the k-th item of every identity
        hit |= closer[:, cols]
    return np.count_nonzero(hit, axis=1)


def _chunk(dist, q_pids: np.ndarray, q_cams: np.ndarray | None, gal: _Gallery, totals: _Totals,
           room_cam: int = SYSU_SAME_ROOM[0]) -> None:
    """Score one chunk. ``dist`` (chunk x gallery, NumPy or CPU torch) is in identity-grouped
    column order and is modified in place (removed items become +inf)."""
    d = dist.numpy() if isinstance(dist, torch.Tensor) else dist
    if q_cams is not None and gal.cam2_cols.size:
        rows = np.flatnonzero(q_cams == room_cam)
        if rows.size:  # the SYSU same-room rule
            d[np.ix_(rows, gal.cam2_cols)] = np.inf

    # The true matches of each query are its identity's contiguous column block.
    pos = np.searchsorted(gal.uniq, q_pids)
    pos_c = np.minimum(pos, gal.uniq.size - 1)
    present = gal.uniq[pos_c] == q_pids
    n_match = np.where(present, gal.count[pos_c], 0)
    width = max(int(n_match.max()), 1)
    k = np.arange(width)
    in_block = k[None, :] < n_match[:, None]
    cols = np.where(in_block, gal.start[pos_c][:, None] + k[None, :], 0)
    m = np.take_along_axis(d, cols, 1)
    m[~in_block] = np.inf
    perm = np.argsort(m, axis=1, kind="stable")               # stable: equal distances keep index order
    m = np.take_along_axis(m, perm, 1)
    m_orig = gal.order[np.take_along_axis(cols, perm, 1)]     # original gallery index of each sorted match
    m_valid = np.isfinite(m)                                   # removed or padding entries are +inf
    n_valid = m_valid.sum(1)
    valid_rows = n_valid > 0
    if not valid_rows.any():
        return

    ranks, closer, tied_first = _match_ranks(d, m, m_orig, m_valid, gal)   # 1-based rank of each true match
    ranks, nv = ranks[valid_rows], n_valid[valid_rows].astype(np.float64)
    kk = np.arange(1, width + 1, dtype=np.float64)
    ap = np.where(m_valid[valid_rows], kk[None, :] / ranks, 0.0).sum(1) / nv
    inp = nv / np.take_along_axis(ranks, (n_valid[valid_rows] - 1)[:, None], 1)[:, 0]

    if q_cams is None:  # plain CMC: the first true match's rank
        first = ranks[:, 0].astype(np.int64)
    else:  # identity-level CMC: other identities whose best kept item precedes the first match
        d1 = m[:, 0]
        ahead = _identities_ahead(d, d1, closer, gal)
        if tied_first is None:
            tied_first = (d == d1[:, None]).sum(1) > 1
        # Exact ties with the first match (rare): an identity whose tied item has a lower gallery
        # index comes first, unless it was already counted for a strictly closer item.
        for r in np.flatnonzero(valid_rows & tied_first):
            tied = np.flatnonzero(d[r] == d1[r])
            earlier = tied[gal.order[tied] < m_orig[r, 0]]
            for w in np.unique(np.searchsorted(gal.start, earlier, side="right") - 1):
                block = d[r, gal.start[w]:gal.start[w] + gal.count[w]]
                ahead[r] += int(gal.uniq[w] != q_pids[r] and not (block < d1[r]).any())
        first = ahead[valid_rows] + 1
    totals.add(first, ap, inp, q_pids[valid_rows])


def _run(dist_chunks, q_pids, q_cams, gal: _Gallery, n_g: int, max_rank: int,
         room_cam: int = SYSU_SAME_ROOM[0]) -> dict:
    totals = _Totals(min(int(max_rank), n_g))
    n_q = q_pids.size
    for lo, hi, d in dist_chunks:
        _chunk(d, q_pids[lo:hi], None if q_cams is None else q_cams[lo:hi], gal, totals, room_cam)
    return totals.result(n_q)


def _chunk_rows(n_g: int, chunk_rows: int | None) -> int:
    return int(chunk_rows) if chunk_rows else max(1, _CHUNK_ENTRIES // max(n_g, 1))


def _distmat_chunks(d: np.ndarray, gal: _Gallery, rows: int):
    for lo in range(0, d.shape[0], rows):
        hi = min(lo + rows, d.shape[0])
        # a fresh copy either way: the scoring writes into it
        block = d[lo:hi].copy() if gal.is_sorted else np.take(d[lo:hi], gal.order, axis=1)
        if not np.issubdtype(block.dtype, np.floating):
            block = block.astype(np.float64)
        if not np.isfinite(block).all():
            raise MaceError(f"the distance matrix holds NaN or infinite values (in query rows {lo}-{hi - 1})",
                            "check the features for NaN/inf before computing distances")
        yield lo, hi, block


# --------------------------------------------------------------------------- public API
def _same_room(pair) -> tuple[int, int]:
    try:
        q_cam, g_cam = (int(c) for c in pair)
    except (TypeError, ValueError):
        raise MaceError(f"same_room must be a (query camera, gallery camera) pair, got {pair!r}",
                        f"use {SYSU_SAME_ROOM} (the SYSU-MM01 rule) or (2, 3) for RGB queries") from None
    return q_cam, g_cam


def evaluate_sysu(distmat, q_pids, g_pids, q_cams, g_cams, max_rank: int = 20, *,
                  chunk_rows: int | None = None, same_room=SYSU_SAME_ROOM) -> dict:
    """SYSU-MM01 protocol on a distance matrix (queries x gallery, smaller = closer).

    Returns ``{"cmc": ndarray (min(max_rank, n_gallery),), "mAP": float, "mINP": float,
    "num_valid_queries": int, "num_queries": int}`` (fractions, not percent). See the module
    docstring for the exact rules; ties are broken by gallery index. ``same_room``: a query from
    camera ``same_room[0]`` ignores gallery items from camera ``same_room[1]``.
    """
    d = _check_distmat(distmat)
    n_q, n_g = d.shape
    _check_sizes(n_q, n_g, max_rank)
    qp, gp = _ids(q_pids, "q_pids", n_q), _ids(g_pids, "g_pids", n_g)
    qc, gc = _ids(q_cams, "q_cams", n_q), _ids(g_cams, "g_cams", n_g)
    room_q, room_g = _same_room(same_room)
    gal = _Gallery.build(gp, gc, room_g)
    return _run(_distmat_chunks(d, gal, _chunk_rows(n_g, chunk_rows)), qp, qc, gal, n_g, max_rank, room_q)


def evaluate_regdb(distmat, q_pids, g_pids, max_rank: int = 20, *, chunk_rows: int | None = None) -> dict:
    """RegDB protocol: no gallery removal, plain CMC; otherwise as :func:`evaluate_sysu`."""
    d = _check_distmat(distmat)
    n_q, n_g = d.shape
    _check_sizes(n_q, n_g, max_rank)
    qp, gp = _ids(q_pids, "q_pids", n_q), _ids(g_pids, "g_pids", n_g)
    gal = _Gallery.build(gp, None)
    return _run(_distmat_chunks(d, gal, _chunk_rows(n_g, chunk_rows)), qp, None, gal, n_g, max_rank)


def _features(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu()
    if t.ndim != 2:
        raise MaceError(f"{name} must be 2-D (images x dimensions), got shape {tuple(t.shape)}",
                        "pass one feature vector per row")
    if not torch.is_floating_point(t):
        t = t.float()
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise MaceError(f"{name} holds NaN or infinite values", "check the model output (e.g. a diverged run)")
    return t


def check_distance(distance: str) -> str:
    if distance not in DISTANCES:
        raise MaceError(f"unknown distance {distance!r}", f"use one of {', '.join(DISTANCES)}")
    return distance


def _prepare(qf, gf, distance: str, g_order: torch.Tensor | None = None):
    """Checked float features; the gallery is copied once (in ``g_order`` if given) and, for the
    cosine distance, normalised in place, so a large gallery costs one extra copy, not two."""
    check_distance(distance)
    q, g = _features(qf, "query features"), _features(gf, "gallery features")
    if q.shape[1] != g.shape[1]:
        raise MaceError(f"query features have {q.shape[1]} dimensions but gallery features {g.shape[1]}",
                        "extract both with the same model")
    dtype = torch.promote_types(q.dtype, g.dtype)
    q = q.to(dtype)
    g = g.to(dtype)[g_order] if g_order is not None else g.to(dtype, copy=True)
    if distance == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
        g.div_(g.norm(dim=1, keepdim=True).clamp_min(1e-12))
    return q, g


def distance_matrix(qf, gf, distance: str = "cosine") -> np.ndarray:
    """Full distance matrix. ``cosine``: minus the dot product of L2-normalised features (the
    reference's ranking); ``euclidean``: squared Euclidean distance (same ranking as Euclidean)."""
    q, g = _prepare(qf, gf, distance)
    return _pair_distance(q, g, distance, None if distance == "cosine" else (g * g).sum(1)).numpy()


def _pair_distance(q: torch.Tensor, g: torch.Tensor, distance: str, g_sq) -> torch.Tensor:
    if distance == "cosine":
        return torch.mm(q, g.T).neg_()
    d = torch.mm(q, g.T).mul_(-2.0)
    d += (q * q).sum(1)[:, None]
    d += g_sq[None, :]
    return d.clamp_(min=0.0)


def _feature_chunks(q: torch.Tensor, g_sorted: torch.Tensor, distance: str, rows: int):
    g_sq = None if distance == "cosine" else (g_sorted * g_sorted).sum(1)
    for lo in range(0, q.shape[0], rows):
        hi = min(lo + rows, q.shape[0])
        yield lo, hi, _pair_distance(q[lo:hi], g_sorted, distance, g_sq)


def evaluate_sysu_features(qf, gf, q_pids, g_pids, q_cams, g_cams, max_rank: int = 20,
                           distance: str = "cosine", *, chunk_rows: int | None = None,
                           same_room=SYSU_SAME_ROOM) -> dict:
    """:func:`evaluate_sysu` on features; the distance is computed chunk by chunk, so the full
    query x gallery matrix never exists (10,000 x 100,000 runs in well under 4 GB)."""
    n_q, n_g = len(qf), len(gf)
    _check_sizes(n_q, n_g, max_rank)
    qp, gp = _ids(q_pids, "q_pids", n_q), _ids(g_pids, "g_pids", n_g)
    qc, gc = _ids(q_cams, "q_cams", n_q), _ids(g_cams, "g_cams", n_g)
    room_q, room_g = _same_room(same_room)
    gal = _Gallery.build(gp, gc, room_g)
    q, g_sorted = _prepare(qf, gf, distance, gal.order_t)
    chunks = _feature_chunks(q, g_sorted, distance, _chunk_rows(n_g, chunk_rows))
    return _run(chunks, qp, qc, gal, n_g, max_rank, room_q)


def evaluate_regdb_features(qf, gf, q_pids, g_pids, max_rank: int = 20, distance: str = "cosine", *,
                            chunk_rows: int | None = None) -> dict:
    """:func:`evaluate_regdb` on features, chunked like :func:`evaluate_sysu_features`."""
    n_q, n_g = len(qf), len(gf)
    _check_sizes(n_q, n_g, max_rank)
    qp, gp = _ids(q_pids, "q_pids", n_q), _ids(g_pids, "g_pids", n_g)
    gal = _Gallery.build(gp, None)
    q, g_sorted = _prepare(qf, gf, distance, gal.order_t)
    chunks = _feature_chunks(q, g_sorted, distance, _chunk_rows(n_g, chunk_rows))
    return _run(chunks, qp, None, gal, n_g, max_rank)


# --------------------------------------------------------------------------- LLCM (additive)
# LLCM rule (DEEN's ``eval_llcm``, github ZYK100/LLCM): a query ignores every gallery item of its
# own identity taken by its own camera (cameras 1..9 are shared by the VIS and NIR images); the
# CMC is the identity-level one of SYSU-MM01 (first occurrence of each identity on the kept list);
# AP, INP, skipped queries and averaging as in the module docstring.
def _llcm_removal(chunks, q_pids: np.ndarray, q_cams: np.ndarray, gal: _Gallery, g_pids: np.ndarray,
                  g_cams: np.ndarray):
    """Set the same-identity, same-camera entries of each chunk (sorted columns) to +inf."""
    gp, gc = g_pids[gal.order], g_cams[gal.order]
    for lo, hi, block in chunks:
        d = block.numpy() if isinstance(block, torch.Tensor) else block
        same = (q_pids[lo:hi, None] == gp[None, :]) & (q_cams[lo:hi, None] == gc[None, :])
        d[same] = np.inf
        yield lo, hi, block


def evaluate_llcm(distmat, q_pids, g_pids, q_cams, g_cams, max_rank: int = 20, *,
                  chunk_rows: int | None = None) -> dict:
    """LLCM protocol on a distance matrix (queries x gallery, smaller = closer): gallery items of
    the query's identity *and* camera are ignored; identity-level CMC; AP/INP on the kept list.
    Returns the dict of :func:`evaluate_sysu`; ties are broken by gallery index."""
    d = _check_distmat(distmat)
    n_q, n_g = d.shape
    _check_sizes(n_q, n_g, max_rank)
    qp, gp = _ids(q_pids, "q_pids", n_q), _ids(g_pids, "g_pids", n_g)
    qc, gc = _ids(q_cams, "q_cams", n_q), _ids(g_cams, "g_cams", n_g)
    gal = _Gallery.build(gp, None)        # no SYSU camera-2 rule
    chunks = _llcm_removal(_distmat_chunks(d, gal, _chunk_rows(n_g, chunk_rows)), qp, qc, gal, gp, gc)
    return _run(chunks, qp, qc, gal, n_g, max_rank)


def evaluate_llcm_features(qf, gf, q_pids, g_pids, q_cams, g_cams, max_rank: int = 20,
                           distance: str = "cosine", *, chunk_rows: int | None = None) -> dict:
    """:func:`evaluate_llcm` on features, chunked like :func:`evaluate_sysu_features`."""
    n_q, n_g = len(qf), len(gf)
    _check_sizes(n_q, n_g, max_rank)
    qp, gp = _ids(q_pids, "q_pids", n_q), _ids(g_pids, "g_pids", n_g)
    qc, gc = _ids(q_cams, "q_cams", n_q), _ids(g_cams, "g_cams", n_g)
    gal = _Gallery.build(gp, None)
    q, g_sorted = _prepare(qf, gf, distance, gal.order_t)
    chunks = _llcm_removal(_feature_chunks(q, g_sorted, distance, _chunk_rows(n_g, chunk_rows)), qp, qc, gal, gp, gc)
    return _run(chunks, qp, qc, gal, n_g, max_rank)

"""Test-only, deliberately plain re-statement of the reference AGW evaluation (eval_sysu /
eval_regdb of mangye16's Cross-Modal-Re-ID-baseline), one query at a time, used to check that
the vectorised metrics agree with it. Written from the reference's documented behaviour:

* rank the gallery with ``np.argsort`` of the distance row;
* SYSU: drop camera-2 items for camera-3 queries; CMC on the identity list after dropping and
  de-duplicating (first occurrence); the CMC sum (which includes zero rows of queries without a
  match) is divided by the number of valid queries;
* AP and INP on the kept list; INP = matches / (position of the last match + 1);
* queries without a match are skipped for AP/INP and the plain CMC.
"""
from __future__ import annotations

import numpy as np


def _ap_inp(hits: np.ndarray) -> tuple[float, float]:
    found = np.cumsum(hits)
    where = np.flatnonzero(hits)
    inp = found[where[-1]] / (where[-1] + 1.0)
    precision = found / np.arange(1, hits.size + 1)
    return float((precision * hits).sum() / hits.sum()), float(inp)


def reference_sysu(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20):
    n_q, n_g = distmat.shape
    max_rank = min(max_rank, n_g)
    id_cmc_sum = np.zeros(max_rank)
    aps, inps, n_valid = [], [], 0
    for i in range(n_q):
        order = np.argsort(distmat[i])
        keep = ~((q_cams[i] == 3) & (g_cams[order] == 2))
        ranked_ids = g_pids[order][keep]
        first_seen = np.unique(ranked_ids, return_index=True)[1]
        id_list = ranked_ids[np.sort(first_seen)]
        id_hits = np.cumsum(id_list == q_pids[i])[:max_rank]
        id_cmc_sum[: id_hits.size] += id_hits
        if id_hits.size < max_rank and id_hits.size:  # shorter list: the curve stays where it ended
            id_cmc_sum[id_hits.size:] += id_hits[-1]
        hits = (ranked_ids == q_pids[i]).astype(np.int64)
        if not hits.any():
            continue
        n_valid += 1
        ap, inp = _ap_inp(hits)
        aps.append(ap)
        inps.append(inp)
    assert n_valid > 0
    return id_cmc_sum / n_valid, float(np.mean(aps)), float(np.mean(inps))


def reference_regdb(distmat, q_pids, g_pids, max_rank=20):
    n_q, n_g = distmat.shape
    max_rank = min(max_rank, n_g)
    cmc_sum = np.zeros(max_rank)
    aps, inps = [], []
    for i in range(n_q):
        order = np.argsort(distmat[i])
        hits = (g_pids[order] == q_pids[i]).astype(np.int64)
        if not hits.any():
            continue
        cmc_sum += np.minimum(np.cumsum(hits), 1)[:max_rank]
        ap, inp = _ap_inp(hits)
        aps.append(ap)
        inps.append(inp)
    assert aps
    return cmc_sum / len(aps), float(np.mean(aps)), float(np.mean(inps))

"""Benchmark of mace_core.metrics against a straightforward per-query NumPy loop.

    python benchmarks/bench_metrics.py sysu      # 3,803 x 301 distance matrix, realistic ids/cams
    python benchmarks/bench_metrics.py large     # 10,000 x 100,000 x 2,048 features (chunked distance)
    python benchmarks/bench_metrics.py large4096 # the same at 4,096-d, the paper model's retrieval feature
    python benchmarks/bench_metrics.py rerank    # k-reciprocal re-ranking: SYSU all-search, 10 trials

Each case prints its figures as one JSON line; ``large`` and ``rerank`` report the process's peak
RSS (run each in its own process). Threads: torch/BLAS use every visible core; pin with ``taskset -c 0,1``.
"""
from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np
import torch

from mace_core.metrics import evaluate_sysu, evaluate_sysu_features


def loop_sysu(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20):
    """The comparator: one query at a time, sorting its row (stable), same rules and output."""
    n_g = distmat.shape[1]
    max_rank = min(max_rank, n_g)
    cmc = np.zeros(max_rank)
    aps, inps = [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((q_cams[i] == 3) & (g_cams[order] == 2))
        ids = g_pids[order][keep]
        hits = ids == q_pids[i]
        if not hits.any():
            continue
        _, first = np.unique(ids, return_index=True)
        id_rank = int(np.flatnonzero(ids[np.sort(first)] == q_pids[i])[0])
        cmc[id_rank:] += 1 if id_rank < max_rank else 0
        pos = np.flatnonzero(hits) + 1.0
        aps.append(float(np.mean(np.arange(1, pos.size + 1) / pos)))
        inps.append(pos.size / pos[-1])
    return {"cmc": cmc / len(aps), "mAP": float(np.mean(aps)), "mINP": float(np.mean(inps))}


def _sysu_like(rng, n_ids, q_per_id_cam, g_per_id_cam, drop=0.0):
    ids = np.arange(1, n_ids + 1)
    g = [(p, c) for p in ids for c in (1, 2, 4, 5) if rng.random() >= drop for _ in range(g_per_id_cam)]
    q = [(p, c) for p in ids for c in (3, 6) for _ in range(q_per_id_cam)]
    g_pids, g_cams = (np.array(x) for x in zip(*g))
    q_pids, q_cams = (np.array(x) for x in zip(*q))
    return q_pids, q_cams, g_pids, g_cams


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def case_sysu(repeats=7):
    rng = np.random.default_rng(0)
    q_pids, q_cams, g_pids, g_cams = _sysu_like(rng, 96, 20, 1, drop=0.216)
    q_pids, q_cams = q_pids[:3803], q_cams[:3803]
    g_pids, g_cams = g_pids[:301], g_cams[:301]
    d = rng.random((q_pids.size, g_pids.size)).astype(np.float32)
    t_vec, ours = _best(lambda: evaluate_sysu(d, q_pids, g_pids, q_cams, g_cams), repeats)
    t_loop, ref = _best(lambda: loop_sysu(d, q_pids, g_pids, q_cams, g_cams), max(1, repeats // 2))
    equal = bool(np.allclose(ours["cmc"], ref["cmc"], atol=1e-9) and abs(ours["mAP"] - ref["mAP"]) < 1e-9
                 and abs(ours["mINP"] - ref["mINP"]) < 1e-9)
    return {"case": "sysu", "shape": list(d.shape), "vectorised_s": t_vec, "loop_s": t_loop,
            "speedup": t_loop / t_vec, "equal": equal, "threads": torch.get_num_threads()}


def case_large(n_loop=200, dim=2048):
    rng = np.random.default_rng(0)
    q_pids, q_cams, g_pids, g_cams = _sysu_like(rng, 5000, 1, 5)        # 10,000 queries, 100,000 gallery
    centres = rng.standard_normal((5000, dim), dtype=np.float32)
    noise = 4.0     # per-dimension noise vs unit centres: moderate accuracy, like a real model
    gf = centres[g_pids - 1]
    for lo in range(0, gf.shape[0], 10000):   # in blocks: keep the set-up's own peak memory low
        gf[lo:lo + 10000] += rng.standard_normal((min(10000, gf.shape[0] - lo), dim), dtype=np.float32) * noise
    qf = centres[q_pids - 1] + rng.standard_normal((q_pids.size, dim), dtype=np.float32) * noise
    del centres
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    ours = evaluate_sysu_features(qf, gf, q_pids, g_pids, q_cams, g_cams)
    t_vec = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the loop on a sample of queries (same distances), extrapolated; equality checked on the sample
    sample = rng.choice(q_pids.size, n_loop, replace=False)
    qn = qf[sample] / np.linalg.norm(qf[sample], axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    d = -(qn @ gn.T)
    t = time.perf_counter()
    ref = loop_sysu(d, q_pids[sample], g_pids, q_cams[sample], g_cams)
    t_loop = (time.perf_counter() - t) * q_pids.size / n_loop
    sub = evaluate_sysu(d, q_pids[sample], g_pids, q_cams[sample], g_cams)
    equal = bool(np.allclose(sub["cmc"], ref["cmc"], atol=1e-9) and abs(sub["mAP"] - ref["mAP"]) < 1e-9)
    return {"case": "large", "queries": int(q_pids.size), "gallery": int(g_pids.size), "dim": dim,
            "vectorised_s": t_vec, "peak_rss_mb": peak, "rss_before_eval_mb": rss_before,
            "loop_rank_only_extrapolated_s": t_loop, "equal_on_sample": equal,
            "rank1": float(ours["cmc"][0]), "mAP": ours["mAP"], "threads": torch.get_num_threads()}


def case_rerank(trials=10, dim=2048):
    """Re-ranking on the full SYSU-MM01 all-search shape: 3,803 queries against ten 301-image
    galleries (n = q + g = 4,104 per trial), 2,048-d features; plus the time to refuse 10k x 100k."""
    from mace_core.errors import MaceError
    from mace_core.rerank import rerank_distance, rerank_memory_bytes

    rng = np.random.default_rng(0)
    q_pids, q_cams, g_pids, g_cams = _sysu_like(rng, 96, 20, 3, drop=0.216)
    q_pids, q_cams = q_pids[:3803], q_cams[:3803]
    centres = rng.standard_normal((97, dim), dtype=np.float32)
    noise = 4.0     # per-dimension noise vs unit centres: Rank-1 about 0.5, like a real model
    qf = centres[q_pids] + rng.standard_normal((q_pids.size, dim), dtype=np.float32) * noise
    cand = centres[g_pids] + rng.standard_normal((g_pids.size, dim), dtype=np.float32) * noise
    # each trial: one candidate per (identity, camera), as the protocol picks (first 301 folders)
    folders: dict = {}
    for i, key in enumerate(zip(g_pids.tolist(), g_cams.tolist())):
        folders.setdefault(key, []).append(i)
    galleries = [np.array([rng.choice(v) for v in folders.values()])[:301] for _ in range(trials)]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    plain, rr, times = [], [], []
    for idx in galleries:
        plain.append(evaluate_sysu_features(qf, cand[idx], q_pids, g_pids[idx], q_cams, g_cams[idx]))
        t = time.perf_counter()
        d = rerank_distance(qf, cand[idx])
        times.append(time.perf_counter() - t)
        rr.append(evaluate_sysu(d, q_pids, g_pids[idx], q_cams, g_cams[idx]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    try:
        rerank_distance(np.zeros((10_000, 1), np.float32), np.zeros((100_000, 1), np.float32))
        refused = False
    except MaceError:
        refused = True
    t_refuse = time.perf_counter() - t

    def mean(results, key):
        return float(np.mean([r["cmc"][0] if key == "rank1" else r[key] for r in results]))

    return {"case": "rerank", "queries": int(q_pids.size), "gallery": int(galleries[0].size), "trials": trials,
            "dim": dim, "rerank_s_per_trial": float(np.mean(times)), "rerank_s_total": float(np.sum(times)),
            "peak_rss_mb": peak, "rss_before_mb": rss_before,
            "estimate_mb": rerank_memory_bytes(q_pids.size, int(galleries[0].size), dim=dim) / 2 ** 20,
            "rank1_plain": mean(plain, "rank1"), "rank1_reranked": mean(rr, "rank1"),
            "mAP_plain": mean(plain, "mAP"), "mAP_reranked": mean(rr, "mAP"),
            "refused_10k_x_100k": refused, "refusal_s": t_refuse,
            "estimate_10k_x_100k_gb": rerank_memory_bytes(10_000, 100_000) / 2 ** 30,
            "threads": torch.get_num_threads()}


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "sysu"
    cases = {"sysu": case_sysu, "large": case_large, "rerank": case_rerank,
             # the retrieval feature of the two-stream ResNet-50 (concatenated 2 x 2,048) is 4,096-d
             "large4096": lambda: case_large(dim=4096)}
    if which not in cases:
        sys.exit(f"unknown case {which!r}: use one of {', '.join(cases)}")
    print(json.dumps(cases[which]()))


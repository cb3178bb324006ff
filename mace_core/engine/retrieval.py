"""The evaluation protocols on features: gallery trials, multi-query pools and fusion, summaries.

Everything here takes features and labels (no model); :mod:`mace_core.engine.evaluate` extracts
the features and calls these functions.

Multi-query pools (thesis experiment 4): the queries of each (identity, IR camera) are shuffled
with ``np.random.default_rng([seed, pid, cam])`` and cut into ``ceil(count / n)`` disjoint
pools of ``n`` consecutive images; a last, incomplete pool is topped up with images drawn
(without replacement) from the others of that group, so every pool has exactly ``n`` distinct
images and every image is used. A group with fewer than ``n`` images forms one pool of all of
them. Pools never mix cameras, so the SYSU cam3/cam2 rule stays defined; each pool is one query
carrying its identity and camera. ``n = 1`` is exactly the single-query protocol.

Fusion of a pool's features: ``avg`` (mean), ``max`` (element-wise maximum) or ``weighted``
(each member weighted by its cosine similarity to the pool mean, negative similarities clipped
to 0, weights normalised to sum 1; if they all vanish the plain mean is used). Features are
fused as the model returns them; the cosine distance normalises the fused vector afterwards.

Summaries: each trial's ``rank1/5/10/20``, ``mAP`` and ``mINP`` (fractions), then the mean and
the sample standard deviation (ddof=1; 0 for a single trial) over trials.

Search directions (:data:`DIRECTIONS`, the first of each dataset is its standard protocol):
SYSU-MM01 ``ir2rgb`` (IR queries, RGB gallery) and the non-standard reverse ``rgb2ir`` (RGB
queries, IR gallery; the same-room rule becomes "a camera-2 query ignores camera-3 items");
RegDB ``v2t`` and ``t2v``.

Re-ranking (``rerank`` = ``{"k1", "k2", "lambda"}``, off when None): each trial's query x gallery
distance is replaced by :func:`mace_core.rerank.rerank_distance`, then scored by the same protocol.
Such results say so: ``"reranked": true`` at the top of ``to_dict()``, in the protocol and in every
trial, and the table rows carry "re-ranked".
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mace_core.errors import MaceError
from mace_core.metrics import (
    SYSU_SAME_ROOM,
    evaluate_regdb,
    evaluate_regdb_features,
    evaluate_sysu,
    evaluate_sysu_features,
)

METRICS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")
LABELS = {"rank1": "R1", "rank5": "R5", "rank10": "R10", "rank20": "R20", "mAP": "mAP", "mINP": "mINP"}
FUSIONS = ("avg", "max", "weighted")
# Search directions each dataset defines; the first is its standard protocol (the default).
DIRECTIONS: dict[str, tuple[str, ...]] = {"sysu": ("ir2rgb", "rgb2ir"), "regdb": ("v2t", "t2v"),
                                          "llcm": ("ir2vis", "vis2ir")}   # LLCM: both are always evaluated
DIRECTION_NAMES = {"ir2rgb": "IR to RGB", "rgb2ir": "RGB to IR (non-standard)",
                   "v2t": "visible to thermal", "t2v": "thermal to visible"}
SYSU_REVERSE_SAME_ROOM = (SYSU_SAME_ROOM[1], SYSU_SAME_ROOM[0])   # RGB cam-2 queries ignore IR cam-3 items


def check_direction(dataset: str, direction: str | None) -> str:
    """``direction`` checked against the dataset's; None means the dataset's standard one."""
    valid = DIRECTIONS.get(dataset)
    if valid is None:
        raise MaceError(f"dataset {dataset!r} has no search directions defined",
                        f"use one of {', '.join(DIRECTIONS)}")
    if direction is None:
        return valid[0]
    if direction not in valid:
        raise MaceError(f"dataset {dataset} does not define the search direction {direction!r}",
                        f"use one of {', '.join(valid)} ({valid[0]} is the standard protocol), "
                        "or leave eval.direction unset for the standard one")
    return direction


def rerank_label(rerank: dict | None) -> str:
    """How re-ranked numbers are labelled in tables (empty when not re-ranked)."""
    if not rerank:
        return ""
    return f"re-ranked (k1={rerank['k1']}, k2={rerank['k2']}, λ={rerank['lambda']:g})"


def check_fusion(fusion: str) -> str:
    if fusion not in FUSIONS:
        raise MaceError(f"unknown fusion {fusion!r}", f"use one of {', '.join(FUSIONS)}")
    return fusion


def check_pool_size(n) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise MaceError(f"multi-query pool size must be an integer >= 1, got {n!r}", "use e.g. 1, 2, 5, 10")
    return int(n)


def metric_row(result: dict) -> dict[str, Any]:
    """A metrics dict (see :mod:`mace_core.metrics`) as ``rank1..rank20, mAP, mINP, cmc``."""
    cmc = np.asarray(result["cmc"], dtype=np.float64)
    row = {f"rank{k}": float(cmc[min(k, cmc.size) - 1]) for k in (1, 5, 10, 20)}
    row.update(mAP=float(result["mAP"]), mINP=float(result["mINP"]), cmc=cmc.tolist(),
               num_queries=int(result["num_queries"]), num_valid_queries=int(result["num_valid_queries"]))
    if "per_identity" in result:       # additive: Rank-1 hits per test identity (two-level bootstrap)
        row["per_identity"] = result["per_identity"]
    return row


@dataclass
class EvalResult:
    """Per-trial metrics plus their mean and standard deviation; ``to_dict()`` is JSON-able."""

    protocol: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)

    def _values(self, name: str) -> np.ndarray:
        return np.array([t[name] for t in self.trials], dtype=np.float64)

    @property
    def mean(self) -> dict[str, float]:
        return {m: float(self._values(m).mean()) for m in METRICS}

    @property
    def std(self) -> dict[str, float]:
        return {m: float(self._values(m).std(ddof=1)) if len(self.trials) > 1 else 0.0 for m in METRICS}

    @property
    def reranked(self) -> bool:
        return bool(self.protocol.get("reranked"))

    def to_dict(self) -> dict[str, Any]:
        mean, std = self.mean, self.std
        out = {"protocol": dict(self.protocol), "trials": [dict(t) for t in self.trials],
               "mean": mean, "std": std, "rank1": {"mean": mean["rank1"], "std": std["rank1"]},
               "reranked": self.reranked}
        if self.reranked:
            out["rerank"] = dict(self.protocol["rerank"])
            out["metrics_note"] = "re-ranked: " + rerank_label(self.protocol["rerank"])
        return out

    def table(self, name: str = "") -> str:
        return format_table({name or self.protocol.get("name", "result"): self})


def format_table(results: dict[str, EvalResult | dict]) -> str:
    """Plain-text table: one row per result, ``mean ± std`` in percent for R1..R20, mAP, mINP."""
    rows = []
    for name, res in results.items():
        d = res.to_dict() if isinstance(res, EvalResult) else res
        label = rerank_label(d.get("rerank") or d.get("protocol", {}).get("rerank")) if d.get("reranked") else ""
        rows.append([f"{name} [{label}]" if label else str(name)] + [f"{100 * d['mean'][m]:.2f} ± {100 * d['std'][m]:.2f}" for m in METRICS])
    header = [""] + [LABELS[m] for m in METRICS]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header] + rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- multi-query
def multi_query_pools(q_pids, q_cams, n: int, seed: int = 0) -> list[np.ndarray]:
    """Index arrays of the query pools (see the module docstring), in (pid, cam) order."""
    n = check_pool_size(n)
    q_pids, q_cams = np.asarray(q_pids, np.int64), np.asarray(q_cams, np.int64)
    if q_pids.shape != q_cams.shape:
        raise MaceError("query ids and cameras differ in length", "pass one id and one camera per query")
    pools: list[np.ndarray] = []
    keys = np.stack([q_pids, q_cams], 1)
    for pid, cam in np.unique(keys, axis=0):
        members = np.flatnonzero((q_pids == pid) & (q_cams == cam))
        members = members[np.random.default_rng([int(seed), int(pid), int(cam)]).permutation(members.size)]
        if members.size <= n:
            pools.append(np.sort(members))
            continue
        for start in range(0, members.size, n):
            pool = members[start:start + n]
            if pool.size < n:  # top up the last pool from the group's other images
                rest = members[:start]
                rng = np.random.default_rng([int(seed), int(pid), int(cam), 1])
                pool = np.concatenate([pool, rng.choice(rest, n - pool.size, replace=False)])
            pools.append(np.sort(pool))
    return pools


def fuse(features, pools: Iterable[np.ndarray], fusion: str = "avg") -> np.ndarray:
    """One fused feature per pool: ``avg``, ``max`` or ``weighted`` (module docstring)."""
    check_fusion(fusion)
    f = np.asarray(features, dtype=np.float32)
    out = []
    for pool in pools:
        x = f[pool]
        if fusion == "max":
            out.append(x.max(0))
            continue
        mean = x.mean(0)
        if fusion == "avg":
            out.append(mean)
            continue
        norms = np.linalg.norm(x, axis=1) * np.linalg.norm(mean)
        sim = np.where(norms > 0, x @ mean / np.maximum(norms, 1e-12), 0.0)
        w = np.clip(sim, 0.0, None)
        total = w.sum()
        out.append(mean if not np.isfinite(total) or total <= 1e-12 else (w / total) @ x)
    return np.stack(out).astype(np.float32)


def pooled_queries(qf, q_pids, q_cams, n: int | None, fusion: str = "avg", seed: int = 0):
    """``(features, pids, cams)`` of the (possibly multi-query) queries."""
    q_pids, q_cams = np.asarray(q_pids, np.int64), np.asarray(q_cams, np.int64)
    if n is None:
        return np.asarray(qf), q_pids, q_cams
    check_fusion(fusion)
    pools = multi_query_pools(q_pids, q_cams, n, seed)
    first = np.array([p[0] for p in pools], dtype=np.int64)
    return fuse(qf, pools, fusion), q_pids[first], q_cams[first]


# --------------------------------------------------------------------------- protocols
def _protocol(protocol: dict | None, rerank: dict | None) -> dict:
    out = dict(protocol or {})
    out["reranked"] = bool(rerank)
    if rerank:
        out["rerank"] = {"method": "k-reciprocal (Zhong et al., CVPR 2017)", **rerank}
    return out


def _reranked(qf, gf, distance: str, rerank: dict) -> np.ndarray:
    from mace_core.rerank import rerank_distance

    return rerank_distance(qf, gf, rerank["k1"], rerank["k2"], rerank["lambda"], distance)


def sysu_trials(qf, q_pids, q_cams, cand_f, cand_pids, cand_cams, galleries: dict[int, np.ndarray],
                distance: str = "cosine", max_rank: int = 20, protocol: dict | None = None,
                rerank: dict | None = None, same_room=SYSU_SAME_ROOM) -> EvalResult:
    """SYSU-MM01: the same queries against each trial's gallery (indices into the candidates,
    embedded once). ``same_room``: see :func:`mace_core.metrics.evaluate_sysu`."""
    if not galleries:
        raise MaceError("no gallery trials to evaluate", "use trials >= 1")
    cand_f = np.asarray(cand_f)
    cand_pids, cand_cams = np.asarray(cand_pids, np.int64), np.asarray(cand_cams, np.int64)
    result = EvalResult(_protocol(protocol, rerank))
    for trial, idx in galleries.items():
        idx = np.asarray(idx, np.int64)
        if idx.size == 0:
            raise MaceError(f"the gallery of trial {trial} is empty", "check the dataset's test images")
        if rerank:
            r = evaluate_sysu(_reranked(qf, cand_f[idx], distance, rerank), q_pids, cand_pids[idx], q_cams,
                              cand_cams[idx], max_rank=max_rank, same_room=same_room)
        else:
            r = evaluate_sysu_features(qf, cand_f[idx], q_pids, cand_pids[idx], q_cams, cand_cams[idx],
                                       max_rank=max_rank, distance=distance, same_room=same_room)
        result.trials.append({"trial": int(trial), "gallery_size": int(idx.size), **metric_row(r),
                              "reranked": bool(rerank)})
    return result


def regdb_trial(visible_f, visible_pids, thermal_f, thermal_pids, trial: int, direction: str = "v2t",
                distance: str = "cosine", max_rank: int = 20, protocol: dict | None = None,
                rerank: dict | None = None) -> EvalResult:
    """RegDB, one trial. ``v2t``: visible queries, thermal gallery; ``t2v`` ranks with the
    transposed distance of the same features (thermal queries, visible gallery)."""
    direction = check_direction("regdb", direction)
    qf, q_pids, gf, g_pids = ((visible_f, visible_pids, thermal_f, thermal_pids) if direction == "v2t"
                              else (thermal_f, thermal_pids, visible_f, visible_pids))
    if rerank:
        r = evaluate_regdb(_reranked(qf, gf, distance, rerank), q_pids, g_pids, max_rank)
    else:
        r = evaluate_regdb_features(qf, gf, q_pids, g_pids, max_rank, distance)
    result = EvalResult(_protocol(protocol, rerank))
    result.trials.append({"trial": int(trial), **metric_row(r), "reranked": bool(rerank)})
    return result


def combine_trials(results: list[EvalResult], protocol: dict | None = None) -> EvalResult:
    """One result holding the trials of several (e.g. the ten RegDB models)."""
    out = EvalResult(dict(protocol or (results[0].protocol if results else {})))
    for r in results:
        out.trials.extend(r.trials)
    return out


def pool_count(count: int, n: int) -> int:
    """How many pools a group of ``count`` queries yields for pool size ``n``."""
    return 1 if count <= n else math.ceil(count / n)


# --------------------------------------------------------------------------- LLCM (additive)
LLCM_VIS2IR = ("symmetric", "deen")


def llcm_trials(vis_f, vis_pids, vis_cams, nir_f, nir_pids, nir_cams, vis_galleries: dict[int, np.ndarray],
                nir_galleries: dict[int, np.ndarray], direction: str = "ir2vis", vis2ir: str = "symmetric",
                distance: str = "cosine", max_rank: int = 20, protocol: dict | None = None,
                query_f: dict[str, np.ndarray] | None = None, rerank: dict | None = None) -> EvalResult:
    """LLCM, one direction over the trials (every test image of each modality embedded once; the
    trial galleries are index arrays into them, see :func:`mace_core.data.llcm.gallery_indices`).

    ``ir2vis``: every NIR test image queries trial ``t``'s VIS gallery. ``vis2ir`` with
    ``vis2ir="symmetric"``: every VIS test image queries trial ``t``'s NIR gallery; with
    ``"deen"``: what DEEN's ``test.py`` computes for its VIS-to-IR setting (test_mode [2, 1]):
    trial ``t``'s sampled NIR images are ranked against every VIS test image (the sampled set is
    the probe side). ``query_f`` optionally replaces the query-side features per modality (e.g.
    occluded copies), keyed ``"vis"``/``"nir"``."""
    from mace_core.data.llcm import check_direction
    from mace_core.metrics import evaluate_llcm, evaluate_llcm_features

    check_direction(direction)
    if vis2ir not in LLCM_VIS2IR:
        raise MaceError(f"unknown LLCM VIS->IR setting {vis2ir!r}", f"use one of {', '.join(LLCM_VIS2IR)}")
    feats = {"vis": np.asarray(vis_f), "nir": np.asarray(nir_f)}
    pids = {"vis": np.asarray(vis_pids, np.int64), "nir": np.asarray(nir_pids, np.int64)}
    cams = {"vis": np.asarray(vis_cams, np.int64), "nir": np.asarray(nir_cams, np.int64)}
    qfeats = {**feats, **(query_f or {})}
    galleries = vis_galleries if direction == "ir2vis" else nir_galleries
    if not galleries:
        raise MaceError("no gallery trials to evaluate", "use trials >= 1")
    q_mod, g_mod = ("nir", "vis") if direction == "ir2vis" else ("vis", "nir")
    result = EvalResult(_protocol(protocol, rerank))

    def score(qf, gf, qp, gp, qc, gc):   # re-ranked: the same protocol on the re-ranked distance
        if rerank:
            return evaluate_llcm(_reranked(qf, gf, distance, rerank), qp, gp, qc, gc, max_rank=max_rank)
        return evaluate_llcm_features(qf, gf, qp, gp, qc, gc, max_rank=max_rank, distance=distance)

    for trial, idx in galleries.items():
        idx = np.asarray(idx, np.int64)
        if idx.size == 0:
            raise MaceError(f"the LLCM {g_mod.upper()} gallery of trial {trial} is empty",
                            "check the test split (idx/test_id.txt and the test folders)")
        if direction == "vis2ir" and vis2ir == "deen":   # sampled NIR images are the probes
            r = score(qfeats["nir"][idx], feats["vis"], pids["nir"][idx], pids["vis"], cams["nir"][idx], cams["vis"])
            sizes = {"query_size": int(idx.size), "gallery_size": int(pids["vis"].size)}
        else:
            r = score(qfeats[q_mod], feats[g_mod][idx], pids[q_mod], pids[g_mod][idx], cams[q_mod], cams[g_mod][idx])
            sizes = {"query_size": int(pids[q_mod].size), "gallery_size": int(idx.size)}
        result.trials.append({"trial": int(trial), **sizes, **metric_row(r), "reranked": bool(rerank)})
    return result

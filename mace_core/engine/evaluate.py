"""Model-level evaluation: embed the test images with a model, then run the protocols.

The model contract: ``model.eval()`` and ``model.extract(x, modality) -> (B, D)`` with ``x`` a
normalised ``(B, 3, H, W)`` float batch and ``modality`` ``"rgb"`` or ``"ir"``.

SYSU-MM01: the IR queries and *all* RGB test candidates of the mode are embedded once; each
trial's gallery is a subset of the candidate features (no re-extraction per trial). Test-time
occlusion (if any) is applied to the IR queries only, image ``i`` with the generator
``(occlusion_seed, i)``, before normalisation. RegDB: one trial (one model); occlusion applies
to that direction's query images.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mace_core.data.cache import cached_images
from mace_core.data.datasets import to_chw
from mace_core.data.transforms import test_transform
from mace_core.engine.retrieval import (
    EvalResult,
    check_fusion,
    check_pool_size,
    pooled_queries,
    regdb_trial,
    sysu_trials,
)
from mace_core.errors import MaceError
from mace_core.metrics import check_distance
from mace_core.occlusion import DEFAULT_FILL, check_fill, check_kind, image_rng, occlude

MODALITIES = ("rgb", "ir")


@torch.inference_mode()
def extract_features(model, images_uint8, modality: str, transform: Callable, batch_size: int = 128,
                     device="cpu", flip: bool = False, occlusion: str | None = None,
                     occlusion_fill: str = DEFAULT_FILL, occlusion_seed: int = 0) -> np.ndarray:
    """``(N, D)`` float32 features of ``images_uint8`` (``(N, H, W, 3)`` uint8, e.g. a cache memmap).

    ``flip`` averages the features of the image and its horizontal mirror.
    """
    if modality not in MODALITIES:
        raise MaceError(f"unknown modality {modality!r}", "use 'rgb' or 'ir'")
    if occlusion is not None:
        check_kind(occlusion)
        check_fill(occlusion_fill)
    if int(batch_size) < 1:
        raise MaceError(f"batch size must be >= 1, got {batch_size}", "use e.g. 128")
    n = len(images_uint8)
    if n == 0:
        raise MaceError(f"no {modality} images to embed", "check the dataset split")
    model.eval()
    chunks = []
    for lo in range(0, n, int(batch_size)):
        batch = []
        for i in range(lo, min(lo + int(batch_size), n)):
            img = to_chw(images_uint8[i])
            if occlusion is not None:
                img = occlude(img, occlusion, occlusion_fill, rng=image_rng(occlusion_seed, i))
            batch.append(transform(img))
        x = torch.stack(batch).to(device)
        f = model.extract(x, modality).float()
        if flip:
            f = (f + model.extract(torch.flip(x, dims=[3]), modality).float()) / 2
        chunks.append(f.cpu())
    return torch.cat(chunks).numpy()


def _labels(records) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([r.pid for r in records], np.int64), np.array([r.cam for r in records], np.int64))


def evaluate_sysu_model(model, root, size, mode: str = "all", gallery: str = "agw", perm_file=None, shots: int = 1,
                        trials: int = 10, distance: str = "cosine", flip: bool = False,
                        occlusion: str | None = None, occlusion_fill: str = DEFAULT_FILL, occlusion_seed: int = 0,
                        multi_query: int | None = None, fusion: str = "avg", pool_seed: int = 0,
                        cache_dir=None, batch_size: int = 128, device="cpu",
                        feature_cache: dict | None = None) -> EvalResult:
    """SYSU-MM01 ``mode`` search over gallery trials ``0 .. trials-1`` (see module docstring).

    ``feature_cache``: a dict owned by the caller for *one* model; features are kept in it per
    embedding setting, so a sweep over pool sizes and fusions (experiment 4) embeds the images once."""
    from mace_core.data.sysu import gallery_candidates, gallery_indices, query_set

    check_distance(distance)
    check_fusion(fusion)
    if multi_query is not None:
        check_pool_size(multi_query)
    if occlusion is not None:
        check_kind(occlusion)
        check_fill(occlusion_fill)
    if not isinstance(trials, (int, np.integer)) or trials < 1:
        raise MaceError(f"trials must be an integer >= 1, got {trials!r}", "use 10 (the protocol) or fewer for a quick look")
    # Gallery picks first: a bad permutation file fails before any image is embedded.
    galleries = {t: gallery_indices(root, mode, t, shots, gallery, perm_file) for t in range(int(trials))}
    queries, candidates = query_set(root, mode), gallery_candidates(root, mode)
    if not queries:
        raise MaceError(f"no IR query images under {root}", "check the test split (exp/test_id.txt)")
    if not candidates:
        raise MaceError(f"no RGB gallery images under {root} for mode {mode!r}", "check the test split")
    transform = test_transform(size)
    q_img = cached_images(queries, size, cache_dir, desc="sysu-query")
    g_img = cached_images(candidates, size, cache_dir, desc=f"sysu-gallery-{mode}")
    key = (str(root), tuple(size), mode, bool(flip), occlusion, occlusion_fill, occlusion_seed, int(batch_size))
    if feature_cache is not None and key in feature_cache:
        qf, gf = feature_cache[key]
    else:
        qf = extract_features(model, q_img, "ir", transform, batch_size, device, flip, occlusion, occlusion_fill,
                              occlusion_seed)
        gf = extract_features(model, g_img, "rgb", transform, batch_size, device, flip)
        if feature_cache is not None:
            feature_cache[key] = (qf, gf)
    q_pids, q_cams = _labels(queries)
    g_pids, g_cams = _labels(candidates)
    qf, q_pids, q_cams = pooled_queries(qf, q_pids, q_cams, multi_query, fusion, pool_seed)
    protocol = {"dataset": "sysu", "mode": mode, "gallery": gallery, "shots": int(shots), "trials": int(trials),
                "distance": distance, "flip": bool(flip), "occlusion": occlusion,
                "occlusion_fill": occlusion_fill if occlusion else None, "occlusion_seed": occlusion_seed if occlusion else None,
                "multi_query": multi_query, "fusion": fusion if multi_query else None,
                # images fused per query: below n where an (identity, camera) group has fewer than n
                "mean_pool_size": mean_pool_size(queries, multi_query),
                "num_query_images": len(queries), "num_candidates": len(candidates)}
    return sysu_trials(qf, q_pids, q_cams, gf, g_pids, g_cams, galleries, distance, protocol=protocol)


def mean_pool_size(queries, n: int | None) -> float:
    """Mean images per fused query: each group of ``c`` images gives pools of ``min(n, c)``."""
    if not n:
        return 1.0
    groups: dict[tuple[int, int], int] = {}
    for r in queries:
        groups[(r.pid, r.cam)] = groups.get((r.pid, r.cam), 0) + 1
    pools = [(c + n - 1) // n if c >= n else 1 for c in groups.values()]
    return sum(p * min(n, c) for p, c in zip(pools, groups.values())) / sum(pools)


def evaluate_regdb_model(model, root, size, trial: int = 1, direction: str = "v2t", distance: str = "cosine",
                         flip: bool = False, occlusion: str | None = None, occlusion_fill: str = DEFAULT_FILL,
                         occlusion_seed: int = 0, cache_dir=None, batch_size: int = 128, device="cpu",
                         **_unused) -> EvalResult:
    """RegDB test split of ``trial``; ``direction`` v2t (visible queries) or t2v (thermal queries)."""
    from mace_core.data.regdb import regdb_split

    check_distance(distance)
    if direction not in ("v2t", "t2v"):
        raise MaceError(f"unknown RegDB direction {direction!r}", "use v2t (visible to thermal) or t2v")
    visible, thermal = regdb_split(root, trial, split="test")
    transform = test_transform(size)
    v_img = cached_images(visible, size, cache_dir, desc=f"regdb-visible-test-{trial}")
    t_img = cached_images(thermal, size, cache_dir, desc=f"regdb-thermal-test-{trial}")
    occ_v = occlusion if direction == "v2t" else None
    occ_t = occlusion if direction == "t2v" else None
    vf = extract_features(model, v_img, "rgb", transform, batch_size, device, flip, occ_v, occlusion_fill, occlusion_seed)
    tf = extract_features(model, t_img, "ir", transform, batch_size, device, flip, occ_t, occlusion_fill, occlusion_seed)
    protocol = {"dataset": "regdb", "trial": int(trial), "direction": direction, "distance": distance,
                "flip": bool(flip), "occlusion": occlusion}
    return regdb_trial(vf, _labels(visible)[0], tf, _labels(thermal)[0], trial, direction, distance,
                       protocol=protocol)


# --------------------------------------------------------------------------- LLCM (additive)
class LLCMResult:
    """Both LLCM directions of one model. ``to_dict()`` is the IR->VIS result's (so tables, the
    headline and model selection read IR->VIS Rank-1, as for SYSU-MM01) plus ``directions``:
    ``{"ir2vis": ..., "vis2ir": ...}``, each a full :class:`EvalResult` dict."""

    def __init__(self, ir2vis: EvalResult, vis2ir: EvalResult):
        self.ir2vis, self.vis2ir = ir2vis, vis2ir

    def to_dict(self) -> dict:
        out = self.ir2vis.to_dict()
        out["directions"] = {"ir2vis": self.ir2vis.to_dict(), "vis2ir": self.vis2ir.to_dict()}
        return out

    def table(self) -> str:
        from mace_core.engine.retrieval import format_table

        return format_table({"LLCM IR->VIS": self.ir2vis, "LLCM VIS->IR": self.vis2ir})


def evaluate_llcm_model(model, root, size, trials: int = 10, distance: str = "cosine", flip: bool = False,
                        occlusion: str | None = None, occlusion_fill: str = DEFAULT_FILL, occlusion_seed: int = 0,
                        vis2ir: str = "symmetric", cache_dir=None, batch_size: int = 128, device="cpu",
                        **_unused) -> LLCMResult:
    """LLCM, both directions over gallery trials ``0 .. trials-1`` (the reference runs 10).

    Every VIS test image (cameras 1-9) and every NIR test image (cameras 1, 2, 4-9) is embedded
    once; each trial's galleries are subsets (see :mod:`mace_core.data.llcm`). Test-time
    occlusion, if any, applies to the query images of each direction (image ``i`` of a modality
    with the generator ``(occlusion_seed, i)``); galleries stay clean."""
    from mace_core.data import llcm
    from mace_core.engine.retrieval import LLCM_VIS2IR, llcm_trials

    check_distance(distance)
    if vis2ir not in LLCM_VIS2IR:
        raise MaceError(f"unknown LLCM VIS->IR setting {vis2ir!r}", f"use one of {', '.join(LLCM_VIS2IR)}")
    if occlusion is not None:
        check_kind(occlusion)
        check_fill(occlusion_fill)
    if not isinstance(trials, (int, np.integer)) or isinstance(trials, bool) or trials < 1:
        raise MaceError(f"trials must be an integer >= 1, got {trials!r}", "use 10 (the protocol) or fewer for a quick look")
    records = {m: llcm.test_images(root, m) for m in llcm.MODALITIES}
    for m, recs in records.items():
        if not recs:
            raise MaceError(f"no LLCM {m.upper()} test images under {root}",
                            "check idx/test_id.txt against the test_vis/ and test_nir/ folders (`mace data check`)")
    galleries = {m: {t: llcm.gallery_indices(records[m], t) for t in range(int(trials))} for m in llcm.MODALITIES}
    transform = test_transform(size)
    modality = {"vis": "rgb", "nir": "ir"}
    images = {m: cached_images(records[m], size, cache_dir, desc=f"llcm-test-{m}") for m in llcm.MODALITIES}
    feats = {m: extract_features(model, images[m], modality[m], transform, batch_size, device, flip)
             for m in llcm.MODALITIES}
    query_f = None
    if occlusion is not None:
        query_f = {m: extract_features(model, images[m], modality[m], transform, batch_size, device, flip, occlusion,
                                       occlusion_fill, occlusion_seed) for m in llcm.MODALITIES}
    labels = {m: _labels(records[m]) for m in llcm.MODALITIES}
    results = {}
    for direction in llcm.DIRECTIONS:
        protocol = {"dataset": "llcm", "direction": direction, "trials": int(trials), "distance": distance,
                    "flip": bool(flip), "occlusion": occlusion,
                    "occlusion_fill": occlusion_fill if occlusion else None,
                    "occlusion_seed": occlusion_seed if occlusion else None,
                    "vis2ir": vis2ir if direction == "vis2ir" else None,
                    "num_vis_test_images": len(records["vis"]), "num_nir_test_images": len(records["nir"])}
        results[direction] = llcm_trials(feats["vis"], *labels["vis"], feats["nir"], *labels["nir"],
                                         galleries["vis"], galleries["nir"], direction, vis2ir, distance,
                                         protocol=protocol, query_f=query_f)
    return LLCMResult(results["ir2vis"], results["vis2ir"])

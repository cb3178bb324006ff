"""Model-level evaluation: embed the test images with a model, then run the protocols.

The model contract: ``model.eval()`` and ``model.extract(x, modality) -> (B, D)`` with ``x`` a
normalised ``(B, 3, H, W)`` float batch and ``modality`` ``"rgb"`` or ``"ir"``.

SYSU-MM01: the IR queries and *all* RGB test candidates of the mode are embedded once; each
trial's gallery is a subset of the candidate features (no re-extraction per trial). Test-time
occlusion (if any) is applied to the IR queries only, image ``i`` with the generator
``(occlusion_seed, i)``, before normalisation. RegDB: one trial (one model); occlusion applies
to that direction's query images.

Directions (see :data:`mace_core.engine.retrieval.DIRECTIONS`): SYSU ``ir2rgb`` is the standard
protocol; ``rgb2ir`` swaps the roles -- the RGB images of the mode's cameras are the queries
(occluded, if asked), each trial's gallery is one IR image per identity and IR camera drawn by
the same seeded rule, and a camera-2 query ignores camera-3 items. ``rerank``: the
``{"k1", "k2", "lambda"}`` of :func:`mace_core.rerank.rerank_settings`, or None (off).

Embedding runs at training speed: the images come from the pre-resized cache through a DataLoader
(workers, pinned memory on a GPU) as uint8 batches, are normalised on the device and go through the
model under the training's autocast and memory format; features stay on the device until the
protocols need them (one copy to the host per embedding). On a CPU with AMP off this computes exactly
what normalising and embedding each image in turn does (tests/test_evaluate.py compares the two).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from mace_core.data.cache import cached_images
from mace_core.data.datasets import to_chw
from mace_core.data.transforms import test_transform
from mace_core.engine.retrieval import (
    SYSU_REVERSE_SAME_ROOM,
    EvalResult,
    check_direction,
    check_fusion,
    check_pool_size,
    pooled_queries,
    regdb_trial,
    sysu_trials,
)
from mace_core.errors import MaceError
from mace_core.metrics import SYSU_SAME_ROOM, check_distance
from mace_core.occlusion import DEFAULT_FILL, check_fill, check_kind, image_rng, occlude

MODALITIES = ("rgb", "ir")


class EvalImages(Dataset):
    """Image ``i`` of a uint8 ``(N, H, W, 3)`` array (e.g. a cache memmap) as a CHW tensor, test-time
    occlusion applied with the generator ``(occlusion_seed, i)``, then ``prepare`` (the transform's
    uint8 step: the device normalises whole batches) or, for any other transform, the transform itself.
    A memory-mapped array travels to loader workers as its file name, not as a copy of its pixels."""

    def __init__(self, images, prepare: Callable, occlusion: str | None = None, occlusion_fill: str = DEFAULT_FILL,
                 occlusion_seed: int = 0):
        self.images, self.prepare = images, prepare
        self.occlusion, self.occlusion_fill, self.occlusion_seed = occlusion, occlusion_fill, occlusion_seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = to_chw(self.images[i])
        if self.occlusion is not None:
            img = occlude(img, self.occlusion, self.occlusion_fill, rng=image_rng(self.occlusion_seed, i))
        return self.prepare(img)

    def __getstate__(self):
        state = dict(self.__dict__)
        name = getattr(self.images, "filename", None)
        if name is not None and self.images.flags.c_contiguous:
            try:
                whole = np.load(name, mmap_mode="r")
            except (OSError, ValueError):
                whole = None
            if whole is not None and whole.shape == self.images.shape and whole.dtype == self.images.dtype:
                state["images"] = ("npy-memmap", str(name))
        return state

    def __setstate__(self, state):
        images = state["images"]
        if isinstance(images, tuple) and images[0] == "npy-memmap":
            state["images"] = np.load(images[1], mmap_mode="r")
        self.__dict__.update(state)


@torch.inference_mode()
def embed_images(model, images_uint8, modality: str, transform: Callable, batch_size: int = 128,
                 device="cpu", flip: bool = False, occlusion: str | None = None,
                 occlusion_fill: str = DEFAULT_FILL, occlusion_seed: int = 0, workers: int = 0,
                 pin_memory: bool | None = None, amp: torch.dtype | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """``(N, D)`` float32 features of ``images_uint8`` (``(N, H, W, 3)`` uint8, e.g. a cache memmap), left
    on ``device``.

    Images come through a DataLoader (``workers`` processes, pinned memory when the device is a GPU
    unless ``pin_memory`` says otherwise) as uint8 batches; the device normalises each batch
    (:func:`mace_core.data.transforms.normalize_batch`) and runs the model under ``amp`` autocast with
    ``memory_format``, as the trainer does. ``flip`` averages the features of the image and its
    horizontal mirror.
    """
    from torch.utils.data import DataLoader

    from mace_core.data.transforms import normalize_batch
    from mace_core.engine.device import autocast

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
    device = torch.device(device)
    prepare = getattr(transform, "prepare", None)
    dataset = EvalImages(images_uint8, prepare or transform, occlusion, occlusion_fill, occlusion_seed)
    pin = device.type == "cuda" if pin_memory is None else bool(pin_memory and device.type == "cuda")
    loader = DataLoader(dataset, batch_size=int(batch_size), shuffle=False, num_workers=max(0, int(workers)),
                        pin_memory=pin, prefetch_factor=4 if workers > 0 else None)
    model.eval()
    chunks = []
    for x in loader:
        if prepare is not None:  # uint8 from the workers, normalised where it lands
            x = normalize_batch(x, device, memory_format)
        else:
            x = x.to(device, non_blocking=True, memory_format=memory_format)
        with autocast(device, amp):
            f = model.extract(x, modality).float()
            if flip:
                f = (f + model.extract(torch.flip(x, dims=[3]), modality).float()) / 2
        chunks.append(f)
    return torch.cat(chunks)


def extract_features(model, images_uint8, modality: str, transform: Callable, batch_size: int = 128,
                     device="cpu", flip: bool = False, occlusion: str | None = None,
                     occlusion_fill: str = DEFAULT_FILL, occlusion_seed: int = 0, **loading) -> np.ndarray:
    """:func:`embed_images` as a host ``(N, D)`` float32 array (``loading``: its workers, pin_memory, amp,
    memory_format)."""
    return embed_images(model, images_uint8, modality, transform, batch_size, device, flip, occlusion,
                        occlusion_fill, occlusion_seed, **loading).cpu().numpy()


def _host(features) -> np.ndarray:
    """Device features as the host array the protocols take (one copy, when a trial needs them)."""
    return features.cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)


def _labels(records) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([r.pid for r in records], np.int64), np.array([r.cam for r in records], np.int64))


def evaluate_sysu_model(model, root, size, mode: str = "all", gallery: str = "agw", perm_file=None, shots: int = 1,
                        trials: int = 10, distance: str = "cosine", flip: bool = False,
                        occlusion: str | None = None, occlusion_fill: str = DEFAULT_FILL, occlusion_seed: int = 0,
                        multi_query: int | None = None, fusion: str = "avg", pool_seed: int = 0,
                        cache_dir=None, batch_size: int = 128, device="cpu",
                        feature_cache: dict | None = None, direction: str | None = None,
                        rerank: dict | None = None, **loading) -> EvalResult:
    """SYSU-MM01 ``mode`` search over gallery trials ``0 .. trials-1`` (see module docstring).

    ``feature_cache``: a dict owned by the caller for *one* model; features are kept in it (on the
    device) per embedding setting, so a sweep over pool sizes and fusions (experiment 4) embeds the
    images once. ``loading``: :func:`embed_images`' workers, pin_memory, amp and memory_format."""
    from mace_core.data.sysu import gallery_candidates, gallery_indices, query_set

    direction = check_direction("sysu", direction)
    reverse = direction == "rgb2ir"
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
    ir_records, rgb_records = query_set(root, mode), gallery_candidates(root, mode)
    galleries = {t: gallery_indices(root, mode, t, shots, gallery, perm_file, modality="ir" if reverse else "rgb",
                                    candidates=ir_records if reverse else rgb_records)
                 for t in range(int(trials))}
    if not ir_records:
        raise MaceError(f"no IR images of the test identities under {root}", "check the test split (exp/test_id.txt)")
    if not rgb_records:
        raise MaceError(f"no RGB images of the test identities under {root} for mode {mode!r}", "check the test split")
    transform = test_transform(size)
    ir_img = cached_images(ir_records, size, cache_dir, desc="sysu-query")
    rgb_img = cached_images(rgb_records, size, cache_dir, desc=f"sysu-gallery-{mode}")
    queries, candidates = (rgb_records, ir_records) if reverse else (ir_records, rgb_records)
    q_img, g_img = (rgb_img, ir_img) if reverse else (ir_img, rgb_img)
    q_mod, g_mod = ("rgb", "ir") if reverse else ("ir", "rgb")
    # Query and gallery features are cached apart: occlusion touches the queries only, so a sweep over
    # occlusion types (experiment 6) embeds the gallery once per model.
    setting = (str(root), tuple(size), mode, bool(flip), int(batch_size),
               str(loading.get("amp")), str(loading.get("memory_format", torch.contiguous_format)), direction)
    q_key = ("query",) + setting + (occlusion, occlusion_fill if occlusion else None, occlusion_seed if occlusion else None)
    g_key = ("gallery",) + setting
    cache = feature_cache if feature_cache is not None else {}
    if q_key not in cache:
        cache[q_key] = embed_images(model, q_img, q_mod, transform, batch_size, device, flip, occlusion, occlusion_fill,
                                    occlusion_seed, **loading)
    if g_key not in cache:
        cache[g_key] = embed_images(model, g_img, g_mod, transform, batch_size, device, flip, **loading)
    qf, gf = cache[q_key], cache[g_key]
    qf, gf = _host(qf), _host(gf)
    q_pids, q_cams = _labels(queries)
    g_pids, g_cams = _labels(candidates)
    qf, q_pids, q_cams = pooled_queries(qf, q_pids, q_cams, multi_query, fusion, pool_seed)
    protocol = {"dataset": "sysu", "mode": mode, "direction": direction, "gallery": gallery, "shots": int(shots),
                "trials": int(trials), "distance": distance, "flip": bool(flip), "occlusion": occlusion,
                "occlusion_fill": occlusion_fill if occlusion else None, "occlusion_seed": occlusion_seed if occlusion else None,
                "multi_query": multi_query, "fusion": fusion if multi_query else None,
                # images fused per query: below n where an (identity, camera) group has fewer than n
                "mean_pool_size": mean_pool_size(queries, multi_query),
                "num_query_images": len(queries), "num_candidates": len(candidates)}
    if reverse:
        protocol["non_standard"] = "RGB queries against an IR gallery (not the SYSU-MM01 protocol)"
    return sysu_trials(qf, q_pids, q_cams, gf, g_pids, g_cams, galleries, distance, protocol=protocol,
                       rerank=rerank, same_room=SYSU_REVERSE_SAME_ROOM if reverse else SYSU_SAME_ROOM)


def mean_pool_size(queries, n: int | None) -> float:
    """Mean images per fused query: each group of ``c`` images gives pools of ``min(n, c)``."""
    if not n:
        return 1.0
    groups: dict[tuple[int, int], int] = {}
    for r in queries:
        groups[(r.pid, r.cam)] = groups.get((r.pid, r.cam), 0) + 1
    pools = [(c + n - 1) // n if c >= n else 1 for c in groups.values()]
    return sum(p * min(n, c) for p, c in zip(pools, groups.values())) / sum(pools)


def evaluate_regdb_model(model, root, size, trial: int = 1, direction: str | None = None, distance: str = "cosine",
                         flip: bool = False, occlusion: str | None = None, occlusion_fill: str = DEFAULT_FILL,
                         occlusion_seed: int = 0, cache_dir=None, batch_size: int = 128, device="cpu",
                         rerank: dict | None = None, workers: int = 0, pin_memory: bool | None = None,
                         amp: torch.dtype | None = None, memory_format: torch.memory_format = torch.contiguous_format,
                         **_unused) -> EvalResult:
    """RegDB test split of ``trial``; ``direction`` v2t (visible queries, the default) or t2v (thermal queries)."""
    from mace_core.data.regdb import regdb_split

    check_distance(distance)
    direction = check_direction("regdb", direction)
    visible, thermal = regdb_split(root, trial, split="test")
    transform = test_transform(size)
    v_img = cached_images(visible, size, cache_dir, desc=f"regdb-visible-test-{trial}")
    t_img = cached_images(thermal, size, cache_dir, desc=f"regdb-thermal-test-{trial}")
    occ_v = occlusion if direction == "v2t" else None
    occ_t = occlusion if direction == "t2v" else None
    loading = {"workers": workers, "pin_memory": pin_memory, "amp": amp, "memory_format": memory_format}
    vf = extract_features(model, v_img, "rgb", transform, batch_size, device, flip, occ_v, occlusion_fill,
                          occlusion_seed, **loading)
    tf = extract_features(model, t_img, "ir", transform, batch_size, device, flip, occ_t, occlusion_fill,
                          occlusion_seed, **loading)
    protocol = {"dataset": "regdb", "trial": int(trial), "direction": direction, "distance": distance,
                "flip": bool(flip), "occlusion": occlusion}
    return regdb_trial(vf, _labels(visible)[0], tf, _labels(thermal)[0], trial, direction, distance,
                       protocol=protocol, rerank=rerank)


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
                        rerank: dict | None = None, workers: int = 0, pin_memory: bool | None = None,
                        amp: torch.dtype | None = None, memory_format: torch.memory_format = torch.contiguous_format,
                        **_unused) -> LLCMResult:
    """LLCM, both directions over gallery trials ``0 .. trials-1`` (the reference runs 10).

    Every VIS test image (cameras 1-9) and every NIR test image (cameras 1, 2, 4-9) is embedded
    once; each trial's galleries are subsets (see :mod:`mace_core.data.llcm`). Test-time
    occlusion, if any, applies to the query images of each direction (image ``i`` of a modality
    with the generator ``(occlusion_seed, i)``); galleries stay clean. Images are loaded and embedded
    as SYSU-MM01's and RegDB's are (and as the trainer trains): ``workers``, ``pin_memory``, ``amp``
    autocast and ``memory_format``."""
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
    loading = {"workers": workers, "pin_memory": pin_memory, "amp": amp, "memory_format": memory_format}
    feats = {m: extract_features(model, images[m], modality[m], transform, batch_size, device, flip, **loading)
             for m in llcm.MODALITIES}
    query_f = None
    if occlusion is not None:
        query_f = {m: extract_features(model, images[m], modality[m], transform, batch_size, device, flip, occlusion,
                                       occlusion_fill, occlusion_seed, **loading) for m in llcm.MODALITIES}
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
                                         protocol=protocol, query_f=query_f, rerank=rerank)
    return LLCMResult(results["ir2vis"], results["vis2ir"])

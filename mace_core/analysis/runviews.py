"""Figures that need a trained model: attention maps, gate weights, t-SNE, retrieval grids, occlusion.

Each function takes a run record (``mace_core.study.RunResult``: ``.config``, ``.load_model()``)
and returns a matplotlib Figure, so a notebook cell is one call. Test images come from the
dataset's test split through the shared image cache, at the run's input size; the gallery is trial
0 of the run's evaluation protocol. Every random pick takes ``seed``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from mace_core.analysis import attention_maps, embeddings, figures, retrieval_grid
from mace_core.engine.retrieval import fuse
from mace_core.errors import MaceError


@dataclass
class TestImages:
    """IR queries and the RGB gallery of trial 0, as records and uint8 ``(N, H, W, 3)`` arrays."""

    queries: list
    gallery: list
    q_images: np.ndarray
    g_images: np.ndarray

    @property
    def q_pids(self) -> np.ndarray:
        return np.array([r.pid for r in self.queries])

    @property
    def q_cams(self) -> np.ndarray:
        return np.array([r.cam for r in self.queries])

    @property
    def g_pids(self) -> np.ndarray:
        return np.array([r.pid for r in self.gallery])

    @property
    def g_cams(self) -> np.ndarray:
        return np.array([r.cam for r in self.gallery])


def test_images(cfg: Any, trial: int = 0) -> TestImages:
    """The SYSU-format test split of ``cfg.data.root`` at the run's size (cached)."""
    from mace_core.data import sysu
    from mace_core.data.cache import cached_images

    d, e = cfg.data, cfg.eval
    if d.dataset != "sysu":
        raise MaceError(f"run figures need a SYSU-format dataset, this run uses {d.dataset!r}",
                        "draw them from a SYSU-MM01 (or synthetic) run")
    size = (d.height, d.width)
    queries = sysu.query_set(d.root, e.mode)
    candidates = sysu.gallery_candidates(d.root, e.mode)
    picks = sysu.gallery_indices(d.root, e.mode, trial=trial, shots=e.shots, method=e.gallery, perm_file=e.perm_file)
    q_images = cached_images(queries, size, cache_dir=d.cache_dir, desc="query")
    c_images = cached_images(candidates, size, cache_dir=d.cache_dir, desc="gallery")
    return TestImages(queries, [candidates[i] for i in picks], np.asarray(q_images),
                      np.asarray(c_images)[picks])


test_images.__test__ = False  # not a pytest test


def _batch(images: np.ndarray, size) -> torch.Tensor:
    from mace_core.data.transforms import test_transform

    tf = test_transform(size)
    return torch.stack([tf(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)) for im in images])


def embed(model: Any, images: np.ndarray, modality: str, size, batch_size: int = 256) -> np.ndarray:
    """Retrieval features ``[N, D]`` of uint8 HWC images, exactly as the evaluator extracts them."""
    from mace_core.data.transforms import test_transform
    from mace_core.engine.evaluate import extract_features

    return extract_features(model, images, modality, test_transform(size), batch_size=batch_size)


def _pick_per_identity(pids: np.ndarray, n_ids: int, rng: np.random.Generator) -> np.ndarray:
    """One index each for ``n_ids`` distinct identities (seeded)."""
    ids = rng.choice(np.unique(pids), size=min(n_ids, len(np.unique(pids))), replace=False)
    return np.array([rng.choice(np.flatnonzero(pids == pid)) for pid in sorted(ids)])


def _model(run: Any):
    model, _ = run.load_model("cpu")
    return model


# ---------------------------------------------------------------------------------------------
# Experiment 2: attention

def attention_figures(run: Any, per_modality: int = 2, seed: int = 0) -> dict[str, plt.Figure]:
    """``{"channel": bars, "spatial": heatmaps}`` (whichever the run's attention has) over IR and RGB
    test images of the same identities."""
    cfg = run.config
    if cfg.model.attention == "none":
        raise MaceError(f"run {run.variant!r} has no attention module", "use a cam, sam or dam run")
    data = test_images(cfg)
    rng = np.random.default_rng(seed)
    qi = _pick_per_identity(data.q_pids, per_modality, rng)
    gi = np.array([rng.choice(np.flatnonzero(data.g_pids == data.q_pids[i])) for i in qi])
    size = (cfg.data.height, cfg.data.width)
    model = _model(run)
    maps = {"IR": attention_maps.collect(model, _batch(data.q_images[qi], size), "ir"),
            "RGB": attention_maps.collect(model, _batch(data.g_images[gi], size), "rgb")}
    out: dict[str, plt.Figure] = {}
    channel = {f"{pos} / {mod}": gates["channel"] for mod, m in maps.items() for pos, gates in m.items()
               if gates.get("channel") is not None}
    if channel:
        out["channel"] = figures.channel_bars(channel, title=f"{run.variant}: channel-attention weights "
                                              "(mean over the shown images)")
    positions = [pos for pos in ("stem", "prepool")  # network order
                 if any(m.get(pos, {}).get("spatial") is not None for m in maps.values())]
    if positions:
        images = [*data.q_images[qi], *data.g_images[gi]]
        labels = [f"IR id {data.q_pids[i]}" for i in qi] + [f"RGB id {data.g_pids[i]}" for i in gi]
        spatial = {pos: [*maps["IR"][pos]["spatial"], *maps["RGB"][pos]["spatial"]] for pos in positions}
        out["spatial"] = attention_maps.heatmap_grid(images, spatial, labels,
                                                     title=f"{run.variant}: spatial attention")
    return out


# ---------------------------------------------------------------------------------------------
# Experiment 3: gate weights and t-SNE

@torch.no_grad()
def gate_figure(run: Any, max_images: int = 400, seed: int = 0) -> plt.Figure:
    """Histogram of the adaptive-fusion gate weight per modality on test images."""
    cfg = run.config
    if cfg.model.fusion != "adaptive":
        raise MaceError(f"run {run.variant!r} uses fusion {cfg.model.fusion!r}", "use the adaptive-fusion run")
    data = test_images(cfg)
    rng = np.random.default_rng(seed)
    size = (cfg.data.height, cfg.data.width)
    model = _model(run)
    weights, mods = [], []
    for images, modality, label in ((data.q_images, "ir", "IR"), (data.g_images, "rgb", "RGB")):
        idx = np.sort(rng.choice(len(images), size=min(max_images, len(images)), replace=False))
        w = model.fusion_weights(_batch(images[idx], size), modality).float().cpu().numpy()
        weights.append(w)
        mods += [label] * len(w)
    return figures.gate_histogram(np.concatenate(weights), mods, title=f"{run.variant}: gate weights on test images")


def tsne_of_run(run: Any, max_ids: int = 10, per_id: int = 8, seed: int = 0) -> plt.Figure:
    """t-SNE of IR query and RGB gallery-candidate embeddings of ``max_ids`` test identities."""
    from mace_core.data import sysu
    from mace_core.data.cache import cached_images

    cfg = run.config
    data = test_images(cfg)
    candidates = sysu.gallery_candidates(cfg.data.root, cfg.eval.mode)
    c_images = np.asarray(cached_images(candidates, (cfg.data.height, cfg.data.width), cache_dir=cfg.data.cache_dir,
                                        desc="gallery"))
    c_pids = np.array([r.pid for r in candidates])
    rng = np.random.default_rng(seed)
    keep = embeddings.select_identities(data.q_pids, max_ids, seed)
    ids = np.unique(data.q_pids[keep])
    q_idx = np.concatenate([rng.permutation(np.flatnonzero(data.q_pids == p))[:per_id] for p in ids])
    c_idx = np.concatenate([rng.permutation(np.flatnonzero(c_pids == p))[:per_id] for p in ids])
    size = (cfg.data.height, cfg.data.width)
    model = _model(run)
    feats = np.concatenate([embed(model, data.q_images[q_idx], "ir", size), embed(model, c_images[c_idx], "rgb", size)])
    pids = np.concatenate([data.q_pids[q_idx], c_pids[c_idx]])
    mods = ["IR"] * len(q_idx) + ["RGB"] * len(c_idx)
    coords = embeddings.tsne_2d(feats, seed=seed)
    return embeddings.tsne_figure(coords, pids, mods, title=f"{run.variant}: t-SNE of test embeddings "
                                  f"({len(ids)} identities)")


# ---------------------------------------------------------------------------------------------
# Experiments 4 and 6: retrieval grids

def retrieval_figure(run: Any, n_queries: int = 4, k: int = 5, seed: int = 0, pool: int = 1,
                     fusion: str = "avg") -> plt.Figure:
    """Top-k grid for ``n_queries`` identities: with ``pool`` > 1, a single query row then the
    fused pool of ``pool`` images (same identity and camera) for each identity."""
    cfg = run.config
    data = test_images(cfg)
    size = (cfg.data.height, cfg.data.width)
    model = _model(run)
    g_feat = embed(model, data.g_images, "rgb", size)
    rng = np.random.default_rng(seed)
    groups = {}
    for i, (pid, cam) in enumerate(zip(data.q_pids, data.q_cams)):
        groups.setdefault((pid, cam), []).append(i)
    # small test sets (CI) may hold fewer images per identity and camera than asked: shrink the pool
    pool = max(1, min(pool, max(len(idx) for idx in groups.values())))
    eligible = sorted(key for key, idx in groups.items() if len(idx) >= pool and (data.g_pids == key[0]).any())
    if not eligible:
        raise MaceError(f"no query identity has {pool} images in one camera", "use a smaller pool")
    chosen = [eligible[i] for i in rng.choice(len(eligible), size=min(n_queries, len(eligible)), replace=False)]
    rows = []
    for pid, cam in chosen:
        members = rng.choice(groups[(pid, cam)], size=pool, replace=False)
        feats = embed(model, data.q_images[members], "ir", size)
        variants = [("single", feats[:1], data.q_images[members[0]])]
        if pool > 1:
            variants.append((f"{fusion} of {pool}", fuse(feats, [np.arange(pool)], fusion), list(data.q_images[members])))
        for label, q, shown in variants:
            ranked = retrieval_grid.top_k(q, g_feat, k, q_cams=[cam], g_cams=data.g_cams)[0]
            rows.append(retrieval_grid.RetrievalRow(f"id {pid} cam {cam}\n{label}", shown,
                                                    [data.g_images[j] for j in ranked],
                                                    [bool(data.g_pids[j] == pid) for j in ranked]))
    if pool == 1:
        return retrieval_grid.retrieval_grid(rows, title=f"{run.variant}: top-{k} retrieval (trial 0 gallery)")
    return _pool_grid(rows, pool, k, title=f"{run.variant}: single query vs {fusion} of {pool} (top-{k})")


def _pool_grid(rows, pool: int, k: int, title: str) -> plt.Figure:
    """Single-query rows get their one image in the first slot; pool rows show every member."""
    fixed = [retrieval_grid.RetrievalRow(r.label, r.query if isinstance(r.query, list) else [r.query],
                                         r.gallery, r.matches) for r in rows]
    return retrieval_grid.retrieval_grid(fixed, title=title, queries_per_row=pool)


def occlusion_examples_figure(run: Any, kinds, seed: int = 0, n_images: int = 2) -> plt.Figure:
    """Clean IR test images and each occlusion type applied to them (as at test time)."""
    from mace_core.occlusion import occlusion_examples

    data = test_images(run.config)
    rng = np.random.default_rng(seed)
    idx = _pick_per_identity(data.q_pids, n_images, rng)
    columns = ["clean", *kinds]
    fig, axes = plt.subplots(len(idx), len(columns), figsize=(1.3 * len(columns), 2.4 * len(idx)), squeeze=False)
    for r, i in enumerate(idx):
        examples = occlusion_examples(np.ascontiguousarray(data.q_images[i]), tuple(kinds), seed=seed + int(i),
                                      fill=run.config.eval.occlusion_fill)
        for c, name in enumerate(columns):
            axes[r, c].imshow(attention_maps.as_rgb_uint8(np.asarray(examples[name])))
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(name.replace("_", " "), fontsize=8)
    fig.suptitle("IR queries under each occlusion type")
    fig.tight_layout()
    return fig


def occlusion_retrieval_figure(run: Any, kinds, k: int = 5, seed: int = 0) -> plt.Figure:
    """Top-k retrieval of one IR query, clean and under each occlusion type."""
    from mace_core.occlusion import occlusion_examples

    cfg = run.config
    data = test_images(cfg)
    size = (cfg.data.height, cfg.data.width)
    model = _model(run)
    g_feat = embed(model, data.g_images, "rgb", size)
    rng = np.random.default_rng(seed)
    i = int(_pick_per_identity(data.q_pids, 1, rng)[0])
    examples = occlusion_examples(np.ascontiguousarray(data.q_images[i]), tuple(kinds), seed=seed,
                                  fill=cfg.eval.occlusion_fill)
    names = ["clean", *kinds]
    shown = np.stack([np.asarray(examples[n]) for n in names])
    q_feat = embed(model, shown, "ir", size)
    ranked = retrieval_grid.top_k(q_feat, g_feat, k, q_cams=[data.q_cams[i]] * len(names), g_cams=data.g_cams)
    rows = [retrieval_grid.RetrievalRow(name.replace("_", " "), shown[r], [data.g_images[j] for j in ranked[r]],
                                        [bool(data.g_pids[j] == data.q_pids[i]) for j in ranked[r]])
            for r, name in enumerate(names)]
    return retrieval_grid.retrieval_grid(rows, title=f"{run.variant}: IR id {data.q_pids[i]}, clean vs occluded "
                                         f"(top-{k})")

"""t-SNE of retrieval embeddings (scikit-learn), coloured by identity and marked by modality."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from mace_core.errors import MaceError

MARKERS = {"rgb": "o", "visible": "o", "ir": "^", "infrared": "^", "thermal": "^"}


def tsne_2d(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """``[N, D]`` features -> ``[N, 2]`` t-SNE coordinates (seeded, PCA init, so reproducible)."""
    from sklearn.manifold import TSNE   # here, not at the top: only the t-SNE pages need it (~0.3 s per kernel)
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) < 3:
        raise MaceError(f"t-SNE needs a [N, D] array with N >= 3, got shape {features.shape}",
                        "pass the embeddings of at least three images")
    # scikit-learn requires perplexity < N; keep it meaningful for the small smoke test sets.
    perplexity = float(min(perplexity, max(1.0, (len(features) - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=1)
    return tsne.fit_transform(features)


def select_identities(pids: np.ndarray, max_ids: int = 12, seed: int = 0) -> np.ndarray:
    """Boolean mask keeping at most ``max_ids`` identities (seeded pick), so the plot stays legible."""
    pids = np.asarray(pids)
    ids = np.unique(pids)
    if len(ids) > max_ids:
        ids = np.random.default_rng(seed).choice(ids, size=max_ids, replace=False)
    return np.isin(pids, ids)


def tsne_figure(coords: np.ndarray, pids: Sequence[int], modalities: Sequence[str], title: str = "") -> plt.Figure:
    """Scatter of 2-D coordinates: colour = identity, marker = modality (circle RGB, triangle IR)."""
    import seaborn as sns
    coords = np.asarray(coords)
    pids = np.asarray(pids)
    modalities = np.asarray(modalities).astype(str)
    if coords.shape != (len(pids), 2) or len(modalities) != len(pids):
        raise MaceError(f"t-SNE inputs disagree: coords {coords.shape}, {len(pids)} identities, "
                        f"{len(modalities)} modality labels", "pass one identity and one modality per point")
    ids = np.unique(pids)
    palette = dict(zip(ids, sns.color_palette("tab20", n_colors=len(ids))))
    fig, ax = plt.subplots(figsize=(6, 5))
    for modality in np.unique(modalities):
        sel = modalities == modality
        ax.scatter(coords[sel, 0], coords[sel, 1], c=[palette[p] for p in pids[sel]],
                   marker=MARKERS.get(modality.lower(), "s"), s=22, alpha=0.8, edgecolors="none", label=modality)
    legend = ax.legend(title="modality (colour = identity)", fontsize=8)
    for handle in legend.legend_handles:
        handle.set_color("grey")
    ax.set(xticks=[], yticks=[], title=title or f"t-SNE of {len(pids)} embeddings, {len(ids)} identities")
    fig.tight_layout()
    return fig

"""Top-k retrieval grids: each query beside its top-k gallery images, green = same identity, red = not.

:func:`top_k` ranks a gallery for each query under the SYSU-MM01 rule (a cam3 query never sees
cam2 gallery items: same room), so the grid shows what the metric scores.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from mace_core.analysis.attention_maps import as_rgb_uint8
from mace_core.errors import MaceError

SAME_ROOM = {3: 2}  # query camera -> gallery camera it must ignore (SYSU-MM01 all/indoor search)


@dataclass
class RetrievalRow:
    """One grid row: a query image and its ranked gallery images with match flags."""

    label: str
    query: Any
    gallery: Sequence[Any]
    matches: Sequence[bool]


def top_k(query_feats: np.ndarray, gallery_feats: np.ndarray, k: int = 5, q_cams: Sequence[int] | None = None,
          g_cams: Sequence[int] | None = None) -> np.ndarray:
    """``[Q, k]`` gallery indices by descending cosine similarity (ties: lower index first)."""
    q = np.asarray(query_feats, dtype=np.float64)
    g = np.asarray(gallery_feats, dtype=np.float64)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise MaceError(f"feature shapes {q.shape} and {g.shape} do not match", "pass [Q, D] and [G, D] features")
    if k < 1 or k > len(g):
        raise MaceError(f"k={k} is outside 1..{len(g)} (gallery size)", "choose a smaller k")
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    sim = q @ g.T
    if q_cams is not None and g_cams is not None:
        q_cams, g_cams = np.asarray(q_cams), np.asarray(g_cams)
        for q_cam, g_cam in SAME_ROOM.items():
            sim[np.ix_(q_cams == q_cam, g_cams == g_cam)] = -np.inf
    order = np.argsort(-sim, axis=1, kind="stable")
    return order[:, :k]


def rows_from_ranking(labels: Sequence[str], queries: Sequence[Any], q_pids: Sequence[int], ranked: np.ndarray,
                      gallery_images: Sequence[Any], g_pids: Sequence[int]) -> list[RetrievalRow]:
    """Build grid rows from ``top_k`` output and the gallery's images / identities."""
    g_pids = np.asarray(g_pids)
    return [RetrievalRow(label, query, [gallery_images[j] for j in idx], [bool(m) for m in g_pids[idx] == pid])
            for label, query, pid, idx in zip(labels, queries, q_pids, ranked)]


def retrieval_grid(rows: Sequence[RetrievalRow], title: str = "", queries_per_row: int = 1) -> plt.Figure:
    """Rows of ``[query(s) | rank 1 .. k]`` with a green (match) or red (non-match) frame per result.

    ``queries_per_row`` > 1 draws a multi-query pool: pass ``query`` as a list of images.
    """
    if not rows:
        raise MaceError("no retrieval rows to draw", "pass at least one query")
    k = max(len(r.gallery) for r in rows)
    cols = queries_per_row + k
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.1 * cols + 0.6, 2.2 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        queries = list(row.query) if queries_per_row > 1 else [row.query]
        for c in range(queries_per_row):
            ax = axes[r, c]
            if c < len(queries):
                ax.imshow(as_rgb_uint8(queries[c]))
                _frame(ax, "tab:blue")
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(row.label, fontsize=8)
        for j, (image, match) in enumerate(zip(row.gallery, row.matches)):
            ax = axes[r, queries_per_row + j]
            ax.imshow(as_rgb_uint8(image))
            _frame(ax, "tab:green" if match else "tab:red")
            if r == 0:
                ax.set_title(f"rank {j + 1}", fontsize=8)
        for j in range(len(row.gallery), k):
            axes[r, queries_per_row + j].axis("off")
    if queries_per_row:
        axes[0, 0].set_title("query" if queries_per_row == 1 else f"query pool ({queries_per_row})", fontsize=8,
                             loc="left")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _frame(ax: plt.Axes, color: str) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(3)

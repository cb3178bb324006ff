"""Figures for the book (matplotlib/seaborn), built from run logs and result frames.

Each function returns a matplotlib Figure and never shows it; :func:`save` writes one atomically.
Matplotlib picks a headless backend by itself (Agg without a display, inline in a kernel).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mace_core.errors import MaceError
from mace_core.utils.atomic import atomic_path

_METRIC_RE = re.compile(r"(^|[._])(r1|r5|r10|r20|rank-?\d+|map|minp)$", re.IGNORECASE)


def save(fig: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) via a temporary file; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    return path


def _epoch_column(log: pd.DataFrame) -> str:
    for name in ("epoch", "Epoch", "step"):
        if name in log.columns:
            return name
    raise MaceError(f"training log has no epoch column (columns: {list(log.columns)})",
                    "pass the log.csv of a run (RunResult.log)")


def loss_columns(log: pd.DataFrame) -> list[str]:
    """Per-term loss columns (``loss.id``, ``loss.kd_v2i``, ...), the total (``loss``) last."""
    cols = [c for c in log.columns if "loss" in c.lower() and pd.api.types.is_numeric_dtype(log[c])]
    return sorted(cols, key=lambda c: (c.lower() in ("loss", "loss.total", "total_loss"), c))


def metric_columns(log: pd.DataFrame) -> list[str]:
    """Evaluation-metric columns (mean R1, mAP, mINP, ...) that hold at least one value; stds skipped."""
    return [c for c in log.columns if _METRIC_RE.search(c) and "std" not in c.lower()
            and pd.api.types.is_numeric_dtype(log[c]) and log[c].notna().any()]


def _short(col: str) -> str:
    for prefix in ("eval.mean.", "eval."):
        if col.startswith(prefix):
            return col[len(prefix):]
    return col


def training_curves(log: pd.DataFrame, title: str = "") -> plt.Figure:
    """Loss terms, schedule (lr, λ₂, the applied KD weight λ₂·T²) / training accuracy, and evaluation metrics per epoch."""
    epoch = _epoch_column(log)
    losses, metrics = loss_columns(log), metric_columns(log)
    if not losses:
        raise MaceError(f"training log has no loss columns (columns: {list(log.columns)})",
                        "pass the log.csv of a run (RunResult.log)")
    sched = [c for c in log.columns if c.lower() in ("lr", "kd_weight", "lambda2", "lambda_2", "loss_weight.kd")
             or c.lower().endswith(("lambda2", "kd_weight", "kd_weight_effective"))]
    acc = [c for c in log.columns if "acc" in c.lower() and pd.api.types.is_numeric_dtype(log[c])]
    panels = 2 + bool(metrics)
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 3.4), squeeze=False)
    ax = axes[0, 0]
    for col in losses:
        # the four CE heads and the two KD directions are thin dashed lines under their sums
        sub = "_" in col.split(".", 1)[-1] and col.lower() != "loss.total"
        ax.plot(log[epoch], log[col], "--" if sub else "-", marker=None if sub else ".", lw=0.8 if sub else 1.6,
                label=col)
    ax.set(xlabel=epoch, ylabel="loss", title="loss terms")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    for col in acc:
        ax.plot(log[epoch], log[col], marker=".", label=col)
    ax.set(xlabel=epoch, title="accuracy and schedule")
    if sched:
        twin = ax.twinx()
        for col in sched:
            values, label = log[col], col
            if col.lower() == "lr":  # 1e-3-scale values would lie flat on λ₂'s 0-1 axis
                peak = float(np.nanmax(values.to_numpy(dtype=float)))
                values, label = (values / peak, f"lr / {peak:.2g}") if peak > 0 else (values, col)
            twin.plot(log[epoch], values, linestyle="--", label=label)
        twin.set_ylabel("schedule (0-1)")
        twin.legend(fontsize=7, loc="center right")
    if acc:
        ax.legend(fontsize=7, loc="center left")
    if metrics:
        ax = axes[0, 2]
        scale = 100.0 if float(np.nanmax(log[metrics].to_numpy(dtype=float))) <= 1.0 else 1.0
        for col in metrics:
            rows = log[[epoch, col]].dropna()
            ax.plot(rows[epoch], rows[col] * scale, marker="o", label=_short(col))
        ax.set(xlabel=epoch, ylabel="%", title="test metrics (mean over trials)")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def metric_curves(frame: pd.DataFrame, x: str, hue: str, title: str = "", xlabel: str | None = None,
                  logx: bool = False) -> plt.Figure:
    """One panel per metric: mean (± std band where given) against ``x``, one line per ``hue``.

    ``frame`` columns: ``x``, ``hue``, ``metric``, ``mean`` and optionally ``std``.
    """
    import seaborn as sns   # here, not at the top: most pages draw no seaborn figure (~0.8 s per kernel)
    needed = {x, hue, "metric", "mean"}
    if not needed <= set(frame.columns):
        raise MaceError(f"curve data lacks columns {sorted(needed - set(frame.columns))}",
                        "build it with tables.multi_query_frame or tables.fraction_curve_data")
    metrics = list(dict.fromkeys(frame["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.4), squeeze=False)
    palette = dict(zip(dict.fromkeys(frame[hue]), sns.color_palette(n_colors=frame[hue].nunique())))
    for ax, metric in zip(axes[0], metrics):
        part = frame[frame.metric == metric]
        for label, group in part.groupby(hue, sort=False):
            group = group.sort_values(x)
            style = "--" if "thesis" in str(label) else "-"
            ax.plot(group[x], group["mean"], style, marker="o", label=str(label), color=palette[label])
            if "std" in group and group["std"].notna().any():
                std = group["std"].fillna(0).to_numpy(dtype=float)
                ax.fill_between(group[x], group["mean"] - std, group["mean"] + std, alpha=0.2, color=palette[label])
        ax.set(xlabel=xlabel or x, ylabel=f"{metric} (%)", title=metric)
        if logx:
            ax.set_xscale("log")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def channel_bars(weights: Mapping[str, np.ndarray], first: int = 64, title: str = "") -> plt.Figure:
    """Bar chart of channel-attention weights (first ``first`` channels), one panel per label.

    ``weights``: label -> ``[C]`` (already averaged over images) or ``[B, C]`` (averaged here).
    """
    if not weights:
        raise MaceError("no channel-attention weights to plot", "use a CAM or DAM model")
    fig, axes = plt.subplots(len(weights), 1, figsize=(9, 1.9 * len(weights)), squeeze=False)
    for ax, (label, w) in zip(axes[:, 0], weights.items()):
        w = np.asarray(w, dtype=float)
        w = w.mean(axis=0) if w.ndim == 2 else w
        shown = w[:first]
        ax.bar(np.arange(len(shown)), shown, color="tab:blue")
        ax.set_ylim(0, 1)
        ax.set_ylabel("weight")
        ax.set_title(f"{label}: channels 0-{len(shown) - 1} of {len(w)} (std over all {w.std():.3f})", fontsize=9)
    axes[-1, 0].set_xlabel("channel")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def gate_histogram(weights: np.ndarray, modalities: Sequence[str], names: Sequence[str] = ("specific", "shared"),
                   title: str = "") -> plt.Figure:
    """Distribution of the adaptive-fusion gate weights per modality.

    ``weights``: ``[N, 2]`` softmax weights (specific, shared) for N images; ``modalities``: N labels.
    """
    import seaborn as sns
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2 or len(weights) != len(modalities):
        raise MaceError(f"gate weights of shape {weights.shape} do not match {len(modalities)} modality labels",
                        "pass [N, branches] weights and one modality label per image")
    frame = pd.DataFrame({"weight": weights[:, 0], "modality": list(modalities)})
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    sns.histplot(frame, x="weight", hue="modality", bins=30, binrange=(0, 1), element="step", ax=ax)
    ax.axvline(0.5, color="grey", linestyle=":")
    ax.set(xlabel=f"gate weight of the {names[0]} branch (1 − {names[1]})", ylabel="images",
           title=title or "adaptive fusion gate weights")
    fig.tight_layout()
    return fig


def occlusion_drops(frame: pd.DataFrame, title: str = "") -> plt.Figure:
    """Rank-1 and mAP drop (pp) per occlusion type, one bar group per model.

    ``frame``: :func:`mace_core.analysis.occlusion_tables.occlusion_frame` output.
    """
    import seaborn as sns
    long = frame.melt(id_vars=["model", "occlusion"], value_vars=["R1_drop", "mAP_drop"],
                      var_name="metric", value_name="drop (pp)")
    long["metric"] = long["metric"].map({"R1_drop": "Rank-1", "mAP_drop": "mAP"})
    grid = sns.catplot(long, x="occlusion", y="drop (pp)", hue="model", col="metric", kind="bar",
                       height=3.4, aspect=1.3)
    grid.set_xticklabels(rotation=20)
    if title:
        grid.figure.suptitle(title, y=1.03)
    return grid.figure


def comparison_bars(frame: pd.DataFrame, title: str = "") -> plt.Figure:
    """Grouped bars per variant, one panel per metric: ours (with std error bars) beside the thesis.

    ``frame``: :func:`mace_core.analysis.tables.comparison_frame` output.
    """
    import seaborn as sns
    metrics = list(dict.fromkeys(frame["metric"]))
    variants = list(dict.fromkeys(frame["variant"]))
    sources = list(dict.fromkeys(frame["source"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(4.0, 1.2 * len(variants) + 2) * len(metrics), 3.6),
                             squeeze=False)
    width = 0.8 / len(sources)
    colours = sns.color_palette(n_colors=len(sources))
    for ax, metric in zip(axes[0], metrics):
        part = frame[frame.metric == metric]
        for s, source in enumerate(sources):
            sel = part[part.source == source].set_index("variant")
            xs = [i + (s - (len(sources) - 1) / 2) * width for i, v in enumerate(variants) if v in sel.index]
            means = [sel.loc[v, "mean"] for v in variants if v in sel.index]
            errs = [0.0 if pd.isna(sel.loc[v, "std"]) else sel.loc[v, "std"] for v in variants if v in sel.index]
            hatch = "//" if "thesis" in source else None
            ax.bar(xs, means, width, yerr=errs, label=source, color=colours[s], hatch=hatch, capsize=3,
                   edgecolor="white" if hatch else None)
        ax.set_xticks(range(len(variants)), variants, rotation=20)
        ax.set(ylabel=f"{metric} (%)", title=metric)
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig

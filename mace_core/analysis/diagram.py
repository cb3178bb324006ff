"""The architecture figure of the methods page, drawn with matplotlib (no graphviz needed).

``python -m mace_core.analysis.diagram book/_static/architecture.png`` regenerates the committed PNG.
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

_COLOURS = {"rgb": "#f4c27a", "ir": "#9ecae1", "shared": "#c7e9c0", "loss": "#f2f2f2", "out": "#dadaeb"}


def _box(ax, x, y, w, h, text, colour, size=8.5):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=colour, ec="#444444", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def _arrow(ax, x0, y0, x1, y1, style="-|>", ls="-"):
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle=style, mutation_scale=10, lw=1,
                                 color="#444444", linestyle=ls))


def architecture_figure() -> plt.Figure:
    """Two-stream MACE: modality stems, shared trunk, φ_V/φ_I/φ_S heads, classifiers, KD and losses."""
    fig, ax = plt.subplots(figsize=(11, 5.2))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 5.2)
    ax.axis("off")
    # inputs and modality-specific stems
    _box(ax, 0.1, 3.6, 1.1, 0.8, "RGB image\n(cam 1,2,4,5)", _COLOURS["rgb"])
    _box(ax, 0.1, 0.8, 1.1, 0.8, "IR image\n(cam 3,6)", _COLOURS["ir"])
    _box(ax, 1.5, 3.6, 1.2, 0.8, "RGB stem\n(+ CAM/SAM/DAM)", _COLOURS["rgb"], 8)
    _box(ax, 1.5, 0.8, 1.2, 0.8, "IR stem\n(+ CAM/SAM/DAM)", _COLOURS["ir"], 8)
    _arrow(ax, 1.2, 4.0, 1.5, 4.0)
    _arrow(ax, 1.2, 1.2, 1.5, 1.2)
    # shared trunk
    _box(ax, 3.0, 1.9, 1.6, 1.4, "shared trunk\n(ResNet stages 1-4,\nlast stride 1)\n(+ attention\nbefore pooling)",
         _COLOURS["shared"], 8)
    _arrow(ax, 2.7, 4.0, 3.4, 3.3)
    _arrow(ax, 2.7, 1.2, 3.4, 1.9)
    ax.text(3.8, 3.55, "F_V", fontsize=8)
    ax.text(3.8, 1.45, "F_I", fontsize=8)
    # heads
    _box(ax, 5.0, 3.9, 1.3, 0.7, "φ_V (1×1 conv,\nBN, ReLU), pool", _COLOURS["rgb"], 7.5)
    _box(ax, 5.0, 2.25, 1.3, 0.7, "φ_S shared\n(tied weights), pool", _COLOURS["shared"], 7.5)
    _box(ax, 5.0, 0.6, 1.3, 0.7, "φ_I (1×1 conv,\nBN, ReLU), pool", _COLOURS["ir"], 7.5)
    for y in (4.25, 2.6, 0.95):
        _arrow(ax, 4.6, 2.6, 5.0, y)
    # classifiers
    _box(ax, 6.7, 3.9, 1.2, 0.7, "W_V → p_V", _COLOURS["rgb"])
    _box(ax, 6.7, 2.25, 1.2, 0.7, "W_S → p_VS, p_IS", _COLOURS["shared"], 7.5)
    _box(ax, 6.7, 0.6, 1.2, 0.7, "W_I → p_I", _COLOURS["ir"])
    for y in (4.25, 2.6, 0.95):
        _arrow(ax, 6.3, y, 6.7, y)
    # losses
    _box(ax, 8.3, 3.75, 2.55, 1.0, "ID: CE(p_V)+CE(p_VS)\n+CE(p_I)+CE(p_IS)\nensemble p = p_spec + p_shared",
         _COLOURS["loss"], 7.5)
    _box(ax, 8.3, 2.1, 2.55, 1.0, "bidirectional KD (T = 3)\nKL(p_V ‖ p_IS) + KL(p_I ‖ p_VS)\nweight λ₂ (ramp or fixed)",
         _COLOURS["loss"], 7.5)
    _box(ax, 8.3, 0.45, 2.55, 1.0, "batch-hard triplet (m = 0.3)\njoint RGB+IR batch, on the\npre-BN fused embedding",
         _COLOURS["loss"], 7.5)
    _arrow(ax, 7.9, 4.25, 8.3, 4.25)
    _arrow(ax, 7.9, 2.6, 8.3, 2.6)
    _arrow(ax, 7.9, 4.1, 8.3, 2.9, ls="--")
    _arrow(ax, 7.9, 1.1, 8.3, 2.3, ls="--")
    # retrieval embedding
    _box(ax, 4.95, 4.72, 3.0, 0.42, "retrieval: fuse(specific, shared) → BN → L2", _COLOURS["out"], 7.5)
    ax.text(0.1, 0.15, "Colours: RGB path (orange), IR path (blue), shared weights (green). Dashed: distillation "
            "(teacher → student). Fusion: concat (baseline), adaptive gate or transform.",
            fontsize=7.5, color="#333333")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    from mace_core.analysis.figures import save

    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "book/_static/architecture.png")
    save(architecture_figure(), out, dpi=150)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Forest plot of a chapter's (or the whole study's) comparisons: what the findings say, in one figure.

One row per contrast of a chapter's Holm family (:func:`mace_core.analysis.claims.chapter_family`):
our difference as a dot with its 95 % interval as a bar (filled when distinguishable after Holm,
hollow when not), the thesis's difference as a second marker (a diamond) where the thesis reports
one, and the chapter's detectable difference (80 % power at α = 0.05 / k) as a shaded band ±X around
0: a hollow dot inside the band is "any effect is probably smaller than X", one outside it is "the
study cannot tell". :func:`forest_rows` builds the rows of one chapter; :func:`forest_plot` draws
rows from one or several chapters (the overview), one panel band per chapter.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt

from mace_core.analysis import findings as fd, thesis_claims as tc
from mace_core.analysis.claims import Family, chapter_family, contrast_key, orientation
from mace_core.analysis.thesis_rows import SPECS
from mace_core.errors import MaceError

OURS_COLOR, THESIS_COLOR, BAND_COLOR = "#1f77b4", "#d62728", "#bbbbbb"


@dataclass(frozen=True)
class ForestRow:
    """One contrast: our difference (Holm-adjusted in its chapter's family) and the thesis's."""

    chapter: str
    label: str
    diff: fd.Difference
    thesis: float | None = None

    @property
    def mdd(self) -> float | None:
        return self.diff.detectable if self.diff.detectable is not None else self.diff.mdd()


def _thesis_delta(family: Family, weights: Mapping[Any, float]) -> float | None:
    """The thesis's value of the same contrast: from a claim of the chapter that tests it, else (a variant
    against the baseline) from the chapter's thesis table."""
    key = contrast_key(weights)
    for claim in tc.claims_for(family.experiment):
        if claim.contrast and contrast_key(claim.contrast) == key:
            delta = tc.thesis_delta(claim)
            return None if delta is None else delta * orientation(claim.contrast) * orientation(weights)
    if family.experiment in SPECS:
        table = SPECS[family.experiment].thesis
        try:
            values = [w * float(table[k]["R1"]) for k, w in weights.items()]
        except (KeyError, TypeError):
            return None
        return float(sum(values))
    return None


def forest_rows(experiment: str, runs: Sequence[Any], evals: Iterable[Mapping[str, Any]] | None = None,
                chapter: str | None = None, family: Family | None = None) -> list[ForestRow]:
    """The rows of one chapter: every member of its Holm family that has an estimate."""
    family = family or chapter_family(experiment, runs, evals)
    name = chapter or experiment
    return [ForestRow(name, m.label, m.diff, _thesis_delta(family, m.weights)) for m in family.members
            if m.diff is not None and m.diff.half_width is not None]


def forest_plot(rows: Sequence[ForestRow], title: str = "", xlabel: str = "difference (pp, IR→RGB Rank-1)") -> plt.Figure:
    """Rows top to bottom, grouped by chapter; dot ± 95 % interval (ours), diamond (thesis), grey band
    ±detectable difference per chapter, a line at 0. Raises when there is nothing to draw."""
    rows = list(rows)
    if not rows:
        raise MaceError("no comparison with an estimate to draw in the forest plot",
                        "run at least two training seeds per variant (a difference needs a spread)")
    height = 1.2 + 0.32 * len(rows) + 0.25 * len({r.chapter for r in rows})
    fig, ax = plt.subplots(figsize=(8.0, height))
    y, ticks, labels = 0.0, [], []
    chapters = list(dict.fromkeys(r.chapter for r in rows))
    for chapter in chapters:
        members = [r for r in rows if r.chapter == chapter]
        for r in members:
            d = r.diff
            filled = d.distinguishable
            ax.errorbar(d.mean, y, xerr=d.half_width, fmt="o", color=OURS_COLOR, ecolor=OURS_COLOR,
                        markerfacecolor=OURS_COLOR if filled else "white", capsize=3, zorder=3,
                        label="ours, 95 % interval (filled: distinguishable, Holm)" if not ticks else None)
            if r.thesis is not None:
                ax.plot(r.thesis, y, "D", color=THESIS_COLOR, markersize=5, zorder=4,
                        label="thesis" if not any(t.get_label() == "thesis" for t in ax.lines) else None)
            ticks.append(y)
            labels.append(r.label if len(chapters) == 1 else f"{chapter}: {r.label}")
            y -= 1.0
        for yy, r in zip(ticks[-len(members):], members):        # each row's own detectable Δ (by unit)
            if r.mdd is not None and r.mdd > 0:
                ax.fill_betweenx([yy - 0.5, yy + 0.5], -r.mdd, r.mdd, color=BAND_COLOR, alpha=0.35, zorder=1,
                                 label="detectable Δ (80 % power, α = 0.05 / k)"
                                 if not any(p.get_label().startswith("detectable") for p in ax.collections) else None)
        y -= 0.5
    ax.axvline(0.0, color="black", linewidth=0.8, zorder=2)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_ylim(y + 0.5, 0.8)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.legend(loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1))
    return fig


def forest_summary(rows: Sequence[ForestRow]) -> dict[str, int]:
    """How many rows are distinguishable, probably smaller than X, or cannot tell (for captions and tests)."""
    out = {"distinguishable": 0, "smaller": 0, "cannot tell": 0}
    for r in rows:
        worded = fd.outcome(r.diff)
        key = "distinguishable" if r.diff.distinguishable else "cannot tell" if fd.CANNOT_TELL in worded else "smaller"
        out[key] += 1
    return out


def show_forest(experiment: str, runs: Sequence[Any], evals: Iterable[Mapping[str, Any]] | None = None,
                title: str = "") -> plt.Figure | None:
    """The chapter page's forest plot (a notebook cell: ``fig = show_forest(...)``); with no comparison
    that has an estimate (one training seed) it displays the one-line :data:`findings.ONE_SEED_PAGE`
    instead and returns None."""
    rows = forest_rows(experiment, runs, evals)
    if not rows:
        from IPython.display import Markdown, display

        display(Markdown(fd.ONE_SEED_PAGE))
        return None
    return forest_plot(rows, title or "Every comparison of this chapter's Holm family (ours: dot and 95 % interval; "
                                      "thesis: diamond; grey: detectable Δ)")

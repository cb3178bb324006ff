"""Training-seed statistics and the computed findings of each chapter.

A study variant is trained once per training seed (``study.seeds``); every number the book compares
is the mean over those runs, its spread is their sample standard deviation (ddof = 1), and n is the
number of runs. Gallery trials (several gallery draws of one run) only measure the evaluation's
noise and stay a secondary figure.

**The "not distinguishable" rule.** A variant's difference to the baseline is the mean of the
per-seed differences when both were trained with the same seeds (paired), otherwise the difference
of the two means (Welch). Its 95 % t-interval is ``mean ± t(0.975, df) · se`` with ``se = sd / √n``
and ``df = n − 1`` when paired, and the Welch-Satterthwaite ``se`` and ``df`` when not. An interval
that contains 0 means the difference lies within the seed noise: **not distinguishable**. With fewer
than two runs on either side there is no training-variance estimate and no verdict.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
HIGHER, LOWER = "higher", "lower"
NOT_DISTINGUISHABLE = "not distinguishable"
NO_ESTIMATE = "no training-variance estimate"
SINGLE_RUN_NOTE = "n = 1 training run: no training-variance estimate"
RULE = ("Δ: difference to the baseline, paired by training seed (Welch when the seeds differ), ± the "
        "half-width of its 95 % t-interval; an interval containing 0 is marked not distinguishable.")


@dataclass(frozen=True)
class SeedSummary:
    """One metric of one variant (or condition) over its training seeds."""

    values: Mapping[int, float]          # seed -> the run's value (mean over its gallery trials)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.values.values())))

    @property
    def std(self) -> float | None:
        """Sample std over seeds; None with one run (no training-variance estimate)."""
        return float(np.std(list(self.values.values()), ddof=1)) if self.n > 1 else None


@dataclass(frozen=True)
class Difference:
    """Variant minus baseline, with its 95 % t-interval half-width and the rule's verdict."""

    mean: float
    half_width: float | None            # None: no training-variance estimate
    n: int                              # pairs (paired) or the smaller group's size (Welch / none)
    method: str                         # "paired", "welch" or "none"

    @property
    def verdict(self) -> str:
        if self.half_width is None:
            return NO_ESTIMATE
        if abs(self.mean) <= self.half_width:
            return NOT_DISTINGUISHABLE
        return HIGHER if self.mean > 0 else LOWER

    @property
    def distinguishable(self) -> bool:
        return self.verdict in (HIGHER, LOWER)


def summarize_seeds(values: Mapping[int, float]) -> SeedSummary:
    if not values:
        raise ValueError("no runs to summarize")
    return SeedSummary(dict(sorted((int(s), float(v)) for s, v in values.items())))


def difference(variant: SeedSummary | Mapping[int, float], baseline: SeedSummary | Mapping[int, float],
               level: float = LEVEL) -> Difference:
    """The rule of the module docstring: paired when both have the same seeds, Welch otherwise."""
    v = variant if isinstance(variant, SeedSummary) else summarize_seeds(variant)
    b = baseline if isinstance(baseline, SeedSummary) else summarize_seeds(baseline)
    q = 0.5 + level / 2
    if set(v.values) == set(b.values):
        d = np.array([v.values[s] - b.values[s] for s in v.values])
        if len(d) < 2:
            return Difference(float(d.mean()), None, len(d), "none")
        se = float(d.std(ddof=1)) / math.sqrt(len(d))
        return Difference(float(d.mean()), float(stats.t.ppf(q, len(d) - 1)) * se, len(d), "paired")
    diff = v.mean - b.mean
    if v.n < 2 or b.n < 2:
        return Difference(diff, None, min(v.n, b.n), "none")
    a, c = v.std ** 2 / v.n, b.std ** 2 / b.n
    se = math.sqrt(a + c)
    if se == 0:
        return Difference(diff, 0.0, min(v.n, b.n), "welch")
    df = (a + c) ** 2 / (a ** 2 / (v.n - 1) + c ** 2 / (b.n - 1))
    return Difference(diff, float(stats.t.ppf(q, df)) * se, min(v.n, b.n), "welch")


# ---------------------------------------------------------------------------------------------
# Formatting

def fmt_value(summary: SeedSummary | None, digits: int = 1) -> str:
    if summary is None:
        return "—"
    return f"{summary.mean:.{digits}f}" + ("" if summary.std is None else f" ± {summary.std:.{digits}f}")


def fmt_difference(diff: Difference | None, digits: int = 1) -> str:
    if diff is None:
        return "—"
    return f"{diff.mean:+.{digits}f}" + ("" if diff.half_width is None else f" ± {diff.half_width:.{digits}f}")


def n_note(sizes: Sequence[int]) -> str:
    """The caption's sentence on n (one sentence for the whole table)."""
    sizes = sorted(set(int(s) for s in sizes))
    if sizes == [1]:
        return SINGLE_RUN_NOTE + "."
    if len(sizes) == 1:
        return f"Mean ± std over n = {sizes[0]} training seeds."
    return f"Mean ± std over each row's n training seeds (n = {sizes[0]}–{sizes[-1]})" + \
        ("; n = 1: no training-variance estimate, no ±." if sizes[0] == 1 else ".")


# ---------------------------------------------------------------------------------------------
# The computed finding

@dataclass(frozen=True)
class Entry:
    """One row of a comparison: ours over seeds, its difference to the baseline, the thesis's numbers."""

    label: str
    ours: SeedSummary
    diff: Difference | None = None           # None for the baseline itself
    thesis: float | None = None
    thesis_baseline: float | None = None

    @property
    def thesis_diff(self) -> float | None:
        if self.thesis is None or self.thesis_baseline is None:
            return None
        return self.thesis - self.thesis_baseline


def noise_clause(diff: Difference) -> str:
    """How the difference compares with the seed noise, in words."""
    if diff.verdict == NO_ESTIMATE:
        return f"{SINGLE_RUN_NOTE}, so it cannot be set against the seed noise"
    how = f"paired over {diff.n} seeds" if diff.method == "paired" else "Welch, unpaired seeds"
    if diff.verdict == NOT_DISTINGUISHABLE:
        return f"95 % interval ± {diff.half_width:.1f} pp, {how}: within the seed noise, not distinguishable"
    return f"95 % interval ± {diff.half_width:.1f} pp, {how}: the difference exceeds the seed noise"


def _thesis_clause(entry: Entry, ours: float, baseline: str) -> str:
    td = entry.thesis_diff
    if td is None:
        return "The thesis reports no comparable number for it."
    agree = (td > 0) == (ours > 0) if td != 0 and ours != 0 else None
    said = f"The thesis has {entry.label} {abs(td):.1f} pp {'above' if td > 0 else 'below'} {baseline}"
    if agree is None:
        return said + "; with no difference on one side, the directions cannot be compared."
    return said + (": the direction agrees with the thesis." if agree else ": the direction is the opposite of the thesis's.")


def finding(entries: Sequence[Entry], measure: str = "IR→RGB Rank-1", baseline: str = "the baseline") -> str:
    """Which entry is best, whether its difference to the baseline exceeds the noise, and whether the
    direction agrees with the thesis; generated from the numbers (markdown, one paragraph)."""
    base = [e for e in entries if e.diff is None]
    others = [e for e in entries if e.diff is not None]
    if not base or not others:
        only = (base or list(entries))[0]
        return (f"Only {only.label} was run: {measure} {fmt_value(only.ours)} % "
                f"(n = {only.ours.n}); nothing to compare it with.")
    best = max(others, key=lambda e: e.diff.mean)
    if best.diff.mean <= 0:
        # the baseline leads: report the closest competitor
        text = (f"{baseline.capitalize()} ({base[0].label}) has the highest {measure}, "
                f"{fmt_value(base[0].ours)} % (n = {base[0].ours.n}). The closest, **{best.label}**, is "
                f"{abs(best.diff.mean):.1f} pp lower ({noise_clause(best.diff)}).")
    else:
        text = (f"Best: **{best.label}**, {measure} {fmt_value(best.ours)} % (n = {best.ours.n}), "
                f"{best.diff.mean:.1f} pp above {baseline} ({noise_clause(best.diff)}).")
    return text + " " + _thesis_clause(best, best.diff.mean, baseline)


def entries_from(groups: Mapping[str, SeedSummary], baseline: str, thesis: Mapping[str, float | None]) -> list[Entry]:
    """Entries for :func:`finding` from ``label -> SeedSummary`` (the baseline label among them)."""
    base = groups[baseline]
    return [Entry(label, s, None if label == baseline else difference(s, base), thesis.get(label), thesis.get(baseline))
            for label, s in groups.items()]

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

**Multiplicity.** The interval rule is the two-sided t-test at α = 0.05 (the interval contains 0
exactly when p ≥ 0.05). A chapter makes k comparisons to its baseline at once, and a finding that
then reports the best of them would inflate the false-positive rate k-fold, so the verdicts of one
chapter's comparisons use Holm–Bonferroni-adjusted p-values (:func:`holm`, statsmodels'
``multipletests``); the ± printed beside a Δ stays its own 95 % interval. The best variant is
labelled as selected after the fact among the k.

**Power.** :func:`minimum_detectable` is the Δ a two-sided t-test at α = 0.05 detects with 80 %
power at the comparison's n and observed seed spread (statsmodels' ``TTestPower`` when paired,
``TTestIndPower`` when not), so "not distinguishable" reads "smaller than that, or absent".
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

ALPHA = 0.05                     # two-sided; the 95 % interval rule is the same test
LEVEL = 1 - ALPHA
POWER = 0.8
HIGHER, LOWER = "higher", "lower"
NOT_DISTINGUISHABLE = "not distinguishable"
NO_ESTIMATE = "no training-variance estimate"
SINGLE_RUN_NOTE = "n = 1 training run: no training-variance estimate"
RULE = ("Δ: difference to the baseline, paired by training seed (Welch when the seeds differ), ± the "
        "half-width of its 95 % t-interval; an interval containing 0 is marked not distinguishable, and a "
        "chapter's k comparisons are judged together (Holm–Bonferroni-adjusted p < 0.05).")


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
    """Variant minus baseline, with its 95 % t-interval half-width, its p-value and the rule's verdict.

    ``p_adjusted`` and ``family`` are set by :func:`holm` when the difference is one of k comparisons
    judged together; the verdict then follows the adjusted p-value."""

    mean: float
    half_width: float | None            # None: no training-variance estimate
    n: int                              # pairs (paired) or the smaller group's size (Welch / none)
    method: str                         # "paired", "welch" or "none"
    p_value: float | None = None        # two-sided t-test of Δ = 0 (None: no estimate, or not computed)
    spread: float | None = None         # sd of the per-seed differences (paired) or pooled sd (Welch)
    n_other: int | None = None          # Welch: the larger group's size
    p_adjusted: float | None = None     # Holm-adjusted within its family
    family: int = 1                     # k: comparisons judged together

    @property
    def p(self) -> float | None:
        return self.p_adjusted if self.p_adjusted is not None else self.p_value

    @property
    def verdict(self) -> str:
        if self.half_width is None:
            return NO_ESTIMATE
        if self.p is not None:
            if not self.p < ALPHA:
                return NOT_DISTINGUISHABLE
        elif abs(self.mean) <= self.half_width:
            return NOT_DISTINGUISHABLE
        return HIGHER if self.mean > 0 else LOWER

    @property
    def distinguishable(self) -> bool:
        return self.verdict in (HIGHER, LOWER)

    def mdd(self, alpha: float = ALPHA) -> float | None:
        """The Δ this comparison would detect with 80 % power (see :func:`minimum_detectable`)."""
        if self.spread is None:
            return None
        return minimum_detectable(self.spread, self.n, paired=self.method == "paired", n_other=self.n_other,
                                  alpha=alpha)


def summarize_seeds(values: Mapping[int, float]) -> SeedSummary:
    if not values:
        raise ValueError("no runs to summarize")
    return SeedSummary(dict(sorted((int(s), float(v)) for s, v in values.items())))


def _p_two_sided(mean: float, se: float, df: float) -> float:
    if se == 0:
        return 1.0 if mean == 0 else 0.0
    return float(2 * stats.t.sf(abs(mean) / se, df))


def difference(variant: SeedSummary | Mapping[int, float], baseline: SeedSummary | Mapping[int, float],
               level: float = LEVEL) -> Difference:
    """The rule of the module docstring: paired when both have the same seeds, Welch otherwise."""
    v = variant if isinstance(variant, SeedSummary) else summarize_seeds(variant)
    b = baseline if isinstance(baseline, SeedSummary) else summarize_seeds(baseline)
    if set(v.values) == set(b.values):
        return paired_contrast({s: v.values[s] - b.values[s] for s in v.values}, level)
    diff = v.mean - b.mean
    if v.n < 2 or b.n < 2:
        return Difference(diff, None, min(v.n, b.n), "none")
    q = 0.5 + level / 2
    a, c = v.std ** 2 / v.n, b.std ** 2 / b.n
    se = math.sqrt(a + c)
    pooled = math.sqrt(((v.n - 1) * v.std ** 2 + (b.n - 1) * b.std ** 2) / (v.n + b.n - 2))
    small, large = sorted((v.n, b.n))
    if se == 0:
        return Difference(diff, 0.0, small, "welch", _p_two_sided(diff, 0.0, 1), pooled, large)
    df = (a + c) ** 2 / (a ** 2 / (v.n - 1) + c ** 2 / (b.n - 1))
    return Difference(diff, float(stats.t.ppf(q, df)) * se, small, "welch", _p_two_sided(diff, se, df), pooled, large)


def paired_contrast(per_seed: Mapping[int, float], level: float = LEVEL) -> Difference:
    """A difference already taken per seed (e.g. a variant minus its baseline, or a difference of two
    drops): its mean, 95 % t-interval half-width and two-sided one-sample t-test against 0."""
    d = np.array(list(per_seed.values()), dtype=float)
    if len(d) == 0:
        raise ValueError("no seeds to compare")
    if len(d) < 2:
        return Difference(float(d.mean()), None, len(d), "none")
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(len(d))
    df = len(d) - 1
    hw = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return Difference(float(d.mean()), hw, len(d), "paired", _p_two_sided(float(d.mean()), se, df), sd)


# ---------------------------------------------------------------------------------------------
# Multiplicity and power

def holm(diffs: Sequence[Difference | None], alpha: float = ALPHA) -> list[Difference | None]:
    """The same differences with Holm–Bonferroni-adjusted p-values over those that have a p-value
    (``family`` = their number k); ``None`` and no-estimate entries pass through unchanged."""
    idx = [i for i, d in enumerate(diffs) if d is not None and d.p_value is not None]
    out = list(diffs)
    if not idx:
        return out
    _, adjusted, _, _ = multipletests([diffs[i].p_value for i in idx], alpha=alpha, method="holm")
    for i, p in zip(idx, adjusted):
        out[i] = replace(diffs[i], p_adjusted=float(p), family=len(idx))
    return out


def minimum_detectable(spread: float, n: int, paired: bool = True, n_other: int | None = None,
                       alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest true Δ a two-sided t-test at ``alpha`` detects with probability ``power``, in the
    units of ``spread``: paired, ``spread`` is the sd of the per-seed differences over n pairs
    (statsmodels ``TTestPower``); unpaired, the pooled sd of two groups of n and ``n_other`` runs
    (``TTestIndPower``). None with too few runs for a t-test."""
    if paired:
        if n < 2:
            return None
        d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="two-sided")
    else:
        n_other = n if n_other is None else n_other
        if n < 2 or n_other < 2:
            return None
        d = TTestIndPower().solve_power(effect_size=None, nobs1=n, ratio=n_other / n, alpha=alpha, power=power,
                                        alternative="two-sided")
    return float(np.asarray(d).item()) * float(spread)


def family_mdd(diffs: Iterable[Difference | None], alpha: float = ALPHA) -> float | None:
    """One detectable Δ for a family of comparisons: the spreads pooled over the comparisons
    (variances weighted by their degrees of freedom) at the smallest n among them. The paired
    comparisons are pooled when there are any (their spread is that of per-seed differences, a
    different scale from the unpaired groups' sd); the unpaired ones otherwise."""
    est = [d for d in diffs if d is not None and d.spread is not None]
    if any(d.method == "paired" for d in est):
        est = [d for d in est if d.method == "paired"]
    if not est:
        return None
    dfs = [(d.n - 1) if d.method == "paired" else (d.n + (d.n_other or d.n) - 2) for d in est]
    if sum(dfs) == 0:
        return None
    pooled = math.sqrt(sum(f * d.spread ** 2 for f, d in zip(dfs, est)) / sum(dfs))
    paired = all(d.method == "paired" for d in est)
    n = min(d.n for d in est)
    n_other = None if paired else min(d.n_other or d.n for d in est)
    return minimum_detectable(pooled, n, paired, n_other, alpha)


def power_sentence(diffs: Sequence[Difference | None], what: str = "a difference") -> str:
    """"Not distinguishable" made quantitative: the family's detectable Δ at α = 0.05 and, with k > 1
    comparisons, at the strictest Holm step (α / k)."""
    est = [d for d in diffs if d is not None and d.spread is not None]
    mdd = family_mdd(est)
    if mdd is None:
        return ("With fewer than two training seeds per side there is no spread to say how large a difference "
                "the study could have detected.")
    paired = any(d.method == "paired" for d in est)
    n = min(d.n for d in est if d.method == "paired" or not paired)
    test = "paired t-test" if paired else "unpaired t-test"
    text = (f"Power: with n = {n} seeds and the observed seed spread, a {test} at α = 0.05 detects {what} of "
            f"{mdd:.1f} pp with 80 % power")
    k = len(est)
    if k > 1:
        strict = family_mdd(est, alpha=ALPHA / k)
        text += f" ({strict:.1f} pp for the first Holm step over the {k} comparisons, α = 0.05 / {k})"
    return text + f"; a \"not distinguishable\" here means smaller than about {mdd:.0f} pp, or absent."


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


def fmt_p(p: float) -> str:
    """A p-value for a table cell: three decimals, "< 0.001" below that."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_text(p: float, name: str = "p") -> str:
    """``p = 0.012`` or ``p < 0.001`` in a sentence."""
    return f"{name} < 0.001" if p < 0.001 else f"{name} = {p:.3f}"


def noise_clause(diff: Difference) -> str:
    """How the difference compares with the seed noise, in words (with the family's Holm-adjusted p)."""
    if diff.verdict == NO_ESTIMATE:
        return f"{SINGLE_RUN_NOTE}, so it cannot be set against the seed noise"
    how = f"paired over {diff.n} seeds" if diff.method == "paired" else "Welch, unpaired seeds"
    if diff.p_adjusted is not None and diff.family > 1:
        how += f"; {p_text(diff.p_adjusted, 'Holm-adjusted p')} over {diff.family} comparisons"
    elif diff.p_value is not None:
        how += f"; {p_text(diff.p_value)}"
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
    """Which entry is best, whether its difference to the baseline exceeds the noise (Holm-adjusted over
    the k comparisons), whether the direction agrees with the thesis, and how large a difference the
    seeds could have detected; generated from the numbers (markdown, one paragraph)."""
    base = [e for e in entries if e.diff is None]
    others = [e for e in entries if e.diff is not None]
    if not base or not others:
        only = (base or list(entries))[0]
        return (f"Only {only.label} was run: {measure} {fmt_value(only.ours)} % "
                f"(n = {only.ours.n}); nothing to compare it with.")
    best = max(others, key=lambda e: e.diff.mean)
    k = len(others)
    picked = f", selected after the fact as the highest of the {k} compared with {baseline}" if k > 1 else ""
    if best.diff.mean <= 0:
        # the baseline leads: report the closest competitor
        text = (f"{baseline.capitalize()} ({base[0].label}) has the highest {measure}, "
                f"{fmt_value(base[0].ours)} % (n = {base[0].ours.n}). The closest, **{best.label}**{picked}, is "
                f"{abs(best.diff.mean):.1f} pp lower ({noise_clause(best.diff)}).")
    else:
        text = (f"Best: **{best.label}**{picked}, {measure} {fmt_value(best.ours)} % (n = {best.ours.n}), "
                f"{best.diff.mean:.1f} pp above {baseline} ({noise_clause(best.diff)}).")
    return " ".join([text, _thesis_clause(best, best.diff.mean, baseline),
                     power_sentence([e.diff for e in others], f"a difference to {baseline}")])


def entries_from(groups: Mapping[str, SeedSummary], baseline: str, thesis: Mapping[str, float | None]) -> list[Entry]:
    """Entries for :func:`finding` from ``label -> SeedSummary`` (the baseline label among them); the
    differences to the baseline form one family (Holm-adjusted, :func:`holm`)."""
    base = groups[baseline]
    labels = list(groups)
    diffs = holm([None if label == baseline else difference(groups[label], base) for label in labels])
    return [Entry(label, groups[label], d, thesis.get(label), thesis.get(baseline)) for label, d in zip(labels, diffs)]


# ---------------------------------------------------------------------------------------------
# Verdicts on the thesis's claims

SUPPORTED, CONTRADICTED = "supported", "contradicted"
NOT_RUN = "not run"
NOT_TESTABLE = "not testable here"
DIRECTIONS = (HIGHER, LOWER, "same")


def claim_verdict(direction: str, diff: Difference | None) -> str:
    """A claim that a contrast is ``higher`` / ``lower`` than 0 (or the ``same``) against our Δ:
    supported when the Δ is distinguishable in the claimed direction, contradicted when it is
    distinguishable in the other (for ``same``: distinguishable at all), otherwise not distinguishable.
    A claim of no difference is never "supported": not distinguishable only bounds the effect."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown claim direction {direction!r} (use one of {DIRECTIONS})")
    if diff is None:
        return NOT_RUN
    v = diff.verdict
    if v in (NO_ESTIMATE, NOT_DISTINGUISHABLE):
        return v
    if direction == "same":
        return CONTRADICTED
    return SUPPORTED if v == direction else CONTRADICTED

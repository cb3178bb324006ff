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
exactly when p ≥ 0.05). A chapter tests k contrasts at once, and reporting the best of them would
inflate the false-positive rate k-fold, so the verdicts use Holm–Bonferroni-adjusted p-values
(:func:`holm`, statsmodels' ``multipletests``), run once over the chapter's one family
(:func:`mace_core.analysis.claims.chapter_family`); the ± printed beside a Δ stays its own 95 %
interval. Every finding lists every contrast with the baseline, not only the best.

**Power.** :func:`minimum_detectable` (:mod:`mace_core.analysis.power`) is the Δ the test actually
used detects with 80 % power at the α it is judged at: the exact power of the two-sided t-test (the
noncentral t of scipy's ``nct`` when paired: df = n − 1, noncentrality Δ/sd·√n; Welch's test's power
integrated over its two sample variances when unpaired) solved for Δ with ``brentq`` inside an
expanding bracket that raises instead of returning a value it did not converge to. Within a Holm family of k the α is
0.05 / k (the first Holm step: a comparison with that power there is rejected by Holm whatever the
others do). A bootstrap difference (:func:`bootstrap_contrast`) uses the normal approximation of its
bootstrap se. Each "not distinguishable" then reads one of two ways (:func:`outcome`): the estimate
is smaller than the detectable Δ X, "any effect is probably smaller than X"; or it is at least X, "the
study cannot tell". Never "absent".

**Units.** Training-time variants (backbone, attention, fusion, identity fraction, occlusion training)
differ over training seeds, paired by seed (the seed fixes data order and initialisation). Test-time
conditions on the same trained models (occlusion types, multi-query pools, re-ranking, direction) are
paired within each seed's model; where per-identity results are stored, :func:`bootstrap_contrast`
resamples training seeds and test identities (a two-level bootstrap), so its interval covers the
training-seed and the finite-test-set variance.
"""
from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from dataclasses import dataclass, replace

import numpy as np

from mace_core.analysis.power import ALPHA, POWER, minimum_detectable, normal_mdd, t_power  # noqa: F401  (re-exported)
from mace_core.errors import MaceError

LEVEL = 1 - ALPHA                # two-sided α = 0.05: the 95 % interval rule is the same test
HIGHER, LOWER = "higher", "lower"
NOT_DISTINGUISHABLE = "not distinguishable"
SMALLER = "any effect is probably smaller than"       # not distinguishable, estimate below the detectable Δ
CANNOT_TELL = "the study cannot tell"                 # not distinguishable, estimate at least the detectable Δ
ONE_SEED_PAGE = ("One training seed per variant: this page cannot tell variants apart (a difference needs at "
                 "least two seeds on each side).")
RANGE = 100.0        # pp: a detectable Δ this large exceeds what a Rank-1 difference can be: the study cannot tell
PM_STD = "mean ± std over training seeds"             # what ± means in a value column
PM_INTERVAL = "Δ ± 95 % interval half-width"         # what ± means in a difference column
NO_ESTIMATE = "no training-variance estimate"
SINGLE_RUN_NOTE = "n = 1 training run: no training-variance estimate"
RULE = ("Δ: difference to the baseline, paired by training seed (Welch when the seeds differ); "
        f"{PM_INTERVAL} (a 95 % t-interval); the chapter's k comparisons form one family, judged by "
        "Holm–Bonferroni-adjusted p < 0.05; a comparison that does not pass reads \"any effect is probably "
        "smaller than X\" when its estimate is below the Δ X its test detects with 80 % power at α = 0.05 / k, "
        "\"the study cannot tell\" otherwise.")


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

    ``p_adjusted``, ``family`` and ``detectable`` are set by :func:`holm` when the difference is one of k
    comparisons judged together; the verdict then follows the adjusted p-value, and every member of
    the family is worded against the same detectable Δ (:func:`family_mdd`)."""

    mean: float
    half_width: float | None            # None: no training-variance estimate
    n: int                              # pairs (paired) or the smaller group's size (Welch / none)
    method: str                         # "paired", "welch" or "none"
    p_value: float | None = None        # two-sided t-test of Δ = 0 (None: no estimate, or not computed)
    spread: float | None = None         # sd of the per-seed differences (paired) or pooled sd (Welch)
    n_other: int | None = None          # Welch: the larger group's size
    p_adjusted: float | None = None     # Holm-adjusted within its family
    family: int = 1                     # k: comparisons judged together
    detectable: float | None = None     # the family's detectable Δ (set by holm; the same for all k)

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

    @property
    def alpha(self) -> float:
        """The α this comparison is judged at for its power: 0.05 / k in a Holm family of k (first step)."""
        return ALPHA / max(1, self.family)

    def mdd(self, alpha: float | None = None) -> float | None:
        """The Δ this comparison's test detects with 80 % power at ``alpha`` (default :attr:`alpha`;
        see :func:`minimum_detectable`); None without a spread."""
        if self.spread is None:
            return None
        alpha = self.alpha if alpha is None else alpha
        if self.method == "bootstrap":
            return normal_mdd(self.spread, alpha)
        return minimum_detectable(self.spread, self.n, paired=self.method == "paired", n_other=self.n_other,
                                  alpha=alpha)

    @property
    def unit(self) -> str:
        """The statistical unit in words (for the page's caption)."""
        return {"paired": f"paired by training seed, n = {self.n} seeds",
                "welch": f"unpaired training seeds (Welch), n = {self.n} and {self.n_other}",
                "bootstrap": f"within each seed's model, two-level bootstrap over {self.n} training seeds and the "
                             "test identities",
                "none": f"n = {self.n} run: no training-variance estimate"}[self.method]


def summarize_seeds(values: Mapping[int, float]) -> SeedSummary:
    if not values:
        raise ValueError("no runs to summarize")
    return SeedSummary(dict(sorted((int(s), float(v)) for s, v in values.items())))


def _p_two_sided(mean: float, se: float, df: float) -> float:
    from scipy import stats   # here, not at the top: a page that tests nothing skips scipy.stats (~0.5 s per kernel)
    if se == 0:
        return 1.0 if mean == 0 else 0.0
    return float(2 * stats.t.sf(abs(mean) / se, df))


def difference(variant: SeedSummary | Mapping[int, float], baseline: SeedSummary | Mapping[int, float],
               level: float = LEVEL) -> Difference:
    """The rule of the module docstring: paired when both have the same seeds, Welch otherwise."""
    from scipy import stats
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
    from scipy import stats
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
    (``family`` = their number k, ``detectable`` = the family's :func:`family_mdd` at α / k); ``None``
    and no-estimate entries pass through unchanged. Call it once per chapter, on the whole family."""
    from statsmodels.stats.multitest import multipletests
    idx = [i for i, d in enumerate(diffs) if d is not None and d.p_value is not None]
    out = list(diffs)
    if not idx:
        return out
    # statsmodels' Holm branch ends in a full gc.collect(), ~0.2 s in a process that holds torch (5.6 s
    # of a cached study re-run): objects frozen beforehand are not scanned, and unfreezing restores them
    gc.freeze()
    try:
        _, adjusted, _, _ = multipletests([diffs[i].p_value for i in idx], alpha=alpha, method="holm")
    finally:
        gc.unfreeze()
    for i, p in zip(idx, adjusted):
        out[i] = replace(diffs[i], p_adjusted=float(p), family=len(idx))
    # one detectable Δ per unit: the t-tests' pooled over the family, a bootstrap contrast its own (at α / k)
    mdd = family_mdd([out[i] for i in idx if out[i].method != "bootstrap"])
    for i in idx:
        own = out[i].mdd(ALPHA / len(idx)) if out[i].method == "bootstrap" else mdd
        out[i] = replace(out[i], detectable=own)
    return out


def family_alpha(diffs: Iterable[Difference | None]) -> float:
    """The α of a family's power statement: 0.05 / k at its first Holm step (k set by :func:`holm`)."""
    return ALPHA / max([1] + [d.family for d in diffs if d is not None])


def family_mdd(diffs: Iterable[Difference | None], alpha: float | None = None) -> float | None:
    """One detectable Δ for a family of comparisons at ``alpha`` (default :func:`family_alpha`): the
    t-test spreads pooled over the comparisons (variances weighted by their degrees of freedom) at the
    smallest n among them. The paired comparisons are pooled when there are any (their spread is that
    of per-seed differences, a different scale from the unpaired groups' sd); the unpaired ones
    otherwise; a family of bootstrap differences only gives its largest detectable Δ."""
    diffs = [d for d in diffs if d is not None]
    alpha = family_alpha(diffs) if alpha is None else alpha
    est = [d for d in diffs if d.spread is not None]
    boot = [d for d in est if d.method == "bootstrap"]
    est = [d for d in est if d.method != "bootstrap"]
    if any(d.method == "paired" for d in est):
        est = [d for d in est if d.method == "paired"]
    if not est:
        return max((d.mdd(alpha) for d in boot), default=None)
    dfs = [(d.n - 1) if d.method == "paired" else (d.n + (d.n_other or d.n) - 2) for d in est]
    if sum(dfs) == 0:
        return None
    pooled = math.sqrt(sum(f * d.spread ** 2 for f, d in zip(dfs, est)) / sum(dfs))
    paired = all(d.method == "paired" for d in est)
    n = min(d.n for d in est)
    n_other = None if paired else min(d.n_other or d.n for d in est)
    return minimum_detectable(pooled, n, paired, n_other, alpha)


def outcome(diff: Difference | None, mdd: float | None = None) -> str:
    """The comparison's result in exactly one of three wordings: distinguishable with its sign
    ("distinguishable, higher" / "distinguishable, lower"); not distinguishable with the estimate
    below the detectable Δ X ("not distinguishable; any effect is probably smaller than X pp"); not
    distinguishable with the estimate at least X ("not distinguishable; the study cannot tell
    (detectable from X pp)"). ``mdd`` defaults to the family's (``diff.detectable``, set by
    :func:`holm`), else the comparison's own (:meth:`Difference.mdd`). Without a spread: :data:`NO_ESTIMATE`.

    With the comparison's own spread a t-test that does not pass always has its estimate below its own
    detectable Δ; against the family's (pooled) spread, a comparison noisier than its family can have
    an estimate at least X and still not pass: then the study cannot tell. So can a study whose X is at
    least 100 pp (:data:`RANGE`, more than a Rank-1 difference can be): its bound says nothing."""
    if diff is None or diff.verdict == NO_ESTIMATE:
        return NO_ESTIMATE
    if diff.distinguishable:
        return f"distinguishable, {diff.verdict}"
    if mdd is None:
        mdd = diff.detectable if diff.detectable is not None else diff.mdd()
    if mdd is None:
        return NOT_DISTINGUISHABLE
    if abs(diff.mean) >= mdd > 0 or mdd >= RANGE:
        return f"{NOT_DISTINGUISHABLE}; {CANNOT_TELL} (detectable from {mdd:.1f} pp)"
    return f"{NOT_DISTINGUISHABLE}; {SMALLER} {mdd:.1f} pp"


def power_sentence(diffs: Sequence[Difference | None], what: str = "a difference") -> str:
    """"Not distinguishable" made quantitative: the family's detectable Δ at the α of its first Holm step
    (0.05 / k), and how to read a comparison that does not pass."""
    est = [d for d in diffs if d is not None and d.spread is not None]
    boot = [d for d in est if d.method == "bootstrap"]
    est = [d for d in est if d.method != "bootstrap"]
    k = max([d.family for d in est + boot] or [1])
    alpha = "α = 0.05" if k == 1 else f"α = 0.05 / {k} (the first Holm step over the chapter's {k} comparisons)"
    reading = (f"; a comparison that does not pass reads \"{SMALLER} X\" when its estimate is below X, "
               f"\"{CANNOT_TELL}\" otherwise.")
    parts = []
    if est:
        # the chapter family's detectable Δ where holm set it (the number its table, claims and overview use)
        mdd = next((d.detectable for d in est if d.detectable is not None), None) or family_mdd(est)
        paired = any(d.method == "paired" for d in est)
        n = min(d.n for d in est if d.method == "paired" or not paired)
        test = "paired t-test" if paired else "Welch t-test"
        if mdd is not None:
            parts.append(f"with n = {n} seeds and the observed seed spread, a {test} at {alpha} detects {what} of "
                         f"{mdd:.1f} pp with 80 % power (exact noncentral-t power)")
    if boot:
        xs = [d.detectable if d.detectable is not None else d.mdd() for d in boot]
        span = f"{min(xs):.1f}" if round(min(xs), 1) == round(max(xs), 1) else f"{min(xs):.1f}–{max(xs):.1f}"
        parts.append(f"the two-level bootstrap over {min(d.n for d in boot)} training seeds and the test identities "
                     f"(test-time conditions, paired within each seed's model) detects {span} pp at "
                     f"{alpha if not parts else 'the same α'}; more seeds shrink only its training-seed part, "
                     "the spread between test identities only more test identities would")
    if not parts:
        return ("With fewer than two training seeds per side there is no spread to say how large a difference "
                "the study could have detected.")
    return "Power: " + "; ".join(parts) + reading


# ---------------------------------------------------------------------------------------------
# Test-time conditions: the two-level bootstrap over training seeds and test identities

def bootstrap_contrast(per_identity: Mapping[int, Mapping[Any, float]], n_boot: int = 10_000, level: float = LEVEL,
                       seed: int = 0) -> Difference:
    """A test-time contrast on the same trained models, ``seed -> {test identity: paired difference}``
    (e.g. occluded minus clean Rank-1 of that identity's queries, in pp): the mean over seeds of the
    mean over identities, and a two-level bootstrap that resamples the training seeds and, crossed with
    them, the test identities (every seed's model is evaluated on the same identities), so its interval
    covers both the training-seed and the finite-test-set variance. ``half_width``: the larger side of
    the percentile interval; ``p_value``: the two-sided bootstrap p (floored at 1 / n_boot); ``spread``:
    the bootstrap se (its detectable Δ is :func:`normal_mdd`). Fewer than two seeds: no estimate."""
    seeds = sorted(per_identity)
    if not seeds:
        raise ValueError("no seeds to bootstrap")
    ids = sorted(per_identity[seeds[0]])
    for s in seeds:
        if sorted(per_identity[s]) != ids:
            raise MaceError(f"seed {s} was evaluated on other test identities than seed {seeds[0]}",
                            "evaluate every seed's model on the same test set")
    if not ids:
        raise ValueError("no test identities to bootstrap")
    d = np.array([[float(per_identity[s][i]) for i in ids] for s in seeds])
    mean = float(d.mean())
    if len(seeds) < 2:
        return Difference(mean, None, len(seeds), "none")
    rng = np.random.default_rng(seed)
    n_s, n_i = d.shape
    ws = rng.multinomial(n_s, np.full(n_s, 1 / n_s), size=n_boot)        # seed draws, as counts
    wi = rng.multinomial(n_i, np.full(n_i, 1 / n_i), size=n_boot)        # identity draws, as counts
    boot = np.einsum("bs,si,bi->b", ws, d, wi) / (n_s * n_i)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    p = min(1.0, 2 * min(np.mean(boot <= 0), np.mean(boot >= 0)))
    p = max(p, 1 / n_boot)
    half = float(max(mean - lo, hi - mean))
    return Difference(mean, half, n_s, "bootstrap", float(p), float(boot.std(ddof=1)))


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


def test_text(diff: Difference) -> str:
    """The test and its p in words: "paired over 5 seeds; Holm-adjusted p = 0.012 over 4 comparisons"."""
    how = {"paired": f"paired over {diff.n} seeds", "welch": "Welch, unpaired seeds",
           "bootstrap": f"bootstrap over {diff.n} seeds and the test identities"}.get(diff.method, diff.method)
    if diff.p_adjusted is not None and diff.family > 1:
        how += f"; {p_text(diff.p_adjusted, 'Holm-adjusted p')} over {diff.family} comparisons"
    elif diff.p_value is not None:
        how += f"; {p_text(diff.p_value)}"
    return how


def noise_clause(diff: Difference) -> str:
    """How the difference compares with the noise, in words: its interval, its test (with the family's
    Holm-adjusted p) and its :func:`outcome`."""
    if diff.verdict == NO_ESTIMATE:
        return f"{SINGLE_RUN_NOTE}, so it cannot be set against the seed noise"
    return f"95 % interval ± {diff.half_width:.1f} pp, {test_text(diff)}: {outcome(diff)}"


def finding(entries: Sequence[Entry], measure: str = "IR→RGB Rank-1", baseline: str = "the baseline") -> str:
    """The chapter's result as a paper's results section states it, in at most three sentences: every
    comparison with the baseline (its Δ, its Holm-adjusted p and its :func:`outcome`), the thesis's
    directions, and how large a difference the seeds could detect; generated from the numbers (markdown)."""
    base = [e for e in entries if e.diff is None]
    others = [e for e in entries if e.diff is not None]
    if not base or not others:
        only = (base or list(entries))[0]
        return (f"Only {only.label} was run: {measure} {fmt_value(only.ours)} % "
                f"(n = {only.ours.n}); nothing to compare it with.")
    if all(e.diff.verdict == NO_ESTIMATE for e in others):
        return ONE_SEED_PAGE
    k = max(e.diff.family for e in others)
    family = f", Holm-adjusted over the {k} comparisons" if k > 1 else ""
    parts = []
    for e in sorted(others, key=lambda e: -e.diff.mean):
        d = e.diff
        if d.verdict == NO_ESTIMATE:
            parts.append(f"**{e.label}** {d.mean:+.1f} pp ({NO_ESTIMATE})")
            continue
        p = "" if d.p is None else f"{p_text(d.p, 'Holm p' if d.family > 1 else 'p')}; "
        parts.append(f"**{e.label}** {fmt_difference(d)} pp ({p}{outcome(d)})")
    b = base[0]
    text = (f"Against {baseline} ({b.label}, {measure} {fmt_value(b.ours)} %, n = {b.ours.n}){family}: "
            + ", ".join(parts) + ".")
    return " ".join([text, _thesis_sentence(others, baseline),
                     power_sentence([e.diff for e in others], f"a difference to {baseline}")])


def _thesis_sentence(others: Sequence[Entry], baseline: str) -> str:
    """The thesis's Δ of each comparison and whether our sign agrees (one sentence)."""
    with_thesis = [e for e in others if e.thesis_diff is not None]
    if not with_thesis:
        return "The thesis reports no comparable numbers."
    agree = [e for e in with_thesis if e.diff.mean != 0 and e.thesis_diff != 0
             and (e.diff.mean > 0) == (e.thesis_diff > 0)]
    listed = ", ".join(f"{e.label} {e.thesis_diff:+.1f} pp" for e in with_thesis)
    if len(with_thesis) == 1:
        e = with_thesis[0]
        return (f"The thesis has {e.label} {abs(e.thesis_diff):.1f} pp {'above' if e.thesis_diff > 0 else 'below'} "
                f"{baseline}: the direction " + ("agrees with the thesis." if agree else "is the opposite of the thesis's."))
    return f"The thesis has {listed} against {baseline}; our sign agrees for {len(agree)} of {len(with_thesis)}."


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

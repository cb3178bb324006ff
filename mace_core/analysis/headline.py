"""Headline numbers (the book's "results at a glance" page): one comparison per experiment.

:func:`headline` picks each experiment's headline comparison (the best variant, pool or the largest
occlusion drop) beside the thesis, with its verdict and the chapter's thesis claims tested.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mace_core.analysis import findings as fd, thesis_numbers as tn
from mace_core.analysis.claims import ClaimResult, claim_results
from mace_core.analysis.multi_query_tables import mq_entries, multi_query_finding
from mace_core.analysis.occlusion_tables import occlusion_comparisons, occlusion_finding
from mace_core.analysis.results import MISSING, mq_groups, occ_groups, occ_training, over_seeds
from mace_core.analysis.tables import experiment_finding, fmt
from mace_core.analysis.thesis_rows import baseline_row, entries_of, experiment_rows
from mace_core.errors import MaceError


@dataclass(frozen=True)
class Headline:
    """One experiment's headline comparison, as display strings, and its tested thesis claims."""

    measure: str
    ours: str
    thesis: str
    diff: str = MISSING
    thesis_diff: str = MISSING
    noise: str = MISSING            # "exceeds" | "not distinguishable" | "n = 1"
    direction: str = MISSING        # "agrees" | "opposite" | "—"
    finding: str = ""
    mdd: str = MISSING              # the family's Δ detectable with 80 % power at α = 0.05 / k (pp)
    claims: tuple[ClaimResult, ...] = ()
    method: str = ""                # the Δ's test (findings.Difference.method): "bootstrap" for test-time rows


# Marks a comparison picked after the fact (the best of k, or the largest of k drops); the overview's
# note under its table says so in words (a short mark keeps the table as narrow as the page).
PICKED = "†"
PICKED_NOTE = ("† picked after the fact: the best of the chapter's k comparisons (for occlusion, the largest of the "
               "baseline's k drops); its verdict is Holm-adjusted in the chapter's family.")

def _noise(diff: fd.Difference) -> str:
    """The overview's verdict cell: the three outcomes of :func:`findings.outcome`, short."""
    if diff.verdict == fd.NO_ESTIMATE:
        return "n = 1: no estimate"
    if diff.distinguishable:
        return f"exceeds ({diff.verdict})"
    worded = fd.outcome(diff)
    return "cannot tell" if fd.CANNOT_TELL in worded else "probably smaller" if fd.SMALLER in worded else \
        "not distinguishable"


def fmt_signed(value: float | None) -> str:
    return MISSING if value is None else f"{value:+.1f}"


def _direction(ours: float | None, thesis: float | None) -> str:
    if ours is None or thesis is None or ours == 0 or thesis == 0:
        return MISSING
    return "agrees" if (ours > 0) == (thesis > 0) else "opposite"


def _fmt_mdd(diffs: Iterable[fd.Difference | None], shown: fd.Difference | None = None) -> str:
    """The detectable Δ of the ``shown`` comparison in its chapter family (the same number its page
    states): the family's pooled one for t-tests, a bootstrap contrast's own."""
    diffs = [d for d in diffs if d is not None]
    mdd = (shown.detectable if shown is not None else None) or \
        next((d.detectable for d in diffs if d.detectable is not None), None) or fd.family_mdd(diffs)
    return MISSING if mdd is None else f"{mdd:.1f}"


def _headline_of(entries: Sequence[fd.Entry], measure: str, baseline: str, finding: str,
                 claims: Sequence[ClaimResult] = ()) -> Headline:
    others = [e for e in entries if e.diff is not None]
    if not others:
        e = entries[0]
        return Headline(e.label, fd.fmt_value(e.ours), fmt(e.thesis), finding=finding, claims=tuple(claims))
    best = max(others, key=lambda e: e.diff.mean)
    td = best.thesis_diff
    picked = f" (best of {len(others)}{PICKED})" if len(others) > 1 else ""
    return Headline(f"{best.label} vs {baseline}{picked}", fd.fmt_value(best.ours), fmt(best.thesis),
                    fd.fmt_difference(best.diff), fmt_signed(td),
                    _noise(best.diff), _direction(best.diff.mean, td), finding,
                    _fmt_mdd((e.diff for e in others), best.diff), tuple(claims), best.diff.method)


def headline(experiment: str, runs: Sequence[Any], evals: Iterable[Mapping[str, Any]] | None = None) -> Headline:
    """The experiment's headline: the best variant (or pool, or the occlusion drop) beside the thesis,
    its verdict after the chapter's Holm correction, the detectable Δ, and the chapter's claims tested."""
    evals = list(evals or [])
    claims = claim_results(experiment, runs, evals)
    if experiment == "04_multi_query":
        groups = mq_groups(evals)
        single = next((k for k in groups if k[0] == 1), None)
        if single is None:
            raise MaceError("no single-query evaluation stored", "execute the multi-query summary notebook")
        return _headline_of(mq_entries(evals), "Rank-1", "n = 1",
                            multi_query_finding(evals, with_claims=False), claims)
    if experiment == "06_occlusion":
        found = occlusion_comparisons(runs, evals)
        if isinstance(found, str):
            raise MaceError("no occluded evaluation of the baseline stored", "execute the occlusion summary notebook")
        drops, gains, costs = found
        worst = max(drops, key=lambda k: drops[k].mean)
        # Shown as the other rows are: ours = Rank-1 under the condition (mean ± std over seeds), Δ =
        # occluded − clean (negative for a drop) with its interval, so ± keeps one meaning per column.
        effect = dataclasses.replace(drops[worst], mean=-drops[worst].mean)
        groups, conds = occ_groups(runs, evals)
        base = next(m for m, members in groups.items() if occ_training(members[0]) == "baseline")
        ref = tn.TABLE9.get(("baseline", worst), {})
        ref_diff = -ref["R1_drop"] if "R1_drop" in ref else None
        picked = f", largest drop of {len(drops)}{PICKED}" if len(drops) > 1 else ""
        return Headline(f"baseline, {worst} vs clean queries{picked}", fd.fmt_value(over_seeds(conds[base][worst], "R1")),
                        fmt(ref.get("occ_R1")), fd.fmt_difference(effect), fmt_signed(ref_diff), _noise(effect),
                        _direction(effect.mean, ref_diff), occlusion_finding(runs, evals, with_claims=False),
                        _fmt_mdd(list(drops.values()) + list(gains.values()) + list(costs.values()), drops[worst]),
                        tuple(claims), effect.method)
    rows = experiment_rows(experiment, runs)
    finding = experiment_finding(experiment, runs, with_claims=False)
    base = baseline_row(rows)
    return _headline_of(entries_of(experiment, rows), "Rank-1", base.label if base else "baseline", finding, claims)

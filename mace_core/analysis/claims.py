"""The thesis's claims (:mod:`mace_core.analysis.thesis_claims`), each tested on our numbers.

:func:`claim_results` tests every claim of an experiment (Holm-adjusted within the chapter);
:func:`claim_line` and :func:`claims_block` write the verdicts under a chapter's finding.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mace_core.analysis import findings as fd, thesis_claims as tc
from mace_core.analysis.results import group_runs, mq_groups, occ_groups, occ_training, over_seeds, seed_results
from mace_core.analysis.thesis_rows import SPECS, spec_of
from mace_core.errors import MaceError


def condition_values(experiment: str, runs: Sequence[Any], evals: Iterable[Mapping[str, Any]] | None = None,
                     metric: str = "R1") -> dict[Any, dict[int, float]]:
    """``condition key -> {seed: value}`` in the key space of :mod:`thesis_claims` (first variant per key)."""
    out: dict[Any, dict[int, float]] = {}

    def put(key: Any, by_seed: Mapping[int, Mapping[str, Any]]) -> None:
        s = over_seeds(by_seed, metric)
        if s is not None and key not in out:
            out[key] = dict(s.values)

    if experiment == "04_multi_query":
        for (n, fusion), by_seed in sorted(mq_groups(list(evals or [])).items()):
            put((1, None) if n == 1 else (n, fusion), by_seed)
            put((n, fusion), by_seed)
    elif experiment == "06_occlusion":
        groups, conds = occ_groups(runs, list(evals or []))
        for model, members in groups.items():
            for occ, by_seed in conds[model].items():
                put((occ_training(members[0]), occ), by_seed)
    elif experiment in SPECS:
        spec = spec_of(experiment)
        for members in group_runs(runs).values():
            put(spec.key(members[0]), seed_results(members))
    return out


def contrast(values: Mapping[Any, Mapping[int, float]], weights: Mapping[Any, float]) -> fd.Difference | None:
    """Σ weight · value per seed. A plain difference (+1, −1) follows :func:`findings.difference` (paired,
    Welch when the seeds differ); a longer contrast uses the seeds common to all its terms. None when
    a term was not run."""
    if any(key not in values for key in weights):
        return None
    keys = list(weights)
    if len(keys) == 2 and sorted(weights.values()) == [-1.0, 1.0]:
        pos, neg = (keys if weights[keys[0]] > 0 else keys[::-1])
        return fd.difference(values[pos], values[neg])
    common = set.intersection(*(set(values[k]) for k in keys))
    if not common:
        means = {k: float(np.mean(list(values[k].values()))) for k in keys}
        return fd.Difference(sum(w * means[k] for k, w in weights.items()), None, 1, "none")
    return fd.paired_contrast({s: sum(w * values[k][s] for k, w in weights.items()) for s in sorted(common)})


@dataclass(frozen=True)
class ClaimResult:
    """One thesis claim tested on our numbers (``diff`` Holm-adjusted within the chapter's claims)."""

    claim: tc.Claim
    diff: fd.Difference | None
    thesis: float | None

    @property
    def verdict(self) -> str:
        if not self.claim.contrast:
            return fd.NOT_TESTABLE
        return fd.claim_verdict(self.claim.direction, self.diff)


def claim_results(experiment: str, runs: Sequence[Any], evals: Iterable[Mapping[str, Any]] | None = None) -> list[ClaimResult]:
    """Every claim of :data:`thesis_claims.CLAIMS` for this experiment, tested on the stored numbers."""
    claims = tc.claims_for(experiment)
    if not claims:
        return []
    try:
        values = condition_values(experiment, runs, evals)
    except MaceError:
        values = {}
    diffs = fd.holm([contrast(values, c.contrast) if c.contrast else None for c in claims])
    return [ClaimResult(c, d, tc.thesis_delta(c)) for c, d in zip(claims, diffs)]


def claim_line(result: ClaimResult) -> str:
    """One verdict line: the claim (§), the contrast, the thesis's Δ, ours and the verdict."""
    c, d = result.claim, result.diff
    head = f"§{c.section}: {c.statement}"
    if not c.contrast:
        return f"{head} — *{fd.NOT_TESTABLE}*: {c.untestable}."
    thesis = "" if result.thesis is None else f"thesis {result.thesis:+.1f} pp, "
    if d is None:
        return f"{head} — {c.test}: {thesis}ours *{fd.NOT_RUN}* (a condition it needs has no stored result)."
    ours = f"ours {fd.fmt_difference(d)} pp"
    if d.p is not None:
        ours += f" ({fd.p_text(d.p, 'Holm p' if d.family > 1 else 'p')})"
    verdict = result.verdict
    tail = ""
    if verdict == fd.NOT_DISTINGUISHABLE:
        mdd = d.mdd()
        bound = "" if mdd is None else f", detectable at 80 % power from about {mdd:.1f} pp"
        tail = (f": consistent with the claim only as far as the noise allows{bound}" if c.direction == tc.SAME
                else f": smaller than the noise{bound}, or absent")
    elif verdict == fd.NO_ESTIMATE:
        tail = ": n = 1, no training-variance estimate"
    return f"{head} — {c.test}: {thesis}{ours}: **{verdict}**{tail}."


def claims_block(results: Sequence[ClaimResult]) -> str:
    """The finding's second part: one verdict line per thesis claim of the chapter (markdown list)."""
    if not results:
        return ""
    k = sum(1 for r in results if r.diff is not None and r.diff.p_value is not None)
    intro = ("\n\n**The thesis's claims for this chapter**, each tested in the thesis's direction"
             + (f" (Holm–Bonferroni over the {k} tested claims)" if k > 1 else "") + ":\n\n")
    return intro + "\n".join(f"- {claim_line(r)}" for r in results)

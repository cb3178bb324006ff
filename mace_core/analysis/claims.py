"""The thesis's claims (:mod:`mace_core.analysis.thesis_claims`) and the chapter's one Holm family.

:func:`chapter_family` defines, once per chapter, every contrast the chapter's page reports: the
comparisons of its table and finding (each variant against the baseline; for multi-query each pool
against the single query; for occlusion each model's Rank-1 drop, each occlusion-trained model's
gain on its own type and its cost on clean queries) and every testable thesis claim, each contrast once. Holm–Bonferroni runs once
over all of them, so a contrast has one adjusted p wherever it is printed (table, finding, claims,
overview). :func:`family_block` lists the family on the chapter page. :func:`claim_results` tests
every claim in that family; :func:`claim_line` and :func:`claims_block` write the verdicts.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mace_core.analysis import findings as fd, thesis_claims as tc
from mace_core.analysis.results import (group_runs, identity_rank1, mq_groups, occ_groups, occ_training, over_seeds,
                                        seed_results)
from mace_core.analysis.thesis_rows import SPECS, spec_of
from mace_core.errors import MaceError


def _test_time_groups(experiment: str, runs: Sequence[Any], evals: Iterable[Mapping[str, Any]] | None
                      ) -> Iterator[tuple[Any, Mapping[int, Mapping[str, Any]]]]:
    """``(condition key, {seed: result})`` of a test-time experiment (04 multi-query, 06 occlusion), in
    the key space of :mod:`thesis_claims`; a multi-query n = 1 result also stands for the fusion-free key."""
    if experiment == "04_multi_query":
        for (n, fusion), by_seed in sorted(mq_groups(list(evals or [])).items()):
            if n == 1:
                yield (1, None), by_seed
            yield (n, fusion), by_seed
    elif experiment == "06_occlusion":
        groups, conds = occ_groups(runs, list(evals or []))
        for model, members in groups.items():
            for occ, by_seed in conds[model].items():
                yield (occ_training(members[0]), occ), by_seed


def condition_values(experiment: str, runs: Sequence[Any], evals: Iterable[Mapping[str, Any]] | None = None,
                     metric: str = "R1") -> dict[Any, dict[int, float]]:
    """``condition key -> {seed: value}`` in the key space of :mod:`thesis_claims` (first variant per key)."""
    out: dict[Any, dict[int, float]] = {}
    if experiment in ("04_multi_query", "06_occlusion"):
        groups = _test_time_groups(experiment, runs, evals)
    elif experiment in SPECS:
        spec = spec_of(experiment)
        groups = ((spec.key(members[0]), seed_results(members)) for members in group_runs(runs).values())
    else:
        groups = iter(())
    for key, by_seed in groups:
        s = over_seeds(by_seed, metric)
        if s is not None and key not in out:
            out[key] = dict(s.values)
    return out


TEST_TIME = ("04_multi_query", "06_occlusion")     # conditions evaluated on the same trained models


def condition_identities(experiment: str, runs: Sequence[Any], evals: Iterable[Mapping[str, Any]] | None = None
                         ) -> dict[Any, dict[int, dict[int, float]]]:
    """``condition key -> {seed: {test identity: Rank-1 %}}`` of a test-time experiment, where the
    evaluations stored per-identity results (key space of :func:`condition_values`)."""
    out: dict[Any, dict[int, dict[int, float]]] = {}
    try:
        for key, by_seed in _test_time_groups(experiment, runs, evals):
            per = {seed: r for seed, res in by_seed.items() if (r := identity_rank1(res))}
            if per and key not in out:
                out[key] = per
    except MaceError:
        return {}
    return out


def _same_model(experiment: str, keys: Sequence[Any]) -> bool:
    """Whether two condition keys are evaluations of the same trained models (paired within each seed's
    model): every multi-query pool is the baseline's; occlusion keys are (training, condition)."""
    if experiment == "04_multi_query":
        return True
    return experiment == "06_occlusion" and len({k[0] for k in keys}) == 1


def test_time_contrast(experiment: str, identities: Mapping[Any, Mapping[int, Mapping[int, float]]],
                       weights: Mapping[Any, float]) -> fd.Difference | None:
    """A contrast of two conditions on the same models as a two-level bootstrap over training seeds and
    test identities (:func:`findings.bootstrap_contrast`); None when it is not such a contrast or the
    per-identity results are missing (the caller then uses the t-test over seeds)."""
    keys = list(weights)
    if experiment not in TEST_TIME or len(keys) != 2 or sorted(weights.values()) != [-1.0, 1.0] \
            or not _same_model(experiment, keys) or any(k not in identities for k in keys):
        return None
    pos, neg = keys if weights[keys[0]] > 0 else keys[::-1]
    seeds = sorted(set(identities[pos]) & set(identities[neg]))
    if len(seeds) < 2 or any(set(identities[pos][s]) != set(identities[neg][s]) for s in seeds):
        return None
    per = {s: {i: identities[pos][s][i] - identities[neg][s][i] for i in identities[pos][s]} for s in seeds}
    if len({frozenset(v) for v in per.values()}) != 1:
        return None
    return fd.bootstrap_contrast(per)


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


Weights = Mapping[Any, float]


def contrast_key(weights: Weights) -> tuple:
    """A contrast's identity: its terms and weights, order-free and sign-free (a claim "occluded − clean"
    and a table's drop "clean − occluded" are one member of the family, read with opposite signs)."""
    terms = sorted((repr(k), float(w)) for k, w in weights.items() if w != 0)
    sign = -1.0 if terms and terms[0][1] < 0 else 1.0
    return tuple((k, sign * w) for k, w in terms)


def orientation(weights: Weights) -> float:
    terms = sorted((repr(k), float(w)) for k, w in weights.items() if w != 0)
    return -1.0 if terms and terms[0][1] < 0 else 1.0


@dataclass(frozen=True)
class Member:
    label: str
    weights: Weights
    diff: fd.Difference | None


@dataclass(frozen=True)
class Family:
    """A chapter's comparisons, Holm-adjusted together (:func:`chapter_family`)."""

    experiment: str
    members: tuple[Member, ...]

    @property
    def k(self) -> int:
        return sum(1 for m in self.members if m.diff is not None and m.diff.p_value is not None)

    def get(self, weights: Weights) -> fd.Difference | None:
        """The family's (adjusted) difference for a contrast; None when it is not a member or not run."""
        key = contrast_key(weights)
        member = next((m for m in self.members if contrast_key(m.weights) == key), None)
        if member is None or member.diff is None:
            return None
        if orientation(member.weights) == orientation(weights):
            return member.diff
        return replace(member.diff, mean=-member.diff.mean)      # the same test read the other way round

    def diffs(self) -> list[fd.Difference]:
        return [m.diff for m in self.members if m.diff is not None and m.diff.p_value is not None]


def _comparisons(experiment: str, runs: Sequence[Any], evals: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict]]:
    """The contrasts the chapter's table and finding report, in :func:`condition_values`'s key space."""
    out: list[tuple[str, dict]] = []
    if experiment == "04_multi_query":
        for n, fusion in sorted(mq_groups(evals)):
            if n > 1:
                out.append((f"n = {n}, {fusion} vs n = 1", {(n, fusion): 1.0, (1, None): -1.0}))
    elif experiment == "06_occlusion":
        try:
            groups, conds = occ_groups(runs, evals)
        except MaceError:
            return out
        trained = {model: occ_training(members[0]) for model, members in groups.items()}
        for model, members in groups.items():
            for occ in conds[model]:
                if occ is not None:
                    out.append((f"{model}: drop on {occ}", {(trained[model], None): 1.0, (trained[model], occ): -1.0}))
        for model, training in trained.items():
            if training == "baseline":
                continue
            for occ in training.split("+"):
                out.append((f"{model} vs baseline on {occ}", {(training, occ): 1.0, ("baseline", occ): -1.0}))
            out.append((f"{model} vs baseline on clean queries", {(training, None): 1.0, ("baseline", None): -1.0}))
    elif experiment in SPECS and experiment != "00_baseline":
        spec = spec_of(experiment)
        for members in group_runs(runs).values():
            key = spec.key(members[0])
            if key != spec.baseline_key:
                out.append((f"{spec.label(members[0])} vs baseline", {key: 1.0, spec.baseline_key: -1.0}))
    return out


def chapter_family(experiment: str, runs: Sequence[Any], evals: Iterable[Mapping[str, Any]] | None = None,
                   metric: str = "R1") -> Family:
    """The chapter's one Holm family (module docstring): its comparisons and testable claims, each
    contrast once, with Holm-adjusted p-values and one detectable Δ."""
    evals = list(evals or [])
    try:
        values = condition_values(experiment, runs, evals, metric)
    except MaceError:
        values = {}
    seen: dict[tuple, tuple[str, Weights]] = {}
    for label, weights in _comparisons(experiment, runs, evals) + \
            [(f"§{c.section}: {c.test}", c.contrast) for c in tc.claims_for(experiment) if c.contrast]:
        seen.setdefault(contrast_key(weights), (label, weights))
    listed = list(seen.values())
    identities = condition_identities(experiment, runs, evals) if experiment in TEST_TIME else {}
    diffs = fd.holm([test_time_contrast(experiment, identities, w) or contrast(values, w) for _, w in listed])
    return Family(experiment, tuple(Member(label, w, d) for (label, w), d in zip(listed, diffs)))


def family_block(family: Family) -> str:
    """The family on the chapter page (markdown): every member, its Δ ± 95 % interval, its Holm p and outcome."""
    tested = [m for m in family.members if m.diff is not None and m.diff.p_value is not None]
    if not tested:
        return ""
    xs = sorted({round(m.diff.detectable, 1) for m in tested if m.diff.detectable is not None})
    span = "" if not xs else f"{xs[0]:.1f} pp" if len(xs) == 1 else f"{xs[0]:.1f}–{xs[-1]:.1f} pp (by unit)"
    units = "; ".join(sorted({m.diff.unit for m in tested}))
    head = (f"\n\n**This chapter's Holm family**: the {len(tested)} contrasts below are judged together "
            f"(Holm–Bonferroni, α = 0.05); every p on this page is adjusted in it"
            + ("" if not span else f", and a difference of {span} is detectable with 80 % power at "
               f"α = 0.05 / {len(tested)}") + f". Unit: {units}; {fd.PM_INTERVAL}:\n\n")
    return head + "\n".join(f"{i}. {m.label}: {fd.fmt_difference(m.diff)} pp, {fd.p_text(m.diff.p, 'Holm p')}, "
                             f"{fd.outcome(m.diff)}" for i, m in enumerate(tested, 1))


@dataclass(frozen=True)
class ClaimResult:
    """One thesis claim tested on our numbers (``diff`` Holm-adjusted in the chapter's family)."""

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
    family = chapter_family(experiment, runs, evals)
    return [ClaimResult(c, family.get(c.contrast) if c.contrast else None, tc.thesis_delta(c)) for c in claims]


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
        worded = fd.outcome(d)                       # "not distinguishable; any effect is ... / the study cannot tell ..."
        rest = worded.split("; ", 1)[1] if "; " in worded else ""
        if c.direction == tc.SAME:
            tail = ": consistent with the claim only as far as the noise allows" + (f"; {rest}" if rest else "")
        elif rest:
            tail = f": {rest}"
    elif verdict == fd.NO_ESTIMATE:
        tail = ": n = 1, no training-variance estimate"
    return f"{head} — {c.test}: {thesis}{ours}: **{verdict}**{tail}."


def claims_block(results: Sequence[ClaimResult]) -> str:
    """The finding's second part: one verdict line per thesis claim of the chapter (markdown list)."""
    if not results:
        return ""
    k = max([r.diff.family for r in results if r.diff is not None and r.diff.p_value is not None] or [1])
    intro = ("\n\n**The thesis's claims for this chapter**, each tested in the thesis's direction"
             + (f" (Holm–Bonferroni over the chapter's family of {k})" if k > 1 else "") + ":\n\n")
    return intro + "\n".join(f"- {claim_line(r)}" for r in results)

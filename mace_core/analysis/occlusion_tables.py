"""Experiment 6's table, figure frame and finding: occlusion robustness (Table 9).

Inputs are each model's runs (their results.json: the clean evaluation) and occluded evaluations,
items with ``seed`` (default 0), ``model`` (a variant), ``occlusion`` (the type) and ``results``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from mace_core.analysis import findings as fd, thesis_numbers as tn
from mace_core.analysis.claims import claim_results, claims_block
from mace_core.analysis.results import MISSING, occ_groups, occ_training, over_seeds
from mace_core.analysis.tables import fmt, table_caption, table_frame
from mace_core.errors import MaceError


def _drop(clean: Mapping[int, Mapping[str, Any]], occ: Mapping[int, Mapping[str, Any]], metric: str):
    c, o = over_seeds(clean, metric), over_seeds(occ, metric)
    return None if c is None or o is None else fd.difference(c, o)   # clean − occluded: a drop is positive


def occlusion_frame(runs: Sequence[Any], evals: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Numeric frame: one row per (model, occlusion type): clean / occluded Rank-1 and mAP (means over
    seeds), their drops (paired by seed) and the drops' 95 % half-widths."""
    groups, conds = occ_groups(runs, evals)
    rows = []
    for model, members in groups.items():
        clean = conds[model][None]
        for occ, by_seed in conds[model].items():
            if occ is None:
                continue
            d1, dm = _drop(clean, by_seed, "R1"), _drop(clean, by_seed, "mAP")
            rows.append({"model": model, "trained_with": occ_training(members[0]), "occlusion": occ,
                         "n": len(by_seed), "clean_R1": over_seeds(clean, "R1").mean,
                         "occ_R1": over_seeds(by_seed, "R1").mean,
                         "R1_drop": d1.mean, "R1_drop_hw": d1.half_width, "mAP_drop": dm.mean,
                         "mAP_drop_hw": dm.half_width})
    if not rows:
        raise MaceError("no occluded evaluations to tabulate", "evaluate with occlusion=<type> first")
    return pd.DataFrame(rows)


def _occ_thesis(run: Any, occ: str | None) -> Mapping[str, Any] | None:
    trained = occ_training(run)
    if trained == "baseline":
        return tn.TABLE9.get(("baseline", occ)) if occ else {"occ_R1": tn.TABLE9[("baseline", "random_rect")]["clean_R1"]}
    if occ is None:
        types = trained.split("+")
        ref = tn.TABLE9.get(("occlusion-trained", types[0])) if len(types) == 1 else None
        return {"occ_R1": ref["clean_R1"]} if ref else None
    return tn.TABLE9.get(("occlusion-trained", occ)) if occ in trained.split("+") else None


def fmt_drop(diff: fd.Difference | None) -> str:
    """A drop cell: ``mean ± half-width`` without the sign, ``n.d.`` when not distinguishable from 0."""
    if diff is None:
        return MISSING
    return fd.fmt_difference(diff).lstrip("+") + (" n.d." if diff.verdict == fd.NOT_DISTINGUISHABLE else "")


def occlusion_table(runs: Sequence[Any], evals: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Table 9: one row per model × condition (clean, then each occlusion type): Rank-1, and the drops
    in Rank-1 and mAP from clean (paired by seed), ours · thesis."""
    evals = list(evals)
    groups, conds = occ_groups(runs, evals)
    # every drop of one metric in the table is one family: Holm-adjusted "n.d." marks
    drops = {}
    for metric in ("R1", "mAP"):
        keys = [(model, occ) for model in groups for occ in conds[model] if occ is not None]
        adjusted = fd.holm([_drop(conds[m][None], conds[m][o], metric) for m, o in keys])
        drops.update({(metric, m, o): d for (m, o), d in zip(keys, adjusted)})
    out, sizes = [], []
    for model, members in groups.items():
        for occ, by_seed in sorted(conds[model].items(), key=lambda kv: (kv[0] is not None, kv[0] or "")):
            ref = _occ_thesis(members[0], occ) or {}
            s = over_seeds(by_seed, "R1")
            sizes.append(s.n if s else 1)
            out.append({("model", ""): model, ("queries", ""): occ or "clean", ("n", ""): str(len(by_seed)),
                        ("Rank-1", "ours"): fd.fmt_value(s), ("Rank-1", "thesis"): fmt(ref.get("occ_R1")),
                        ("Rank-1 drop", "ours"): "" if occ is None else fmt_drop(drops[("R1", model, occ)]),
                        ("Rank-1 drop", "thesis"): "" if occ is None else fmt(ref.get("R1_drop")),
                        ("mAP drop", "ours"): "" if occ is None else fmt_drop(drops[("mAP", model, occ)]),
                        ("mAP drop", "thesis"): "" if occ is None else fmt(ref.get("mAP_drop"))})
    if not any(k is not None for c in conds.values() for k in c):
        raise MaceError("no occluded evaluations to tabulate", "evaluate with occlusion=<type> first")
    flat = [r for m in groups.values() for r in m]
    extra = ("Drops (pp, clean − occluded) are paired by seed, ± the half-width of their 95 % t-interval; "
             "n.d.: not distinguishable from 0 (Holm–Bonferroni over the table's drops of that metric). "
             "occlusion_* models were trained with that occlusion "
             "(p = 0.5); the thesis's baseline clean Rank-1 is Table 9's 44.65.")
    return table_frame(out, table_caption("Table 9 — occlusion robustness (IR queries occluded at test time)", flat,
                                          sizes, rule=False, extra=extra, eval_results=[e["results"] for e in evals]))


def occlusion_comparisons(runs: Sequence[Any], evals: Sequence[Mapping[str, Any]]):
    """``(drops, gains)``: the baseline's Rank-1 drop per occlusion type (clean − occluded) and each
    occlusion-trained model's gain over the baseline on its own type, Holm-adjusted together; or a
    sentence saying why there is nothing to compare."""
    groups, conds = occ_groups(runs, evals)
    base = [m for m, members in groups.items() if occ_training(members[0]) == "baseline"]
    if not base:
        return "The baseline has no completed run, so the occlusion drops have no reference."
    clean = conds[base[0]][None]
    drops = {occ: _drop(clean, by_seed, "R1") for occ, by_seed in conds[base[0]].items() if occ is not None}
    if not drops:
        return "No occluded evaluation of the baseline is stored yet."
    gains = {}
    for model, members in groups.items():
        types = occ_training(members[0]).split("+")
        if model == base[0] or types == ["baseline"]:
            continue
        for occ in types:
            if occ in conds[model] and occ in conds[base[0]]:
                gains[(model, occ)] = fd.difference(over_seeds(conds[model][occ], "R1"),
                                                    over_seeds(conds[base[0]][occ], "R1"))
    adjusted = fd.holm(list(drops.values()) + list(gains.values()))
    return dict(zip(drops, adjusted[:len(drops)])), dict(zip(gains, adjusted[len(drops):]))


def occlusion_finding(runs: Sequence[Any], evals: Iterable[Mapping[str, Any]], with_claims: bool = True) -> str:
    """Does test-time occlusion lower the baseline's Rank-1, and does occlusion-augmented training
    recover part of the drop on its own occlusion type (paired by seed)? The drops and gains reported
    form one family (Holm-adjusted); then every thesis claim of the chapter, costs included."""
    evals = list(evals)
    claims = claims_block(claim_results("06_occlusion", runs, evals)) if with_claims else ""
    found = occlusion_comparisons(runs, evals)
    if isinstance(found, str):
        return found + claims
    drops, gains = found
    worst = max(drops, key=lambda k: drops[k].mean)
    lowered = sum(d.mean > 0 for d in drops.values())
    beyond = sum(d.verdict == fd.HIGHER for d in drops.values())
    judged = all(d.verdict != fd.NO_ESTIMATE for d in drops.values())
    thesis = tn.TABLE9.get(("baseline", worst), {}).get("R1_drop")
    picked = f"selected after the fact as the largest of {len(drops)}; " if len(drops) > 1 else ""
    text = (f"Test-time occlusion lowers the baseline's IR→RGB Rank-1 for {lowered} of {len(drops)} occlusion types"
            + (f", beyond the seed noise for {beyond}" if judged else "")
            + f"; the largest drop is **{worst}**, {drops[worst].mean:.1f} pp ({picked}{fd.noise_clause(drops[worst])})")
    if thesis is not None:
        agree = "agrees" if drops[worst].mean > 0 else "is the opposite of the thesis's"
        text += f"; the thesis lost {thesis:.1f} pp there, so the direction {agree}."
    else:
        text += "."
    for (model, occ), gain in gains.items():
        ref = tn.TABLE9.get(("occlusion-trained", occ))
        tgain = None if ref is None else ref["occ_R1"] - tn.TABLE9[("baseline", occ)]["occ_R1"]
        text += (f" Trained with {occ}, **{model}** scores {gain.mean:+.1f} pp against the baseline on "
                 f"{occ}-occluded queries ({fd.noise_clause(gain)})")
        if tgain is not None:
            agree = "agrees" if (gain.mean > 0) == (tgain > 0) else "is the opposite of the thesis's"
            text += f"; the thesis gained {tgain:+.1f} pp, so the direction {agree}."
        else:
            text += "."
    text += " " + fd.power_sentence(list(drops.values()) + list(gains.values()), "a drop or gain")
    return text + claims

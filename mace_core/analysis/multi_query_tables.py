"""Experiment 4's table, figure frame and finding: multi-query fusion (Table 7).

Inputs are test-time evaluations of the trained baseline, one per seed, pool size n and fusion:
items with ``seed`` (default 0), ``n``, ``fusion`` and ``results``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from mace_core.analysis import findings as fd, thesis_numbers as tn
from mace_core.analysis.claims import chapter_family, claim_results, claims_block, family_block
from mace_core.analysis.results import HEADERS, MISSING, mq_groups, over_seeds
from mace_core.analysis.tables import fmt, table_caption, table_frame


def multi_query_frame(evals: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Numeric long frame (n, fusion, metric, mean, std over seeds) from test-time evaluations: each
    item has ``seed`` (default 0), ``n``, ``fusion`` and ``results``."""
    rows = []
    for (n, fusion), by_seed in sorted(mq_groups(evals).items()):
        for metric in ("R1", "mAP"):
            s = over_seeds(by_seed, metric)
            if s is not None:
                rows.append({"n": n, "fusion": fusion, "metric": metric, "mean": s.mean, "std": s.std})
    return pd.DataFrame(rows)


def mq_thesis(n: int, fusion: str, metric: str) -> float | None:
    """The thesis's value for a pool of ``n`` fused by ``fusion`` (n = 1: Table 3's single query)."""
    return tn.TABLE7_SINGLE.get(metric) if n == 1 else tn.TABLE7.get((n, fusion), {}).get(metric)


def multi_query_table(evals: Iterable[Mapping[str, Any]], runs: Sequence[Any] | Any, metric: str = "R1") -> pd.DataFrame:
    """Table 7 for one metric: one row per pool size n, one ours · thesis group per fusion strategy,
    and the mean number of images actually fused (where a camera had fewer than n images)."""
    runs = list(runs) if isinstance(runs, (list, tuple)) else [runs]
    evals = list(evals)
    groups = mq_groups(evals)
    fusions = [f for f in tn.FUSIONS if any(k[1] == f for k in groups)] + \
        sorted({k[1] for k in groups} - set(tn.FUSIONS))
    out, sizes = [], set()
    for n in sorted({k[0] for k in groups}):
        pools = [float(size) for (kn, _), by_seed in groups.items() if kn == n for res in by_seed.values()
                 if (size := (res.get("protocol") or {}).get("mean_pool_size")) is not None]
        cells = {("n", ""): str(n), ("fused", ""): f"{np.mean(pools):.1f}" if pools else MISSING}
        for fusion in fusions:
            by_seed = groups.get((n, fusion))
            s = over_seeds(by_seed, metric) if by_seed else None
            sizes.add(s.n if s else 0)
            cells[(fusion, "ours")] = fd.fmt_value(s)
            cells[(fusion, "thesis")] = fmt(mq_thesis(n, fusion, metric))
        out.append(cells)
    title = (f"Table 7 — multi-query fusion, {HEADERS[metric]}, all-search (n: IR queries per pool; fused: "
             f"images actually fused, mean; thesis n = 1: Table 3)")
    return table_frame(out, table_caption(title, runs, sorted(sizes - {0}) or [1], rule=False,
                                          eval_results=[e["results"] for e in evals]))


def mq_entries(evals: Iterable[Mapping[str, Any]], metric: str = "R1") -> list[fd.Entry] | None:
    """Finding entries: the single query (n = 1, the reference) and every pool against it, paired within
    each seed's model; Rank-1 differences Holm-adjusted in the chapter's family. None without n = 1."""
    evals = list(evals)
    groups = mq_groups(evals)
    singles = [k for k in groups if k[0] == 1]
    if not singles:
        return None
    base_label = "n = 1"
    summaries = {base_label: over_seeds(groups[singles[0]], metric)}
    thesis = {base_label: mq_thesis(1, singles[0][1], metric)}
    keys = {}
    for (n, fusion), by_seed in sorted(groups.items()):
        if n > 1:
            label = f"n = {n}, {fusion}"
            summaries[label] = over_seeds(by_seed, metric)
            thesis[label] = mq_thesis(n, fusion, metric)
            keys[label] = (n, fusion)
    entries = fd.entries_from(summaries, base_label, thesis)
    if metric != "R1":
        return entries
    family = chapter_family("04_multi_query", [], evals)
    return [e if e.diff is None else replace(e, diff=family.get({keys[e.label]: 1.0, (1, None): -1.0}) or e.diff)
            for e in entries]


def multi_query_finding(evals: Iterable[Mapping[str, Any]], metric: str = "R1", with_claims: bool = True) -> str:
    """Every pool (n, fusion) against the single query (n = 1), paired within each seed's model; then
    (``with_claims``) the chapter's family and the thesis's claims."""
    evals = list(evals)
    entries = mq_entries(evals, metric)
    if entries is None:
        return "No single-query (n = 1) evaluation: the pools cannot be compared with a single query."
    text = fd.finding(entries, measure=f"IR→RGB {HEADERS[metric]}", baseline="the single query")
    if metric == "R1" and with_claims:
        text += family_block(chapter_family("04_multi_query", [], evals))
        text += claims_block(claim_results("04_multi_query", [], evals))
    return text

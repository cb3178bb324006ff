"""The book's result tables: this study's numbers beside the thesis's, as a paper prints them.

One row per variant (or variant × condition); ours and the thesis's side by side as column groups
(``("Rank-1 (± std)", "ours")``, ``("Rank-1 (± std)", "thesis")``: each header says what its ± means,
:func:`pm_header`); the data source, the model-selection rule and
n (training seeds) stated once in ``df.attrs["caption"]``. Our cells are mean ± std over training
seeds (each run's value is the mean over its gallery trials); differences to the baseline follow
the rule of :mod:`mace_core.analysis.findings`. :func:`show` renders a table with its caption,
:func:`experiment_finding` writes the chapter's computed finding.

This module holds how a table is built and shown and the tables of the training experiments
(00-03, 05); experiments 4 and 6 have theirs in :mod:`multi_query_tables` and :mod:`occlusion_tables`.
Inputs are duck-typed run records (``.variant``, ``.seed``, ``.config`` (RunConfig), ``.results``),
as returned by ``mace_core.study.load_results``, so the functions work on fakes in tests.
"""
from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mace_core.analysis import findings as fd, thesis_numbers as tn
from mace_core.analysis.claims import chapter_family, claim_results, claims_block, family_block
from mace_core.analysis.results import (HEADERS, METRICS, MISSING, data_source, group_runs, ours_label, over_seeds,
                                        rerank_note, seed_results, selection_rule, trial_std)
from mace_core.analysis.thesis_rows import (SPECS, baseline_row, entries_of, experiment_rows, id_fraction, spec_of,
                                            thesis_value)
from mace_core.errors import MaceError


# ---------------------------------------------------------------------------------------------
# Cells, captions and frames

def fmt(mean: float | None, std: float | None = None, digits: int = 1) -> str:
    """A table cell: ``mean ± std`` (``mean`` alone without a std; :data:`MISSING` without a mean)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table_caption(title: str, runs: Sequence[Any], sizes: Sequence[int], rule: bool = True, extra: str = "",
                  eval_results: Sequence[Mapping[str, Any]] = ()) -> str:
    """A table's caption: data source, model selection, n (training seeds), the thesis's setting, the noise
    rule (``rule``), ``extra``, the re-ranking note and the gallery-trial std."""
    runs = list(runs)
    sources = sorted({data_source(r) for r in runs}) or ["unknown"]
    rules = sorted({selection_rule(r.results) for r in runs}) or ["final epoch"]
    trial = trial_std(runs)
    parts = [f"{title}. Ours: {', '.join(sources)} data, {', '.join(rules)}; values in %.",
             fd.n_note(sizes),
             f"Thesis: {tn.THESIS_LABEL}, {tn.THESIS_SELECTION}, one run."]
    if rule:
        parts.append(fd.RULE)
    if extra:
        parts.append(extra)
    if note := rerank_note([r.results for r in runs] + list(eval_results)):
        parts.append(note)
    if trial is not None:
        parts.append(f"Gallery-trial std within one run: {trial:.1f} pp (Rank-1, mean over runs).")
    return " ".join(parts)


PM_STD, PM_CI = "(± std)", "(± 95 % CI)"


def pm_header(group: str, cells: Sequence[Any]) -> str:
    """``group`` with what its ± means when any cell has one: ``(± 95 % CI)`` for a difference (Δ …, … drop),
    ``(± std)`` (over training seeds) otherwise."""
    if not any(" ± " in str(v) for v in cells):
        return group
    return f"{group} {PM_CI if group.startswith('Δ') or group.endswith('drop') else PM_STD}"


def table_frame(rows: list[dict[Any, Any]], caption: str) -> pd.DataFrame:
    """Rows keyed by ``(group, sub)`` column tuples -> a frame with MultiIndex column groups."""
    frame = pd.DataFrame(rows)
    # one meaning of ± per column, said in its header: a std over seeds, or a 95 % interval of a difference
    groups = {g: pm_header(g, [v for (gg, _), col in frame.items() if gg == g for v in col])
              for g, _ in frame.columns}
    frame.columns = [(groups[g], sub) for g, sub in frame.columns]
    if all(sub == "" for _, sub in frame.columns):   # no groups: plain headers
        frame.columns = [group for group, _ in frame.columns]
    else:
        frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame = frame.fillna(MISSING)
    frame.attrs["caption"] = caption
    return frame


# ---------------------------------------------------------------------------------------------
# The thesis's tables

def verdict_cell(diff: fd.Difference | None) -> str:
    """The three outcomes of :func:`findings.outcome`, short enough for a cell (the caption words them)."""
    if diff is None:
        return ""
    if diff.verdict == fd.NO_ESTIMATE:
        return "no estimate (n = 1)"
    if diff.distinguishable:
        return diff.verdict
    worded = fd.outcome(diff)
    if fd.CANNOT_TELL in worded:
        return "n.d.: cannot tell"
    return f"n.d.: < {worded.rsplit(' ', 2)[-2]} pp" if fd.SMALLER in worded else fd.NOT_DISTINGUISHABLE


def comparison_table(experiment: str, runs: Sequence[Any]) -> pd.DataFrame:
    """Rank-1 and mAP (ours · thesis), the Rank-1 difference to the baseline (ours · thesis) and
    the verdict of the noise rule; one row per variant."""
    spec = spec_of(experiment)
    rows = experiment_rows(experiment, runs)
    entries = {e.label: e for e in entries_of(experiment, rows)}
    out = []
    for row in rows:
        cells: dict[tuple[str, str], str] = {(spec.label_header, ""): row.label, ("n", ""): str(len(row.runs))}
        for metric in ("R1", "mAP"):
            cells[(HEADERS[metric], "ours")] = fd.fmt_value(row.ours(metric))
            cells[(HEADERS[metric], "thesis")] = fmt(thesis_value(row.thesis, metric))
        entry = entries.get(row.label)
        if baseline_row(rows) is not None:
            baseline = row.is_baseline
            cells[("Δ Rank-1", "ours")] = "baseline" if baseline else fd.fmt_difference(entry.diff if entry else None)
            td = entry.thesis_diff if entry else None
            cells[("Δ Rank-1", "thesis")] = "" if baseline else (MISSING if td is None else f"{td:+.1f}")
            cells[("verdict", "")] = "" if baseline or entry is None else verdict_cell(entry.diff)
            cells[("p (Holm)", "")] = "" if baseline or entry is None or entry.diff.p is None else fd.fmt_p(entry.diff.p)
        out.append(cells)
    single = all(len(row.runs) == 1 for row in rows)
    if single:   # no verdict anywhere: the caption says why, in one line
        for cells in out:
            cells.pop(("verdict", ""), None)
            cells.pop(("p (Holm)", ""), None)
    flat = [r for row in rows for r in row.runs]
    return table_frame(out, table_caption(spec.title, flat, [len(r.runs) for r in rows],
                                          rule=baseline_row(rows) is not None and not single,
                                          extra=fd.ONE_SEED_PAGE if single and len(rows) > 1 else ""))


def metrics_table(experiment: str, runs: Sequence[Any]) -> pd.DataFrame:
    """Every metric of ours (Rank-1/5/10/20, mAP, mINP), mean ± std over seeds; one row per variant."""
    spec = spec_of(experiment)
    rows = experiment_rows(experiment, runs)
    out = [{(spec.label_header, ""): row.label, ("n", ""): str(len(row.runs)),
            **{(HEADERS[m], ""): fd.fmt_value(row.ours(m)) for m in METRICS}} for row in rows]
    flat = [r for row in rows for r in row.runs]
    return table_frame(out, table_caption(f"{spec.title}: all metrics, ours", flat, [len(r.runs) for r in rows],
                                          rule=False))


def baseline_table(runs: Sequence[Any] | Any) -> pd.DataFrame:
    """Table 3: one row per metric, ours (mean ± std over seeds) beside the thesis's replication."""
    runs = list(runs) if isinstance(runs, (list, tuple)) else [runs]
    rows = experiment_rows("00_baseline", runs)
    if len(rows) != 1:
        raise MaceError(f"Table 3 takes the runs of one variant, got {[r.label for r in rows]}",
                        "pass load_results('00_baseline', ...)")
    row = rows[0]
    out = [{("metric", ""): HEADERS[m], ("ours", ""): fd.fmt_value(row.ours(m)),
            ("thesis", ""): fmt(thesis_value(tn.TABLE3, m))} for m in METRICS]
    return table_frame(out, table_caption(SPECS["00_baseline"].title + f" (variant {row.label})", row.runs,
                                          [len(row.runs)], rule=False))


def backbone_table(runs: Sequence[Any]) -> pd.DataFrame:
    """Table 4's Rank-1 / mAP comparison (see :func:`comparison_table`)."""
    return comparison_table("01_backbones", runs)


def attention_table(runs: Sequence[Any]) -> pd.DataFrame:
    return comparison_table("02_attention", runs)


def fusion_table(runs: Sequence[Any]) -> pd.DataFrame:
    return comparison_table("03_fusion", runs)


def fraction_table(runs: Sequence[Any]) -> pd.DataFrame:
    return comparison_table("05_data_efficiency", runs)


def backbone_cost_table(runs: Sequence[Any]) -> pd.DataFrame:
    """Table 4's cost columns: parameters, training time and the reported epoch, ours · thesis."""
    rows = experiment_rows("01_backbones", runs)
    out = []
    for row in rows:
        ref = row.thesis or {}
        params = [r.results.get("parameters") for r in row.runs if r.results.get("parameters") is not None]
        secs = [float(r.results["train_time_s"]) for r in row.runs if r.results.get("train_time_s") is not None]
        epochs = sorted({str(r.results.get("selected_epoch", r.results.get("final_epoch"))) for r in row.runs} - {"None"})
        out.append({("variant", ""): row.label, ("backbone", ""): row.runs[0].config.model.backbone,
                    ("parameters (M)", "ours"): f"{float(params[0]) / 1e6:.1f}" if params else MISSING,
                    ("parameters (M)", "thesis"): fmt(ref.get("params_m")),
                    ("training time", "ours"): _duration(float(np.mean(secs))) if secs else MISSING,
                    ("training time", "thesis"): str(ref.get("time") or MISSING),
                    ("epoch", "ours"): ", ".join(epochs) or MISSING,
                    ("epoch", "thesis"): str(ref.get("best_epoch") or MISSING)})
    flat = [r for row in rows for r in row.runs]
    return table_frame(out, table_caption("Table 4 — cost of each backbone (training time: mean over seeds; thesis: "
                                          "whole MACE network, GPU)", flat, [len(r.runs) for r in rows], rule=False))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def experiment_finding(experiment: str, runs: Sequence[Any], with_claims: bool = True) -> str:
    """The chapter's computed finding on IR→RGB Rank-1 (markdown): the best variant against the baseline
    (Holm-adjusted over the chapter's comparisons), the detectable difference, then (``with_claims``)
    one verdict line per thesis claim of the chapter."""
    rows = experiment_rows(experiment, runs)
    entries = entries_of(experiment, rows)
    if experiment == "00_baseline":
        e = entries[0]
        return (f"The baseline reaches IR→RGB Rank-1 {fd.fmt_value(e.ours)} % on {data_source(rows[0].runs[0])} "
                f"data (n = {e.ours.n}); the thesis's replication reached {tn.TABLE3['R1']:.1f} % on real "
                f"SYSU-MM01, a different data set, so only the later comparisons carry over."
                + (claims_block(claim_results(experiment, runs)) if with_claims else ""))
    if baseline_row(rows) is None:
        text = "The baseline variant has no completed run, so no variant can be compared with it."
    else:
        text = fd.finding(entries, baseline="the baseline" if experiment != "05_data_efficiency" else "all identities")
    if with_claims:
        text += family_block(chapter_family(experiment, runs)) + claims_block(claim_results(experiment, runs))
    return text


# ---------------------------------------------------------------------------------------------
# Experiment 7 (LLCM): no thesis table, both retrieval directions of each run

_LLCM_DIRECTIONS = {"ir2vis": "IR→VIS", "vis2ir": "VIS→IR"}
_LLCM_METRICS = (("rank1", "R1"), ("rank5", "R5"), ("rank10", "R10"), ("rank20", "R20"), ("mAP", "mAP"),
                 ("mINP", "mINP"))


def llcm_table(runs: Sequence[Any], profile: str) -> pd.DataFrame:
    """One row per run and retrieval direction: every metric as mean ± std over that run's gallery trials
    (percent, two decimals), from ``results["metrics"]["directions"]``; the caption says when re-ranked."""
    runs = list(runs)
    rows = []
    for r in runs:
        for direction, d in r.results["metrics"]["directions"].items():
            row = {"direction": _LLCM_DIRECTIONS[direction], "seed": r.seed, "trials": len(d["trials"])}
            row.update({label: f"{100 * d['mean'][m]:.2f} ± {100 * d['std'][m]:.2f}" for m, label in _LLCM_METRICS})
            rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["caption"] = " ".join(filter(None, [
        f"LLCM, {profile} profile: percent, mean ± std over the gallery trials of one model per row (final epoch).",
        rerank_note(r.results for r in runs)]))
    return out


# ---------------------------------------------------------------------------------------------
# Figures' frames (numeric, long): mean and std over seeds

def fraction_curve_data(runs: Sequence[Any]) -> pd.DataFrame:
    """Long numeric frame (fraction, metric, mean, std, source) for the metric-vs-fraction figure."""
    rows = []
    for row in experiment_rows("05_data_efficiency", runs):
        for metric in ("R1", "mAP"):
            s = row.ours(metric)
            if s is not None:
                rows.append({"fraction": id_fraction(row.runs[0]), "metric": metric, "mean": s.mean, "std": s.std,
                             "source": ours_label(row.runs[0])})
    for frac, ref in tn.TABLE8.items():
        for metric in ("R1", "mAP"):
            rows.append({"fraction": frac, "metric": metric, "mean": ref[metric], "std": None, "source": tn.THESIS_LABEL})
    return pd.DataFrame(rows)
def comparison_frame(runs: Sequence[Any], thesis_of=None, metrics: Sequence[str] = ("R1", "mAP")) -> pd.DataFrame:
    """Long numeric frame (variant, source, metric, mean, std over seeds) of ours and the thesis's."""
    rows = []
    for variant, members in group_runs(runs).items():
        ref = thesis_of(members[0]) if thesis_of else None
        for m in metrics:
            s = over_seeds(seed_results(members), m)
            if s is not None:
                rows.append({"variant": variant, "source": ours_label(members[0]), "metric": m,
                             "mean": s.mean, "std": s.std})
            if ref and ref.get(m) is not None:
                rows.append({"variant": variant, "source": tn.THESIS_LABEL, "metric": m,
                             "mean": float(ref[m]), "std": None})
    if not rows:
        raise MaceError("no runs to compare", "run the experiment's variants first")
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Display

TABLE_CLASS = "mace-table"


_LABEL_COLUMNS = ("variant", "model", "queries", "backbone", "identities")
_WORD_COLUMNS = ("verdict",)


def show(frame: pd.DataFrame):
    """A Styler with the caption and no index (CSS class ``mace-table``: book/_static/mace.css).
    Label columns may break after an underscore (long variant names), numbers never break."""
    styler = frame.style.hide(axis="index").set_table_attributes(f'class="{TABLE_CLASS}"')
    labels = [c for c in frame.columns if (c[0] if isinstance(c, tuple) else c) in _LABEL_COLUMNS]
    if labels:
        styler = styler.format(lambda v: html.escape(str(v)).replace("_", "_<wbr>"), subset=labels)
        styler = styler.set_properties(subset=labels, **{"white-space": "normal", "text-align": "left"})
    # words may wrap ("not distinguishable" on two lines): the backbone summary then fits the content
    # column at 1024 px (book check), numbers still never break
    words = [c for c in frame.columns if (c[0] if isinstance(c, tuple) else c) in _WORD_COLUMNS]
    if words:
        styler = styler.set_properties(subset=words, **{"white-space": "normal", "min-width": "5.5rem"})
    caption = frame.attrs.get("caption")
    if caption:
        styler = styler.set_caption(caption)
    # The table's own <style> carries the layout that book/_static/mace.css gives it in the book, so it
    # reads the same in JupyterLab (whose CSS puts a caption above a narrow table, as wide as the table):
    # the caption under the table, and the table at least as wide as a readable caption.
    return styler.set_table_styles(TABLE_STYLES, overwrite=False)


TABLE_STYLES = [
    {"selector": "", "props": [("min-width", "min(100%, 36rem)"), ("max-width", "100%"),
                               ("table-layout", "auto")]},
    {"selector": "caption", "props": [("caption-side", "bottom"), ("text-align", "left"), ("padding-top", "0.4rem")]},
]


def show_finding(text: str):
    """The computed finding as a Markdown block for the notebook's output."""
    from IPython.display import Markdown

    return Markdown(f"**Finding (computed from the numbers above).** {text}")

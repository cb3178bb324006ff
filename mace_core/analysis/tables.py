"""The book's result tables: this study's numbers beside the thesis's, as a paper prints them.

One row per variant (or variant × condition); ours and the thesis's side by side as column groups
(``("Rank-1", "ours")``, ``("Rank-1", "thesis")``); the data source, the model-selection rule and
n (training seeds) stated once in ``df.attrs["caption"]``. Our cells are mean ± std over training
seeds (each run's value is the mean over its gallery trials); differences to the baseline follow
the rule of :mod:`mace_core.analysis.findings`. :func:`show` renders a table with its caption,
:func:`experiment_finding` writes the chapter's computed finding.

Inputs are duck-typed run records (``.variant``, ``.seed``, ``.config`` (RunConfig), ``.results``),
as returned by ``mace_core.study.load_results``, so the functions work on fakes in tests.
"""
from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mace_core.analysis import findings as fd, thesis_claims as tc, thesis_numbers as tn
from mace_core.errors import MaceError

METRICS = ("R1", "R5", "R10", "R20", "mAP", "mINP")
HEADERS = {"R1": "Rank-1", "R5": "Rank-5", "R10": "Rank-10", "R20": "Rank-20", "mAP": "mAP", "mINP": "mINP"}
_CMC_RANKS = {"R1": 1, "R5": 5, "R10": 10, "R20": 20}
_ALIASES = {"r1": "R1", "rank1": "R1", "rank-1": "R1", "r5": "R5", "rank5": "R5", "rank-5": "R5",
            "r10": "R10", "rank10": "R10", "rank-10": "R10", "r20": "R20", "rank20": "R20",
            "rank-20": "R20", "map": "mAP", "minp": "mINP"}
MISSING = "—"


# ---------------------------------------------------------------------------------------------
# Reading metrics out of results.json

def _canon(key: str) -> str | None:
    if key in METRICS:
        return key
    return _ALIASES.get(key.lower())


def _trial_metrics(d: Mapping[str, Any]) -> dict[str, float]:
    """One evaluation (one trial or an aggregate): ``cmc`` array and/or named metrics."""
    out: dict[str, float] = {}
    cmc = d.get("cmc")
    if cmc is not None:
        cmc = np.asarray(cmc, dtype=float).ravel()
        for name, rank in _CMC_RANKS.items():
            if len(cmc) >= rank:
                out[name] = float(cmc[rank - 1])
    for key, value in d.items():
        name = _canon(str(key))
        if name and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def _find_metrics_block(results: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("test", "metrics", "eval", "final"):
        block = results.get(key)
        if isinstance(block, Mapping):
            return block
    return results


def summarize(results: Mapping[str, Any], scale: float | None = None) -> dict[str, tuple[float, float | None]]:
    """``{metric: (mean, std)}`` in percent from a results dict.

    Accepts per-trial lists (``trials: [{cmc, mAP, mINP}, ...]``: mean and sample std (ddof=1, as the evaluator) over
    trials), ``mean``/``std`` blocks, ``{metric: {mean, std}}`` or one plain evaluation. Values in
    [0, 1] are read as fractions and scaled to percent unless ``scale`` is given.
    """
    block = _find_metrics_block(results)
    summary: dict[str, tuple[float, float | None]] = {}
    if isinstance(block.get("mean"), Mapping):
        means = _trial_metrics(block["mean"])
        stds = _trial_metrics(block["std"]) if isinstance(block.get("std"), Mapping) else {}
        summary = {k: (v, stds.get(k)) for k, v in means.items()}
    trials = block.get("trials") or block.get("per_trial")
    if not summary and isinstance(trials, Sequence) and trials and isinstance(trials[0], Mapping):
        frame = pd.DataFrame([_trial_metrics(t) for t in trials])
        for name in frame.columns:
            values = frame[name].dropna().to_numpy()
            summary[name] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None)
    if not summary:
        for key, value in block.items():
            name = _canon(str(key))
            if name and isinstance(value, Mapping) and "mean" in value:
                summary[name] = (float(value["mean"]), None if value.get("std") is None else float(value["std"]))
    if not summary:
        summary = {k: (v, None) for k, v in _trial_metrics(block).items()}
    if not summary:
        raise MaceError(f"no metrics found in results (keys: {sorted(results)})",
                        "pass the dict read from a completed run's results.json")
    if scale is None:
        ranks = [m for name, (m, _) in summary.items() if name.startswith("R")]
        scale = 100.0 if ranks and max(ranks) <= 1.0 else 1.0
    return {k: (m * scale, None if s is None else s * scale) for k, (m, s) in summary.items()}


def selection_rule(results: Mapping[str, Any]) -> str:
    """How the reported model was chosen, as results.json states it (final epoch when silent)."""
    for key in ("selection", "model_selection", "selection_rule"):
        value = results.get(key)
        if isinstance(value, str) and value:
            return value.replace("_", " ")
        if isinstance(value, Mapping):
            rule = value.get("rule") or value.get("name")
            if rule:
                epoch = value.get("epoch")
                return f"{str(rule).replace('_', ' ')}" + (f" (epoch {epoch})" if epoch is not None else "")
    return "final epoch"


def data_source(run: Any) -> str:
    return str(getattr(getattr(run.config, "data", None), "source", "unknown"))



def seed_of(run: Any) -> int:
    """The run's training seed (``RunResult.seed``; the config's for records without one)."""
    seed = getattr(run, "seed", None)
    return int(run.config.train.seed if seed is None else seed)


def ours_label(run: Any) -> str:
    """Legend label of our numbers in figures (tables say it in the caption)."""
    return f"ours, {data_source(run)} data"


def _fmt(mean: float | None, std: float | None = None, digits: int = 1) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def group_runs(runs: Iterable[Any]) -> dict[str, list[Any]]:
    """variant -> its runs (one per seed, ascending), variants in first-seen order."""
    groups: dict[str, list[Any]] = {}
    for run in runs:
        groups.setdefault(run.variant, []).append(run)
    for name, members in groups.items():
        seeds = [seed_of(r) for r in members]
        if len(set(seeds)) != len(seeds):
            raise MaceError(f"variant {name!r} has two runs with the same training seed {sorted(seeds)}",
                            "pass each (variant, seed) run once (load_results returns each once)")
        members.sort(key=seed_of)
    return groups


def over_seeds(results_by_seed: Mapping[int, Mapping[str, Any]], metric: str) -> fd.SeedSummary | None:
    """One metric over training seeds from ``seed -> results dict`` (None when no run reports it)."""
    values = {}
    for seed, results in results_by_seed.items():
        summary = summarize(results)
        if metric in summary:
            values[seed] = summary[metric][0]
    return fd.summarize_seeds(values) if values else None


def _seed_results(members: Sequence[Any]) -> dict[int, Mapping[str, Any]]:
    return {seed_of(r): r.results for r in members}


def trial_std(runs: Iterable[Any], metric: str = "R1") -> float | None:
    """Mean over runs of the std over one run's gallery trials (the secondary, evaluation-noise figure)."""
    stds = [s for r in runs if (s := summarize(r.results).get(metric, (None, None))[1]) is not None]
    return float(np.mean(stds)) if stds else None


def rerank_note(results: Iterable[Mapping[str, Any]]) -> str:
    """The caption sentence for re-ranked numbers (empty when none of ``results`` is re-ranked)."""
    settings = []
    for res in results:
        if not isinstance(res, Mapping):
            continue
        block = _find_metrics_block(res)
        if res.get("reranked") or block.get("reranked"):
            rr = res.get("rerank") or block.get("rerank") or (block.get("protocol") or {}).get("rerank") or {}
            settings.append(f"k1 = {rr.get('k1', '?')}, k2 = {rr.get('k2', '?')}, λ = {rr.get('lambda', '?')}")
    if not settings:
        return ""
    return (f"Re-ranked: k-reciprocal re-ranking (Zhong et al., CVPR 2017; {', '.join(sorted(set(settings)))}) "
            "applied to our numbers, not comparable with plain ones.")


def _caption(title: str, runs: Sequence[Any], sizes: Sequence[int], rule: bool = True, extra: str = "",
             eval_results: Sequence[Mapping[str, Any]] = ()) -> str:
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


def _frame(rows: list[dict[Any, Any]], caption: str) -> pd.DataFrame:
    """Rows keyed by ``(group, sub)`` column tuples -> a frame with MultiIndex column groups."""
    frame = pd.DataFrame(rows)
    if all(sub == "" for _, sub in frame.columns):   # no groups: plain headers
        frame.columns = [group for group, _ in frame.columns]
    else:
        frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame = frame.fillna(MISSING)
    frame.attrs["caption"] = caption
    return frame


# ---------------------------------------------------------------------------------------------
# Which thesis row a variant stands for, and which variant is the baseline

def backbone_family(name: str) -> str:
    """Map a timm model name to the thesis backbone it stands for (CPU profiles use small members)."""
    name = name.lower()
    if "seresnet" in name or "se_resnet" in name or "seresnext" in name:
        return "seresnet50"
    if "efficientnet" in name or name.startswith("tinynet"):  # TinyNets: scaled-down EfficientNet-B0
        return "efficientnet_b3"
    if "tresnet" in name:
        return "tresnet_m"
    if "resnet" in name:
        return "resnet50"
    return name


def _fraction(run: Any) -> float:
    return round(float(run.config.data.id_fraction), 2)


@dataclass(frozen=True)
class Spec:
    """How one training experiment maps onto its thesis table."""

    title: str
    thesis: Mapping[Any, Mapping[str, Any]]
    key: Callable[[Any], Any]                # run -> thesis key
    baseline_key: Any                        # the thesis key of the baseline row
    label: Callable[[Any], str] = lambda run: run.variant
    label_header: str = "variant"


SPECS: dict[str, Spec] = {
    "00_baseline": Spec("Table 3 — baseline, SYSU-MM01 protocol, all-search", {"baseline": tn.TABLE3},
                        lambda r: "baseline", "baseline"),
    "01_backbones": Spec("Table 4 — backbones", tn.TABLE4, lambda r: backbone_family(r.config.model.backbone),
                         "resnet50"),
    "02_attention": Spec("Table 5 — attention modules (none: the baseline)", tn.TABLE5,
                         lambda r: r.config.model.attention, "none"),
    "03_fusion": Spec("Table 6 — fusion strategies (concat: the baseline)", tn.TABLE6,
                      lambda r: r.config.model.fusion, "concat"),
    "05_data_efficiency": Spec("Table 8 — fraction of training identities (100 %: the baseline)",
                               {round(k, 2): v for k, v in tn.TABLE8.items()}, _fraction, 1.0,
                               label=lambda r: f"{_fraction(r):.0%}", label_header="identities"),
}


# Experiments whose baseline is another experiment's run (the summary loads both)
BASELINE_FROM = {"02_attention": "00_baseline"}


def _spec(experiment: str) -> Spec:
    if experiment not in SPECS:
        raise MaceError(f"no thesis table for experiment {experiment!r}", f"use one of {', '.join(SPECS)}")
    return SPECS[experiment]


@dataclass(frozen=True)
class Row:
    """One variant of a training experiment, aggregated over its seeds."""

    label: str
    runs: list[Any]
    thesis: Mapping[str, Any] | None
    is_baseline: bool

    def ours(self, metric: str) -> fd.SeedSummary | None:
        return over_seeds(_seed_results(self.runs), metric)


def experiment_rows(experiment: str, runs: Sequence[Any]) -> list[Row]:
    """One Row per variant (fractions ascending in experiment 5); raises when there are no runs."""
    spec = _spec(experiment)
    groups = group_runs(runs)
    if not groups:
        raise MaceError(f"{spec.title}: no completed runs to tabulate", "run the experiment's variants first")
    rows = [Row(spec.label(m[0]), m, spec.thesis.get(spec.key(m[0])), spec.key(m[0]) == spec.baseline_key)
            for m in groups.values()]
    if experiment == "05_data_efficiency":
        rows.sort(key=lambda r: _fraction(r.runs[0]))
    return rows


def _baseline_row(rows: Sequence[Row]) -> Row | None:
    return next((r for r in rows if r.is_baseline), None)


def _thesis_value(ref: Mapping[str, Any] | None, metric: str) -> float | None:
    value = (ref or {}).get(metric)
    return None if value is None else float(value)


def _entries(experiment: str, rows: Sequence[Row], metric: str = "R1") -> list[fd.Entry]:
    base = _baseline_row(rows)
    base_sum = base.ours(metric) if base else None
    thesis_base = _thesis_value(_spec(experiment).thesis.get(_spec(experiment).baseline_key), metric)
    kept = [(row, ours) for row in rows if (ours := row.ours(metric)) is not None]
    # the chapter's comparisons to its baseline form one family: Holm-adjusted verdicts
    diffs = fd.holm([None if row.is_baseline or base_sum is None else fd.difference(ours, base_sum)
                     for row, ours in kept])
    return [fd.Entry(row.label, ours, diff, _thesis_value(row.thesis, metric), thesis_base)
            for (row, ours), diff in zip(kept, diffs)]


# ---------------------------------------------------------------------------------------------
# The thesis's tables

_VERDICT_CELL = {fd.NO_ESTIMATE: "no estimate (n = 1)"}   # the caption says the full sentence


def comparison_table(experiment: str, runs: Sequence[Any]) -> pd.DataFrame:
    """Rank-1 and mAP (ours · thesis), the Rank-1 difference to the baseline (ours · thesis) and
    the verdict of the noise rule; one row per variant."""
    spec = _spec(experiment)
    rows = experiment_rows(experiment, runs)
    entries = {e.label: e for e in _entries(experiment, rows)}
    out = []
    for row in rows:
        cells: dict[tuple[str, str], str] = {(spec.label_header, ""): row.label, ("n", ""): str(len(row.runs))}
        for metric in ("R1", "mAP"):
            cells[(HEADERS[metric], "ours")] = fd.fmt_value(row.ours(metric))
            cells[(HEADERS[metric], "thesis")] = _fmt(_thesis_value(row.thesis, metric))
        entry = entries.get(row.label)
        if _baseline_row(rows) is not None:
            baseline = row.is_baseline
            cells[("Δ Rank-1", "ours")] = "baseline" if baseline else fd.fmt_difference(entry.diff if entry else None)
            td = entry.thesis_diff if entry else None
            cells[("Δ Rank-1", "thesis")] = "" if baseline else (MISSING if td is None else f"{td:+.1f}")
            cells[("verdict", "")] = "" if baseline or entry is None else _VERDICT_CELL.get(entry.diff.verdict,
                                                                                           entry.diff.verdict)
            cells[("p (Holm)", "")] = "" if baseline or entry is None or entry.diff.p is None else fd.fmt_p(entry.diff.p)
        out.append(cells)
    if all(len(row.runs) == 1 for row in rows):   # no verdict anywhere: the caption says why, once
        for cells in out:
            cells.pop(("verdict", ""), None)
            cells.pop(("p (Holm)", ""), None)
    flat = [r for row in rows for r in row.runs]
    return _frame(out, _caption(spec.title, flat, [len(r.runs) for r in rows], rule=_baseline_row(rows) is not None))


def metrics_table(experiment: str, runs: Sequence[Any]) -> pd.DataFrame:
    """Every metric of ours (Rank-1/5/10/20, mAP, mINP), mean ± std over seeds; one row per variant."""
    spec = _spec(experiment)
    rows = experiment_rows(experiment, runs)
    out = [{(spec.label_header, ""): row.label, ("n", ""): str(len(row.runs)),
            **{(HEADERS[m], ""): fd.fmt_value(row.ours(m)) for m in METRICS}} for row in rows]
    flat = [r for row in rows for r in row.runs]
    return _frame(out, _caption(f"{spec.title}: all metrics, ours", flat, [len(r.runs) for r in rows], rule=False))


def baseline_table(runs: Sequence[Any] | Any) -> pd.DataFrame:
    """Table 3: one row per metric, ours (mean ± std over seeds) beside the thesis's replication."""
    runs = list(runs) if isinstance(runs, (list, tuple)) else [runs]
    rows = experiment_rows("00_baseline", runs)
    if len(rows) != 1:
        raise MaceError(f"Table 3 takes the runs of one variant, got {[r.label for r in rows]}",
                        "pass load_results('00_baseline', ...)")
    row = rows[0]
    out = [{("metric", ""): HEADERS[m], ("ours", ""): fd.fmt_value(row.ours(m)),
            ("thesis", ""): _fmt(_thesis_value(tn.TABLE3, m))} for m in METRICS]
    return _frame(out, _caption(SPECS["00_baseline"].title + f" (variant {row.label})", row.runs,
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
                    ("parameters (M)", "thesis"): _fmt(ref.get("params_m")),
                    ("training time", "ours"): _duration(float(np.mean(secs))) if secs else MISSING,
                    ("training time", "thesis"): str(ref.get("time") or MISSING),
                    ("epoch", "ours"): ", ".join(epochs) or MISSING,
                    ("epoch", "thesis"): str(ref.get("best_epoch") or MISSING)})
    flat = [r for row in rows for r in row.runs]
    return _frame(out, _caption("Table 4 — cost of each backbone (training time: mean over seeds; thesis: "
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
    entries = _entries(experiment, rows)
    if experiment == "00_baseline":
        e = entries[0]
        return (f"The baseline reaches IR→RGB Rank-1 {fd.fmt_value(e.ours)} % on {data_source(rows[0].runs[0])} "
                f"data (n = {e.ours.n}); the thesis's replication reached {tn.TABLE3['R1']:.1f} % on real "
                f"SYSU-MM01, a different data set, so only the later comparisons carry over."
                + (claims_block(claim_results(experiment, runs)) if with_claims else ""))
    if _baseline_row(rows) is None:
        text = "The baseline variant has no completed run, so no variant can be compared with it."
    else:
        text = fd.finding(entries, baseline="the baseline" if experiment != "05_data_efficiency" else "all identities")
    return text + (claims_block(claim_results(experiment, runs)) if with_claims else "")


# ---------------------------------------------------------------------------------------------
# Figures' frames (numeric, long): mean and std over seeds

def fraction_curve_data(runs: Sequence[Any]) -> pd.DataFrame:
    """Long numeric frame (fraction, metric, mean, std, source) for the metric-vs-fraction figure."""
    rows = []
    for row in experiment_rows("05_data_efficiency", runs):
        for metric in ("R1", "mAP"):
            s = row.ours(metric)
            if s is not None:
                rows.append({"fraction": _fraction(row.runs[0]), "metric": metric, "mean": s.mean, "std": s.std,
                             "source": ours_label(row.runs[0])})
    for frac, ref in tn.TABLE8.items():
        for metric in ("R1", "mAP"):
            rows.append({"fraction": frac, "metric": metric, "mean": ref[metric], "std": None, "source": tn.THESIS_LABEL})
    return pd.DataFrame(rows)


def thesis_for(experiment: str):
    """``run -> thesis numbers | None`` for the training experiments (used by the comparison bars)."""
    spec = _spec(experiment)
    return lambda run: spec.thesis.get(spec.key(run))


def comparison_frame(runs: Sequence[Any], thesis_of=None, metrics: Sequence[str] = ("R1", "mAP")) -> pd.DataFrame:
    """Long numeric frame (variant, source, metric, mean, std over seeds) of ours and the thesis's."""
    rows = []
    for variant, members in group_runs(runs).items():
        ref = thesis_of(members[0]) if thesis_of else None
        for m in metrics:
            s = over_seeds(_seed_results(members), m)
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
# Experiment 4: multi-query (test-time evaluations of the trained baseline, one per seed)

def _eval_seed(item: Mapping[str, Any]) -> int:
    return int(item.get("seed", 0))


def _mq_groups(evals: Iterable[Mapping[str, Any]]) -> dict[tuple[int, str], dict[int, Mapping[str, Any]]]:
    groups: dict[tuple[int, str], dict[int, Mapping[str, Any]]] = {}
    for item in evals:
        groups.setdefault((int(item["n"]), str(item["fusion"])), {})[_eval_seed(item)] = item["results"]
    if not groups:
        raise MaceError("no multi-query evaluations to tabulate", "evaluate the baseline with multi_query=n first")
    return groups


def multi_query_frame(evals: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Numeric long frame (n, fusion, metric, mean, std over seeds) from test-time evaluations: each
    item has ``seed`` (default 0), ``n``, ``fusion`` and ``results``."""
    rows = []
    for (n, fusion), by_seed in sorted(_mq_groups(evals).items()):
        for metric in ("R1", "mAP"):
            s = over_seeds(by_seed, metric)
            if s is not None:
                rows.append({"n": n, "fusion": fusion, "metric": metric, "mean": s.mean, "std": s.std})
    return pd.DataFrame(rows)


def _mq_thesis(n: int, fusion: str, metric: str) -> float | None:
    return tn.TABLE7_SINGLE.get(metric) if n == 1 else tn.TABLE7.get((n, fusion), {}).get(metric)


def multi_query_table(evals: Iterable[Mapping[str, Any]], runs: Sequence[Any] | Any, metric: str = "R1") -> pd.DataFrame:
    """Table 7 for one metric: one row per pool size n, one ours · thesis group per fusion strategy,
    and the mean number of images actually fused (where a camera had fewer than n images)."""
    runs = list(runs) if isinstance(runs, (list, tuple)) else [runs]
    evals = list(evals)
    groups = _mq_groups(evals)
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
            cells[(fusion, "thesis")] = _fmt(_mq_thesis(n, fusion, metric))
        out.append(cells)
    title = (f"Table 7 — multi-query fusion, {HEADERS[metric]}, all-search (n: IR queries per pool; fused: "
             f"images actually fused, mean; thesis n = 1: Table 3)")
    return _frame(out, _caption(title, runs, sorted(sizes - {0}) or [1], rule=False,
                                eval_results=[e["results"] for e in evals]))


def multi_query_finding(evals: Iterable[Mapping[str, Any]], metric: str = "R1", with_claims: bool = True) -> str:
    """Best (n, fusion) against the single query (n = 1), paired by seed; then the thesis's claims."""
    evals = list(evals)
    groups = _mq_groups(evals)
    singles = [k for k in groups if k[0] == 1]
    if not singles:
        return "No single-query (n = 1) evaluation: the pools cannot be compared with a single query."
    base_label = "n = 1"
    summaries = {base_label: over_seeds(groups[singles[0]], metric)}
    thesis = {base_label: _mq_thesis(1, singles[0][1], metric)}
    for (n, fusion), by_seed in sorted(groups.items()):
        if n > 1:
            label = f"n = {n}, {fusion}"
            summaries[label] = over_seeds(by_seed, metric)
            thesis[label] = _mq_thesis(n, fusion, metric)
    entries = fd.entries_from(summaries, base_label, thesis)
    text = fd.finding(entries, measure=f"IR→RGB {HEADERS[metric]}", baseline="the single query")
    return text + (claims_block(claim_results("04_multi_query", [], evals)) if metric == "R1" and with_claims else "")


# ---------------------------------------------------------------------------------------------
# Experiment 6: occlusion (clean and occluded evaluations of each model, one per seed)

def _occ_training(run: Any) -> str:
    data = run.config.data
    if float(getattr(data, "occlusion_p", 0.0)) <= 0:
        return "baseline"
    return "+".join(data.occlusion_types)


def _occ_groups(runs: Sequence[Any], evals: Iterable[Mapping[str, Any]]):
    """model -> (runs, {condition (None = clean) -> {seed: results}}); a model's clean results default
    to its runs' own results.json."""
    groups = group_runs(runs)
    conds: dict[str, dict[str | None, dict[int, Mapping[str, Any]]]] = {m: {} for m in groups}
    for item in evals:
        if item["model"] in conds:
            conds[item["model"]].setdefault(item.get("occlusion"), {})[_eval_seed(item)] = item["results"]
    for model, members in groups.items():
        conds[model].setdefault(None, {})
        for run in members:
            conds[model][None].setdefault(seed_of(run), run.results)
    return groups, conds


def _drop(clean: Mapping[int, Mapping[str, Any]], occ: Mapping[int, Mapping[str, Any]], metric: str):
    c, o = over_seeds(clean, metric), over_seeds(occ, metric)
    return None if c is None or o is None else fd.difference(c, o)   # clean − occluded: a drop is positive


def occlusion_frame(runs: Sequence[Any], evals: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Numeric frame: one row per (model, occlusion type): clean / occluded Rank-1 and mAP (means over
    seeds), their drops (paired by seed) and the drops' 95 % half-widths."""
    groups, conds = _occ_groups(runs, evals)
    rows = []
    for model, members in groups.items():
        clean = conds[model][None]
        for occ, by_seed in conds[model].items():
            if occ is None:
                continue
            d1, dm = _drop(clean, by_seed, "R1"), _drop(clean, by_seed, "mAP")
            rows.append({"model": model, "trained_with": _occ_training(members[0]), "occlusion": occ,
                         "n": len(by_seed), "clean_R1": over_seeds(clean, "R1").mean,
                         "occ_R1": over_seeds(by_seed, "R1").mean,
                         "R1_drop": d1.mean, "R1_drop_hw": d1.half_width, "mAP_drop": dm.mean,
                         "mAP_drop_hw": dm.half_width})
    if not rows:
        raise MaceError("no occluded evaluations to tabulate", "evaluate with occlusion=<type> first")
    return pd.DataFrame(rows)


def _occ_thesis(run: Any, occ: str | None) -> Mapping[str, Any] | None:
    trained = _occ_training(run)
    if trained == "baseline":
        return tn.TABLE9.get(("baseline", occ)) if occ else {"occ_R1": tn.TABLE9[("baseline", "random_rect")]["clean_R1"]}
    if occ is None:
        types = trained.split("+")
        ref = tn.TABLE9.get(("occlusion-trained", types[0])) if len(types) == 1 else None
        return {"occ_R1": ref["clean_R1"]} if ref else None
    return tn.TABLE9.get(("occlusion-trained", occ)) if occ in trained.split("+") else None


def _fmt_drop(diff: fd.Difference | None) -> str:
    if diff is None:
        return MISSING
    return fd.fmt_difference(diff).lstrip("+") + (" n.d." if diff.verdict == fd.NOT_DISTINGUISHABLE else "")


def occlusion_table(runs: Sequence[Any], evals: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Table 9: one row per model × condition (clean, then each occlusion type): Rank-1, and the drops
    in Rank-1 and mAP from clean (paired by seed), ours · thesis."""
    evals = list(evals)
    groups, conds = _occ_groups(runs, evals)
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
                        ("Rank-1", "ours"): fd.fmt_value(s), ("Rank-1", "thesis"): _fmt(ref.get("occ_R1")),
                        ("Rank-1 drop", "ours"): "" if occ is None else _fmt_drop(drops[("R1", model, occ)]),
                        ("Rank-1 drop", "thesis"): "" if occ is None else _fmt(ref.get("R1_drop")),
                        ("mAP drop", "ours"): "" if occ is None else _fmt_drop(drops[("mAP", model, occ)]),
                        ("mAP drop", "thesis"): "" if occ is None else _fmt(ref.get("mAP_drop"))})
    if not any(k is not None for c in conds.values() for k in c):
        raise MaceError("no occluded evaluations to tabulate", "evaluate with occlusion=<type> first")
    flat = [r for m in groups.values() for r in m]
    extra = ("Drops (pp, clean − occluded) are paired by seed, ± the half-width of their 95 % t-interval; "
             "n.d.: not distinguishable from 0 (Holm–Bonferroni over the table's drops of that metric). "
             "occlusion_* models were trained with that occlusion "
             "(p = 0.5); the thesis's baseline clean Rank-1 is Table 9's 44.65.")
    return _frame(out, _caption("Table 9 — occlusion robustness (IR queries occluded at test time)", flat, sizes,
                                rule=False, extra=extra, eval_results=[e["results"] for e in evals]))


def _occlusion_comparisons(runs: Sequence[Any], evals: Sequence[Mapping[str, Any]]):
    """``(drops, gains)``: the baseline's Rank-1 drop per occlusion type (clean − occluded) and each
    occlusion-trained model's gain over the baseline on its own type, Holm-adjusted together; or a
    sentence saying why there is nothing to compare."""
    groups, conds = _occ_groups(runs, evals)
    base = [m for m, members in groups.items() if _occ_training(members[0]) == "baseline"]
    if not base:
        return "The baseline has no completed run, so the occlusion drops have no reference."
    clean = conds[base[0]][None]
    drops = {occ: _drop(clean, by_seed, "R1") for occ, by_seed in conds[base[0]].items() if occ is not None}
    if not drops:
        return "No occluded evaluation of the baseline is stored yet."
    gains = {}
    for model, members in groups.items():
        types = _occ_training(members[0]).split("+")
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
    found = _occlusion_comparisons(runs, evals)
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


# ---------------------------------------------------------------------------------------------
# The thesis's claims (mace_core.analysis.thesis_claims), each tested on our numbers

def condition_values(experiment: str, runs: Sequence[Any], evals: Iterable[Mapping[str, Any]] | None = None,
                     metric: str = "R1") -> dict[Any, dict[int, float]]:
    """``condition key -> {seed: value}`` in the key space of :mod:`thesis_claims` (first variant per key)."""
    out: dict[Any, dict[int, float]] = {}

    def put(key: Any, by_seed: Mapping[int, Mapping[str, Any]]) -> None:
        s = over_seeds(by_seed, metric)
        if s is not None and key not in out:
            out[key] = dict(s.values)

    if experiment == "04_multi_query":
        for (n, fusion), by_seed in sorted(_mq_groups(list(evals or [])).items()):
            put((1, None) if n == 1 else (n, fusion), by_seed)
            put((n, fusion), by_seed)
    elif experiment == "06_occlusion":
        groups, conds = _occ_groups(runs, list(evals or []))
        for model, members in groups.items():
            for occ, by_seed in conds[model].items():
                put((_occ_training(members[0]), occ), by_seed)
    elif experiment in SPECS:
        spec = _spec(experiment)
        for members in group_runs(runs).values():
            put(spec.key(members[0]), _seed_results(members))
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


# ---------------------------------------------------------------------------------------------
# Display

TABLE_CLASS = "mace-table"


_LABEL_COLUMNS = ("variant", "model", "queries", "backbone", "identities")


def show(frame: pd.DataFrame):
    """A Styler with the caption and no index (CSS class ``mace-table``: book/_static/mace.css).
    Label columns may break after an underscore (long variant names), numbers never break."""
    styler = frame.style.hide(axis="index").set_table_attributes(f'class="{TABLE_CLASS}"')
    labels = [c for c in frame.columns if (c[0] if isinstance(c, tuple) else c) in _LABEL_COLUMNS]
    if labels:
        styler = styler.format(lambda v: html.escape(str(v)).replace("_", "_<wbr>"), subset=labels)
        styler = styler.set_properties(subset=labels, **{"white-space": "normal", "text-align": "left"})
    caption = frame.attrs.get("caption")
    if caption:
        styler = styler.set_caption(caption)
    return styler


def show_finding(text: str):
    """The computed finding as a Markdown block for the notebook's output."""
    from IPython.display import Markdown

    return Markdown(f"**Finding (computed from the numbers above).** {text}")


# ---------------------------------------------------------------------------------------------
# Headline numbers (the book's "results at a glance" page)

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
    mdd: str = MISSING              # the Δ detectable with 80 % power at α = 0.05 (pp)
    claims: tuple[ClaimResult, ...] = ()


# Marks a comparison picked after the fact (the best of k, or the largest of k drops); the overview's
# note under its table says so in words (a short mark keeps the table as narrow as the page).
PICKED = "†"
PICKED_NOTE = ("† picked after the fact: the best of the chapter's k comparisons (for occlusion, the largest of k "
               "drops); its verdict is Holm-adjusted over all k.")

_NOISE = {fd.HIGHER: "exceeds", fd.LOWER: "exceeds", fd.NOT_DISTINGUISHABLE: "not distinguishable",
          fd.NO_ESTIMATE: "n = 1: no estimate"}


def _direction(ours: float | None, thesis: float | None) -> str:
    if ours is None or thesis is None or ours == 0 or thesis == 0:
        return MISSING
    return "agrees" if (ours > 0) == (thesis > 0) else "opposite"


def _fmt_mdd(diffs: Iterable[fd.Difference | None]) -> str:
    mdd = fd.family_mdd(diffs)
    return MISSING if mdd is None else f"{mdd:.1f}"


def _headline_of(entries: Sequence[fd.Entry], measure: str, baseline: str, finding: str,
                 claims: Sequence[ClaimResult] = ()) -> Headline:
    others = [e for e in entries if e.diff is not None]
    if not others:
        e = entries[0]
        return Headline(e.label, fd.fmt_value(e.ours), _fmt(e.thesis), finding=finding, claims=tuple(claims))
    best = max(others, key=lambda e: e.diff.mean)
    td = best.thesis_diff
    picked = f" (best of {len(others)}{PICKED})" if len(others) > 1 else ""
    return Headline(f"{best.label} vs {baseline}{picked}", fd.fmt_value(best.ours), _fmt(best.thesis),
                    fd.fmt_difference(best.diff), MISSING if td is None else f"{td:+.1f}",
                    _NOISE[best.diff.verdict], _direction(best.diff.mean, td), finding,
                    _fmt_mdd(e.diff for e in others), tuple(claims))


def headline(experiment: str, runs: Sequence[Any], evals: Iterable[Mapping[str, Any]] | None = None) -> Headline:
    """The experiment's headline: the best variant (or pool, or the occlusion drop) beside the thesis,
    its verdict after the chapter's Holm correction, the detectable Δ, and the chapter's claims tested."""
    evals = list(evals or [])
    claims = claim_results(experiment, runs, evals)
    if experiment == "04_multi_query":
        groups = _mq_groups(evals)
        single = next((k for k in groups if k[0] == 1), None)
        if single is None:
            raise MaceError("no single-query evaluation stored", "execute the multi-query summary notebook")
        summaries = {"n = 1": over_seeds(groups[single], "R1")}
        thesis = {"n = 1": _mq_thesis(1, single[1], "R1")}
        for (n, fusion), by_seed in sorted(groups.items()):
            if n > 1:
                summaries[f"n = {n}, {fusion}"] = over_seeds(by_seed, "R1")
                thesis[f"n = {n}, {fusion}"] = _mq_thesis(n, fusion, "R1")
        return _headline_of(fd.entries_from(summaries, "n = 1", thesis), "Rank-1", "n = 1",
                            multi_query_finding(evals, with_claims=False), claims)
    if experiment == "06_occlusion":
        found = _occlusion_comparisons(runs, evals)
        if isinstance(found, str):
            raise MaceError("no occluded evaluation of the baseline stored", "execute the occlusion summary notebook")
        drops, gains = found
        worst = max(drops, key=lambda k: drops[k].mean)
        drop = drops[worst]
        ref = tn.TABLE9.get(("baseline", worst), {}).get("R1_drop")
        picked = f" (largest of {len(drops)}{PICKED})" if len(drops) > 1 else ""
        return Headline(f"baseline drop, {worst}{picked}", _fmt_drop(drop).replace(" n.d.", ""),
                        _fmt(ref), noise=_NOISE[drop.verdict], direction=_direction(drop.mean, ref),
                        finding=occlusion_finding(runs, evals, with_claims=False),
                        mdd=_fmt_mdd(list(drops.values()) + list(gains.values())), claims=tuple(claims))
    rows = experiment_rows(experiment, runs)
    finding = experiment_finding(experiment, runs, with_claims=False)
    base = _baseline_row(rows)
    return _headline_of(_entries(experiment, rows), "Rank-1", base.label if base else "baseline", finding, claims)

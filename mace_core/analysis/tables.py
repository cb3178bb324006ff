"""The book's result tables: this study's numbers beside the thesis's, with their labels.

Every table is a pandas DataFrame of display strings (``mean ± std`` for our multi-trial numbers),
one row per (variant, source). Our rows say where the data came from (``cfg.data.source``, e.g.
"synthetic") and how the model was selected (from ``results.json``); thesis rows say
:data:`~mace_core.analysis.thesis_numbers.THESIS_LABEL`. ``df.attrs["caption"]`` repeats both
labels; :func:`show` renders a table with its caption.

Inputs are duck-typed run records (``.variant``, ``.config`` (RunConfig), ``.results`` (dict)), as
returned by ``mace_core.study.load_results``, so the functions work on fakes in tests.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mace_core.analysis import thesis_numbers as tn
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


def ours_label(run: Any) -> str:
    return f"ours, {data_source(run)} data, {selection_rule(run.results)}"


def _fmt(mean: float | None, std: float | None = None, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _caption(title: str, runs: Iterable[Any]) -> str:
    runs = list(runs)
    sources = sorted({data_source(r) for r in runs}) or ["none"]
    rules = sorted({selection_rule(r.results) for r in runs}) or ["final epoch"]
    return (f"{title}. Ours: {', '.join(sources)} data, model selection: {', '.join(rules)}; "
            f"values in %, mean ± std over gallery trials. Thesis: {tn.THESIS_LABEL}, "
            f"{tn.THESIS_SELECTION}, single run.")


def _metric_cells(summary: Mapping[str, tuple[float, float | None]], metrics: Sequence[str]) -> dict[str, str]:
    return {HEADERS[m]: _fmt(*summary[m]) if m in summary else MISSING for m in metrics}


def _thesis_cells(numbers: Mapping[str, Any] | None, metrics: Sequence[str]) -> dict[str, str]:
    numbers = numbers or {}
    return {HEADERS[m]: _fmt(numbers.get(m)) for m in metrics}


def _finish(rows: list[dict[str, Any]], title: str, runs: Iterable[Any]) -> pd.DataFrame:
    frame = pd.DataFrame(rows).fillna(MISSING)
    frame.attrs["caption"] = _caption(title, runs)
    return frame


# ---------------------------------------------------------------------------------------------
# Variant -> thesis key

def backbone_family(name: str) -> str:
    """Map a timm model name to the thesis backbone it stands for (CPU profiles use small members)."""
    name = name.lower()
    if "seresnet" in name or "se_resnet" in name or "seresnext" in name:
        return "seresnet50"
    if "efficientnet" in name:
        return "efficientnet_b3"
    if "tresnet" in name:
        return "tresnet_m"
    if "resnet" in name:
        return "resnet50"
    return name


def _compare(runs: Sequence[Any], key_of, thesis: Mapping[Any, Mapping[str, Any]], metrics: Sequence[str],
             extra_ours=None, extra_thesis: Sequence[str] = (), title: str = "") -> pd.DataFrame:
    if not runs:
        raise MaceError(f"{title}: no completed runs to tabulate", "run the experiment's variants first")
    rows = []
    for run in runs:
        key = key_of(run)
        row = {"variant": run.variant, "source": ours_label(run), **_metric_cells(summarize(run.results), metrics)}
        if extra_ours:
            row.update(extra_ours(run))
        rows.append(row)
        ref = thesis.get(key)
        if ref is not None:
            trow = {"variant": run.variant, "source": tn.THESIS_LABEL, **_thesis_cells(ref, metrics)}
            for col in extra_thesis:
                trow[col] = _thesis_extra(col, ref)
            rows.append(trow)
    return _finish(rows, title, runs)


_EXTRA_COLUMNS = {"Parameters (M)": "params_m", "Training time": "time", "Reported epoch": "best_epoch"}


def _thesis_extra(col: str, ref: Mapping[str, Any]) -> str:
    value = ref.get(_EXTRA_COLUMNS[col])
    if value is None:
        return MISSING
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _run_extras(run: Any) -> dict[str, str]:
    """Parameter count, training time and the reported epoch, from the trainer's results.json."""
    res = run.results
    params = res.get("parameters")
    seconds = res.get("train_time_s")
    epoch = res.get("selected_epoch", res.get("final_epoch"))
    return {"Parameters (M)": MISSING if params is None else f"{float(params) / 1e6:.1f}",
            "Training time": MISSING if seconds is None else _duration(float(seconds)),
            "Reported epoch": MISSING if epoch is None else str(epoch)}


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------------------------
# The thesis's tables

def baseline_table(runs: Sequence[Any] | Any) -> pd.DataFrame:
    """Table 3: R1, R5, R10, R20, mAP, mINP of the baseline, beside the thesis's replication."""
    runs = list(runs) if isinstance(runs, (list, tuple)) else [runs]
    return _compare(runs, lambda r: "baseline", {"baseline": tn.TABLE3}, METRICS,
                    title="Table 3 — SYSU-MM01-protocol results, all-search, experiment 0")


def backbone_table(runs: Sequence[Any]) -> pd.DataFrame:
    """Table 4 + parameter count, training time and best/final epoch."""
    return _compare(runs, lambda r: backbone_family(r.config.model.backbone), tn.TABLE4,
                    ("R1", "R5", "R10", "R20", "mAP", "mINP"), extra_ours=_run_extras,
                    extra_thesis=tuple(_EXTRA_COLUMNS), title="Table 4 — backbones")


def attention_table(runs: Sequence[Any]) -> pd.DataFrame:
    """Table 5: attention modules (none = the baseline)."""
    return _compare(runs, lambda r: r.config.model.attention, tn.TABLE5,
                    ("R1", "R5", "R10", "R20", "mAP", "mINP"), extra_ours=lambda r: {"Reported epoch": _run_extras(r)["Reported epoch"]},
                    extra_thesis=("Reported epoch",), title="Table 5 — attention mechanisms")


def fusion_table(runs: Sequence[Any]) -> pd.DataFrame:
    """Table 6: fusion strategies (concat = the baseline)."""
    return _compare(runs, lambda r: r.config.model.fusion, tn.TABLE6,
                    ("R1", "R5", "R10", "R20", "mAP", "mINP"), extra_ours=lambda r: {"Reported epoch": _run_extras(r)["Reported epoch"]},
                    extra_thesis=("Reported epoch",), title="Table 6 — fusion strategies")


def fraction_table(runs: Sequence[Any]) -> pd.DataFrame:
    """Table 8: results per identity fraction."""
    def key(run):
        return round(float(run.config.data.id_fraction), 2)
    thesis = {round(k, 2): v for k, v in tn.TABLE8.items()}
    ordered = sorted(runs, key=key)
    frame = _compare(ordered, key, thesis, ("R1", "R5", "R10", "R20", "mAP", "mINP"),
                     extra_ours=lambda r: {"Reported epoch": _run_extras(r)["Reported epoch"]},
                     extra_thesis=("Reported epoch",), title="Table 8 — training identity fraction")
    fractions = [f"{key(r):.0%}" for r in ordered for _ in range(2 if key(r) in thesis else 1)]
    frame.insert(1, "fraction", fractions)
    return frame


def fraction_curve_data(runs: Sequence[Any]) -> pd.DataFrame:
    """Long numeric frame (fraction, metric, mean, std, source) for the metric-vs-fraction figure."""
    rows = []
    for run in runs:
        frac = float(run.config.data.id_fraction)
        for metric, (mean, std) in summarize(run.results).items():
            if metric in ("R1", "mAP"):
                rows.append({"fraction": frac, "metric": metric, "mean": mean, "std": std, "source": ours_label(run)})
    for frac, ref in tn.TABLE8.items():
        for metric in ("R1", "mAP"):
            rows.append({"fraction": frac, "metric": metric, "mean": ref[metric], "std": None, "source": tn.THESIS_LABEL})
    return pd.DataFrame(rows)


def multi_query_frame(evals: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Numeric long frame from test-time evaluations: each item has ``n``, ``fusion`` and ``results``."""
    rows = []
    for item in evals:
        summary = summarize(item["results"])
        for metric in ("R1", "mAP"):
            if metric in summary:
                mean, std = summary[metric]
                rows.append({"n": int(item["n"]), "fusion": str(item["fusion"]), "metric": metric,
                             "mean": mean, "std": std})
    if not rows:
        raise MaceError("no multi-query evaluations to tabulate", "evaluate the baseline with multi_query=n first")
    return pd.DataFrame(rows)


def _pool_sizes(evals: Iterable[Mapping[str, Any]]) -> dict[int, str]:
    """n -> mean images actually fused per query (from the evaluations' protocol records)."""
    sizes = {}
    for item in evals:
        size = (item["results"].get("protocol") or {}).get("mean_pool_size")
        if size is not None:
            sizes[int(item["n"])] = f"{float(size):.1f}"
    return sizes


def multi_query_table(evals: Iterable[Mapping[str, Any]], run: Any) -> pd.DataFrame:
    """Table 7: R1 / mAP per pool size n and strategy, ours beside the thesis's; the mean number of
    images actually fused shows where an identity's camera had fewer than n images."""
    evals = list(evals)
    frame = multi_query_frame(evals)
    rows = []
    fused = _pool_sizes(evals)
    for n in sorted(frame["n"].unique()):
        for metric in ("R1", "mAP"):
            row: dict[str, Any] = {"n": int(n), "images fused (mean)": fused.get(int(n), MISSING),
                                   "metric": HEADERS[metric]}
            for fusion in tn.FUSIONS:
                hit = frame[(frame.n == n) & (frame.fusion == fusion) & (frame.metric == metric)]
                row[f"{fusion} (ours)"] = _fmt(hit["mean"].iloc[0], hit["std"].iloc[0]) if len(hit) else MISSING
                if n == 1:
                    ref = tn.TABLE7_SINGLE.get(metric)
                else:
                    ref = tn.TABLE7.get((int(n), fusion), {}).get(metric)
                row[f"{fusion} ({tn.THESIS_LABEL})"] = _fmt(ref)
            rows.append(row)
    out = _finish(rows, "Table 7 — multi-query fusion, all-search", [run])
    return out


def occlusion_frame(baseline_run: Any, trained_runs: Sequence[Any], evals: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Numeric frame: one row per (model, occlusion type) with clean/occluded R1 and mAP and drops.

    ``evals`` items: ``model`` (a run variant name), ``occlusion`` (type or None for clean),
    ``results``. Clean numbers of a model come from its own item with ``occlusion=None``.
    """
    evals = list(evals)
    by_key = {(e["model"], e.get("occlusion")): summarize(e["results"]) for e in evals}
    rows = []
    models = [baseline_run, *trained_runs]
    for run in models:
        clean = by_key.get((run.variant, None)) or summarize(run.results)
        for (model, occ), occluded in by_key.items():
            if model != run.variant or occ is None:
                continue
            rows.append({"model": run.variant, "trained_with": _occ_training(run), "occlusion": occ,
                         "clean_R1": clean["R1"][0], "occ_R1": occluded["R1"][0],
                         "clean_R1_std": clean["R1"][1], "occ_R1_std": occluded["R1"][1],
                         "clean_mAP": clean["mAP"][0], "occ_mAP": occluded["mAP"][0],
                         "R1_drop": clean["R1"][0] - occluded["R1"][0],
                         "mAP_drop": clean["mAP"][0] - occluded["mAP"][0],
                         "source": ours_label(run)})
    if not rows:
        raise MaceError("no occluded evaluations to tabulate", "evaluate with occlusion=<type> first")
    return pd.DataFrame(rows)


def _occ_training(run: Any) -> str:
    data = run.config.data
    if float(getattr(data, "occlusion_p", 0.0)) <= 0:
        return "baseline"
    return "+".join(data.occlusion_types)


def occlusion_table(baseline_run: Any, trained_runs: Sequence[Any], evals: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Table 9: clean vs occluded R1, drops in R1 and mAP, baseline vs occlusion-trained."""
    frame = occlusion_frame(baseline_run, trained_runs, evals)
    rows = []
    for _, r in frame.iterrows():
        model_key = "baseline" if r.trained_with == "baseline" else "occlusion-trained"
        rows.append({"model": r.model, "trained with": r.trained_with, "occlusion": r.occlusion,
                     "source": r.source, "clean Rank-1": _fmt(r.clean_R1, r.clean_R1_std),
                     "occluded Rank-1": _fmt(r.occ_R1, r.occ_R1_std),
                     "Rank-1 drop (pp)": _fmt(r.R1_drop), "mAP drop (pp)": _fmt(r.mAP_drop)})
        ref = tn.TABLE9.get((model_key, r.occlusion))
        if ref is not None and (model_key == "baseline" or r.occlusion in r.trained_with.split("+")):
            rows.append({"model": r.model, "trained with": r.trained_with, "occlusion": r.occlusion,
                         "source": tn.THESIS_LABEL, "clean Rank-1": _fmt(ref["clean_R1"]),
                         "occluded Rank-1": _fmt(ref["occ_R1"]), "Rank-1 drop (pp)": _fmt(ref["R1_drop"], digits=1),
                         "mAP drop (pp)": _fmt(ref["mAP_drop"], digits=1)})
    return _finish(rows, "Table 9 — occlusion robustness (IR queries occluded at test time)",
                   [baseline_run, *trained_runs])


# ---------------------------------------------------------------------------------------------
# Display

def show(frame: pd.DataFrame):
    """A Styler with the caption and no index, for notebook display."""
    styler = frame.style.hide(axis="index")
    caption = frame.attrs.get("caption")
    if caption:
        styler = styler.set_caption(caption)
    return styler


def thesis_for(experiment: str):
    """``run -> thesis numbers | None`` for the training experiments (used by the comparison bars)."""
    keyed = {
        "00_baseline": (lambda r: "baseline", {"baseline": tn.TABLE3}),
        "01_backbones": (lambda r: backbone_family(r.config.model.backbone), tn.TABLE4),
        "02_attention": (lambda r: r.config.model.attention, tn.TABLE5),
        "03_fusion": (lambda r: r.config.model.fusion, tn.TABLE6),
        "05_data_efficiency": (lambda r: round(float(r.config.data.id_fraction), 2),
                               {round(k, 2): v for k, v in tn.TABLE8.items()}),
    }
    if experiment not in keyed:
        raise MaceError(f"no thesis table for experiment {experiment!r}", f"use one of {', '.join(keyed)}")
    key_of, table = keyed[experiment]
    return lambda run: table.get(key_of(run))


def comparison_frame(runs: Sequence[Any], thesis_of=None, metrics: Sequence[str] = ("R1", "mAP")) -> pd.DataFrame:
    """Long numeric frame (variant, source, metric, mean, std) of ours and, if given, the thesis's."""
    rows = []
    for run in runs:
        summary = summarize(run.results)
        ref = thesis_of(run) if thesis_of else None
        for m in metrics:
            if m in summary:
                rows.append({"variant": run.variant, "source": ours_label(run), "metric": m,
                             "mean": summary[m][0], "std": summary[m][1]})
            if ref and ref.get(m) is not None:
                rows.append({"variant": run.variant, "source": tn.THESIS_LABEL, "metric": m,
                             "mean": float(ref[m]), "std": None})
    if not rows:
        raise MaceError("no runs to compare", "run the experiment's variants first")
    return pd.DataFrame(rows)

"""Results of completed runs, read and aggregated over training seeds.

:func:`summarize` reads one run's metrics out of its results.json (per-trial lists, mean/std blocks or
one plain evaluation) in percent; :func:`group_runs` and :func:`over_seeds` aggregate runs of one
variant over their training seeds; :func:`mq_groups` and :func:`occ_groups` group the test-time
evaluations of experiments 4 and 6 by condition, one result per seed.

Inputs are duck-typed run records (``.variant``, ``.seed``, ``.config`` (RunConfig), ``.results``),
as returned by ``mace_core.study.load_results``, so the functions work on fakes in tests.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mace_core.analysis import findings as fd
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


def seed_results(members: Sequence[Any]) -> dict[int, Mapping[str, Any]]:
    """``seed -> results dict`` of one variant's runs."""
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


# ---------------------------------------------------------------------------------------------
# Test-time evaluations grouped by condition, one result per seed

def identity_rank1(results: Mapping[str, Any]) -> dict[int, float] | None:
    """Rank-1 (%) per test identity, pooled over the evaluation's gallery trials (hits / queries), from the
    trials' ``per_identity`` blocks; None when the evaluation did not store them (older results)."""
    block = _find_metrics_block(results)
    trials = block.get("trials") or block.get("per_trial")
    if not isinstance(trials, Sequence) or not trials:
        return None
    hits: dict[int, float] = {}
    queries: dict[int, float] = {}
    for trial in trials:
        per = trial.get("per_identity") if isinstance(trial, Mapping) else None
        if not isinstance(per, Mapping):
            return None
        for pid, n, h in zip(per["pid"], per["queries"], per["rank1_hits"]):
            queries[int(pid)] = queries.get(int(pid), 0.0) + float(n)
            hits[int(pid)] = hits.get(int(pid), 0.0) + float(h)
    return {pid: 100.0 * hits[pid] / queries[pid] for pid in sorted(queries) if queries[pid] > 0}


def _eval_seed(item: Mapping[str, Any]) -> int:
    return int(item.get("seed", 0))


def mq_groups(evals: Iterable[Mapping[str, Any]]) -> dict[tuple[int, str], dict[int, Mapping[str, Any]]]:
    """``(n, fusion) -> {seed: results}`` of the multi-query evaluations; raises when there are none."""
    groups: dict[tuple[int, str], dict[int, Mapping[str, Any]]] = {}
    for item in evals:
        groups.setdefault((int(item["n"]), str(item["fusion"])), {})[_eval_seed(item)] = item["results"]
    if not groups:
        raise MaceError("no multi-query evaluations to tabulate", "evaluate the baseline with multi_query=n first")
    return groups


def occ_training(run: Any) -> str:
    """The occlusion a model was trained with (``baseline`` when none; ``a+b`` for several types)."""
    data = run.config.data
    if float(getattr(data, "occlusion_p", 0.0)) <= 0:
        return "baseline"
    return "+".join(data.occlusion_types)


def occ_groups(runs: Sequence[Any], evals: Iterable[Mapping[str, Any]]):
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


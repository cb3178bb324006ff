"""The study plan: every (notebook, variant) pair of the selected experiments, the stamp each must
match to be skipped, and the order of the waves (see :mod:`mace_core.study.runner`).

Caching: a pair is skipped when its run is complete (params hash + code version, see registry) AND its
executed notebook exists with a stamp naming the same run key, notebook source and parameters.
Order: pairs that train a run (one per distinct run key) first, then pairs that reuse a run
(experiments 4 and 6 evaluate the baseline), then summaries.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from mace_core.book.build import GENERATED, SUMMARY
from mace_core.errors import MaceError
from mace_core.study import registry
from mace_core.study.notebook import runner_parameters
from mace_core.study.variants import (find_params_dir, list_experiments, list_variants, resolve, resolve_path,
                                      seeds_of_variant, with_seed)

STAMPS = ".stamps"
_ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
# what the notebooks call: run_variant, evaluate_variant, load_results; notebook_run (their parameters)
_NOTEBOOK_API = [Path(__file__).resolve().with_name(n) for n in ("api.py", "notebook.py")]


@dataclass
class Pair:
    """One notebook execution: a variant notebook (``variant`` set) or an experiment summary."""

    experiment: str
    name: str                      # variant name, or "summary"
    notebook: Path                 # jupytext source
    output: Path                   # executed .ipynb in the book tree
    parameters: dict[str, Any]
    run_key: str | None = None     # None for summaries
    run_dir: Path | None = None
    depends: list[str] = field(default_factory=list)   # run keys a summary reads
    stamp: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None        # the training seed the variant's page shows (its first)
    sweeps: bool = False           # a summary that evaluates test-time sweeps (experiments 4, 6): slow
    replicates: list["SeedRun"] = field(default_factory=list)   # its other training seeds
    pretrained: str | None = None  # the weights file its study pretraining exports (study/pretrain.py)

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.name}"

    @property
    def stamp_path(self) -> Path:
        return self.output.parent / STAMPS / f"{self.name}.json"

    @property
    def failed_path(self) -> Path:
        return self.output.with_name(f"{self.name}.failed.ipynb")

    @property
    def is_summary(self) -> bool:
        return self.run_key is None


@dataclass
class SeedRun:
    """A further training-seed replicate of a variant: trained by the runner itself (no notebook);
    the variant's page shows its first seed, the experiment's summary aggregates all seeds."""

    experiment: str
    variant: str
    seed: int
    run_key: str
    run_dir: Path
    pretrained: str | None = None  # as Pair.pretrained
    # (experiment, variant) pairs whose test-time sweeps (study.multi_query / study.occlusion) this job
    # evaluates right after training, so that the summaries find them cached instead of evaluating every
    # seed at the end one by one (a run shared by several variants carries each one's sweeps: waves())
    sweeps: list[tuple[str, str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.variant} (seed {self.seed})"


def _sha(paths: Iterable[Path], head: bytes = b"") -> str:
    h = hashlib.sha256(head)
    for path in paths:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def notebook_hash(notebook: Path) -> str:
    """The notebook's cells (not its header nor its parameters cell, see :mod:`.nbsource`) plus the code
    it calls to fetch and draw results (the notebook API and the analysis package): a change
    re-executes, never retrains."""
    from mace_core.study.nbsource import notebook_identity

    return _sha([*_NOTEBOOK_API, *sorted(_ANALYSIS.rglob("*.py"))], head=notebook_identity(notebook))


def parse_only(only: str | Iterable[str] | None, experiments: list[str]) -> list[str]:
    """``"00,04"`` or ``["00_baseline"]`` -> matching experiment names; MaceError naming unknown ones."""
    if not only:
        return experiments
    items = [s.strip() for s in (only.split(",") if isinstance(only, str) else only) if s.strip()]
    chosen = []
    for item in items:
        match = [e for e in experiments if e == item or e.split("_", 1)[0] == item]
        if not match:
            from mace_core.study.variants import OPTIONAL_EXPERIMENTS

            optional = [e for e in OPTIONAL_EXPERIMENTS if e == item or e.split("_", 1)[0] == item]
            if optional:   # an optional layer whose data was not given
                raise MaceError(f"--only {item!r} names the optional layer {optional[0]}, which needs its data",
                                "also pass --llcm-root PATH (the LLCM folder)")
            raise MaceError(f"--only {item!r} names no experiment", f"use numbers or names from: {', '.join(experiments)}")
        chosen += match
    return [e for e in experiments if e in chosen]


def plan(profile: str, params_dir="params", runs_dir="runs", book_dir="book", notebooks_dir="notebooks",
         only=None) -> list[Pair]:
    """Every pair of the selected experiments, with the stamp it must match to be skipped."""
    params = find_params_dir(params_dir)
    runs = resolve_path(runs_dir, params)
    books = resolve_path(book_dir, params)
    notebooks = resolve_path(notebooks_dir, params)
    pairs: list[Pair] = []
    for experiment in parse_only(only, list_experiments(params)):
        source = notebooks / f"{experiment}.py"
        summary = notebooks / f"{experiment}_summary.py"
        if not source.is_file():
            raise MaceError(f"experiment {experiment} has no notebook {source}", "write it, or leave it out with --only")
        out_dir = books / GENERATED / experiment
        keys = []
        sweeps = False
        shown = {"params_dir": _shown(params, params.parent), "runs_dir": _shown(runs, params.parent)}
        for variant in list_variants(experiment, params):
            v = resolve(experiment, variant, profile, params)
            sweeps = sweeps or _has_sweeps(v)
            seeds = seeds_of_variant(v)
            seeded = [(s, registry.run_key(with_seed(v, s).config)) for s in seeds]
            key = seeded[0][1]
            pretrained = v.config.model.pretrained if v.pretrain is not None else None
            keys += [k for _, k in seeded]
            # every parameter the notebook declares, so what its parameters cell holds never matters
            parameters = {**runner_parameters(experiment, params), "profile": profile, "variant": variant, **shown}
            pair = Pair(experiment, variant, source, out_dir / f"{variant}.ipynb", parameters, key,
                        registry.run_dir_for(runs, profile, key), seed=seeds[0], pretrained=pretrained,
                        replicates=[SeedRun(experiment, variant, s, k, registry.run_dir_for(runs, profile, k), pretrained,
                                            [(experiment, variant)] if _has_sweeps(v) else [])
                                    for s, k in seeded[1:]])
            pair.stamp = {"run": key, "notebook": notebook_hash(source), "parameters": parameters}
            pairs.append(pair)
        if summary.is_file():
            parameters = {"profile": profile, **shown}
            pair = Pair(experiment, SUMMARY, summary, out_dir / f"{SUMMARY}.ipynb", parameters,
                        depends=keys, sweeps=sweeps)
            pairs.append(pair)
    return pairs


def _has_sweeps(v) -> bool:
    return bool(v.study.get("multi_query") or v.study.get("occlusion"))


def _shown(path: Path, project: Path) -> str:
    """A folder as the notebooks receive it: relative to the project root (their working directory),
    so no absolute path of the building machine reaches the book."""
    return Path(os.path.relpath(path, project)).as_posix()


def _summary_stamp(pair: Pair, runs_dir: Path, profile: str) -> dict[str, Any]:
    done = sorted({k for k in pair.depends if registry.is_complete(registry.run_dir_for(runs_dir, profile, k))})
    return {"runs": done, "notebook": notebook_hash(pair.notebook), "parameters": pair.parameters}


def is_fresh(pair: Pair) -> bool:
    if not pair.output.is_file() or not pair.stamp_path.is_file():
        return False
    if pair.run_dir is not None and not registry.is_complete(pair.run_dir):
        return False
    try:
        return json.loads(pair.stamp_path.read_text()) == pair.stamp
    except (OSError, json.JSONDecodeError):
        return False


def waves(pending: list[Pair], replicates: Iterable[SeedRun] = ()) -> list[tuple[str, list]]:
    """("train", first pair of every run not yet complete + every incomplete seed replicate),
    ("reuse", other variant pairs), ("summary", summaries); empty waves left out. Runs shared by
    several variants (same key) are trained once."""
    producers, seen, consumers, summaries = [], set(), [], []
    for pair in pending:
        if pair.is_summary:
            summaries.append(pair)
        elif pair.run_key not in seen and not registry.is_complete(pair.run_dir):
            seen.add(pair.run_key)
            producers.append(pair)
        else:
            consumers.append(pair)
    trains: dict[str, SeedRun] = {}
    for rep in replicates:
        if rep.run_key not in seen and not registry.is_complete(rep.run_dir):
            seen.add(rep.run_key)
            producers.append(rep)
            trains[rep.run_key] = rep
        elif rep.run_key in trains:   # the same run for another variant: its sweeps go with the training job
            trains[rep.run_key].sweeps += [s for s in rep.sweeps if s not in trains[rep.run_key].sweeps]
    producers = pretraining_first(producers)
    # the summaries that evaluate test-time sweeps take longest: start them first (the wave ends with its
    # slowest job, so with several workers the short ones fill in beside them)
    summaries.sort(key=lambda p: not p.sweeps)
    return [(n, w) for n, w in (("train", producers), ("reuse", consumers), ("summary", summaries)) if w]


def pretraining_first(producers: list) -> list:
    """The first job of each backbone whose study pretraining is not built yet moves to the front, so
    the pool's workers pretrain different backbones side by side instead of one waiting on the other's
    lock (every further job of that backbone waits for its weights: study/pretrain.py)."""
    first, rest, seen = [], [], set()
    for job in producers:
        weights = getattr(job, "pretrained", None)
        if weights and weights not in seen and not Path(weights).is_file():
            seen.add(weights)
            first.append(job)
        else:
            rest.append(job)
    return first + rest


def replicates_of(pairs: Iterable[Pair]) -> list[SeedRun]:
    """Every further seed replicate of the planned variants (whether its page is fresh or not)."""
    return [rep for pair in pairs for rep in pair.replicates]


def executed_pages(pairs: list[Pair]) -> dict[str, list[str]]:
    """Experiment -> notebook names that exist executed and stamped (what the TOC may list)."""
    out: dict[str, list[str]] = {}
    for pair in pairs:
        if pair.output.is_file() and pair.stamp_path.is_file():
            out.setdefault(pair.experiment, []).append(pair.name)
    return out

"""`mace study run`: execute every (notebook, variant) pair with papermill into the book, then the
summaries, then build the book.

Caching: a pair is skipped when its run is complete (params hash + code version, see registry) AND its
executed notebook exists with a stamp naming the same run key, notebook source and parameters.
Order: pairs that train a run (one per distinct run key) first, then pairs that reuse a run
(experiments 4 and 6 evaluate the baseline), then summaries. Within a wave, ``jobs`` pairs run in
parallel: each worker process keeps one of the study's GPUs (one entry of the CUDA_VISIBLE_DEVICES the
study was started with, or one device when it is unset) for its life, and on CPU each
job gets an equal share of the threads.
A failing pair leaves ``<name>.failed.ipynb`` beside where its notebook would go and does not stop
the others. Notebooks are executed into a hidden temp file beside their page (never a book source,
see book/_config.yml) and renamed, so an interrupted study re-run completes only what is missing.
Stopped by SIGINT/SIGTERM, the study ends its workers and kernels and removes its temp files; the
temp files of a killed study (SIGKILL) are removed by the next one.
"""
from __future__ import annotations

import os
import warnings
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from mace_core.book.build import build_book, write_toc
from mace_core.errors import MaceError
from mace_core.jupyter.kernel import kernel_dir
from mace_core.study import registry
from mace_core.study.execution import _job, _replicate_job, execute_job, execute_train_job, remove_stale_partials
from mace_core.study.pages import write_overview, write_runs_table
from mace_core.study.planning import (SeedRun, _summary_stamp, executed_pages, is_fresh, plan, replicates_of,
                                      waves)
from mace_core.study.pretrain import ensure_pretraining_data
from mace_core.study.pool import _gpu_list, _run_jobs, gpu_sharing, job_env
from mace_core.study.variants import (DATA_ROOT_ENV, LLCM_ROOT_ENV, find_params_dir, list_experiments, list_variants, resolve,
                                      resolve_path)


@dataclass
class StudyReport:
    executed: list[dict[str, Any]]
    skipped: list[str]
    failed: list[dict[str, Any]]
    index: Path | None
    seconds: float
    trained: list[dict[str, Any]] = field(default_factory=list)   # seed replicates the runner trained

    @property
    def ok(self) -> bool:
        return not self.failed


def ensure_data(profile: str, params_dir="params") -> Path:
    """Generate the profile's synthetic dataset when it is missing (parameters from the profile's
    ``study.synthetic``); check that a real dataset folder exists. Honours MACE_DATA_ROOT."""
    first = list_experiments(params_dir)[0]
    v = resolve(first, list_variants(first, params_dir)[0], profile, params_dir)
    root = Path(v.config.data.root)
    synth = v.study.get("synthetic")
    if v.config.data.source == "synthetic" and synth is not None:
        from mace_core.data.synthetic import MARKER, generate

        if not (root / MARKER).is_file():
            print(f"generating the synthetic dataset into {root} ...", file=sys.stderr)
        # reused when its marker records the same parameters, regenerated when the profile changed them
        generate(root, **synth)
        ensure_pretraining_data(v)   # the pretraining set of model.pretrained: synthetic (study/pretrain.py)
        return root
    if not root.is_dir():
        raise MaceError(f"dataset folder {root} (data.root of profile {profile}) does not exist",
                        "pass --data-root /path/to/SYSU-MM01 (the extracted dataset)")
    return root


def run_study(profile: str, params_dir="params", runs_dir="runs", book_dir="book", notebooks_dir="notebooks",
              only=None, jobs: int = 1, force: bool = False, data_root: str | None = None,
              build: bool = True, prepare_data: bool = True, llcm_root: str | None = None,
              execute: Callable[[dict[str, Any]], None] | None = None, progress: bool = True) -> StudyReport:
    """Execute what is missing, write the TOC and runs table, build the book (see module docstring)."""
    start = time.time()
    if jobs < 1:
        raise MaceError(f"--jobs {jobs} must be at least 1", "use --jobs 1 (or the number of GPUs)")
    params = find_params_dir(params_dir)
    runs = resolve_path(runs_dir, params)
    books = resolve_path(book_dir, params)
    stale = remove_stale_partials(books)  # left by a study that was killed; never part of the book
    if stale and progress:
        print(f"removed {len(stale)} temp notebook(s) left by an interrupted study", file=sys.stderr)
    pinned = {registry.CODE_VERSION_ENV: registry.source_version() if not os.environ.get(registry.CODE_VERSION_ENV)
              else os.environ[registry.CODE_VERSION_ENV]}
    if data_root:
        pinned[DATA_ROOT_ENV] = str(Path(data_root).expanduser().resolve())
    if llcm_root:   # adds the optional LLCM layer (experiment 07_llcm) to the study and the book
        llcm_path = Path(llcm_root).expanduser().resolve()
        if not llcm_path.is_dir():
            raise MaceError(f"LLCM root {str(llcm_path)!r} is not a directory",
                            "pass --llcm-root pointing at the LLCM release (or `mace data synth --like llcm`)")
        pinned[LLCM_ROOT_ENV] = str(llcm_path)
    pinned["MACE_BATCH"] = "1"   # notebooks executed here show no live progress (jupyter/live.py)
    saved_env = {k: os.environ.get(k) for k in pinned}
    base_env: dict[str, str] = dict(pinned)
    os.environ.update(pinned)
    try:
        if prepare_data:
            ensure_data(profile, params)
        pairs = plan(profile, params, runs, books, notebooks_dir, only)
        replicates = replicates_of(pairs)
        if force:
            for pair in pairs:
                if pair.run_dir is not None and pair.run_dir.exists():
                    shutil.rmtree(pair.run_dir)
                pair.stamp_path.unlink(missing_ok=True)
            for rep in replicates:
                shutil.rmtree(rep.run_dir, ignore_errors=True)
        base_env["JUPYTER_PATH"] = os.pathsep.join(
            [str(kernel_dir(runs))] + ([os.environ["JUPYTER_PATH"]] if os.environ.get("JUPYTER_PATH") else []))
        executed, failed, skipped, trained = [], [], [], []
        pending = []
        for pair in pairs:
            if pair.is_summary:
                pending.append(pair)   # stamped after the variants ran (their runs decide it)
            elif is_fresh(pair):
                skipped.append(pair.label)
            else:
                pending.append(pair)
        planned = waves(pending, replicates)
        if jobs > 1 and (sharing := gpu_sharing(jobs, _gpu_list())):
            warnings.warn(sharing, stacklevel=2)
            if progress:
                print(f"WARNING: {sharing}", file=sys.stderr)
        # every image cache the jobs will read, built once here, not once per job in the pool
        prebuild_caches([p for _, w in planned for p in w], profile, params, progress)
        bar = tqdm(total=sum(len(w) for _, w in planned), desc=f"study ({profile})", unit="job",
                   disable=not progress)
        failed_keys: dict[str, str] = {}
        for _, wave in planned:
            jobs_now = []
            for pair in wave:
                if isinstance(pair, SeedRun):
                    jobs_now.append(_replicate_job(pair, profile, params, runs, job_env(jobs, base_env)))
                    continue
                if pair.run_key in failed_keys:  # its run failed to train once already: don't retry here
                    failed.append({"label": pair.label, "ok": False, "seconds": 0.0, "notebook": None,
                                   "error": f"its run failed to train in {failed_keys[pair.run_key]}"})
                    bar.update(1)
                    continue
                if pair.is_summary:
                    pair.stamp = _summary_stamp(pair, runs, profile)
                    if is_fresh(pair):
                        skipped.append(pair.label)
                        bar.update(1)
                        continue
                jobs_now.append(_job(pair, params.parent, job_env(jobs, base_env)))
            key_of = {p.label: p.run_key for p in wave}
            for result in _run_jobs(jobs_now, jobs, execute):
                if not result["ok"]:
                    failed.append(result)
                else:
                    (trained if result.get("kind") == "train" else executed).append(result)
                key = key_of.get(result["label"])
                if not result["ok"] and key and not registry.is_complete(registry.run_dir_for(runs, profile, key)):
                    failed_keys[key] = result["notebook"] or result["label"]
                bar.set_postfix_str(result["label"])
                bar.update(1)
                if not result["ok"]:
                    tqdm.write(f"FAILED {result['label']}: {result['error']} (notebook: {result['notebook']})")
        bar.close()
        index = finish_book(profile, params, runs, books, notebooks_dir, only) if build else None
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return StudyReport(executed, skipped, failed, index, time.time() - start, trained)


def prebuild_caches(items, profile: str, params_dir, progress: bool = False) -> list[str]:
    """Build the image caches of every run that ``items`` (pairs and seed replicates about to run)
    will train, once per distinct data setting, before the worker pool starts. A data setting that
    cannot be read is left to its job, which reports it in its own words."""
    from mace_core.data.datasets import build_caches

    fields = ("dataset", "root", "height", "width", "cache_dir", "include_val", "trial", "id_fraction", "fraction_seed")
    seen, built = set(), []
    for item in items:
        run_dir = getattr(item, "run_dir", None)
        if run_dir is None or registry.is_complete(run_dir):
            continue   # a summary, or a run already trained: reads caches the trainer built
        variant = item.variant if isinstance(item, SeedRun) else item.name
        try:
            data = resolve(item.experiment, variant, profile, params_dir).config.data
        except MaceError:
            continue
        key = tuple(getattr(data, f) for f in fields)
        if key in seen:
            continue
        seen.add(key)
        try:
            built += build_caches(data)
        except MaceError as exc:
            if progress:
                print(f"image caches of {item.label} not built ahead ({exc.what}); its job builds them", file=sys.stderr)
    return built


def execute_one(label: str, profile: str, params_dir="params", runs_dir="runs", book_dir="book",
                notebooks_dir="notebooks", data_root: str | None = None) -> dict[str, Any]:
    """Execute one pair by label (``experiment/variant``, ``experiment/summary`` or a seed replicate's
    ``experiment/variant (seed N)``): a Slurm array task."""
    if data_root:
        os.environ[DATA_ROOT_ENV] = str(Path(data_root).expanduser().resolve())
    params = find_params_dir(params_dir)
    runs = resolve_path(runs_dir, params)
    experiment = label.split("/", 1)[0]
    planned = plan(profile, params, runs, book_dir, notebooks_dir, [experiment])
    replicate = [r for r in replicates_of(planned) if r.label == label]
    if replicate:  # a further training seed: train it (a no-op when already complete)
        return execute_train_job(_replicate_job(replicate[0], profile, params, runs, {}))
    pairs = [p for p in planned if p.label == label]
    if not pairs:
        raise MaceError(f"{label!r} is not a pair of the study", "check the manifest against params/ and notebooks/")
    pair = pairs[0]
    if pair.is_summary:
        pair.stamp = _summary_stamp(pair, runs, profile)
    if is_fresh(pair):
        return {"label": label, "ok": True, "seconds": 0.0, "notebook": str(pair.output), "skipped": True}
    env = {"JUPYTER_PATH": str(kernel_dir(runs))}
    return execute_job(_job(pair, params.parent, env))


def finish_book(profile: str, params_dir="params", runs_dir="runs", book_dir="book", notebooks_dir="notebooks",
                only=None) -> Path:
    """TOC + runs table from what exists on disk, then the book build; returns the index page path.
    The TOC lists every experiment executed so far (not only those selected with --only)."""
    params = find_params_dir(params_dir)
    runs = resolve_path(runs_dir, params)
    books = resolve_path(book_dir, params)
    pairs = plan(profile, params, runs, books, notebooks_dir, None)
    pages = executed_pages(pairs)
    write_overview(books, profile, params, runs, chapters=pages)   # results at a glance, stored results only
    write_toc(books, pages)
    write_runs_table(books, [p.run_dir for p in pairs if p.run_dir is not None]
                          + [r.run_dir for r in replicates_of(pairs)])
    return build_book(books)


"""What the notebooks call: run (or reuse) a variant, read stored results, cached test-time evaluation.

A notebook never trains twice what has been trained: :func:`run_variant` trains only when no completed
run exists for the same training config and code version, resumes a partial one, and returns the
stored results. Summaries use :func:`load_results`, which never trains.

Seed replicates: a variant is trained once per training seed of ``study.seeds`` (:func:`seeds_of`);
the seed is part of the config, so each seed is its own run with its own key. ``seed=None`` means the
variant's first seed (the run its notebook page shows in detail).
"""
from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mace_core.config import EvalConfig, RunConfig, from_dict, merge, read_yaml
from mace_core.errors import MaceError
from mace_core.study import registry
from mace_core.study.pretrain import ensure_pretrained
from mace_core.study.variants import ensure_synthetic_like, list_variants, resolve, resolve_path, seeds_of_variant, with_seed
from mace_core.utils.atomic import atomic_write_json

__all__ = ["RunResult", "run_variant", "run_resolved", "run_seeds", "load_results", "evaluate_variant",
           "evaluate_run", "multi_query_evals", "occlusion_evals", "list_variants", "run_dir_of", "seeds_of"]


@dataclass
class RunResult:
    experiment: str
    variant: str
    profile: str
    run_dir: Path
    config: RunConfig
    results: dict[str, Any]
    log: pd.DataFrame
    study: dict[str, Any] = field(default_factory=dict)   # the variant's `study:` section (sweeps)
    key: str = ""                                          # run key (config hash + code version)

    @property
    def seed(self) -> int:
        """The training seed of this run (one replicate of the variant)."""
        return int(self.config.train.seed)

    @property
    def checkpoint(self) -> Path:
        """The weights the reported metrics come from (best.pt only under train.select_on_test)."""
        best = self.run_dir / "checkpoints" / "best.pt"
        return best if self.config.train.select_on_test and best.is_file() else self.run_dir / "checkpoints" / "last.pt"

    def load_model(self, device: str = "cpu"):
        """The trained network (eval mode) and the config it was trained with."""
        from mace_core.engine.checkpoint import load_for_eval

        model, cfg = load_for_eval(self.checkpoint, device)
        return model.eval(), cfg

    @property
    def record(self) -> dict[str, Any]:
        """study.json: hashes, code version, timings, which variants share this run."""
        path = self.run_dir / registry.RECORD
        return registry.read_json(path) if path.is_file() else {}


def _read_log(run_dir: Path) -> pd.DataFrame:
    for name, reader in (("log.csv", pd.read_csv), ("log.jsonl", lambda p: pd.read_json(p, lines=True))):
        if (run_dir / name).is_file():
            return reader(run_dir / name)
    return pd.DataFrame()


def _load(v, run_dir: Path, key: str) -> RunResult:
    return RunResult(v.experiment, v.variant, v.profile, run_dir, v.config,
                     registry.read_json(run_dir / registry.RESULTS), _read_log(run_dir), v.study, key)


def _train(cfg: RunConfig, run_dir: Path, resume: bool) -> Any:
    """The trainer's entry point (a module-level seam, so runner tests can replace training)."""
    from mace_core.engine.train import train

    from mace_core.jupyter.live import monitor_for

    # tqdm's bars on a terminal; a live bar and curves in a notebook a person runs (live.py); nothing
    # in a notebook executed by the study or papermill: there they would only be noise in the book
    return train(cfg, run_dir, resume=resume, progress=sys.stderr.isatty(), monitor=monitor_for(cfg))


def seeds_of(experiment: str, variant: str, profile: str, params_dir="params") -> list[int]:
    """The training seeds the study trains the variant with (``study.seeds``, ascending)."""
    return seeds_of_variant(resolve(experiment, variant, profile, params_dir))


def _seeded(experiment: str, variant: str, profile: str, params_dir, seed: int | None):
    v = resolve(experiment, variant, profile, params_dir)
    seeds = seeds_of_variant(v)
    if seed is None:
        seed = seeds[0]
    elif seed not in seeds:
        raise MaceError(f"seed {seed} is not a training seed of {experiment}/{variant} on profile {profile} "
                        f"(study.seeds: {seeds})", "pass one of those seeds, or add it to study.seeds in params/")
    return with_seed(v, seed)


def run_dir_of(experiment: str, variant: str, profile: str, params_dir="params", runs_dir="runs",
               seed: int | None = None) -> Path:
    """Where the variant's run for ``seed`` lives (whether or not it exists yet)."""
    v = _seeded(experiment, variant, profile, params_dir, seed)
    return registry.run_dir_for(resolve_path(runs_dir, params_dir), profile, registry.run_key(v.config))


def run_seeds(experiment: str, variant: str, profile: str, params_dir="params", runs_dir="runs") -> list[RunResult]:
    """Every seed replicate of the variant, training those that are missing."""
    return [run_variant(experiment, variant, profile, params_dir, runs_dir, seed=s)
            for s in seeds_of(experiment, variant, profile, params_dir)]


def run_variant(experiment: str, variant: str, profile: str, params_dir="params", runs_dir="runs",
                force: bool = False, seed: int | None = None) -> RunResult:
    """Train the variant (training seed ``seed``; None = its first seed) unless a completed run with
    the same config hash and code version exists."""
    return run_resolved(_seeded(experiment, variant, profile, params_dir, seed), runs_dir, params_dir, force)


def run_resolved(v, runs_dir="runs", params_dir="params", force: bool = False) -> RunResult:
    """Train (or reuse) one resolved, seeded variant: a params/ YAML or a notebook's ad-hoc variant. A
    run is cached by its training config and the code version, never by the variant's name."""
    experiment, variant, profile = v.experiment, v.variant, v.profile
    key = registry.run_key(v.config)
    run_dir = registry.run_dir_for(resolve_path(runs_dir, params_dir), profile, key)
    with registry.run_lock(run_dir):
        if force and run_dir.exists():
            shutil.rmtree(run_dir)
        extra = {"key": key, "config_hash": registry.config_hash(v.config),
                 "code_version": registry.code_version(), "profile": profile, "seed": int(v.config.train.seed)}
        if not registry.is_complete(run_dir):
            ensure_synthetic_like(v)   # e.g. the smoke profile's LLCM-like set, generated on first use
            ensure_pretrained(v, runs_dir, params_dir)   # model.pretrained: synthetic (study/pretrain.py)
            resume = (run_dir / "checkpoints" / "last.pt").is_file()
            cfg = v.config
            if resume and (run_dir / "config.yaml").is_file():
                # a shared run keeps the labels of the variant that started it, so resume accepts it
                started = read_yaml(run_dir / "config.yaml")
                cfg = dataclasses.replace(cfg, name=started.get("name", cfg.name),
                                          experiment=started.get("experiment", cfg.experiment))
            start = time.time()
            _train(cfg, run_dir, resume)
            if not registry.is_complete(run_dir):
                raise MaceError(f"training {experiment}/{variant} finished without writing {run_dir / registry.RESULTS}",
                                "check the trainer's log in that folder")
            extra.update(train_seconds=round(time.time() - start, 2), resumed=resume,
                         trained_at=time.strftime("%Y-%m-%dT%H:%M:%S"), trained_for=f"{experiment}/{variant}")
        registry.record_use(run_dir, experiment, variant, extra)
    return _load(v, run_dir, key)


def load_results(experiment: str, profile: str, params_dir="params", runs_dir="runs") -> list[RunResult]:
    """Every completed (variant, seed) run of an experiment: variants in list_variants order (baseline
    first), seeds ascending within a variant, so one variant may appear several times; never trains."""
    out = []
    for name in list_variants(experiment, params_dir):
        base = resolve(experiment, name, profile, params_dir)
        for seed in seeds_of_variant(base):
            v = with_seed(base, seed)
            key = registry.run_key(v.config)
            run_dir = registry.run_dir_for(resolve_path(runs_dir, params_dir), profile, key)
            if registry.is_complete(run_dir):
                out.append(_load(v, run_dir, key))
    return out


def _eval_config(base: EvalConfig, overrides: dict[str, Any]) -> EvalConfig:
    valid = [f.name for f in dataclasses.fields(EvalConfig)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise MaceError(f"unknown evaluation setting(s) {', '.join(unknown)}", f"valid: {', '.join(valid)}")
    return from_dict(merge({"eval": dataclasses.asdict(base)}, {"eval": overrides})).eval


# One loaded model and its embedded test images per completed run, for the life of the kernel: a
# notebook's sweep (pool sizes x fusions, occlusion types) loads each checkpoint once and embeds
# each setting's images once. A completed run's checkpoint never changes.
_LOADED: dict[tuple[str, str], tuple[Any, Any, dict]] = {}


def _evaluate(run: RunResult, eval_cfg: EvalConfig) -> dict[str, Any]:
    """Test-time evaluation of a trained run's checkpoint (a module-level seam like :func:`_train`)."""
    import torch

    from mace_core.engine.device import resolve_device
    from mace_core.engine.train import evaluate

    slot = (run.key, str(run.checkpoint))
    if slot not in _LOADED:
        device = resolve_device(run.config.train.device)
        model, _ = run.load_model(device)
        if run.config.train.channels_last:  # weights in the memory format evaluation feeds (as in training)
            model = model.to(memory_format=torch.channels_last)
        _LOADED[slot] = (model, device, {})
    model, device, features = _LOADED[slot]
    return evaluate(model, dataclasses.replace(run.config, eval=eval_cfg), device, feature_cache=features)


def evaluate_variant(experiment: str, variant: str, profile: str, params_dir="params", runs_dir="runs",
                     seed: int | None = None, **eval_overrides: Any) -> dict[str, Any]:
    """Evaluate the variant's trained model with ``eval.*`` overrides (e.g. ``multi_query=5, fusion="max"``,
    ``occlusion="upper_body"``), cached in ``<run>/evals/<hash>.json`` keyed by run and eval settings.
    ``seed`` picks the training-seed replicate (None = the first). Trains it first only if it has no
    completed run."""
    return evaluate_run(run_variant(experiment, variant, profile, params_dir, runs_dir, seed=seed), **eval_overrides)


def evaluate_run(run: RunResult, **eval_overrides: Any) -> dict[str, Any]:
    """Test-time evaluation of a completed run with ``eval.*`` overrides, cached beside the run."""
    eval_cfg = _eval_config(run.config.eval, eval_overrides)
    settings = dataclasses.asdict(eval_cfg)
    path = run.run_dir / "evals" / f"{registry.digest({'run': run.key, 'eval': settings})[:16]}.json"
    if path.is_file():
        return registry.read_json(path)["results"]
    results = _evaluate(run, eval_cfg)
    atomic_write_json(path, {"run": run.key, "eval": settings, "results": results})
    return results


def multi_query_evals(runs: Iterable[RunResult], sweep: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Experiment 4's test-time evaluations of each run, as :mod:`mace_core.analysis.multi_query_tables`
    reads them: ``{seed, n, fusion, results}`` for every pool size ``n`` and fusion of ``sweep``
    (``{"n": [...], "fusion": [...]}``; None: the run's own ``study.multi_query``), cached beside the run."""
    out = []
    for run in runs:
        grid = run.study["multi_query"] if sweep is None else sweep
        out += [{"seed": run.seed, "n": n, "fusion": f, "results": evaluate_run(run, multi_query=n, fusion=f)}
                for n in grid["n"] for f in grid["fusion"]]
    return out


def occlusion_evals(runs: Iterable[RunResult], types: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Experiment 6's occluded test-time evaluations of each run, as :mod:`mace_core.analysis.occlusion_tables`
    reads them: ``{seed, model, occlusion, results}`` for every occlusion type of ``types`` (None: the run's
    own ``study.occlusion.types``), cached beside the run."""
    out = []
    for run in runs:
        kinds = run.study["occlusion"]["types"] if types is None else list(types)
        out += [{"seed": run.seed, "model": run.variant, "occlusion": kind, "results": evaluate_run(run, occlusion=kind)}
                for kind in kinds]
    return out

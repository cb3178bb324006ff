"""Run registry: one directory per distinct trained model, keyed by what decides its weights.

Key = sha256(resolved training config without labels + code version). Labels (name, experiment,
output_dir) and pure plumbing (data-loader workers, log cadence) are left out, so variants that
resolve to the same training (baseline = 01/resnet50 = 03/concat = 05/fraction 100 = the run
experiments 4 and 6 evaluate) share one run. The code version hashes the sources that can change a
trained model (mace_core minus study/, cli/, analysis/, book/ and jupyter/, which only orchestrate, plot and publish).

Layout: ``<runs_dir>/<profile>/<key>/`` holds the trainer's files (results.json written last = complete),
plus ``study.json`` (who uses the run, hashes, timings) and ``evals/<hash>.json`` (cached evaluations).
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

from mace_core.config import RunConfig
from mace_core.utils.atomic import atomic_write_json

RESULTS = "results.json"
RECORD = "study.json"
_PACKAGE = Path(__file__).resolve().parents[1]
_NOT_TRAINING = ("study", "cli", "analysis", "book", "jupyter")
# Settings that never change the trained weights or metrics.
_PLUMBING = {
    "": ("name", "experiment", "output_dir"),
    "data": ("workers", "pin_memory", "persistent_workers", "cache_dir"),
    "train": ("log_every", "checkpoint_every"),
}


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


CODE_VERSION_ENV = "MACE_CODE_VERSION"   # the runner pins one version for all pairs of a study run


def code_version() -> str:
    """Hash of every .py file under mace_core that can influence a trained model (12 hex chars).

    The study runner computes it once and hands it to every notebook kernel through
    ``MACE_CODE_VERSION``, so all pairs of one study run agree on their run keys even if a source
    file is edited while the study runs (the next study run then sees the new version)."""
    return os.environ.get(CODE_VERSION_ENV) or source_version()


@functools.lru_cache(maxsize=1)
def source_version() -> str:
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        rel = path.relative_to(_PACKAGE)
        if rel.parts[0] in _NOT_TRAINING or "__pycache__" in rel.parts:
            continue
        h.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def training_dict(cfg: RunConfig) -> dict[str, Any]:
    data = cfg.to_dict()
    for section, keys in _PLUMBING.items():
        target = data if not section else data[section]
        for key in keys:
            target.pop(key, None)
    return data


def config_hash(cfg: RunConfig) -> str:
    return digest(training_dict(cfg))[:12]


def run_key(cfg: RunConfig, code: str | None = None) -> str:
    return digest({"config": config_hash(cfg), "code": code or code_version()})[:16]


def run_dir_for(runs_dir: str | Path, profile: str, key: str) -> Path:
    return Path(runs_dir) / profile / key


def is_complete(run_dir: str | Path) -> bool:
    return (Path(run_dir) / RESULTS).is_file()


def read_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Exclusive lock per run (parallel notebooks sharing a run train it once; the others wait)."""
    run_dir = Path(run_dir)
    lock_path = run_dir.parent / ".locks" / f"{run_dir.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def record_use(run_dir: str | Path, experiment: str, variant: str, extra: dict[str, Any] | None = None) -> dict:
    """Add ``experiment/variant`` to the run's study.json (call under :func:`run_lock`)."""
    path = Path(run_dir) / RECORD
    record = read_json(path) if path.is_file() else {}
    record.update(extra or {})
    used = set(record.get("used_by", []))
    used.add(f"{experiment}/{variant}")
    record["used_by"] = sorted(used)
    atomic_write_json(path, record)
    return record

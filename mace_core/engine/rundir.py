"""The run directory: resolved config, environment record, per-epoch log, results marker.

Layout (every file written atomically)::

    config.yaml            the resolved RunConfig
    env.json               git commit, package versions, hardware, torch threads
    log.csv                one row per epoch (loss terms, lr, lambda_2, accuracy, eval metrics, speed)
    checkpoints/last.pt    every epoch; checkpoints/best.pt only with train.select_on_test
    results.json           written last: its presence means the run is complete
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import torch

from mace_core.config import RunConfig, save_config
from mace_core.utils.atomic import atomic_path, atomic_write_json

RESULTS = "results.json"
_PACKAGES = ("mace-study", "torch", "torchvision", "timm", "numpy", "scipy", "pandas", "scikit-learn", "pyyaml")


def config_hash(cfg: RunConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:10]


def default_run_dir(cfg: RunConfig) -> Path:
    """``<output_dir>/<experiment>/<name>-<config hash>``: a changed setting never reuses a run."""
    return Path(cfg.output_dir) / cfg.experiment / f"{cfg.name}-{config_hash(cfg)}"


def is_complete(run_dir: str | Path) -> bool:
    return (Path(run_dir) / RESULTS).is_file()


def git_commit() -> dict[str, Any]:
    """Commit of the source tree this package is imported from (None outside a git checkout)."""
    src = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment(device: torch.device | None = None) -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    hw: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        hw["cuda_version"] = torch.version.cuda
        hw["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "git": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "hardware": hw,
        "device": str(device) if device is not None else None,
    }


def prepare(run_dir: str | Path, cfg: RunConfig, device: torch.device | None = None) -> Path:
    run_dir = Path(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    atomic_write_json(run_dir / "env.json", environment(device))
    return run_dir


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``a.b`` columns (lists are kept as JSON text) for the CSV log."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def write_log(run_dir: str | Path, history: list[dict[str, Any]]) -> None:
    """Rewrite ``log.csv`` from the whole history (kept in the checkpoint, so resume never duplicates rows)."""
    frame = pd.DataFrame([flatten(r) for r in history])
    with atomic_path(Path(run_dir) / "log.csv") as tmp:
        frame.to_csv(tmp, index=False)


def write_results(run_dir: str | Path, results: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / RESULTS, results)

"""A tiny study (params, notebooks, book) and a fake trainer, for the runner tests."""
from __future__ import annotations

import json
from pathlib import Path

from mace_core.study import api, registry

PROFILE = """
data:
  root: data/none
  source: synthetic
train:
  epochs: 1
"""

NOTEBOOK = '''# %% [markdown]
# # {title}

# %% tags=["parameters"]
profile = "smoke"
variant = "baseline"
params_dir = "params"
runs_dir = "runs"

# %%
import json, pathlib
print(json.dumps({{"variant": variant, "profile": profile}}))
'''


def make_study(root: Path, variants: dict[str, dict[str, str]]) -> Path:
    """``root/params``, ``root/notebooks`` (one per experiment) and a minimal ``root/book``."""
    (root / "params" / "profiles").mkdir(parents=True)
    (root / "params" / "profiles" / "tiny.yaml").write_text(PROFILE)
    (root / "notebooks").mkdir()
    for experiment, files in variants.items():
        (root / "params" / experiment).mkdir()
        for name, text in files.items():
            (root / "params" / experiment / f"{name}.yaml").write_text(text)
        (root / "notebooks" / f"{experiment}.py").write_text(NOTEBOOK.format(title=experiment))
    book = root / "book"
    book.mkdir()
    (book / "intro.md").write_text("# Intro\n")
    (book / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: 'off'\n")
    return root


class FakeTrainer:
    """Stands in for engine.train.train: writes results.json (last) and counts calls per run dir."""

    def __init__(self, fail_for: set[str] = frozenset()):
        self.calls: list[str] = []
        self.fail_for = set(fail_for)

    def __call__(self, cfg, run_dir: Path, resume: bool):
        self.calls.append(f"{cfg.experiment}/{cfg.name}")
        if cfg.name in self.fail_for:
            raise RuntimeError(f"boom in {cfg.name}")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "log.csv").write_text("epoch,loss\n1,2.5\n")
        registry.atomic_write_json(run_dir / registry.RESULTS, {"metrics": {"R1": 42.0}, "lr": cfg.train.lr})
        return {}


def in_process_execute(job: dict) -> None:
    """Executes a pair like its notebook would (run_variant for the variant), writing a fake notebook."""
    params = job["parameters"]
    if "variant" in params:
        experiment = Path(job["notebook"]).stem
        res = api.run_variant(experiment, params["variant"], params["profile"], params["params_dir"],
                              params["runs_dir"])
        body = json.dumps(res.results)
    else:
        body = "summary"
    Path(job["tmp"]).write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
                                            "body": body}))

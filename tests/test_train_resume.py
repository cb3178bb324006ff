"""Exact resume: a run killed with SIGKILL (mid-epoch, or before its first checkpoint) and resumed ends
bit-identical to an uninterrupted run: weights, optimiser state, logged losses and test metrics."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from _train_helpers import assert_same_state, tiny_config, tiny_layer

from mace_core.engine.checkpoint import load_checkpoint
from mace_core.engine.train import train
from mace_core.errors import MaceError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference(tiny_root, tmp_path_factory):
    """The uninterrupted run."""
    run = tmp_path_factory.mktemp("ref") / "run"
    results = train(tiny_config(tiny_root), run, progress=False)
    return run, results


def _killed_run(root: Path, run: Path, fault: str, **sections) -> None:
    params = run.parent / "tiny.yaml"
    params.write_text(yaml.safe_dump(tiny_layer(root, **sections)))
    env = dict(os.environ, MACE_FAULT_AT=fault, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "mace_core.cli", "train", "--params", str(params),
                           "--run-dir", str(run), "--no-progress"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (run / "results.json").exists()


@pytest.mark.parametrize("fault, done_epochs", [("2:1", 1), ("1:1", 0)])
def test_kill9_then_resume_is_bit_identical(reference, tiny_root, tmp_path, fault, done_epochs):
    ref_run, ref_results = reference
    run = tmp_path / "run"
    _killed_run(tiny_root, run, fault)
    last = run / "checkpoints" / "last.pt"
    if done_epochs:
        assert load_checkpoint(last)["state"]["epoch"] == done_epochs
    else:
        assert not last.exists()

    results = train(tiny_config(tiny_root), run, resume=True, progress=False)

    a, b = load_checkpoint(ref_run / "checkpoints" / "last.pt"), load_checkpoint(last)
    assert_same_state(a["model"], b["model"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert_same_state(sa, sb)
    assert a["state"]["global_step"] == b["state"]["global_step"] == 9
    assert results["metrics"] == ref_results["metrics"]
    log_a, log_b = pd.read_csv(ref_run / "log.csv"), pd.read_csv(run / "log.csv")
    assert list(log_b["epoch"]) == [1, 2, 3]  # no duplicated rows from the interrupted epoch
    loss_cols = [c for c in log_a.columns if c.startswith(("loss", "train_acc", "lr", "lambda2", "eval."))]
    pd.testing.assert_frame_equal(log_a[loss_cols], log_b[loss_cols])


def test_resume_of_complete_run_returns_its_results(reference, tiny_root):
    run, results = reference
    assert train(tiny_config(tiny_root), run, resume=True, progress=False) == results


def test_existing_run_needs_resume_and_same_config(reference, tiny_root, tmp_path):
    run, _ = reference
    with pytest.raises(MaceError, match="already holds a complete run"):
        train(tiny_config(tiny_root), run, progress=False)
    partial = tmp_path / "partial"
    (partial / "checkpoints").mkdir(parents=True)
    ck = load_checkpoint(run / "checkpoints" / "last.pt")
    torch.save(ck, partial / "checkpoints" / "last.pt")
    with pytest.raises(MaceError, match="--resume"):
        train(tiny_config(tiny_root), partial, progress=False)
    with pytest.raises(MaceError, match=r"train.lr \(0.05 -> 0.1\)"):
        train(tiny_config(tiny_root, ["train.lr=0.1"]), partial, resume=True, progress=False)


@pytest.mark.parametrize("fault, done_epochs", [("3:1", 2), ("2:1", 0)])
def test_checkpoint_every_two_epochs_resumes_bit_identical(reference, tiny_root, tmp_path, fault, done_epochs):
    """train.checkpoint_every=2 over 3 epochs writes after epochs 2 and 3 only; a run killed in epoch 3
    resumes from epoch 2, one killed in epoch 2 from scratch, and both end as the uninterrupted run
    (written after every epoch: the cadence changes nothing that is trained)."""
    ref_run, ref_results = reference
    run = tmp_path / "run"
    _killed_run(tiny_root, run, fault, train={"checkpoint_every": 2})
    last = run / "checkpoints" / "last.pt"
    if done_epochs:
        assert load_checkpoint(last)["state"]["epoch"] == done_epochs
    else:
        assert not last.exists()  # epoch 1 was trained and logged, but not written
        assert list(pd.read_csv(run / "log.csv")["epoch"]) == [1]

    results = train(tiny_config(tiny_root, ["train.checkpoint_every=2"]), run, resume=True, progress=False)

    a, b = load_checkpoint(ref_run / "checkpoints" / "last.pt"), load_checkpoint(last)
    assert_same_state(a["model"], b["model"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert_same_state(sa, sb)
    assert b["state"]["epoch"] == 3 and results["metrics"] == ref_results["metrics"]
    log_a, log_b = pd.read_csv(ref_run / "log.csv"), pd.read_csv(run / "log.csv")
    assert list(log_b["epoch"]) == [1, 2, 3]
    loss_cols = [c for c in log_a.columns if c.startswith(("loss", "train_acc", "lr", "lambda2", "eval."))]
    pd.testing.assert_frame_equal(log_a[loss_cols], log_b[loss_cols])


def test_checkpoint_every_must_be_positive(tiny_root, tmp_path):
    with pytest.raises(MaceError, match=r"train.checkpoint_every=0 must be >= 1"):
        train(tiny_config(tiny_root, ["train.checkpoint_every=0"]), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()

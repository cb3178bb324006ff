"""`mace train` / `mace bench` command lines: runs, overrides, one-line errors."""
from __future__ import annotations

import json

import pytest
import yaml
from _train_helpers import tiny_layer

from mace_core.cli import main


@pytest.fixture
def params(tiny_root, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_layer(tiny_root)))
    return path


def test_train_with_overrides_and_resume(params, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--params", str(params), "--set", "train.epochs=1", "--run-dir", str(run),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "final epoch" in out and "data: synthetic" in out
    results = json.loads((run / "results.json").read_text())
    assert results["epochs_trained"] == 1 and results["config"]["train"]["epochs"] == 1
    # a complete run: --resume is a no-op that reports it, a plain rerun is refused in one line
    assert main(["train", "--params", str(params), "--set", "train.epochs=1", "--run-dir", str(run),
                 "--resume", "--no-progress"]) == 0
    assert main(["train", "--params", str(params), "--set", "train.epochs=1", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a complete run" in err


def test_unknown_key_is_one_line_exit_2(params, capsys):
    assert main(["train", "--params", str(params), "--set", "train.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mace: error: unknown key(s) train.epoch") and "train.epochs" in err
    assert "Traceback" not in err


def test_bench_reports_throughput(params, capsys):
    assert main(["bench", "--params", str(params), "--steps", "2", "--warmup", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images_per_s"] > 0 and report["batch_images"] == 16 and report["steps"] == 2
    assert report["device"] == "cpu" and report["amp"] == "off" and report["peak_memory_mb"] is None


def test_bench_prints_the_parts_as_text(params, capsys):
    assert main(["bench", "--params", str(params), "--steps", "1", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    for line in ("one_time:", "input_pipeline:", "model_step:", "together:", "bottleneck: "):
        assert line in out
    assert "  batches_per_s_per_worker: " in out  # nested figures indented under their part

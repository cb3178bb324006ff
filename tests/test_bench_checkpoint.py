"""Issue 22, point 8: checkpoint_every's default from a measured write, as arithmetic."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from _bench_helpers import load_benchmark

REPO = Path(__file__).resolve().parents[1]


def _script():
    return load_benchmark("bench_checkpoint")


def test_cadence_arithmetic_hand_case():
    # 3 s a write, 60 epochs of 15 s (900 s of training)
    c = _script().cadence(3.0, 60, 15.0, ks=(1, 5, 10, 15))
    assert [(r["k"], r["writes"], r["write_total_s"]) for r in c["rows"]] == [(1, 60, 180.0), (5, 12, 36.0),
                                                                              (10, 6, 18.0), (15, 4, 12.0)]
    assert [round(r["share"], 4) for r in c["rows"]] == [0.2, 0.04, 0.02, 0.0133]
    assert c["smallest_k_under_2pct"] == 15          # k = 10 costs exactly 2 %: not under
    assert _script().cadence(3.0, 7, 15.0, ks=(5,))["rows"][0]["writes"] == 2   # epoch 5 and the last


def test_measures_a_real_write_of_the_ci_network(tmp_path):
    assert _script().main(["--tiny", "--out", str(tmp_path), "--repeats", "2"]) == 0
    report = json.loads((tmp_path / "bench_checkpoint.json").read_text())
    assert report["checkpoint_mb"] > 0 and len(report["writes_s"]) == 2 and report["write_s_median"] > 0
    assert report["paper_checkpoint_every"] == 15
    assert not list(tmp_path.glob("*.pt"))            # the timed checkpoint is removed

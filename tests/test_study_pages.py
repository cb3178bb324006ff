"""The runs table (study/pages.py) names the starting weights each run recorded in its results.json."""
from __future__ import annotations

import json

from mace_core.study import pages, registry


def _run(root, key, weights, used_by):
    run = root / key
    run.mkdir(parents=True)
    results = {"name": "x"} if weights is None else {"name": "x", "pretrained_weights": weights}
    (run / registry.RESULTS).write_text(json.dumps(results))
    (run / registry.RECORD).write_text(json.dumps({"used_by": [used_by], "seed": 0, "profile": "paper",
                                                   "code_version": "abc", "train_seconds": 12.0}))
    return run


def test_runs_table_has_a_weights_column_from_results(tmp_path):
    digest = "0123456789abcdef" * 4
    runs = [_run(tmp_path / "runs", "k1", "resnet50.tv_in1k", "00_baseline/baseline"),
            _run(tmp_path / "runs", "k2", f"file w.pth sha256:{digest}", "01_backbones/seresnet50"),
            _run(tmp_path / "runs", "k3", "none", "02_attention/cam"),
            _run(tmp_path / "runs", "k4", None, "03_fusion/adaptive")]
    text = pages.write_runs_table(tmp_path / "book", runs).read_text()
    header = next(line for line in text.splitlines() if line.startswith("| used by"))
    assert [c.strip() for c in header.strip("|").split("|")][2] == "weights"
    rows = {line.split("|")[1].strip().replace("\u200b", ""): line.split("|")[3].strip() for line in text.splitlines()
            if line.startswith("| 0")}
    assert rows == {"00_baseline/baseline": "resnet50.tv_in1k",
                    "01_backbones/seresnet50": "file w.pth sha256:0123456789ab…",
                    "02_attention/cam": "none", "03_fusion/adaptive": "n/a"}

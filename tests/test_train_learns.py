"""Proof that training works (issue 4, point 17): the baseline learns on the synthetic dataset on CPU.

Calibrated recipe (see the design note on the synthetic data): 64x32 input, a narrow ResNet-18
(widths 16-128: half the smoke profile's, half the CPU time of widths 32-256 for the same steps),
AdamW 3e-3 with a warm-up then cosine, flip + pad-crop, RGB random grayscale, 8 x 4 batches,
320 steps (the smoke profile's length). Measured on CPU (issue 21): untrained 2.4 %, trained 45 %
IR->RGB Rank-1, RGB->RGB 87 %, last/first epoch loss 0.56 (widths 32-256: 2.8 %, 54 %, 96 %, 0.44;
160 steps of those reached a loss ratio of only 0.67, too near the bound below).
IR->RGB Rank-1 must reach at least 3x that of the same network untrained (which sits near chance),
and the training loss must go down.
"""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from mace_core.config import load_config
from mace_core.engine.train import evaluate, headline, train
from mace_core.models import build_model


def _layer(root) -> dict:
    return {
        "name": "learns",
        "data": {"root": str(root), "height": 64, "width": 32, "ids_per_batch": 8, "images_per_id": 4, "pad": 4,
                 "rgb_grayscale_p": 0.5, "workers": 0, "pin_memory": False, "persistent_workers": False},
        "model": {"backbone": "resnet18", "pretrained": "none",
                  "backbone_kwargs": {"channels": [16, 32, 64, 128], "stem_width": 16}},
        "loss": {"kd_rampup_epochs": 8},
        "train": {"optimizer": "adamw", "lr": 0.003, "backbone_lr_mult": 1.0, "weight_decay": 5e-4,
                  "scheduler": "cosine", "warmup_epochs": 1, "epochs": 8, "steps_per_epoch": 40,
                  "amp": "off", "channels_last": False, "device": "cpu", "eval_every": 0,
                  "threads": 1},
        "eval": {"trials": 10, "batch_size": 256},
    }


@pytest.mark.slow
@pytest.mark.xdist_group("learns")   # a place in the slow part's order (conftest.SLOW_FIRST), not a shared set-up
def test_baseline_learns_on_synthetic_data(tmp_path):
    from mace_core.data.synthetic import generate

    root = generate(tmp_path / "synthetic-sysu", ids=200, images_per_cam=8, seed=0, size=(128, 64))
    cfg = load_config([_layer(root)])
    torch.manual_seed(cfg.train.seed)
    untrained = headline(evaluate(build_model(cfg.model, _num_classes(cfg)), cfg,
                                  torch.device("cpu")))
    keep: dict = {}
    results = train(cfg, tmp_path / "run", progress=False, keep=keep)
    trained = headline(results["metrics"])
    vis2vis = _visible_to_visible_rank1(keep["model"], cfg)
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    print(f"IR->RGB Rank-1 untrained {untrained:.2f}, trained {trained:.2f}, RGB->RGB {vis2vis:.2f}; "
          f"loss {log['loss'].tolist()}")
    assert results["steps"] == 320
    assert trained >= 3 * max(untrained, 0.01)  # Rank-1 as a fraction; floor 1 % (chance: 2 %)
    # Learnable but not trivial (issue 2, point 6): below 100 %, and crossing modalities is harder
    # than matching visible images across cameras with the same network.
    assert trained < 0.95
    assert vis2vis > trained
    assert log["loss"].iloc[-1] < 0.7 * log["loss"].iloc[0]
    assert log["train_acc"].iloc[-1] > log["train_acc"].iloc[0]


def _num_classes(cfg) -> int:
    from mace_core.data.datasets import load_training_data

    d = cfg.data
    return load_training_data(d.dataset, d.root, (d.height, d.width)).num_classes


def _visible_to_visible_rank1(model, cfg) -> float:
    """Rank-1 of outdoor RGB queries (cams 4, 5) against the indoor single-shot RGB gallery (cams 1, 2),
    mean over the run's gallery trials: the same-modality counterpart of the IR->RGB protocol."""
    import numpy as np

    from mace_core.data import sysu
    from mace_core.data.cache import cached_images
    from mace_core.data.transforms import test_transform
    from mace_core.engine.evaluate import extract_features
    from mace_core.metrics import evaluate_regdb

    d = cfg.data
    size = (d.height, d.width)
    candidates = sysu.gallery_candidates(d.root, "all")
    feats = extract_features(model, cached_images(candidates, size, d.cache_dir, desc="sysu-gallery-all"), "rgb",
                             test_transform(size), batch_size=256)
    pids = np.array([r.pid for r in candidates])
    cams = np.array([r.cam for r in candidates])
    indoor = {r.path: i for i, r in enumerate(candidates) if r.cam in sysu.INDOOR_RGB_CAMS}
    queries = np.flatnonzero(np.isin(cams, (4, 5)))
    rank1 = []
    for trial in range(cfg.eval.trials):
        picks = [indoor[r.path] for r in sysu.gallery_set(d.root, "indoor", trial=trial)]
        dist = -feats[queries] @ feats[picks].T
        rank1.append(evaluate_regdb(dist, pids[queries], pids[picks])["cmc"][0])
    return float(np.mean(rank1))

"""Tiny training setups for the trainer tests: a small synthetic SYSU tree and a seconds-long config."""
from __future__ import annotations

from pathlib import Path

import torch

from mace_core.config import RunConfig, load_config


def tiny_layer(root: str | Path, **sections) -> dict:
    """A config dict: 32x16 inputs, a narrow ResNet-18, P x K = 4 x 2, 3 epochs x 3 steps, 1 eval trial."""
    layer = {
        "name": "tiny",
        "data": {"root": str(root), "height": 32, "width": 16, "ids_per_batch": 4, "images_per_id": 2,
                 "pad": 2, "workers": 0, "pin_memory": False, "persistent_workers": False},
        "model": {"backbone": "resnet18", "backbone_kwargs": {"channels": [8, 16, 32, 64], "stem_width": 8},
                  "pretrained": "none", "head_dim": 32},
        "loss": {"kd_rampup_epochs": 2},
        "train": {"optimizer": "sgd", "lr": 0.05, "warmup_epochs": 1, "milestones": [2], "epochs": 3,
                  "steps_per_epoch": 3, "device": "cpu", "channels_last": False,
                  "threads": 1},
        "eval": {"trials": 1, "batch_size": 64},
    }
    for section, values in sections.items():
        layer[section] = {**layer.get(section, {}), **values} if isinstance(values, dict) else values
    return layer


def tiny_config(root: str | Path, overrides: list[str] = (), **sections) -> RunConfig:
    return load_config([tiny_layer(root, **sections)], list(overrides))


def make_tiny_dataset(base: Path) -> Path:
    from mace_core.data.synthetic import generate

    return generate(base / "synthetic", ids=24, images_per_cam=3, seed=0, size=(64, 32), workers=1)


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"

"""eval.amp: the evaluation's autocast, apart from the training's (the smoke profile evaluates in bf16 and
trains in fp32)."""
from __future__ import annotations

import pytest
import torch

from _train_helpers import assert_same_state, tiny_config
from mace_core.config import load_config
from mace_core.engine.checkpoint import load_checkpoint
from mace_core.engine.device import eval_amp_dtype
from mace_core.engine.train import train
from mace_core.errors import MaceError

CPU = torch.device("cpu")


@pytest.mark.parametrize("train_amp, eval_amp, expected", [
    ("off", None, None),                   # None: as the training
    ("bf16", None, torch.bfloat16),
    ("off", "bf16", torch.bfloat16),       # the smoke profile: fp32 training, bf16 evaluation
    ("bf16", "off", None),
    ("off", "auto", None),                 # auto on CPU: no autocast
])
def test_eval_amp_follows_the_training_unless_set(train_amp, eval_amp, expected):
    cfg = load_config([{"train": {"amp": train_amp}, "eval": {"amp": eval_amp}}])
    assert eval_amp_dtype(cfg, CPU) is expected


def test_an_unknown_eval_amp_stops_before_training(tiny_root, tmp_path):
    with pytest.raises(MaceError, match=r"eval.amp='fp8' is not known"):
        train(tiny_config(tiny_root, ["eval.amp=fp8"]), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_eval_amp_changes_the_evaluation_only(tiny_root, tmp_path, monkeypatch):
    """The same training (bit-identical weights) whatever eval.amp; the evaluation gets bf16 autocast."""
    import mace_core.engine.evaluate as evaluate_module

    seen = []
    real = evaluate_module.evaluate_sysu_model

    def spy(*args, **kwargs):
        seen.append(kwargs["amp"])
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate_sysu_model", spy)
    runs = {}
    for amp in ("off", "bf16"):
        runs[amp] = tmp_path / amp
        train(tiny_config(tiny_root, eval={"amp": amp}), runs[amp], progress=False)
    assert seen == [None, torch.bfloat16]
    a = load_checkpoint(runs["off"] / "checkpoints" / "last.pt")
    b = load_checkpoint(runs["bf16"] / "checkpoints" / "last.pt")
    assert_same_state(a["model"], b["model"])

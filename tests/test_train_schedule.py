"""Learning-rate schedule (hand-computed values) and optimiser parameter groups."""
from __future__ import annotations

import math

import pytest
import torch

from mace_core.config import TrainConfig
from mace_core.engine.schedule import apply_lr, build_optimizer, lr_factor
from mace_core.errors import MaceError


def test_step_schedule_with_warmup():
    cfg = TrainConfig(scheduler="step", warmup_epochs=10, milestones=[20, 30], gamma=0.1, epochs=40)
    assert lr_factor(cfg, 1.0) == pytest.approx(0.1)
    assert lr_factor(cfg, 5.0) == pytest.approx(0.5)
    assert lr_factor(cfg, 10.0) == 1.0
    assert lr_factor(cfg, 19.99) == 1.0
    assert lr_factor(cfg, 20.0) == pytest.approx(0.1)
    assert lr_factor(cfg, 35.0) == pytest.approx(0.01)


def test_cosine_schedule_with_warmup():
    cfg = TrainConfig(scheduler="cosine", warmup_epochs=2, epochs=10)
    assert lr_factor(cfg, 1.0) == pytest.approx(0.5)
    assert lr_factor(cfg, 2.0) == pytest.approx(1.0)
    assert lr_factor(cfg, 6.0) == pytest.approx(0.5)
    assert lr_factor(cfg, 10.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(cfg, 4.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))


def test_no_warmup_and_unknown_scheduler():
    assert lr_factor(TrainConfig(warmup_epochs=0, milestones=[2]), 0.0) == 1.0
    with pytest.raises(MaceError, match="train.scheduler"):
        lr_factor(TrainConfig(scheduler="linear", warmup_epochs=0), 1.0)


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(2, 2)
        self.classifier = torch.nn.Linear(2, 3)


def test_backbone_group_gets_the_multiplier_and_schedule_scales_both():
    model = _Toy()
    opt = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, backbone_lr_mult=0.1))
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["backbone"]["lr"] == pytest.approx(0.01)
    assert groups["new"]["lr"] == pytest.approx(0.1)
    assert {id(p) for p in groups["backbone"]["params"]} == {id(p) for p in model.backbone.parameters()}
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    apply_lr(opt, 0.5)
    assert groups["backbone"]["lr"] == pytest.approx(0.005) and groups["new"]["lr"] == pytest.approx(0.05)


def test_adamw_and_unknown_optimizer():
    assert isinstance(build_optimizer(_Toy(), TrainConfig(optimizer="adamw")), torch.optim.AdamW)
    with pytest.raises(MaceError, match="train.optimizer"):
        build_optimizer(_Toy(), TrainConfig(optimizer="lion"))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_optimizers_are_fused_except_fp16_with_the_scaler_on_cpu(optimizer):
    """Fused steps (one kernel per group) everywhere but fp16 + GradScaler on CPU, where the fused
    step does not honour the scaler's skip of inf/NaN steps; both give the same first step here."""
    fused = build_optimizer(_Toy(), TrainConfig(optimizer=optimizer, amp="off"))
    plain = build_optimizer(_Toy(), TrainConfig(optimizer=optimizer, amp="fp16"))
    assert fused.defaults["fused"] is True and plain.defaults["fused"] is False
    torch.manual_seed(0)
    a = _Toy()
    b = _Toy()
    b.load_state_dict(a.state_dict())
    for model, amp in ((a, "off"), (b, "fp16")):
        opt = build_optimizer(model, TrainConfig(optimizer=optimizer, amp=amp, lr=0.01))
        sum(p.sum() for p in model.parameters()).backward()
        opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)

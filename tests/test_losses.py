"""MACE losses: hand-computed KD / triplet / ramp values, term bookkeeping, learning on a tiny batch."""
from __future__ import annotations

import math

import pytest
import torch

from mace_core.config import LossConfig
from mace_core.errors import MaceError
from mace_core.losses import MaceLoss, batch_hard_triplet, distillation, kd_weight_at
from mace_core.models import ModelOutput
from tests._models_helpers import images, tiny_model


# ---------------------------------------------------------------- lambda_2 schedule
def test_kd_weight_fixed():
    cfg = LossConfig(kd_schedule="fixed", kd_weight=0.1)
    assert kd_weight_at(0, cfg) == kd_weight_at(37.5, cfg) == 0.1


@pytest.mark.parametrize("epoch,expected", [(0, math.exp(-5)), (30, math.exp(-1.25)), (45, math.exp(-5 / 16)),
                                            (60, 1.0), (90, 1.0), (-3, math.exp(-5))])
def test_kd_weight_sigmoid_ramp(epoch, expected):
    cfg = LossConfig(kd_schedule="sigmoid", kd_weight=2.0, kd_rampup_epochs=60)
    assert kd_weight_at(epoch, cfg) == pytest.approx(2.0 * expected)


def test_kd_weight_zero_rampup_is_full_weight_and_unknown_schedule_errors():
    assert kd_weight_at(0, LossConfig(kd_rampup_epochs=0, kd_weight=0.7)) == 0.7
    with pytest.raises(MaceError, match="kd_schedule"):
        kd_weight_at(1, LossConfig(kd_schedule="linear"))


# ---------------------------------------------------------------- distillation
def test_distillation_hand_computed_t1():
    teacher = torch.tensor([[0.0, math.log(3.0)]])  # softmax -> [0.25, 0.75]
    student = torch.tensor([[0.0, 0.0]])            # softmax -> [0.5, 0.5]
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert distillation(teacher, student, 1.0, True).item() == pytest.approx(expected, rel=1e-6)


def test_distillation_temperature_scaling_and_batch_mean():
    teacher = torch.tensor([[2.0, 0.0, -2.0], [0.0, 0.0, 0.0]])
    student = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    t = 3.0
    p = torch.softmax(teacher[0] / t, 0)
    q = torch.softmax(student[0] / t, 0)
    kl_row0 = float((p * (p / q).log()).sum())
    # Row 1 has identical distributions (KL 0); batch mean halves row 0, T^2 scales.
    assert distillation(teacher, student, t, True).item() == pytest.approx(t * t * kl_row0 / 2, rel=1e-5)


@pytest.mark.parametrize("detach", [True, False])
def test_distillation_teacher_side_detached_on_request(detach):
    teacher = torch.tensor([[1.0, -1.0]], requires_grad=True)
    student = torch.tensor([[0.0, 0.5]], requires_grad=True)
    distillation(teacher, student, 3.0, detach).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert (teacher.grad is None) == detach


# ---------------------------------------------------------------- triplet
def test_batch_hard_triplet_hand_computed():
    feat = torch.tensor([[0.0], [1.0], [3.0], [4.0]])
    labels = torch.tensor([0, 0, 1, 1])
    # hardest pos / neg per anchor: (1,3) (1,2) (1,2) (1,3); margin 1.5 -> 0, .5, .5, 0
    assert batch_hard_triplet(feat, labels, 1.5).item() == pytest.approx(0.25, abs=1e-5)
    assert batch_hard_triplet(feat, labels, 0.3).item() == pytest.approx(0.0, abs=1e-6)


def test_batch_hard_triplet_2d_and_skips_anchors_without_positive():
    feat = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [10.0, 10.0]])
    labels = torch.tensor([0, 0, 1, 2])  # anchors 2, 3 have no positive
    # anchor0: d(0,1)=5, nearest neg d(0,2)=1 -> 5-1+.3 = 4.3 ; anchor1: 5 - d(1,2)=sqrt(9+9) -> 5-4.2426+.3
    expected = (4.3 + (5 - math.sqrt(18) + 0.3)) / 2
    assert batch_hard_triplet(feat, labels, 0.3).item() == pytest.approx(expected, rel=1e-5)


def test_batch_hard_triplet_no_valid_anchor_is_zero():
    feat = torch.randn(3, 4)
    assert batch_hard_triplet(feat, torch.tensor([0, 1, 2]), 0.3).item() == 0.0


# ---------------------------------------------------------------- MaceLoss
def _fake_output(b=4, c=5, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    return ModelOutput(r(b, c), r(b, c), r(b, c), r(b, c), r(2 * b, d), None)


def test_mace_loss_terms_and_total():
    cfg = LossConfig(id_weight=0.5, kd_weight=2.0, kd_schedule="fixed", triplet_weight=0.25, kd_temperature=3.0)
    out = _fake_output()
    y = torch.tensor([0, 0, 3, 3])
    total, tensors = MaceLoss(cfg)(out, y, y.clone(), epoch=1.0)
    expected_keys = {"id_v", "id_vs", "id_i", "id_is", "id", "kd_v2i", "kd_i2v", "kd", "triplet", "kd_weight",
                     "total", "acc"}
    assert set(tensors) == expected_keys and isinstance(tensors["kd_weight"], float)
    # every measured term stays a detached 0-d float32 tensor where the batch is (no host sync in the loss)
    measured = {k: v for k, v in tensors.items() if k != "kd_weight"}
    assert all(isinstance(v, torch.Tensor) and v.shape == () and v.dtype == torch.float32 and not v.requires_grad
               for v in measured.values())
    assert torch.equal(tensors["total"], total)
    terms = {k: float(v) for k, v in tensors.items()}
    ce = torch.nn.functional.cross_entropy
    assert terms["id_v"] == pytest.approx(ce(out.logits_v, y).item(), rel=1e-6)
    assert terms["id_is"] == pytest.approx(ce(out.logits_is, y).item(), rel=1e-6)
    assert terms["id"] == pytest.approx(terms["id_v"] + terms["id_vs"] + terms["id_i"] + terms["id_is"], rel=1e-6)
    assert terms["kd_v2i"] == pytest.approx(distillation(out.logits_v, out.logits_is, 3.0, True).item(), rel=1e-6)
    assert terms["kd_i2v"] == pytest.approx(distillation(out.logits_i, out.logits_vs, 3.0, True).item(), rel=1e-6)
    trip = batch_hard_triplet(out.triplet_feat, torch.cat([y, y]), 0.3).item()
    assert terms["triplet"] == pytest.approx(trip, rel=1e-6)
    assert terms["kd_weight"] == 2.0
    assert total.item() == pytest.approx(0.5 * terms["id"] + 2.0 * terms["kd"] + 0.25 * trip, rel=1e-5)
    assert terms["total"] == pytest.approx(total.item(), rel=1e-6)
    pred_v = (out.logits_v + out.logits_vs).argmax(1)
    pred_i = (out.logits_i + out.logits_is).argmax(1)
    assert terms["acc"] == pytest.approx(((pred_v == y).sum() + (pred_i == y).sum()).item() / 8)


def test_mace_loss_label_smoothing_changes_ce():
    out, y = _fake_output(), torch.tensor([0, 1, 2, 3])
    _, plain = MaceLoss(LossConfig())(out, y, y, 0)
    _, smooth = MaceLoss(LossConfig(label_smoothing=0.1))(out, y, y, 0)
    ce = torch.nn.functional.cross_entropy(out.logits_v, y, label_smoothing=0.1).item()
    assert smooth["id_v"].item() == pytest.approx(ce, rel=1e-6) and smooth["id_v"] != plain["id_v"]


def test_mace_loss_rejects_misshaped_labels():
    # (pairing by identity is a property of the batch: see test_train_batches)
    out = _fake_output()
    loss = MaceLoss(LossConfig())
    with pytest.raises(MaceError, match="label shapes"):
        loss(out, torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1]), 0)
    with pytest.raises(MaceError, match="kd_temperature"):
        MaceLoss(LossConfig(kd_temperature=0))


def test_loss_decreases_over_sgd_steps_on_fixed_batch():
    model = tiny_model(num_classes=4, seed=0)
    loss_fn = MaceLoss(LossConfig(kd_schedule="fixed", kd_weight=1.0))
    rgb, ir = images(8, 1), images(8, 2)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = []
    for _ in range(8):
        opt.zero_grad()
        total, terms = loss_fn(model(rgb, ir), y, y, epoch=0)
        total.backward()
        opt.step()
        history.append(terms["total"].item())
    assert history[-1] < 0.8 * history[0], history


def test_triplet_distances_stay_float32_under_autocast():
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(8, 16, generator=g) * 30
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = batch_hard_triplet(feat, labels, 0.3)
    assert amp.dtype == torch.float32
    assert amp.item() == pytest.approx(batch_hard_triplet(feat, labels, 0.3).item(), rel=1e-6)


def test_gem_model_and_loss_finite_under_bf16_autocast():
    model = tiny_model(num_classes=4, pooling="gem")
    y = torch.tensor([0, 1, 2, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, terms = MaceLoss(LossConfig())(model(images(4, 1), images(4, 2)), y, y, epoch=10)
    assert math.isfinite(total.item()) and all(math.isfinite(float(v)) for v in terms.values())

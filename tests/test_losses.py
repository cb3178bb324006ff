"""MACE losses: hand-computed KD / triplet / ramp values, term bookkeeping, learning on a tiny batch."""
from __future__ import annotations

import math

import pytest
import torch

from mace_core.config import LossConfig
from mace_core.errors import MaceError
from mace_core.losses import (
    MaceLoss,
    batch_hard_triplet,
    distillation,
    ens_weight_at,
    ensemble_distillation,
    kd_effective_weight_at,
    kd_weight_at,
)
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
    # Row 1 has identical distributions (KL 0); batch mean halves row 0; no T^2 here (it is in the weight).
    assert distillation(teacher, student, t, True).item() == pytest.approx(kl_row0 / 2, rel=1e-5)


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
    expected_keys = {"id_v", "id_vs", "id_i", "id_is", "id", "kd_v2i", "kd_i2v", "kd", "kd_ens", "triplet",
                     "kd_weight", "ens_weight", "total", "acc"}
    assert set(tensors) == expected_keys
    assert isinstance(tensors["kd_weight"], float) and isinstance(tensors["ens_weight"], float)
    # every measured term stays a detached 0-d float32 tensor where the batch is (no host sync in the loss)
    measured = {k: v for k, v in tensors.items() if k not in ("kd_weight", "ens_weight")}
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
    assert terms["kd_weight"] == 2.0 * 9.0   # effective: lambda_2 x T^2 (kd_t2_scaling on by default)
    assert terms["kd_ens"] == 0.0 and terms["ens_weight"] == 0.0   # ensemble learning off by default
    assert total.item() == pytest.approx(0.5 * terms["id"] + 18.0 * terms["kd"] + 0.25 * trip, rel=1e-5)
    assert terms["total"] == pytest.approx(total.item(), rel=1e-6)
    pred_v = (out.logits_v + out.logits_vs).argmax(1)
    pred_i = (out.logits_i + out.logits_is).argmax(1)
    assert terms["acc"] == pytest.approx(((pred_v == y).sum() + (pred_i == y).sum()).item() / 8)


def _kd_only_output(teacher, student, d=3):
    """Specific logits = ``teacher`` and shared logits = ``student`` for both modalities (2 rows)."""
    t = torch.tensor(teacher).repeat(2, 1)
    s_ = torch.tensor(student).repeat(2, 1)
    return ModelOutput(t.clone(), t.clone(), s_.clone(), s_.clone(), torch.zeros(4, d), None)


@pytest.mark.parametrize("scaling,factor", [(True, 4.0), (False, 1.0)])
def test_kd_t2_scaling_on_and_off_hand_computed(scaling, factor):
    # T = 2: teacher [0, 2 ln 3] / T -> softmax [1/4, 3/4]; student [0, 0] -> [1/2, 1/2]
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    out = _kd_only_output([0.0, 2 * math.log(3.0)], [0.0, 0.0])
    y = torch.tensor([0, 1])
    cfg = LossConfig(id_weight=0.0, triplet_weight=0.0, kd_weight=0.1, kd_schedule="fixed", kd_temperature=2.0,
                     kd_t2_scaling=scaling)
    total, terms = MaceLoss(cfg)(out, y, y, epoch=0)
    assert terms["kd_v2i"] == pytest.approx(kl, rel=1e-6) and terms["kd"] == pytest.approx(2 * kl, rel=1e-6)
    assert terms["kd_weight"] == pytest.approx(0.1 * factor)
    assert kd_effective_weight_at(0, cfg) == pytest.approx(0.1 * factor)
    assert total.item() == pytest.approx(0.1 * factor * 2 * kl, rel=1e-6)


def test_thesis_experiment0_weight_applies_0_9_with_scaling_and_0_1_without():
    fixed = dict(kd_schedule="fixed", kd_weight=0.1, kd_temperature=3.0)
    assert kd_effective_weight_at(5, LossConfig(**fixed)) == pytest.approx(0.9)
    assert kd_effective_weight_at(5, LossConfig(**fixed, kd_t2_scaling=False)) == pytest.approx(0.1)


def test_ensemble_distillation_hand_computed_and_teacher_detached():
    # T = 1: specific [0, ln 3] -> [1/4, 3/4]; shared [0, 0] -> [1/2, 1/2]; ensemble = sum = [0, ln 3]
    # equals the specific logits, so KL(ens || spec) = 0 and KL(ens || shared) = kl, per modality.
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    out = _kd_only_output([0.0, math.log(3.0)], [0.0, 0.0])
    for name in ("logits_v", "logits_vs", "logits_i", "logits_is"):
        getattr(out, name).requires_grad_(True)
    value = ensemble_distillation(out, 1.0)
    assert value.item() == pytest.approx(2 * kl, rel=1e-6)
    value.backward()
    # students get d KL / d z = (q - p) / rows; the detached teacher passes nothing back to the specific
    # logits through the ensemble (their own KL term is zero-gradient here: q = p)
    expected = (torch.tensor([0.5, 0.5]) - torch.tensor([0.25, 0.75])) / 2
    assert torch.allclose(out.logits_vs.grad, expected.repeat(2, 1), atol=1e-6)
    assert torch.allclose(out.logits_is.grad, expected.repeat(2, 1), atol=1e-6)
    assert out.logits_v.grad.abs().max() < 1e-7 and out.logits_i.grad.abs().max() < 1e-7


@pytest.mark.parametrize("scaling", [True, False])
def test_ensemble_term_weighted_into_total(scaling):
    out = _kd_only_output([0.0, math.log(3.0)], [0.0, 0.0])
    y = torch.tensor([0, 1])
    base = dict(id_weight=0.0, triplet_weight=0.0, kd_weight=0.0, kd_schedule="fixed", kd_temperature=1.0,
                kd_t2_scaling=scaling)
    off_total, off = MaceLoss(LossConfig(**base))(out, y, y, epoch=0)
    cfg = LossConfig(**base, ens_kd_weight=0.5, ens_kd_schedule="fixed")
    total, terms = MaceLoss(cfg)(out, y, y, epoch=0)
    off, terms = ({k: float(v) for k, v in t.items()} for t in (off, terms))   # device tensors -> numbers
    assert off["kd_ens"] == 0.0 and off_total.item() == 0.0
    assert terms["kd_ens"] == pytest.approx(ensemble_distillation(out, 1.0).item(), rel=1e-6)
    assert terms["ens_weight"] == 0.5 and total.item() == pytest.approx(0.5 * terms["kd_ens"], rel=1e-6)


def test_ensemble_weight_has_its_own_ramp_and_t2_factor():
    cfg = LossConfig(ens_kd_weight=2.0, ens_kd_schedule="sigmoid", ens_kd_rampup_epochs=10, kd_temperature=3.0,
                     kd_schedule="fixed", kd_weight=0.1)
    assert ens_weight_at(0, cfg) == pytest.approx(2.0 * math.exp(-5) * 9.0)
    assert ens_weight_at(5, cfg) == pytest.approx(2.0 * math.exp(-1.25) * 9.0)
    assert ens_weight_at(10, cfg) == pytest.approx(18.0)
    assert kd_weight_at(0, cfg) == 0.1      # lambda_2 keeps its own (fixed) schedule
    with pytest.raises(MaceError, match="ens_kd_schedule"):
        MaceLoss(LossConfig(ens_kd_schedule="linear"))
    with pytest.raises(MaceError, match="ens_kd_weight"):
        MaceLoss(LossConfig(ens_kd_weight=-1.0))


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

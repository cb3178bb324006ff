"""MACE losses (thesis §2.4.4–2.4.5, eqs 7–13).

* Identity: cross-entropy on p_V and p_VS with the RGB labels, on p_I and p_IS with the IR labels
  (eqs 9–10), optional label smoothing. ``id`` is the sum of the four terms.
* Distillation (eqs 7–8, as printed: no T² factor), between index-paired rows (RGB row i and IR row i
  share an identity): ``kd_v2i = KL(σ(p_V/T) ‖ σ(p_IS/T))`` — the visible *specific* classifier p_V is
  the teacher, the infrared *shared* prediction p_IS the student; ``kd_i2v = KL(σ(p_I/T) ‖ σ(p_VS/T))``
  — p_I teaches p_VS. KL is Σ teacher·log(teacher/student), averaged over rows. The thesis names
  neither the teacher side nor the pairing (inferred: the specific branch teaches, rows are paired by
  the identity sampler). With ``kd_detach_teacher`` (default) no gradient flows into the teacher side,
  as in Ye's released distillation code (DDAG, CAJ: teacher probabilities detached).
* T² scaling (``kd_t2_scaling``, default on): the distillation weight is multiplied by T², the form of
  Ye's released distillation code (DDAG, CAJ: temperature 3, loss × T²); it keeps the soft-target
  gradients' magnitude independent of T (Hinton et al. 2015). Eq. 7 of the thesis prints no T², so
  ``kd_t2_scaling: false`` runs the equation as printed. The weight actually applied is
  :func:`kd_effective_weight_at` = λ₂(t)·T² (or λ₂(t)); with T = 3 a ``kd_weight`` of 1.0 applies 9.0.
* Weight λ₂ (:func:`kd_weight_at`): ``fixed`` = ``kd_weight`` every epoch (thesis §3.3.1, experiment 0,
  lists 0.1); ``sigmoid`` = ``kd_weight · exp(-5 (1 - t)²)``, ``t = min(epoch / kd_rampup_epochs, 1)``
  (thesis §2.4.5: ramp from 0 to 1.0 over τ = 60 epochs; the exp(-5(1-t)²) shape is the common
  "sigmoid ramp-up" form, inferred: the thesis names the schedule, not its formula). The two thesis
  statements conflict; the default is the ramp. Ye's released code (DDAG, CAJ) has no ramp at all.
* Ensemble learning (``ens_kd_weight`` > 0; off by default, so the default is the thesis's form): the
  MACE abstract (Ye et al., TIP 2020) says its collaborative learning "regularizes modality-specific
  identity predictions and the ensemble outputs"; the thesis's equations only have eqs 7–8. The form
  here is inferred (no MACE code was released): each image's ensemble output p_spec + p_shared (eqs
  5–6), detached, teaches both of that image's classifiers, ``kd_ens = Σ_modality KL(σ(p_ens/T) ‖
  σ(p_spec/T)) + KL(σ(p_ens/T) ‖ σ(p_shared/T))``, weighted by λ₃(t) (:func:`ens_weight_at`, its own
  ``ens_kd_schedule`` / ``ens_kd_rampup_epochs``; × T² with ``kd_t2_scaling``).
* Batch-hard triplet (eq 12) over the joint 2B batch on the pre-BN fused embedding with Euclidean
  distances (not squared; the AGW reference code's form): per anchor the farthest positive and nearest
  negative, hinge with margin α = 0.3, mean over anchors. Cross-modal pairs are valid candidates.
* Total (eq 13): ``id_weight·id + λ₂_eff·kd + λ₃_eff·kd_ens + triplet_weight·triplet``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mace_core.config import LossConfig
from mace_core.errors import MaceError

TERMS = ("id_v", "id_vs", "id_i", "id_is", "id", "kd_v2i", "kd_i2v", "kd", "kd_ens", "triplet", "kd_weight",
         "ens_weight", "total", "acc")


def _ramp(epoch: float, weight: float, schedule: str, rampup_epochs: int, key: str) -> float:
    if schedule == "fixed":
        return float(weight)
    if schedule != "sigmoid":
        raise MaceError(f"loss.{key} {schedule!r} is not known", "use sigmoid or fixed")
    if rampup_epochs <= 0:
        return float(weight)
    t = min(max(epoch, 0.0) / rampup_epochs, 1.0)
    return float(weight * math.exp(-5.0 * (1.0 - t) ** 2))


def kd_weight_at(epoch: float, cfg: LossConfig) -> float:
    """λ₂ at a (fractional) epoch: fixed, or the sigmoid ramp-up ``exp(-5(1-t)²)`` to ``cfg.kd_weight``
    (the schedule value, before the T² factor: see :func:`kd_effective_weight_at`)."""
    return _ramp(epoch, cfg.kd_weight, cfg.kd_schedule, cfg.kd_rampup_epochs, "kd_schedule")


def kd_scale(cfg: LossConfig) -> float:
    """The factor on every distillation weight: T² with ``kd_t2_scaling`` (Ye's DDAG/CAJ code), else 1."""
    return float(cfg.kd_temperature) ** 2 if cfg.kd_t2_scaling else 1.0


def kd_effective_weight_at(epoch: float, cfg: LossConfig) -> float:
    """The weight actually applied to ``kd`` (eqs 7–8): λ₂(t)·T² with ``kd_t2_scaling``, else λ₂(t)."""
    return kd_weight_at(epoch, cfg) * kd_scale(cfg)


def ens_weight_at(epoch: float, cfg: LossConfig) -> float:
    """λ₃(t), the ensemble-learning weight (MACE abstract; off at 0), times T² with ``kd_t2_scaling``."""
    return _ramp(epoch, cfg.ens_kd_weight, cfg.ens_kd_schedule, cfg.ens_kd_rampup_epochs,
                 "ens_kd_schedule") * kd_scale(cfg)


def distillation(teacher_logits: Tensor, student_logits: Tensor, temperature: float, detach_teacher: bool) -> Tensor:
    """``KL(σ(teacher/T) ‖ σ(student/T))`` averaged over rows (no T² factor: that is in the weight)."""
    if detach_teacher:
        teacher_logits = teacher_logits.detach()
    t = temperature
    log_student = F.log_softmax(student_logits.float() / t, dim=1)
    log_teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
    return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)


def ensemble_distillation(out, temperature: float) -> Tensor:
    """Each image's detached ensemble output ``p_spec + p_shared`` distilled into its specific and its
    shared classifier, summed over both modalities (four KL terms, each averaged over rows)."""
    total = None
    for spec, shared in ((out.logits_v, out.logits_vs), (out.logits_i, out.logits_is)):
        ens = (spec + shared).detach()
        pair = distillation(ens, spec, temperature, True) + distillation(ens, shared, temperature, True)
        total = pair if total is None else total + pair
    return total


def batch_hard_triplet(feat: Tensor, labels: Tensor, margin: float) -> Tensor:
    """Batch-hard triplet loss: mean over anchors of ``relu(max d(a,p) - min d(a,n) + margin)``.

    Euclidean distances; anchors without a positive (other than themselves) or without a negative
    are skipped; returns 0 when no anchor qualifies.
    """
    with torch.autocast(feat.device.type, enabled=False):  # distances in float32 even under AMP
        feat = feat.float()
        sq = feat.pow(2).sum(dim=1)
        dist = (sq[:, None] + sq[None, :] - 2.0 * feat @ feat.t()).clamp(min=1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    hardest_pos = torch.where(pos_mask, dist, torch.full_like(dist, -math.inf)).amax(dim=1)
    hardest_neg = torch.where(neg_mask, dist, torch.full_like(dist, math.inf)).amin(dim=1)
    valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)
    losses = F.relu(hardest_pos - hardest_neg + margin)
    losses = torch.where(valid, losses, torch.zeros_like(losses))
    return losses.sum() / valid.sum().clamp(min=1)


class MaceLoss(nn.Module):
    """Total MACE objective; returns the loss tensor and a dict of its terms and the batch accuracy as 0-d
    detached tensors on the batch's device (``kd_weight``, known on the host, as a float), so a training
    step needs no host sync. Rows of the two label vectors must be index-paired (row i of the RGB and of
    the IR half share an identity): the batch guarantees that (:func:`mace_core.data.sampler.check_paired`)."""

    def __init__(self, cfg: LossConfig):
        super().__init__()
        if cfg.kd_temperature <= 0:
            raise MaceError(f"loss.kd_temperature={cfg.kd_temperature} must be positive", "use e.g. 3")
        if not 0.0 <= cfg.label_smoothing < 1.0:
            raise MaceError(f"loss.label_smoothing={cfg.label_smoothing} is outside [0, 1)", "use e.g. 0 or 0.1")
        kd_weight_at(0.0, cfg)  # validates the schedule names
        ens_weight_at(0.0, cfg)
        if cfg.ens_kd_weight < 0:
            raise MaceError(f"loss.ens_kd_weight={cfg.ens_kd_weight} is negative", "use 0 (off) or a positive weight")
        self.cfg = cfg

    def forward(self, out, rgb_labels: Tensor, ir_labels: Tensor,
                epoch: float) -> tuple[Tensor, dict[str, Tensor | float]]:
        cfg = self.cfg
        if rgb_labels.shape != ir_labels.shape or rgb_labels.shape[0] != out.logits_v.shape[0]:
            raise MaceError(f"label shapes {tuple(rgb_labels.shape)} / {tuple(ir_labels.shape)} do not match the "
                            f"batch of {out.logits_v.shape[0]} per modality",
                            "pass one label per RGB image and one per IR image")
        ce = lambda logits, y: F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        id_v, id_vs = ce(out.logits_v, rgb_labels), ce(out.logits_vs, rgb_labels)
        id_i, id_is = ce(out.logits_i, ir_labels), ce(out.logits_is, ir_labels)
        id_total = id_v + id_vs + id_i + id_is

        t, detach = cfg.kd_temperature, cfg.kd_detach_teacher
        kd_v2i = distillation(out.logits_v, out.logits_is, t, detach)
        kd_i2v = distillation(out.logits_i, out.logits_vs, t, detach)
        kd_total = kd_v2i + kd_i2v
        lam2 = kd_effective_weight_at(epoch, cfg)
        lam3 = ens_weight_at(epoch, cfg)
        kd_ens = ensemble_distillation(out, t) if cfg.ens_kd_weight > 0 else kd_total.new_zeros(())

        labels = torch.cat([rgb_labels, ir_labels])
        triplet = batch_hard_triplet(out.triplet_feat, labels, cfg.triplet_margin)
        total = cfg.id_weight * id_total + lam2 * kd_total + lam3 * kd_ens + cfg.triplet_weight * triplet

        with torch.no_grad():
            pred_v = (out.logits_v + out.logits_vs).argmax(dim=1)
            pred_i = (out.logits_i + out.logits_is).argmax(dim=1)
            acc = torch.cat([pred_v == rgb_labels, pred_i == ir_labels]).float().mean()
        # device tensors, detached: reading them (a host sync) is left to the caller's logging interval
        terms: dict[str, Tensor | float] = {
            name: value.detach() for name, value in zip(
                ("id_v", "id_vs", "id_i", "id_is", "id", "kd_v2i", "kd_i2v", "kd", "kd_ens", "triplet", "total", "acc"),
                (id_v, id_vs, id_i, id_is, id_total, kd_v2i, kd_i2v, kd_total, kd_ens, triplet, total, acc))}
        terms["kd_weight"] = lam2       # effective weights (λ₂·T², λ₃·T² with kd_t2_scaling)
        terms["ens_weight"] = lam3
        return total, terms

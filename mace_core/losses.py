"""MACE losses (thesis §2.4.4–2.4.5, eqs 7–13).

* Identity: cross-entropy on p_V and p_VS with the RGB labels, on p_I and p_IS with the IR labels
  (eqs 9–10), optional label smoothing. ``id`` is the sum of the four terms.
* Distillation (eqs 7–8), between index-paired rows (RGB row i and IR row i share an identity):
  ``kd_v2i = T² · KL(σ(p_V/T) ‖ σ(p_IS/T))`` — the visible *specific* classifier p_V is the teacher,
  the infrared *shared* prediction p_IS the student; ``kd_i2v = T² · KL(σ(p_I/T) ‖ σ(p_VS/T))`` —
  p_I teaches p_VS. KL is Σ teacher·log(teacher/student), averaged over rows; T² keeps gradient
  magnitudes independent of T (Hinton et al.). With ``kd_detach_teacher`` (default, as Ye's released
  code) no gradient flows into the teacher side.
* Weight λ₂ (:func:`kd_weight_at`): ``fixed`` = ``kd_weight`` every epoch (the thesis' experiment 0
  used 0.1); ``sigmoid`` = ``kd_weight · exp(-5 (1 - t)²)``, ``t = min(epoch / kd_rampup_epochs, 1)``
  (thesis §2.4.5: ramp to 1.0 over 60 epochs). The two thesis statements conflict; the default is
  the ramp, and the released reference code has no ramp at all.
* Batch-hard triplet (eq 12) over the joint 2B batch on the pre-BN fused embedding with Euclidean
  distances (not squared, as the reference): per anchor the farthest positive and nearest negative,
  hinge with margin α = 0.3, mean over anchors. Cross-modal pairs are valid candidates.
* Total (eq 13): ``id_weight·id + λ₂·kd + triplet_weight·triplet``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mace_core.config import LossConfig
from mace_core.errors import MaceError

TERMS = ("id_v", "id_vs", "id_i", "id_is", "id", "kd_v2i", "kd_i2v", "kd", "triplet", "kd_weight", "total", "acc")


def kd_weight_at(epoch: float, cfg: LossConfig) -> float:
    """λ₂ at a (fractional) epoch: fixed, or the sigmoid ramp-up ``exp(-5(1-t)²)`` to ``cfg.kd_weight``."""
    if cfg.kd_schedule == "fixed":
        return float(cfg.kd_weight)
    if cfg.kd_schedule != "sigmoid":
        raise MaceError(f"loss.kd_schedule {cfg.kd_schedule!r} is not known", "use sigmoid or fixed")
    if cfg.kd_rampup_epochs <= 0:
        return float(cfg.kd_weight)
    t = min(max(epoch, 0.0) / cfg.kd_rampup_epochs, 1.0)
    return float(cfg.kd_weight * math.exp(-5.0 * (1.0 - t) ** 2))


def distillation(teacher_logits: Tensor, student_logits: Tensor, temperature: float, detach_teacher: bool) -> Tensor:
    """``T² · KL(σ(teacher/T) ‖ σ(student/T))`` averaged over rows."""
    if detach_teacher:
        teacher_logits = teacher_logits.detach()
    t = temperature
    log_student = F.log_softmax(student_logits.float() / t, dim=1)
    log_teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return kl * (t * t)


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
        kd_weight_at(0.0, cfg)  # validates the schedule name
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
        lam2 = kd_weight_at(epoch, cfg)

        labels = torch.cat([rgb_labels, ir_labels])
        triplet = batch_hard_triplet(out.triplet_feat, labels, cfg.triplet_margin)
        total = cfg.id_weight * id_total + lam2 * kd_total + cfg.triplet_weight * triplet

        with torch.no_grad():
            pred_v = (out.logits_v + out.logits_vs).argmax(dim=1)
            pred_i = (out.logits_i + out.logits_is).argmax(dim=1)
            acc = torch.cat([pred_v == rgb_labels, pred_i == ir_labels]).float().mean()
        # device tensors, detached: reading them (a host sync) is left to the caller's logging interval
        terms: dict[str, Tensor | float] = {
            name: value.detach() for name, value in zip(
                ("id_v", "id_vs", "id_i", "id_is", "id", "kd_v2i", "kd_i2v", "kd", "triplet", "total", "acc"),
                (id_v, id_vs, id_i, id_is, id_total, kd_v2i, kd_i2v, kd_total, triplet, total, acc))}
        terms["kd_weight"] = lam2
        return total, terms

"""The conclusions the thesis draws in each experiment chapter, and how this study tests each one.

One place for every claim of chapter 3 (section numbers are the thesis's), so that each chapter's
computed finding tests all of them in the thesis's direction, favourable or not, instead of
reporting only the best variant. A claim is a linear contrast of IR→RGB Rank-1 values of the
chapter's conditions (``contrast``: condition key -> coefficient, Δ = Σ coefficient · value) and a
direction: ``higher`` (Δ > 0), ``lower`` (Δ < 0) or ``same`` (no difference; "not distinguishable"
then only bounds it, see :func:`mace_core.analysis.findings.claim_verdict`). The thesis's own Δ is
the same contrast over its tables (:func:`thesis_delta`).

Condition keys, per experiment:

* 01-03, 05: the thesis row a variant stands for (``thesis_rows.SPECS[...].key``): backbone family
  (``"resnet50"`` …), attention (``"none"``, ``"cam"`` …), fusion (``"concat"`` …), identity fraction
  (``0.1`` … ``1.0``);
* 04: ``(n, fusion)`` for a pool of n IR queries, ``(1, None)`` the single query;
* 06: ``(training, occlusion)``: ``training`` is ``"baseline"`` or the occlusion type the model was
  trained with, ``occlusion`` the test-time type (``None``: clean queries).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mace_core.analysis import thesis_numbers as tn

HIGHER, LOWER, SAME = "higher", "lower", "same"


@dataclass(frozen=True)
class Claim:
    """One conclusion of the thesis and the contrast that tests it."""

    id: str
    experiment: str
    section: str                       # the thesis section that states it
    statement: str                     # the claim, in our words
    contrast: Mapping[Any, float] = field(default_factory=dict)   # condition key -> coefficient
    direction: str = LOWER             # the thesis's direction of the contrast
    test: str = ""                     # the contrast in words
    untestable: str = ""               # why no comparison of final numbers tests it (then no contrast)


def _diff(a: Any, b: Any) -> dict[Any, float]:
    return {a: 1.0, b: -1.0}


def _gap_change(trained: str) -> dict[Any, float]:
    """(trained clean − trained occluded) − (baseline clean − baseline occluded), on ``trained``'s type."""
    return {(trained, None): 1.0, (trained, trained): -1.0, ("baseline", None): -1.0, ("baseline", trained): 1.0}


_OCC = {"random_rect": "random rectangle", "horizontal_band": "horizontal band", "upper_body": "upper-body block",
        "lower_body": "lower-body block"}
_A = {"random_rect": "a", "horizontal_band": "a", "upper_body": "an", "lower_body": "a"}

CLAIMS: tuple[Claim, ...] = (
    # Experiment 0
    Claim("c0.level", "00_baseline", "3.2.1, 3.3.4",
          "The replication reaches Rank-1 ≥ 45 % and mAP ≥ 43 % on SYSU-MM01 all-search.",
          untestable="an absolute level on the real data set; this study's levels come from other data and "
                     "training budgets, so only differences between variants carry over"),
    # Experiment 1
    Claim("c1.seresnet_same", "01_backbones", "3.4.1",
          "SE-ResNet-50 with GeM pooling performs essentially the same as ResNet-50.",
          _diff("seresnet50", "resnet50"), SAME, "SE-ResNet − ResNet"),
    Claim("c1.efficientnet_lower", "01_backbones", "3.4.2",
          "EfficientNet-B3 falls substantially below the ResNet-50 baseline.",
          _diff("efficientnet_b3", "resnet50"), LOWER, "EfficientNet − ResNet"),
    Claim("c1.tresnet_lower", "01_backbones", "3.4.3",
          "TResNet-M falls below the ResNet-50 baseline.",
          _diff("tresnet_m", "resnet50"), LOWER, "TResNet − ResNet"),
    Claim("c1.tresnet_below_efficientnet", "01_backbones", "3.4.3, Table 4",
          "TResNet-M is the lowest of all backbones, below EfficientNet-B3 (§3.4.2 calls EfficientNet-B3 the "
          "weakest; Table 4 and §3.4.3 put TResNet-M lower).",
          _diff("tresnet_m", "efficientnet_b3"), LOWER, "TResNet − EfficientNet"),
    # Experiment 2
    *(Claim(f"c2.{m}_lower", "02_attention", "3.5.4",
            f"{m.upper()} performs below the baseline (all three attention modules lose 2-4 pp Rank-1).",
            _diff(m, "none"), LOWER, f"{m.upper()} − no attention") for m in ("cam", "sam", "dam")),
    Claim("c2.sam_above_cam", "02_attention", "3.5.2",
          "SAM is marginally better than CAM.", _diff("sam", "cam"), HIGHER, "SAM − CAM"),
    Claim("c2.dam_not_above_sam", "02_attention", "3.5.3",
          "DAM is not better than either single module (tested against the better one, SAM).",
          _diff("dam", "sam"), LOWER, "DAM − SAM"),
    # Experiment 3
    *(Claim(f"c3.{f}_lower", "03_fusion", "3.6.3",
            f"{f.capitalize()} fusion gives a modest decrease relative to concatenation.",
            _diff(f, "concat"), LOWER, f"{f} − concat") for f in ("adaptive", "transform")),
    Claim("c3.fusions_same", "03_fusion", "3.6.3",
          "The two fusion strategies differ only marginally.",
          _diff("transform", "adaptive"), SAME, "transform − adaptive"),
    # Experiment 4
    Claim("c4.avg5_gain", "04_multi_query", "3.7.1",
          "Average fusion of five queries substantially improves Rank-1 over the single query.",
          _diff((5, "avg"), (1, None)), HIGHER, "avg n = 5 − single query"),
    Claim("c4.five_captures_most", "04_multi_query", "3.7, 3.7.1",
          "Five queries capture most of the gain: going from 5 to 20 gains less than going from 1 to 5.",
          {(20, "avg"): 1.0, (5, "avg"): -2.0, (1, None): 1.0}, LOWER,
          "(avg n = 20 − avg n = 5) − (avg n = 5 − single query)"),
    Claim("c4.max_degrades", "04_multi_query", "3.7.1",
          "Maximum fusion degrades as the pool grows.",
          _diff((20, "max"), (2, "max")), LOWER, "max n = 20 − max n = 2"),
    Claim("c4.weighted_same", "04_multi_query", "3.7, 3.7.1",
          "Distance-weighted fusion offers no advantage over plain averaging.",
          _diff((5, "weighted"), (5, "avg")), SAME, "weighted n = 5 − avg n = 5"),
    # Experiment 5
    *(Claim(f"c5.rises_{int(lo * 100)}_{int(hi * 100)}", "05_data_efficiency", "3.8, 3.8.1",
            f"Rank-1 rises from {lo:.0%} to {hi:.0%} of the training identities (performance scales "
            f"with the data fraction).", _diff(hi, lo), HIGHER, f"{hi:.0%} − {lo:.0%}")
      for lo, hi in ((0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))),
    Claim("c5.last_quarter", "05_data_efficiency", "3.8",
          "The gain from 75 % to 100 % is disproportionately large relative to the lower fractions' gains "
          "(tested against the equal step below, 50 → 75 %: the thesis's own earlier steps, +8.5 and +9.7 pp, "
          "exceed its +7.6, so only this narrower reading holds in its Table 8).",
          {1.0: 1.0, 0.75: -2.0, 0.5: 1.0}, HIGHER, "(100 % − 75 %) − (75 % − 50 %)"),
    Claim("c5.threshold", "05_data_efficiency", "3.8.1",
          "Below about 200 identities (50 %) learning fails qualitatively: the 10 % model's evaluation stalls "
          "while its loss keeps falling.",
          untestable="a claim about training curves, not about final numbers; the chapter's curves show ours"),
    # Experiment 6
    *(Claim(f"c6.drop_{o}", "06_occlusion", "3.9, 3.9.1",
            f"Test-time occlusion by {_A[o]} {_OCC[o]} lowers the baseline's Rank-1.",
            _diff(("baseline", o), ("baseline", None)), LOWER, f"baseline: {o} − clean") for o in _OCC),
    Claim("c6.upper_vs_lower", "06_occlusion", "3.9, 3.9.1",
          "Upper-body occlusion hurts more than lower-body occlusion.",
          _diff(("baseline", "upper_body"), ("baseline", "lower_body")), LOWER, "baseline: upper_body − lower_body"),
    *(Claim(f"c6.{o}_vs_upper", "06_occlusion", "3.9",
            f"A {_OCC[o]} hurts more than the upper-body block.",
            _diff(("baseline", o), ("baseline", "upper_body")), LOWER, f"baseline: {o} − upper_body")
      for o in ("random_rect", "horizontal_band")),
    *(Claim(f"c6.clean_{o}", "06_occlusion", "3.9, 3.9.1",
            f"Training with {_OCC[o]} occlusion raises clean Rank-1 (no clean penalty, a regularisation gain).",
            _diff((o, None), ("baseline", None)), HIGHER, f"clean: {o}-trained − baseline")
      for o in ("random_rect", "horizontal_band")),
    *(Claim(f"c6.occluded_{o}", "06_occlusion", "3.9",
            f"Training with {_OCC[o]} occlusion raises Rank-1 on {o}-occluded queries.",
            _diff((o, o), ("baseline", o)), HIGHER, f"{o}-occluded: {o}-trained − baseline")
      for o in ("random_rect", "horizontal_band")),
    *(Claim(f"c6.gap_{o}", "06_occlusion", "3.9, 3.9.1",
            f"Training with {_OCC[o]} occlusion narrows the clean-to-occluded gap (the thesis: to about half; "
            f"tested: narrower at all).",
            _gap_change(o), LOWER, f"drop of the {o}-trained model − drop of the baseline")
      for o in ("random_rect", "horizontal_band")),
)


def claims_for(experiment: str) -> list[Claim]:
    return [c for c in CLAIMS if c.experiment == experiment]


def thesis_value(experiment: str, key: Any, metric: str = "R1") -> float | None:
    """The thesis's number for one condition key (see the module docstring); None when not reported."""
    tables = {"01_backbones": tn.TABLE4, "02_attention": tn.TABLE5, "03_fusion": tn.TABLE6}
    if experiment in tables:
        return (tables[experiment].get(key) or {}).get(metric)
    if experiment == "05_data_efficiency":
        return (tn.TABLE8.get(key) or {}).get(metric)
    if experiment == "04_multi_query":
        n, fusion = key
        return tn.TABLE7_SINGLE.get(metric) if n == 1 else (tn.TABLE7.get((n, fusion)) or {}).get(metric)
    if experiment == "06_occlusion" and metric == "R1":
        training, occlusion = key
        if training == "baseline":
            row = tn.TABLE9.get(("baseline", occlusion or "random_rect"))
            return None if row is None else row["occ_R1" if occlusion else "clean_R1"]
        row = tn.TABLE9.get(("occlusion-trained", training))
        if row is None or occlusion not in (None, training):
            return None
        return row["occ_R1" if occlusion else "clean_R1"]
    return None


def thesis_delta(claim: Claim, metric: str = "R1") -> float | None:
    """The claim's contrast over the thesis's tables (pp); None when a term is not reported."""
    if not claim.contrast:
        return None
    values = [thesis_value(claim.experiment, key, metric) for key in claim.contrast]
    if any(v is None for v in values):
        return None
    return float(sum(c * v for c, v in zip(claim.contrast.values(), values)))


def claims_markdown() -> str:
    """The methods page's claims table (MyST pipe table), generated from :data:`CLAIMS`."""
    lines = ["| experiment | § | the thesis's claim | tested as (Rank-1) | direction | thesis Δ (pp) |",
             "|---|---|---|---|---|---|"]
    for c in CLAIMS:
        td = thesis_delta(c)
        test = c.test if c.contrast else f"not tested: {c.untestable}"
        lines.append(f"| {int(c.experiment[:2])} | {c.section} | {c.statement} | {test} | "
                     f"{c.direction if c.contrast else '—'} | {'—' if td is None else f'{td:+.1f}'} |")
    return "\n".join(lines) + "\n"

"""Which thesis row each variant of a training experiment stands for, and which variant is the baseline.

:data:`SPECS` maps experiments 00-03 and 05 onto their thesis table; :func:`experiment_rows` gives one
:class:`Row` per variant (its runs over seeds and the thesis's numbers); :func:`entries_of` compares
each row with the baseline (Holm-adjusted within the chapter, :mod:`mace_core.analysis.findings`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mace_core.analysis import findings as fd, thesis_numbers as tn
from mace_core.analysis.results import group_runs, over_seeds, seed_results
from mace_core.errors import MaceError


def backbone_family(name: str) -> str:
    """Map a timm model name to the thesis backbone it stands for (CPU profiles use small members)."""
    name = name.lower()
    if "seresnet" in name or "se_resnet" in name or "seresnext" in name:
        return "seresnet50"
    if "efficientnet" in name or name.startswith("tinynet"):  # TinyNets: scaled-down EfficientNet-B0
        return "efficientnet_b3"
    if "tresnet" in name:
        return "tresnet_m"
    if "resnet" in name:
        return "resnet50"
    return name


def id_fraction(run: Any) -> float:
    """The run's fraction of training identities, rounded to the thesis's keys."""
    return round(float(run.config.data.id_fraction), 2)


@dataclass(frozen=True)
class Spec:
    """How one training experiment maps onto its thesis table."""

    title: str
    thesis: Mapping[Any, Mapping[str, Any]]
    key: Callable[[Any], Any]                # run -> thesis key
    baseline_key: Any                        # the thesis key of the baseline row
    label: Callable[[Any], str] = lambda run: run.variant
    label_header: str = "variant"


SPECS: dict[str, Spec] = {
    "00_baseline": Spec("Table 3 — baseline, SYSU-MM01 protocol, all-search", {"baseline": tn.TABLE3},
                        lambda r: "baseline", "baseline"),
    "01_backbones": Spec("Table 4 — backbones", tn.TABLE4, lambda r: backbone_family(r.config.model.backbone),
                         "resnet50"),
    "02_attention": Spec("Table 5 — attention modules (none: the baseline)", tn.TABLE5,
                         lambda r: r.config.model.attention, "none"),
    "03_fusion": Spec("Table 6 — fusion strategies (concat: the baseline)", tn.TABLE6,
                      lambda r: r.config.model.fusion, "concat"),
    "05_data_efficiency": Spec("Table 8 — fraction of training identities (100 %: the baseline)",
                               {round(k, 2): v for k, v in tn.TABLE8.items()}, id_fraction, 1.0,
                               label=lambda r: f"{id_fraction(r):.0%}", label_header="identities"),
}


# Experiments whose baseline is another experiment's run (the summary loads both)
BASELINE_FROM = {"02_attention": "00_baseline"}


def spec_of(experiment: str) -> Spec:
    """The experiment's :class:`Spec`; raises for an experiment without a thesis table."""
    if experiment not in SPECS:
        raise MaceError(f"no thesis table for experiment {experiment!r}", f"use one of {', '.join(SPECS)}")
    return SPECS[experiment]


@dataclass(frozen=True)
class Row:
    """One variant of a training experiment, aggregated over its seeds."""

    label: str
    runs: list[Any]
    thesis: Mapping[str, Any] | None
    is_baseline: bool

    def ours(self, metric: str) -> fd.SeedSummary | None:
        return over_seeds(seed_results(self.runs), metric)


def experiment_rows(experiment: str, runs: Sequence[Any]) -> list[Row]:
    """One Row per variant (fractions ascending in experiment 5); raises when there are no runs."""
    spec = spec_of(experiment)
    groups = group_runs(runs)
    if not groups:
        raise MaceError(f"{spec.title}: no completed runs to tabulate", "run the experiment's variants first")
    rows = [Row(spec.label(m[0]), m, spec.thesis.get(spec.key(m[0])), spec.key(m[0]) == spec.baseline_key)
            for m in groups.values()]
    if experiment == "05_data_efficiency":
        rows.sort(key=lambda r: id_fraction(r.runs[0]))
    return rows


def baseline_row(rows: Sequence[Row]) -> Row | None:
    """The baseline's row (None when the baseline has no completed run)."""
    return next((r for r in rows if r.is_baseline), None)


def thesis_value(ref: Mapping[str, Any] | None, metric: str) -> float | None:
    """One metric of a thesis row (None when the thesis does not report it)."""
    value = (ref or {}).get(metric)
    return None if value is None else float(value)


def entries_of(experiment: str, rows: Sequence[Row], metric: str = "R1") -> list[fd.Entry]:
    """One finding entry per row with a value: ours, the difference to the baseline Holm-adjusted in the
    chapter's family (Rank-1; other metrics over their own comparisons), the thesis's."""
    base = baseline_row(rows)
    base_sum = base.ours(metric) if base else None
    thesis_base = thesis_value(spec_of(experiment).thesis.get(spec_of(experiment).baseline_key), metric)
    kept = [(row, ours) for row in rows if (ours := row.ours(metric)) is not None]
    raw = [None if row.is_baseline or base_sum is None else fd.difference(ours, base_sum) for row, ours in kept]
    if metric == "R1":
        # the chapter's one Holm family (claims.chapter_family): the same adjusted p as its claims
        from mace_core.analysis.claims import chapter_family

        spec = spec_of(experiment)
        family = chapter_family(experiment, [r for row in rows for r in row.runs])
        diffs = [d if d is None else (family.get({spec.key(row.runs[0]): 1.0, spec.baseline_key: -1.0}) or d)
                 for (row, _), d in zip(kept, raw)]
    else:
        diffs = fd.holm(raw)           # another metric: its comparisons to the baseline, judged together
    return [fd.Entry(row.label, ours, diff, thesis_value(row.thesis, metric), thesis_base)
            for (row, ours), diff in zip(kept, diffs)]


def thesis_for(experiment: str):
    """``run -> thesis numbers | None`` for the training experiments (used by the comparison bars)."""
    spec = spec_of(experiment)
    return lambda run: spec.thesis.get(spec.key(run))

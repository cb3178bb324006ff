"""The notebooks' parameters: what each experiment's notebook accepts, checked before anything trains.

A notebook runs three ways: the study runner (papermill, ``variant`` = a YAML of ``params/<experiment>/``),
a user's papermill call (``-p backbone resnet34``, ``-p fraction 0.33``, ``-y '{overrides: {...}}'``) and
Run All in JupyterLab with the defaults. Its first code cell hands its namespace to
:func:`notebook_run` (per-run pages) or :func:`check_summary` (summary pages), which

* refuses a parameter the notebook does not declare (papermill itself only warns "Passed unknown
  parameter" and runs on, reporting the default model: a plausible-looking wrong result);
* checks every value (a fraction in (0, 1], a timm backbone of a supported family, a known occlusion
  type, a dotted config key that exists ...) and names the valid ones;
* picks the variant: a YAML that names the value (``backbone: resnet34`` -> ``params/01_backbones/x.yaml``
  whose ``model.backbone`` is resnet34), else an *ad-hoc variant*: the experiment's default variant
  plus the requested settings, trained once and cached by its config like every run.

Papermill writes the passed values into a cell that starts with ``# Parameters``, right after the
notebook's ``parameters`` cell; the names assigned there are the passed parameters. In an interactive
kernel IPython keeps every executed cell's source in ``In``, so that cell is found there.
"""
from __future__ import annotations

import ast
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from mace_core.config import RunConfig
from mace_core.errors import MaceError
from mace_core.study.variants import (Variant, find_params_dir, list_profiles, list_variants, resolve,
                                      seeds_of_variant, with_seed)

__all__ = ["NotebookRun", "notebook_run", "check_summary", "PARAMETERS", "passed_parameters", "runner_parameters"]

SUMMARY_PARAMETERS = ("profile", "params_dir", "runs_dir")
RUN_PARAMETERS = ("profile", "variant", "seed", "overrides", "params_dir", "runs_dir")
_PAPERMILL_HEADER = "# Parameters"


# -- value checks: each returns the normalised value or raises MaceError naming the valid values ------

def _one_of(name: str, valid: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in valid:
            raise MaceError(f"notebook parameter {name}={value!r} is not valid", f"use one of: {', '.join(valid)}")
        return value
    return check


def _list_of(name: str, item: Callable[[Any], Any]) -> Callable[[Any], list]:
    def check(value: Any) -> list:
        values = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
        if not isinstance(values, (list, tuple)) or not values:
            raise MaceError(f"notebook parameter {name}={value!r} must be a non-empty list",
                            f"pass e.g. -y '{{{name}: [...]}}' to papermill")
        return [item(v) for v in values]
    return check


def _backbone(value: Any) -> str:
    import timm

    from mace_core.models.backbones import FAMILIES, family_of

    if not isinstance(value, str) or not timm.is_model(value):
        raise MaceError(f"notebook parameter backbone={value!r} is not a timm model name",
                        "use a name from timm.list_models(), of a family the backbone factory supports: "
                        f"{', '.join(f + '*' for f in FAMILIES)} (e.g. resnet34, seresnet50, efficientnet_b0, tresnet_m)")
    try:
        family_of(value)  # a timm model of a family the factory cannot split
    except MaceError as exc:
        raise MaceError(f"notebook parameter backbone={value!r}: {exc.what}", exc.fix) from None
    return value


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= 1:
        raise MaceError(f"notebook parameter fraction={value!r} is not a fraction of the training identities",
                        "use a number in (0, 1], e.g. 0.33 for a third of the identities")
    return float(value)


def _pool_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MaceError(f"notebook parameter pool_sizes has {value!r}", "use positive integers, e.g. [1, 5, 10]")
    return value


def _attention(value: Any) -> str:
    from mace_core.models.attention import KINDS
    return _one_of("attention", KINDS)(value)


def _fusion(value: Any) -> str:
    from mace_core.models.fusion import KINDS
    return _one_of("fusion", KINDS)(value)


def _query_fusion(value: Any) -> str:
    from mace_core.engine.retrieval import FUSIONS
    return _one_of("fusions", FUSIONS)(value)


def _test_occlusion(value: Any) -> str:
    from mace_core.occlusion import KINDS
    return _one_of("occlusion_types", KINDS)(value)


def _train_occlusion(value: Any) -> str:
    from mace_core.occlusion import KINDS
    return _one_of("occlusion", ("none",) + KINDS)(value)


@dataclass(frozen=True)
class Param:
    """An experiment parameter: how to check it and what it changes (a training setting or a sweep)."""

    check: Callable[[Any], Any]
    help: str
    layer: Callable[[Any], dict[str, Any]] | None = None     # value -> params layer (trains a variant)
    match: Callable[[dict[str, Any], Any], bool] | None = None  # does a variant's own YAML name the value?
    sweep: tuple[str, str] | None = None                     # (study section, key) it replaces


def _get(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _occlusion_layer(kind: str) -> dict[str, Any]:
    if kind == "none":
        return {"data": {"occlusion_p": 0.0}}
    return {"data": {"occlusion_p": 0.5, "occlusion_types": [kind]}}   # p as the thesis's two stage-2 models


def _occlusion_match(layer: dict[str, Any], kind: str) -> bool:
    p = _get(layer, "data.occlusion_p") or 0.0
    return (p == 0.0) if kind == "none" else (p > 0 and _get(layer, "data.occlusion_types") == [kind])


@dataclass(frozen=True)
class Spec:
    default_variant: str
    params: dict[str, Param] = field(default_factory=dict)


PARAMETERS: dict[str, Spec] = {
    "00_baseline": Spec("baseline"),
    "01_backbones": Spec("resnet50", {"backbone": Param(
        _backbone, "any timm model of a supported family (resnet*, seresnet*, efficientnet_*, tresnet_*, convnext*)",
        layer=lambda v: {"model": {"backbone": v}}, match=lambda y, v: _get(y, "model.backbone") == v)}),
    "02_attention": Spec("cam", {"attention": Param(
        _attention, "none | cam | sam | dam",
        layer=lambda v: {"model": {"attention": v}},
        match=lambda y, v: (_get(y, "model.attention") or "none") == v)}),
    "03_fusion": Spec("concat", {"fusion": Param(
        _fusion, "concat | adaptive | transform",
        layer=lambda v: {"model": {"fusion": v}}, match=lambda y, v: (_get(y, "model.fusion") or "concat") == v)}),
    "04_multi_query": Spec("baseline", {
        "pool_sizes": Param(_list_of("pool_sizes", _pool_size), "query pool sizes n, e.g. [1, 5, 10]",
                            sweep=("multi_query", "n")),
        "fusions": Param(_list_of("fusions", _query_fusion), "avg | max | weighted, a list",
                         sweep=("multi_query", "fusion"))}),
    "05_data_efficiency": Spec("fraction_100", {"fraction": Param(
        _fraction, "identity fraction in (0, 1]",
        layer=lambda v: {"data": {"id_fraction": v}},
        match=lambda y, v: isinstance(_get(y, "data.id_fraction"), (int, float))
        and math.isclose(_get(y, "data.id_fraction"), v))}),
    "06_occlusion": Spec("baseline", {
        "occlusion": Param(_train_occlusion, "training augmentation: none | random_rect | horizontal_band | ...",
                           layer=_occlusion_layer, match=_occlusion_match),
        "occlusion_types": Param(_list_of("occlusion_types", _test_occlusion),
                                 "test-time occlusion types to sweep, a list", sweep=("occlusion", "types"))}),
}


def spec_of(experiment: str, params_dir) -> Spec:
    """An experiment's parameters; an experiment this module does not know takes ``variant`` and
    ``overrides`` only, with ``baseline`` (or its first variant) as the default."""
    if experiment in PARAMETERS:
        return PARAMETERS[experiment]
    names = list_variants(experiment, params_dir)
    return Spec("baseline" if "baseline" in names else names[0])


def runner_parameters(experiment: str, params_dir) -> dict[str, Any]:
    """The canonical defaults of every parameter a per-run notebook declares besides ``profile``,
    ``variant``, ``params_dir`` and ``runs_dir`` (which the study runner sets itself): ``seed`` None, no
    ``overrides``, each experiment parameter None (the variant's own value). The runner passes them all,
    so a value a user leaves in a notebook's parameters cell never changes a study page."""
    return {"seed": None, **{name: None for name in spec_of(experiment, params_dir).params}, "overrides": {}}


# -- which parameters were passed ---------------------------------------------------------------------

def passed_parameters(namespace: dict[str, Any]) -> list[str]:
    """Names papermill assigned in its injected ``# Parameters`` cell (none in a plain Run All)."""
    names: list[str] = []
    for source in namespace.get("In") or []:
        if not isinstance(source, str) or not source.lstrip().startswith(_PAPERMILL_HEADER):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def _refuse_unknown(label: str, namespace: dict[str, Any], declared: list[str]) -> None:
    unknown = sorted(set(passed_parameters(namespace)) - set(declared))
    if unknown:
        raise MaceError(f"{label} has no parameter {', '.join(unknown)}",
                        f"its parameters are: {', '.join(declared)}")


def _common(namespace: dict[str, Any]) -> tuple[str, str, str]:
    profile, params_dir, runs_dir = (namespace.get(k) for k in ("profile", "params_dir", "runs_dir"))
    for name, value in (("params_dir", params_dir), ("runs_dir", runs_dir)):
        if not isinstance(value, (str, Path)) or not str(value):
            raise MaceError(f"notebook parameter {name}={value!r} is not a folder", f"pass a path, e.g. {name}='params'")
    profiles = list_profiles(params_dir)
    if profile not in profiles:
        raise MaceError(f"notebook parameter profile={profile!r} is not a profile of {params_dir}/profiles",
                        f"use one of: {', '.join(profiles)}")
    return profile, str(params_dir), str(runs_dir)


def check_summary(experiment: str, namespace: dict[str, Any]) -> tuple[str, str, str]:
    """A summary page's parameters (profile, params_dir, runs_dir), checked; returns them."""
    _refuse_unknown(f"notebook {experiment}_summary", namespace, list(SUMMARY_PARAMETERS))
    return _common(namespace)


# -- overrides ----------------------------------------------------------------------------------------

def _check_key(dotted: str) -> None:
    cls: Any = RunConfig
    where = ""
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(cls):
            raise MaceError(f"override {dotted!r}: {where.rstrip('.')} is a value, not a section", "drop the extra part")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            raise MaceError(f"override key {dotted!r} is not a config key",
                            f"valid keys under {where.rstrip('.') or 'the config'}: "
                            f"{', '.join(where + n for n in fields)}")
        import typing
        cls = typing.get_type_hints(cls)[part]
        where += part + "."
    if dataclasses.is_dataclass(cls):
        raise MaceError(f"override key {dotted!r} names a whole section", f"name one of its keys, e.g. {dotted}.<key>")


def overrides_layer(overrides: Any) -> dict[str, Any]:
    """``{"train.epochs": 10, "data.root": "/x"}`` -> a nested params layer; unknown keys refused."""
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise MaceError(f"notebook parameter overrides={overrides!r} is not a mapping",
                        "pass e.g. -y '{overrides: {train.epochs: 10}}' to papermill")
    layer: dict[str, Any] = {}
    for dotted, value in overrides.items():
        if not isinstance(dotted, str) or dotted in ("name", "experiment"):
            raise MaceError(f"override key {dotted!r} cannot be set from a notebook", "use dotted config keys, e.g. train.epochs")
        _check_key(dotted)
        node = layer
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return layer


# -- the selected run ---------------------------------------------------------------------------------

@dataclass
class NotebookRun:
    """What a per-run notebook page shows: one resolved variant (a YAML or ad hoc) and its sweeps."""

    variant: Variant                      # resolved with the page's seed
    params_dir: str
    runs_dir: str
    adhoc: dict[str, Any] = field(default_factory=dict)   # the layer added to the default variant
    base: str = ""                        # the YAML the variant starts from
    passed: dict[str, Any] = field(default_factory=dict)  # experiment parameters the caller set

    @property
    def experiment(self) -> str:
        return self.variant.experiment

    @property
    def name(self) -> str:
        return self.variant.variant

    @property
    def study(self) -> dict[str, Any]:
        return self.variant.study

    @property
    def config(self):
        return self.variant.config

    def run(self, force: bool = False):
        """Train the variant unless its run is cached (same training config and code version)."""
        from mace_core.study.api import run_resolved
        return run_resolved(self.variant, self.runs_dir, self.params_dir, force)

    def run_seeds(self) -> list:
        """Every training-seed replicate of the variant (``study.seeds``), training those missing."""
        from mace_core.study.api import run_resolved
        return [run_resolved(with_seed(self.variant, s), self.runs_dir, self.params_dir)
                for s in seeds_of_variant(self.variant)]

    def evaluate(self, run=None, **eval_overrides: Any) -> dict[str, Any]:
        """A cached test-time evaluation (``multi_query=5, fusion="max"``, ``occlusion="upper_body"``)."""
        from mace_core.study.api import evaluate_run
        return evaluate_run(run if run is not None else self.run(), **eval_overrides)

    def describe(self) -> str:
        """One line for a YAML variant; the changed settings for an ad-hoc one; any changed sweep."""
        seed = self.config.train.seed
        if not self.adhoc:
            # short lines: the book shows this output in a column ~80 characters wide
            lines = [f"variant {self.name}", f"  file     params/{self.experiment}/{self.name}.yaml",
                     f"  profile  {self.variant.profile}, training seed {seed}"]
        else:
            cfg = self.config.to_dict()
            lines = [f"ad-hoc variant {self.name}", f"  base     params/{self.experiment}/{self.base}.yaml",
                     f"  profile  {self.variant.profile}, training seed {seed}", "  changed settings:"]
            lines += [f"    {key} = {_get(cfg, key)!r}" for key in _flatten(self.adhoc)]
        spec = spec_of(self.experiment, self.params_dir)
        for key, value in self.passed.items():
            if spec.params[key].sweep:
                section, item = spec.params[key].sweep
                lines.append(f"  test-time sweep {section}.{item} = {value!r}")
        return "\n".join(lines)

    def save_variant(self, name: str) -> Path:
        """Write the ad-hoc settings as ``params/<experiment>/<name>.yaml``: `make study` then trains it
        with every seed and shows it in the chapter's tables and finding."""
        if not name or not name.replace("_", "").isalnum() or not name.islower():
            raise MaceError(f"variant name {name!r} is not a lower-case file name", "use letters, digits and _")
        path = find_params_dir(self.params_dir) / self.experiment / f"{name}.yaml"
        if path.exists():
            raise MaceError(f"{path.name} already exists in params/{self.experiment}/", "choose another name")
        layer = dict(self.adhoc)
        if self.base != spec_of(self.experiment, self.params_dir).default_variant or not layer:
            raise MaceError("only an ad-hoc variant of the default variant can be saved", "pass parameters, not variant=")
        from mace_core.utils.atomic import atomic_write_text
        text = (f"# {self.experiment}: saved from a notebook ({', '.join(f'{k}={v!r}' for k, v in self.passed.items())}).\n"
                + yaml.safe_dump(layer, sort_keys=False))
        atomic_write_text(path, text)
        return path


def _flatten(layer: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in layer.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _adhoc_name(base: str, passed: dict[str, Any], overrides: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in passed.items()] + [f"{k}={v}" for k, v in (overrides or {}).items()]
    return f"{base}+" + ",".join(str(p).replace(" ", "") for p in parts)


def notebook_run(experiment: str, namespace: dict[str, Any], show: bool = True) -> NotebookRun:
    """The variant a per-run notebook shows, from its parameters (its ``globals()``); every check
    happens here, before anything trains."""
    spec = spec_of(experiment, namespace.get("params_dir", "params"))
    declared = list(RUN_PARAMETERS[:3]) + list(spec.params) + list(RUN_PARAMETERS[3:])
    _refuse_unknown(f"notebook {experiment}", namespace, declared)
    profile, params_dir, runs_dir = _common(namespace)
    variants = list_variants(experiment, params_dir)
    variant = namespace.get("variant")
    if variant is not None and variant not in variants:
        raise MaceError(f"notebook parameter variant={variant!r} names no YAML in params/{experiment}/",
                        f"use one of: {', '.join(variants)} (or None for {spec.default_variant})")
    passed = {k: spec.params[k].check(namespace[k]) for k in spec.params if namespace.get(k) is not None}
    overrides = namespace.get("overrides") or {}
    layer = overrides_layer(overrides)

    base = variant or spec.default_variant
    training = {k: v for k, v in passed.items() if spec.params[k].layer is not None}
    if training and variant is None:
        # a YAML of the experiment that names every value is that variant, not an ad-hoc copy of it
        from mace_core.config import read_yaml
        root = find_params_dir(params_dir)
        named = [n for n in variants
                 if all(spec.params[k].match(read_yaml(root / experiment / f"{n}.yaml"), v) for k, v in training.items())]
        if named:
            base, training = named[0], {}
    adhoc: dict[str, Any] = {}
    for key, value in training.items():
        adhoc = _merge(adhoc, spec.params[key].layer(value))
    adhoc = _merge(adhoc, layer)
    sweeps = {k: v for k, v in passed.items() if spec.params[k].sweep is not None}
    name = _adhoc_name(base, training, overrides) if adhoc else base
    extra = dict(adhoc)
    resolved = resolve(experiment, base, profile, params_dir, extra=extra or None, name=name)
    for key, value in sweeps.items():
        section, item = spec.params[key].sweep
        if section not in resolved.study:
            raise MaceError(f"notebook parameter {key} has no sweep to change in {experiment}/{base}",
                            f"give it with a variant that sweeps {section} (e.g. the default {spec.default_variant})")
        resolved.study = {**resolved.study, section: {**resolved.study[section], item: value}}
    seeds = seeds_of_variant(resolved)
    seed = namespace.get("seed")
    if seed is None:
        seed = seeds[0]
    elif isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise MaceError(f"notebook parameter seed={seed!r} is not a training seed", f"use one of {seeds} (or None)")
    elif seed not in seeds and not adhoc:
        raise MaceError(f"seed {seed} is not a training seed of {experiment}/{base} on profile {profile}",
                        f"use one of {seeds}, or add it to study.seeds in params/")
    out = NotebookRun(with_seed(resolved, seed), params_dir, runs_dir, adhoc, base, passed)
    if show:
        print(out.describe())
    return out


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    from mace_core.config import merge
    return merge(a, b)

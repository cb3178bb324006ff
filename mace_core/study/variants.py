"""Resolve a study variant (experiment + variant name + profile) to one validated RunConfig.

params/ layout (plain YAML only)::

    params/profiles/<profile>.yaml                          profile layer (dataset, sizes, schedule)
    params/<experiment>/<variant>.yaml                      variant layer (what the variant changes)
    params/profiles/<profile>/<experiment>/<variant>.yaml   optional profile-specific override layer

Layers merge in that order (later wins). Each file holds RunConfig keys plus an optional ``study:``
section that never reaches RunConfig (so RunConfig stays strict): a profile may say
``study: {extends: smoke}`` to start from another profile, and a variant may describe a test-time
sweep (``study: {multi_query: ...}``, ``study: {occlusion: ...}``) that reuses a trained run.

One exception to key-by-key merging: ``model.backbone_kwargs`` belongs to the backbone named beside it,
so a layer that sets ``model.backbone`` replaces the kwargs (with its own, or none) instead of merging
into the previous backbone's.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mace_core.config import RunConfig, from_dict, merge, merge_layer, read_yaml
from mace_core.errors import MaceError
from mace_core.study.pretrain import EXPERIMENT, PRETRAINED_SYNTHETIC, pretraining_config, weights_path

EXPERIMENT_RE = re.compile(r"^\d\d_[a-z0-9_]+$")
DATA_ROOT_ENV = "MACE_DATA_ROOT"   # set by the study runner (--data-root) for the notebook kernels
LLCM_ROOT_ENV = "MACE_LLCM_ROOT"   # set by the study runner (--llcm-root): enables the LLCM layer
# Optional experiment layers: part of the study only while their environment variable is set (the
# runner sets it from its option), because their data is not the profile's dataset.
OPTIONAL_EXPERIMENTS = {"07_llcm": LLCM_ROOT_ENV}


@dataclass
class Variant:
    """A resolved (experiment, variant, profile) triple."""

    experiment: str
    variant: str
    profile: str
    config: RunConfig
    study: dict[str, Any] = field(default_factory=dict)
    layers: list[Path] = field(default_factory=list)
    pretrain: "Variant | None" = None   # the pretraining run of model.pretrained: synthetic (study/pretrain.py)


def find_params_dir(params_dir: str | Path = "params") -> Path:
    """``params_dir`` as an absolute path; a relative one is also looked up in the parent folders of
    the working directory, so a notebook opened from ``notebooks/`` finds the project's params/."""
    path = Path(params_dir).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        cwd = Path.cwd()
        candidates = [base / path for base in (cwd, *cwd.parents)]
    for candidate in candidates:
        if (candidate / "profiles").is_dir():
            return candidate.resolve()
    raise MaceError(f"params directory {params_dir!r} not found (no profiles/ folder in it, searched from {Path.cwd()})",
                    "run from the project root or pass params_dir=/path/to/params")


def project_root(params_dir: str | Path) -> Path:
    """Relative runs/ and data paths are taken relative to the folder that holds params/."""
    return find_params_dir(params_dir).parent


def resolve_path(path: str | Path, params_dir: str | Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root(params_dir) / path


def list_profiles(params_dir: str | Path = "params") -> list[str]:
    return sorted(p.stem for p in (find_params_dir(params_dir) / "profiles").glob("*.yaml"))


def list_experiments(params_dir: str | Path = "params", optional: bool | None = None) -> list[str]:
    """Experiment folders of params/. An optional layer (:data:`OPTIONAL_EXPERIMENTS`) is listed when
    ``optional`` is true, or, by default, when its environment variable (e.g. MACE_LLCM_ROOT) is set."""
    root = find_params_dir(params_dir)
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and EXPERIMENT_RE.match(p.name))
    return [n for n in names if n not in OPTIONAL_EXPERIMENTS
            or (optional if optional is not None else bool(os.environ.get(OPTIONAL_EXPERIMENTS[n])))]


def list_variants(experiment: str, params_dir: str | Path = "params") -> list[str]:
    """Variant names of an experiment, sorted; ``baseline`` (if present) first."""
    root = find_params_dir(params_dir)
    folder = root / experiment
    if not folder.is_dir():
        raise MaceError(f"experiment {experiment!r} has no folder in {root}",
                        f"use one of: {', '.join(list_experiments(root)) or '(none)'}")
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    return sorted(names, key=lambda n: (n != "baseline", n))


def _split(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    data = dict(data)
    study = data.pop("study", None) or {}
    if not isinstance(study, dict):
        raise MaceError(f"'study:' section must be a mapping, got {study!r}", "write study: {key: value}")
    return data, study


def _profile_chain(root: Path, profile: str, seen: tuple[str, ...] = ()) -> list[str]:
    """``[base, ..., profile]`` following ``study.extends``."""
    path = root / "profiles" / f"{profile}.yaml"
    if not path.is_file():
        raise MaceError(f"profile {profile!r} not found ({path})",
                        f"use one of: {', '.join(list_profiles(root)) or '(none)'}")
    if profile in seen:
        raise MaceError(f"profile {profile!r} extends itself through {' -> '.join(seen)}", "remove the cycle")
    _, study = _split(read_yaml(path))
    parent = study.get("extends")
    chain = _profile_chain(root, parent, seen + (profile,)) if parent else []
    return chain + [profile]


def resolve(experiment: str, variant: str, profile: str, params_dir: str | Path = "params",
            extra: dict[str, Any] | None = None, name: str | None = None, pretraining: bool = True) -> Variant:
    """Merge profile chain, variant and profile overrides; validate; absolutise ``data.root``.

    ``extra`` is one more layer merged last (a notebook's ad-hoc settings, e.g. another backbone); it may
    hold a ``study:`` section like a file. ``name`` labels the result (default: the variant's name).
    ``model.pretrained: synthetic`` becomes the path of the backbone that the study pretrains for this
    variant (:mod:`mace_core.study.pretrain`; ``pretraining=False`` leaves it as written)."""
    root = find_params_dir(params_dir)
    variant_file = root / experiment / f"{variant}.yaml"
    if not variant_file.is_file():
        raise MaceError(f"variant {variant!r} of experiment {experiment!r} not found ({variant_file})",
                        f"use one of: {', '.join(list_variants(experiment, root))}")
    chain = _profile_chain(root, profile)
    layers = [root / "profiles" / f"{p}.yaml" for p in chain] + [variant_file]
    layers += [f for p in chain if (f := root / "profiles" / p / experiment / f"{variant}.yaml").is_file()]
    out = _merged(layers, extra, experiment, name or variant, profile, root)
    seeds_of_variant(out)  # validate study.seeds early, with the layer names in the message
    if pretraining and out.config.model.pretrained == PRETRAINED_SYNTHETIC:
        out = _with_pretraining(out, root)
    return out


def _merged(layers: list[Path], extra: dict[str, Any] | None, experiment: str, name: str, profile: str,
            root: Path) -> Variant:
    """The layers merged in order (then ``extra``), validated, ``data.root`` absolutised."""
    merged: dict[str, Any] = {}
    study: dict[str, Any] = {}
    for layer in [*(read_yaml(f) for f in layers), *([extra] if extra else [])]:
        data, section = _split(layer)
        merged = merge_layer(merged, data)
        study = merge(study, section)
    study.pop("extends", None)
    # Labels come from the file names, never from the YAML, so a run is always named for what ran it.
    merged = merge(merged, {"name": name, "experiment": experiment})
    # LLCM configs take their root from --llcm-root (MACE_LLCM_ROOT), the others from --data-root
    root_env = LLCM_ROOT_ENV if (merged.get("data") or {}).get("dataset") == "llcm" else DATA_ROOT_ENV
    if os.environ.get(root_env):
        merged = merge(merged, {"data": {"root": os.environ[root_env]}})
    try:
        cfg = from_dict(merged)
    except MaceError as exc:
        raise MaceError(f"{experiment}/{name} on profile {profile}: {exc.what}", exc.fix) from None
    cfg.data.root = str(resolve_path(cfg.data.root, root))
    # the data says whether it is synthetic (its generator's marker), not the profile; a folder that is
    # not there yet (a synthetic set generated on first use) keeps the profile's label
    from mace_core.data.synthetic import source_of
    cfg.data.source = source_of(cfg.data.root) or cfg.data.source
    return Variant(experiment, name, profile, cfg, study, layers)


def _with_pretraining(v: Variant, root: Path) -> Variant:
    """``v`` starting from the backbone its pretraining run exports (its path is part of the run key).
    The pretraining starts from the profile's own settings (its layers alone, no variant's), so every
    variant with the same backbone shares it."""
    base = _merged([root / "profiles" / f"{p}.yaml" for p in _profile_chain(root, v.profile)], None,
                   EXPERIMENT, "profile", v.profile, root)
    pre_cfg = pretraining_config(v, base)
    pre = Variant(EXPERIMENT, pre_cfg.name, v.profile, pre_cfg, {}, base.layers)
    model = dataclasses.replace(v.config.model, pretrained=str(weights_path(pre_cfg)))
    return dataclasses.replace(v, config=dataclasses.replace(v.config, model=model), pretrain=pre)


def ensure_synthetic_like(v: Variant) -> Path | None:
    """Generate the variant's synthetic ``--like`` tree (``study.synthetic_like``: ``like`` plus the
    arguments of ``mace data synth --like``, e.g. the smoke profile's small LLCM-like set) when its
    folder is missing, so a notebook runs with its defaults. An existing folder is never rewritten: real
    data, or a tree the user generated with other parameters (``--llcm-root data/llcm-like``)."""
    spec = v.study.get("synthetic_like")
    if not spec or v.config.data.source != "synthetic":
        return None
    if not isinstance(spec, dict) or "like" not in spec:
        raise MaceError(f"{v.experiment}/{v.variant} on profile {v.profile}: study.synthetic_like must be a mapping "
                        f"with 'like', got {spec!r}", "write e.g. `study: {synthetic_like: {like: llcm, scale: 0.05}}`")
    from mace_core.data.synthetic_like import generate_like
    from mace_core.study.registry import run_lock

    root = Path(v.config.data.root)
    kwargs = {k: val for k, val in spec.items() if k != "like"}
    if root.exists():
        return None
    with run_lock(root):   # parallel study jobs generate it once
        if not root.exists():
            import sys
            print(f"generating the synthetic {spec['like']}-like dataset into {root} ...", file=sys.stderr)
            generate_like(spec["like"], root, **kwargs)
    return root


def seeds_of_variant(v: Variant) -> list[int]:
    """The training seeds the study trains this variant with: ``study.seeds`` (profile or variant
    layer, later wins), else the config's own ``train.seed``. Each seed is a separate run."""
    seeds = v.study.get("seeds")
    if seeds is None:
        return [int(v.config.train.seed)]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
            or len(set(seeds)) != len(seeds)):
        raise MaceError(f"{v.experiment}/{v.variant} on profile {v.profile}: study.seeds must be a non-empty list of "
                        f"distinct non-negative integers, got {seeds!r}",
                        f"write e.g. `study: {{seeds: [0, 1, 2]}}` in one of: {', '.join(str(p.name) for p in v.layers)}")
    return sorted(seeds)


def with_seed(v: Variant, seed: int) -> Variant:
    """The variant trained with training seed ``seed`` (the seed is part of the config, hence of the
    run key: each seed is its own cached run)."""
    cfg = dataclasses.replace(v.config, train=dataclasses.replace(v.config.train, seed=int(seed)))
    return dataclasses.replace(v, config=cfg)

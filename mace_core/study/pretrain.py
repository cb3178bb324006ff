"""The smoke profile's stand-in for ImageNet weights: a backbone pretrained by the study on synthetic
identities that the study's own data does not contain (methods page, "The smoke profile").

The thesis fine-tunes ImageNet-pretrained backbones. The CPU profiles have no ImageNet weights at their
reduced widths, and from random init a run needs ~300 steps to learn the synthetic task; from a
pretrained backbone 42 steps reach more (measured: methods page), so eight seeds of every variant fit
the CPU budget. ``model.pretrained: synthetic`` asks for this. The study then:

1. generates the profile's ``study.pretrain.synthetic`` set (the generator of the embedded dataset,
   with another generator seed, so its people are new draws and none is a test identity) beside the
   study's data root (``<data root>-pretrain``);
2. trains the profile's own settings (its layers alone: the baseline, no variant's changes) with the
   variant's backbone (and input size) on it: an ordinary, cached run keyed by its config
   (``study.pretrain.train`` overrides the schedule: 402 steps on the smoke profile);
3. exports that run's backbone as timm weights (:func:`mace_core.models.export.save_backbone`) to
   ``<pretraining root>/weights/<run key>.safetensors``; the variant's ``model.pretrained`` is that
   path, so its run key changes whenever the pretraining would.

Every variant with the same backbone shares one pretraining (attention, fusion, fractions, occlusion
training start from the same weights, as they would from ImageNet's); its attention blocks, heads and
classifiers start from random init.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from mace_core.config import from_dict, merge_layer
from mace_core.errors import MaceError

PRETRAINED_SYNTHETIC = "synthetic"   # the model.pretrained value that asks for the study's pretraining
EXPERIMENT = "pretrain"              # the experiment label of pretraining runs (runs table, study.json)
_SPEC_KEYS = ("synthetic", "train")


def _spec(study: dict[str, Any], where: str) -> dict[str, Any]:
    spec = study.get("pretrain")
    if not isinstance(spec, dict) or not isinstance(spec.get("synthetic"), dict):
        raise MaceError(f"{where}: model.pretrained is '{PRETRAINED_SYNTHETIC}' but study.pretrain is "
                        f"{'missing' if spec is None else repr(spec)}",
                        "give study.pretrain: {synthetic: {<mace data synth arguments>, seed: N}, train: {...}} "
                        "in the profile, or set model.pretrained to none, imagenet, a timm tag or a file")
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise MaceError(f"{where}: unknown study.pretrain key(s) {', '.join(unknown)}", f"valid: {', '.join(_SPEC_KEYS)}")
    own = study.get("synthetic") or {}
    if spec["synthetic"].get("seed", 0) == own.get("seed", 0):
        raise MaceError(f"{where}: study.pretrain.synthetic uses the generator seed of the study's own data "
                        f"({own.get('seed', 0)}), so it would draw the same people, test identities included",
                        "give study.pretrain.synthetic another seed")
    return spec


def pretraining_root(data_root: str | Path) -> Path:
    """Where the pretraining set of a study whose data lives in ``data_root`` is generated."""
    root = Path(data_root)
    return root.with_name(f"{root.name}-pretrain")


def pretraining_config(v, base) -> Any:
    """The pretraining run for variant ``v``: ``base`` (the profile's own layers merged, no variant's,
    without this substitution) with ``v``'s backbone and input size, on the pretraining set, with
    ``study.pretrain.train`` applied. Validated like any RunConfig (unknown keys are errors)."""
    spec = _spec(v.study, f"{v.experiment}/{v.variant} on profile {v.profile}")
    model, data = v.config.model, v.config.data
    layer = {
        "name": f"{EXPERIMENT}_{model.backbone}", "experiment": EXPERIMENT,
        "model": {"backbone": model.backbone, "backbone_kwargs": dict(model.backbone_kwargs or {}),
                  "last_stride1": model.last_stride1, "pretrained": "none"},
        "data": {"root": str(pretraining_root(base.config.data.root)), "source": "synthetic",
                 "height": data.height, "width": data.width},
        "train": {"channels_last": v.config.train.channels_last, **(spec.get("train") or {})},
    }
    try:
        return from_dict(merge_layer(base.config.to_dict(), layer))   # a named backbone brings its own kwargs
    except MaceError as exc:
        raise MaceError(f"study.pretrain of profile {v.profile}: {exc.what}", exc.fix) from None


def weights_path(pre_cfg) -> Path:
    """The exported backbone of pretraining run ``pre_cfg`` (named by its run key)."""
    from mace_core.study.registry import run_key

    return Path(pre_cfg.data.root) / "weights" / f"{run_key(pre_cfg)}.safetensors"


def ensure_pretraining_data(v) -> Path | None:
    """Generate the variant's pretraining set when missing or different (``None`` without pretraining)."""
    if v.pretrain is None:
        return None
    from mace_core.data.synthetic import MARKER, generate
    from mace_core.study.registry import run_lock

    root = Path(v.pretrain.config.data.root)
    with run_lock(root):   # parallel study jobs generate it once
        if not (root / MARKER).is_file():
            print(f"generating the synthetic pretraining set into {root} ...", file=sys.stderr)
        generate(root, **v.study["pretrain"]["synthetic"])   # reused when its parameters match
    return root


def ensure_pretrained(v, runs_dir, params_dir) -> Path | None:
    """The weights file ``v`` starts from, pretraining (once, under a lock) when it is missing."""
    if v.pretrain is None:
        return None
    from mace_core.models.export import save_backbone
    from mace_core.study.api import run_resolved
    from mace_core.study.registry import run_lock

    path = Path(v.config.model.pretrained)
    if path.is_file():
        return path
    # the data first: the weights' lock folder lives inside the pretraining root, and the generator
    # refuses a folder that already holds something other than its own dataset
    ensure_pretraining_data(v)
    with run_lock(path):
        if not path.is_file():
            result = run_resolved(v.pretrain, runs_dir, params_dir)
            net, _ = result.load_model("cpu")
            save_backbone(net, path)
    return path


def without_pretraining(v):
    """``v`` from random init (for timing a step, where the weights do not matter)."""
    cfg = dataclasses.replace(v.config, model=dataclasses.replace(v.config.model, pretrained="none"))
    return dataclasses.replace(v, config=cfg, pretrain=None)

"""One typed configuration, read from layered YAML files plus ``--set key=value`` overrides.

Layers are merged left to right (later wins, dicts merge key by key), then converted to
:class:`RunConfig`. Unknown keys and wrong types raise :class:`MaceError` listing the valid keys,
so a typo in a params file never silently falls back to a default.

Defaults follow the thesis (chapters 2-3) where it is unambiguous; where it contradicts itself the
default is documented on the field and in the book's methods page.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mace_core.errors import MaceError

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class DataConfig:
    dataset: str = "sysu"                 # sysu | regdb | llcm
    root: str = "data/synthetic-sysu"
    source: str = "synthetic"             # synthetic | real: printed next to every metric
    height: int = 288
    width: int = 144
    include_val: bool = True              # SYSU training ids = train + val (395), AGW's set
    trial: int = 1                        # RegDB trial (1..10): one model per trial
    id_fraction: float = 1.0              # experiment 5: seeded, nested identity subsets
    fraction_seed: int = 0
    ids_per_batch: int = 8                # P identities per batch ...
    images_per_id: int = 4                # ... x K images per modality
    pad: int = 10
    random_erasing: float = 0.0
    rgb_grayscale_p: float = 0.0          # random grayscale on RGB inputs (helps bridge the modality gap)
    occlusion_p: float = 0.0              # experiment 6: occlusion-augmented training probability
    occlusion_types: list[str] = field(default_factory=lambda: ["random_rect", "horizontal_band"])
    occlusion_fill: str = "zero"
    cache_dir: str | None = None          # where pre-resized arrays live; default beside the dataset
    workers: int = 4
    pin_memory: bool = True
    persistent_workers: bool = True


@dataclass
class ModelConfig:
    backbone: str = "resnet50"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to timm.create_model
    pretrained: str = "imagenet"          # timm tag (e.g. resnet50.tv_in1k) | imagenet (timm's default tag for
                                          # the backbone) | none (random init) | PATH to a local weights file
    specific_stages: int = 0              # 0 = stem only (thesis §2.4.1, AGW); 1, 2 = also first stages
    last_stride1: bool = True
    pooling: str = "avg"                  # avg | gem
    gem_p: float = 3.0
    head_dim: int | None = None           # channels of phi_V/phi_I/phi_S; None = trunk channels
    attention: str = "none"               # none | cam | sam | dam
    attention_positions: list[str] = field(default_factory=lambda: ["stem", "prepool"])
    fusion: str = "concat"                # concat | adaptive | transform
    retrieval_feature: str = "fused"      # fused | pool | shared
    concat_bn: str = "necks"              # concat fusion's BN: necks (the two BN necks side by side, 2D) |
                                          # single (one BN over the 2D concatenation, thesis §3.6 wording)
    normalize_feature: bool = True


@dataclass
class LossConfig:
    id_weight: float = 1.0                # lambda_1
    kd_weight: float = 1.0                # lambda_2 (fixed value, or the ramp's maximum)
    kd_schedule: str = "sigmoid"          # sigmoid (thesis 2.4.5: ramp to 1.0 over 60 epochs) | fixed (thesis exp 0: 0.1)
    kd_rampup_epochs: int = 60
    kd_temperature: float = 3.0           # T of eqs 7-8 (thesis gives no value; 3 as Ye's DDAG/CAJ code)
    kd_t2_scaling: bool = True            # multiply the KD weights by T^2 (DDAG/CAJ code; thesis eq 7 prints
                                          # none): effective weight lambda_2 * T^2 = 9 * kd_weight at T = 3
    kd_detach_teacher: bool = True
    ens_kd_weight: float = 0.0            # lambda_3: MACE abstract's ensemble learning (ensemble output ->
                                          # each classifier); 0 = off = the thesis's equations
    ens_kd_schedule: str = "sigmoid"      # sigmoid | fixed, as kd_schedule
    ens_kd_rampup_epochs: int = 60
    triplet_weight: float = 1.0
    triplet_margin: float = 0.3
    label_smoothing: float = 0.0


@dataclass
class TrainConfig:
    optimizer: str = "sgd"                # sgd | adamw
    lr: float = 0.1
    backbone_lr_mult: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    scheduler: str = "step"               # step (warm-up, x gamma at milestones) | cosine
    warmup_epochs: int = 10
    milestones: list[int] = field(default_factory=lambda: [20, 30])
    gamma: float = 0.1
    epochs: int = 60
    steps_per_epoch: int | None = None    # None = AGW's epoch length (~max(#RGB, #IR) / (P*K))
    grad_accum: int = 1
    early_stop_patience: int = 0          # 0 = off; counts eval rounds without improvement of the selection metric
    amp: str = "auto"                     # auto (bf16 on CUDA, off on CPU) | off | bf16 | fp16
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"                  # auto | cpu | cuda | cuda:N
    seed: int = 0
    deterministic: bool = True            # true: bit-reproducible kernels (no NaN-filling of new tensors);
                                          # false = "fast": cuDNN autotune, no deterministic algorithms
    threads: int | None = None            # torch CPU threads for this run (None = torch's default); 1 when
                                          # several CPU runs share a machine (oversubscription is 10x slower)
    eval_every: int = 0                   # evaluate every k epochs (0 = only after the last)
    checkpoint_every: int = 1             # write checkpoints/last.pt every k epochs and after the last one;
                                          # a run killed in between resumes (bit-identical) from the last write
    select_on_test: bool = False          # thesis convention "best epoch on test"; labelled when on
    log_every: int = 20                   # steps between host reads of the loss sums (progress bar, DDP check)


@dataclass
class EvalConfig:
    mode: str = "all"                     # all | indoor (SYSU)
    gallery: str = "agw"                  # agw | official
    perm_file: str | None = None
    shots: int = 1
    trials: int = 10
    distance: str = "cosine"              # cosine | euclidean
    flip: bool = False
    direction: str | None = None          # None = the dataset's standard: SYSU ir2rgb (rgb2ir: non-standard
                                          # reverse), RegDB v2t (or t2v)
    occlusion: str | None = None          # test-time occlusion of IR queries
    occlusion_fill: str = "zero"
    occlusion_seed: int = 0
    multi_query: int | None = None
    fusion: str = "avg"                   # avg | max | weighted
    batch_size: int = 128
    amp: str | None = None                # autocast of the evaluation: None = as train.amp | auto | off | bf16 | fp16
    rerank: bool = False                  # k-reciprocal re-ranking (Zhong et al. 2017); results say "re-ranked"
    rerank_k1: int = 20
    rerank_k2: int = 6
    rerank_lambda: float = 0.3


@dataclass
class RunConfig:
    name: str = "baseline"
    experiment: str = "00_baseline"
    output_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Loading, merging, validation

def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _check_value(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` converted to ``tp`` (int -> float allowed) or raise naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_value(value, option, where)
            except MaceError as exc:
                errors.append(exc)
        raise errors[0] if errors else MaceError(f"{where}: None is not allowed")
    if origin is list:
        if not isinstance(value, list):
            raise MaceError(f"{where}: expected a list, got {value!r}", "write it as a YAML list, e.g. [a, b]")
        (item_tp,) = typing.get_args(tp)
        return [_check_value(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise MaceError(f"{where}: expected a mapping, got {value!r}", "write it as a YAML mapping")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string; it is a number to the user
    if tp is bool and not isinstance(value, bool):
        raise MaceError(f"{where}: expected true/false, got {value!r}", "use true or false")
    if tp is int and isinstance(value, bool):
        raise MaceError(f"{where}: expected an integer, got {value!r}", "use a whole number")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise MaceError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}",
                        f"give a {tp.__name__} value")
    return value


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise MaceError(f"{where or 'config'}: expected a mapping, got {data!r}", "check the YAML indentation")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise MaceError(f"unknown key(s) {', '.join(where + k for k in unknown)}",
                        f"valid keys here: {', '.join(where + k for k in valid)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if _is_dataclass_type(tp):
            kwargs[name] = _build(tp, value, f"{where}{name}.")
        else:
            kwargs[name] = _check_value(value, tp, where + name)
    return cls(**kwargs)


def merge_layer(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """One params layer over the merged ones: :func:`merge`, except that a layer naming a backbone
    starts that backbone's ``backbone_kwargs`` afresh (ResNet widths mean nothing to an EfficientNet)."""
    model = layer.get("model")
    if isinstance(model, dict) and "backbone" in model and isinstance(base.get("model"), dict):
        base = {**base, "model": {**base["model"], "backbone_kwargs": {}}}
    return merge(base, layer)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# libyaml's safe loader where PyYAML was built with it: the same documents, ~10x faster to parse (a
# study resolves its variants' YAML chains some 600 times: 6 of a cached re-run's 27 s in pure Python)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MaceError(f"params file {path} does not exist", "check the path (params/ holds the study's YAML files)")
    try:
        data = yaml.load(path.read_text(), Loader=_SAFE_LOADER) or {}
    except yaml.YAMLError as exc:
        raise MaceError(f"params file {path} is not valid YAML ({exc.__class__.__name__}: {exc})",
                        "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise MaceError(f"params file {path} must hold a mapping at top level", "write key: value pairs")
    return data


def parse_override(text: str) -> dict[str, Any]:
    """``train.epochs=5`` -> ``{"train": {"epochs": 5}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise MaceError(f"override {text!r} is not key=value", "write e.g. --set train.epochs=5")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    out: dict[str, Any] = value
    for part in reversed(key.strip().split(".")):
        out = {part: out}
    return out


def from_dict(data: dict[str, Any]) -> RunConfig:
    return _build(RunConfig, data, "")


def load_config(layers: list[str | Path | dict[str, Any]] = (), overrides: list[str] = ()) -> RunConfig:
    """Merge YAML files / dicts left to right, apply ``key=value`` overrides, validate, return the config.

    A top-level ``study:`` section in a params file belongs to the study runner (sweeps, profile
    inheritance) and is skipped here, so `mace train --params params/profiles/smoke.yaml ...` works."""
    merged: dict[str, Any] = {}
    for layer in layers:
        data = dict(layer) if isinstance(layer, dict) else read_yaml(layer)
        data.pop("study", None)
        merged = merge_layer(merged, data)
    for text in overrides:
        merged = merge_layer(merged, parse_override(text))
    return from_dict(merged)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    from mace_core.utils.atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

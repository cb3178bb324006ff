"""The study's own pretraining (``model.pretrained: synthetic``, study/pretrain.py) and the backbone
export it relies on (models/export.py)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from mace_core.errors import MaceError
from mace_core.models import build_model
from mace_core.models.export import backbone_state_dict, save_backbone
from mace_core.study import planning, pretrain
from mace_core.study.variants import DATA_ROOT_ENV, resolve, with_seed
from tests._models_helpers import TINY_BACKBONES, tiny_config

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params"


def _randomised(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=gen))
    return net


@pytest.mark.parametrize("family", ["resnet", "seresnet", "efficientnet", "tresnet"])
@pytest.mark.parametrize("overrides", [{}, {"attention": "dam", "attention_positions": ["stem", "prepool"]},
                                       {"specific_stages": 1}], ids=["plain", "attention", "specific-stage"])
def test_an_exported_backbone_loads_into_a_new_network_exactly(tmp_path, family, overrides):
    """Export, then load as ``model.pretrained: FILE``: both streams start from the RGB stream's stem and
    specific stages, the trunk equals the trained trunk, and nothing else is taken over."""
    if family == "efficientnet" and overrides.get("specific_stages"):
        pytest.skip("covered by the resnet families")
    trained = _randomised(build_model(tiny_config(family, **overrides), 6), seed=3)
    path = save_backbone(trained, tmp_path / "w" / "backbone.safetensors")
    assert path.is_file() and not list(path.parent.glob(".*partial"))
    torch.manual_seed(7)
    fresh = build_model(tiny_config(family, pretrained=str(path), **overrides), 9)   # other class count
    assert fresh.pretrained_weights.startswith("file backbone.safetensors sha256:")
    a, b = trained.state_dict(), fresh.state_dict()
    rgb_backbone = [k for k in a if k.startswith("specific.rgb.") and ".attn." not in k]
    assert rgb_backbone
    for key in rgb_backbone:
        assert torch.equal(a[key], b[key]), key
        assert torch.equal(a[key], b[key.replace("specific.rgb.", "specific.ir.")]), key   # IR starts from RGB's
    for key in (k for k in a if k.startswith("trunk.")):
        assert torch.equal(a[key], b[key]), key
    new_layers = [k for k in a if not k.startswith(("specific.", "trunk.")) or ".attn." in k]
    assert any(not torch.equal(a[k], b[k]) for k in new_layers if a[k].shape == b[k].shape and a[k].is_floating_point())


def test_the_export_has_exactly_the_timm_backbone_keys():
    trained = build_model(tiny_config("resnet"), 6)
    state = backbone_state_dict(trained)
    import timm

    name, kwargs = TINY_BACKBONES["resnet"]
    assert set(state) == set(timm.create_model(name, pretrained=False, num_classes=0, **kwargs).state_dict())
    assert not any(k.startswith("fc.") for k in state)


def test_a_last_stride_1_convnext_is_refused_with_the_fix():
    net = build_model(tiny_config("convnext", last_stride1=True), 6)
    with pytest.raises(MaceError, match="last_stride1=false"):
        backbone_state_dict(net)


def test_synthetic_outside_the_study_is_a_clear_error():
    with pytest.raises(MaceError, match="only the study resolves it") as info:
        build_model(tiny_config("resnet", pretrained="synthetic"), 6)
    assert "model.pretrained=none" in info.value.fix


# ---------------------------------------------------------------- resolution in the study
def test_variants_with_one_backbone_share_one_pretraining_and_its_path_keys_their_runs():
    from mace_core.study.registry import run_key

    base = resolve("00_baseline", "baseline", "smoke", PARAMS)
    same = [resolve(e, v, "smoke", PARAMS) for e, v in
            [("02_attention", "cam"), ("03_fusion", "adaptive"), ("05_data_efficiency", "fraction_10"),
             ("06_occlusion", "occlusion_random_rect")]]
    assert {x.config.model.pretrained for x in same} == {base.config.model.pretrained}
    assert with_seed(base, 3).pretrain == base.pretrain   # every seed starts from the same weights
    other = resolve("01_backbones", "tresnet_m", "smoke", PARAMS)
    assert other.config.model.pretrained != base.config.model.pretrained
    # a different pretraining is a different weights file, hence a different run of the variant
    longer = resolve("00_baseline", "baseline", "smoke", PARAMS,
                     extra={"study": {"pretrain": {"train": {"steps_per_epoch": 7}}}})
    assert longer.pretrain.config.train.steps_per_epoch == 7
    assert longer.config.model.pretrained != base.config.model.pretrained
    assert run_key(longer.config) != run_key(base.config)
    raw = resolve("00_baseline", "baseline", "smoke", PARAMS, pretraining=False)
    assert raw.config.model.pretrained == "synthetic" and raw.pretrain is None


def test_the_pretraining_root_follows_the_study_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "mine"))
    v = resolve("02_attention", "sam", "ci", PARAMS)
    assert Path(v.pretrain.config.data.root) == tmp_path / "mine-pretrain"
    assert Path(v.config.model.pretrained).parent == tmp_path / "mine-pretrain" / "weights"


@pytest.mark.parametrize("study, match, fix", [
    ({"pretrain": {"synthetic": {"seed": 0}}}, "same people", "another seed"),
    ({"pretrain": {"synthetic": {"seed": 1}, "steps": 5}}, "unknown study.pretrain key", "synthetic, train"),
    ({"pretrain": {"synthetic": {"seed": 1}, "train": {"stepz": 5}}}, "stepz", "steps_per_epoch"),
])
def test_bad_pretraining_settings_name_the_setting_and_the_fix(study, match, fix):
    with pytest.raises(MaceError, match=match) as info:
        resolve("00_baseline", "baseline", "smoke", PARAMS, extra={"study": study})
    assert fix in info.value.fix


def test_synthetic_without_a_pretraining_spec_says_what_to_write(tmp_path):
    v = resolve("00_baseline", "baseline", "smoke", PARAMS, pretraining=False)
    v = dataclasses.replace(v, study={k: val for k, val in v.study.items() if k != "pretrain"})
    with pytest.raises(MaceError, match="study.pretrain is missing") as info:
        pretrain.pretraining_config(v, v)
    assert "model.pretrained to none" in info.value.fix


def test_jobs_that_first_need_a_pretraining_start_first(tmp_path):
    built = tmp_path / "built.safetensors"
    built.write_bytes(b"x")
    jobs = [planning.SeedRun("e", "a", 0, "k0", tmp_path / "k0", str(tmp_path / "w1")),
            planning.SeedRun("e", "b", 0, "k1", tmp_path / "k1", str(tmp_path / "w1")),
            planning.SeedRun("e", "c", 0, "k2", tmp_path / "k2", None),
            planning.SeedRun("e", "d", 0, "k3", tmp_path / "k3", str(built)),
            planning.SeedRun("e", "f", 0, "k4", tmp_path / "k4", str(tmp_path / "w2"))]
    assert [j.variant for j in planning.pretraining_first(jobs)] == ["a", "f", "b", "c", "d"]


# ---------------------------------------------------------------- one pretraining, trained once
def test_the_study_pretrains_once_and_every_variant_of_that_backbone_starts_from_it(tmp_path, monkeypatch):
    from mace_core.study import api, runner

    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "synthetic-ci"))
    monkeypatch.chdir(REPO)
    runner.ensure_data("ci", PARAMS)
    assert (tmp_path / "synthetic-ci-pretrain" / "synthetic.json").is_file()   # `mace study data` makes both
    trained = []
    real_train = api._train

    def counting(cfg, run_dir, resume):
        trained.append(cfg.experiment)
        return real_train(cfg, run_dir, resume)

    monkeypatch.setattr(api, "_train", counting)
    runs = tmp_path / "runs"
    cam = api.run_variant("02_attention", "cam", "ci", PARAMS, runs)
    assert trained == ["pretrain", "02_attention"]
    weights = Path(cam.config.model.pretrained)
    assert weights.is_file() and cam.results["pretrained_weights"].startswith(f"file {weights.name} sha256:")
    pre_runs = [d for d in (runs / "ci").iterdir() if (d / "study.json").is_file()
                and "pretrain/" in (d / "study.json").read_text()]
    assert len(pre_runs) == 1
    api.run_variant("03_fusion", "adaptive", "ci", PARAMS, runs, seed=1)
    assert trained == ["pretrain", "02_attention", "03_fusion"]   # the same weights, not pretrained again
    # the weights file is exactly the pretraining run's backbone (the cached run is read, not retrained)
    from safetensors.torch import load_file

    pre = api.run_resolved(resolve("02_attention", "cam", "ci", PARAMS).pretrain, runs, PARAMS)
    assert trained == ["pretrain", "02_attention", "03_fusion"]
    exported, again = load_file(str(weights)), backbone_state_dict(pre.load_model()[0])
    assert set(exported) == set(again) and all(torch.equal(exported[k], again[k]) for k in exported)

"""Pretrained weights: imagenet failures are clear errors (no download in tests), local files arrive."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import timm
import timm.models._builder as timm_builder
import torch
from safetensors.torch import save_file

from mace_core.errors import MaceError
from mace_core.models import CPU_EQUIVALENTS, cpu_equivalent
from mace_core.models.backbones import family_of, resolve_weights
from tests._models_helpers import TINY_BACKBONES, tiny_model

REPO = Path(__file__).resolve().parents[1]


def _offline(*_args, **_kwargs):
    raise OSError("We couldn't connect to 'https://huggingface.co' (hub unreachable in tests)")


def test_imagenet_unreachable_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(timm_builder, "load_pretrained", _offline)
    with pytest.raises(MaceError) as info:
        tiny_model(pretrained="imagenet")
    message = str(info.value)
    assert "resnet18" in message and "model.pretrained" in message and ".safetensors" in message


def test_backbone_without_imagenet_weights_says_so():
    # timm ships seresnet18 untrained: no download could help, so the message must not suggest one
    with pytest.raises(MaceError, match="no ImageNet weights for seresnet18") as info:
        tiny_model(backbone="seresnet18", pretrained="imagenet")
    assert "model.pretrained=none" in str(info.value)


def _saved_backbone(tmp_path, suffix, seed=123):
    name, kwargs = TINY_BACKBONES["resnet"]
    torch.manual_seed(seed)
    source = timm.create_model(name, num_classes=0, **kwargs)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)
    return path, state


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file_arrives_in_both_streams_and_trunk(tmp_path, suffix):
    path, state = _saved_backbone(tmp_path, suffix)
    model = tiny_model(pretrained=str(path), seed=0, specific_stages=1)
    for modality in ("rgb", "ir"):
        assert torch.equal(model.specific[modality].stem[0].weight, state["conv1.weight"])
        assert torch.equal(model.specific[modality].stage1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert torch.equal(model.trunk[2][1].conv2.weight, state["layer4.1.conv2.weight"])
    assert torch.equal(model.trunk[0][0].bn1.running_var, state["layer2.0.bn1.running_var"])


def test_missing_or_mismatched_weights_file_is_an_error(tmp_path):
    with pytest.raises(MaceError, match="model.pretrained"):
        tiny_model(pretrained=str(tmp_path / "nope.pth"))
    path, _ = _saved_backbone(tmp_path, ".pth")
    with pytest.raises(MaceError, match="does not fit"):
        tiny_model("seresnet", pretrained=str(path))  # SE layers missing from a plain resnet file


def test_unknown_backbone_names():
    with pytest.raises(MaceError, match="not a supported family"):
        tiny_model(backbone="vit_small_patch16_224", backbone_kwargs={})
    with pytest.raises(MaceError, match="not a timm model"):
        tiny_model(backbone="resnet_made_up", backbone_kwargs={})


def test_cpu_equivalents_keep_the_family():
    for paper, (small, kwargs) in CPU_EQUIVALENTS.items():
        assert family_of(paper) == family_of(small)
        assert timm.is_model(small)
    _name, kwargs = cpu_equivalent("tresnet_m")
    kwargs["layers"].append(9)  # a copy: the table itself is untouched
    assert CPU_EQUIVALENTS["tresnet_m"][1]["layers"] == [1, 1, 1, 1]
    with pytest.raises(MaceError, match="CPU equivalent"):
        cpu_equivalent("vgg16")


@pytest.mark.parametrize("paper", sorted(CPU_EQUIVALENTS))
def test_smoke_profile_trains_the_documented_cpu_equivalent(paper):
    from mace_core.study.variants import resolve

    model = resolve("01_backbones", paper, "smoke", REPO / "params").config.model
    assert (model.backbone, model.backbone_kwargs) == CPU_EQUIVALENTS[paper]


# ---------------------------------------------------------------- named weights (timm tags)
REFERENCE_TAGS = {"resnet50": "resnet50.tv_in1k", "seresnet50": "seresnet50.a1_in1k",
                  "efficientnet_b3": "efficientnet_b3.ra2_in1k", "tresnet_m": "tresnet_m.miil_in1k"}


@pytest.mark.parametrize("backbone", sorted(REFERENCE_TAGS))
def test_paper_profile_backbones_name_existing_timm_tags(backbone):
    from mace_core.study.variants import resolve

    model = resolve("01_backbones", backbone, "paper", REPO / "params").config.model
    assert model.pretrained == REFERENCE_TAGS[backbone]
    assert model.pretrained in timm.list_pretrained(f"{backbone}.*")   # exists in this timm (no download)
    assert resolve_weights(model.backbone, model.pretrained) == model.pretrained


def test_paper_baseline_starts_from_the_torchvision_lineage_weights():
    from mace_core.study.variants import resolve

    model = resolve("00_baseline", "baseline", "paper", REPO / "params").config.model
    assert model.pretrained == "resnet50.tv_in1k"
    cfg = timm.models.get_pretrained_cfg("resnet50.tv_in1k")
    assert "download.pytorch.org" in (cfg.url or "")   # torchvision's file, not timm's default a1_in1k


@pytest.mark.parametrize("backbone", sorted(REFERENCE_TAGS))
def test_smoke_profile_backbones_start_from_the_study_pretraining(backbone):
    """No ImageNet weights exist at the CPU sizes: each smoke backbone starts from the study's own
    pretraining of that backbone (study/pretrain.py), itself from random init."""
    from mace_core.study.pretrain import weights_path
    from mace_core.study.variants import resolve

    v = resolve("01_backbones", backbone, "smoke", REPO / "params")
    assert v.pretrain is not None and v.config.model.pretrained == str(weights_path(v.pretrain.config))
    pre = v.pretrain.config
    assert pre.model.pretrained == "none" and pre.experiment == "pretrain"
    assert (pre.model.backbone, pre.model.backbone_kwargs) == (v.config.model.backbone, v.config.model.backbone_kwargs)
    assert (pre.data.height, pre.data.width) == (v.config.data.height, v.config.data.width)
    assert Path(pre.data.root).name == "synthetic-sysu-pretrain"


def test_resolve_weights_imagenet_is_timms_default_tag_and_errors_are_clear(tmp_path):
    assert resolve_weights("resnet50", "imagenet") == "resnet50.a1_in1k"
    assert resolve_weights("resnet50", "resnet50.tv_in1k") == "resnet50.tv_in1k"
    assert resolve_weights("resnet50", "none") == "none"
    with pytest.raises(MaceError, match="holds weights for resnet50, but model.backbone is seresnet50"):
        resolve_weights("seresnet50", "resnet50.tv_in1k")
    with pytest.raises(MaceError, match="neither a timm weights tag") as info:
        resolve_weights("resnet50", "resnet50.made_up_tag")
    assert "timm.list_pretrained('resnet50.*')" in info.value.fix


def test_named_tag_offline_is_a_clear_error_naming_the_tag(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(timm_builder, "load_pretrained", _offline)
    with pytest.raises(MaceError) as info:
        tiny_model(pretrained="resnet18.tv_in1k")
    assert "resnet18.tv_in1k" in str(info.value) and "model.pretrained" in str(info.value)


def test_loaded_weights_are_named_on_the_model(tmp_path, monkeypatch):
    assert tiny_model().pretrained_weights == "none"
    path, _ = _saved_backbone(tmp_path, ".safetensors")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert tiny_model(pretrained=str(path)).pretrained_weights == f"file weights.safetensors sha256:{digest}"
    # a tag resolves and loads through timm (loader stubbed: no download here)
    monkeypatch.setattr(timm_builder, "load_pretrained", lambda *a, **k: None)
    assert tiny_model(pretrained="resnet18.tv_in1k").pretrained_weights == "resnet18.tv_in1k"
    assert tiny_model(pretrained="imagenet").pretrained_weights == "resnet18.a1_in1k"

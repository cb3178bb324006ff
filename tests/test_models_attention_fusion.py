"""Attention maps (CAM/SAM/DAM at stem/prepool) and fusion variants (concat/adaptive/transform)."""
from __future__ import annotations

import pytest
import torch

from mace_core.errors import MaceError
from tests._models_helpers import images, tiny_model

B = 3
STEM = {"channels": 64, "hw": (16, 8)}      # resnet 7x7 stem is 64 wide; /4 at 64x32
PREPOOL = {"channels": 128, "hw": (4, 2)}   # layer4 output with last stride 1


@pytest.mark.parametrize("kind,positions", [("cam", ["stem", "prepool"]), ("sam", ["stem", "prepool"]),
                                            ("dam", ["stem", "prepool"]), ("dam", ["prepool"]), ("sam", ["stem"])])
def test_attention_maps_shapes_and_ranges(kind, positions):
    model = tiny_model(attention=kind, attention_positions=positions).eval()
    for modality in ("rgb", "ir"):
        maps = model.attention_maps(images(B), modality)
        assert set(maps) == set(positions)
        for pos in positions:
            ref = STEM if pos == "stem" else PREPOOL
            channel, spatial = maps[pos]["channel"], maps[pos]["spatial"]
            if kind in ("cam", "dam"):
                assert channel.shape == (B, ref["channels"])
                assert ((channel > 0) & (channel < 1)).all()
            else:
                assert channel is None
            if kind in ("sam", "dam"):
                assert spatial.shape == (B, *ref["hw"])
                assert ((spatial > 0) & (spatial < 1)).all()
            else:
                assert spatial is None


def test_stem_attention_is_modality_specific_and_prepool_shared():
    model = tiny_model(attention="dam")
    assert model.specific["rgb"].attn is not model.specific["ir"].attn
    names = [n for n, _ in model.named_modules() if n.endswith("attn")]
    assert sorted(names) == ["prepool_attn", "specific.ir.attn", "specific.rgb.attn"]


def test_attention_changes_the_features_and_leaves_no_hooks():
    x = images(B)
    plain = tiny_model(attention="none").eval()
    att = tiny_model(attention="cam", attention_positions=["prepool"]).eval()
    assert plain.attention_maps(x, "rgb") == {}
    with torch.no_grad():
        assert not torch.allclose(plain.feature_map(x, "rgb"), att.feature_map(x, "rgb"))
    att.attention_maps(x, "rgb")
    assert not att.prepool_attn.channel.gate._forward_hooks


def test_attention_config_errors():
    with pytest.raises(MaceError, match="model.attention"):
        tiny_model(attention="self")
    with pytest.raises(MaceError, match="attention_positions"):
        tiny_model(attention="cam", attention_positions=["middle"])
    with pytest.raises(MaceError, match="attention_positions"):
        tiny_model(attention="cam", attention_positions=[])


@pytest.mark.parametrize("family", ["tresnet", "efficientnet", "convnext"])
def test_attention_on_other_families(family):
    model = tiny_model(family, attention="dam").eval()
    maps = model.attention_maps(images(2), "ir")
    assert maps["stem"]["channel"].shape[0] == 2 and maps["prepool"]["spatial"].dim() == 3
    assert model(images(2, 1), images(2, 2)).logits_v.shape == (2, 6)


# ---------------------------------------------------------------- fusion
@pytest.mark.parametrize("fusion,dim", [("concat", 64), ("adaptive", 32), ("transform", 32)])
def test_fusion_dims(fusion, dim):
    model = tiny_model(fusion=fusion)
    out = model(images(4, 1), images(4, 2))
    assert out.triplet_feat.shape == (8, dim)
    model.eval()
    with torch.no_grad():
        assert model.extract(images(4), "rgb").shape == (4, dim) == (4, model.feature_dim)


def test_adaptive_weights_sum_to_one_and_start_equal():
    model = tiny_model(fusion="adaptive")
    out = model(images(4, 1), images(4, 2))
    w = out.fusion_weights
    assert w.shape == (8, 2)
    assert torch.allclose(w.sum(dim=1), torch.ones(8), atol=1e-6)
    assert torch.allclose(w, torch.full_like(w, 0.5))  # zero-initialised gate, zero base logits
    # After perturbing the gate, weights become sample-dependent but still a distribution.
    with torch.no_grad():
        model.fusion.gate[2].weight.normal_(std=1.0)
        model.fusion.base.copy_(torch.tensor([0.3, -0.3]))
    model.eval()
    w = model.fusion_weights(images(4), "ir")
    assert w.shape == (4, 2) and ((w > 0) & (w < 1)).all()
    assert torch.allclose(w.sum(dim=1), torch.ones(4), atol=1e-6)
    assert not torch.allclose(w[0], w[1])


def test_adaptive_pre_feature_is_weighted_sum_of_branches():
    model = tiny_model(fusion="adaptive").eval()
    with torch.no_grad():
        model.fusion.base.copy_(torch.tensor([1.0, 0.0]))
        x = images(2)
        fmap = model.feature_map(x, "rgb")
        spec, shared = model.pool(model.phi_v(fmap)), model.pool(model.phi_s(fmap))
        w = torch.softmax(torch.tensor([1.0, 0.0]), 0)
        pre = model.fusion(spec, shared, spec, shared)[0]
        assert torch.allclose(pre, w[0] * spec + w[1] * shared, atol=1e-6)


def test_fusion_weights_none_unless_adaptive_and_fusion_parameters_train():
    assert tiny_model(fusion="concat").fusion_weights(images(2), "rgb") is None
    for fusion in ("adaptive", "transform"):
        model = tiny_model(fusion=fusion)
        model(images(4, 1), images(4, 2)).triplet_feat.pow(2).sum().backward()
        trainable = [p for p in model.fusion.parameters() if p.requires_grad]
        assert trainable and all(p.grad is not None for p in trainable), fusion


def test_unknown_fusion_and_retrieval_feature_are_errors():
    with pytest.raises(MaceError, match="model.fusion"):
        tiny_model(fusion="sum")
    with pytest.raises(MaceError, match="retrieval_feature"):
        tiny_model(retrieval_feature="logits")

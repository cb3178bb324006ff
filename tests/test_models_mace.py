"""MACE network: shapes per backbone family, stream split, weight tying, last stride, retrieval features."""
from __future__ import annotations

import pytest
import torch

from mace_core.errors import MaceError
from mace_core.models import ModelOutput, count_parameters
from tests._models_helpers import TINY_BACKBONES, images, tiny_model

B, C = 4, 6


@pytest.mark.parametrize("family", list(TINY_BACKBONES))
def test_forward_and_extract_shapes_per_family(family):
    model = tiny_model(family, num_classes=C)
    out = model(images(B, 1), images(B, 2))
    assert isinstance(out, ModelOutput)
    for logits in (out.logits_v, out.logits_i, out.logits_vs, out.logits_is):
        assert logits.shape == (B, C)
    assert out.triplet_feat.shape == (2 * B, 64)  # concat of two 32-d branches
    assert out.fusion_weights is None
    model.eval()
    with torch.no_grad():
        feat = model.extract(images(B, 3), "ir")
    assert feat.shape == (B, model.feature_dim) == (B, 64)
    assert torch.allclose(feat.norm(dim=1), torch.ones(B), atol=1e-5)


def test_concat_triplet_feature_is_pre_bn_pool_rgb_rows_first():
    model = tiny_model().eval()
    rgb, ir = images(B, 1), images(B, 2)
    with torch.no_grad():
        out = model(rgb, ir)
        fmap_ir = model.feature_map(ir, "ir")
        expected_ir = torch.cat([model.pool(model.phi_i(fmap_ir)), model.pool(model.phi_s(fmap_ir))], dim=1)
    assert torch.allclose(out.triplet_feat[B:], expected_ir, atol=1e-5)


@pytest.mark.parametrize("n_specific", [0, 1, 2])
def test_specific_stages_split(n_specific):
    model = tiny_model(specific_stages=n_specific)
    rgb, ir = model.specific["rgb"], model.specific["ir"]
    assert [name for name, _ in rgb.named_children()] == ["stem"] + [f"stage{k + 1}" for k in range(n_specific)]
    # Each modality owns separate tensors (same initial values: the copy is made after loading).
    for (name, p_rgb), (_, p_ir) in zip(rgb.named_parameters(), ir.named_parameters()):
        assert p_rgb is not p_ir and p_rgb.data_ptr() != p_ir.data_ptr(), name
        assert torch.equal(p_rgb, p_ir)
    assert len(model.trunk) == 4 - n_specific + 1  # remaining stages + tail
    # A loss on the IR half only reaches the IR stream and the shared trunk (eval mode: in train mode
    # the joint batch statistics of the shared BatchNorms legitimately couple the two halves).
    out = model.eval()(images(B, 1), images(B, 2))
    out.logits_is.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in rgb.parameters())
    assert any(p.grad is not None and p.grad.any() for p in ir.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.trunk.parameters())


def test_specific_stages_add_one_stage_copy_of_parameters():
    p0 = count_parameters(tiny_model(specific_stages=0))
    p1 = count_parameters(tiny_model(specific_stages=1))
    model = tiny_model(specific_stages=1)
    stage1 = sum(p.numel() for p in model.specific["rgb"].stage1.parameters())
    assert p1 - p0 == stage1


def test_specific_stages_out_of_range_is_an_error():
    with pytest.raises(MaceError, match="specific_stages"):
        tiny_model(specific_stages=3)


@pytest.mark.parametrize("family,full,halved", [("resnet", (4, 2), (2, 1)), ("tresnet", (4, 2), (2, 1)),
                                                ("efficientnet", (4, 2), (2, 1)), ("convnext", (4, 2), (2, 1))])
def test_last_stride_one_doubles_final_map(family, full, halved):
    x = images(2)
    with torch.no_grad():
        on = tiny_model(family, last_stride1=True).eval().feature_map(x, "rgb")
        off = tiny_model(family, last_stride1=False).eval().feature_map(x, "rgb")
    assert tuple(on.shape[-2:]) == full
    assert tuple(off.shape[-2:]) == halved


def test_shared_extractor_is_tied_across_modalities():
    model = tiny_model().eval()
    out = model(images(B, 1), images(B, 2))
    grads = {}
    for name, logits in (("vs", out.logits_vs), ("is", out.logits_is)):
        model.zero_grad()
        logits.sum().backward(retain_graph=True)
        grads[name] = model.phi_s[0].weight.grad.clone()
        if name == "is":  # p_IS never touches the visible-specific extractor
            assert model.phi_v[0].weight.grad is None or not model.phi_v[0].weight.grad.any()
    assert grads["vs"].abs().sum() > 0 and grads["is"].abs().sum() > 0
    # Changing phi_S changes both shared predictions.
    with torch.no_grad():
        model.eval()
        before_rgb, before_ir = model.logits(images(B, 1), "rgb"), model.logits(images(B, 2), "ir")
        model.phi_s[0].weight.mul_(2.0)
        model.cls_s.weight.normal_()
        assert not torch.allclose(before_rgb, model.logits(images(B, 1), "rgb"))
        assert not torch.allclose(before_ir, model.logits(images(B, 2), "ir"))


def test_ensemble_logits_are_specific_plus_shared():
    model = tiny_model()
    with torch.no_grad():
        model.cls_v.weight.normal_()
        model.cls_s.weight.normal_()
        model.eval()
        x = images(B, 1)
        fmap = model.feature_map(x, "rgb")
        p_v = model.cls_v(model.neck_v(model.pool(model.phi_v(fmap))))
        p_vs = model.cls_s(model.neck_s(model.pool(model.phi_s(fmap))))
        assert torch.allclose(model.logits(x, "rgb"), p_v + p_vs, atol=1e-5)


@pytest.mark.parametrize("feature,normalize,dim", [("fused", True, 64), ("pool", True, 64), ("shared", True, 32),
                                                   ("fused", False, 64)])
def test_retrieval_feature_options(feature, normalize, dim):
    model = tiny_model(retrieval_feature=feature, normalize_feature=normalize).eval()
    with torch.no_grad():
        model(images(B, 1), images(B, 2))
        feat = model.extract(images(B, 1), "rgb")
    assert feat.shape == (B, dim) and model.feature_dim == dim
    norms = feat.norm(dim=1)
    assert torch.allclose(norms, torch.ones(B), atol=1e-5) == normalize


def test_concat_fused_feature_is_the_two_bn_necks_side_by_side():
    model = tiny_model(normalize_feature=False).eval()
    x = images(B, 1)
    with torch.no_grad():
        fmap = model.feature_map(x, "ir")
        expected = torch.cat([model.neck_i(model.pool(model.phi_i(fmap))),
                              model.neck_s(model.pool(model.phi_s(fmap)))], dim=1)
        assert torch.allclose(model.extract(x, "ir"), expected, atol=1e-5)


def test_concat_single_bn_standardises_the_concatenation_with_running_stats():
    model = tiny_model(normalize_feature=False, concat_bn="single")
    bn = model.fusion.bn
    assert bn.num_features == 64 and not bn.affine and model.feature_dim == 64
    model.train()
    model(images(B, 1), images(B, 2))   # the training forward updates its running statistics
    assert int(bn.num_batches_tracked) == 1 and bn.running_var.ne(1).any()
    model.eval()
    x = images(B, 1)
    with torch.no_grad():
        fmap = model.feature_map(x, "rgb")
        pre = torch.cat([model.pool(model.phi_v(fmap)), model.pool(model.phi_s(fmap))], dim=1)
        expected = (pre - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
        feat = model.extract(x, "rgb")
    assert torch.allclose(feat, expected, atol=1e-5)
    # the default (necks) is a different feature: the necks' learnt scales, not this BN's statistics
    necks = tiny_model(normalize_feature=False).eval()
    necks.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("fusion.")})
    with torch.no_grad():
        assert not torch.allclose(necks.extract(x, "rgb"), feat, atol=1e-3)


def test_unknown_concat_bn_is_an_error():
    with pytest.raises(MaceError, match="concat_bn"):
        tiny_model(concat_bn="joint")
    with pytest.raises(MaceError, match="concat_bn"):
        tiny_model(concat_bn="joint", fusion="adaptive")


def test_bad_modality_and_unpaired_batch_are_errors():
    model = tiny_model()
    with pytest.raises(MaceError, match="modality"):
        model.extract(images(2), "thermal")
    with pytest.raises(MaceError, match="paired batch"):
        model(images(2), images(3))


def test_gem_pooling_has_learnable_p_and_is_used():
    model = tiny_model(pooling="gem", gem_p=3.0)
    assert model.pool.p.item() == 3.0 and model.pool.p.requires_grad
    out = model(images(B, 1), images(B, 2))
    out.logits_v.sum().backward()
    assert model.pool.p.grad is not None and model.pool.p.grad.abs() > 0


def test_parameter_groups_split_backbone_from_new_layers():
    model = tiny_model(attention="dam")
    groups = model.parameter_groups()
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups.values() for p in g} == trainable
    backbone = {id(p) for p in groups["backbone"]}
    assert id(model.specific["rgb"].stem[0].weight) in backbone
    assert id(model.specific["rgb"].attn.channel.fc1.weight) not in backbone
    assert id(model.cls_s.weight) not in backbone
    # BN-neck shift is frozen.
    assert not model.neck_v.bias.requires_grad


def test_same_seed_same_model_and_outputs():
    a, b = tiny_model(seed=5), tiny_model(seed=5)
    out_a, out_b = a(images(B, 1), images(B, 2)), b(images(B, 1), images(B, 2))
    assert torch.equal(out_a.triplet_feat, out_b.triplet_feat)
    assert torch.equal(out_a.logits_is, out_b.logits_is)


def test_convnext_last_stride_pads_the_patchify_conv_and_keeps_its_weights():
    """ConvNeXt's last downsampling is a 2x2 stride-2 conv: at stride 1 it gets one zero row and column
    (bottom/right), so the map doubles exactly and the conv's weights are untouched."""
    torch.manual_seed(0)
    on = tiny_model("convnext", last_stride1=True)
    torch.manual_seed(0)
    off = tiny_model("convnext", last_stride1=False)
    pads = [m for m in on.modules() if isinstance(m, torch.nn.ZeroPad2d)]
    assert len(pads) == 1 and pads[0].padding == (0, 1, 0, 1)   # the last stage is in the shared trunk
    conv_on = [m for m in on.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (2, 2)]
    conv_off = [m for m in off.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (2, 2)]
    assert [c.stride for c in conv_on].count((1, 1)) == len(pads)
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(conv_on, conv_off))

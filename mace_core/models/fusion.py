"""How an image's specific and shared features form its retrieval embedding (thesis §3.6).

Each fusion takes, for a batch of one modality (or the joint batch), the pooled pre-BN features
``spec`` (phi_V or phi_I branch) and ``shared`` (phi_S branch), plus their BN-neck outputs, and
returns ``(pre, post, weights)``:

* ``pre``  — the fused embedding before BN; the triplet loss is applied to it, which is also what
  trains the fusion parameters (no other loss sees them);
* ``post`` — the fused embedding after BN, the default retrieval feature (L2-normalised later);
* ``weights`` — ``[B, 2]`` (specific, shared) gate weights for ``adaptive``, else ``None``.

Variants
--------
``concat`` (baseline): ``pre = [spec, shared]`` (2D: 4096 for ResNet-50). Thesis §3.6 describes the
baseline as "simple concatenation followed by batch normalization"; BatchNorm1d is per channel, so
two choices fit those words (``model.concat_bn``):

* ``necks`` (default): ``post = [neck(spec), neck_S(shared)]``, the two BN necks side by side: the
  BN layers the classifiers are trained through (the AGW reference code's BNNeck, whose post-BN
  feature AGW evaluates beside the pooled one), so no third, untrained BN is added.
* ``single``: one BatchNorm1d over the 2D concatenation, ``post = BN([spec, shared])``, with its own
  running statistics and no affine parameters (no loss reaches it: only the triplet loss sees the
  fused feature, and that before BN). It standardises each channel but lacks the necks' learnt scales.

Either way the retrieval feature has 2D channels; ``model.retrieval_feature: shared`` gives the D-dim
(2048 for ResNet-50) shared embedding alone.

``adaptive``: ``w = softmax(b + g([spec, shared]))`` with learnable base logits ``b`` (2) and a
two-layer gate MLP ``g`` (2D → 2D/16 → 2); ``pre = w_spec·spec + w_shared·shared`` (D). The gate's
last layer starts at zero so training starts from equal weights.

``transform``: each branch passes a residual two-layer MLP, ``t = relu(x + BN(W2 relu(BN(W1 x))))``
(hidden D/2), the two results are concatenated and a fusion linear layer maps 2D → D.

For ``adaptive`` and ``transform`` the post-fusion BN has no affine parameters (pure
standardisation with running statistics): only the triplet loss reaches the fused feature, so a
learnt scale would never get a gradient (and would be an unused parameter under DDP).
"""
from __future__ import annotations

import torch
from torch import nn

from mace_core.errors import MaceError

KINDS = ("concat", "adaptive", "transform")


CONCAT_BN = ("necks", "single")


class ConcatFusion(nn.Module):
    def __init__(self, dim: int, bn: str = "necks"):
        super().__init__()
        if bn not in CONCAT_BN:
            raise MaceError(f"model.concat_bn {bn!r} is not known", f"use one of {', '.join(CONCAT_BN)}")
        self.out_dim = 2 * dim
        self.bn = nn.BatchNorm1d(2 * dim, affine=False) if bn == "single" else None

    def forward(self, spec, shared, spec_bn, shared_bn):
        pre = torch.cat([spec, shared], dim=1)
        post = self.bn(pre) if self.bn is not None else torch.cat([spec_bn, shared_bn], dim=1)
        return pre, post, None


class AdaptiveFusion(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        hidden = max(2 * dim // 16, 8)
        self.out_dim = dim
        self.base = nn.Parameter(torch.zeros(2))
        self.gate = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))
        nn.init.zeros_(self.gate[2].weight)
        nn.init.zeros_(self.gate[2].bias)
        self.bn = nn.BatchNorm1d(dim, affine=False)

    def weights(self, spec: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        logits = self.base + self.gate(torch.cat([spec, shared], dim=1))
        return torch.softmax(logits, dim=1)

    def forward(self, spec, shared, spec_bn, shared_bn):
        w = self.weights(spec, shared)
        pre = w[:, :1] * spec + w[:, 1:] * shared
        return pre, self.bn(pre), w


class _ResidualMLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        hidden = max(dim // 2, 8)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, dim, bias=False), nn.BatchNorm1d(dim))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x + self.mlp(x))


class TransformFusion(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim
        self.spec = _ResidualMLP(dim)
        self.shared = _ResidualMLP(dim)
        self.fuse = nn.Linear(2 * dim, dim)
        self.bn = nn.BatchNorm1d(dim, affine=False)

    def forward(self, spec, shared, spec_bn, shared_bn):
        pre = self.fuse(torch.cat([self.spec(spec), self.shared(shared)], dim=1))
        return pre, self.bn(pre), None


def make_fusion(kind: str, dim: int, concat_bn: str = "necks") -> nn.Module:
    if kind == "concat":
        return ConcatFusion(dim, concat_bn)
    if concat_bn not in CONCAT_BN:
        raise MaceError(f"model.concat_bn {concat_bn!r} is not known", f"use one of {', '.join(CONCAT_BN)}")
    if kind == "adaptive":
        return AdaptiveFusion(dim)
    if kind == "transform":
        return TransformFusion(dim)
    raise MaceError(f"model.fusion {kind!r} is not known", f"use one of {', '.join(KINDS)}")

"""``train.compile: true`` known to work: the MACE training step compiled by inductor on the CPU gives the
eager step's losses and weights within float tolerance (so compile is not first tried on a user's GPU)."""
from __future__ import annotations

import copy
import shutil

import pytest
import torch

from mace_core.config import LossConfig, ModelConfig
from mace_core.engine import steps
from mace_core.engine.device import DistInfo
from mace_core.engine.schedule import build_optimizer
from mace_core.losses import MaceLoss
from mace_core.models import build_model

# a ResNet-18 cut to one block per stage and narrowed: few kernels for inductor to generate and build
TINY = ModelConfig(backbone="resnet18", pretrained="none", head_dim=16,
                   backbone_kwargs={"layers": [1, 1, 1, 1], "channels": [8, 16, 16, 32], "stem_width": 8})
CXX = next((c for c in ("c++", "g++", "gcc", "cc", "clang++", "clang") if shutil.which(c)), None)


def _batches(n: int, p: int = 4, k: int = 2, size=(32, 16)):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(p).repeat_interleave(k)
    return [(torch.randn(p * k, 3, *size, generator=g), torch.randn(p * k, 3, *size, generator=g), labels, labels)
            for _ in range(n)]


def _train_steps(net, model, batches):
    """The trainer's step (forward_backward, optimizer step, StepStats): per-step losses, final weights."""
    from mace_core.config import TrainConfig

    optimizer = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.05))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    cpu = torch.device("cpu")
    criterion = MaceLoss(LossConfig(kd_schedule="fixed", kd_weight=1.0))
    stats = steps.StepStats(cpu, DistInfo())
    losses = []
    for b, batch in enumerate(batches):
        _, total, terms = steps.forward_backward(net, criterion, batch, 0, b, cpu, None, scaler)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stats.add(terms)
        losses.append(total.detach().clone())
    return torch.stack(losses), stats.read(0), {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
@pytest.mark.skipif(CXX is None, reason="inductor's CPU backend builds C++ kernels and no C++ compiler is on PATH")
def test_compiled_training_step_matches_eager_on_cpu():
    torch.manual_seed(0)
    eager_model = build_model(TINY, num_classes=4).train()
    compiled_model = copy.deepcopy(eager_model)
    batches = _batches(3)
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    try:
        compiled = torch.compile(compiled_model, backend="inductor")
        c_losses, c_sums, c_state = _train_steps(compiled, compiled_model, batches)
        graphs = counters["stats"]["unique_graphs"]
    finally:
        torch._dynamo.reset()
    assert graphs >= 1  # the step really ran through compiled graphs, not eager
    e_losses, e_sums, e_state = _train_steps(eager_model, eager_model, batches)
    assert torch.isfinite(e_losses).all() and e_losses[-1] != e_losses[0]  # it trained
    torch.testing.assert_close(c_losses, e_losses, rtol=1e-4, atol=1e-5)
    assert c_sums.keys() == e_sums.keys()
    for key in e_sums:
        assert c_sums[key] == pytest.approx(e_sums[key], rel=1e-4, abs=1e-5), key
    for key, value in e_state.items():  # after three optimizer steps, the weights still agree
        if value.is_floating_point():
            torch.testing.assert_close(c_state[key], value, rtol=1e-3, atol=1e-4, msg=key)

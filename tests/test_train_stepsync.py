"""The training step reads nothing on the host: loss terms and accuracy are summed on the device and reach
the host once per logging interval and per epoch, with exactly the values a per-step read gives."""
from __future__ import annotations

import contextlib
import math

import pandas as pd
import pytest
import torch
from _train_helpers import tiny_config

from mace_core.data import sampler as sampler_mod
from mace_core.engine import prepare, steps
from mace_core.engine import train as train_mod
from mace_core.engine.batches import make_loader
from mace_core.engine.device import DistInfo
from mace_core.errors import MaceError

TIMING = ("epoch_time_s", "images_per_s", "eval_time_s")   # wall-clock columns


class PerStepSync(steps.StepStats):
    """Reference: every step's terms are read on the host at once and summed as Python floats."""

    def __init__(self, device, info):
        super().__init__(device, info)
        self.host: dict[str, float] = {}

    def add(self, terms):
        for k, v in terms.items():
            if k != "kd_weight":
                name = steps.log_name(k)
                self.host[name] = self.host.get(name, 0.0) + float(v)  # one host read per term and step
        self.batches += 1

    def read(self, epoch):
        return {**self.host, "batches": float(self.batches)}


@pytest.mark.parametrize("overrides", [[], ["train.grad_accum=2", "train.log_every=1"]])
def test_epoch_log_equals_the_per_step_read_bit_for_bit(tiny_root, tmp_path, monkeypatch, overrides):
    cfg = tiny_config(tiny_root, overrides)
    train_mod.train(cfg, tmp_path / "device", progress=False)
    monkeypatch.setattr(train_mod, "StepStats", PerStepSync)
    train_mod.train(cfg, tmp_path / "host", progress=False)
    device, host = (pd.read_csv(tmp_path / r / "log.csv", dtype=str) for r in ("device", "host"))
    assert list(device.columns) == list(host.columns)
    assert {"loss", "loss.kd", "train_acc"} <= set(device.columns)
    pd.testing.assert_frame_equal(device.drop(columns=list(TIMING)), host.drop(columns=list(TIMING)))


def _step_parts(root):
    from mace_core.data.transforms import normalize_batch
    from mace_core.engine.schedule import build_optimizer
    from mace_core.losses import MaceLoss
    from mace_core.models import build_model

    cfg = tiny_config(root)
    info = DistInfo()
    data, dataset, sampler = prepare.build_training_set(cfg, info)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.num_classes).train()
    optimizer = build_optimizer(model, cfg.train)
    loader, keys = make_loader(dataset, 0, 0, 0, False, False)
    keys.set(0, list(sampler))
    batches = [(normalize_batch(rgb), normalize_batch(ir), y_rgb, y_ir) for rgb, ir, y_rgb, y_ir in loader]
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return model, optimizer, MaceLoss(cfg.loss), batches, scaler


@contextlib.contextmanager
def _host_reads_forbidden():
    """Every Python-level way of reading a tensor's value on the host raises inside the block."""
    def refuse(name):
        def method(self, *args, **kwargs):
            raise AssertionError(f"host read Tensor.{name} inside the training step")
        return method

    names = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__")
    saved = {n: getattr(torch.Tensor, n) for n in names}
    try:
        for n in names:
            setattr(torch.Tensor, n, refuse(n))
        yield
    finally:
        for n, m in saved.items():
            setattr(torch.Tensor, n, m)


def test_training_step_reads_no_tensor_on_the_host(tiny_root):
    model, optimizer, criterion, batches, scaler = _step_parts(tiny_root)
    cpu = torch.device("cpu")
    stats = steps.StepStats(cpu, DistInfo())
    expected = 0.0
    for b, batch in enumerate(batches):
        with _host_reads_forbidden():
            _, total, terms = steps.forward_backward(model, criterion, batch, 0, b, cpu, None, scaler)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            stats.add(terms)
        expected += total.item()
    sums = stats.read(0)  # the values reach the host here, once
    assert sums["batches"] == len(batches) == 3 and sums["loss"] == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the sync debug mode is CUDA's)")
def test_training_step_makes_no_cuda_sync(tiny_root):
    model, optimizer, criterion, batches, scaler = _step_parts(tiny_root)
    gpu = torch.device("cuda")
    model = model.to(gpu)
    optimizer = type(optimizer)(model.parameters(), **optimizer.defaults)
    stats = steps.StepStats(gpu, DistInfo())
    batches = [tuple(t.to(gpu) for t in batch) for batch in batches]
    steps.forward_backward(model, criterion, batches[0], 0, 0, gpu, torch.bfloat16, scaler)  # warm-up
    optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for b, batch in enumerate(batches):
            _, _, terms = steps.forward_backward(model, criterion, batch, 0, b, gpu, torch.bfloat16, scaler)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            stats.add(terms)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert stats.read(0)["batches"] == len(batches)


def test_nonfinite_loss_is_reported_at_the_read_with_its_batch(tiny_root):
    model, optimizer, criterion, batches, scaler = _step_parts(tiny_root)
    cpu = torch.device("cpu")
    stats = steps.StepStats(cpu, DistInfo())
    for b, batch in enumerate(batches):
        _, _, terms = steps.forward_backward(model, criterion, batch, 0, b, cpu, None, scaler)
        if b >= 1:  # batch 2 of the epoch goes bad first (+inf), batch 3 too (-inf): batch 2 is reported
            sign = math.inf if b == 1 else -math.inf
            terms = {**terms, "triplet": terms["triplet"] * sign, "total": terms["total"] * math.nan}
        stats.add(terms)
    with pytest.raises(MaceError, match=r"loss became nan at epoch 4, batch 2 of the epoch "
                                        r"\(non-finite term\(s\): total=nan, triplet=inf\)"):
        stats.read(3)


def test_trainer_refuses_a_batch_whose_halves_are_not_paired(tiny_root, tmp_path, monkeypatch):
    original = sampler_mod.CrossModalIdentitySampler.__iter__

    def shifted(self):  # the IR half of every batch rolled by one row: same identities, wrong pairing
        for batch in original(self):
            yield [(rgb, ir) for (rgb, _), (_, ir) in zip(batch, batch[1:] + batch[:1])]

    monkeypatch.setattr(sampler_mod.CrossModalIdentitySampler, "__iter__", shifted)
    with pytest.raises(MaceError, match="index-paired"):
        train_mod.train(tiny_config(tiny_root), tmp_path / "run", progress=False)


def test_stats_sum_device_terms_and_host_numbers_in_step_order():
    stats = steps.StepStats(torch.device("cpu"), DistInfo())
    per_step = [(0.1, 0.7, 1.0), (0.2, 0.25, 3.0), (1e16, 0.5, 2.0)]  # 1e16 + 0.1: order and width matter
    loss = acc = 0.0
    for total, correct, host in per_step:
        t, a = torch.tensor(total, dtype=torch.float32), torch.tensor(correct, dtype=torch.float32)
        stats.add({"total": t, "acc": a, "kd_weight": 0.3, "scale": host})  # "scale": a host-number term
        loss, acc = loss + float(t), acc + float(a)  # what per-step host reads would have summed
    assert stats.read(0) == {"loss": loss, "train_acc": acc, "loss.scale": 6.0, "batches": 3.0}  # no kd_weight

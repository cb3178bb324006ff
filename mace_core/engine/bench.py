"""Training throughput of a config on the current device: images/s, step time, peak memory.

Runs the trainer's own pieces (data pipeline with the configured workers, model, AMP, channels_last,
optional compile, optimiser step) for a few warm-up steps, then times ``steps`` steps. Images count
both modalities (a P x K batch is 2·P·K images). Nothing is written to disk.
"""
from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import time
from typing import Any

import torch

from mace_core.config import RunConfig
from mace_core.engine.batches import make_loader
from mace_core.engine.device import (
    DistInfo,
    amp_dtype,
    peak_memory_mb,
    reset_peak_memory,
    resolve_device,
)
from mace_core.engine.schedule import build_optimizer
from mace_core.engine.train import (
    build_training_set,
    configure_determinism,
    forward_backward,
    seed_everything,
)
from mace_core.errors import MaceError


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(cfg: RunConfig, steps: int = 20, warmup: int = 3) -> dict[str, Any]:
    """Time ``steps`` training steps after ``warmup`` untimed ones (compile and allocator settle there)."""
    from mace_core.data.transforms import normalize_batch
    from mace_core.losses import MaceLoss
    from mace_core.models import build_model, count_parameters

    if steps < 1 or warmup < 0:
        raise MaceError(f"bench steps={steps} warmup={warmup}", "use steps >= 1 and warmup >= 0")
    tc = cfg.train
    if tc.threads is not None:
        torch.set_num_threads(max(1, tc.threads))
    if tc.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    device = resolve_device(tc.device)
    dtype = amp_dtype(tc.amp, device)
    configure_determinism(tc.deterministic, device)
    seed_everything(tc.seed)
    info = DistInfo()
    total_steps = steps + warmup
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(tc, steps_per_epoch=total_steps))
    data, dataset, sampler = build_training_set(cfg, info)
    model = build_model(cfg.model, data.num_classes)
    fmt = torch.channels_last if tc.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt).train()
    net = torch.compile(model) if tc.compile else model
    optimizer = build_optimizer(model, tc)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    criterion = MaceLoss(cfg.loss)
    loader, keys = make_loader(dataset, tc.seed, 0, cfg.data.workers, cfg.data.pin_memory and device.type == "cuda",
                               False)
    keys.set(0, list(sampler)[:total_steps])

    times: list[float] = []
    reset_peak_memory(device)
    it = iter(loader)
    t_last = time.perf_counter()
    for step in range(total_steps):
        rgb, ir, y_rgb, y_ir = next(it)  # loading is part of the timed step: it is what a real epoch pays
        batch = (normalize_batch(rgb, device, fmt), normalize_batch(ir, device, fmt),  # uint8 in, as in training
                 y_rgb.to(device, non_blocking=True), y_ir.to(device, non_blocking=True))
        forward_backward(net, criterion, batch, 0, step, device, dtype, scaler)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        now = time.perf_counter()
        if step >= warmup:
            times.append(now - t_last)
        t_last = now
    batch_images = 2 * cfg.data.ids_per_batch * cfg.data.images_per_id
    total = sum(times)
    return {
        "device": str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "amp": str(dtype).replace("torch.", "") if dtype is not None else "off",
        "channels_last": tc.channels_last,
        "compile": tc.compile,
        "workers": cfg.data.workers,
        "torch_threads": torch.get_num_threads(),
        "backbone": cfg.model.backbone,
        "input": f"{cfg.data.height}x{cfg.data.width}",
        "batch_images": batch_images,
        "parameters": count_parameters(model),
        "steps": steps,
        "images_per_s": batch_images * steps / total,
        "step_time_ms_mean": 1000 * total / steps,
        "step_time_ms_median": 1000 * statistics.median(times),
        "peak_memory_mb": peak_memory_mb(device),  # accelerator memory (None on CPU)
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # host process
    }

"""Training throughput of a config on the current device: images/s, step time, peak memory.

Runs the trainer's own pieces (data pipeline with the configured workers, model, AMP, channels_last,
optional compile, optimiser step) for a few warm-up steps, then times ``steps`` steps. Images count
both modalities (a P x K batch is 2·P·K images). Nothing is written to disk.
"""
from __future__ import annotations

import contextlib
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


# ---------------------------------------------------------------------------------------------
# `mace bench --profile paper`: the numbers a user compares with the book's projection


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether the weights' host answers at all (offline, the hub client retries for ~50 s first)."""
    import socket

    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def cache_only_hub_when_offline():
    """While the hub is unreachable, let timm read its local cache only (no ~50 s of retries)."""
    import huggingface_hub.constants as hub

    before = hub.HF_HUB_OFFLINE
    if not before and not hub_reachable():
        hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = before


def resolve_pretrained(cfg: RunConfig) -> tuple[RunConfig, str | None]:
    """``cfg`` unchanged when its timm ImageNet weights (``imagenet`` or a named tag) load here; else
    ``model.pretrained=none`` and a note saying so. Only for measurements (bench, dry run): training never
    falls back silently. Local files and ``none`` pass unchanged."""
    from mace_core.models.backbones import create_timm_model, resolve_weights

    chosen = cfg.model.pretrained
    if chosen == "none" or (chosen != "imagenet" and resolve_weights(cfg.model.backbone, chosen) == "file"):
        return cfg, None
    try:
        with cache_only_hub_when_offline():
            create_timm_model(cfg.model.backbone, cfg.model.pretrained, cfg.model.backbone_kwargs)
    except MaceError as exc:
        note = (f"ImageNet weights {cfg.model.pretrained} for {cfg.model.backbone} are unavailable here ({exc.what}); this measurement "
                "uses RANDOM INIT, which changes no timing or memory figure but every metric")
        return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained="none")), note
    return cfg, None


def time_evaluation(cfg: RunConfig, num_classes: int) -> dict[str, Any]:
    """Wall time and peak accelerator memory of the config's full test protocol (untrained weights:
    the work is the same). The test caches are built first, outside the timing."""
    from mace_core.data.cache import cached_images
    from mace_core.data.datasets import test_cache_groups
    from mace_core.engine.train import evaluate
    from mace_core.models import build_model

    device = resolve_device(cfg.train.device)
    size = (cfg.data.height, cfg.data.width)
    for records, desc in test_cache_groups(cfg.data.dataset, cfg.data.root, cfg.data.trial):
        if records:
            cached_images(records, size, cfg.data.cache_dir, desc=desc)
    seed_everything(cfg.train.seed)
    fmt = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model = build_model(cfg.model, num_classes).to(device, memory_format=fmt)
    reset_peak_memory(device)
    start = time.perf_counter()
    metrics = evaluate(model, cfg, device)  # as the trainer calls it (no autocast: fp32 features)
    _sync(device)
    protocol = metrics.get("protocol", {})
    return {"eval_s": time.perf_counter() - start, "eval_peak_memory_mb": peak_memory_mb(device),
            "eval_queries": protocol.get("num_query_images"), "eval_trials": protocol.get("trials"),
            "eval_mode": protocol.get("mode")}


def profile_bench(cfg: RunConfig, steps: int = 20, warmup: int = 3, evaluate_too: bool = True) -> dict[str, Any]:
    """Training throughput with AMP on/off × channels_last on/off (AMP variants collapse on CPU, where
    ``auto`` means off), then the full-protocol evaluation time; one JSON-ready dict."""
    cfg, note = resolve_pretrained(cfg)
    device = resolve_device(cfg.train.device)
    amps = [cfg.train.amp] + (["off"] if amp_dtype(cfg.train.amp, device) is not None else [])
    runs = []
    for amp in amps:
        for channels_last in (True, False):
            variant = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, amp=amp, channels_last=channels_last))
            runs.append(bench(variant, steps=steps, warmup=warmup))
    report: dict[str, Any] = {"config": f"{cfg.experiment}/{cfg.name}", "device": runs[0]["device"],
                              "backbone": cfg.model.backbone, "input": runs[0]["input"],
                              "batch_images": runs[0]["batch_images"], "steps": steps, "warmup": warmup,
                              "pretrained": cfg.model.pretrained, "note": note,
                              "training": [{k: r[k] for k in ("amp", "channels_last", "images_per_s", "step_time_ms_mean",
                                                              "step_time_ms_median", "peak_memory_mb")} for r in runs]}
    best = max(runs, key=lambda r: r["images_per_s"])
    report["best_images_per_s"] = best["images_per_s"]
    if evaluate_too:
        from mace_core.data.datasets import _records_for

        rgb, ir = _records_for(cfg.data.dataset, cfg.data.root, cfg.data.include_val, cfg.data.trial)
        report.update(time_evaluation(cfg, len({r.pid for r in rgb} & {r.pid for r in ir})))
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report

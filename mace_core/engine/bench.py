"""Training throughput of a config on the current device, in three parts, steady state only.

A training step needs a batch from the input pipeline (loader workers decoding, augmenting and
collating uint8 images) and a model step (normalise on the device, forward, MACE loss, backward,
optimiser step). :func:`bench` times

- the **input pipeline alone**: batches/s from the loader with the config's workers, no model;
- the **model step alone**: one batch kept on the device, stepped again and again;
- **both together**, as an epoch runs them, over enough steps that the loader's queue drains: a
  loader keeps ``workers × PREFETCH_FACTOR`` batches ready, so the first of the timed steps may be
  served from batches prepared before the timing began; ``together`` times at least
  ``DRAIN_FACTOR`` times that many steps, so at most 1/DRAIN_FACTOR of them were;

and says which part is the bottleneck and how many workers would keep up with the model. Every
timing starts after ``warmup`` untimed steps (cuDNN/CUDA first-call set-up, allocator growth,
``torch.compile``); building the data, the model and the optimiser, spawning the workers and the
warm-up are reported on their own, as one-time costs. Images count both modalities (a P x K batch is
2·P·K images). Nothing is written to disk.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import resource
import statistics
import time
from typing import Any

import torch
import torch.utils.deterministic

from mace_core.config import RunConfig
from mace_core.engine.batches import PREFETCH_FACTOR, SeededBatches, make_loader
from mace_core.engine.device import (
    DistInfo,
    amp_dtype,
    peak_memory_mb,
    reset_peak_memory,
    resolve_device,
)
from mace_core.engine.prepare import build_training_set, configure_determinism, seed_everything
from mace_core.engine.schedule import apply_lr, build_optimizer, lr_factor
from mace_core.engine.steps import forward_backward
from mace_core.errors import MaceError

DRAIN_FACTOR = 4
PARTS = ("input", "model", "together")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def queued_ahead(workers: int) -> int:
    """Batches a loader holds ready before they are asked for: workers × prefetch factor (0 without workers)."""
    return workers * PREFETCH_FACTOR if workers > 0 else 0


def drained_steps(steps: int, workers: int) -> int:
    """Timed steps that let a slow input pipeline show: ``steps``, at least DRAIN_FACTOR × the queue."""
    return max(steps, DRAIN_FACTOR * queued_ahead(workers))


@contextlib.contextmanager
def determinism_mode(deterministic: bool, device: torch.device):
    """``train.deterministic`` as the trainer sets it, restored afterwards (bench runs both modes)."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.utils.deterministic.fill_uninitialized_memory)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    configure_determinism(deterministic, device)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2], saved[3]
        torch.utils.deterministic.fill_uninitialized_memory = saved[4]


class _Pieces:
    """The trainer's pieces for ``cfg`` (data, model, optimiser, loss), built as the trainer builds them;
    ``setup_s`` is what that took. ``batches``: how many sampler batches the measurements draw on."""

    def __init__(self, cfg: RunConfig, batches: int):
        from mace_core.losses import MaceLoss
        from mace_core.models import build_model, count_parameters

        tc = cfg.train
        start = time.perf_counter()
        self.cfg, self.device = cfg, resolve_device(tc.device)
        self.dtype = amp_dtype(tc.amp, self.device)
        seed_everything(tc.seed)
        sized = dataclasses.replace(cfg, train=dataclasses.replace(tc, steps_per_epoch=max(1, batches)))
        self.data, self.dataset, sampler = build_training_set(sized, DistInfo())
        self.keys = list(sampler)
        model = build_model(cfg.model, self.data.num_classes)
        self.parameters = count_parameters(model)
        self.fmt = torch.channels_last if tc.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.fmt).train()
        self.net = torch.compile(self.model) if tc.compile else self.model
        self.optimizer = build_optimizer(self.model, tc)
        apply_lr(self.optimizer, lr_factor(tc, 0.0))  # the first step's lr, as in the trainer (warm-up: 0)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype is torch.float16)
        self.criterion = MaceLoss(cfg.loss)
        self.steps_done = 0
        _sync(self.device)
        self.setup_s = time.perf_counter() - start

    def loader(self, n: int):
        """The trainer's loader (workers, pinning as configured) over ``n`` batch keys, fresh workers."""
        d = self.cfg.data
        loader, keys = make_loader(self.dataset, self.cfg.train.seed, 0, d.workers,
                                   d.pin_memory and self.device.type == "cuda", False)
        keys.set(0, [self.keys[i % len(self.keys)] for i in range(n)])
        return loader

    def first_batch(self):
        """Batch 0 of epoch 0, built in this process."""
        return SeededBatches(self.dataset, self.cfg.train.seed)[(0, 0, self.keys[0])]

    def to_device(self, raw):
        from mace_core.data.transforms import normalize_batch

        rgb, ir, y_rgb, y_ir = raw  # uint8 in, normalised on the device, as in training
        return (normalize_batch(rgb, self.device, self.fmt), normalize_batch(ir, self.device, self.fmt),
                y_rgb.to(self.device, non_blocking=True), y_ir.to(self.device, non_blocking=True))

    def step(self, batch) -> None:
        forward_backward(self.net, self.criterion, batch, 0, self.steps_done, self.device, self.dtype, self.scaler)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps_done += 1
        _sync(self.device)


def _step_stats(times: list[float], batch_images: int) -> dict[str, Any]:
    total = sum(times)
    return {"steps": len(times), "step_time_ms_mean": 1000 * total / len(times),
            "step_time_ms_median": 1000 * statistics.median(times),
            "images_per_s": batch_images * len(times) / total if total > 0 else None}


def time_input_pipeline(p: _Pieces, batches: int) -> dict[str, Any]:
    """Batches/s of the loader alone (no model): fresh workers, the first batch (worker spawn) apart."""
    workers = p.cfg.data.workers
    start = time.perf_counter()
    it = iter(p.loader(batches + 1))
    next(it)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - start
    del it
    rate = batches / elapsed if elapsed > 0 else math.inf
    images = 2 * p.cfg.data.ids_per_batch * p.cfg.data.images_per_id
    return {"workers": workers, "prefetch_factor": PREFETCH_FACTOR if workers > 0 else None, "batches": batches,
            "first_batch_s": first, "batches_per_s": rate, "images_per_s": rate * images,
            # without workers the main process builds every batch: it counts as one worker
            "batches_per_s_per_worker": rate / max(1, workers)}


def time_model_step(p: _Pieces, steps: int, warmup: int) -> dict[str, Any]:
    """Step time with one batch resident on the device (no loading at all)."""
    batch = p.to_device(p.first_batch())
    for _ in range(warmup):
        p.step(batch)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        p.step(batch)
        times.append(time.perf_counter() - start)
    return _step_stats(times, 2 * p.cfg.data.ids_per_batch * p.cfg.data.images_per_id)


def time_together(p: _Pieces, steps: int, warmup: int) -> dict[str, Any]:
    """Loader and model as an epoch runs them: ``warmup`` untimed steps (they also spawn the workers),
    then ``steps`` timed ones."""
    start = time.perf_counter()
    it = iter(p.loader(warmup + steps))
    times, warm_s = [], None
    last = start
    for i in range(warmup + steps):
        p.step(p.to_device(next(it)))
        now = time.perf_counter()
        if i == warmup - 1:
            warm_s = now - start
        if i >= warmup:
            times.append(now - last)
        last = now
    del it
    out = _step_stats(times, 2 * p.cfg.data.ids_per_batch * p.cfg.data.images_per_id)
    queue = queued_ahead(p.cfg.data.workers)
    out.update(queued_ahead=queue, warmup_steps=warmup, warmup_s=warm_s if warm_s is not None else 0.0,
               note=(f"{steps} timed steps after {warmup} warm-up steps; the loader queues {queue} batches ahead "
                     f"({p.cfg.data.workers} workers x {PREFETCH_FACTOR}), so at most {queue} of the timed "
                     "batches were ready before the timing began") if queue else
                    (f"{steps} timed steps after {warmup} warm-up steps; no loader workers: each batch is built "
                     "in the training process, in series with the step"))
    return out


def bottleneck(input_pipeline: dict[str, Any], model_step: dict[str, Any]) -> dict[str, Any]:
    """Which part limits training, and how many loader workers keep up with the model step
    (batches/s per worker against the model's steps/s; assumes the rate grows with the workers
    up to the CPU cores)."""
    steps_per_s = 1000 / model_step["step_time_ms_mean"]
    per_worker = input_pipeline["batches_per_s_per_worker"]
    limited = input_pipeline["batches_per_s"] < steps_per_s
    need = max(1, math.ceil(steps_per_s / per_worker)) if per_worker > 0 else None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count()
    return {"bottleneck": "input pipeline" if limited else "model step",
            "workers_to_keep_up": need, "cpu_cores": cores,
            "bottleneck_note": (f"loader {input_pipeline['batches_per_s']:.2f} batches/s with "
                                f"{input_pipeline['workers']} workers ({per_worker:.2f} per worker) vs model "
                                f"{steps_per_s:.2f} steps/s: {need} workers keep up"
                                + (f" (more than the {cores} CPU cores here)" if need and cores and need > cores else ""))}


def bench(cfg: RunConfig, steps: int = 20, warmup: int = 3, parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
    """Time ``parts`` of training ``cfg`` (module doc), each after ``warmup`` untimed steps, with
    ``train.deterministic`` as configured. The top-level ``images_per_s``/``step_time_ms_*`` are
    those of ``together`` when it ran, else of the model step."""
    if steps < 1 or warmup < 0:
        raise MaceError(f"bench steps={steps} warmup={warmup}", "use steps >= 1 and warmup >= 0")
    unknown = set(parts) - set(PARTS)
    if unknown or not parts:
        raise MaceError(f"bench parts {sorted(unknown) or '(none)'}", f"choose from {', '.join(PARTS)}")
    tc = cfg.train
    if tc.threads is not None:
        torch.set_num_threads(max(1, tc.threads))
    device = resolve_device(tc.device)
    together_steps = drained_steps(steps, cfg.data.workers)
    input_batches = drained_steps(steps, cfg.data.workers)
    with determinism_mode(tc.deterministic, device):
        p = _Pieces(cfg, max(warmup + together_steps, input_batches + 1, 1))
        reset_peak_memory(device)
        out: dict[str, Any] = {}
        if "together" in parts:
            out["together"] = time_together(p, together_steps, warmup)
        if "model" in parts:
            out["model_step"] = time_model_step(p, steps, warmup)
        if "input" in parts:
            out["input_pipeline"] = time_input_pipeline(p, input_batches)
        peak = peak_memory_mb(device)
    batch_images = 2 * cfg.data.ids_per_batch * cfg.data.images_per_id
    headline = out.get("together") or out.get("model_step") or {}   # none when only the input pipeline ran
    report = {
        "device": str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "amp": str(p.dtype).replace("torch.", "") if p.dtype is not None else "off",
        "channels_last": tc.channels_last,
        "compile": tc.compile,
        "deterministic": tc.deterministic,
        "workers": cfg.data.workers,
        "torch_threads": torch.get_num_threads(),
        "backbone": cfg.model.backbone,
        "input": f"{cfg.data.height}x{cfg.data.width}",
        "batch_images": batch_images,
        "parameters": p.parameters,
        "warmup": warmup,
        "one_time": {"setup_s": p.setup_s, "warmup_steps": warmup,
                     "warmup_s": out["together"]["warmup_s"] if "together" in out else None,
                     "note": "building data, model and optimiser; then the warm-up steps, which spawn the loader "
                             "workers and pay the first-call set-up"},
        **out,
        "steps": headline.get("steps"),
        "images_per_s": headline.get("images_per_s"),
        "step_time_ms_mean": headline.get("step_time_ms_mean"),
        "step_time_ms_median": headline.get("step_time_ms_median"),
        "peak_memory_mb": peak,  # accelerator memory (None on CPU)
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # host process
    }
    if "input_pipeline" in out and "model_step" in out:
        report.update(bottleneck(out["input_pipeline"], out["model_step"]))
    return report


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
    metrics = evaluate(model, cfg, device)  # as the trainer calls it (autocast and channels_last as configured)
    _sync(device)
    protocol = metrics.get("protocol", {})
    return {"eval_s": time.perf_counter() - start, "eval_peak_memory_mb": peak_memory_mb(device),
            "eval_queries": protocol.get("num_query_images"), "eval_trials": protocol.get("trials"),
            "eval_mode": protocol.get("mode")}


def profile_bench(cfg: RunConfig, steps: int = 20, warmup: int = 3, evaluate_too: bool = True) -> dict[str, Any]:
    """The config as resolved (input pipeline, model step, both together, bottleneck), then the model
    step with AMP on/off × channels_last on/off (AMP variants collapse on CPU, where ``auto`` means
    off) and in both ``train.deterministic`` modes, then the full-protocol evaluation time; one
    JSON-ready dict."""
    cfg, note = resolve_pretrained(cfg)
    device = resolve_device(cfg.train.device)
    main = bench(cfg, steps=steps, warmup=warmup)
    amps = [cfg.train.amp] + (["off"] if amp_dtype(cfg.train.amp, device) is not None else [])
    rows = []
    for amp in amps:
        for channels_last in (True, False):
            if (amp, channels_last) == (cfg.train.amp, cfg.train.channels_last):
                r = main
            else:
                variant = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, amp=amp,
                                                                             channels_last=channels_last))
                r = bench(variant, steps=steps, warmup=warmup, parts=("model",))
            rows.append({"amp": r["amp"], "channels_last": channels_last, "deterministic": cfg.train.deterministic,
                         **{k: r["model_step"][k] for k in ("images_per_s", "step_time_ms_mean", "step_time_ms_median")},
                         "peak_memory_mb": r["peak_memory_mb"]})
    flipped = dataclasses.replace(cfg.train, deterministic=not cfg.train.deterministic)
    other = bench(dataclasses.replace(cfg, train=flipped), steps=steps, warmup=warmup, parts=("model",))
    by_mode = {cfg.train.deterministic: main["model_step"], not cfg.train.deterministic: other["model_step"]}
    det, fast = by_mode[True]["step_time_ms_mean"], by_mode[False]["step_time_ms_mean"]
    report: dict[str, Any] = {
        "config": f"{cfg.experiment}/{cfg.name}", "device": main["device"], "backbone": cfg.model.backbone,
        "input": main["input"], "batch_images": main["batch_images"], "steps": steps, "warmup": warmup,
        "pretrained": cfg.model.pretrained, "note": note,
        **{k: main[k] for k in ("amp", "channels_last", "deterministic", "workers", "one_time", "input_pipeline",
                                "model_step", "together", "bottleneck", "workers_to_keep_up", "cpu_cores",
                                "bottleneck_note")},
        "training": rows,  # model step alone (device-resident batch) per AMP x channels_last
        "determinism": {"amp": main["amp"], "channels_last": cfg.train.channels_last,
                        "deterministic_step_ms": det, "fast_step_ms": fast,
                        "deterministic_over_fast": det / fast if fast > 0 else None,
                        "note": "model step alone; deterministic = train.deterministic true (deterministic "
                                "algorithms, cuDNN autotune off); fast = false (cuDNN autotune, no "
                                "deterministic algorithms)"},
    }
    report["best_images_per_s"] = max(r["images_per_s"] for r in rows)
    if evaluate_too:
        from mace_core.data.datasets import _records_for

        rgb, ir = _records_for(cfg.data.dataset, cfg.data.root, cfg.data.include_val, cfg.data.trial)
        report.update(time_evaluation(cfg, len({r.pid for r in rgb} & {r.pid for r in ir})))
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report

"""The training loop: one entry point for CPU, one GPU and ``torchrun`` (DDP).

``train(cfg, run_dir, resume)`` builds data, model, loss and optimiser from the config, trains
``cfg.train.epochs`` epochs and writes the run directory (see :mod:`mace_core.engine.rundir`). The loop
is here; what it is prepared from (seeds, determinism, the training set, early checks) is
:mod:`mace_core.engine.prepare`, one step and its loss accounting :mod:`mace_core.engine.steps`.

Exact resume: the checkpoint written after every ``train.checkpoint_every``-th epoch and after the
last one holds model, optimiser, grad scaler, epoch and step counters, the log history and every RNG
state; batches draw their augmentation from (seed, epoch, batch, rank) alone
(:mod:`mace_core.engine.batches`) and the sampler is re-seeded by epoch; the lr is a pure function
of progress. A run killed anywhere (``kill -9`` included) and resumed therefore repeats the epochs
since its last checkpoint exactly and ends, on CPU, bit-identical to an uninterrupted run.

Model selection is never silently on the test set: results report the final epoch unless
``train.select_on_test`` asks for the thesis convention (best epoch on the test set), which is then
labelled in results.json and in the printed summary. Early stopping watches the same test metric, so
it is allowed only together with ``select_on_test``.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from mace_core.config import RunConfig
from mace_core.engine import checkpoint as ck
from mace_core.engine import rundir
from mace_core.engine.batches import make_loader
from mace_core.engine.checkpoint import BEST_ON_TEST
from mace_core.engine.device import (
    amp_dtype,
    eval_amp_dtype,
    barrier,
    broadcast_buffers,
    init_distributed,
    peak_memory_mb,
    reset_peak_memory,
    resolve_device,
)
from mace_core.engine.prepare import (
    _check_eval_settings,
    _check_resume_config,
    build_training_set,
    configure_determinism,
    seed_everything,
    selection_label,
)
from mace_core.engine.schedule import apply_lr, build_optimizer, lr_factor
from mace_core.engine.steps import StepStats, forward_backward
from mace_core.errors import MaceError

_FAULT_ENV = "MACE_FAULT_AT"  # test hook "EPOCH:STEP" (1-based epoch): SIGKILL self before that step


def evaluate(model: torch.nn.Module, cfg: RunConfig, device: torch.device,
             feature_cache: dict | None = None) -> dict[str, Any]:
    """Test-set metrics of ``model`` under the run's evaluation settings, as a plain dict
    (``feature_cache``: see :func:`mace_core.engine.evaluate.evaluate_sysu_model`)."""
    from mace_core.engine.evaluate import evaluate_regdb_model, evaluate_sysu_model

    from mace_core.rerank import rerank_settings

    e, d = cfg.eval, cfg.data
    common = {"distance": e.distance, "flip": e.flip, "occlusion": e.occlusion, "occlusion_fill": e.occlusion_fill,
              "occlusion_seed": e.occlusion_seed, "cache_dir": d.cache_dir, "batch_size": e.batch_size,
              "device": device, "direction": e.direction,
              "rerank": rerank_settings(e.rerank, e.rerank_k1, e.rerank_k2, e.rerank_lambda),
              # loaded and computed as in training: workers, pinned memory, autocast, memory format
              "workers": d.workers, "pin_memory": d.pin_memory, "amp": eval_amp_dtype(cfg, device),
              "memory_format": torch.channels_last if cfg.train.channels_last else torch.contiguous_format}
    was_training = model.training
    model.eval()
    try:
        if d.dataset == "sysu":
            result = evaluate_sysu_model(model, d.root, (d.height, d.width), mode=e.mode, gallery=e.gallery,
                                         perm_file=e.perm_file, shots=e.shots, trials=e.trials,
                                         multi_query=e.multi_query, fusion=e.fusion, feature_cache=feature_cache,
                                         **common)
        elif d.dataset == "regdb":
            result = evaluate_regdb_model(model, d.root, (d.height, d.width), trial=d.trial, **common)
        elif d.dataset == "llcm":
            from mace_core.engine.evaluate import evaluate_llcm_model

            result = evaluate_llcm_model(model, d.root, (d.height, d.width), trials=e.trials, **common)
        else:
            raise MaceError(f"data.dataset={d.dataset!r} is not known", "use sysu, regdb or llcm")
    finally:
        model.train(was_training)
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


def headline(metrics: dict[str, Any]) -> float:
    """The selection score of an evaluation: mean Rank-1 over trials."""
    for key in ("rank1", "Rank-1", "r1"):
        if key in metrics:
            value = metrics[key]
            return float(value["mean"] if isinstance(value, dict) else value)
    if "mean" in metrics and isinstance(metrics["mean"], dict):
        return headline(metrics["mean"])
    raise MaceError(f"evaluation result has no rank1 entry (keys: {sorted(metrics)})", "report this as a bug")


def _fault_point() -> tuple[int, int] | None:
    raw = os.environ.get(_FAULT_ENV)
    if not raw:
        return None
    epoch, step = raw.split(":")
    return int(epoch), int(step)


# ---------------------------------------------------------------------------------------------

def train(cfg: RunConfig, run_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
          keep: dict[str, Any] | None = None, monitor: Callable[..., None] | None = None) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir`` (default: :func:`rundir.default_run_dir`); return results.json's content
    (an empty dict on ranks other than 0). ``keep``, when given, receives the trained ``model`` (every rank).
    ``monitor`` (rank 0), e.g. a notebook's live progress: called ``monitor("step", epoch=, epochs=, batch=,
    batches=, loss=)`` after every batch (``loss``, the epoch's running mean, at the ``log_every`` host
    reads, else None) and ``monitor("epoch", record=)`` with each epoch's log row."""
    from mace_core.data.sampler import check_paired
    from mace_core.data.transforms import normalize_batch
    from mace_core.losses import MaceLoss, ens_weight_at, kd_effective_weight_at, kd_weight_at
    from mace_core.models import build_model, count_parameters

    tc = cfg.train
    if tc.grad_accum < 1:
        raise MaceError(f"train.grad_accum={tc.grad_accum} must be >= 1", "use 1 for no accumulation")
    if tc.epochs < 1:
        raise MaceError(f"train.epochs={tc.epochs} must be >= 1", "train at least one epoch")
    if tc.early_stop_patience > 0 and not tc.select_on_test:
        raise MaceError("train.early_stop_patience > 0 watches the test-set metric, i.e. selects on test",
                        "also set train.select_on_test=true (then labelled as such), or keep patience 0")
    if tc.checkpoint_every < 1:
        raise MaceError(f"train.checkpoint_every={tc.checkpoint_every} must be >= 1",
                        "use 1 to write a checkpoint after every epoch, k for every k-th (the last is always written)")
    if tc.early_stop_patience > 0 and tc.eval_every <= 0:
        raise MaceError("train.early_stop_patience needs evaluations during training",
                        "set train.eval_every to k > 0")
    _check_eval_settings(cfg)

    if tc.threads is not None:
        if tc.threads < 1:
            raise MaceError(f"train.threads={tc.threads} must be >= 1", "use e.g. 1, or null for torch's default")
        torch.set_num_threads(tc.threads)
    if tc.deterministic:  # cuBLAS reads this when its first handle is created: set it before any CUDA work
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    info = init_distributed(tc.device)
    device = resolve_device(tc.device, info.local_rank)
    dtype = amp_dtype(tc.amp, device)
    eval_amp_dtype(cfg, device)   # an unknown eval.amp stops here, not after the training
    configure_determinism(tc.deterministic, device)
    run_dir = Path(run_dir) if run_dir is not None else rundir.default_run_dir(cfg)
    last_path = run_dir / "checkpoints" / "last.pt"
    best_path = run_dir / "checkpoints" / "best.pt"

    if rundir.is_complete(run_dir):
        if resume:
            return json.loads((run_dir / rundir.RESULTS).read_text())
        raise MaceError(f"run directory {run_dir} already holds a complete run",
                        "choose another --run-dir, or delete it to retrain")
    ckpt = None
    if last_path.is_file():
        if not resume:
            raise MaceError(f"run directory {run_dir} holds an unfinished run ({last_path})",
                            "pass --resume to continue it, or choose another --run-dir")
        ckpt = ck.load_checkpoint(last_path)
        _check_resume_config(ckpt["config"], cfg)

    t_start = time.perf_counter()
    seed_everything(tc.seed)
    data, dataset, sampler = build_training_set(cfg, info)
    t_data = time.perf_counter() - t_start
    model = build_model(cfg.model, data.num_classes)
    n_params = count_parameters(model)
    memory_format = torch.channels_last if tc.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = build_optimizer(model, tc)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    criterion = MaceLoss(cfg.loss)

    state: dict[str, Any] = {"epoch": 0, "global_step": 0, "history": [], "best": None, "bad_rounds": 0,
                             "train_time_s": 0.0, "images": 0, "stopped_early": False}
    if ckpt is not None:
        ck.load_model_state(model, ckpt["model"], source=str(last_path))
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        for key in state:
            state[key] = ckpt["state"].get(key, state[key])
        ck.restore_rng(ckpt["rng"])
    if info.is_main:
        rundir.prepare(run_dir, cfg, device)
        if ckpt is not None:  # drop rows written after the checkpoint by the interrupted run
            rundir.write_log(run_dir, state["history"])
    barrier(info)

    net: torch.nn.Module = model
    if info.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            # every trainable MaceNet parameter receives a gradient each step (the frozen BN-neck biases
            # do not require one), so no unused-parameter search is needed; the gloo test checks it
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if tc.compile:
        net = torch.compile(net)
    loader, keys = make_loader(dataset, tc.seed, info.rank, cfg.data.workers,
                               cfg.data.pin_memory and device.type == "cuda", cfg.data.persistent_workers)
    fault = _fault_point()
    label = selection_label(cfg)
    # wall-time breakdown of this call (benchmarks/study_breakdown.py): data, model set-up, steps, evaluation
    timing = {"data_s": t_data, "setup_s": time.perf_counter() - t_start - t_data, "eval_s": 0.0,
              "checkpoint_s": 0.0}
    if progress and info.is_main:
        tqdm.write(f"{cfg.name}: {model.pretrained_weights} weights; {kd_weight_line(cfg)}")
    final_metrics: dict[str, Any] | None = None

    # a run killed after its early-stop checkpoint resumes as stopped, not training on
    for epoch in range(state["epoch"], state["epoch"] if state["stopped_early"] else tc.epochs):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        n = len(batches)
        if n == 0:
            raise MaceError("the sampler produced no batches", "check data.ids_per_batch against the identities")
        keys.set(epoch, batches)
        reset_peak_memory(device)
        net.train()
        stats = StepStats(device, info)
        t0 = time.perf_counter()
        bar = tqdm(total=n, desc=f"epoch {epoch + 1}/{tc.epochs}", disable=not (progress and info.is_main),
                   leave=False, dynamic_ncols=True)
        optimizer.zero_grad(set_to_none=True)
        for b, (rgb, ir, y_rgb, y_ir) in enumerate(loader):
            if fault == (epoch + 1, b):
                os.kill(os.getpid(), signal.SIGKILL)
            check_paired(y_rgb, y_ir)  # on the host-side labels: no device sync
            # uint8 from the workers; normalised here on the device in one batched pass
            rgb = normalize_batch(rgb, device, memory_format)
            ir = normalize_batch(ir, device, memory_format)
            y_rgb = y_rgb.to(device, non_blocking=True)
            y_ir = y_ir.to(device, non_blocking=True)
            group_start = b - b % tc.grad_accum
            group_size = min(tc.grad_accum, n - group_start)
            steps_now = b - group_start + 1 == group_size
            sync = contextlib.nullcontext() if steps_now or not info.enabled else net.no_sync()
            with sync:
                _, _, terms = forward_backward(net, criterion, (rgb, ir, y_rgb, y_ir), epoch, b, device,
                                               dtype, scaler, group_size)
            if steps_now:
                apply_lr(optimizer, lr_factor(tc, epoch + (b + 1) / n))
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                state["global_step"] += 1
            # stays on the device; the weights are logged once per epoch, the ensemble term only when it is on
            stats.add({k: v for k, v in terms.items()
                       if k != "ens_weight" and (k != "kd_ens" or cfg.loss.ens_kd_weight > 0)})
            bar.update(1)
            loss_now = None
            if tc.log_every and (b + 1) % tc.log_every == 0 and b + 1 < n:
                # the logging interval: the terms reach the host (and the ranks agree on finiteness) here
                sofar = stats.read(epoch)
                loss_now = sofar['loss'] / sofar['batches']
                bar.set_postfix(loss=f"{loss_now:.3f}", lr=f"{optimizer.param_groups[-1]['lr']:.2e}")
            if monitor is not None and info.is_main:
                monitor("step", epoch=epoch + 1, epochs=tc.epochs, batch=b + 1, batches=n, loss=loss_now)
        bar.close()
        sums = stats.read(epoch)  # summed over the ranks: the epoch's one host read besides the intervals
        elapsed = time.perf_counter() - t0

        batches_all = sums.pop("batches")
        names = sorted(sums)
        images = int(2 * cfg.data.ids_per_batch * cfg.data.images_per_id * batches_all)
        state["train_time_s"] += elapsed
        state["images"] += images
        record: dict[str, Any] = {"epoch": epoch + 1, "step": state["global_step"]}
        record.update({k: sums[k] / batches_all for k in names})
        record.update({
            "lr": optimizer.param_groups[-1]["lr"],
            "lr_backbone": optimizer.param_groups[0]["lr"],
            "lambda2": float(kd_weight_at(epoch, cfg.loss)),
            # the weight actually applied to loss.kd: lambda_2 x T^2 with loss.kd_t2_scaling
            "kd_weight_effective": float(kd_effective_weight_at(epoch, cfg.loss)),
            "epoch_time_s": elapsed,
            "images_per_s": images / elapsed if elapsed > 0 else None,
            "peak_gpu_mem_mb": peak_memory_mb(device),
        })
        if cfg.loss.ens_kd_weight > 0:
            record["ens_weight_effective"] = float(ens_weight_at(epoch, cfg.loss))

        # every rank holds rank 0's BatchNorm statistics from here on: one model, whatever the rank
        broadcast_buffers(model, info)
        last_epoch = epoch + 1 == tc.epochs
        due = tc.eval_every > 0 and (epoch + 1) % tc.eval_every == 0
        stop = False
        if due or last_epoch:
            if info.is_main:
                t_eval = time.perf_counter()
                metrics = evaluate(model, cfg, device)
                record["eval_time_s"] = time.perf_counter() - t_eval
                timing["eval_s"] += record["eval_time_s"]
                record["eval"] = metrics
                score = headline(metrics)
                if last_epoch:
                    final_metrics = metrics
                if state["best"] is None or score > state["best"]["score"]:
                    state["best"] = {"epoch": epoch + 1, "score": score, "metrics": metrics}
                    state["bad_rounds"] = 0
                    if tc.select_on_test:
                        ck.save_checkpoint(best_path, {"model": model.state_dict(), "config": cfg.to_dict(),
                                                       "num_classes": data.num_classes, "epoch": epoch + 1,
                                                       "model_selection": BEST_ON_TEST, "metrics": metrics})
                else:
                    state["bad_rounds"] += 1
                stop = 0 < tc.early_stop_patience <= state["bad_rounds"]
            if info.enabled:
                flag = [stop]
                dist.broadcast_object_list(flag, src=0)
                stop = flag[0]
        state["stopped_early"] = stop
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if monitor is not None and info.is_main:
            monitor("epoch", record=record)
        if progress and info.is_main:
            line = (f"epoch {epoch + 1}/{tc.epochs}: loss {record['loss']:.3f}, train acc "
                    f"{100 * record['train_acc']:.1f} %, lr {record['lr']:.2e}, {record['images_per_s']:.0f} img/s")
            if "eval" in record:
                line += f", test Rank-1 {100 * headline(record['eval']):.1f} %"
            tqdm.write(line)
        # every k-th epoch, the last one and an early stop; resume repeats the epochs after the last write
        checkpoint_due = (epoch + 1) % tc.checkpoint_every == 0 or last_epoch or stop
        if info.is_main and checkpoint_due:
            t_ckpt = time.perf_counter()
            ck.save_checkpoint(last_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None, "state": state,
                "rng": ck.capture_rng(), "config": cfg.to_dict(), "num_classes": data.num_classes,
                "world_size": info.world_size})
            timing["checkpoint_s"] += time.perf_counter() - t_ckpt
        if info.is_main:
            rundir.write_log(run_dir, state["history"])
        barrier(info)
        if stop:
            if info.is_main:
                final_metrics = record.get("eval")
            break

    if info.is_main and final_metrics is None:
        # early stop or resume after the last epoch's checkpoint: evaluate the weights as they are
        t_eval = time.perf_counter()
        final_metrics = state["history"][-1].get("eval") or evaluate(model, cfg, device)
        timing["eval_s"] += time.perf_counter() - t_eval
    if keep is not None:
        keep["model"] = model
    results: dict[str, Any] = {}
    if info.is_main:
        best = state["best"]
        selected = best if tc.select_on_test and best is not None else None
        results = {
            "name": cfg.name,
            "experiment": cfg.experiment,
            "dataset": cfg.data.dataset,
            "data_source": cfg.data.source,
            "model_selection": label,
            "selected_epoch": selected["epoch"] if selected else state["epoch"],
            "metrics": selected["metrics"] if selected else final_metrics,
            "final_epoch": state["epoch"],
            "final_epoch_metrics": final_metrics,
            "best_epoch_on_test": best["epoch"] if best else None,
            "parameters": n_params,
            "num_classes": data.num_classes,
            "epochs_trained": state["epoch"],
            "steps": state["global_step"],
            "stopped_early": state["stopped_early"],
            "train_time_s": state["train_time_s"],
            "images_per_s": state["images"] / state["train_time_s"] if state["train_time_s"] > 0 else None,
            # seconds of this call (a resumed run: of its last part) in data loading, model set-up,
            # evaluation and checkpoint writing; train_time_s holds the training steps
            "timing": {k: round(v, 3) for k, v in timing.items()},
            "world_size": info.world_size,
            "device": str(device),
            "amp": str(dtype).replace("torch.", "") if dtype is not None else "off",
            "pretrained_weights": model.pretrained_weights,   # resolved timm tag, file sha256 or "none"
            "kd_weight_effective": kd_effective_weight_at(state["epoch"] - 1, cfg.loss),  # at the last epoch
            "config": cfg.to_dict(),
        }
        rundir.write_results(run_dir, results)  # last: its presence marks the run complete
    barrier(info)
    return results


def kd_weight_line(cfg: RunConfig) -> str:
    """The distillation weights as applied, e.g. ``KD weight λ₂·T² = 1 × 9 = 9 (sigmoid ramp over 60
    epochs)``; the ensemble-learning weight too when it is on."""
    from mace_core.losses import kd_scale

    lc = cfg.loss
    scale = kd_scale(lc)
    ramp = f"sigmoid ramp over {lc.kd_rampup_epochs} epochs" if lc.kd_schedule == "sigmoid" else "fixed"
    factor = f"·T² = {lc.kd_weight:g} × {scale:g} = {lc.kd_weight * scale:g}" if lc.kd_t2_scaling else \
        f" = {lc.kd_weight:g}, no T² scaling"
    line = f"KD weight λ₂{factor} ({ramp})"
    if lc.ens_kd_weight > 0:
        line += f"; ensemble KD weight λ₃{'·T²' if lc.kd_t2_scaling else ''} = {lc.ens_kd_weight * scale:g}"
    return line


def train_config_summary(results: dict[str, Any]) -> str:
    """One line for the terminal, always naming the data source and the model-selection rule, and
    the starting weights and distillation weight as applied."""
    m = results.get("metrics") or {}
    try:
        score = f"IR->RGB Rank-1 {100 * headline(m):.1f} %"
    except MaceError:
        score = "no metrics"
    extra = ""
    if isinstance(results.get("config"), dict):
        from mace_core.config import from_dict

        try:
            cfg = from_dict(results["config"])
            extra = f"; weights: {results.get('pretrained_weights', cfg.model.pretrained)}; {kd_weight_line(cfg)}"
        except MaceError:  # a results.json from another code version: the line stays as it was
            extra = ""
    return (f"{results['name']}: {score} [{results['model_selection']}, epoch {results['selected_epoch']}; "
            f"data: {results['data_source']}; {results['steps']} steps, {results['train_time_s']:.0f} s{extra}]")



"""`mace study dry-run`: the exact paper configuration end to end, with a capped number of steps.

What a first real run would do, in order, each stage timed: resolve the config (profile +
experiment 0, as the study resolves it), check the disk space of every cache, check the data
(every image decoded), build the image caches, train ``steps`` steps with the real trainer (which
ends with its full all-search evaluation: 3,803 queries, 10 trials on the real release), evaluate
indoor search, RegDB in both directions when a RegDB root is given, and, when an LLCM root is
given, an LLCM stage (its data check, ``steps`` steps of the same config trained on LLCM, then the
LLCM evaluation in both directions). Per stage it records the
wall time, the peak memory of the process and of its loader workers (sampled), the cache size on
disk and images/s. The table is printed and written as JSON (atomically).

The projection of the full run is built from steady-state parts only, each counted as often as the
full run pays it: one-time costs (the trainer's start-up, worker spawn and first-call set-up: its
wall time less its steady steps, evaluation and checkpoint) + epochs × steps × the steady step time
(loader and model together after a warm-up, over enough steps to drain the loader's queue: see
:mod:`mace_core.engine.bench`) + evaluations × the trainer's evaluation time alone + checkpoint
writes (every ``train.checkpoint_every`` epochs and the last) × the time of one write.

ImageNet weights that cannot be loaded here (offline) are replaced by random init *only* in this
dry run, and the JSON and the table say so: timings and memory do not depend on the weights.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from mace_core.config import RunConfig, from_dict, merge, parse_override
from mace_core.errors import MaceError
from mace_core.utils.atomic import atomic_write_json

EXPERIMENT, VARIANT = "00_baseline", "baseline"


def unreclaimable_bytes(pid: int) -> int:
    """Anonymous + shared-memory PSS of a process: what the kernel cannot drop under pressure (the
    memory-mapped image cache is page cache, which it can). Linux; elsewhere psutil's USS."""
    try:
        fields = {}
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("Pss_Anon", "Pss_Shmem"):
                    fields[key] = int(rest.split()[0]) * 1024
        if fields:
            return sum(fields.values())
    except OSError:
        pass
    import psutil

    return psutil.Process(pid).memory_full_info().uss


class MemorySampler:
    """Peak resident memory of this process, and peak unreclaimable memory of it plus its children
    (loader workers), sampled in a thread."""

    def __init__(self, interval: float = 0.5):
        import psutil

        self.proc, self.interval = psutil.Process(), interval
        self.peak_rss = self.peak_private = self.peak_workers_private = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        try:
            rss = self.proc.memory_info().rss
            mine = unreclaimable_bytes(self.proc.pid)
            workers = 0
            for child in self.proc.children(recursive=True):
                try:
                    workers += unreclaimable_bytes(child.pid)
                except (psutil.Error, OSError):
                    pass  # a worker that just exited
        except (psutil.Error, OSError):
            return
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_private = max(self.peak_private, mine + workers)
        self.peak_workers_private = max(self.peak_workers_private, workers)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def paper_config(profile: str, data_root, params_dir="params", overrides=(), steps: int = 4) -> RunConfig:
    """The study's config of experiment 0 on ``profile``, data at ``data_root``, ``overrides``
    (``key=value``, for tests) applied, capped at one epoch of ``steps`` steps, no mid-run evaluation."""
    from mace_core.study.variants import resolve

    if not isinstance(steps, int) or steps < 1:
        raise MaceError(f"--steps must be a positive integer, got {steps!r}", "pass e.g. --steps 4")
    v = resolve(EXPERIMENT, VARIANT, profile, params_dir)
    merged = merge(v.config.to_dict(), {"data": {"root": str(Path(data_root).expanduser().resolve())}})
    for text in overrides:
        merged = merge(merged, parse_override(text))
    merged = merge(merged, {"train": {"epochs": 1, "steps_per_epoch": steps, "eval_every": 0,
                                      "early_stop_patience": 0}})
    return from_dict(merged)


def _disk_bytes(files) -> int:
    total = 0
    for f in files:
        try:
            total += os.stat(f).st_blocks * 512
        except OSError:
            pass
    return total


def _mb(n: float | None) -> float | None:
    return None if n is None else round(n / 2**20, 1)


class _Stages:
    def __init__(self, progress: bool):
        self.rows: list[dict[str, Any]] = []
        self.progress = progress

    def run(self, name: str, fn, images: int | None = None):
        """Run ``fn() -> (result, extra dict)``; record wall time, memory and images/s."""
        if self.progress:
            print(f"dry run: {name} ...", flush=True)
        start = time.perf_counter()
        with MemorySampler() as mem:
            result, extra = fn()
        wall = time.perf_counter() - start
        n = extra.pop("images", images)
        row = {"stage": name, "wall_s": round(wall, 2), "peak_rss_mb": _mb(mem.peak_rss),
               "peak_private_mb": _mb(mem.peak_private), "workers_private_mb": _mb(mem.peak_workers_private),
               "images": n, "images_per_s": round(n / wall, 1) if n and wall > 0 else None}
        row.update(extra)
        self.rows.append(row)
        return result


def dry_run(data_root, profile: str = "paper", regdb_root=None, steps: int = 4, json_out=None,
            params_dir="params", overrides=(), work_dir=None, quick_check: bool = False,
            progress: bool = True, warmup: int = 3, llcm_root=None) -> dict[str, Any]:
    """Run the stages (module doc) and return the report; ``json_out`` receives it as JSON."""
    from mace_core.engine.bench import cache_only_hub_when_offline

    if not isinstance(warmup, int) or warmup < 1:
        raise MaceError(f"--warmup must be a positive integer, got {warmup!r}",
                        "pass e.g. --warmup 3 (the first step pays one-time set-up and is never timed)")
    with cache_only_hub_when_offline():
        return _dry_run(data_root, profile, regdb_root, steps, json_out, params_dir, tuple(overrides), work_dir,
                        quick_check, progress, warmup, llcm_root)


def _dry_run(data_root, profile, regdb_root, steps, json_out, params_dir, overrides, work_dir, quick_check,
             progress, warmup, llcm_root=None) -> dict[str, Any]:
    from mace_core.data import cache as cache_mod
    from mace_core.data import check as check_mod
    from mace_core.data.datasets import load_training_data, test_cache_groups
    from mace_core.data.sysu import training_set
    from mace_core.engine import checkpoint as ck
    from mace_core.engine.bench import resolve_pretrained
    from mace_core.engine.device import resolve_device
    from mace_core.engine.train import evaluate, train
    from mace_core.study.variants import resolve_path

    stages = _Stages(progress)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    cfg = stages.run("config", lambda: (paper_config(profile, data_root, params_dir, overrides, steps), {}))
    cfg, weights_note = stages.run("ImageNet weights", lambda: (resolve_pretrained(cfg), {}))
    d = cfg.data
    size = (d.height, d.width)
    regdb_cfg = None
    if regdb_root is not None:
        regdb_cfg = dataclasses.replace(cfg, data=dataclasses.replace(
            d, dataset="regdb", root=str(Path(regdb_root).expanduser().resolve()), trial=1))

    def groups():
        ts = training_set(d.root, include_val=d.include_val)
        tag = f"sysu-train{'+val' if d.include_val else ''}"
        out = [(ts.rgb, f"{tag}-rgb"), (ts.ir, f"{tag}-ir"), *test_cache_groups("sysu", d.root)]
        if regdb_cfg is not None:
            out += test_cache_groups("regdb", regdb_cfg.data.root, 1)
        return out

    def preflight():
        plan = cache_mod.preflight(groups(), size, d.cache_dir)
        free = shutil.disk_usage(Path(plan["files"][0]["file"]).parent).free
        return plan, {"cache_needed_mb": _mb(plan["bytes"]), "cache_to_build_mb": _mb(plan["to_build_bytes"]),
                      "disk_free_mb": _mb(free)}

    plan = stages.run("disk space and writability", preflight)

    def data_check():
        decode = 50 if quick_check else "all"
        reports = [check_mod.check("sysu", d.root, decode=decode)]
        if regdb_cfg is not None:
            reports.append(check_mod.check("regdb", regdb_cfg.data.root, trial=1, decode=decode))
        problems = [f"{r.dataset}: {p}" for r in reports for p in r.problems]
        if problems:
            raise MaceError(f"the data check found {len(problems)} problem(s): {problems[0]}",
                            "fix the dataset (see `mace data check`) before a real run")
        decoded = [n for r in reports for n in r.notes if n.startswith("decoded")]
        release = [n.split(":")[0].split(" (")[0] for r in reports for n in r.notes if "release" in n]
        return reports, {"images": sum(r.counts.get("RGB images", 0) + r.counts.get("IR images", 0)
                                       + r.counts.get("visible images", 0) + r.counts.get("thermal images", 0)
                                       for r in reports) if not quick_check else None,
                         "note": "; ".join(decoded + release)}

    stages.run("data check (every image decoded)" if not quick_check else "data check (quick)", data_check)

    def build_caches():
        load_training_data("sysu", d.root, size, cache_dir=d.cache_dir, include_val=d.include_val)
        for records, desc in groups()[2:]:
            if records:
                cache_mod.cached_images(records, size, d.cache_dir, desc=desc)
        files = [f["file"] for f in plan["files"]]
        return None, {"images": sum(f["images"] for f in plan["files"] if not f["built"]),
                      "cache_on_disk_mb": _mb(_disk_bytes(files)),
                      "note": f"{len(files)} cache files at {size[0]}x{size[1]} uint8"}

    stages.run(f"image caches ({size[0]}x{size[1]})", build_caches)

    run_dir = Path(work_dir) if work_dir is not None else resolve_path("runs", params_dir) / "dry-run" / profile
    shutil.rmtree(run_dir, ignore_errors=True)  # a dry run's own folder: the previous dry run
    kept: dict[str, Any] = {}

    def training():
        start = time.perf_counter()
        results = train(cfg, run_dir, progress=progress, keep=kept)
        kept["wall_s"] = time.perf_counter() - start
        return results, {"images": None, "images_per_s_train": round(results["images_per_s"], 1),
                         "amp": results["amp"], "device": results["device"],
                         "note": f"{results['steps']} steps through the real trainer (start-up and first-call "
                                 f"set-up included), then its evaluation (all-search, {cfg.eval.trials} trials) "
                                 "and checkpoint"}

    results = stages.run(f"train {steps} steps + all-search evaluation", training)
    train_row = stages.rows[-1]
    train_row["images_per_s"] = train_row.pop("images_per_s_train")
    last_epoch = ck.load_checkpoint(run_dir / "checkpoints" / "last.pt")["state"]["history"][-1]
    eval_all_s = last_epoch["eval_time_s"]
    train_row["note"] += f"; evaluation alone {eval_all_s:.1f} s"
    protocol = (results.get("metrics") or {}).get("protocol", {})

    def checkpoint_write():
        # the trainer's own checkpoint, back on the training device, written again as the trainer writes it
        device = resolve_device(cfg.train.device)
        payload = ck.load_checkpoint(run_dir / "checkpoints" / "last.pt", map_location=device)
        payload.pop("format", None)
        target = run_dir / "checkpoints" / "timing.pt"
        start = time.perf_counter()
        ck.save_checkpoint(target, payload)
        write_s = time.perf_counter() - start
        size = target.stat().st_size
        target.unlink()
        return write_s, {"checkpoint_mb": _mb(size), "note": f"one write of last.pt ({_mb(size)} MiB): {write_s:.2f} s"}

    checkpoint_s = stages.run("checkpoint write", checkpoint_write)
    checkpoint_mb = stages.rows[-1]["checkpoint_mb"]

    def steady_state():
        from mace_core.engine.bench import bench

        r = bench(cfg, steps=steps, warmup=warmup, parts=("together",))
        t = r["together"]
        return r, {"images": None, "step_time_s": round(t["step_time_ms_mean"] / 1000, 4),
                   "note": f"steady step {t['step_time_ms_mean']:.1f} ms: {t['note']}"}

    steady = stages.run(f"steady-state steps (after {warmup} warm-up)", steady_state)
    # images/s of the timed steps alone (the stage's wall time also builds the data and model)
    stages.rows[-1]["images_per_s"] = round(steady["together"]["images_per_s"], 1)
    step_s = steady["together"]["step_time_ms_mean"] / 1000
    # what the trainer paid beyond its steady steps, its evaluation and its checkpoint: start-up, worker spawn,
    # first-call set-up (never negative: the parts are measured apart)
    one_time_s = max(0.0, kept["wall_s"] - results["steps"] * step_s - eval_all_s - checkpoint_s)

    device = resolve_device(cfg.train.device)
    model = kept["model"]

    def sysu_eval(mode: str):
        def fn():
            m = evaluate(model, dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, mode=mode)), device)
            p = m["protocol"]
            return m, {"images": p["num_query_images"] + p["num_candidates"],
                       "note": f"{p['num_query_images']} queries, {p['num_candidates']} candidates, {p['trials']} trials, "
                               f"Rank-1 {100 * m['mean']['rank1']:.1f} %"}
        return fn

    indoor = stages.run("evaluation indoor-search", sysu_eval("indoor"))
    regdb = {}
    if regdb_cfg is not None:
        def regdb_eval():
            # The trial's test images embedded once; both directions rank the same features (v2t, and
            # t2v on the transposed distances), as evaluate_regdb_model does for each direction.
            import torch

            from mace_core.data.cache import cached_images
            from mace_core.data.regdb import regdb_split
            from mace_core.data.transforms import test_transform
            from mace_core.engine.device import eval_amp_dtype
            from mace_core.engine.evaluate import extract_features
            from mace_core.engine.retrieval import regdb_trial

            e = cfg.eval
            visible, thermal = regdb_split(regdb_cfg.data.root, 1, "test")
            tf = test_transform(size)
            feats = {}
            # loaded and computed as the trainer's evaluation does (workers, pinned memory, autocast,
            # memory format), so the stage times the path a real run takes
            rd = regdb_cfg.data
            loading = {"workers": rd.workers, "pin_memory": rd.pin_memory,
                       "amp": eval_amp_dtype(regdb_cfg, device),
                       "memory_format": torch.channels_last if regdb_cfg.train.channels_last else torch.contiguous_format}
            for kind, recs, modality in (("visible", visible, "rgb"), ("thermal", thermal, "ir")):
                images = cached_images(recs, size, d.cache_dir, desc=f"regdb-{kind}-test-1")
                feats[kind] = extract_features(model, images, modality, tf, e.batch_size, device, e.flip, **loading)
            out = {}
            for direction in ("v2t", "t2v"):
                out[direction] = regdb_trial(feats["visible"], [r.pid for r in visible], feats["thermal"],
                                             [r.pid for r in thermal], 1, direction, e.distance).to_dict()
            return out, {"images": len(visible) + len(thermal),
                         "note": f"trial 1, {len(visible)} visible + {len(thermal)} thermal; Rank-1 v2t "
                                 f"{100 * out['v2t']['mean']['rank1']:.1f} %, t2v {100 * out['t2v']['mean']['rank1']:.1f} %"}

        regdb = stages.run("RegDB both directions", regdb_eval)

    llcm = llcm_stage(stages, cfg, llcm_root, run_dir, steps, quick_check, progress) if llcm_root is not None else {}

    full_steps = cfg_full_steps(profile, params_dir, results["num_classes"], d.root, d.include_val)
    report = {
        "profile": profile, "config": f"{EXPERIMENT}/{VARIANT}", "started": started,
        "data_root": str(d.root), "regdb_root": regdb_cfg.data.root if regdb_cfg else None,
        "device": train_row["device"], "amp": train_row["amp"], "backbone": cfg.model.backbone,
        "last_stride1": cfg.model.last_stride1, "input": f"{size[0]}x{size[1]}", "steps": steps, "warmup": warmup,
        "pretrained": cfg.model.pretrained, "weights_note": weights_note,
        "overrides": list(overrides), "exact_paper_config": not overrides,
        "stages": stages.rows,
        "all_search": {"queries": protocol.get("num_query_images"), "candidates": protocol.get("num_candidates"),
                       "trials": protocol.get("trials"), "seconds_estimate": round(eval_all_s, 1),
                       "rank1": (results.get("metrics") or {}).get("mean", {}).get("rank1")},
        "indoor_search": {"queries": indoor["protocol"]["num_query_images"], "trials": indoor["protocol"]["trials"]},
        "regdb": {k: {"rank1": v["mean"]["rank1"]} for k, v in regdb.items()},
        "llcm": llcm,
        "projection": (projection := project(full_steps, one_time_s, step_s, eval_all_s, checkpoint_s)),
        "study": study_projection(projection["total_s"], eval_all_s, study_counts(profile, params_dir)),
        "checkpoint_mb": checkpoint_mb,
        "run_dir": str(run_dir),
    }
    if json_out is not None:
        atomic_write_json(json_out, report)
    return report


def llcm_stage(stages: _Stages, cfg: RunConfig, llcm_root, run_dir: Path, steps: int, quick_check: bool,
               progress: bool) -> dict[str, Any]:
    """The LLCM stage: check the tree, train ``steps`` steps of ``cfg`` on it (its own run folder,
    ``<run_dir>-llcm``), whose final evaluation is LLCM's both-direction protocol."""
    from mace_core.data import check as check_mod
    from mace_core.engine.train import train

    root = str(Path(llcm_root).expanduser().resolve())
    llcm_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset="llcm", root=root))
    llcm_dir = run_dir.with_name(run_dir.name + "-llcm")
    shutil.rmtree(llcm_dir, ignore_errors=True)

    def fn():
        rep = check_mod.check("llcm", root, decode=50 if quick_check else "all")
        if rep.problems:
            raise MaceError(f"the LLCM data check found {len(rep.problems)} problem(s): {rep.problems[0]}",
                            "fix the LLCM tree (see `mace data check --dataset llcm`) before a real run")
        res = train(llcm_cfg, llcm_dir, progress=progress)
        both = res["metrics"]["directions"]
        r1 = {k: v["mean"]["rank1"] for k, v in both.items()}
        out = {"root": root, "steps": res["steps"], "training_identities": res["num_classes"],
               "trials": res["metrics"]["protocol"]["trials"],
               "ir2vis": {"rank1": r1["ir2vis"], "mAP": both["ir2vis"]["mean"]["mAP"]},
               "vis2ir": {"rank1": r1["vis2ir"], "mAP": both["vis2ir"]["mean"]["mAP"]}, "run_dir": str(llcm_dir)}
        return out, {"images": None,
                     "note": f"{res['steps']} steps on {res['num_classes']} identities, then both directions "
                             f"({out['trials']} trials): Rank-1 IR->VIS {100 * r1['ir2vis']:.1f} %, "
                             f"VIS->IR {100 * r1['vis2ir']:.1f} %"}

    return stages.run(f"LLCM: data check, train {steps} steps + both directions", fn)


def cfg_full_steps(profile: str, params_dir, num_classes: int, root, include_val: bool) -> dict[str, int]:
    """Steps, evaluations and checkpoint writes of the uncapped run: epochs × steps per epoch (the
    reference epoch length ``max(#RGB, #IR) // (P·K)`` unless the profile sets one); one evaluation
    every ``eval_every`` epochs plus the last; one checkpoint every ``checkpoint_every`` epochs plus
    the last."""
    from mace_core.data.sysu import training_set
    from mace_core.study.variants import resolve

    full = resolve(EXPERIMENT, VARIANT, profile, params_dir).config
    per_epoch = full.train.steps_per_epoch
    if per_epoch is None:
        ts = training_set(root, include_val=include_val)
        per_epoch = max(len(ts.rgb), len(ts.ir)) // (full.data.ids_per_batch * full.data.images_per_id)
    epochs = full.train.epochs
    every = full.train.eval_every
    evals = (epochs // every if every > 0 else 0) + (0 if every > 0 and epochs % every == 0 else 1)
    k = full.train.checkpoint_every
    return {"epochs": epochs, "steps_per_epoch": per_epoch, "steps": epochs * per_epoch, "evaluations": evals,
            "eval_every": every, "checkpoint_every": k, "checkpoints": epochs // k + (0 if epochs % k == 0 else 1)}


def project(full: dict[str, int], one_time_s: float, step_s: float, eval_s: float,
            checkpoint_s: float) -> dict[str, Any]:
    """The full run's time: one-time costs + steps × steady step + evaluations × one evaluation +
    checkpoint writes × one write (``full``: :func:`cfg_full_steps`)."""
    parts = {"one_time_s": one_time_s, "train_s": full["steps"] * step_s,
             "eval_s": full["evaluations"] * eval_s, "checkpoint_s": full["checkpoints"] * checkpoint_s}
    total = sum(parts.values())
    return {
        "full_run_steps": full["steps"], "epochs": full["epochs"], "steps_per_epoch": full["steps_per_epoch"],
        "step_time_s": step_s, "evaluations": full["evaluations"], "eval_every": full["eval_every"],
        "eval_time_s": eval_s, "checkpoints": full["checkpoints"], "checkpoint_every": full["checkpoint_every"],
        "checkpoint_write_s": checkpoint_s, **parts, "total_s": total,
        "train_hours": round(parts["train_s"] / 3600, 2), "eval_hours": round(parts["eval_s"] / 3600, 2),
        "total_hours": round(total / 3600, 2),
        "checkpoint_share": parts["checkpoint_s"] / total if total > 0 else 0.0,
        "rule": "one-time start-up + full-run steps x steady step time + evaluations x one all-search evaluation "
                "+ checkpoint writes x one write",
    }


STUDY_SEEDS = (1, 3, 5)


def study_counts(profile: str, params_dir="params") -> dict[str, int]:
    """Per training seed, what the whole study runs on ``profile``: distinct training runs (variants that
    share a config, such as experiment 2's baseline, are one run) and test-time evaluations of trained
    models (multi-query pools × fusion rules, occlusion types per model)."""
    from mace_core.study import registry
    from mace_core.study.variants import list_experiments, list_variants, resolve, with_seed

    keys, sweeps = set(), 0
    for experiment in list_experiments(params_dir):
        for variant in list_variants(experiment, params_dir):
            v = resolve(experiment, variant, profile, params_dir)
            keys.add(registry.run_key(with_seed(v, 0).config))
            mq = v.study.get("multi_query") or {}
            sweeps += len(mq.get("n") or []) * len(mq.get("fusion") or [])
            sweeps += len((v.study.get("occlusion") or {}).get("types") or [])
    return {"runs_per_seed": len(keys), "evaluations_per_seed": sweeps}


def study_projection(run_s: float, eval_s: float, counts: dict[str, int], seeds=STUDY_SEEDS) -> dict[str, Any]:
    """GPU hours of the whole study at each seed count: seeds × (runs per seed × one full run, projected by
    :func:`project` for the baseline, + test-time evaluations per seed × one all-search evaluation). Every
    run is costed as the baseline (backbone variants differ; the dry run times the baseline)."""
    per_seed = counts["runs_per_seed"] * run_s + counts["evaluations_per_seed"] * eval_s
    return {**counts, "run_s": run_s, "eval_s": eval_s,
            "hours": {int(n): round(n * per_seed / 3600, 1) for n in seeds},
            "rule": "seeds x (training runs per seed x one full run + test-time evaluations per seed x one "
                    "all-search evaluation); every run costed as the baseline"}


def format_table(report: dict[str, Any]) -> str:
    """The per-stage table in Markdown (printed, and pasted into the book)."""
    head = "| stage | wall s | peak RSS MiB | peak unreclaimable MiB (with workers) | cache on disk MiB | images/s | note |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---|"]
    for r in report["stages"]:
        cells = [r["stage"], r["wall_s"], r["peak_rss_mb"], r["peak_private_mb"], r.get("cache_on_disk_mb") or "",
                 r["images_per_s"] or "", r.get("note") or ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    p = report["projection"]
    lines.append("")
    every_eval = f"every {p['eval_every']} epochs + last" if p["eval_every"] > 0 else "after the last epoch"
    rows = [
        ("one-time: start-up, worker spawn, first-call set-up", "1", p["one_time_s"], p["one_time_s"]),
        (f"training steps, steady state ({p['epochs']} epochs x {p['steps_per_epoch']:,})",
         f"{p['full_run_steps']:,}", p["step_time_s"], p["train_s"]),
        (f"all-search evaluations ({every_eval})", str(p["evaluations"]), p["eval_time_s"], p["eval_s"]),
        (f"checkpoint writes (every {p['checkpoint_every']} epochs + last)", str(p["checkpoints"]),
         p["checkpoint_write_s"], p["checkpoint_s"]),
    ]
    lines.append(f"| projected full run on {report['device']} (amp {report['amp']}) | count | each s | total h |")
    lines.append("|---|---:|---:|---:|")
    for name, count, each, total in rows:
        lines.append(f"| {name} | {count} | {each:.3g} | {total / 3600:.2f} |")
    lines.append(f"| total | | | {p['total_s'] / 3600:.2f} |")
    study = report.get("study")
    if study:
        lines.append("")
        lines.append(f"| whole study on {report['device']}: {study['runs_per_seed']} training runs + "
                     f"{study['evaluations_per_seed']} test-time evaluations per seed | "
                     + " | ".join(f"{n} seed{'s' if n > 1 else ''}" for n in study["hours"]) + " |")
        lines.append("|---|" + "---:|" * len(study["hours"]))
        lines.append("| projected GPU hours | " + " | ".join(f"{h:.1f}" for h in study["hours"].values()) + " |")
        lines.append("The seed count is a GPU-budget choice (study.seeds in the profile); with one seed the pages "
                     "cannot tell variants apart.")
    if report.get("weights_note"):
        lines.append(f"NOTE: {report['weights_note']}.")
    if not report["exact_paper_config"]:
        lines.append(f"NOTE: not the exact paper config: overrides {', '.join(report['overrides'])}.")
    return "\n".join(lines)

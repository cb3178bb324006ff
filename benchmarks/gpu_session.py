"""The first GPU session (issue 22, point 6): every open GPU question of the paper profile in one run.

    benchmarks/gpu_session.sh                     # on the GPU machine: <= 10 min on one H100
    python benchmarks/gpu_session.py --tiny --device cpu --out OUT   # the CPU test's tiny matrix

On the paper profile's baseline (ResNet-50 two-stream, 288x144, 8x4 per modality, random init: the
step costs the same with ImageNet weights and the GPU machine has no network), over a full-size
synthetic SYSU-MM01-like tree (`mace data synth --like sysu-mm01`, generated when missing), it times
the model step alone (one batch resident on the device, after warm-up) for

- ``train.deterministic`` true vs false (the paper default is true);
- eager vs ``torch.compile`` (the compile cost is the extra wall time of the compiled run's warm-up,
  reported apart from its steady step);
- ``train.channels_last`` on and off;
- bf16 autocast vs fp16 autocast with GradScaler;

then the input pipeline alone with 4, 8 and 16 loader workers, the full-protocol evaluation
(images/s over every query and gallery image), and a short paper-profile dry run (`mace study
dry-run`) on the same tree, whose projected step time is set against the step time of the loader
and model together measured here. Rows run in that order, and a row that would start after
``--budget-s`` is recorded as skipped, so the session ends in time. It writes one JSON and one
Markdown report (``gpu_session.json``, ``gpu_session.md`` in ``--out``); the book's architecture
page shows the Markdown when ``benchmarks/results/gpu_session.md`` exists.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))   # run as `python benchmarks/gpu_session.py` from a checkout

import torch  # noqa: E402

from mace_core.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402

# The full matrix (GPU) and the tiny one (the CPU test): same rows, smaller everything.
FULL = {"scale": 1.0, "size": (288, 144), "steps": 20, "warmup": 3, "workers": (4, 8, 16), "dry_steps": 8,
        "overrides": ["model.pretrained=none"], "compile": True, "fp16": True}
TINY = {"scale": 0.02, "size": (32, 16), "steps": 2, "warmup": 1, "workers": (0, 1), "dry_steps": 1,
        "overrides": ["model.pretrained=none", "data.height=32", "data.width=16", "data.workers=0",
                      "data.ids_per_batch=4", "data.images_per_id=2", "model.backbone=resnet18",
                      "model.backbone_kwargs={channels: [8, 16, 32, 64], stem_width: 8}", "train.threads=1"],
        "compile": False, "fp16": False}


def base_config(data_root: Path, device: str, overrides: list[str]):
    from mace_core.config import from_dict, merge, parse_override
    from mace_core.study.variants import resolve

    v = resolve("00_baseline", "baseline", "paper", HERE.parent / "params")
    merged = merge(v.config.to_dict(), {"data": {"root": str(data_root)}, "train": {"device": device}})
    for text in overrides:
        merged = merge(merged, parse_override(text))
    return from_dict(merged)


def with_train(cfg, **changes):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **changes))


def with_data(cfg, **changes):
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **changes))


class Session:
    def __init__(self, budget_s: float):
        self.start = time.perf_counter()
        self.budget_s = budget_s
        self.rows: list[dict] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def row(self, section: str, setting: str, fn) -> dict:
        """Run one measurement unless the budget is spent; errors are recorded, never fatal."""
        row = {"section": section, "setting": setting}
        if self.elapsed() > self.budget_s:
            row.update(status="skipped", note=f"budget of {self.budget_s:.0f} s spent")
        else:
            t0 = time.perf_counter()
            try:
                row.update(status="ok", **fn())
            except Exception as exc:   # noqa: BLE001 - a failed row is a finding, not the end of the session
                row.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                           trace=traceback.format_exc(limit=3)[-800:])
            row["wall_s"] = round(time.perf_counter() - t0, 2)
        self.rows.append(row)
        print(f"[{self.elapsed():6.1f} s] {section}: {setting}: {row['status']}"
              + (f" ({row.get('images_per_s', '')} img/s)" if row.get("images_per_s") else "")
              + (f" {row.get('error', '')}" if row["status"] == "failed" else ""), flush=True)
        return row


def model_step(cfg, steps: int, warmup: int) -> dict:
    from mace_core.engine.bench import bench

    t0 = time.perf_counter()
    r = bench(cfg, steps=steps, warmup=warmup, parts=("model",))
    m = r["model_step"]
    return {"images_per_s": round(m["images_per_s"], 1), "step_ms": round(m["step_time_ms_mean"], 2),
            "step_ms_median": round(m["step_time_ms_median"], 2), "peak_memory_mb": r["peak_memory_mb"],
            "amp": r["amp"], "channels_last": r["channels_last"], "deterministic": r["deterministic"],
            "compile": r["compile"], "setup_s": round(r["one_time"]["setup_s"], 2),
            "bench_wall_s": round(time.perf_counter() - t0, 2)}


def input_pipeline(cfg, steps: int) -> dict:
    from mace_core.engine.bench import bench

    r = bench(cfg, steps=steps, warmup=0, parts=("input",))
    p = r["input_pipeline"]
    return {"images_per_s": round(p["images_per_s"], 1), "batches_per_s": round(p["batches_per_s"], 2),
            "first_batch_s": round(p["first_batch_s"], 2), "workers": p["workers"]}


def together(cfg, steps: int, warmup: int) -> dict:
    from mace_core.engine.bench import bench

    r = bench(cfg, steps=steps, warmup=warmup, parts=("together",))
    t = r["together"]
    return {"images_per_s": round(t["images_per_s"], 1), "step_ms": round(t["step_time_ms_mean"], 2),
            "steps": t["steps"], "workers": r["workers"]}


def evaluation(cfg) -> dict:
    from mace_core.data.datasets import _records_for, test_cache_groups
    from mace_core.engine.bench import time_evaluation

    rgb, ir = _records_for(cfg.data.dataset, cfg.data.root, cfg.data.include_val, cfg.data.trial)
    r = time_evaluation(cfg, len({x.pid for x in rgb} & {x.pid for x in ir}))
    images = sum(len(records) for records, _ in test_cache_groups(cfg.data.dataset, cfg.data.root, cfg.data.trial))
    return {"images": images, "eval_s": round(r["eval_s"], 4), "images_per_s": round(images / r["eval_s"], 1),
            "peak_memory_mb": r["eval_peak_memory_mb"], "queries": r["eval_queries"], "trials": r["eval_trials"],
            "note": "full protocol (all-search), every test image embedded once; caches built before the timing"}


def dry_run(root: Path, out: Path, device: str, overrides: list[str], steps: int, measured_step_ms) -> dict:
    from mace_core.study.dryrun import dry_run as run

    report = run(root, profile="paper", steps=steps, json_out=out / "dry_run.json", overrides=[
        *overrides, f"train.device={device}"], work_dir=out / "dry-run-work", quick_check=True, progress=False)
    p = report["projection"]
    row = {"projected_step_ms": round(1000 * p["step_time_s"], 2), "projected_total_h": p["total_hours"],
           "projected_eval_s": round(p["eval_time_s"], 2), "checkpoint_write_s": round(p["checkpoint_write_s"], 3),
           "checkpoint_share": round(p["checkpoint_share"], 4), "full_run_steps": p["full_run_steps"],
           "stages_s": {s["stage"]: s["wall_s"] for s in report["stages"]}}
    if measured_step_ms:
        row["measured_step_ms"] = measured_step_ms
        row["projected_over_measured"] = round(row["projected_step_ms"] / measured_step_ms, 3)
    return row


def session(out: Path, data_root: Path, device: str, tiny: bool, budget_s: float) -> dict:
    from mace_core.data.synthetic_like import generate_sysu_like

    m = TINY if tiny else FULL
    s = Session(budget_s)
    t0 = time.perf_counter()
    root = generate_sysu_like(data_root, scale=m["scale"], size=m["size"], workers=None)
    data_s = time.perf_counter() - t0
    cfg = base_config(root, device, m["overrides"])
    steps, warmup = m["steps"], m["warmup"]
    fast = with_train(cfg, deterministic=False)

    s.row("determinism", "deterministic (paper default)", lambda: model_step(with_train(cfg, deterministic=True), steps, warmup))
    s.row("determinism", "fast (deterministic false)", lambda: model_step(fast, steps, warmup))
    s.row("compile", "eager", lambda: model_step(with_train(fast, compile=False), steps, warmup))
    if m["compile"]:
        s.row("compile", "torch.compile", lambda: model_step(with_train(fast, compile=True), steps, warmup))
    s.row("channels_last", "on", lambda: model_step(with_train(fast, channels_last=True), steps, warmup))
    s.row("channels_last", "off", lambda: model_step(with_train(fast, channels_last=False), steps, warmup))
    s.row("precision", "bf16 autocast", lambda: model_step(with_train(fast, amp="bf16"), steps, warmup))
    if m["fp16"]:
        s.row("precision", "fp16 autocast + GradScaler", lambda: model_step(with_train(fast, amp="fp16"), steps, warmup))
    for w in m["workers"]:
        s.row("loader", f"{w} workers", lambda w=w: input_pipeline(with_data(cfg, workers=w), steps))
    both = s.row("together", f"loader ({cfg.data.workers if not tiny else 0} workers) + model, paper default",
                 lambda: together(cfg, steps, warmup))
    s.row("evaluation", "full protocol, all-search", lambda: evaluation(cfg))
    s.row("dry run", "paper profile on the full-size synthetic tree",
          lambda: dry_run(root, out, device, m["overrides"], m["dry_steps"], both.get("step_ms")))
    _derive(s.rows)
    return {
        "session": "gpu_session", "tiny": tiny, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "device": device if device == "cpu" or not torch.cuda.is_available() else torch.cuda.get_device_name(0),
        "torch": torch.__version__, "python": platform.python_version(),
        "config": {"backbone": cfg.model.backbone, "input": f"{cfg.data.height}x{cfg.data.width}",
                   "batch_images": 2 * cfg.data.ids_per_batch * cfg.data.images_per_id, "steps": steps,
                   "warmup": warmup, "overrides": m["overrides"]},
        "data": {"root_name": root.name, "scale": m["scale"], "generate_or_reuse_s": round(data_s, 1)},
        "budget_s": budget_s, "wall_s": round(s.elapsed() + data_s, 1), "rows": s.rows,
    }


def _derive(rows: list[dict]) -> None:
    """Ratios the questions ask for, added to the rows they compare."""
    by = {(r["section"], r["setting"]): r for r in rows if r["status"] == "ok"}
    det, fast = by.get(("determinism", "deterministic (paper default)")), by.get(("determinism", "fast (deterministic false)"))
    if det and fast:
        det["cost_vs_fast"] = round(det["step_ms"] / fast["step_ms"] - 1, 4)
    eager, comp = by.get(("compile", "eager")), by.get(("compile", "torch.compile"))
    if eager and comp:
        comp["speedup_vs_eager"] = round(eager["step_ms"] / comp["step_ms"], 3)
        comp["compile_s_estimate"] = round(comp["bench_wall_s"] - eager["bench_wall_s"], 1)
        saved = (eager["step_ms"] - comp["step_ms"]) / 1000
        comp["break_even_steps"] = round(comp["compile_s_estimate"] / saved) if saved > 0 else None


def markdown(report: dict) -> str:
    lines = [f"**First GPU session** ({'tiny CPU matrix, ' if report['tiny'] else ''}{report['device']}, torch "
             f"{report['torch']}, {report['started']}; {report['wall_s']:.0f} s in all). Paper baseline "
             f"{report['config']['backbone']} at {report['config']['input']}, {report['config']['batch_images']} images "
             f"a step, random init; model step alone over {report['config']['steps']} steps after "
             f"{report['config']['warmup']} warm-up steps. Written by `benchmarks/gpu_session.sh`.", "",
             "| question | setting | images/s | step ms | peak GPU MiB | note |", "|---|---|---:|---:|---:|---|"]
    for r in report["rows"]:
        note = r.get("note", "") if r["status"] != "failed" else r.get("error", "")
        if "cost_vs_fast" in r:
            note = f"{100 * r['cost_vs_fast']:+.1f} % step time vs fast"
        if "speedup_vs_eager" in r:
            note = (f"{r['speedup_vs_eager']:.2f}x eager; compile ~{r['compile_s_estimate']:.0f} s, "
                    f"pays back after ~{r['break_even_steps']} steps")
        if r["section"] == "evaluation" and r["status"] == "ok":
            note = f"{r['images']:,} images in {r['eval_s']:.1f} s"
        if r["section"] == "dry run" and r["status"] == "ok":
            note = (f"projected step {r['projected_step_ms']:.1f} ms" + (
                f" vs measured {r['measured_step_ms']:.1f} ms (x{r['projected_over_measured']:.2f})"
                if "measured_step_ms" in r else "") + f"; full run {r['projected_total_h']:.2f} h; checkpoint write "
                f"{r['checkpoint_write_s']:.2f} s = {100 * r['checkpoint_share']:.2f} % of the run")
        if r["status"] != "ok":
            note = f"{r['status']}: {note}"
        cells = [r["section"], r["setting"], r.get("images_per_s", ""), r.get("step_ms", r.get("projected_step_ms", "")),
                 r.get("peak_memory_mb") if r.get("peak_memory_mb") is not None else "", note.replace("|", "/")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE / "results"), help="folder for gpu_session.json / .md")
    ap.add_argument("--data-root", default=None, help="the synthetic tree (default: data/sysu-like, or OUT/sysu-like-tiny)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="the tiny matrix (CPU test)")
    ap.add_argument("--budget-s", type=float, default=540.0, help="start no row after this many seconds (default 540)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.data_root) if args.data_root else (out / "sysu-like-tiny" if args.tiny else HERE.parent / "data" / "sysu-like")
    report = session(out, root.resolve(), args.device, args.tiny, args.budget_s)
    atomic_write_json(out / "gpu_session.json", report)
    atomic_write_text(out / "gpu_session.md", markdown(report))
    print(markdown(report))
    failed = [r for r in report["rows"] if r["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

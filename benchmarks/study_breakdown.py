"""Where a study's time goes (issue 20, point 1): process and kernel start, data and cache, training
steps, evaluation, notebook execution overhead and the book build.

    python benchmarks/study_breakdown.py measure [--profile smoke]     # one run + one page + the book, extrapolated
    python benchmarks/study_breakdown.py analyse [--profile smoke] [--wall S] [--book]   # an executed study

``measure`` times the parts on a subset, in a scratch folder (the dataset is the profile's, generated
when missing): a bare interpreter's imports (the process start of every worker and kernel), one
training run of the baseline (its first seed, in its own process: data and cache, model set-up,
training steps, the final evaluation, checkpoints, the rest), that run's notebook page executed by
papermill as the study does (kernel start, then the cells), and the book build. It then extrapolates
to the profile's plan (``mace study run``'s pairs and seed replicates): every run costs the
baseline's per-step time times its steps (times its input pixels over the baseline's, a proxy:
stand-ins with another architecture cost what ``analyse`` shows), every page a kernel start plus the
measured page overhead, summaries as a page (experiments 4 and 6's test-time sweeps excluded: see
``analyse``). It says so in its output.

``analyse`` reads what an executed study left: each run's ``results.json`` (``train_time_s`` and the
trainer's ``timing``: data, set-up, evaluation, checkpoints), each executed page's papermill metadata
(kernel start = first cell's start - the notebook's start; cell time minus the training it did =
notebook overhead, which includes the summaries' test-time evaluations) and, with ``--book``, times a
book rebuild. ``--wall`` is the study's measured wall time (seconds), printed beside the sum of the
job seconds / jobs.

Times are wall seconds on the machine as it is; on a shared machine they are inflated by the other
load, so read the shares, not the absolute values (each section also prints CPU seconds where the
part ran in its own process). Results go to ``benchmarks/results/study_breakdown_<mode>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mace_core.book import build as book  # noqa: E402
from mace_core.study import registry  # noqa: E402
from mace_core.jupyter.kernel import kernel_dir  # noqa: E402
from mace_core.study.planning import plan  # noqa: E402
from mace_core.study.variants import resolve, seeds_of_variant  # noqa: E402
from mace_core.utils.atomic import atomic_write_json  # noqa: E402

PARTS = ["process start", "kernel start", "data and cache", "model set-up", "pretraining", "training steps", "evaluation",
         "checkpoints", "run other", "notebook overhead", "book build"]


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(cmd: list[str], **kw) -> tuple[float, float, subprocess.CompletedProcess]:
    c0, t0 = _child_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0, _child_cpu() - c0, proc


def _iso(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def notebook_times(path: Path) -> dict[str, float] | None:
    """Kernel start and cell seconds of a papermill-executed notebook (None without papermill metadata)."""
    nb = json.loads(Path(path).read_text())
    meta = nb.get("metadata", {}).get("papermill", {})
    starts = [c.get("metadata", {}).get("papermill", {}).get("start_time") for c in nb.get("cells", [])]
    starts = [s for s in starts if s]
    if not meta.get("start_time") or not meta.get("end_time") or not starts:
        return None
    begin, end, first = _iso(meta["start_time"]), _iso(meta["end_time"]), min(_iso(s) for s in starts)
    return {"kernel_start_s": first - begin, "cells_s": end - first, "total_s": end - begin}


def run_timing(results: dict) -> dict[str, float]:
    """A run's seconds per part from its results.json (older runs without ``timing``: steps only)."""
    t = results.get("timing") or {}
    return {"data and cache": t.get("data_s", 0.0), "model set-up": t.get("setup_s", 0.0),
            "training steps": results.get("train_time_s", 0.0), "evaluation": t.get("eval_s", 0.0),
            "checkpoints": t.get("checkpoint_s", 0.0)}


def plan_counts(profile: str, params_dir: Path | None = None) -> dict:
    """The profile's whole plan: runs to train (distinct keys, with their steps and input pixels),
    variant pages, summaries."""
    params = Path(params_dir) if params_dir else ROOT / "params"
    pairs = plan(profile, params, ROOT / "runs", ROOT / "book", ROOT / "notebooks")
    runs: dict[str, dict] = {}
    for pair in pairs:
        if pair.is_summary:
            continue
        v = resolve(pair.experiment, pair.name, profile, params)
        c = v.config
        size = {"steps": c.train.epochs * c.train.steps_per_epoch, "pixels": c.data.height * c.data.width,
                "backbone": c.model.backbone, "seeds": len(seeds_of_variant(v))}
        for key in [pair.run_key] + [r.run_key for r in pair.replicates]:
            runs.setdefault(key, size)
    return {"runs": runs, "pages": sum(not p.is_summary for p in pairs), "summaries": sum(p.is_summary for p in pairs),
            "sweep_summaries": [p.label for p in pairs if p.is_summary and p.sweeps]}


def measure(profile: str, out_dir: Path) -> dict:
    from mace_core.study.runner import ensure_data

    ensure_data(profile, ROOT / "params")   # the profile's dataset (generated when missing; not timed)
    scratch = Path(tempfile.mkdtemp(prefix="breakdown-", dir=out_dir))
    runs = scratch / "runs"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    rows: dict[str, dict] = {}

    # 1. a bare worker's / kernel's imports: what every process of the study pays before its work
    wall, cpu, _ = _timed([sys.executable, "-c", "import torch, timm, pandas, matplotlib; import mace_core.study.api, "
                           "mace_core.engine.train, mace_core.models, mace_core.analysis.tables"], env=env)
    rows["process start"] = {"wall_s": wall, "cpu_s": cpu}

    # 2. one training run in its own process, as a seed replicate is trained
    base = resolve("00_baseline", "baseline", profile, ROOT / "params")
    seed = seeds_of_variant(base)[0]
    code = ("import json, sys, time; t = time.perf_counter(); from mace_core.study import api; "
            f"r = api.run_variant('00_baseline', 'baseline', {profile!r}, {str(ROOT / 'params')!r}, {str(runs)!r}, seed={seed}); "
            "print(json.dumps({'call_s': time.perf_counter() - t, 'dir': str(r.run_dir)}))")
    wall, cpu, proc = _timed([sys.executable, "-c", code], env=env, cwd=ROOT)
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    results = json.loads((Path(info["dir"]) / registry.RESULTS).read_text())
    parts = run_timing(results)
    parts["run other"] = max(0.0, info["call_s"] - sum(parts.values()))   # imports inside the call, registry
    run = {"wall_s": wall, "cpu_s": cpu, "steps": results["steps"], "parts": parts,
           "rank1": sum(t["rank1"] for t in results["metrics"]["trials"]) / len(results["metrics"]["trials"])}
    rows["training run"] = run

    # 3. the run's page, executed by papermill as the study does (the run is reused: no training inside)
    job = {"notebook": str(ROOT / "notebooks" / "00_baseline.py"), "tmp": str(scratch / "page.ipynb"),
           "cwd": str(ROOT), "parameters": {"profile": profile, "variant": "baseline", "params_dir": "params",
                                            "runs_dir": os.path.relpath(runs, ROOT)}}
    code = ("import json, sys; from mace_core.study.execution import papermill_execute; "
            f"papermill_execute(json.loads({json.dumps(json.dumps(job))}))")
    jenv = dict(env, JUPYTER_PATH=str(kernel_dir(runs)))
    wall, cpu, _ = _timed([sys.executable, "-c", code], env=jenv, cwd=ROOT)
    page = notebook_times(Path(job["tmp"])) or {}
    rows["page"] = {"wall_s": wall, "cpu_s": cpu, **page}

    # 4. the book build: the TOC, overview and runs table from what the project's book/ holds now (a fresh
    # checkout: no pages yet), then jupyter-book, as the study's last step does
    from mace_core.study.runner import finish_book

    t0, c0 = time.perf_counter(), _child_cpu()
    finish_book(profile, ROOT / "params", runs, ROOT / "book", ROOT / "notebooks")
    rows["book build"] = {"wall_s": time.perf_counter() - t0, "cpu_s": _child_cpu() - c0,
                          "pages_in_book": len(list((ROOT / "book" / book.GENERATED).glob("*/*.ipynb")))}

    # extrapolation to the profile's plan
    plan_ = plan_counts(profile)
    per_step = parts["training steps"] / max(1, run["steps"])
    px0 = base.config.data.height * base.config.data.width
    total = {k: 0.0 for k in PARTS}
    for size in plan_["runs"].values():
        scale = size["pixels"] / px0
        total["training steps"] += per_step * size["steps"] * scale
        total["evaluation"] += parts["evaluation"] * scale
        total["model set-up"] += parts["model set-up"]
        total["checkpoints"] += parts["checkpoints"]
        total["data and cache"] += 0.0   # the caches are built once; a later run only opens them
    total["data and cache"] += parts["data and cache"]  # the first run's (cache build when missing)
    total["run other"] = parts["run other"] * len(plan_["runs"])
    n_pages = plan_["pages"] + plan_["summaries"]
    total["kernel start"] = page.get("kernel_start_s", 0.0) * n_pages
    total["notebook overhead"] = page.get("cells_s", 0.0) * n_pages
    total["process start"] = rows["process start"]["wall_s"] * 2 * 3   # two workers in each of the three waves
    total["book build"] = rows["book build"]["wall_s"]
    job_seconds = sum(v for k, v in total.items() if k != "book build")
    return {"mode": "measure", "profile": profile, "measured": rows, "plan": {
        "runs": len(plan_["runs"]), "pages": plan_["pages"], "summaries": plan_["summaries"],
        "steps": sum(s["steps"] for s in plan_["runs"].values()), "sweep_summaries": plan_["sweep_summaries"]},
        "extrapolated_job_seconds": total, "extrapolated_wall_at_2_jobs_s": job_seconds / 2 + total["book build"],
        "note": "extrapolated from one baseline run, one page and one book build: runs scale by steps x input "
                "pixels, pages by the measured page; the summaries' test-time sweeps and stand-ins of another "
                "architecture are not modelled (see `analyse` on an executed study)"}


def _run_metas(runs_dir: Path) -> dict[Path, dict]:
    """Run folder -> its study.json (the runner's record: seed, trained_for, train_seconds) for every complete run."""
    out = {}
    for res in sorted(Path(runs_dir).glob(f"*/{registry.RESULTS}")):
        study = res.parent / "study.json"
        out[res.parent] = json.loads(study.read_text()) if study.is_file() else {}
    return out


def _trained_in_page(metas: dict[Path, dict]) -> dict[str, float]:
    first: dict[str, dict] = {}
    for meta in metas.values():
        page, seed = meta.get("trained_for"), meta.get("seed")
        if page is not None and seed is not None and meta.get("train_seconds") is not None:
            if page not in first or seed < first[page]["seed"]:
                first[page] = meta
    return {page: meta["train_seconds"] for page, meta in first.items()}


def analyse(profile: str, wall: float | None, rebuild: bool, jobs: int, runs_dir: Path | None = None,
            book_dir: Path | None = None, plan_params: Path | None = None, pages_from: Path | None = None) -> dict:
    runs_dir = Path(runs_dir) if runs_dir else ROOT / "runs" / profile
    book_dir = Path(book_dir) if book_dir else ROOT / "book"
    total = {k: 0.0 for k in PARTS}
    per_run = []
    metas = _run_metas(runs_dir)
    for run_dir, meta in metas.items():
        results = json.loads((run_dir / registry.RESULTS).read_text())
        parts = run_timing(results)
        call = meta.get("train_seconds")
        parts["run other"] = max(0.0, call - sum(parts.values())) if call is not None else 0.0
        if str(meta.get("trained_for", "")).startswith("pretrain/"):   # the study's own pretraining, once per backbone
            total["pretraining"] += sum(parts.values())
            continue
        for k, v in parts.items():
            total[k] += v
        c = results.get("config", {})
        per_run.append({"run": f"{meta.get('trained_for', results.get('name'))} (seed {meta.get('seed')})",
                        "steps": results.get("steps"), "pixels": c.get("data", {}).get("height", 0) * c.get("data", {}).get("width", 0),
                        "seconds": round(sum(parts.values()), 1), **{k: round(v, 1) for k, v in parts.items()}})
    # the pages' own runs (those of the study that executed them): a variant's first seed trains inside its page
    trained_in_page = _trained_in_page(_run_metas(ROOT / "runs" / profile) if pages_from else metas)
    pages = []
    for nb in sorted((Path(pages_from) if pages_from else book_dir / book.GENERATED).glob("*/*.ipynb")):
        t = notebook_times(nb)
        if t is None:
            continue
        label = f"{nb.parent.name}/{nb.stem}"
        inside = trained_in_page.get(label, 0.0)
        total["kernel start"] += t["kernel_start_s"]
        total["notebook overhead"] += max(0.0, t["cells_s"] - inside)
        pages.append({"page": label, "summary": nb.stem == book.SUMMARY, "kernel_start_s": round(t["kernel_start_s"], 1),
                      "cells_s": round(t["cells_s"], 1), "training_inside_s": round(inside, 1)})
    # each pretraining ran inside the first page of its backbone (the plan starts those first), and other
    # pages of that backbone may have waited for it: that time is pretraining, not notebook overhead
    total["notebook overhead"] = max(0.0, total["notebook overhead"] - total["pretraining"])
    if rebuild:
        t0 = time.perf_counter()
        book.build_book(book_dir)
        total["book build"] = time.perf_counter() - t0
    by_variant: dict[str, list[float]] = {}
    for r in per_run:
        by_variant.setdefault(r["run"].rsplit(" (seed", 1)[0], []).append(r["seconds"])
    job_seconds = sum(v for k, v in total.items() if k != "book build")
    report = {"mode": "analyse", "profile": profile, "runs": len(per_run), "pages": len(pages),
              "job_seconds": total, "sum_over_jobs_s": job_seconds,
              "sum_over_jobs_per_job_plus_book_s": job_seconds / jobs + total["book build"],
              "study_wall_s": wall, "mean_run_s": sum(r["seconds"] for r in per_run) / max(1, len(per_run)),
              "run_seconds_by_variant": {k: round(sum(v) / len(v), 1) for k, v in by_variant.items()},
              "per_run": per_run, "per_page": pages,
              "note": "the pool workers' own process start is not recorded per run: it is in the study wall, "
                      "with the wait for the last job of each wave"}
    if per_run:
        report["extrapolated"] = extrapolate(profile, per_run, pages, total["book build"], jobs, plan_params,
                                             total["pretraining"])
    return report


def extrapolate(profile: str, per_run: list[dict], pages: list[dict], book_s: float, jobs: int,
                params_dir: Path | None = None, pretraining_s: float = 0.0) -> dict:
    """The analysed subset scaled to the profile's whole plan: each planned run costs the analysed runs'
    mean per part, training steps scaled by steps x input pixels and evaluation by input pixels (a proxy:
    another architecture costs what its own analysed runs show); each page the analysed pages' mean."""
    plan_ = plan_counts(profile, params_dir)
    n = len(per_run)
    mean = {k: sum(r[k] for r in per_run) / n for k in ("data and cache", "model set-up", "training steps", "evaluation",
                                                         "checkpoints", "run other")}
    work = sum(r["steps"] * r["pixels"] for r in per_run) / n
    px = sum(r["pixels"] for r in per_run) / n
    total = {k: 0.0 for k in PARTS}
    for size in plan_["runs"].values():
        total["training steps"] += mean["training steps"] * size["steps"] * size["pixels"] / work
        total["evaluation"] += mean["evaluation"] * size["pixels"] / px
        for k in ("model set-up", "checkpoints", "run other"):
            total[k] += mean[k]
    # the caches are built once (by the first run): the others only open them
    data = sorted(r["data and cache"] for r in per_run)
    total["data and cache"] = data[-1] + data[0] * (len(plan_["runs"]) - 1)
    variant_pages = [p for p in pages if not p["summary"]] or pages
    summaries = [p for p in pages if p["summary"]] or pages
    total["kernel start"] = (sum(p["kernel_start_s"] for p in pages) / max(1, len(pages))) * (plan_["pages"] + plan_["summaries"])
    overhead = lambda ps: sum(p["cells_s"] - p["training_inside_s"] for p in ps) / max(1, len(ps))  # noqa: E731
    total["notebook overhead"] = overhead(variant_pages) * plan_["pages"] + overhead(summaries) * plan_["summaries"]
    total["book build"] = book_s
    total["pretraining"] = pretraining_s   # once per backbone, as analysed (not per planned run)
    job_seconds = sum(v for k, v in total.items() if k != "book build")
    return {"plan_runs": len(plan_["runs"]), "plan_pages": plan_["pages"], "plan_summaries": plan_["summaries"],
            "plan_steps": sum(s["steps"] for s in plan_["runs"].values()), "job_seconds": total,
            "wall_s": job_seconds / jobs + book_s,
            "not_modelled": f"the test-time sweeps of {', '.join(plan_['sweep_summaries'])} beyond the analysed summaries' mean"}


def show(report: dict) -> None:
    parts = report.get("job_seconds") or report.get("extrapolated_job_seconds")
    whole = sum(parts.values()) or 1.0
    print(f"{'part':<20} {'seconds':>9} {'share':>6}")
    for k in PARTS:
        print(f"{k:<20} {parts[k]:>9.1f} {100 * parts[k] / whole:>5.1f}%")
    print(f"{'sum':<20} {whole:>9.1f}")
    for key in ("plan", "extrapolated_wall_at_2_jobs_s", "runs", "pages", "sum_over_jobs_s", "study_wall_s",
                "mean_run_s", "run_seconds_by_variant", "note"):
        if key in report:
            print(f"{key}: {report[key]}")
    if "extrapolated" in report:
        ex = report["extrapolated"]
        print(f"extrapolated to the plan ({ex['plan_runs']} runs, {ex['plan_steps']} steps, {ex['plan_pages']} pages, "
              f"{ex['plan_summaries']} summaries):")
        whole = sum(ex["job_seconds"].values()) or 1.0
        for k in PARTS:
            print(f"  {k:<18} {ex['job_seconds'][k]:>9.1f} {100 * ex['job_seconds'][k] / whole:>5.1f}%")
        print(f"  wall at the study's jobs: {ex['wall_s']:.0f} s; not modelled: {ex['not_modelled']}")
    if "measured" in report:
        print(json.dumps(report["measured"], indent=1, default=lambda x: round(x, 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["measure", "analyse"])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--wall", type=float, default=None, help="analyse: the study's measured wall seconds")
    ap.add_argument("--jobs", type=int, default=2, help="analyse: the study's --jobs")
    ap.add_argument("--book", action="store_true", help="analyse: also time a rebuild of the book")
    ap.add_argument("--runs-dir", default=None, help="analyse: the profile's runs folder (default runs/<profile>)")
    ap.add_argument("--book-dir", default=None, help="analyse: the book folder (default book)")
    ap.add_argument("--plan-params", default=None,
                    help="analyse: extrapolate to the plan of this params folder (e.g. an older recipe's; default params/)")
    ap.add_argument("--pages-from", default=None,
                    help="analyse: the executed pages' folder (default <book>/generated), e.g. another study's")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = (measure(args.profile, out) if args.mode == "measure"
              else analyse(args.profile, args.wall, args.book, args.jobs, args.runs_dir, args.book_dir, args.plan_params,
                           args.pages_from))
    show(report)
    atomic_write_json(out / f"study_breakdown_{args.mode}.json", report)
    print(f"written: {(out / f'study_breakdown_{args.mode}.json').relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()

"""The smoke recipe's measured Rank-1 per training seed (and, optionally, at other step budgets).

    python benchmarks/smoke_recipe.py                         # the smoke baseline, every seed of study.seeds
    python benchmarks/smoke_recipe.py --steps 24 42 84        # the fine-tuning steps / time / Rank-1 trade-off

The profile's own budget reuses the study's cached runs (``runs/smoke``, trained when missing, exactly
as ``make study`` would); other budgets train into a scratch folder. Each row: steps, seed, IR->RGB
Rank-1 and mAP (all-search, 10 gallery trials, final epoch, synthetic data), training seconds and
images/s. Results go to ``benchmarks/results/smoke_recipe.json`` (written atomically) and stdout.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

from mace_core.study import api
from mace_core.study.pretrain import ensure_pretrained
from mace_core.study.variants import resolve, seeds_of_variant, with_seed
from mace_core.utils.atomic import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


def _row(results: dict, steps: int, seed: int) -> dict:
    trials = results["metrics"]["trials"]
    r1 = statistics.fmean(t["rank1"] for t in trials) * 100
    m_ap = statistics.fmean(t["mAP"] for t in trials) * 100
    return {"steps": steps, "seed": seed, "rank1": round(r1, 2), "mAP": round(m_ap, 2),
            "train_s": round(float(results["train_time_s"]), 1), "images_per_s": round(float(results["images_per_s"]), 1)}


def measure(profile: str, steps_list: list[int] | None) -> list[dict]:
    base = resolve("00_baseline", "baseline", profile, ROOT / "params")
    own = base.config.train.epochs * base.config.train.steps_per_epoch
    if any(steps != own for steps in steps_list or []):   # other budgets start from the same pretraining
        ensure_pretrained(base, ROOT / "runs", ROOT / "params")
    rows = []
    for steps in steps_list or [own]:
        for seed in seeds_of_variant(base):
            if steps == own:
                run = api.run_variant("00_baseline", "baseline", profile, ROOT / "params", ROOT / "runs", seed=seed)
                rows.append(_row(run.results, steps, seed))
                continue
            from mace_core.engine.train import train

            cfg = with_seed(base, seed).config
            per_epoch = max(1, round(steps / cfg.train.epochs))
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps_per_epoch=per_epoch))
            with tempfile.TemporaryDirectory() as scratch:
                rows.append(_row(train(cfg, Path(scratch) / "run", progress=False), per_epoch * cfg.train.epochs, seed))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--steps", type=int, nargs="*", default=None, help="step budgets (default: the profile's)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "smoke_recipe.json"))
    args = parser.parse_args()
    rows = measure(args.profile, args.steps)
    print(f"{'steps':>6} {'seed':>4} {'Rank-1':>7} {'mAP':>6} {'train s':>8} {'img/s':>6}")
    for r in rows:
        print(f"{r['steps']:>6} {r['seed']:>4} {r['rank1']:>7.2f} {r['mAP']:>6.2f} {r['train_s']:>8.1f} {r['images_per_s']:>6.0f}")
    by_steps: dict[int, list[float]] = {}
    for r in rows:
        by_steps.setdefault(r["steps"], []).append(r["rank1"])
    summary = {s: {"mean": round(statistics.fmean(v), 2), "std": round(statistics.stdev(v), 2) if len(v) > 1 else None,
                   "n": len(v)} for s, v in by_steps.items()}
    for s, v in summary.items():
        print(f"{s} steps: Rank-1 {v['mean']:.2f} ± {v['std'] if v['std'] is not None else '—'} over n = {v['n']} seeds")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, {"profile": args.profile, "data": "synthetic", "selection": "final epoch",
                            "metric": "IR->RGB all-search, 10 gallery trials", "runs": rows,
                            "summary": {str(k): v for k, v in summary.items()}})
    print(f"written: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()

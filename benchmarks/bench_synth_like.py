"""Time the release-shaped synthetic sets (issue 9): full-size SYSU-MM01 and RegDB, then check them.

    .venv/bin/python benchmarks/bench_synth_like.py --out OUT [--workers 2] [--scale 1] \
        [--structure ../shared/sysu_mm01_eval/structure.json]

Goal: the full-size SYSU-MM01-like tree (45,863 JPEGs at 288x144) in <= 10 minutes on 2 cores.
Writes (and replaces) the trees under --out, prints and saves <out>/bench_synth_like.json with the
generation and full-decode check times. The trees are large (~0.8 GB): give an --out folder outside
the repo, and run it alone on the machine (it uses every core it is given).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mace_core.data.check import check  # noqa: E402
from mace_core.data.synthetic_like import generate_regdb_like, generate_sysu_like  # noqa: E402
from mace_core.utils.atomic import atomic_write_json  # noqa: E402

GOAL_S = 600


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for the generated trees (outside the repo)")
    ap.add_argument("--structure", default=None, help="SYSU-MM01 structure.json (exact per-identity counts)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    out = Path(args.out)
    report = {"workers": args.workers, "scale": args.scale, "structure": args.structure is not None}
    for name, make, dataset in (
            ("sysu", lambda root: generate_sysu_like(root, args.structure, args.scale, workers=args.workers), "sysu"),
            ("regdb", lambda root: generate_regdb_like(root, args.scale, workers=args.workers), "regdb")):
        root = out / f"{name}-like"
        shutil.rmtree(root, ignore_errors=True)  # time a fresh generation, not a reuse
        start = time.perf_counter()
        make(root)
        report[f"{name}_generate_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        rep = check(dataset, root, decode="all", workers=args.workers)
        report[f"{name}_check_s"] = round(time.perf_counter() - start, 1)
        report[f"{name}_problems"] = rep.problems
        report[f"{name}_images"] = sum(v for k, v in rep.counts.items()
                                       if k in ("RGB images", "IR images", "visible images", "thermal images"))
    report["sysu_goal_met"] = args.scale < 1 or report["sysu_generate_s"] <= GOAL_S
    atomic_write_json(out / "bench_synth_like.json", report)
    for key, value in report.items():
        print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()

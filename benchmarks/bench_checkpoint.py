"""The checkpoint cadence from a measured write (issue 22, point 8): ``train.checkpoint_every``'s default.

    .venv/bin/python benchmarks/bench_checkpoint.py [--out benchmarks/results] [--images-per-s 3000]

Builds the paper profile's network (two-stream ResNet-50, last stride 1, random init: the size does
not depend on the weights) with SGD momentum state, writes ``last.pt`` exactly as the trainer does
(:func:`mace_core.engine.checkpoint.save_checkpoint`: temp file, then rename) ``--repeats`` times into
``--out`` and takes the median write time. Then, for the paper run (60 epochs of the reference epoch
length at ``--images-per-s``), the share of training time that every k-th-epoch writes cost, and the
smallest k under 2 %. Prints and saves bench_checkpoint.json. ``--tiny`` uses the ci profile's
network (the CPU test).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

from mace_core.utils.atomic import atomic_write_json  # noqa: E402

# The paper run (architecture page): 60 epochs of 695 steps of 64 images (SYSU-MM01 train+val).
EPOCHS, STEPS_PER_EPOCH, BATCH_IMAGES = 60, 695, 64
GOAL = 0.02


def cadence(write_s: float, epochs: int, epoch_s: float, ks=(1, 5, 10, 15, 20, 30)) -> dict:
    """Writes and their share of the training time for each k (every k-th epoch and after the last),
    and the smallest k whose share is under GOAL."""
    rows = []
    for k in ks:
        writes = epochs // k + (0 if epochs % k == 0 else 1)
        rows.append({"k": k, "writes": writes, "write_total_s": writes * write_s,
                     "share": writes * write_s / (epochs * epoch_s)})
    under = [r["k"] for r in rows if r["share"] < GOAL]
    return {"rows": rows, "smallest_k_under_2pct": min(under) if under else None}


def main(argv=None) -> int:
    from mace_core.engine.checkpoint import save_checkpoint
    from mace_core.models import build_model, count_parameters
    from mace_core.study.variants import resolve

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images-per-s", type=float, default=3000.0, help="training speed the epoch time assumes")
    ap.add_argument("--tiny", action="store_true", help="the ci profile's network (the CPU test)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = resolve("00_baseline", "baseline", "ci" if args.tiny else "paper", HERE.parent / "params").config
    cfg.model.pretrained = "none"
    model = build_model(cfg.model, 395)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():   # momentum buffers exist after the first step: give them their size
        opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "config": cfg.to_dict()}
    path = out / "bench_checkpoint.pt"
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        save_checkpoint(path, state)
        times.append(time.perf_counter() - t)
    size_mb = path.stat().st_size / 1e6
    path.unlink()
    write_s = statistics.median(times)
    epoch_s = STEPS_PER_EPOCH * BATCH_IMAGES / args.images_per_s
    report = {"network": f"{cfg.model.backbone} ({'ci' if args.tiny else 'paper'} profile)",
              "parameters_m": count_parameters(model) / 1e6, "checkpoint_mb": size_mb, "writes_s": times,
              "write_s_median": write_s, "write_mb_per_s": size_mb / write_s if write_s > 0 else math.inf,
              "epochs": EPOCHS, "epoch_s": epoch_s, "images_per_s": args.images_per_s,
              "paper_checkpoint_every": resolve("00_baseline", "baseline", "paper", HERE.parent / "params").config.train.checkpoint_every,
              **cadence(write_s, EPOCHS, epoch_s)}
    atomic_write_json(out / "bench_checkpoint.json", report)
    print(f"{report['network']}: {report['parameters_m']:.2f} M parameters, checkpoint {size_mb:.0f} MB, "
          f"write {write_s:.2f} s ({report['write_mb_per_s']:.0f} MB/s, median of {args.repeats}); epoch {epoch_s:.1f} s")
    for r in report["rows"]:
        print(f"  every {r['k']:>2} epochs: {r['writes']:>2} writes, {r['write_total_s']:6.1f} s, {100 * r['share']:5.2f} %")
    print(f"smallest k under 2 %: {report['smallest_k_under_2pct']} (paper profile: {report['paper_checkpoint_every']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

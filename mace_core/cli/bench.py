"""`mace bench`: training images/s, step time and peak memory of a config on this machine."""
from __future__ import annotations

import json


def _bench(args) -> int:
    from mace_core.config import load_config
    from mace_core.engine.bench import bench

    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"train.device={args.device}")
    cfg = load_config(args.params, overrides)
    report = bench(cfg, steps=args.steps, warmup=args.warmup)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>20}: {value:.1f}" if isinstance(value, float) else f"{key:>20}: {value}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="measure training throughput of a config on this device",
                              description="Time training steps (data loading, AMP, channels_last, workers as "
                                          "configured). Example for a GPU: mace bench --params params/profiles/paper.yaml "
                                          "--device cuda --set data.workers=8 --set train.deterministic=false")
    p.add_argument("--params", nargs="+", required=True, metavar="FILE", help="YAML params files")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one setting")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default 3)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: train.device from the params)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_bench)

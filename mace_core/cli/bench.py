"""`mace bench`: training throughput of a config on this machine, in steady state.

``--params FILE...`` times one config: the input pipeline alone, the model step alone and both
together (over enough steps to drain the loader's queue), the bottleneck, the workers that keep up,
and the one-time costs apart. ``--profile paper`` does that for the exact paper baseline (the
profile plus experiment 0), then times the model step with AMP and channels_last on and off and in
both ``train.deterministic`` modes, then the full test protocol, and prints JSON: the figures to
compare with the book's projection on a GPU.
"""
from __future__ import annotations

import json


def _profile_config(args):
    import dataclasses
    import os

    from mace_core.config import from_dict, merge, parse_override
    import sys
    from pathlib import Path

    from mace_core.study.pretrain import without_pretraining
    from mace_core.study.variants import resolve

    v = resolve("00_baseline", "baseline", args.profile, args.params_dir)
    if v.pretrain is not None and not Path(v.config.model.pretrained).is_file():
        # a step's time does not depend on the weights: time it from random init rather than pretrain first
        print("note: the profile's pretrained backbone is not built yet; timing from random init", file=sys.stderr)
        v = without_pretraining(v)
    merged = v.config.to_dict()
    if args.data_root:
        merged = merge(merged, {"data": {"root": os.path.abspath(os.path.expanduser(args.data_root))}})
    for text in args.set or []:
        merged = merge(merged, parse_override(text))
    if args.device:
        merged = merge(merged, {"train": {"device": args.device}})
    cfg = from_dict(merged)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=os.path.abspath(cfg.data.root)))


def _bench(args) -> int:
    from mace_core.config import load_config
    from mace_core.engine.bench import bench, profile_bench
    from mace_core.errors import MaceError

    if bool(args.params) == bool(args.profile):
        raise MaceError("pass exactly one of --params FILE... and --profile NAME",
                        "e.g. mace bench --profile paper --data-root data/SYSU-MM01")
    if args.profile:
        report = profile_bench(_profile_config(args), steps=args.steps, warmup=args.warmup,
                               evaluate_too=not args.no_eval)
        print(json.dumps(report, indent=2))
        return 0
    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"train.device={args.device}")
    cfg = load_config(args.params, overrides)
    report = bench(cfg, steps=args.steps, warmup=args.warmup)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_flat(report)
    return 0


def _print_flat(report: dict, indent: int = 0) -> None:
    for key, value in report.items():
        if isinstance(value, dict):
            print(f"{' ' * indent}{key}:")
            _print_flat(value, indent + 2)
        else:
            shown = f"{value:.2f}" if isinstance(value, float) else value
            print(f"{' ' * indent}{key}: {shown}")


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="measure training throughput of a config on this device",
                              description="Time training in steady state: the input pipeline alone (loader "
                                          "workers as configured), the model step alone (batch on the device) "
                                          "and both together over enough steps to drain the loader's queue "
                                          "(at least 4 x workers x prefetch 2); says which is the bottleneck. "
                                          "One-time costs (set-up, worker spawn, warm-up) are reported apart. "
                                          "On a GPU: mace bench --profile paper --data-root "
                                          "data/SYSU-MM01 --device cuda (JSON: the three parts, model step with AMP "
                                          "and channels_last on/off and with train.deterministic true/false, "
                                          "full-protocol evaluation time, peak GPU memory)")
    p.add_argument("--params", nargs="+", default=None, metavar="FILE", help="YAML params files")
    p.add_argument("--profile", default=None,
                   help="time the profile's baseline (e.g. paper): the three parts, the model step over AMP x "
                        "channels_last and both determinism modes, plus its evaluation")
    p.add_argument("--params-dir", default="params", help="with --profile: the study's params folder")
    p.add_argument("--data-root", default=None, help="with --profile: the SYSU-MM01 folder (overrides data.root)")
    p.add_argument("--no-eval", action="store_true", help="with --profile: skip the evaluation timing")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one setting")
    p.add_argument("--steps", type=int, default=20,
                   help="timed steps (default 20; the loader-facing timings use at least 4 x workers x 2)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default 3)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: train.device from the params)")
    p.add_argument("--json", action="store_true", help="print the report as JSON (always so with --profile)")
    p.set_defaults(func=_bench)

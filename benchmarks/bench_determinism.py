"""What `train.deterministic` costs: the model step in three modes, on this device.

    .venv/bin/python benchmarks/bench_determinism.py [--steps 20] [--device cpu|cuda] [--paper]

Modes, each timed with one batch resident on the device (`mace bench`'s model step alone) after
warm-up steps, in alternating rounds so that a machine's changing load hits all three alike:

* ``deterministic``       — `train.deterministic: true` as the trainer sets it now: deterministic
  algorithms, cuDNN autotune off, new tensors *not* NaN-filled;
* ``deterministic+fill``  — the same with ``torch.utils.deterministic.fill_uninitialized_memory``
  left at PyTorch's default (True): what `train.deterministic: true` cost before;
* ``fast``                — `train.deterministic: false`: cuDNN autotune, no deterministic algorithms.

Each round times every mode (median step of the round); the figure per mode is its best round, as
load from other processes only ever slows a round down.

Default model: the smoke profile's (half-width ResNet-18 at 64x32, 64 images a step, CPU-sized).
``--paper``: the paper profile's ResNet-50 at 288x144 (GPU-sized). Generates (once) a small
synthetic tree under benchmarks/results/ and prints JSON (also saved there).
"""
from __future__ import annotations

import argparse
import json

import torch
import torch.utils.deterministic

from common import HERE, prepare  # noqa: E402  (also puts the checkout on sys.path)

from mace_core.config import load_config
from mace_core.engine import bench as bench_mod
from mace_core.utils.atomic import atomic_write_json

MODES = ("deterministic", "deterministic+fill", "fast")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per mode and round")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per mode and round")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--paper", action="store_true", help="the paper model (ResNet-50, 288x144) instead")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    out, root = prepare(args)
    if args.paper:
        layer = {"data": {"height": 288, "width": 144, "ids_per_batch": 8, "images_per_id": 4},
                 "model": {"backbone": "resnet50", "pretrained": "none"}}
    else:
        layer = {"data": {"height": 64, "width": 32, "ids_per_batch": 8, "images_per_id": 4, "pad": 4},
                 "model": {"backbone": "resnet18", "pretrained": "none",
                           "backbone_kwargs": {"channels": [32, 64, 128, 256], "stem_width": 32}}}
    layer["data"].update(root=str(root), workers=0, pin_memory=False, persistent_workers=False)
    layer["train"] = {"device": args.device, "amp": "auto", "channels_last": True}
    cfg = load_config([layer])
    device = bench_mod.resolve_device(args.device)
    p = bench_mod._Pieces(cfg, 1)  # one model for all modes: the modes change kernels, not the network
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            with bench_mod.determinism_mode(mode != "fast", device):
                if mode == "deterministic+fill":
                    torch.utils.deterministic.fill_uninitialized_memory = True
                r = bench_mod.time_model_step(p, args.steps, args.warmup)
                times[mode].append(r["step_time_ms_median"])
    # a shared machine only ever slows a round down: the least disturbed round is the best estimate
    ms = {m: min(v) for m, v in times.items()}
    report = {"device": args.device, "model": "paper" if args.paper else "smoke", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "steps": args.steps, "rounds": args.rounds,
              "step_ms_best_round": ms, "step_ms_median_per_round": times,
              "deterministic_over_fast": ms["deterministic"] / ms["fast"],
              "fill_over_no_fill": ms["deterministic+fill"] / ms["deterministic"]}
    print(json.dumps(report, indent=2))
    atomic_write_json(out / f"bench_determinism_{args.device.split(':')[0]}.json", report)


if __name__ == "__main__":
    main()

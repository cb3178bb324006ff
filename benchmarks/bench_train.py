"""CPU training throughput of a fixed small config (issue 4, point 18).

    .venv/bin/python benchmarks/bench_train.py [--steps 30] [--threads N]

Generates (once) a small synthetic SYSU tree under benchmarks/results/, then runs `mace bench`'s
engine on the smoke-profile model: a narrow ResNet-18 (channels 32-64-128-256) at 64x32, P x K = 8 x 4
(64 images per step), AdamW, no AMP, workers 0. Prints and saves benchmarks/results/bench_train.json.

GPU recipe (H100 or similar; the issue's goal is >= 3,000 images/s at 288x144 with ResNet-50):

    mace bench --params params/profiles/paper.yaml --device cuda --steps 50 \
        --set train.amp=bf16 --set train.channels_last=true --set data.workers=8 \
        --set data.pin_memory=true --set train.deterministic=false [--set train.compile=true]

(train.deterministic=false lets cuDNN pick the fastest kernels; keep it true for bit-reproducible runs.)
"""
from __future__ import annotations

import argparse
import json


from common import HERE, prepare  # noqa: E402  (also puts the checkout on sys.path)

from mace_core.config import load_config
from mace_core.engine.bench import bench
from mace_core.utils.atomic import atomic_write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    out, root = prepare(args)
    layer = {
        "name": "bench-cpu",
        "data": {"root": str(root), "height": 64, "width": 32, "ids_per_batch": 8, "images_per_id": 4, "pad": 4,
                 "rgb_grayscale_p": 0.5, "workers": 0, "pin_memory": False, "persistent_workers": False},
        "model": {"backbone": "resnet18", "pretrained": "none",
                  "backbone_kwargs": {"channels": [32, 64, 128, 256], "stem_width": 32}},
        "train": {"optimizer": "adamw", "lr": 0.003, "amp": "off", "channels_last": False, "device": "cpu"},
    }
    rows = []
    for channels_last in (False, True):
        cfg = load_config([layer], [f"train.channels_last={str(channels_last).lower()}"])
        report = bench(cfg, steps=args.steps, warmup=args.warmup)
        rows.append(report)
        print(json.dumps(report))
    atomic_write_json(out / "bench_train.json", rows)


if __name__ == "__main__":
    main()

"""Evaluation throughput against the training forward's, in one run on the CPU (issue 14, point 5).

    .venv/bin/python benchmarks/bench_eval.py [--repeats 3] [--threads N] [--workers 0]

Generates (once) the small synthetic SYSU tree of bench_train.py under benchmarks/results/, builds the
same narrow ResNet-18 (channels 32-64-128-256) at 64x32 and measures, alternating, best of
``--repeats``:

* ``train_forward``: the trainer's forward on P x K = 8 x 4 batches (64 images: 32 RGB + 32 IR) in
  train mode with autograd recording, uint8 batches normalised by ``normalize_batch`` as in training
  (no backward, no augmentation);
* ``eval``: :func:`mace_core.engine.evaluate.embed_images` over every RGB test candidate (the
  evaluation's image loader, device-side normalisation, batch 128);
* ``eval_per_image``: the former evaluation loop (each image transformed on its own in Python,
  stacked, embedded, copied back per batch), for reference.

Prints and saves benchmarks/results/bench_eval.json with images/s per path and
``eval_over_train_forward`` (the goal is >= 0.8).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from common import HERE, prepare  # noqa: E402  (also puts the checkout on sys.path)

from mace_core.config import ModelConfig
from mace_core.data.cache import cached_images
from mace_core.data.datasets import to_chw
from mace_core.data.sysu import gallery_candidates
from mace_core.data.transforms import normalize_batch, test_transform
from mace_core.engine.evaluate import embed_images
from mace_core.models import build_model
from mace_core.utils.atomic import atomic_write_json

SIZE = (64, 32)
P, K = 8, 4


def per_image(model, images, transform, batch_size: int) -> np.ndarray:
    """The evaluation loop as it was before the loader path (kept here as the reference)."""
    chunks = []
    with torch.inference_mode():
        for lo in range(0, len(images), batch_size):
            x = torch.stack([transform(to_chw(images[i])) for i in range(lo, min(lo + batch_size, len(images)))])
            chunks.append(model.extract(x, "rgb").float().cpu())
    return torch.cat(chunks).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--workers", type=int, default=0, help="evaluation loader workers")
    ap.add_argument("--batches", type=int, default=12, help="training forward batches per repeat")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    out, root = prepare(args)
    images = cached_images(gallery_candidates(root), SIZE, out / "cache", desc="bench-eval-gallery")
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", pretrained="none",
                      backbone_kwargs={"channels": [32, 64, 128, 256], "stem_width": 32})
    model = build_model(cfg, 60)
    transform = test_transform(SIZE)

    rng = np.random.default_rng(0)
    def uint8_batch() -> torch.Tensor:  # P x K cached images as the trainer's loader hands them over
        picked = images[np.sort(rng.integers(0, len(images), P * K))]
        return torch.from_numpy(np.ascontiguousarray(picked.transpose(0, 3, 1, 2)))

    batches = [(uint8_batch(), uint8_batch()) for _ in range(args.batches)]

    def train_forward() -> int:
        model.train()
        for rgb, ir in batches:
            model(normalize_batch(rgb), normalize_batch(ir))  # autograd records, as in a training step
        return 2 * P * K * len(batches)

    def evaluation() -> int:
        embed_images(model, images, "rgb", transform, 128, "cpu", workers=args.workers)
        return len(images)

    def evaluation_per_image() -> int:
        model.eval()
        per_image(model, images, transform, 128)
        return len(images)

    paths = {"train_forward": train_forward, "eval": evaluation, "eval_per_image": evaluation_per_image}
    for run in paths.values():  # warm-up: allocator, kernels, page cache
        run()
    best: dict[str, float] = {}
    for _ in range(args.repeats):  # interleaved, so a busy moment of the machine hits every path alike
        for name, run in paths.items():
            t0 = time.perf_counter()
            n = run()
            rate = n / (time.perf_counter() - t0)
            best[name] = max(best.get(name, 0.0), rate)
    report = {
        "device": "cpu", "torch_threads": torch.get_num_threads(), "eval_workers": args.workers,
        "image_size": list(SIZE), "eval_images": len(images), "train_batch_images": 2 * P * K,
        "images_per_s": {k: round(v, 1) for k, v in best.items()},
        "eval_over_train_forward": round(best["eval"] / best["train_forward"], 3),
        "eval_over_per_image": round(best["eval"] / best["eval_per_image"], 3),
    }
    print(json.dumps(report, indent=1))
    atomic_write_json(out / "bench_eval.json", report)


if __name__ == "__main__":
    main()

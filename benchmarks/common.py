"""What the CPU benchmarks share: the thread setting and the small synthetic set they all time on."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))   # run as `python benchmarks/<script>.py` from a checkout

from mace_core.data.synthetic import generate  # noqa: E402


def prepare(args) -> tuple[Path, Path]:
    """Apply ``--threads``; return ``--out`` and the benchmark dataset in it (60 identities, 128x64,
    seed 0: the same images for every script, generated once)."""
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    return out, generate(out / "synthetic-bench", ids=60, images_per_cam=4, seed=0, size=(128, 64))

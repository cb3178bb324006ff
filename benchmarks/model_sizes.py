"""Parameter counts of MACE per backbone (paper size and CPU equivalent) and CPU step time at 64x32.

Run: .venv/bin/python benchmarks/model_sizes.py [--classes 395] [--batch 16] [--no-paper]
Random init (pretrained none); counts include both stems, the shared trunk, phi_V/phi_I/phi_S,
BN necks, the three classifiers and the fusion module.
"""
from __future__ import annotations

import argparse
import time

import torch

from mace_core.config import LossConfig, ModelConfig
from mace_core.losses import MaceLoss
from mace_core.models import CPU_EQUIVALENTS, build_model, count_parameters


def step_time(model, batch: int, classes: int, repeats: int = 3) -> float:
    loss_fn = MaceLoss(LossConfig())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rgb, ir = torch.randn(batch, 3, 64, 32), torch.randn(batch, 3, 64, 32)
    y = torch.arange(batch) % classes
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        opt.zero_grad()
        loss, _ = loss_fn(model(rgb, ir), y, y, 0)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", type=int, default=395)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--no-paper", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"{'backbone':<34}{'params':>12}{'backbone only':>15}{'step s (2x' + str(args.batch) + ' @64x32)':>24}")
    for paper, (small, kwargs) in CPU_EQUIVALENTS.items():
        rows = [] if args.no_paper else [(paper, {}, False)]
        rows.append((small, kwargs, True))
        for name, kw, timed in rows:
            model = build_model(ModelConfig(backbone=name, backbone_kwargs=kw, pretrained="none"), args.classes)
            backbone = sum(p.numel() for p in model.parameter_groups()["backbone"])
            label = name + (f" {kw}" if kw else "")
            timing = step_time(model, args.batch, args.classes) if timed else float("nan")
            print(f"{label:<34}{count_parameters(model) / 1e6:>11.2f}M{backbone / 1e6:>14.2f}M{timing:>24.3f}")


if __name__ == "__main__":
    main()

"""One training step and its accounting: forward under autocast, the MACE loss and the (scaled) backward
(:func:`forward_backward`), and :class:`StepStats`, which sums an epoch's loss terms on the device and
reads them on the host once per logging interval. The loop that calls them is
:func:`mace_core.engine.train.train`.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist

from mace_core.engine.device import DistInfo, autocast
from mace_core.errors import MaceError


def _nonfinite(total: float, terms: dict[str, float], epoch: int, step: int) -> MaceError:
    bad = [f"{k}={v}" for k, v in terms.items() if isinstance(v, (int, float)) and not math.isfinite(v)]
    where = f"epoch {epoch + 1}, batch {step + 1} of the epoch"
    return MaceError(f"loss became {total} at {where}"
                     + (f" (non-finite term(s): {', '.join(bad)})" if bad else " (total only)"),
                     "lower train.lr, set train.amp=off, or check the input data for corrupt images")


def forward_backward(net, criterion, batch, epoch: int, step: int, device: torch.device,
                     dtype: torch.dtype | None, scaler: torch.amp.GradScaler, divide: int = 1):
    """Forward under autocast, MACE loss, (scaled) backward of ``loss / divide``. Nothing here reads a
    device value on the host: the terms come back as device tensors, and :class:`StepStats` checks
    their finiteness when it reads them (once per logging interval)."""
    rgb, ir, y_rgb, y_ir = batch
    with autocast(device, dtype):
        out = net(rgb, ir)
        total, terms = criterion(out, y_rgb, y_ir, epoch)
    scaler.scale(total / divide).backward()
    return out, total, terms


def log_name(term: str) -> str:
    """The log column of a loss term: ``total`` -> loss, ``acc`` -> train_acc, others loss.<term>."""
    return "train_acc" if term == "acc" else "loss" if term == "total" else f"loss.{term}"


class StepStats:
    """One epoch's loss terms and training accuracy, summed on the device without a host sync per step.

    ``add`` stacks a step's tensor terms and adds them in float64, in step order: the sums are exactly
    those of adding each step's value as a Python float, as a per-step ``.item()`` would. Terms the loss
    gives as host floats are summed on the host (``kd_weight`` excepted: lambda_2 is logged once per
    epoch). ``add`` also remembers, on the device, whether and where the total first became non-finite.
    ``read`` brings the sums to the host (under DDP summed over the ranks, with each rank's batch count)
    once per logging interval and at the epoch's end; it raises there if the loss was not finite on any
    rank, so every rank stops at the same point.
    """

    def __init__(self, device: torch.device, info: DistInfo):
        self.device, self.info = device, info
        self.terms: list[str] = []  # the loss's tensor terms, ordered by their log column
        self.host_terms: list[str] = []  # terms given as host numbers
        self.host_sums: list[float] = []
        self.sums: torch.Tensor | None = None
        self.batches = 0

    def add(self, terms: dict[str, Any]) -> None:
        if self.sums is None:
            self.terms = sorted((k for k, v in terms.items() if isinstance(v, torch.Tensor)), key=log_name)
            self.host_terms = sorted((k for k, v in terms.items() if not isinstance(v, torch.Tensor)
                                      and k != "kd_weight"), key=log_name)
            self.host_sums = [0.0] * len(self.host_terms)
            self._total = self.terms.index("total")
            n = len(self.terms)
            self.sums = torch.zeros(n, dtype=torch.float64, device=self.device)
            self.bad = torch.zeros(n, dtype=torch.float64, device=self.device)  # terms of the first bad step
            self.ok = torch.ones((), dtype=torch.bool, device=self.device)      # every total so far finite
            self.clean = torch.zeros((), dtype=torch.int64, device=self.device)  # steps before the first bad
        values = torch.stack([terms[k].float() for k in self.terms]).double()
        self.sums += values
        first_bad = self.ok & ~torch.isfinite(values[self._total])
        self.bad = torch.where(first_bad, values, self.bad)
        self.ok &= ~first_bad
        self.clean += self.ok
        for i, k in enumerate(self.host_terms):
            self.host_sums[i] += float(terms[k])
        self.batches += 1

    def read(self, epoch: int) -> dict[str, float]:
        """``{log column: sum over batches (and ranks)}`` plus ``batches`` (the count summed over ranks)."""
        if self.sums is None:
            raise MaceError("the epoch ran no training step", "check data.ids_per_batch against the identities")
        local_bad = (~self.ok).to(torch.float64).view(1)
        host = torch.tensor(self.host_sums + [float(self.batches)], dtype=torch.float64).to(self.device)
        vector = torch.cat([self.sums, host, local_bad])
        if self.info.enabled:
            dist.all_reduce(vector)
        values = vector.tolist()  # the one host sync of the interval
        if values[-1] > 0:
            if not self.ok.item():
                bad = dict(zip(self.terms, self.bad.tolist()))
                raise _nonfinite(bad["total"], bad, epoch, int(self.clean.item()))
            raise MaceError(f"the loss became non-finite on another rank in epoch {epoch + 1} (by batch "
                            f"{self.batches} of the epoch)",
                            "see that rank's message; lower train.lr or set train.amp=off")
        names = self.terms + self.host_terms
        out = {log_name(k): v for k, v in zip(names, values)}
        out["batches"] = values[len(names)]
        return out

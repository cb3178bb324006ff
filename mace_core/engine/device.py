"""Where a run executes: device choice, mixed precision, memory stats and the DDP process group.

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; when they are present
the trainer joins a process group (gloo on CPU, nccl on CUDA) and every rank trains its shard of
each epoch's batches. Only rank 0 writes files.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mace_core.errors import MaceError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def under_torchrun(environ=None) -> bool:
    """Whether this process is a rank that torchrun (or a like launcher) started: LOCAL_RANK set or WORLD_SIZE > 1."""
    environ = os.environ if environ is None else environ
    return "LOCAL_RANK" in environ or int(environ.get("WORLD_SIZE", "1") or 1) > 1


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` = the local rank's GPU when CUDA is available, else CPU; explicit names are checked.

    Under torchrun every rank takes GPU ``LOCAL_RANK`` (``auto`` or ``cuda``); a fixed ``cuda:N`` would put
    every rank on one GPU and is refused. The chosen GPU becomes the process's current CUDA device
    (``torch.cuda.set_device``), so work that names no device lands on it too."""
    if name == "auto":
        device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MaceError(f"train.device={name!r} is not a device name", "use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if device.index is not None and under_torchrun():
            raise MaceError(f"train.device={name!r} under torchrun would put every rank on GPU {device.index}",
                            "use train.device=cuda (or auto): each rank then takes the GPU of its LOCAL_RANK")
        if not torch.cuda.is_available():
            raise MaceError(f"train.device={name!r} but CUDA is not available on this machine",
                            "use train.device=cpu (or auto)")
        index = device.index if device.index is not None else local_rank
        if index >= torch.cuda.device_count():
            raise MaceError(f"train.device={name!r}: only {torch.cuda.device_count()} GPU(s) visible",
                            "pick an index below the GPU count")
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
        return device
    if device.type != "cpu":
        raise MaceError(f"train.device={name!r} is not supported", "use auto, cpu, cuda or cuda:N")
    return device


def amp_dtype(amp: str, device: torch.device, key: str = "train.amp") -> torch.dtype | None:
    """``auto`` -> bf16 on CUDA, no autocast on CPU (CPU bf16 is slower on CPUs without native bf16
    instructions, and not bit-identical to fp32). ``key`` names the setting in errors."""
    table = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if amp not in table:
        raise MaceError(f"{key}={amp!r} is not known", "use auto, off, bf16 or fp16")
    if amp == "fp16" and device.type not in ("cuda", "cpu"):
        raise MaceError(f"{key}=fp16 is not supported on {device.type}", f"use {key}=off or bf16")
    # fp16 on CPU: autocast and GradScaler("cpu") exist in torch >= 2.4 (the floor in pyproject), so the
    # fp16 + GradScaler path of a GPU run is tested on CPU; slow there, it is meant for the tests
    return table[amp]


def eval_amp_dtype(cfg, device: torch.device) -> torch.dtype | None:
    """The evaluation's autocast dtype: ``eval.amp``, or the training's (``train.amp``) when it is None."""
    if cfg.eval.amp is None:
        return amp_dtype(cfg.train.amp, device)
    return amp_dtype(cfg.eval.amp, device, "eval.amp")


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float | None:
    """Peak allocated accelerator memory since the last reset (None on CPU: no allocator stats)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None


def init_distributed(device_name: str = "auto") -> DistInfo:
    """Join the process group torchrun describes in the environment; a plain run is rank 0 of 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        use_cuda = device_name != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank so all ranks hold one model."""
    if not (info.enabled and dist.is_initialized()):
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=0)

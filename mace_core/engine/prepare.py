"""What a training run is prepared from, before its first step: seeds, determinism, the training set
and sampler built from the config, and the checks that fail early (evaluation settings; a resume whose
config differs from its checkpoint's). The loop itself is :func:`mace_core.engine.train.train`.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
import torch.utils.deterministic

from mace_core.config import RunConfig
from mace_core.engine import rundir
from mace_core.engine.checkpoint import BEST_ON_TEST, FINAL_EPOCH
from mace_core.engine.device import DistInfo
from mace_core.errors import MaceError

# Settings that may change between a run and its resume without changing what is trained (evaluation
# settings too: they only change what is measured, and config.yaml records the ones in force at the end).
_RESUME_FREE = {"output_dir", "train.device", "train.compile", "train.log_every", "train.threads", "data.workers",
                "data.pin_memory", "data.persistent_workers", "data.cache_dir", "train.checkpoint_every"}


def selection_label(cfg: RunConfig) -> str:
    return BEST_ON_TEST if cfg.train.select_on_test else FINAL_EPOCH


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    """``train.deterministic``: true = deterministic kernels (bit-reproducible); false = "fast" (cuDNN
    autotunes its kernels per input shape, no deterministic algorithms)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
    # warn_only: a few CUDA kernels have no deterministic variant; CPU ones all do
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    # Deterministic mode would also fill every new tensor with NaN (a debugging aid that exposes reads of
    # uninitialised memory, at a cost on every allocation); results do not depend on it, as no code here
    # reads memory it has not written, so reproducibility is kept without paying for it.
    torch.utils.deterministic.fill_uninitialized_memory = False


def build_training_set(cfg: RunConfig, info: DistInfo):
    """(TrainData, pair dataset, identity sampler) for this rank."""
    from mace_core.data.datasets import CrossModalTrainDataset, load_training_data
    from mace_core.data.sampler import CrossModalIdentitySampler
    from mace_core.data.transforms import train_transform

    d = cfg.data
    size = (d.height, d.width)
    data = load_training_data(d.dataset, d.root, size, cache_dir=d.cache_dir, include_val=d.include_val,
                              trial=d.trial, id_fraction=d.id_fraction, fraction_seed=d.fraction_seed)
    occlusion = None
    if d.occlusion_p > 0:
        from mace_core.occlusion import OcclusionAugment

        # Applied to both modalities: occluders hide people in visible and infrared cameras alike,
        # and the thesis (exp. 6) trains "with occlusion-augmented data" without restricting it to IR.
        # seed=None: it draws from torch's generator, which each batch reseeds from (seed, epoch, batch)
        occlusion = OcclusionAugment(p=d.occlusion_p, kinds=tuple(d.occlusion_types), fill=d.occlusion_fill,
                                     seed=None)
    rgb_tf = train_transform(size, pad=d.pad, flip=True, random_erasing=d.random_erasing,
                             grayscale_p=d.rgb_grayscale_p, extra=occlusion)
    ir_tf = train_transform(size, pad=d.pad, flip=True, random_erasing=d.random_erasing, grayscale_p=0.0,
                            extra=occlusion)
    dataset = CrossModalTrainDataset(data.rgb_images, data.rgb_labels, data.ir_images, data.ir_labels, rgb_tf, ir_tf)
    sampler = CrossModalIdentitySampler(data.rgb_labels, data.ir_labels, ids_per_batch=d.ids_per_batch,
                                        images_per_id=d.images_per_id, seed=cfg.train.seed,
                                        num_batches=cfg.train.steps_per_epoch, rank=info.rank,
                                        world_size=info.world_size)
    return data, dataset, sampler


def _check_eval_settings(cfg: RunConfig) -> None:
    """Search direction and re-ranking settings fail before training, not after it."""
    from mace_core.engine.retrieval import DIRECTIONS, check_direction
    from mace_core.rerank import rerank_settings

    if cfg.data.dataset in DIRECTIONS:
        check_direction(cfg.data.dataset, cfg.eval.direction)
    e = cfg.eval
    rerank_settings(e.rerank, e.rerank_k1, e.rerank_k2, e.rerank_lambda)


def _check_resume_config(saved: dict[str, Any], cfg: RunConfig) -> None:
    now = rundir.flatten(cfg.to_dict())
    before = rundir.flatten(saved)
    changed = sorted(k for k in set(now) | set(before)
                     if now.get(k) != before.get(k) and k not in _RESUME_FREE and not k.startswith("eval."))
    if changed:
        raise MaceError("cannot resume: the config differs from the checkpoint's in "
                        + ", ".join(f"{k} ({before.get(k)!r} -> {now.get(k)!r})" for k in changed[:8]),
                        "resume with the same params, or start a new run directory")

"""Checkpoints: atomic save, ``weights_only`` load, every RNG state, architecture checks.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(..., weights_only=True)`` (no pickled code is ever executed). It is written to a
temporary file in the same folder and renamed over the target, so a crash (even ``kill -9``) leaves
either the previous complete checkpoint or the new complete one.
"""
from __future__ import annotations

import dataclasses
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mace_core.config import RunConfig, from_dict
from mace_core.errors import MaceError
from mace_core.utils.atomic import atomic_path

# model-selection labels: every output that reports metrics carries one of these
FINAL_EPOCH = "final epoch"
BEST_ON_TEST = "best epoch on test set (thesis convention)"

FORMAT = "mace-checkpoint/1"


# ---------------------------------------------------------------------------------------------
# RNG state

def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states, as weights_only-loadable values."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_kind, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


# ---------------------------------------------------------------------------------------------
# Save / load

def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, torch.nn.Module):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus the format tag) atomically: temp file in the same folder + rename."""
    payload = {"format": FORMAT, **payload}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MaceError(f"checkpoint {path} does not exist", "give the path of a .pt file written by `mace train`")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise MaceError(f"checkpoint {path} cannot be read ({exc.__class__.__name__}: {str(exc).splitlines()[0]})",
                        "it is damaged or not a mace checkpoint; retrain or pick another file") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise MaceError(f"checkpoint {path} is not a {FORMAT} file", "give a checkpoint written by `mace train`")
    return ckpt


def describe_mismatch(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between a model's keys/shapes and a state dict (empty = compatible)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))

    def head(keys: list[str], fmt=str) -> str:
        shown = ", ".join(fmt(k) for k in keys[:8])
        return shown + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")

    lines = []
    if missing:
        lines.append(f"missing keys: {head(missing)}")
    if unexpected:
        lines.append(f"unexpected keys: {head(unexpected)}")
    if shapes:
        lines.append("shape mismatches: " + head(
            shapes, lambda k: f"{k} checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"))
    return lines


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strict load; a checkpoint of another architecture raises a MaceError listing the mismatch."""
    target = unwrap(model)
    problems = describe_mismatch(target, state)
    if problems:
        raise MaceError(f"{source} does not fit this model architecture: " + "; ".join(problems),
                        "use the params (model.* settings, dataset) the checkpoint was trained with")
    target.load_state_dict(state, strict=True)


def config_of(ckpt: dict[str, Any], source: str = "checkpoint") -> RunConfig:
    try:
        return from_dict(ckpt["config"])
    except (KeyError, MaceError) as exc:
        raise MaceError(f"{source} holds no valid run config ({exc})",
                        "give a checkpoint written by this version of `mace train`") from None


def load_for_eval(path: str | Path, device: str | torch.device = "cpu",
                  meta: dict[str, Any] | None = None) -> tuple[torch.nn.Module, RunConfig]:
    """Rebuild the trained model from a checkpoint alone (config + weights), in eval mode, on ``device``.

    ``meta``, when given, receives how the weights were selected (``model_selection``, ``epoch``):
    ``best.pt`` carries the test-set label, ``last.pt`` is the final epoch of its run."""
    from mace_core.models import build_model

    ckpt = load_checkpoint(path, map_location="cpu")
    cfg = config_of(ckpt, str(path))
    if meta is not None:
        epoch = ckpt.get("epoch", (ckpt.get("state") or {}).get("epoch"))
        meta.update(model_selection=ckpt.get("model_selection", FINAL_EPOCH), epoch=epoch)
    # the weights come from the checkpoint: never fetch ImageNet weights just to overwrite them
    model_cfg = dataclasses.replace(cfg.model, pretrained="none")
    model = build_model(model_cfg, int(ckpt["num_classes"]))
    load_model_state(model, ckpt["model"], source=f"checkpoint {path}")
    return model.to(device).eval(), cfg

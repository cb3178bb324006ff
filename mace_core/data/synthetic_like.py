"""Synthetic datasets shaped like the real releases: ``mace data synth --like sysu-mm01|regdb``.

The people are the embedded generator's (:mod:`mace_core.data.synthetic`); what this module adds is
the real releases' shape, so that the paper profile can be tried at full scale without the data:

* **SYSU-MM01**: the release's per-identity, per-camera image counts and its train/val/test ids,
  read from the official evaluation's ``structure.json`` when a path to it is given (the file
  stays where it is: only its numbers are used). Without it, the release's per-camera totals (below,
  counted from the release's folder tree) are spread evenly over 491 identities split
  296 / 99 / 96, with 40 test identities lacking cam1/cam2 (as in the release): camera totals,
  identity and split counts are then exact, query and gallery sizes only close.
* **RegDB**: 412 identities × 10 visible + 10 thermal images (``Visible/<id>/``, ``Thermal/<id>/``)
  and the ten trials' lists ``idx/{train,test}_{visible,thermal}_{1..10}.txt`` (a seeded half/half
  identity split per trial, labels 0..205 in each list, as the reader expects).

* **LLCM**: the release's layout as the DEEN code reads it (:mod:`mace_core.data.llcm`):
  ``idx/train_vis.txt`` / ``idx/train_nir.txt`` (``relpath label``, labels 0..N-1 over the sorted
  training ids), ``idx/test_id.txt`` (one comma-separated line) and ``test_vis/camK/NNNN/``,
  ``test_nir/camK/NNNN/`` (no NIR camera 3 in the test set, which the reference never reads).
  Figures from the public release notes and code: 1,064 identities, 46,767 images, 9 cameras,
  713 training identities (so 351 test ones). How the images spread over cameras and modalities
  is not in what was read, so this tree assumes it: each identity is seen by a seeded 4 of the 9
  cameras, in both modalities at each, and the images are spread evenly over those folders
  (identity and image totals exact, per-camera and per-modality counts an assumption). Training
  images sit under ``train_vis/camK/NNNN/`` and ``train_nir/camK/NNNN/`` (the lists name them).

``scale`` (0 < scale <= 1) keeps a seeded share of each split's identities and scales every
camera's total to ``round(scale × total)``, spread over the kept identities in proportion to their
full-size counts, so per-camera proportions stay those of the release (tests use 0.02-0.05).
Files are byte-identical for a seed whatever the number of workers.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mace_core.data.synthetic import FORMAT_VERSION, Knobs, sysu_plan, write_sysu_splits, write_tree
from mace_core.errors import MaceError

LIKES = ("sysu-mm01", "regdb", "llcm")

# Real SYSU-MM01 release (images per camera; 491 identities with both modalities; official
# splits 296 train / 99 val / 96 test, 40 test ids without cam1/cam2 images).
SYSU_CAMERA_TOTALS = {1: 6289, 2: 7528, 3: 9812, 4: 8030, 5: 8224, 6: 5980}
SYSU_IDS, SYSU_SPLITS, SYSU_TEST_NO_INDOOR = 491, {"train": 296, "val": 99, "test": 96}, 40
# Real RegDB release: 412 identities, 10 visible + 10 thermal images each, 10 trials.
REGDB_IDS, REGDB_IMAGES, REGDB_TRIALS = 412, 10, 10
# Cameras whose look renders RegDB's two sensors (one RGB scene, one infrared scene).
REGDB_VISIBLE_LOOK, REGDB_THERMAL_LOOK = 4, 6


def _apportion(weights: dict, total: int) -> dict:
    """Integer shares of ``total`` proportional to ``weights`` (largest remainder; ties by key)."""
    keys = sorted(weights)
    w = np.array([weights[k] for k in keys], dtype=float)
    if total <= 0 or not keys or w.sum() <= 0:
        return {k: 0 for k in keys}
    exact = w * total / w.sum()
    base = np.floor(exact).astype(int)
    order = sorted(range(len(keys)), key=lambda i: (-(exact[i] - base[i]), i))
    for i in order[: total - int(base.sum())]:
        base[i] += 1
    return {k: int(n) for k, n in zip(keys, base)}


def _check_scale(scale: float) -> float:
    if not isinstance(scale, (int, float)) or not 0 < scale <= 1:
        raise MaceError(f"--scale must be in (0, 1], got {scale!r}", "pass e.g. --scale 0.05 (1 = full size)")
    return float(scale)


def _keep(ids, share: float, seed: int, tag: int) -> list[int]:
    """A seeded ``share`` of ``ids`` (at least one when there are any)."""
    ids = sorted(ids)
    if share >= 1 or not ids:
        return ids
    n = max(1, int(round(share * len(ids))))
    rng = np.random.default_rng([seed, 7, tag])
    return sorted(rng.choice(ids, n, replace=False).tolist())


def read_structure(path) -> dict:
    """``{"cameras": {cam: {pid: n}}, "train"/"val"/"test": [ids]}`` from the official structure.json."""
    path = Path(path).expanduser()
    try:
        raw = json.loads(path.read_text())
        cams = {int(c.removeprefix("cam")): {int(p): int(n) for p, n in ids.items()} for c, ids in raw["cameras"].items()}
        splits = {s: sorted(int(i) for i in raw[f"{s}_id"]) for s in ("train", "val", "test")}
    except FileNotFoundError:
        raise MaceError(f"structure file {str(path)!r} does not exist",
                        "pass the SYSU-MM01 evaluation's structure.json, or omit --structure") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MaceError(f"structure file {str(path)!r} is not a SYSU-MM01 structure.json ({type(exc).__name__}: {exc})",
                        "pass the structure.json of the SYSU-MM01 evaluation files") from None
    if sorted(cams) != [1, 2, 3, 4, 5, 6]:
        raise MaceError(f"structure file {str(path)!r} names cameras {sorted(cams)}, not cam1..cam6",
                        "pass the structure.json of the SYSU-MM01 evaluation files")
    return {"cameras": cams, **splits}


def release_structure(seed: int = 0) -> dict:
    """The fallback: the release's per-camera totals spread over 491 seeded-split identities."""
    rng = np.random.default_rng([seed, 8])
    order = rng.permutation(np.arange(1, SYSU_IDS + 1))
    a, b = SYSU_SPLITS["train"], SYSU_SPLITS["train"] + SYSU_SPLITS["val"]
    splits = {"train": sorted(order[:a].tolist()), "val": sorted(order[a:b].tolist()),
              "test": sorted(order[b:].tolist())}
    no_indoor = set(rng.choice(splits["test"], SYSU_TEST_NO_INDOOR, replace=False).tolist())
    cams = {}
    for cam, total in SYSU_CAMERA_TOTALS.items():
        pids = [p for p in range(1, SYSU_IDS + 1) if not (cam in (1, 2) and p in no_indoor)]
        cams[cam] = _apportion({p: 1 for p in pids}, total)
    return {"cameras": cams, **splits}


def scaled_counts(structure: dict, scale: float, seed: int = 0) -> tuple[dict, dict]:
    """(``{pid: {cam: n}}``, splits) at ``scale`` (see module doc); scale 1 returns the counts as given."""
    cams = {c: {p: n for p, n in ids.items() if n > 0} for c, ids in structure["cameras"].items()}
    splits = {s: list(structure[s]) for s in ("train", "val", "test")}
    present = set().union(*map(set, cams.values()))
    if scale >= 1:
        kept = present
        per_cam = cams
    else:
        indoor = set(cams[1]) | set(cams[2])
        groups = [splits["train"], splits["val"], [p for p in splits["test"] if p in indoor],
                  [p for p in splits["test"] if p not in indoor],
                  sorted(present - set().union(*map(set, splits.values())))]   # ids in no split
        kept = set().union(*(_keep([p for p in g if p in present], scale, seed, tag) for tag, g in enumerate(groups)))
        per_cam = {}
        for cam, ids in cams.items():
            weights = {p: n for p, n in ids.items() if p in kept}
            total = int(round(scale * sum(ids.values())))
            if total >= len(weights):  # every kept (id, camera) folder keeps at least one image
                extra = _apportion(weights, total - len(weights))
                per_cam[cam] = {p: 1 + extra[p] for p in weights}
            else:
                per_cam[cam] = _apportion(weights, total)
    per_pid: dict[int, dict[int, int]] = {}
    for cam, ids in sorted(per_cam.items()):
        for p, n in ids.items():
            if n > 0 and p in kept:
                per_pid.setdefault(p, {})[cam] = n
    return per_pid, {s: [p for p in ids if p in per_pid] for s, ids in splits.items()}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def generate_sysu_like(root, structure=None, scale: float = 1.0, seed: int = 0, size=(288, 144),
                       workers: int | None = None, **knobs) -> Path:
    """A SYSU-MM01-shaped synthetic tree under ``root`` (see module doc); reused when up to date."""
    scale = _check_scale(scale)
    k = _knobs(knobs)
    size = _size(size)
    source = read_structure(structure) if structure is not None else release_structure(seed)
    per_pid, splits = scaled_counts(source, scale, seed)
    counts = {str(p): {str(c): n for c, n in sorted(v.items())} for p, v in sorted(per_pid.items())}
    params = {"format": FORMAT_VERSION, "like": "sysu-mm01", "scale": scale, "seed": int(seed), "size": list(size),
              "counts_from": "structure.json" if structure is not None else "release camera totals",
              "counts_digest": _digest({"counts": counts, "splits": splits}), "knobs": asdict(k)}
    jobs = [(int(seed), p, sysu_plan(p, per_pid[p]), size, k) for p in sorted(per_pid)]
    return write_tree(Path(root).expanduser().resolve(), params, jobs,
                      lambda tmp: write_sysu_splits(tmp, splits["train"], splits["val"], splits["test"]),
                      _workers(workers), "rendering SYSU-MM01-like identities")


def regdb_trials(pids: list[int], seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """(train ids, test ids) of trials 1..10: a seeded half/half split of the identities each."""
    out = []
    for trial in range(1, REGDB_TRIALS + 1):
        order = np.random.default_rng([seed, 9, trial]).permutation(pids)
        half = len(pids) // 2
        out.append((sorted(order[:half].tolist()), sorted(order[half:].tolist())))
    return out


def _regdb_name(kind: str, pid: int, k: int) -> str:
    return f"{kind[0].lower()}_{pid:03d}_{k:02d}.bmp"


def _write_regdb_lists(tmp: Path, pids: list[int], seed: int) -> None:
    (tmp / "idx").mkdir()
    for trial, (train, test) in enumerate(regdb_trials(pids, seed), start=1):
        for split, ids in (("train", train), ("test", test)):
            for kind in ("Visible", "Thermal"):
                lines = [f"{kind}/{p}/{_regdb_name(kind, p, k)} {label}" for label, p in enumerate(ids)
                         for k in range(1, REGDB_IMAGES + 1)]
                (tmp / "idx" / f"{split}_{kind.lower()}_{trial}.txt").write_text("\n".join(lines) + "\n")


def generate_regdb_like(root, scale: float = 1.0, seed: int = 0, size=(128, 64), workers: int | None = None,
                        **knobs) -> Path:
    """A RegDB-shaped synthetic tree under ``root`` (see module doc); reused when up to date."""
    scale = _check_scale(scale)
    k = _knobs(knobs)
    size = _size(size)
    n_ids = max(2, int(round(scale * REGDB_IDS)))
    pids = list(range(1, n_ids + 1))
    params = {"format": FORMAT_VERSION, "like": "regdb", "scale": scale, "seed": int(seed), "size": list(size),
              "ids": n_ids, "knobs": asdict(k)}
    names = {kind: [_regdb_name(kind, 0, i) for i in range(1, REGDB_IMAGES + 1)] for kind in ("Visible", "Thermal")}
    jobs = []
    for p in pids:
        plan = [(REGDB_VISIBLE_LOOK, f"Visible/{p}", [n.replace("_000_", f"_{p:03d}_") for n in names["Visible"]]),
                (REGDB_THERMAL_LOOK, f"Thermal/{p}", [n.replace("_000_", f"_{p:03d}_") for n in names["Thermal"]])]
        jobs.append((int(seed), p, plan, size, k))
    return write_tree(Path(root).expanduser().resolve(), params, jobs, lambda tmp: _write_regdb_lists(tmp, pids, seed),
                      _workers(workers), "rendering RegDB-like identities")


# Real LLCM release (DEEN README: 46,767 images, 1,064 identities, 9 cameras; DEEN test.py: 713
# training classes). The cameras each identity passes and the spread over them are assumed (module doc).
LLCM_IDS, LLCM_TRAIN_IDS, LLCM_IMAGES, LLCM_CAMS, LLCM_CAMS_PER_ID = 1064, 713, 46767, 9, 4
LLCM_NO_NIR_TEST_CAM = 3


def llcm_plan(seed: int = 0, scale: float = 1.0) -> dict:
    """``{"train": ids, "test": ids, "folders": {(split, modality, cam, pid): n_images}}`` of the
    LLCM-like tree (see module doc); a pure function of ``seed`` and ``scale``."""
    scale = _check_scale(scale)
    order = np.random.default_rng([seed, 10]).permutation(np.arange(1, LLCM_IDS + 1))
    train = sorted(order[:LLCM_TRAIN_IDS].tolist())
    test = sorted(order[LLCM_TRAIN_IDS:].tolist())
    if scale < 1:   # a seeded share of each split, at least two identities each
        train, test = (sorted(np.random.default_rng([seed, 12, tag]).choice(
            ids, max(2, int(round(scale * len(ids)))), replace=False).tolist()) for tag, ids in ((0, train), (1, test)))
    folders = []
    for split, ids in (("train", train), ("test", test)):
        for pid in ids:
            cams = sorted(np.random.default_rng([seed, 11, pid]).choice(
                np.arange(1, LLCM_CAMS + 1), LLCM_CAMS_PER_ID, replace=False).tolist())
            for cam in cams:
                folders.append((split, "vis", cam, pid))
                if not (split == "test" and cam == LLCM_NO_NIR_TEST_CAM):
                    folders.append((split, "nir", cam, pid))
    total = int(round(scale * LLCM_IMAGES))
    extra = _apportion({i: 1 for i in range(len(folders))}, max(0, total - len(folders)))
    return {"train": train, "test": test, "folders": {f: 1 + extra[i] for i, f in enumerate(folders)}}


def _llcm_look(modality: str, cam: int) -> int:
    """The embedded generator's camera look rendering LLCM camera ``cam`` in ``modality``."""
    return (1, 2, 4, 5)[(cam - 1) % 4] if modality == "vis" else (3, 6)[(cam - 1) % 2]


def _llcm_folder(split: str, modality: str, cam: int, pid: int) -> str:
    return f"{split}_{modality}/cam{cam}/{pid:04d}"


def _write_llcm_lists(tmp: Path, plan: dict) -> None:
    (tmp / "idx").mkdir()
    label = {p: i for i, p in enumerate(plan["train"])}
    for modality in ("vis", "nir"):
        lines = [f"{_llcm_folder(split, mod, cam, pid)}/{k:04d}.jpg {label[pid]}"
                 for (split, mod, cam, pid), n in sorted(plan["folders"].items(), key=lambda kv: (kv[0][3], kv[0][2]))
                 if split == "train" and mod == modality for k in range(1, n + 1)]
        (tmp / "idx" / f"train_{modality}.txt").write_text("\n".join(lines) + "\n")
    (tmp / "idx" / "test_id.txt").write_text(",".join(str(p) for p in plan["test"]) + "\n")


def generate_llcm_like(root, scale: float = 1.0, seed: int = 0, size=(288, 144), workers: int | None = None,
                       **knobs) -> Path:
    """An LLCM-shaped synthetic tree under ``root`` (see module doc); reused when up to date."""
    scale = _check_scale(scale)
    k = _knobs(knobs)
    size = _size(size)
    plan = llcm_plan(seed, scale)
    params = {"format": FORMAT_VERSION, "like": "llcm", "scale": scale, "seed": int(seed), "size": list(size),
              "counts_digest": _digest({"train": plan["train"], "test": plan["test"],
                                        "folders": sorted([*f, n] for f, n in plan["folders"].items())}),
              "knobs": asdict(k)}
    per_pid: dict[int, list] = {}
    for (split, modality, cam, pid), n in sorted(plan["folders"].items()):
        stream = (100 if modality == "vis" else 200) + cam   # one image stream per folder
        per_pid.setdefault(pid, []).append((_llcm_look(modality, cam), _llcm_folder(split, modality, cam, pid),
                                            [f"{i:04d}.jpg" for i in range(1, n + 1)], stream))
    jobs = [(int(seed), pid, per_pid[pid], size, k) for pid in sorted(per_pid)]
    return write_tree(Path(root).expanduser().resolve(), params, jobs, lambda tmp: _write_llcm_lists(tmp, plan),
                      _workers(workers), "rendering LLCM-like identities")


def generate_like(like: str, root, **kwargs) -> Path:
    if like not in LIKES:
        raise MaceError(f"unknown --like {like!r}", f"use one of {', '.join(LIKES)}")
    if like == "llcm":
        if kwargs.pop("structure", None) is not None:
            raise MaceError("--structure describes SYSU-MM01, not LLCM", "drop --structure with --like llcm")
        return generate_llcm_like(root, **kwargs)
    if like == "regdb":
        if kwargs.pop("structure", None) is not None:
            raise MaceError("--structure describes SYSU-MM01, not RegDB", "drop --structure with --like regdb")
        return generate_regdb_like(root, **kwargs)
    return generate_sysu_like(root, **kwargs)


def _knobs(knobs: dict) -> Knobs:
    try:
        return Knobs(**knobs)
    except TypeError as exc:
        raise MaceError(f"unknown synthetic knob ({exc})", f"use only {', '.join(Knobs.__dataclass_fields__)}") from None


def _size(size) -> tuple[int, int]:
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 16:
        raise MaceError(f"--size must be HxW with both sides >= 16, got {size!r}", "pass e.g. --size 288x144")
    return size


def _workers(workers: int | None) -> int:
    return max(1, workers or os.cpu_count() or 1)


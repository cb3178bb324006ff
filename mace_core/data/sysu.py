"""SYSU-MM01 reader: the release layout, identity splits, training set, queries and galleries.

Layout: ``camK/NNNN/NNNN.jpg`` (RGB cams 1, 2, 4, 5; IR cams 3, 6) and ``exp/{train,val,test}_id.txt``
(one comma-separated line) or their ``.mat`` twins. Every list comes back sorted by
(pid, cam, path), so it is a pure function of the files on disk.

Gallery sampling (``gallery_indices``):

* ``method="agw"`` reproduces the AGW reference code's picks (``mangye16/Cross-Modal-Re-ID-baseline``): one ``random.Random(trial)`` stream,
  test identities in ascending order, RGB cameras in order, one ``choice`` over each
  (identity, camera) folder's sorted file list. The reference is single-shot only; with
  ``shots > 1`` the same stream draws ``min(shots, n)`` files without replacement (``sample``).
* ``method="official"`` reads ``rand_perm_cam.mat``: row ``trial`` of each (camera, identity)
  permutation, first ``shots`` entries (1-based in the file).

The reverse search direction (``rgb2ir``, a non-standard extension: RGB queries, IR gallery)
draws its IR gallery with the same rules over the IR images of the test identities
(``gallery_indices(..., modality="ir")``: cameras 3 and 6 in order, one pick per identity and
camera per trial); its queries are the RGB images :func:`gallery_candidates` lists.
"""
from __future__ import annotations

import os
import random
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from mace_core.data.records import Record, is_image_name
from mace_core.errors import MaceError

RGB_CAMS = (1, 2, 4, 5)
IR_CAMS = (3, 6)
INDOOR_RGB_CAMS = (1, 2)
ALL_CAMS = (1, 2, 3, 4, 5, 6)
SPLITS = ("train", "val", "test")
MODES = ("all", "indoor")
METHODS = ("agw", "official")


@dataclass
class TrainingSet:
    """Training images per modality; ``label_of`` maps an original pid to its label 0..N-1."""

    rgb: list[Record]
    ir: list[Record]
    pids: list[int]
    label_of: dict[int, int] = field(default_factory=dict)


def check_root(root) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MaceError(f"SYSU-MM01 root {str(root)!r} is not a directory",
                        "pass --root pointing at the folder holding cam1..cam6 and exp/ "
                        "(or generate one with `mace data synth --root PATH`)")
    return root.resolve()


def scan(root) -> dict[int, dict[int, list[str]]]:
    """``{cam: {pid: sorted file names}}`` for all six cameras, without decoding any image.

    A missing camera folder or an identity folder without images is an error: both mean a
    broken copy of the dataset, and silently skipping them would change every count.
    """
    root = check_root(root)
    tree: dict[int, dict[int, list[str]]] = {}
    for cam in ALL_CAMS:
        cam_dir = root / f"cam{cam}"
        if not cam_dir.is_dir():
            raise MaceError(f"camera folder {str(cam_dir)!r} is missing",
                            "restore the complete SYSU-MM01 release (cam1..cam6) under --root")
        ids: dict[int, list[str]] = {}
        for entry in sorted(os.listdir(cam_dir)):
            id_dir = cam_dir / entry
            if not id_dir.is_dir():
                continue
            if not entry.isdigit():
                continue  # not an identity folder (e.g. a stray notes folder)
            files = sorted(n for n in os.listdir(id_dir) if is_image_name(n))
            if not files:
                raise MaceError(f"identity folder {str(id_dir)!r} has no images",
                                "remove the empty folder or restore its images from the release")
            ids[int(entry)] = files
        tree[cam] = ids
    return tree


def _parse_ids(text: str, path: Path) -> list[int]:
    tokens = [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]
    try:
        ids = [int(t) for t in tokens]
    except ValueError:
        raise MaceError(f"split file {str(path)!r} is not a comma-separated list of integer ids",
                        "restore the file from the SYSU-MM01 release") from None
    if not ids:
        raise MaceError(f"split file {str(path)!r} is empty", "restore the file from the SYSU-MM01 release")
    return sorted(set(ids))


def _read_mat_ids(path: Path) -> list[int]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
        ids = np.asarray(mat["id"]).ravel().astype(int).tolist()
    except Exception as exc:  # scipy raises several types for a broken file
        raise MaceError(f"split file {str(path)!r} cannot be read as a .mat file with an 'id' array ({exc})",
                        "restore the file from the SYSU-MM01 release") from None
    if not ids:
        raise MaceError(f"split file {str(path)!r} is empty", "restore the file from the SYSU-MM01 release")
    return sorted(set(ids))


def _rebuilt_val(root: Path) -> list[int]:
    tree = scan(root)
    rgb = set().union(*(tree[c] for c in RGB_CAMS))
    ir = set().union(*(tree[c] for c in IR_CAMS))
    return sorted((rgb & ir) - set(read_split(root, "train")) - set(read_split(root, "test")))


def read_split(root, name: str) -> list[int]:
    """Sorted identity ids of split ``name`` ("train", "val" or "test").

    Reads ``exp/<name>_id.txt``, else ``exp/<name>_id.mat``. An absent val split is rebuilt as the
    identities with at least one RGB and one IR image, minus train, minus test (with a warning).
    """
    if name not in SPLITS:
        raise MaceError(f"unknown split {name!r}", f"use one of {', '.join(SPLITS)}")
    root = check_root(root)
    txt = root / "exp" / f"{name}_id.txt"
    mat = root / "exp" / f"{name}_id.mat"
    if txt.is_file():
        return _parse_ids(txt.read_text(), txt)
    if mat.is_file():
        return _read_mat_ids(mat)
    if name == "val":
        ids = _rebuilt_val(root)
        warnings.warn(f"{txt} not found: rebuilt the val split ({len(ids)} identities with both "
                      "modalities, minus train, minus test)", stacklevel=2)
        return ids
    raise MaceError(f"split file {str(txt)!r} (or its .mat twin) is missing",
                    "copy exp/ from the SYSU-MM01 release (train_id and test_id are required)")


def _records(root: Path, tree, pids, cams) -> list[Record]:
    # os.path.join on strings, not pathlib: the same path text as ``str(root / cam / pid / name)``, without
    # three Path objects per image (0.6 s of each smoke run's start, measured)
    base, out = str(root), []
    for pid in sorted(pids):
        for cam in cams:
            folder = os.path.join(base, f"cam{cam}", f"{pid:04d}")
            for name in tree[cam].get(pid, ()):
                out.append(Record(os.path.join(folder, name), pid, cam))
    return out


def training_set(root, include_val: bool = True) -> TrainingSet:
    """Training images of train (+ val by default) identities; labels follow sorted pids."""
    root = check_root(root)
    tree = scan(root)
    ids = set(read_split(root, "train"))
    if include_val:
        ids |= set(read_split(root, "val"))
    rgb = _records(root, tree, ids, RGB_CAMS)
    ir = _records(root, tree, ids, IR_CAMS)
    both = sorted({r.pid for r in rgb} & {r.pid for r in ir})
    if len(both) < len(ids):
        # An identity seen in one modality only cannot form cross-modal pairs.
        missing = sorted(ids - set(both))
        warnings.warn(f"{len(missing)} training identities lack RGB or IR images and are dropped "
                      f"(first: {missing[:5]})", stacklevel=2)
        keep = set(both)
        rgb = [r for r in rgb if r.pid in keep]
        ir = [r for r in ir if r.pid in keep]
    if not both:
        raise MaceError(f"no training identity under {str(root)!r} has both RGB and IR images",
                        "check exp/train_id.txt against the camera folders")
    return TrainingSet(rgb=rgb, ir=ir, pids=both, label_of={p: i for i, p in enumerate(both)})


def _check_mode(mode: str) -> tuple[int, ...]:
    if mode not in MODES:
        raise MaceError(f"unknown search mode {mode!r}", "use 'all' or 'indoor'")
    return RGB_CAMS if mode == "all" else INDOOR_RGB_CAMS


def query_set(root, mode: str = "all") -> list[Record]:
    """Every IR image (cam3, cam6) of the test identities; identical in both modes."""
    _check_mode(mode)
    root = check_root(root)
    return _records(root, scan(root), read_split(root, "test"), IR_CAMS)


def gallery_candidates(root, mode: str = "all") -> list[Record]:
    """Every RGB image of the test identities in the mode's cameras (embedded once per model)."""
    cams = _check_mode(mode)
    root = check_root(root)
    return _records(root, scan(root), read_split(root, "test"), cams)


def _groups(candidates: list[Record]) -> list[tuple[int, int, list[int]]]:
    """(pid, cam, candidate indices) per folder, in (pid, cam) order."""
    groups: list[tuple[int, int, list[int]]] = []
    for i, r in enumerate(candidates):
        if groups and groups[-1][0] == r.pid and groups[-1][1] == r.cam:
            groups[-1][2].append(i)
        else:
            groups.append((r.pid, r.cam, [i]))
    return groups


@lru_cache(maxsize=4)
def _load_perm(path: str, mtime_ns: int):
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:
        raise MaceError(f"permutation file {path!r} cannot be read ({exc})",
                        "pass the official rand_perm_cam.mat from the SYSU-MM01 evaluation code") from None
    cells = mat.get("rand_perm_cam")
    if cells is None or cells.dtype != object or cells.size != 6:
        raise MaceError(f"permutation file {path!r} has no 6-camera 'rand_perm_cam' cell array",
                        "pass the official rand_perm_cam.mat from the SYSU-MM01 evaluation code")
    return [np.asarray(c).ravel() for c in cells.ravel()]


def _official_picks(perm_file, trial: int, shots: int, groups) -> list[int]:
    if perm_file is None:
        raise MaceError("method='official' needs perm_file", "pass --perm-file PATH/rand_perm_cam.mat")
    path = Path(perm_file).expanduser()
    if not path.is_file():
        raise MaceError(f"permutation file {str(path)!r} does not exist",
                        "pass the official rand_perm_cam.mat from the SYSU-MM01 evaluation code")
    cams = _load_perm(str(path.resolve()), path.stat().st_mtime_ns)
    picks: list[int] = []
    for pid, cam, idx in groups:
        per_id = cams[cam - 1]
        entry = np.asarray(per_id[pid - 1]) if pid - 1 < len(per_id) else np.zeros((0, 0))
        if entry.ndim != 2 or entry.shape[0] <= trial or entry.shape[1] != len(idx):
            raise MaceError(f"permutation file {str(path)!r}: entry for cam{cam} id {pid} has shape "
                            f"{entry.shape}, expected (10, {len(idx)}) (trial {trial})",
                            "use the rand_perm_cam.mat that matches this copy of SYSU-MM01")
        row = entry[trial, :shots].astype(int) - 1
        picks.extend(sorted(idx[k] for k in row))
    return picks


def gallery_indices(root, mode: str = "all", trial: int = 0, shots: int = 1, method: str = "agw",
                    perm_file=None, modality: str = "rgb", candidates: list[Record] | None = None) -> np.ndarray:
    """Indices into :func:`gallery_candidates` forming the gallery of ``trial`` (see module doc);
    with ``modality="ir"`` (the reverse direction) indices into :func:`query_set`, the IR images.
    ``candidates``: that list when the caller already has it (an evaluation draws ten trials from one
    scan of the tree instead of rescanning it per trial)."""
    if modality not in ("rgb", "ir"):
        raise MaceError(f"unknown gallery modality {modality!r}", "use 'rgb' (standard) or 'ir' (reverse direction)")
    if method not in METHODS:
        raise MaceError(f"unknown gallery method {method!r}", "use 'agw' or 'official'")
    if not isinstance(shots, (int, np.integer)) or shots < 1:
        raise MaceError(f"shots must be a positive integer, got {shots!r}", "use 1 (single-shot) or 10 (multi-shot)")
    if not isinstance(trial, (int, np.integer)) or trial < 0:
        raise MaceError(f"trial must be a non-negative integer, got {trial!r}", "use trials 0..9")
    if candidates is None:
        candidates = gallery_candidates(root, mode) if modality == "rgb" else query_set(root, mode)
    groups = _groups(candidates)
    if method == "official":
        return np.asarray(_official_picks(perm_file, int(trial), int(shots), groups), dtype=np.int64)
    rng = random.Random(int(trial))  # private stream: same picks as random.seed(trial), global state untouched
    picks: list[int] = []
    for _pid, _cam, idx in groups:
        if shots == 1:
            picks.append(rng.choice(idx))
        else:
            picks.extend(sorted(rng.sample(idx, min(int(shots), len(idx)))))
    return np.asarray(picks, dtype=np.int64)


def gallery_set(root, mode: str = "all", trial: int = 0, shots: int = 1, method: str = "agw",
                perm_file=None) -> list[Record]:
    """The gallery records of one trial (a subset of :func:`gallery_candidates`)."""
    candidates = gallery_candidates(root, mode)
    return [candidates[i] for i in gallery_indices(root, mode, trial, shots, method, perm_file)]

"""LLCM reader (low-light cross-modality set released with DEEN, CVPR 2023): training lists,
test images, and the seeded per-trial galleries.

Every fact below was read in the public DEEN code (github ZYK100/LLCM, ``DEEN/data_loader.py``,
``DEEN/data_manager.py``, ``DEEN/test.py``, ``DEEN/eval_metrics.py``; the AGW folder of the same
repository does the same):

* **Training** (``LLCMData``): ``idx/train_vis.txt`` and ``idx/train_nir.txt``, one
  ``relative/path label`` per line, paths relative to the dataset root. The labels are used as
  they are written (no relabelling in the code; ``train.py`` takes the class count from the
  number of distinct labels, ``test.py`` hard-codes 713). Here ``pid`` of a training record is
  that label; its camera is read from the ``camK`` folder in the path (0 when there is none).
* **Test identities**: ``idx/test_id.txt``, one comma-separated line of integer ids.
* **Test images** (``process_query_llcm`` / ``process_gallery_llcm``): folders
  ``test_vis/camK/NNNN/`` for K = 1..9 and ``test_nir/camK/NNNN/`` for K = 1, 2, 4..9 (the code
  lists no NIR camera 3), ``NNNN`` the zero-padded test id. Identities are visited in ascending
  order, cameras in that order, files sorted by name; a missing ``camK/NNNN`` folder is skipped.
  The identity is the folder's id and the camera the ``K`` of ``camK``.
* **Gallery of trial t**: ``random.seed(t)``, then for every (identity, camera) folder in the
  order above one ``random.choice`` over its sorted files: one image per identity and camera.
  ``test.py`` runs trials 0..9 and averages.

Differences, on purpose: only image files are listed (the reference takes every entry of the
folder), and an identity folder without images is an error here (the reference's
``random.choice`` would fail on it). Picks use a private ``random.Random(trial)`` stream, which
draws the same numbers as ``random.seed(trial)`` without touching the global generator.
"""
from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mace_core.data.records import Record, is_image_name, read_label_list
from mace_core.errors import MaceError

VIS_CAMS = tuple(range(1, 10))
NIR_CAMS = tuple(range(1, 10))              # cameras of the training images (all nine record NIR)
NIR_TEST_CAMS = (1, 2, 4, 5, 6, 7, 8, 9)    # the reference's NIR test cameras (no camera 3)
MODALITIES = ("vis", "nir")
TRAIN_LISTS = {"vis": "idx/train_vis.txt", "nir": "idx/train_nir.txt"}
TEST_IDS = "idx/test_id.txt"
TEST_FOLDERS = {"vis": "test_vis", "nir": "test_nir"}
TEST_CAMS = {"vis": VIS_CAMS, "nir": NIR_TEST_CAMS}
DIRECTIONS = ("ir2vis", "vis2ir")
# ir2vis: NIR queries against the sampled VIS gallery (the reference's default test_mode [1, 2]);
# vis2ir: VIS queries against the sampled NIR gallery.
QUERY_MODALITY = {"ir2vis": "nir", "vis2ir": "vis"}
GALLERY_MODALITY = {"ir2vis": "vis", "vis2ir": "nir"}
RELEASE_FIX = "restore it from the LLCM release (obtained from its authors under the signed agreement)"

_CAM = re.compile(r"^cam(\d+)$")


@dataclass
class TrainingSet:
    """Training records per modality (``pid`` = the list's label) and the labels present in both."""

    vis: list[Record]
    nir: list[Record]
    pids: list[int] = field(default_factory=list)


def check_root(root) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MaceError(f"LLCM root {str(root)!r} is not a directory",
                        "pass --root pointing at the folder holding idx/, test_vis/ and test_nir/ "
                        "(or generate one with `mace data synth --like llcm --root PATH`)")
    if not (root / "idx").is_dir():
        raise MaceError(f"LLCM index folder {str(root / 'idx')!r} is missing",
                        f"copy idx/ (train_vis.txt, train_nir.txt, test_id.txt): {RELEASE_FIX}")
    return root.resolve()


def path_camera(relpath: str) -> int:
    """The ``K`` of the last ``camK`` folder in ``relpath`` (0 when there is none)."""
    cams = [int(m.group(1)) for part in Path(relpath).parts[:-1] if (m := _CAM.match(part))]
    return cams[-1] if cams else 0


def path_identity(relpath: str) -> int | None:
    """The numeric folder right after the last ``camK`` folder (the release's identity folder), if any."""
    parts = Path(relpath).parts[:-1]
    for i in range(len(parts) - 1, -1, -1):
        if _CAM.match(parts[i]):
            nxt = parts[i + 1] if i + 1 < len(parts) else ""
            return int(nxt) if nxt.isdigit() else None
    return None


def read_list(root, modality: str) -> list[Record]:
    """Records of ``idx/train_<modality>.txt``: absolute path, the written label as ``pid``, camera."""
    if modality not in MODALITIES:
        raise MaceError(f"unknown LLCM modality {modality!r}", "use 'vis' or 'nir'")
    root = check_root(root)
    pairs = read_label_list(root / TRAIN_LISTS[modality], "LLCM", RELEASE_FIX)
    return [Record(str(root / rel), label, path_camera(rel)) for rel, label in pairs]


def training_set(root) -> TrainingSet:
    """Both training lists; ``pids`` = labels with images in both modalities (sorted)."""
    vis, nir = read_list(root, "vis"), read_list(root, "nir")
    both = sorted({r.pid for r in vis} & {r.pid for r in nir})
    if not both:
        raise MaceError(f"no LLCM training label under {str(check_root(root))!r} has both VIS and NIR images",
                        "check idx/train_vis.txt and idx/train_nir.txt: they should share their labels")
    return TrainingSet(vis=vis, nir=nir, pids=both)


def test_ids(root) -> list[int]:
    """Sorted ids of ``idx/test_id.txt`` (comma-separated)."""
    root = check_root(root)
    path = root / TEST_IDS
    if not path.is_file():
        raise MaceError(f"LLCM test id file {str(path)!r} is missing", RELEASE_FIX)
    tokens = [t.strip() for t in path.read_text().replace("\n", ",").split(",") if t.strip()]
    try:
        ids = [int(t) for t in tokens]
    except ValueError:
        raise MaceError(f"LLCM test id file {str(path)!r} is not a comma-separated list of integer ids",
                        RELEASE_FIX) from None
    if not ids:
        raise MaceError(f"LLCM test id file {str(path)!r} is empty", RELEASE_FIX)
    return sorted(set(ids))


def scan_test(root, modality: str) -> dict[int, dict[int, list[str]]]:
    """``{cam: {pid: sorted image names}}`` of the test ids in ``modality``'s test cameras."""
    if modality not in MODALITIES:
        raise MaceError(f"unknown LLCM modality {modality!r}", "use 'vis' or 'nir'")
    root = check_root(root)
    base = root / TEST_FOLDERS[modality]
    if not base.is_dir():
        raise MaceError(f"LLCM test folder {str(base)!r} is missing", RELEASE_FIX)
    ids = test_ids(root)
    tree: dict[int, dict[int, list[str]]] = {}
    for cam in TEST_CAMS[modality]:
        per_id: dict[int, list[str]] = {}
        for pid in ids:
            folder = base / f"cam{cam}" / f"{pid:04d}"
            if not folder.is_dir():
                continue
            names = sorted(n for n in os.listdir(folder) if is_image_name(n))
            if not names:
                raise MaceError(f"LLCM identity folder {str(folder)!r} has no images",
                                f"remove the empty folder or {RELEASE_FIX}")
            per_id[pid] = names
        tree[cam] = per_id
    return tree


def test_images(root, modality: str) -> list[Record]:
    """Every test image of ``modality`` in the reference's order (identity, camera, file name)."""
    root = check_root(root)
    tree = scan_test(root, modality)
    base = root / TEST_FOLDERS[modality]
    out = []
    for pid in test_ids(root):
        for cam in TEST_CAMS[modality]:
            for name in tree[cam].get(pid, ()):
                out.append(Record(str(base / f"cam{cam}" / f"{pid:04d}" / name), pid, cam))
    return out


def _groups(records: list[Record]) -> list[list[int]]:
    groups: list[list[int]] = []
    for i, r in enumerate(records):
        if i and records[i - 1].pid == r.pid and records[i - 1].cam == r.cam:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def gallery_indices(records: list[Record], trial: int) -> np.ndarray:
    """Indices into ``records`` (from :func:`test_images`) forming the gallery of ``trial``: one
    ``random.Random(trial).choice`` per (identity, camera) folder, folders in the records' order."""
    if not isinstance(trial, (int, np.integer)) or isinstance(trial, bool) or trial < 0:
        raise MaceError(f"trial must be a non-negative integer, got {trial!r}", "use trials 0..9")
    rng = random.Random(int(trial))
    return np.asarray([rng.choice(idx) for idx in _groups(records)], dtype=np.int64)


def gallery_set(root, modality: str, trial: int) -> list[Record]:
    records = test_images(root, modality)
    return [records[i] for i in gallery_indices(records, trial)]


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise MaceError(f"unknown LLCM direction {direction!r}", "use ir2vis (NIR queries) or vis2ir (VIS queries)")
    return direction

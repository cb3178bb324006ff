"""Shared builders for the data-layer tests: a real-shaped SYSU-MM01 tree, tiny RegDB trees."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "sysu_mm01_eval"


def shared_file(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} not available (official SYSU-MM01 evaluation files live beside the repo)")
    return path


def fast_tmpdir(tmp_path_factory, name: str):
    """A temp folder on tmpfs when there is one: creating 46k empty files on a disk-backed /tmp
    takes tens of seconds, on /dev/shm well under one. Yields the path, removes it afterwards."""
    import os
    import tempfile

    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        path = Path(tempfile.mkdtemp(prefix=f"mace-{name}-", dir="/dev/shm"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp(name)


def build_real_shape_sysu(root: Path) -> Path:
    """Empty files laid out exactly like the real release (counts from structure.json), with the
    official train_id.mat / test_id.mat and no val file (the reader rebuilds it)."""
    structure = json.loads(shared_file("structure.json").read_text())
    for cam, ids in structure["cameras"].items():
        for pid, n in ids.items():
            d = root / cam / f"{int(pid):04d}"
            d.mkdir(parents=True)
            for k in range(1, n + 1):
                os.close(os.open(d / f"{k:04d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
    (root / "exp").mkdir()
    for name in ("train_id.mat", "test_id.mat"):
        shutil.copyfile(shared_file(name), root / "exp" / name)
    return root


def build_tiny_sysu(root: Path, ids=(1, 2, 3, 4, 5, 6), images=3, test=(5, 6), train=(1, 2, 3),
                    val=(4,), size=(16, 8)) -> Path:
    """A small decodable SYSU tree of solid-colour JPEGs (every id in every camera)."""
    from PIL import Image

    for cam in range(1, 7):
        for pid in ids:
            d = root / f"cam{cam}" / f"{pid:04d}"
            d.mkdir(parents=True)
            for k in range(1, images + 1):
                colour = (pid * 30 % 256, cam * 40 % 256, k * 60 % 256)
                Image.new("RGB", (size[1], size[0]), colour).save(d / f"{k:04d}.jpg", quality=95)
    (root / "exp").mkdir()
    for name, split in (("train", train), ("val", val), ("test", test)):
        if split is not None:
            (root / "exp" / f"{name}_id.txt").write_text(",".join(str(i) for i in split) + "\n")
    return root


def build_tiny_regdb(root: Path, ids=4, images=2, trial=1) -> Path:
    from PIL import Image

    (root / "idx").mkdir(parents=True)
    for kind in ("Visible", "Thermal"):
        for pid in range(ids):
            d = root / kind / str(pid)
            d.mkdir(parents=True)
            for k in range(images):
                Image.fromarray(np.full((16, 8, 3), 20 * pid + k, np.uint8)).save(d / f"{k}.bmp")
    half = ids // 2
    for split, pids in (("train", range(half)), ("test", range(half, ids))):
        for kind in ("visible", "thermal"):
            lines = [f"{kind.capitalize()}/{p}/{k}.bmp {i}" for i, p in enumerate(pids) for k in range(images)]
            (root / "idx" / f"{split}_{kind}_{trial}.txt").write_text("\n".join(lines) + "\n")
    return root

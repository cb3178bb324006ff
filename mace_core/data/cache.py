"""Pre-resized uint8 image cache, opened memory-mapped.

Training reads every image every epoch; decoding JPEGs and resizing each time is slow, and the
reference pipeline instead holds all resized images in RAM (~4.3 GB for SYSU-MM01). Here they
are resized once into an ``.npy`` file and memory-mapped, so pages are shared between loader
workers and only touched pages are resident.

The file name carries a key over (every source path, its byte size and mtime, the target size,
the format version): any change to the file list, a file's content (size/mtime) or the size
selects a different file, which is then built. A cache is written to a temp file in the same
folder and renamed into place when complete, so a half-written cache is never picked up.

Before anything long starts, :func:`preflight` checks that the cache folders are writable and hold
the space every cache still to build needs (``N × H × W × 3`` bytes each: 124,416 bytes an image
at 288×144, so about 5.7 GB for all 45,863 SYSU-MM01 images), and says so in one error if not.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mace_core.data.images import open_rgb
from mace_core.data.records import Record
from mace_core.errors import MaceError

HEADROOM = 64 * 2**20  # bytes left free beyond the caches themselves

FORMAT_VERSION = 1
CACHE_DIRNAME = ".mace_cache"


def cache_key(paths: list[str], size) -> str:
    """Hex digest of the source file list (paths, sizes, mtimes) and the target size."""
    h = hashlib.sha256(f"v{FORMAT_VERSION};{int(size[0])}x{int(size[1])}".encode())
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            raise MaceError(f"image {p!r} is missing", "restore the dataset or re-run `mace data check`") from None
        h.update(f"\n{p}\t{st.st_size}\t{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _load(path: str, size) -> np.ndarray:
    from PIL import Image

    # IR images are single- or three-channel grey; always 3 channels (open_rgb). LANCZOS as the
    # reference pre-processing (Pillow's former ANTIALIAS).
    im = open_rgb(path)
    if im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8)


def default_cache_dir(paths: list[str]) -> Path:
    return Path(os.path.commonpath([os.path.dirname(p) for p in paths])) / CACHE_DIRNAME


def cache_bytes(n_images: int, size) -> int:
    """Bytes of one cache file: uint8 ``(N, H, W, 3)`` plus the 128-byte ``.npy`` header."""
    return int(n_images) * int(size[0]) * int(size[1]) * 3 + 128


def cache_file(records: list[Record], size, cache_dir=None, desc: str = "") -> Path:
    """Where the cache of ``records`` at ``size`` lives (whether or not it exists yet)."""
    paths = [r.path for r in records]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(paths)
    return folder / f"{desc or 'images'}-{int(size[0])}x{int(size[1])}-{cache_key(paths, size)[:20]}.npy"


def _is_complete(path: Path, shape) -> bool:
    try:
        arr = np.load(path, mmap_mode="r")
        return arr.shape == tuple(shape) and arr.dtype == np.uint8
    except (OSError, ValueError):
        return False  # absent, or unreadable (e.g. truncated by a copy)


def _existing_parent(folder: Path) -> Path:
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def check_writable(folder: Path) -> None:
    """Create ``folder`` and a probe file in it, or raise the one error that says what to do."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise MaceError(f"cannot write the image cache in {str(folder)!r} ({exc})",
                        "pass a writable --cache-dir (data.cache_dir=PATH)") from None


def preflight(groups, size, cache_dir=None) -> dict:
    """Check, before any long work, that the caches of ``groups`` (``(records, desc)`` pairs) can be
    written: folders writable, free space for every cache not yet built (per file system).
    Returns ``{"bytes": all caches, "to_build_bytes": still to write, "files": [...]}``."""
    plan, need_by_dev = [], {}
    for records, desc in groups:
        if not records:
            continue
        path = cache_file(records, size, cache_dir, desc)
        n_bytes = cache_bytes(len(records), size)
        done = path.is_file() and _is_complete(path, (len(records), int(size[0]), int(size[1]), 3))
        plan.append({"file": str(path), "images": len(records), "bytes": n_bytes, "built": done})
        if not done:
            check_writable(path.parent)
            dev = os.stat(path.parent).st_dev
            folder, need = need_by_dev.get(dev, (path.parent, 0))
            need_by_dev[dev] = (folder, need + n_bytes)
    for folder, need in need_by_dev.values():
        free = shutil.disk_usage(_existing_parent(folder)).free
        if free < need + HEADROOM:
            raise MaceError(f"the image caches need {need / 1e9:.2f} GB in {str(folder)!r} but only "
                            f"{free / 1e9:.2f} GB are free there",
                            "free some space, or pass a cache folder on a larger disk (data.cache_dir=PATH / --cache-dir)")
    return {"bytes": sum(p["bytes"] for p in plan), "to_build_bytes": sum(p["bytes"] for p in plan if not p["built"]),
            "files": plan}


def cached_images(records: list[Record], size=(288, 144), cache_dir=None, desc: str = "",
                  workers: int = 2) -> np.ndarray:
    """Read-only memmap ``uint8 (N, H, W, 3)`` of ``records`` resized to ``size`` (H, W).

    ``cache_dir`` defaults to ``<common folder of the images>/.mace_cache``; pass another folder
    when the dataset is read-only.
    """
    from tqdm.auto import tqdm

    paths = [r.path for r in records]
    if not paths:
        raise MaceError(f"no images to cache{f' for {desc}' if desc else ''}", "check the dataset splits")
    size = (int(size[0]), int(size[1]))
    if min(size) < 1:
        raise MaceError(f"cache image size must be positive, got {size}", "use e.g. 288x144")
    final = cache_file(records, size, cache_dir, desc)
    folder, name = final.parent, final.name
    shape = (len(paths), size[0], size[1], 3)
    if final.is_file() and _is_complete(final, shape):
        return np.load(final, mmap_mode="r")
    preflight([(records, desc)], size, cache_dir)  # writable, and room for this file
    try:
        tmp = folder / f".{name}.partial-{os.getpid()}"
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    except OSError as exc:
        raise MaceError(f"cannot write the image cache in {str(folder)!r} ({exc})",
                        "pass a writable --cache-dir (data.cache_dir=PATH)") from None
    workers = max(1, workers)
    pool = ThreadPoolExecutor(workers)  # PIL decodes/resizes without the GIL
    window: deque = deque()  # a bounded number in flight: a corrupt file stops the build at once
    try:
        bar = tqdm(total=len(paths), desc=f"caching {desc or 'images'} {size[0]}x{size[1]}", leave=False,
                   mininterval=1.0, disable=None)  # a bar on a terminal only
        done = 0
        for i, path in enumerate(paths):
            window.append(pool.submit(_load, path, size))
            while len(window) > 4 * workers or (i == len(paths) - 1 and window):
                out[done] = window.popleft().result()
                done += 1
                bar.update(1)
        bar.close()
        out.flush()
        del out
        os.replace(tmp, final)
    except BaseException:
        for future in window:
            future.cancel()
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return np.load(final, mmap_mode="r")

"""Pre-resized uint8 image cache, opened memory-mapped.

Training reads every image every epoch; decoding JPEGs and resizing each time is slow, and the
reference pipeline instead holds all resized images in RAM (~4.3 GB for SYSU-MM01). Here they
are resized once into an ``.npy`` file and memory-mapped, so pages are shared between loader
workers and only touched pages are resident.

The file name carries a key over (every source path, its byte size and mtime, the target size,
the format version): any change to the file list, a file's content (size/mtime) or the size
selects a different file, which is then built. A cache is written to a temp file in the same
folder and renamed into place when complete, so a half-written cache is never picked up.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mace_core.data.records import Record
from mace_core.errors import MaceError

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

    try:
        with Image.open(path) as im:
            # IR images are single- or three-channel grey; always 3 channels. LANCZOS as the
            # reference pre-processing (Pillow's former ANTIALIAS).
            im = im.convert("RGB")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:
        raise MaceError(f"image {path!r} cannot be decoded ({type(exc).__name__}: {exc})",
                        "re-extract this file from the dataset archive") from None


def default_cache_dir(paths: list[str]) -> Path:
    return Path(os.path.commonpath([os.path.dirname(p) for p in paths])) / CACHE_DIRNAME


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
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(paths)
    key = cache_key(paths, size)
    name = f"{desc or 'images'}-{size[0]}x{size[1]}-{key[:20]}.npy"
    final = folder / name
    shape = (len(paths), size[0], size[1], 3)
    if final.is_file():
        try:
            arr = np.load(final, mmap_mode="r")
            if arr.shape == shape and arr.dtype == np.uint8:
                return arr
        except (OSError, ValueError):
            pass  # unreadable (e.g. truncated by a copy): rebuild below
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.partial-{os.getpid()}"
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    except OSError as exc:
        raise MaceError(f"cannot write the image cache in {str(folder)!r} ({exc})",
                        "pass a writable --cache-dir") from None
    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:  # PIL decodes/resizes without the GIL
            for i, img in enumerate(tqdm(pool.map(lambda p: _load(p, size), paths), total=len(paths),
                                         desc=f"caching {desc or 'images'} {size[0]}x{size[1]}",
                                         leave=False, mininterval=1.0)):
                out[i] = img
        out.flush()
        del out
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return np.load(final, mmap_mode="r")

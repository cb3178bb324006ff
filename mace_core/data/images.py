"""Decoding dataset images, and the one message that names a file that cannot be decoded.

``mace data check`` and the image cache both decode through :func:`open_rgb`, so a corrupt JPEG is
reported the same way wherever it is found first.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from mace_core.errors import MaceError

DECODE_FIX = "re-extract this file from the dataset archive (or regenerate a synthetic tree)"


def open_rgb(path: str):
    """The image at ``path`` fully decoded as RGB (a PIL image); MaceError naming it if it cannot be."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")  # convert() decodes every pixel: a truncated file fails here
            im.load()
            return im
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise corrupt_image(path, exc) from None


def corrupt_image(path: str, exc: BaseException) -> MaceError:
    return MaceError(f"image {path!r} cannot be decoded ({type(exc).__name__}: {exc})", DECODE_FIX)


def _decode_chunk(paths: list[str]) -> list[str]:
    bad = []
    for p in paths:
        try:
            open_rgb(p)
        except MaceError as exc:
            bad.append(exc.what)
    return bad


def decode_all(paths: Iterable[str], workers: int | None = None, desc: str = "decoding images",
               progress: bool | None = None) -> list[str]:
    """Decode every file (threads: Pillow decodes without the GIL); return one message per bad file,
    in the order of ``paths``. ``progress=None`` shows a bar only on a terminal."""
    from tqdm.auto import tqdm

    paths = list(paths)
    chunk = 64
    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    workers = max(1, workers or os.cpu_count() or 1)
    bad: list[str] = []
    with tqdm(total=len(paths), desc=desc, unit="img", leave=False, mininterval=1.0,
              disable=None if progress is None else not progress) as bar, ThreadPoolExecutor(workers) as pool:
        for part, found in zip(chunks, pool.map(_decode_chunk, chunks)):
            bad += found
            bar.update(len(part))
    return bad

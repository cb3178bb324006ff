"""The one record type every dataset reader returns: an image file, its identity and camera."""
from __future__ import annotations

from dataclasses import dataclass

# Extensions treated as images when scanning folders (SYSU-MM01 ships .jpg, RegDB .bmp).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Record:
    """One image: absolute ``path``, original identity id ``pid`` (not relabelled), camera ``cam``."""

    path: str
    pid: int
    cam: int


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")

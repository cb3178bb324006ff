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


def read_label_list(path, dataset: str, fix: str) -> list[tuple[str, int]]:
    """The ``relpath label`` lines of an index file (RegDB's and LLCM's ``idx/*.txt``), in file order.

    A missing, empty or malformed file is one MaceError naming the file and line, with ``fix``."""
    from mace_core.errors import MaceError   # records is imported by everything: keep it light

    if not path.is_file():
        raise MaceError(f"{dataset} list {str(path)!r} is missing", fix)
    pairs = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise MaceError(f"{dataset} list {str(path)!r} line {n} is not 'relpath label': {line!r}",
                            f"restore the list file: {fix}")
        pairs.append((parts[0], int(parts[1])))
    if not pairs:
        raise MaceError(f"{dataset} list {str(path)!r} is empty", f"restore the list file: {fix}")
    return pairs

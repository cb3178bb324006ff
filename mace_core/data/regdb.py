"""RegDB reader: ``Visible/``, ``Thermal/`` and ``idx/{train,test}_{visible,thermal}_{trial}.txt``.

Each list line is ``relpath label``; trials are 1..10 (a model is trained per trial). Records
use cam 1 for visible and cam 2 for thermal; ``pid`` is the label written in the list.
"""
from __future__ import annotations

from pathlib import Path

from mace_core.data.records import Record, read_label_list
from mace_core.errors import MaceError

TRIALS = tuple(range(1, 11))
VISIBLE_CAM, THERMAL_CAM = 1, 2


def check_root(root) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MaceError(f"RegDB root {str(root)!r} is not a directory",
                        "pass --root pointing at the folder holding Visible/, Thermal/ and idx/")
    for sub in ("Visible", "Thermal", "idx"):
        if not (root / sub).is_dir():
            raise MaceError(f"RegDB folder {str(root / sub)!r} is missing",
                            "restore the complete RegDB release (Visible/, Thermal/, idx/) under --root")
    return root.resolve()


def _read_list(root: Path, path: Path, cam: int) -> list[Record]:
    pairs = read_label_list(path, "RegDB", "copy idx/ from the RegDB release")
    return [Record(str(root / rel), label, cam) for rel, label in pairs]


def regdb_split(root, trial: int, split: str = "train") -> tuple[list[Record], list[Record]]:
    """(visible, thermal) records of ``split`` ("train" or "test") for ``trial`` (1..10)."""
    if trial not in TRIALS:
        raise MaceError(f"RegDB trial must be 1..10, got {trial!r}", "pass --trial between 1 and 10")
    if split not in ("train", "test"):
        raise MaceError(f"unknown RegDB split {split!r}", "use 'train' or 'test'")
    root = check_root(root)
    visible = _read_list(root, root / "idx" / f"{split}_visible_{trial}.txt", VISIBLE_CAM)
    thermal = _read_list(root, root / "idx" / f"{split}_thermal_{trial}.txt", THERMAL_CAM)
    return visible, thermal

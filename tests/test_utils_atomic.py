"""Atomic writes: complete or absent, and finished files get the ordinary (umask) mode, not mkstemp's 0600."""
from __future__ import annotations

import os
import stat

import pytest

from mace_core.utils import atomic


def test_atomic_write_gives_umask_mode_and_replaces(tmp_path):
    target = tmp_path / "sub" / "result.json"
    atomic.atomic_write_json(target, {"a": 1})
    atomic.atomic_write_json(target, {"a": 2})
    assert target.read_text().strip().endswith("}") and '"a": 2' in target.read_text()
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~atomic._UMASK
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]  # no temp file left


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "x.txt"
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []

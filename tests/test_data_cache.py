"""Image cache: contents, reuse, invalidation (size, file list, content), atomicity, bad images."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from _data_helpers import build_tiny_sysu
from mace_core.data import cache as cache_mod
from mace_core.data.cache import cached_images
from mace_core.data.sysu import training_set
from mace_core.errors import MaceError


@pytest.fixture()
def tree(tmp_path):
    root = build_tiny_sysu(tmp_path / "sysu", ids=(1, 2, 3), train=(1, 2), val=(), test=(3,), images=2)
    (root / "exp" / "val_id.txt").unlink()
    return root


def rgb_records(root):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return training_set(root).rgb


def cache_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_cache_holds_resized_three_channel_images(tree, tmp_path):
    recs = rgb_records(tree)
    # make one image single-channel grey, as IR files can be: it must come back with 3 channels
    Image.new("L", (8, 16), 77).save(recs[0].path)
    arr = cached_images(recs, size=(32, 16), cache_dir=tmp_path / "c")
    assert arr.shape == (len(recs), 32, 16, 3) and arr.dtype == np.uint8
    assert isinstance(arr, np.memmap) and not arr.flags.writeable
    assert (arr[0] == 77).all()
    with Image.open(recs[1].path) as im:
        expected = np.asarray(im.convert("RGB").resize((16, 32), Image.Resampling.LANCZOS))
    assert np.array_equal(arr[1], expected)


def test_default_cache_dir_is_inside_the_dataset(tree):
    cached_images(rgb_records(tree), size=(16, 8))
    assert len(list((tree / ".mace_cache").glob("*.npy"))) == 1


def test_valid_cache_is_reused_without_decoding(tree, tmp_path, monkeypatch):
    recs = rgb_records(tree)
    first = cached_images(recs, (16, 8), tmp_path / "c")
    monkeypatch.setattr(cache_mod, "_load", lambda *a: pytest.fail("a valid cache was rebuilt"))
    again = cached_images(recs, (16, 8), tmp_path / "c")
    assert again.filename == first.filename and np.array_equal(first, again)


def test_size_file_list_and_content_changes_rebuild(tree, tmp_path):
    recs = rgb_records(tree)
    base = cached_images(recs, (16, 8), tmp_path / "c").filename
    assert cached_images(recs, (32, 16), tmp_path / "c").filename != base          # size
    assert cached_images(recs[:-1], (16, 8), tmp_path / "c").filename != base      # file list
    Image.new("RGB", (8, 16), (255, 0, 0)).save(recs[2].path)                      # content
    st = os.stat(recs[2].path)
    os.utime(recs[2].path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    rebuilt = cached_images(recs, (16, 8), tmp_path / "c")
    assert rebuilt.filename != base
    assert (rebuilt[2][..., 0] > 240).all() and (rebuilt[2][..., 1:] < 15).all()


def test_interrupted_build_leaves_no_cache_and_is_not_reused(tree, tmp_path, monkeypatch):
    recs = rgb_records(tree)
    real_load, calls = cache_mod._load, []

    def failing(path, size):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a user hitting Ctrl-C mid-build
        return real_load(path, size)

    monkeypatch.setattr(cache_mod, "_load", failing)
    with pytest.raises(KeyboardInterrupt):
        cached_images(recs, (16, 8), tmp_path / "c", workers=1)
    assert cache_files(tmp_path / "c") == []
    monkeypatch.setattr(cache_mod, "_load", real_load)
    arr = cached_images(recs, (16, 8), tmp_path / "c")
    assert arr.shape[0] == len(recs) and arr[3].any()


def test_stray_partial_and_truncated_caches_are_ignored(tree, tmp_path):
    recs = rgb_records(tree)
    good = cached_images(recs, (16, 8), tmp_path / "c")
    path, expected = good.filename, np.array(good)
    del good
    with open(path, "r+b") as f:  # truncated final file (e.g. an interrupted copy)
        f.truncate(200)
    (tmp_path / "c" / (".x.npy.partial-1")).write_bytes(b"junk")
    rebuilt = cached_images(recs, (16, 8), tmp_path / "c")
    assert np.array_equal(rebuilt, expected)


def test_corrupt_and_missing_images_name_the_file(tree, tmp_path):
    recs = rgb_records(tree)
    with open(recs[1].path, "wb") as f:
        f.write(b"not a jpeg")
    with pytest.raises(MaceError, match=recs[1].path.replace("\\", "\\\\")):
        cached_images(recs, (16, 8), tmp_path / "c")
    assert [n for n in cache_files(tmp_path / "c") if n.endswith(".npy")] == []
    os.remove(recs[1].path)
    with pytest.raises(MaceError, match="missing"):
        cached_images(recs, (16, 8), tmp_path / "c")


def test_unwritable_cache_dir_is_a_clear_error(tree, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MaceError, match="--cache-dir"):
        cached_images(rgb_records(tree), (16, 8), blocker / "sub")
